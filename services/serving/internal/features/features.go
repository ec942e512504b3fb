// Package features is serving's client of the feature service: feature set columns, batched
// online lookups (which also return each customer's consent state), and the enumeration of
// customers that ScoreAudience scores.
package features

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
)

// Errors of the package; test for them with errors.Is.
var (
	// ErrLookup wraps a failed call to the feature service.
	ErrLookup = errors.New("feature lookup failed")
	// ErrNoFeatureSet: no feature set exists to check consent with.
	ErrNoFeatureSet = errors.New("no feature set to look customers up in")
)

// DefaultMaxEntities is the most entities one GetOnlineFeatures call carries, the feature
// service's default limit; larger lookups are split.
const DefaultMaxEntities = 1000

// latestTTL is how long the resolution of a feature set's latest version is trusted.
const latestTTL = 30 * time.Second

// Set is one resolved feature set version and its columns.
type Set struct {
	// Name and Version identify it; Version is never 0.
	Name    string
	Version int64
	// Columns are its output columns, in order.
	Columns []*featurev1.FeatureColumn

	index map[string]int
}

// Has reports whether the set has a column of that name.
func (s *Set) Has(name string) bool {
	_, ok := s.index[name]
	return ok
}

// Type returns the type of a column, and false when there is none of that name.
func (s *Set) Type(name string) (commonv1.ValueType, bool) {
	i, ok := s.index[name]
	if !ok {
		return 0, false
	}
	return s.Columns[i].GetType(), true
}

// Client calls the feature service. It is safe for concurrent use.
type Client struct {
	fc          featurev1.FeatureServiceClient
	maxEntities int
	timeout     time.Duration
	consent     string
	metrics     *Metrics

	mu     sync.Mutex
	sets   map[setKey]cached
	anySet cached
}

type setKey struct {
	name    string
	version int64
}

type cached struct {
	set *Set
	at  time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithMaxEntities sets the most entities per GetOnlineFeatures call; the default is
// DefaultMaxEntities.
func WithMaxEntities(n int) Option { return func(c *Client) { c.maxEntities = n } }

// WithTimeout bounds a call whose context has no deadline; the default is 5 s.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithConsentFeatureSet names the feature set whose lookups give the consent state of
// customers for models that have no feature set of their own (recommenders); the default is
// the first feature set the service lists.
func WithConsentFeatureSet(name string) Option { return func(c *Client) { c.consent = name } }

// WithMetrics has the client count its lookups in m.
func WithMetrics(m *Metrics) Option { return func(c *Client) { c.metrics = m } }

// New returns a client of the feature service.
func New(fc featurev1.FeatureServiceClient, opts ...Option) *Client {
	c := &Client{fc: fc, sets: map[setKey]cached{}}
	for _, o := range opts {
		o(c)
	}
	if c.maxEntities <= 0 {
		c.maxEntities = DefaultMaxEntities
	}
	if c.timeout <= 0 {
		c.timeout = 5 * time.Second
	}
	return c
}

func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Resolve returns a feature set version with its columns (version 0: the latest). Pinned
// versions are cached for good, the latest for a short while.
func (c *Client) Resolve(ctx context.Context, name string, version int64) (*Set, error) {
	k := setKey{name, version}
	c.mu.Lock()
	e, ok := c.sets[k]
	c.mu.Unlock()
	if ok && (version != 0 || time.Since(e.at) < latestTTL) {
		return e.set, nil
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	resp, err := c.fc.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: name, Version: version}})
	if err != nil {
		return nil, fmt.Errorf("%w: reading feature set %s version %d: %w", ErrLookup, name, version, err)
	}
	s := newSet(resp.GetFeatureSet())
	c.mu.Lock()
	c.sets[k] = cached{s, time.Now()}
	c.sets[setKey{name, s.Version}] = cached{s, time.Now()}
	c.mu.Unlock()
	return s, nil
}

func newSet(fs *featurev1.FeatureSet) *Set {
	s := &Set{Name: fs.GetName(), Version: fs.GetVersion(), Columns: fs.GetColumns(), index: map[string]int{}}
	for i, col := range s.Columns {
		s.index[col.GetName()] = i
	}
	return s
}

