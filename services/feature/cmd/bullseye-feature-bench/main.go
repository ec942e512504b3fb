// Command bullseye-feature-bench measures the feature service on this
// machine, over gRPC on loopback, against embedded etcd and NATS:
// GetOnlineFeatures latency (p50, p99) for batches of 1 and 64 entities of
// 20 features at concurrency 1 and 16, and materialisation throughput (a
// backlog of events applied to profiles, in events per second) beside the
// rate of publishing the same records straight to JetStream. Each run
// starts from nothing; the table shows the median of the runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/services/feature"
	"github.com/bullseye-ml/bullseye/services/feature/internal/materialize"
)

// profilePath, when set, receives a CPU profile of the latency phases.
var profilePath string

type options struct {
	runs      int
	customers int
	perCust   int
	phase     time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 5, "independent runs; the table shows medians")
	flag.IntVar(&o.customers, "customers", 10000, "customers in the backlog")
	flag.IntVar(&o.perCust, "events", 20, "events per customer in the backlog")
	flag.DurationVar(&o.phase, "phase", 2*time.Second, "how long each latency measurement lasts")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the latency phases to this file")
	flag.Parse()
	profilePath = *cpuprofile
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bullseye-feature-bench:", err)
		os.Exit(1)
	}
}

// result is one run's figures.
type result struct {
	publishRate, applyRate float64
	lat                    map[string][2]time.Duration // p50, p99 by phase
	calls                  map[string]float64          // calls per second by phase
}

var phases = []struct {
	name        string
	batch, conc int
}{{"1 entity, concurrency 1", 1, 1}, {"1 entity, concurrency 16", 1, 16}, {"64 entities, concurrency 1", 64, 1}, {"64 entities, concurrency 16", 64, 16}}

