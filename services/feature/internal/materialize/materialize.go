package materialize

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
)

// Ownership keys in etcd, each under the owner's session lease.
const (
	// MembersPrefix lists the live feature replicas: <prefix><instance>.
	MembersPrefix = "bullseye/feature/members/"
	// PartitionsPrefix names each partition's owner: <prefix><p> = instance.
	PartitionsPrefix = "bullseye/feature/partitions/"
)

// DefaultBatchSize is the most records applied in one batch. A batch writes
// each customer's profile once however many of its records it holds, so a
// consumer that falls behind catches up with fewer, bigger writes. A batch
// is whatever is stored, up to this many records: a consumer that is up to
// date applies each record as soon as it comes.
const DefaultBatchSize = 10000

// Option configures a Materializer.
type Option func(*options)

type options struct {
	instance        string
	leaseTTL        time.Duration
	batchSize       int
	maxProfileBytes int
	erasures        *eventlog.ErasureList
	pseudonymiser   *eventlog.Pseudonymiser
	loseDeliveries  func(p int, fetched []jetstream.Msg) []jetstream.Msg
	registerer      prometheus.Registerer
	logger          *slog.Logger
}

// WithLeaseTTL sets how long a dead replica keeps its partitions; at least (and by default)
// 1 s.
func WithLeaseTTL(d time.Duration) Option { return func(o *options) { o.leaseTTL = d } }

// WithBatchSize sets the most records applied at once; the default is DefaultBatchSize.
func WithBatchSize(n int) Option { return func(o *options) { o.batchSize = n } }

// WithMaxProfileBytes sets a profile's retention: the largest encoding stored, past which its
// oldest events are dropped and counted; the default is DefaultMaxProfileBytes.
func WithMaxProfileBytes(n int) Option { return func(o *options) { o.maxProfileBytes = n } }

// WithErasures makes the consumer skip the records of customers on the erasure list, which
// holds them by the keyed hash ps gives their ids; either nil leaves the list unconsulted.
func WithErasures(list *eventlog.ErasureList, ps *eventlog.Pseudonymiser) Option {
	return func(o *options) { o.erasures, o.pseudonymiser = list, ps }
}

// WithLoseDeliveries sets a fault hook: lose sees the records of each fetch of partition p
// and returns those the consumer receives, as a client that gave up on a fetch while the
// server still sent would lose the rest. Tests use it to force that interleaving.
func WithLoseDeliveries(lose func(p int, fetched []jetstream.Msg) []jetstream.Msg) Option {
	return func(o *options) { o.loseDeliveries = lose }
}

// WithRegisterer has the materialiser export its metrics to reg; by default it exports none.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.registerer = reg } }