// ConsentSet returns the feature set whose lookups give consent states for models without a
// feature set of their own: the configured one, or else the first the service lists.
func (c *Client) ConsentSet(ctx context.Context) (*Set, error) {
	if c.consent != "" {
		return c.Resolve(ctx, c.consent, 0)
	}
	c.mu.Lock()
	e := c.anySet
	c.mu.Unlock()
	if e.set != nil && time.Since(e.at) < latestTTL {
		return e.set, nil
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	resp, err := c.fc.ListFeatureSets(ctx, &featurev1.ListFeatureSetsRequest{PageSize: 1})
	if err != nil {
		return nil, fmt.Errorf("%w: listing feature sets: %w", ErrLookup, err)
	}
	if len(resp.GetFeatureSets()) == 0 {
		return nil, ErrNoFeatureSet
	}
	s, err := c.Resolve(ctx, resp.GetFeatureSets()[0].GetName(), 0)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.anySet = cached{s, time.Now()}
	c.mu.Unlock()
	return s, nil
}

// Lookup fetches the named columns of set for the customers ids into l: one
// GetOnlineFeatures call in the packed columns layout (more only beyond MaxEntities ids, whose
// answers are concatenated). Customer i of l is ids[i], column j names[j]. l's storage is
// reused: what it held before is gone, and a failed Lookup leaves it empty.
func (c *Client) Lookup(ctx context.Context, set *Set, names []string, ids []string, l *Lookup) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	l.Reset()
	ref := &featurev1.FeatureSetRef{Name: set.Name, Version: set.Version}
	for start := 0; start < len(ids); start += c.maxEntities {
		chunk := ids[start:min(len(ids), start+c.maxEntities)]
		ents := make([]commonv1.EntityKey, len(chunk))
		ptrs := make([]*commonv1.EntityKey, len(chunk))
		for i, id := range chunk {
			ents[i].Id = id
			ptrs[i] = &ents[i]
		}
		t0 := time.Now()
		resp, err := c.fc.GetOnlineFeatures(ctx, &featurev1.GetOnlineFeaturesRequest{
			FeatureSet: ref, Entities: ptrs, FeatureNames: names, Layout: featurev1.OnlineLayout_ONLINE_LAYOUT_COLUMNS,
		})
		c.metrics.observe(set.Name, len(chunk), time.Since(t0), err)
		if err != nil {
			l.Reset()
			if status.Code(err) == codes.InvalidArgument {
				// The columns may have changed (a newer latest version): resolve again next time.
				c.forget(set)
			}
			return fmt.Errorf("%w: feature set %s version %d, %d entities: %w", ErrLookup, set.Name, set.Version, len(chunk), err)
		}
		if err := l.add(resp.GetColumns(), len(chunk), len(names), start == 0); err != nil {
			l.Reset()
			return fmt.Errorf("%w: feature set %s version %d: %w", ErrLookup, set.Name, set.Version, err)
		}
	}
	l.build()
	return nil
}

// Lookup is what Client.Lookup found: for customer i (in the order of the ids) and requested
// column j (in the order of the names), what GetOnlineFeatures says in either layout. Its
// Values are built once per lookup in storage that the next Lookup into it (or Reset) reuses:
// they must not be kept longer, nor changed. Reading a Lookup is safe from several
// goroutines; filling it is not.
type Lookup struct {
	n       int
	found   []bool
	consent []commonv1.ConsentState
	cols    []column

	// The values: vals[j*n+i] is cell (i, j); the oneof wrappers of column j are entries
	// off, off+1, ... of the slab of its kind.
	vals   []commonv1.Value
	nums   []commonv1.Value_NumberValue
	ints   []commonv1.Value_IntValue
	strs   []commonv1.Value_StringValue
	bools  []commonv1.Value_BoolValue
	times  []commonv1.Value_TimeValue
	stamps []timestamppb.Timestamp
}

// column is one requested column's packed arrays, over every chunk.
type column struct {
	typ     commonv1.ValueType
	status  []featurev1.FeatureValueStatus
	isNull  []bool
	numbers []float64
	ints    []int64
	strs    []string
	off     int
}

// Len returns the number of customers.
func (l *Lookup) Len() int { return l.n }

// Found reports whether customer i has any state at all (EntityFeatures.found).
func (l *Lookup) Found(i int) bool { return l.found[i] }

// Consent returns customer i's consent to marketing (EntityFeatures.consent).
func (l *Lookup) Consent(i int) commonv1.ConsentState { return l.consent[i] }

// Status returns the status of column j of customer i.
func (l *Lookup) Status(i, j int) featurev1.FeatureValueStatus { return l.cols[j].status[i] }

// Value returns column j of customer i as the rows layout's FeatureValue.value gives it: the
// value (PRESENT, STALE) or the column's default (NOT_FOUND, NULL), nil when there is neither.
// BOOL and TIME columns give BoolValue and TimeValue. The value belongs to l (see Lookup).
func (l *Lookup) Value(i, j int) *commonv1.Value {
	if l.cols[j].isNull[i] {
		return nil
	}
	return &l.vals[j*l.n+i]
}