func run(o options) error {
	var results []result
	for r := 0; r < o.runs; r++ {
		res, err := once(o)
		if err != nil {
			return fmt.Errorf("run %d: %w", r+1, err)
		}
		fmt.Fprintf(os.Stderr, "run %d: publish %.0f/s, materialise %.0f/s", r+1, res.publishRate, res.applyRate)
		for _, p := range phases {
			l := res.lat[p.name]
			fmt.Fprintf(os.Stderr, "; %s p50 %v p99 %v", p.name, l[0].Round(time.Microsecond), l[1].Round(time.Microsecond))
		}
		fmt.Fprintln(os.Stderr)
		results = append(results, res)
	}
	med := func(f func(result) float64) float64 {
		xs := make([]float64, len(results))
		for i, r := range results {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "GetOnlineFeatures, 20 features, gRPC loopback (median of %d runs)\tp50\tp99\tcalls/s\n", o.runs)
	for _, p := range phases {
		p50 := time.Duration(med(func(r result) float64 { return float64(r.lat[p.name][0]) }))
		p99 := time.Duration(med(func(r result) float64 { return float64(r.lat[p.name][1]) }))
		fmt.Fprintf(w, "%s\t%v\t%v\t%.0f\n", p.name, p50.Round(time.Microsecond), p99.Round(time.Microsecond), med(func(r result) float64 { return r.calls[p.name] }))
	}
	fmt.Fprintf(w, "\nthroughput (median of %d runs, %d customers x %d events)\tevents/s\n", o.runs, o.customers, o.perCust)
	fmt.Fprintf(w, "publish StoredEvents straight to JetStream (async, batches of 500)\t%.0f\n", med(func(r result) float64 { return r.publishRate }))
	fmt.Fprintf(w, "materialise the backlog into profiles\t%.0f\n", med(func(r result) float64 { return r.applyRate }))
	return w.Flush()
}

func once(o options) (result, error) {
	res := result{lat: map[string][2]time.Duration{}, calls: map[string]float64{}}
	dir, err := os.MkdirTemp("", "bullseye-feature-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	etcd, err := embedded.StartEtcd(ctx, dir+"/etcd")
	if err != nil {
		return res, err
	}
	defer etcd.Close()
	ns, err := embedded.StartNATS(dir + "/nats")
	if err != nil {
		return res, err
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return res, err
	}
	if err := eventlog.Ensure(ctx, js); err != nil {
		return res, err
	}

	// The backlog, published straight to JetStream.
	msgs := backlog(o)
	start := time.Now()
	for i := 0; i < len(msgs); i += 500 {
		var fs []jetstream.PubAckFuture
		for _, m := range msgs[i:min(len(msgs), i+500)] {
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				return res, err
			}
			fs = append(fs, f)
		}
		for _, f := range fs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return res, err
			}
		}
	}
	res.publishRate = float64(len(msgs)) / time.Since(start).Seconds()

	// The feature service catches up with it.
	cfg := feature.NewConfig()
	cfg.EtcdEndpoints, cfg.NATSURL = etcd.Endpoints(), ns.URL()
	cfg.Server.TLS.Insecure = true
	cfg.Server.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DataDir = dir + "/feature"
	cfg.LeaseTTL = 2 * time.Second
	addrs := make(chan string, 1)
	cfg.Started = func(_, addr string) { addrs <- addr }
	done := make(chan error, 1)
	start = time.Now()
	go func() { done <- feature.Run(ctx, cfg) }()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		return res, err
	}
	defer func() { cancel(); <-done }()
	prog := materialize.NewProgress(js)
	seq, err := prog.LastSeq(ctx)
	if err != nil {
		return res, err
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
	err = prog.Wait(wctx, seq)
	wcancel()
	if err != nil {
		return res, err
	}
	res.applyRate = float64(len(msgs)) / time.Since(start).Seconds()
	for {
		cctx, c := context.WithTimeout(ctx, time.Second)
		err := mesh.CheckHealth(cctx, addr, "", mesh.TLSConfig{Insecure: true})
		c()
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The mesh's own client, as serving dials the feature service: its
	// codec decodes replies with the generated vtproto code.
	conn, err := mesh.DialAddr(ctx, addr, mesh.TLSConfig{Insecure: true})
	if err != nil {
		return res, err
	}
	defer conn.Close()
	client := featurev1.NewFeatureServiceClient(conn)
	if err := applyReady(ctx, client); err != nil {
		return res, err
	}
	if profilePath != "" {
		f, err := os.Create(profilePath)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	for _, p := range phases {
		lats, calls, err := load(ctx, client, o, p.batch, p.conc)
		if err != nil {
			return res, err
		}
		res.lat[p.name] = [2]time.Duration{pct(lats, 0.50), pct(lats, 0.99)}
		res.calls[p.name] = calls
	}
	return res, nil
}

func pct(xs []time.Duration, q float64) time.Duration {
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	return xs[min(len(xs)-1, int(q*float64(len(xs))))]
}

// backlog makes o.customers x o.perCust records: trait updates and orders,
// views and cart events spread over the last 120 days.
func backlog(o options) []*nats.Msg {
	rng := rand.New(rand.NewPCG(42, 1))
	now := time.Now()
	names := []string{"Order Completed", "Product Viewed", "Product Viewed", "Added To Cart"}
	var out []*nats.Msg
	for i := 0; i < o.perCust; i++ {
		for c := 0; c < o.customers; c++ {
			user := "cust-" + strconv.Itoa(c)
			ev := &ingestv1.StoredEvent{MessageId: user + "-" + strconv.Itoa(i), UserId: user, ReceivedAt: timestamppb.New(now)}
			at := now.Add(-time.Duration(rng.Float64() * float64(120*24*time.Hour)))
			ev.EventTime = timestamppb.New(at)
			typ := eventlog.TypeTrack
			if i == 0 {
				typ, ev.Type = eventlog.TypeIdentify, ingestv1.EventType_EVENT_TYPE_IDENTIFY
				ev.Traits = map[string]*commonv1.Value{
					"age":     {Kind: &commonv1.Value_IntValue{IntValue: int64(18 + rng.IntN(60))}},
					"plan":    {Kind: &commonv1.Value_StringValue{StringValue: []string{"free", "plus", "pro"}[rng.IntN(3)]}},
					"country": {Kind: &commonv1.Value_StringValue{StringValue: []string{"PT", "ES", "FR", "DE"}[rng.IntN(4)]}},
					"score":   {Kind: &commonv1.Value_NumberValue{NumberValue: rng.Float64()}},
				}
			} else {
				ev.Type = ingestv1.EventType_EVENT_TYPE_TRACK
				ev.Name = names[rng.IntN(len(names))]
				ev.ItemId = "item-" + strconv.Itoa(rng.IntN(500))
				if ev.Name == "Order Completed" {
					v := 5 + 100*rng.Float64()
					ev.Value, ev.Currency = &v, "EUR"
				}
				ev.Properties = map[string]*commonv1.Value{"category": {Kind: &commonv1.Value_StringValue{StringValue: []string{"books", "music", "games"}[rng.IntN(3)]}}}
			}
			subj, _ := eventlog.EventSubject(eventlog.UserKey(user), typ)
			data, _ := proto.Marshal(ev)
			m := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}
			m.Header.Set(eventlog.HeaderMsgID, ev.MessageId)
			m.Header.Set(eventlog.HeaderType, string(typ))
			out = append(out, m)
		}
	}
	return out
}

// benchFeatures is a feature set of 20 columns: 12 aggregates, 4 traits
// and a classic RFM group.
func benchFeatures() *featurev1.FeatureSet {
	day := 24 * time.Hour
	agg := func(name string, a featurev1.Aggregation, window time.Duration, names ...string) *featurev1.Feature {
		af := &featurev1.AggregateFeature{Aggregation: a}
		if window > 0 {
			af.Window = durationpb.New(window)
		}
		if len(names) > 0 {
			af.Filter = &featurev1.EventFilter{Names: names}
		}
		return &featurev1.Feature{Name: name, Source: &featurev1.Feature_Aggregate{Aggregate: af}}
	}
	trait := func(name string, t commonv1.ValueType) *featurev1.Feature {
		return &featurev1.Feature{Name: name, Type: t, MaxAge: durationpb.New(365 * day), Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: name}}}
	}
	return &featurev1.FeatureSet{Name: "bench", Features: []*featurev1.Feature{
		agg("orders_7d", featurev1.Aggregation_AGGREGATION_COUNT, 7*day, "Order Completed"),
		agg("orders_30d", featurev1.Aggregation_AGGREGATION_COUNT, 30*day, "Order Completed"),
		agg("orders_90d", featurev1.Aggregation_AGGREGATION_COUNT, 90*day, "Order Completed"),
		agg("spend_30d", featurev1.Aggregation_AGGREGATION_SUM, 30*day, "Order Completed"),
		agg("spend_90d", featurev1.Aggregation_AGGREGATION_SUM, 90*day, "Order Completed"),
		agg("mean_order", featurev1.Aggregation_AGGREGATION_MEAN, 0, "Order Completed"),
		agg("max_order", featurev1.Aggregation_AGGREGATION_MAX, 0, "Order Completed"),
		agg("views_7d", featurev1.Aggregation_AGGREGATION_COUNT, 7*day, "Product Viewed"),
		agg("views_30d", featurev1.Aggregation_AGGREGATION_COUNT, 30*day, "Product Viewed"),
		agg("items_viewed", featurev1.Aggregation_AGGREGATION_DISTINCT_COUNT, 0, "Product Viewed"),
		agg("days_since_cart", featurev1.Aggregation_AGGREGATION_DAYS_SINCE_LAST, 0, "Added To Cart"),
		agg("active_days_30d", featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS, 30*day),
		trait("age", commonv1.ValueType_VALUE_TYPE_INT),
		trait("plan", commonv1.ValueType_VALUE_TYPE_STRING),
		trait("country", commonv1.ValueType_VALUE_TYPE_STRING),
		trait("score", commonv1.ValueType_VALUE_TYPE_NUMBER),
	}, RfmGroups: []*featurev1.RfmGroup{{}}}
}