// WithLogger sets the materialiser's logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Materializer runs the consumers of the partitions this replica owns.
type Materializer struct {
	cli     *clientv3.Client
	js      jetstream.JetStream
	events  jetstream.Stream
	store   *state.Store
	opts    options
	metrics *metrics
	log     *slog.Logger

	mu      sync.Mutex
	runners map[int]*running
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns the Materializer of replica instance, a name unique among the live replicas;
// Run starts it. The events stream must exist.
func New(ctx context.Context, cli *clientv3.Client, js jetstream.JetStream, store *state.Store, instance string, opts ...Option) (*Materializer, error) {
	if instance == "" || strings.Contains(instance, "/") {
		return nil, fmt.Errorf("materialiser instance %q: want a non-empty name without '/'", instance)
	}
	o := options{instance: instance}
	for _, opt := range opts {
		opt(&o)
	}
	if o.leaseTTL < time.Second {
		o.leaseTTL = time.Second
	}
	if o.batchSize <= 0 {
		o.batchSize = DefaultBatchSize
	}
	if o.maxProfileBytes <= 0 {
		o.maxProfileBytes = DefaultMaxProfileBytes
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	events, err := js.Stream(ctx, eventlog.EventsStream)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", eventlog.EventsStream, err)
	}
	m, err := newMetrics(o.registerer)
	if err != nil {
		return nil, fmt.Errorf("registering materialiser metrics: %w", err)
	}
	return &Materializer{cli: cli, js: js, events: events, store: store, opts: o, metrics: m, log: o.logger, runners: map[int]*running{}}, nil
}

// Owned returns the partitions this replica consumes now, in order.
func (m *Materializer) Owned() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int, 0, len(m.runners))
	for p := range m.runners {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Run takes part in partition ownership and consumes the owned partitions
// until ctx ends; then it stops its consumers and gives up its partitions
// at once, so another replica takes them without waiting for the lease.
func (m *Materializer) Run(ctx context.Context) error {
	defer m.stopAll()
	for ctx.Err() == nil {
		err := m.session(ctx)
		m.stopAll()
		if ctx.Err() != nil {
			return nil
		}
		m.log.Warn("partition ownership session ended; starting a new one", slog.Any("error", err))
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// session runs one etcd session: its keys live and die with its lease.
func (m *Materializer) session(ctx context.Context) error {
	ttl := int(m.opts.leaseTTL.Round(time.Second) / time.Second)
	sess, err := concurrency.NewSession(m.cli, concurrency.WithTTL(max(1, ttl)), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("opening an etcd session: %w", err)
	}
	defer func() {
		m.stopAll()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = m.cli.Revoke(rctx, sess.Lease())
		_ = sess.Close()
	}()
	if _, err := m.cli.Put(ctx, MembersPrefix+m.opts.instance, m.opts.instance, clientv3.WithLease(sess.Lease())); err != nil {
		return fmt.Errorf("registering as a feature replica: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := m.cli.Watch(wctx, "bullseye/feature/", clientv3.WithPrefix())
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := m.reconcile(ctx, sess); err != nil && ctx.Err() == nil {
			m.log.Warn("balancing partitions", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sess.Done():
			return errors.New("the etcd session expired")
		case <-tick.C:
		case _, ok := <-wch:
			if !ok {
				wch = m.cli.Watch(wctx, "bullseye/feature/", clientv3.WithPrefix())
			}
		}
	}
}

// preference orders partitions for an instance (rendezvous hashing), so
// that replicas prefer different partitions and a balance moves few.
func preference(instance string, p int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(instance))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(p)))
	return h.Sum64()
}

// reconcile claims free partitions up to this replica's fair share and
// releases those beyond it.
func (m *Materializer) reconcile(ctx context.Context, sess *concurrency.Session) error {
	members, err := m.cli.Get(ctx, MembersPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("listing feature replicas: %w", err)
	}
	parts, err := m.cli.Get(ctx, PartitionsPrefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("listing partition owners: %w", err)
	}
	n := max(1, len(members.Kvs))
	target := (eventlog.Partitions + n - 1) / n
	owner := map[int]string{}
	mine := map[int]bool{}
	for _, kv := range parts.Kvs {
		p, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), PartitionsPrefix))
		if err != nil {
			continue
		}
		owner[p] = string(kv.Value)
		if string(kv.Value) == m.opts.instance && clientv3.LeaseID(kv.Lease) == sess.Lease() {
			mine[p] = true
		}
	}
	// Stop consuming partitions that are no longer ours.
	for _, p := range m.Owned() {
		if !mine[p] {
			m.stop(p)
		}
	}
	var owned []int
	for p := range mine {
		owned = append(owned, p)
	}
	byPref := func(ps []int) {
		slices.SortFunc(ps, func(a, b int) int {
			pa, pb := preference(m.opts.instance, a), preference(m.opts.instance, b)
			switch {
			case pa < pb:
				return -1
			case pa > pb:
				return 1
			}
			return 0
		})
	}
	byPref(owned)
	for len(owned) > target {
		p := owned[len(owned)-1]
		owned = owned[:len(owned)-1]
		m.stop(p)
		key := PartitionsPrefix + strconv.Itoa(p)
		if _, err := m.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", m.opts.instance)).Then(clientv3.OpDelete(key)).Commit(); err != nil {
			return fmt.Errorf("releasing partition %d: %w", p, err)
		}
		m.log.Info("released partition", slog.Int("partition", p))
	}
	var free []int
	for p := 0; p < eventlog.Partitions; p++ {
		if _, taken := owner[p]; !taken {
			free = append(free, p)
		}
	}
	byPref(free)
	for _, p := range free {
		if len(owned) >= target {
			break
		}
		key := PartitionsPrefix + strconv.Itoa(p)
		resp, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, m.opts.instance, clientv3.WithLease(sess.Lease()))).
			Commit()
		if err != nil {
			return fmt.Errorf("claiming partition %d: %w", p, err)
		}
		if resp.Succeeded {
			owned = append(owned, p)
			m.log.Info("claimed partition", slog.Int("partition", p))
		}
	}
	for _, p := range owned {
		m.start(ctx, p)
	}
	m.metrics.owned.Set(float64(len(owned)))
	return nil
}

func (m *Materializer) start(ctx context.Context, p int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.runners[p]; ok {
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel, done: make(chan struct{})}
	m.runners[p] = r
	rn := &runner{m: m, part: p, log: m.log.With(slog.Int("partition", p))}
	go func() {
		defer close(r.done)
		rn.run(rctx)
	}()
}

func (m *Materializer) stop(p int) {
	m.mu.Lock()
	r := m.runners[p]
	delete(m.runners, p)
	m.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

func (m *Materializer) stopAll() {
	for _, p := range m.Owned() {
		m.stop(p)
	}
	m.metrics.owned.Set(0)
}