// Present reports whether column j of customer i has a current value: PRESENT or STALE, and
// not null.
func (l *Lookup) Present(i, j int) bool {
	st := l.cols[j].status[i]
	return (st == featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT || st == featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_STALE) &&
		!l.cols[j].isNull[i]
}

// Reset empties l, keeping its storage but none of the replies it read.
func (l *Lookup) Reset() {
	l.n = 0
	l.found, l.consent = nil, nil
	for j := range l.cols {
		l.cols[j] = column{}
	}
	l.cols = l.cols[:0]
	// The only wrappers that point outside l's storage: drop the replies' strings.
	clear(l.strs)
}

// add appends the columns of one chunk of n entities and width requested columns, checking
// that they are whole; first starts a lookup.
func (l *Lookup) add(oc *featurev1.OnlineColumns, n, width int, first bool) error {
	if oc == nil {
		return fmt.Errorf("no columns in the reply to a lookup of %d entities in the columns layout (a feature service too old for it?)", n)
	}
	if len(oc.GetFound()) != n || len(oc.GetConsent()) != n || len(oc.GetFeatures()) != width {
		return fmt.Errorf("columns of %d found, %d consent and %d features for %d entities and %d features",
			len(oc.GetFound()), len(oc.GetConsent()), len(oc.GetFeatures()), n, width)
	}
	for j, fc := range oc.GetFeatures() {
		vals := len(fc.GetIntValues())
		switch fc.GetType() {
		case commonv1.ValueType_VALUE_TYPE_NUMBER:
			vals = len(fc.GetNumberValues())
		case commonv1.ValueType_VALUE_TYPE_STRING:
			vals = len(fc.GetStringValues())
		}
		if len(fc.GetStatus()) != n || len(fc.GetIsNull()) != n || vals != n {
			return fmt.Errorf("feature %d (%v): %d statuses, %d nulls and %d values for %d entities", j, fc.GetType(), len(fc.GetStatus()), len(fc.GetIsNull()), vals, n)
		}
		if !first && fc.GetType() != l.cols[j].typ {
			return fmt.Errorf("feature %d is %v in one reply and %v in another", j, l.cols[j].typ, fc.GetType())
		}
	}
	l.n += n
	if first {
		// One chunk, the usual case: l reads the reply's arrays in place.
		l.found, l.consent = oc.GetFound(), oc.GetConsent()
		if cap(l.cols) < width {
			l.cols = make([]column, width)
		}
		l.cols = l.cols[:width]
		for j, fc := range oc.GetFeatures() {
			l.cols[j] = column{typ: fc.GetType(), status: fc.GetStatus(), isNull: fc.GetIsNull(),
				numbers: fc.GetNumberValues(), ints: fc.GetIntValues(), strs: fc.GetStringValues()}
		}
		return nil
	}
	l.found = append(l.found, oc.GetFound()...)
	l.consent = append(l.consent, oc.GetConsent()...)
	for j, fc := range oc.GetFeatures() {
		c := &l.cols[j]
		c.status = append(c.status, fc.GetStatus()...)
		c.isNull = append(c.isNull, fc.GetIsNull()...)
		c.numbers = append(c.numbers, fc.GetNumberValues()...)
		c.ints = append(c.ints, fc.GetIntValues()...)
		c.strs = append(c.strs, fc.GetStringValues()...)
	}
	return nil
}