func applyReady(ctx context.Context, c featurev1.FeatureServiceClient) error {
	resp, err := c.ApplyFeatureSet(ctx, &featurev1.ApplyFeatureSetRequest{FeatureSet: benchFeatures()})
	if err != nil {
		return err
	}
	if n := len(resp.GetFeatureSet().GetColumns()); n != 20 {
		return fmt.Errorf("the bench feature set has %d columns, want 20", n)
	}
	for {
		got, err := c.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "bench"}})
		if err != nil {
			return err
		}
		if got.GetFeatureSet().GetBackfill().GetState() == featurev1.BackfillState_BACKFILL_STATE_READY {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// load calls GetOnlineFeatures from conc goroutines for o.phase (after a
// short warm-up) and returns every call's latency and the call rate.
func load(ctx context.Context, c featurev1.FeatureServiceClient, o options, batch, conc int) ([]time.Duration, float64, error) {
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr error
	warm := time.Now().Add(300 * time.Millisecond)
	end := warm.Add(o.phase)
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var mine []time.Duration
			req := &featurev1.GetOnlineFeaturesRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "bench"}, Entities: make([]*commonv1.EntityKey, batch)}
			for time.Now().Before(end) {
				for i := range req.Entities {
					req.Entities[i] = &commonv1.EntityKey{Id: "cust-" + strconv.Itoa(rng.IntN(o.customers))}
				}
				t0 := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := c.GetOnlineFeatures(cctx, req)
				cancel()
				d := time.Since(t0)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				if t0.After(warm) {
					mine = append(mine, d)
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, 0, firstErr
	}
	if len(lats) == 0 {
		return nil, 0, fmt.Errorf("no call finished")
	}
	return lats, float64(len(lats)) / o.phase.Seconds(), nil
}
