// Package bench measures ingest's sustained throughput: events per second
// through Track (batches over gRPC on loopback, answered after JetStream's
// durable acks) beside the rate of publishing the same events straight to
// JetStream (asynchronous publishes, every ack awaited, the same batches),
// in the same process, against the same embedded NATS server.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/record"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/server"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/store"
)

// Options configures Run.
type Options struct {
	// Runs is how many times each path is measured (alternating).
	Runs int
	// Duration is how long each measurement lasts, after Warmup.
	Duration, Warmup time.Duration
	// Batch is the number of events per Track call and per raw batch.
	Batch int
	// Concurrency is the number of batches in flight at once, on both
	// paths.
	Concurrency int
	// Dir holds NATS's files; empty uses a temporary directory.
	Dir string
	// NATSURL, when set, is a NATS server (JetStream enabled) to use instead
	// of one embedded in this process. A server in its own process, as in
	// production, does not share the Go heap (and its garbage collector)
	// with the service under test.
	NATSURL string
}

// DefaultOptions are the options of `make bench-ingest`.
func DefaultOptions() Options {
	return Options{Runs: 5, Duration: 3 * time.Second, Warmup: 500 * time.Millisecond, Batch: 500, Concurrency: 4}
}

// Result holds the events per second of every run of both paths.
type Result struct {
	// Track and Raw are the rates of each run, in run order.
	Track, Raw []float64
}

// Median returns the median of rates.
func Median(rates []float64) float64 {
	if len(rates) == 0 {
		return 0
	}
	s := slices.Clone(rates)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ratio is the median Track rate over the median raw rate.
func (r Result) Ratio() float64 {
	if raw := Median(r.Raw); raw > 0 {
		return Median(r.Track) / raw
	}
	return 0
}

// setup is the measured system.
type setup struct {
	nats    *embedded.NATS
	nc      *nats.Conn
	rawNC   *nats.Conn
	raw     jetstream.JetStream
	st      *store.Store
	builder *record.Builder
	grpc    *grpc.Server
	conn    *grpc.ClientConn
	client  ingestv1.IngestServiceClient
}

func start(ctx context.Context, dir, url string) (_ *setup, err error) {
	s := &setup{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if url == "" {
		if s.nats, err = embedded.StartNATS(dir); err != nil {
			return nil, err
		}
		url = s.nats.URL()
	}
	var js jetstream.JetStream
	if s.nc, js, err = service.ConnectJetStream(url, "bench-ingest", nil, store.JetStreamOptions(store.DefaultPublishTimeout)); err != nil {
		return nil, err
	}
	if s.st, err = store.New(ctx, js); err != nil {
		return nil, err
	}
	if s.rawNC, s.raw, err = service.ConnectJetStream(url, "bench-raw", nil, service.JetStreamOptions{MaxPending: store.DefaultMaxPending, NoReconnectBuffer: true}); err != nil {
		return nil, err
	}
	p, err := eventlog.NewPseudonymiser([]byte("bench key: not a secret, 32 bytes or more"), "")
	if err != nil {
		return nil, err
	}
	s.builder = record.New(p)
	srv := server.New(s.st, s.builder, server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	ingestv1.RegisterIngestServiceServer(s.grpc, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { _ = s.grpc.Serve(lis) }()
	if s.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20))); err != nil {
		return nil, err
	}
	s.client = ingestv1.NewIngestServiceClient(s.conn)
	return s, nil
}

func (s *setup) close() {
	if s.conn != nil {
		s.conn.Close()
	}
	if s.grpc != nil {
		s.grpc.Stop()
	}
	if s.st != nil {
		s.st.Close()
	}
	for _, nc := range []*nats.Conn{s.nc, s.rawNC} {
		if nc != nil {
			nc.Close()
		}
	}
	if s.nats != nil {
		s.nats.Shutdown()
	}
}

// events makes one batch of realistic events with unique message ids.
func events(prefix string, n int, now time.Time) []*ingestv1.Event {
	out := make([]*ingestv1.Event, n)
	for i := range out {
		c := (i * 7919) % 10000
		out[i] = &ingestv1.Event{
			MessageId: fmt.Sprintf("%s-%06d", prefix, i),
			UserId:    fmt.Sprintf("cust-%06d", c),
			Name:      "Product Viewed",
			ItemId:    fmt.Sprintf("sku-%05d", (i*31)%5000),
			Value:     proto.Float64(float64(c%500) + 0.99),
			Currency:  "EUR",
			Properties: map[string]*commonv1.Value{
				"quantity": {Kind: &commonv1.Value_IntValue{IntValue: int64(1 + i%3)}},
				"category": {Kind: &commonv1.Value_StringValue{StringValue: "books"}},
			},
			Context: &ingestv1.EventContext{
				Channel:   "web",
				Ip:        fmt.Sprintf("198.51.100.%d", i%250),
				UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
				Campaign:  &ingestv1.CampaignContext{Id: "2024-spring", Source: "newsletter", Medium: "email"},
			},
			OriginalTimestamp: timestamppb.New(now.Add(-time.Second)),
			SentAt:            timestamppb.New(now),
		}
	}
	return out
}

// measure runs batches from concurrency workers until the duration ends
// and returns acked events per second (after the warmup).
func measure(ctx context.Context, o Options, send func(ctx context.Context, worker, seq int) (int, error)) (float64, error) {
	var (
		counting atomic.Bool
		events   atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				n, err := send(ctx, w, seq)
				if err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				if counting.Load() {
					events.Add(int64(n))
				}
			}
		}()
	}
	time.Sleep(o.Warmup)
	counting.Store(true)
	begin := time.Now()
	time.Sleep(o.Duration)
	counting.Store(false)
	elapsed := time.Since(begin)
	cancel()
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(events.Load()) / elapsed.Seconds(), nil
}