// build makes the Values of every cell that has one, in l's slabs: no allocation per cell.
func (l *Lookup) build() {
	n := l.n
	var nums, ints, strs, bools, times int
	for j := range l.cols {
		c := &l.cols[j]
		switch c.typ {
		case commonv1.ValueType_VALUE_TYPE_NUMBER:
			c.off, nums = nums, nums+n
		case commonv1.ValueType_VALUE_TYPE_STRING:
			c.off, strs = strs, strs+n
		case commonv1.ValueType_VALUE_TYPE_BOOL:
			c.off, bools = bools, bools+n
		case commonv1.ValueType_VALUE_TYPE_TIME:
			c.off, times = times, times+n
		default:
			c.off, ints = ints, ints+n
		}
	}
	l.vals = grow(l.vals, n*len(l.cols))
	l.nums = grow(l.nums, nums)
	l.ints = grow(l.ints, ints)
	l.strs = grow(l.strs, strs)
	l.bools = grow(l.bools, bools)
	l.times = grow(l.times, times)
	l.stamps = grow(l.stamps, times)
	for j := range l.cols {
		c := &l.cols[j]
		vals := l.vals[j*n : (j+1)*n]
		for i := range n {
			if c.isNull[i] {
				continue
			}
			k := c.off + i
			switch c.typ {
			case commonv1.ValueType_VALUE_TYPE_NUMBER:
				l.nums[k].NumberValue = c.numbers[i]
				vals[i].Kind = &l.nums[k]
			case commonv1.ValueType_VALUE_TYPE_STRING:
				l.strs[k].StringValue = c.strs[i]
				vals[i].Kind = &l.strs[k]
			case commonv1.ValueType_VALUE_TYPE_BOOL:
				l.bools[k].BoolValue = c.ints[i] != 0
				vals[i].Kind = &l.bools[k]
			case commonv1.ValueType_VALUE_TYPE_TIME:
				ts := &l.stamps[k]
				ns := c.ints[i]
				ts.Seconds, ts.Nanos = ns/1e9, int32(ns%1e9)
				if ts.Nanos < 0 {
					ts.Seconds, ts.Nanos = ts.Seconds-1, ts.Nanos+1e9
				}
				l.times[k].TimeValue = ts
				vals[i].Kind = &l.times[k]
			default:
				l.ints[k].IntValue = c.ints[i]
				vals[i].Kind = &l.ints[k]
			}
		}
	}
}

// grow returns s with length n, reusing its array when it is large enough. Entries are not
// cleared: build sets every one it hands out.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func (c *Client) forget(set *Set) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.sets {
		if e.set == set {
			delete(c.sets, k)
		}
	}
}

// Suppressed reports whether a consent state forbids scoring the customer: they objected to
// marketing or were erased.
func Suppressed(s commonv1.ConsentState) bool {
	return s == commonv1.ConsentState_CONSENT_STATE_OBJECTED || s == commonv1.ConsentState_CONSENT_STATE_ERASED
}

// ListCustomers calls fn with the ids of every known, non-erased customer, in pages of about
// pageSize, through the feature service's ListEntities. Customers who objected to marketing
// are included: the caller checks consent in its own lookups. set names the feature set the
// audience is scored with, for error messages.
func (c *Client) ListCustomers(ctx context.Context, set *Set, pageSize int, fn func(ids []string) error) error {
	stream, err := c.fc.ListEntities(ctx, &featurev1.ListEntitiesRequest{PageSize: int32(min(max(pageSize, 1), 10_000))})
	if err != nil {
		return fmt.Errorf("%w: listing the customers for %s: %w", ErrLookup, set.Name, err)
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: listing the customers for %s: %w", ErrLookup, set.Name, err)
		}
		ids := make([]string, 0, len(m.GetEntities()))
		for _, e := range m.GetEntities() {
			if t := e.GetEntityType(); t == "" || t == "customer" {
				ids = append(ids, e.GetId())
			}
		}
		if len(ids) == 0 {
			continue
		}
		if err := fn(ids); err != nil {
			return err
		}
	}
}

// Metrics count the client's lookups.
type Metrics struct {
	lookups  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	entities *prometheus.HistogramVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the lookup metrics in reg:
//
//	bullseye_serving_feature_lookups_total         GetOnlineFeatures calls, by feature set
//	bullseye_serving_feature_lookup_errors_total   failed calls
//	bullseye_serving_feature_lookup_entities       entities per call (histogram)
//	bullseye_serving_feature_lookup_seconds        call latency (histogram)
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bullseye_serving_feature_lookups_total",
			Help: "GetOnlineFeatures calls made, by feature set.",
		}, []string{"feature_set"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bullseye_serving_feature_lookup_errors_total",
			Help: "GetOnlineFeatures calls that failed, by feature set.",
		}, []string{"feature_set"}),
		entities: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bullseye_serving_feature_lookup_entities",
			Help:    "Entities per GetOnlineFeatures call.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000},
		}, []string{"feature_set"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bullseye_serving_feature_lookup_seconds",
			Help:    "GetOnlineFeatures call latency.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}, []string{"feature_set"}),
	}
	for _, col := range []prometheus.Collector{m.lookups, m.errors, m.entities, m.latency} {
		if err := reg.Register(col); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) observe(set string, n int, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.lookups.WithLabelValues(set).Inc()
	m.entities.WithLabelValues(set).Observe(float64(n))
	m.latency.WithLabelValues(set).Observe(d.Seconds())
	if err != nil {
		m.errors.WithLabelValues(set).Inc()
	}
}
