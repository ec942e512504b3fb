package materialize

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
)

// DefaultMaxProfileBytes is the default retention of a profile: the
// largest encoding stored, below NATS's default largest message (1 MiB).
const DefaultMaxProfileBytes = 900 << 10

// fetchWait bounds how long an idle consumer waits for its next record
// before it looks at its context again.
const fetchWait = 250 * time.Millisecond

// runner consumes one partition while this replica owns it.
type runner struct {
	m    *Materializer
	part int
	log  *slog.Logger
}

// item is one record of a batch.
type item struct {
	seq uint64
	key string
	sk  eventlog.Key
	ev  *ingestv1.StoredEvent
}

func (r *runner) run(ctx context.Context) {
	defer r.m.metrics.dropLag(r.part)
	for ctx.Err() == nil {
		err := r.consume(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		r.log.Warn("consuming partition; restarting from the last acknowledged record", slog.Any("error", err))
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// errDeliveryGap stops a consumer that found records delivered to it but
// never received: acknowledging anything after them would acknowledge them
// too (the acknowledgements are cumulative), and they would never be
// applied.
var errDeliveryGap = errors.New("records were delivered but not received; restarting from the last acknowledged record so they come again")

// consumer returns the partition's durable consumer and the delivery
// sequence of its next record, recreating it just after its acknowledged
// floor when a previous owner left records unacknowledged (so they come
// again at once, not after the ack wait).
func (r *runner) consumer(ctx context.Context) (jetstream.Consumer, uint64, error) {
	name := ConsumerName(r.part)
	start := uint64(0)
	c, err := r.m.events.Consumer(ctx, name)
	switch {
	case err == nil:
		info, err := c.Info(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("reading consumer %s: %w", name, err)
		}
		if info.NumAckPending == 0 {
			return c, info.Delivered.Consumer + 1, nil
		}
		start = info.AckFloor.Stream + 1
		if err := r.m.events.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, 0, fmt.Errorf("resetting consumer %s: %w", name, err)
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, 0, fmt.Errorf("opening consumer %s: %w", name, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "Bullseye feature materialisation of partition " + strconv.Itoa(r.part),
		FilterSubject: eventlog.PartitionFilter(r.part),
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       time.Minute,
		MaxAckPending: -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if start > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	c, err = r.m.events.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("creating consumer %s: %w", name, err)
	}
	return c, c.CachedInfo().Delivered.Consumer + 1, nil
}

func (r *runner) consume(ctx context.Context) error {
	c, next, err := r.consumer(ctx)
	if err != nil {
		return err
	}
	// Whatever is there, up to a batch, at once; when nothing is, wait for
	// the next record and take what came with it. A record is then applied
	// as soon as it is stored, and a consumer that is behind still applies
	// full batches. A fetch asks for about twice as many records as the
	// last one said were pending (its metadata; more have come since): a
	// fetch of n records costs about 32n bytes of buffers however few come.
	batch := r.m.opts.batchSize
	ask := func(pending uint64) int { return int(min(uint64(batch), max(2*pending, 256))) }
	pending := uint64(batch) // unknown at first: perhaps a backlog
	var msgs []jetstream.Msg
	idleChecked := true
	for ctx.Err() == nil {
		// The last batch's records go with it: the array is kept, its
		// references are not (a batch can hold thousands of messages).
		clear(msgs)
		msgs = msgs[:0]
		var err error
		if pending > 0 {
			if msgs, err = r.fetch(c, msgs, ask(pending), false); err != nil {
				return err
			}
		}
		if len(msgs) == 0 {
			r.m.metrics.setLag(r.part, 0)
			if msgs, err = r.fetch(c, msgs, 1, true); err != nil {
				return err
			}
			if len(msgs) == 0 {
				pending = 0
				// Records delivered after the client gave up on a fetch
				// show as a gap when the next record comes; at the end of
				// a burst none may come, so ask the server once.
				if idleChecked {
					continue
				}
				idleChecked = true
				if lost, err := r.deliveredUnseen(ctx, c, next); err != nil || lost {
					if lost {
						r.m.metrics.gaps.Inc()
						r.log.Warn("records were delivered but not received at the end of a burst", slog.Uint64("expected_delivery", next))
						return errDeliveryGap
					}
					return err
				}
				continue
			}
			if md, err := msgs[0].Metadata(); err == nil && md.NumPending > 0 && batch > 1 {
				if msgs, err = r.fetch(c, msgs, ask(md.NumPending)-1, false); err != nil {
					return err
				}
			}
		}
		idleChecked = false
		msgs, gap := received(msgs, &next)
		if gap {
			r.m.metrics.gaps.Inc()
			r.log.Warn("a fetch lost deliveries", slog.Uint64("expected_delivery", next), slog.Int("received_before_gap", len(msgs)))
		}
		if len(msgs) == 0 {
			return errDeliveryGap
		}
		start := time.Now()
		if err := r.apply(ctx, msgs); err != nil {
			return err
		}
		last := msgs[len(msgs)-1]
		if err := last.DoubleAck(ctx); err != nil {
			return fmt.Errorf("acknowledging partition %d up to its record %s: %w", r.part, msgID(last), err)
		}
		r.m.metrics.batch.Observe(time.Since(start).Seconds())
		if gap {
			return errDeliveryGap
		}
		pending = uint64(batch)
		if md, err := last.Metadata(); err == nil {
			r.m.metrics.setLag(r.part, md.NumPending)
			pending = md.NumPending
		}
	}
	return nil
}

// fetch appends to msgs up to n records of c: those there now, or with
// wait the first to come within fetchWait.
func (r *runner) fetch(c jetstream.Consumer, msgs []jetstream.Msg, n int, wait bool) ([]jetstream.Msg, error) {
	var batch jetstream.MessageBatch
	var err error
	if wait {
		batch, err = c.Fetch(n, jetstream.FetchMaxWait(fetchWait))
	} else {
		batch, err = c.FetchNoWait(n)
	}
	if err != nil {
		return msgs, fmt.Errorf("fetching from partition %d: %w", r.part, err)
	}
	got := 0
	for msg := range batch.Messages() {
		msgs = append(msgs, msg)
		got++
	}
	if lose := r.m.opts.loseDeliveries; lose != nil && got > 0 {
		kept := lose(r.part, msgs[len(msgs)-got:])
		msgs = append(msgs[:len(msgs)-got], kept...)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && got == 0 {
		return msgs, fmt.Errorf("fetching from partition %d: %w", r.part, err)
	}
	return msgs, nil
}

// deliveredUnseen reports whether the consumer delivered records from
// delivery sequence next on that this runner never received.
func (r *runner) deliveredUnseen(ctx context.Context, c jetstream.Consumer, next uint64) (bool, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("reading consumer %s: %w", ConsumerName(r.part), err)
	}
	return info.Delivered.Consumer >= next, nil
}

// received returns the records of msgs up to the first one whose delivery
// sequence is not next (records the server delivered in between never
// came), advancing next past those returned; gap says whether msgs was cut.
// A record with unreadable metadata counts as a gap too: it cannot be
// placed.
func received(msgs []jetstream.Msg, next *uint64) (_ []jetstream.Msg, gap bool) {
	for i, m := range msgs {
		md, err := m.Metadata()
		if err != nil || md.Sequence.Consumer != *next {
			return msgs[:i], true
		}
		*next++
	}
	return msgs, false
}

func msgID(m jetstream.Msg) string {
	if md, err := m.Metadata(); err == nil {
		return strconv.FormatUint(md.Sequence.Stream, 10)
	}
	return "?"
}

// group is the pending change of one profile in a batch.
type group struct {
	key   string
	sk    eventlog.Key
	rev   uint64
	app   *profile.Appender // the stored profile with the batch's records applied
	data  []byte            // app's encoding, as written
	items []item
	dirty bool
}

// apply applies msgs, in order, and stores every changed profile.
func (r *runner) apply(ctx context.Context, msgs []jetstream.Msg) error {
	items := make([]item, 0, len(msgs))
	keys := make([]string, 0, len(msgs))
	seen := make(map[string]struct{}, len(msgs))
	for _, msg := range msgs {
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("reading record metadata: %w", err)
		}
		it, ok := r.decode(msg, md.Sequence.Stream)
		if !ok {
			continue
		}
		items = append(items, it)
		if _, dup := seen[it.key]; !dup {
			seen[it.key] = struct{}{}
			keys = append(keys, it.key)
		}
	}
	// Read the batch's profiles into the cache at once rather than one
	// round trip per customer not cached yet.
	if err := r.m.store.Entries(ctx, keys, make([]*state.Entry, len(keys))); err != nil {
		return err
	}
	groups := map[string]*group{}
	var order []*group
	for _, it := range items {
		if it.ev.GetType() == ingestv1.EventType_EVENT_TYPE_ERASURE {
			if err := r.flush(ctx, order); err != nil {
				return err
			}
			groups, order = map[string]*group{}, nil
			if err := r.erase(ctx, it); err != nil {
				return err
			}
			continue
		}
		g := groups[it.key]
		if g == nil {
			// Checked once per customer and batch: an erasure within the
			// batch starts new groups, and one that reaches the list
			// otherwise is followed by its erasure record.
			if r.erased(it.sk.ID) {
				r.m.metrics.skipped.WithLabelValues("erased").Inc()
				continue
			}
			data, rev, err := r.m.store.GetEncoded(ctx, it.key)
			if err != nil {
				return err
			}
			g = &group{key: it.key, sk: it.sk, rev: rev}
			if g.app, err = profile.NewAppender(it.sk, data); err != nil {
				return fmt.Errorf("reading profile %s: %w", it.key, err)
			}
			groups[it.key] = g
			order = append(order, g)
		}
		g.items = append(g.items, it)
		if g.app.Apply(it.seq, it.ev) {
			g.dirty = true
			r.m.metrics.applied.Inc()
		} else {
			r.m.metrics.skipped.WithLabelValues("duplicate").Inc()
		}
	}
	return r.flush(ctx, order)
}

func (r *runner) decode(msg jetstream.Msg, seq uint64) (item, bool) {
	info, err := eventlog.ParseEventSubject(msg.Subject())
	if err != nil {
		r.log.Error("skipping a record on an unknown subject", slog.Uint64("seq", seq), slog.Any("error", err))
		r.m.metrics.skipped.WithLabelValues("undecodable").Inc()
		return item{}, false
	}
	ev := &ingestv1.StoredEvent{}
	if err := ev.UnmarshalVT(msg.Data()); err != nil {
		r.log.Error("skipping an undecodable record", slog.Uint64("seq", seq), slog.Any("error", err))
		r.m.metrics.skipped.WithLabelValues("undecodable").Inc()
		return item{}, false
	}
	key, err := state.KeyOf(info.Key)
	if err != nil {
		r.m.metrics.skipped.WithLabelValues("undecodable").Inc()
		return item{}, false
	}
	return item{seq: seq, key: key, sk: info.Key, ev: ev}, true
}

// erased reports whether id is on the erasure list. Its keyed hash is
// computed only when the list is not empty.
func (r *runner) erased(id string) bool {
	if r.m.opts.erasures == nil || r.m.opts.pseudonymiser == nil || r.m.opts.erasures.Len() == 0 {
		return false
	}
	return r.m.opts.erasures.Contains(r.m.opts.pseudonymiser.SubjectHash(id))
}

// flush stores every changed profile of a batch with compare-and-set
// writes, redoing a profile whose write lost (its partition moved and came
// back, or a previous owner was still writing).
func (r *runner) flush(ctx context.Context, groups []*group) error {
	todo := make([]*group, 0, len(groups))
	for _, g := range groups {
		if g.dirty {
			todo = append(todo, g)
		}
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == 5 {
			return fmt.Errorf("storing profiles of partition %d: compare-and-set lost %d times", r.part, attempt)
		}
		futures := make([]jetstream.PubAckFuture, len(todo))
		for i, g := range todo {
			var err error
			if g.data, err = r.encode(g); err != nil {
				return fmt.Errorf("storing profile %s: %w", g.key, err)
			}
			m := &nats.Msg{Subject: state.Subject(g.key), Data: g.data, Header: nats.Header{}}
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(g.rev, 10))
			f, err := r.m.js.PublishMsgAsync(m)
			if err != nil {
				return fmt.Errorf("storing profile %s: %w", g.key, err)
			}
			futures[i] = f
		}
		var again []*group
		var errs []error
		for i, f := range futures {
			g := todo[i]
			select {
			case ack := <-f.Ok():
				r.m.store.Remember(g.key, g.data, ack.Sequence)
			case err := <-f.Err():
				var apiErr *jetstream.APIError
				if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
					r.m.metrics.conflicts.Inc()
					again = append(again, g)
					continue
				}
				errs = append(errs, fmt.Errorf("storing profile %s: %w", g.key, err))
			case <-ctx.Done():
				return fmt.Errorf("storing profiles of partition %d: %w", r.part, ctx.Err())
			case <-time.After(30 * time.Second):
				return fmt.Errorf("storing profiles of partition %d: no acknowledgement in 30s", r.part)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		for _, g := range again {
			data, rev, err := r.m.store.FetchEncoded(ctx, g.key)
			if err != nil {
				return err
			}
			g.rev = rev
			if g.app, err = profile.NewAppender(g.sk, data); err != nil {
				return fmt.Errorf("reading profile %s: %w", g.key, err)
			}
			g.dirty = false
			for _, it := range g.items {
				if g.app.Apply(it.seq, it.ev) {
					g.dirty = true
				}
			}
		}
		todo = todo[:0]
		for _, g := range again {
			if g.dirty {
				todo = append(todo, g)
			}
		}
	}
	return nil
}

// encode returns g's profile encoded. Past the retention (MaxProfileBytes)
// its oldest events are dropped, a tenth at a time, and counted per name in
// the profile, where training-set summaries and reconciliation report them.
func (r *runner) encode(g *group) ([]byte, error) {
	data := g.app.Bytes()
	if len(data) <= r.m.opts.maxProfileBytes {
		return data, nil
	}
	p, err := profile.Decode(data, nil)
	if err != nil {
		return nil, err
	}
	dropped := 0
	for len(data) > r.m.opts.maxProfileBytes && len(p.Events) > 0 {
		drop := max(1, len(p.Events)/10)
		p.DropOldest(drop)
		dropped += drop
		data = profile.Encode(data[:0], p)
	}
	r.m.metrics.skipped.WithLabelValues("retention").Add(float64(dropped))
	r.log.Warn("profile past its retention: dropped its oldest events, counted in the profile", slog.Int("dropped", dropped), slog.Int("max_profile_bytes", r.m.opts.maxProfileBytes))
	return data, nil
}

// erase applies an erasure record as the eventlog protocol says: delete the
// state (and its history), report ErasureApplied, delete the record.
func (r *runner) erase(ctx context.Context, it item) error {
	keys := int64(0)
	_, err := r.m.store.KV().Get(ctx, it.key)
	switch {
	case err == nil:
		keys = 1
		if err := r.m.store.KV().Purge(ctx, it.key); err != nil {
			return fmt.Errorf("erasing profile %s: %w", it.key, err)
		}
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return fmt.Errorf("erasing profile %s: %w", it.key, err)
	}
	if err := r.m.store.Evict(it.key); err != nil {
		return err
	}
	// The purge leaves a marker that still names the key: remove every
	// message of the key, marker included.
	if _, err := eventlog.Purge(ctx, r.m.js, state.StreamName, state.Subject(it.key)); err != nil {
		return fmt.Errorf("erasing the history of profile %s: %w", it.key, err)
	}
	applied, err := json.Marshal(eventlog.ErasureApplied{
		ErasureID:     it.ev.GetErasureId(),
		SubjectHash:   it.ev.GetSubjectHash(),
		EventSequence: it.seq,
		KeysDeleted:   keys,
		AppliedTime:   time.Now().UTC(),
		Instance:      r.m.opts.instance,
	})
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: eventlog.AuditAppliedSubject(it.ev.GetErasureId()), Data: applied, Header: nats.Header{}}
	msg.Header.Set(eventlog.HeaderMsgID, "applied-"+it.ev.GetErasureId()+"-"+strconv.FormatUint(it.seq, 10))
	if _, err := r.m.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("reporting erasure %s applied: %w", it.ev.GetErasureId(), err)
	}
	if err := r.m.events.DeleteMsg(ctx, it.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeMessageNotFound {
			return fmt.Errorf("deleting erasure record %d: %w", it.seq, err)
		}
	}
	r.m.metrics.erasures.Inc()
	r.log.Info("erasure applied", slog.String("erasure_id", it.ev.GetErasureId()), slog.Int64("keys_deleted", keys))
	return nil
}