// reset deletes the events stream and makes it again, so that every
// measurement starts from the same state (an empty stream and an empty
// de-duplication map).
func (s *setup) reset(ctx context.Context) error {
	js := s.st.JetStream()
	if err := js.DeleteStream(ctx, eventlog.EventsStream); err != nil {
		return fmt.Errorf("deleting the events stream: %w", err)
	}
	return eventlog.Ensure(ctx, js)
}

// Run measures both paths o.Runs times, alternating which goes first, and
// returns the rates.
func Run(ctx context.Context, o Options) (Result, error) {
	dir := o.Dir
	if dir == "" && o.NATSURL == "" {
		d, err := os.MkdirTemp("", "bench-ingest-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	s, err := start(sctx, dir, o.NATSURL)
	cancel()
	if err != nil {
		return Result{}, err
	}
	defer s.close()

	var res Result
	for run := range o.Runs {
		for i := range 2 {
			if err := s.reset(ctx); err != nil {
				return res, err
			}
			if (run+i)%2 == 0 {
				rate, err := s.measureTrack(ctx, o, run)
				if err != nil {
					return res, fmt.Errorf("measuring Track: %w", err)
				}
				res.Track = append(res.Track, rate)
			} else {
				rate, err := s.measureRaw(ctx, o, run)
				if err != nil {
					return res, fmt.Errorf("measuring raw publishing: %w", err)
				}
				res.Raw = append(res.Raw, rate)
			}
		}
	}
	return res, nil
}

// setIDs gives the events of a batch unique message ids.
func setIDs(evs []*ingestv1.Event, prefix string) {
	for i, ev := range evs {
		ev.MessageId = prefix + strconv.Itoa(i)
	}
}

// measureTrack sends batches through Track over gRPC. Each worker reuses
// one request, changing only the message ids, so the client does little
// besides encoding.
func (s *setup) measureTrack(ctx context.Context, o Options, run int) (float64, error) {
	reqs := make([]*ingestv1.TrackRequest, o.Concurrency)
	for w := range reqs {
		reqs[w] = &ingestv1.TrackRequest{Events: events("", o.Batch, time.Now())}
	}
	return measure(ctx, o, func(ctx context.Context, w, seq int) (int, error) {
		req := reqs[w]
		setIDs(req.Events, fmt.Sprintf("t%d-%d-%d-", run, w, seq))
		resp, err := s.client.Track(ctx, req)
		if err != nil {
			return 0, err
		}
		if c := resp.GetCounts(); c.GetAccepted() != int64(len(req.Events)) {
			return 0, fmt.Errorf("track: %v", c)
		}
		return len(req.Events), nil
	})
}

// measureRaw publishes the records Track would store for the same events
// straight to JetStream, asynchronously, awaiting every ack of a batch
// before the next. The records are encoded once; each batch only changes
// their message ids.
func (s *setup) measureRaw(ctx context.Context, o Options, run int) (float64, error) {
	now := time.Now()
	type tmpl struct {
		subject string
		data    []byte
	}
	var batch []tmpl
	for _, ev := range events("x", o.Batch, now) {
		rec, probs := s.builder.Event(ev, now, "")
		if len(probs) > 0 {
			return 0, fmt.Errorf("event rejected: %v", probs)
		}
		data, err := proto.Marshal(rec.Event)
		if err != nil {
			return 0, err
		}
		subj, err := eventlog.EventSubject(rec.Key, rec.Type)
		if err != nil {
			return 0, err
		}
		batch = append(batch, tmpl{subj, data})
	}
	return measure(ctx, o, func(ctx context.Context, w, seq int) (int, error) {
		prefix := fmt.Sprintf("r%d-%d-%d-", run, w, seq)
		futures := make([]jetstream.PubAckFuture, len(batch))
		for i, m := range batch {
			f, err := s.raw.PublishMsgAsync(&nats.Msg{Subject: m.subject, Data: m.data, Header: nats.Header{eventlog.HeaderMsgID: []string{prefix + strconv.Itoa(i)}}})
			if err != nil {
				return 0, err
			}
			futures[i] = f
		}
		for _, f := range futures {
			select {
			case a := <-f.Ok():
				if a.Duplicate {
					return 0, errors.New("duplicate")
				}
			case err := <-f.Err():
				return 0, err
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return len(batch), nil
	})
}
