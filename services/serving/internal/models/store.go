// Package models holds the model versions a serving instance serves and routes requests to
// them. It follows the registry's routing states (pkg/registry's Watch), loads and warms
// every version a model needs — its live versions, shadow versions and the versions its
// aliases name — before a routing state that uses it takes effect, switches the routing
// atomically, and drains the versions no longer used: a request holds a Lease on the versions
// it uses, and a version is released only when no lease holds it, so no request fails
// because a model is being replaced.
package models

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// ErrNotLoaded: the model, version or alias asked for is not loaded here (unknown, not live,
// still loading, failed), or the model has nothing live. A *NotLoadedError says which.
var ErrNotLoaded = errors.New("model not loaded")

// NotLoadedError is an ErrNotLoaded error.
type NotLoadedError struct {
	// Message says what is not loaded, for people.
	Message string
}

// Error returns the message.
func (e *NotLoadedError) Error() string { return e.Message }

// Is makes NotLoadedError match ErrNotLoaded.
func (e *NotLoadedError) Is(target error) bool { return target == ErrNotLoaded }

func notLoaded(format string, args ...any) error {
	return &NotLoadedError{Message: fmt.Sprintf(format, args...)}
}

// Source is the registry as the store uses it; *registry.Registry is one.
type Source interface {
	// Watch follows every model's routing state.
	Watch(ctx context.Context) <-chan registry.Update
	// Version returns a registered version's metadata.
	Version(ctx context.Context, name string, n int64) (*trainingv1.ModelVersion, error)
	// LoadArtifact reads and verifies a version's artifact.
	LoadArtifact(ctx context.Context, v *trainingv1.ModelVersion) (*trainingv1.ModelArtifact, error)
}

// Builder turns a verified artifact into a loaded model with its queue.
type Builder func(a *trainingv1.ModelArtifact) (*scoring.Model, error)

// Options configure a Store.
type Options struct {
	// RetryInterval is how often versions that failed to load are tried again; 0 means 10 s.
	RetryInterval time.Duration
	// LoadTimeout bounds the loading and warm-up of one version; 0 means 1 minute.
	LoadTimeout time.Duration
	// Logger logs loads, switches and drains.
	Logger *slog.Logger
	// Registerer, when set, receives the bullseye_serving_model_versions gauge.
	Registerer prometheus.Registerer
}

// Store is the model versions of one serving instance. It is safe for concurrent use.
type Store struct {
	src    Source
	build  Builder
	opts   Options
	logger *slog.Logger
	gauge  *prometheus.GaugeVec

	mu     sync.RWMutex
	models map[string]*model

	ready     chan struct{}
	readyOnce sync.Once
	drains    sync.WaitGroup
}

// New returns a store that follows src and loads versions with build. Call Run.
func New(src Source, build Builder, opts Options) (*Store, error) {
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 10 * time.Second
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{src: src, build: build, opts: opts, logger: opts.Logger, models: map[string]*model{}, ready: make(chan struct{})}
	if opts.Registerer != nil {
		s.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bullseye_serving_model_versions",
			Help: "Model versions held, by model and state (loading, available, unloading, failed).",
		}, []string{"model", "state"})
		if err := opts.Registerer.Register(s.gauge); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			s.gauge = are.ExistingCollector.(*prometheus.GaugeVec)
		}
	}
	return s, nil
}

// model is one model's versions and routing.
type model struct {
	name  string
	route atomic.Pointer[route]

	mu       sync.Mutex
	routing  *trainingv1.RegisteredModel // the routing state last applied
	task     trainingv1.TaskKind
	versions map[int64]*version // held and not draining
	draining map[*version]struct{}
}

// version is one held version. Its state fields are guarded by its model's mu.
type version struct {
	num     int64
	mv      *trainingv1.ModelVersion
	sm      *scoring.Model
	state   servingv1.ModelState
	problem *commonv1.Problem
	loaded  time.Time
	took    time.Duration

	refs atomic.Int64 // leases holding it, plus retiring and closed bits
	gone func()       // called once when closed
}

const (
	retiring = int64(1) << 61
	closed   = int64(1) << 62
)

// acquire takes a reference unless the version is closed.
func (v *version) acquire() bool {
	for {
		s := v.refs.Load()
		if s&closed != 0 {
			return false
		}
		if v.refs.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

func (v *version) release() {
	if v.refs.Add(-1) == retiring && v.refs.CompareAndSwap(retiring, closed) {
		v.gone()
	}
}

// retire marks the version as leaving; it closes once no lease holds it.
func (v *version) retire() {
	if old := v.refs.Or(retiring); old&^retiring == 0 && v.refs.CompareAndSwap(retiring, closed) {
		v.gone()
	}
}

// revive takes back a retirement that has not closed the version yet.
func (v *version) revive() bool {
	for {
		s := v.refs.Load()
		if s&closed != 0 {
			return false
		}
		if v.refs.CompareAndSwap(s, s&^retiring) {
			return true
		}
	}
}

// route is one immutable routing of a model to its loaded versions.
type route struct {
	live     []split
	total    uint64
	top      *version
	shadows  []*version
	aliases  map[string]*version
	byNum    map[int64]*version
	revision int64
}

type split struct {
	v    *version
	upTo uint64 // cumulative weight
}

// Ready is closed once the routing states present at start are applied: their versions
// loaded (or failed).
func (s *Store) Ready() <-chan struct{} { return s.ready }

// Run follows the registry until ctx is done, then returns ctx's error.
func (s *Store) Run(ctx context.Context) error {
	updates := s.src.Watch(ctx)
	ticker := time.NewTicker(s.opts.RetryInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-updates:
			if !ok {
				return ctx.Err()
			}
			s.applyUpdate(ctx, u)
			if u.Full {
				s.readyOnce.Do(func() { close(s.ready) })
			}
		case <-ticker.C:
			s.retryFailed(ctx)
		}
	}
}

func (s *Store) applyUpdate(ctx context.Context, u registry.Update) {
	seen := map[string]bool{}
	for _, rm := range u.Models {
		seen[rm.GetName()] = true
		s.apply(ctx, rm)
	}
	if !u.Full {
		return
	}
	s.mu.RLock()
	var gone []string
	for name := range s.models {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	s.mu.RUnlock()
	for _, name := range gone {
		s.apply(ctx, &trainingv1.RegisteredModel{Name: name})
	}
}

func (s *Store) retryFailed(ctx context.Context) {
	s.mu.RLock()
	var again []*trainingv1.RegisteredModel
	for _, m := range s.models {
		m.mu.Lock()
		for _, v := range m.versions {
			if v.state == servingv1.ModelState_MODEL_STATE_FAILED {
				again = append(again, m.routing)
				break
			}
		}
		m.mu.Unlock()
	}
	s.mu.RUnlock()
	for _, rm := range again {
		s.apply(ctx, rm)
	}
}

// desired returns the versions a routing state uses: live, shadow and aliased.
func desired(rm *trainingv1.RegisteredModel) map[int64]bool {
	d := map[int64]bool{}
	for _, vw := range rm.GetLive().GetVersions() {
		d[vw.GetVersion()] = true
	}
	for _, v := range rm.GetShadow().GetVersions() {
		d[v] = true
	}
	for _, v := range rm.GetAliases() {
		d[v] = true
	}
	return d
}

// apply brings one model to a routing state: load what it needs, switch, drain the rest.
func (s *Store) apply(ctx context.Context, rm *trainingv1.RegisteredModel) {
	name := rm.GetName()
	s.mu.Lock()
	m := s.models[name]
	if m == nil {
		m = &model{name: name, versions: map[int64]*version{}, draining: map[*version]struct{}{}}
		s.models[name] = m
	}
	s.mu.Unlock()

	want := desired(rm)
	var toLoad []*version
	m.mu.Lock()
	m.routing = rm
	if rm.GetTask() != trainingv1.TaskKind_TASK_KIND_UNSPECIFIED {
		m.task = rm.GetTask()
	}
	for n := range want {
		v := m.versions[n]
		if v != nil && v.state != servingv1.ModelState_MODEL_STATE_FAILED {
			continue
		}
		if v == nil {
			// A version draining since a recent switch may be taken back.
			for dv := range m.draining {
				if dv.num == n && dv.revive() {
					delete(m.draining, dv)
					dv.state = servingv1.ModelState_MODEL_STATE_AVAILABLE
					m.versions[n] = dv
					v = dv
					break
				}
			}
			if v != nil {
				continue
			}
		}
		v = &version{num: n, state: servingv1.ModelState_MODEL_STATE_LOADING}
		m.versions[n] = v
		toLoad = append(toLoad, v)
	}
	m.mu.Unlock()
	s.updateGauge(m)

	slices.SortFunc(toLoad, func(a, b *version) int { return int(a.num - b.num) })
	for _, v := range toLoad {
		s.load(ctx, m, v)
	}

	m.mu.Lock()
	if m.routing != rm {
		// A later routing state was applied meanwhile (a retry); it decided.
		m.mu.Unlock()
		return
	}
	prev := m.route.Load()
	r := s.buildRoute(m, rm, prev)
	m.route.Store(r)
	var retired []*version
	inRoute := map[*version]bool{}
	for _, v := range r.byNum {
		inRoute[v] = true
	}
	for n, v := range m.versions {
		if inRoute[v] || (want[n] && v.state != servingv1.ModelState_MODEL_STATE_AVAILABLE) {
			continue
		}
		delete(m.versions, n)
		if v.sm == nil {
			continue
		}
		v.state = servingv1.ModelState_MODEL_STATE_UNLOADING
		m.draining[v] = struct{}{}
		retired = append(retired, v)
	}
	m.mu.Unlock()
	if len(toLoad) > 0 || len(retired) > 0 || prev == nil || prev.revision != r.revision {
		s.logger.Info("model routing applied", slog.String("model", name), slog.Int64("revision", r.revision),
			slog.String("live", describeLive(r)), slog.Int("loaded", len(toLoad)), slog.Int("draining", len(retired)))
	}
	for _, v := range retired {
		v.retire()
	}
	s.updateGauge(m)
}

func describeLive(r *route) string {
	out := ""
	prev := uint64(0)
	for i, sp := range r.live {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprintf("v%d:%d", sp.v.num, sp.upTo-prev)
		prev = sp.upTo
	}
	return out
}

// buildRoute makes the routing of rm over the available versions. A live split none of
// whose versions could be loaded keeps the previous live versions: a failed load never takes
// a model out of service.
func (s *Store) buildRoute(m *model, rm *trainingv1.RegisteredModel, prev *route) *route {
	r := &route{aliases: map[string]*version{}, byNum: map[int64]*version{}, revision: rm.GetRevision()}
	avail := func(n int64) *version {
		if v := m.versions[n]; v != nil && v.state == servingv1.ModelState_MODEL_STATE_AVAILABLE {
			return v
		}
		return nil
	}
	splits := slices.Clone(rm.GetLive().GetVersions())
	slices.SortFunc(splits, func(a, b *trainingv1.VersionWeight) int { return int(a.GetVersion() - b.GetVersion()) })
	var topW uint32
	for _, vw := range splits {
		v := avail(vw.GetVersion())
		if v == nil || vw.GetWeight() == 0 {
			continue
		}
		r.total += uint64(vw.GetWeight())
		r.live = append(r.live, split{v: v, upTo: r.total})
		if vw.GetWeight() > topW {
			r.top, topW = v, vw.GetWeight()
		}
	}
	if len(r.live) == 0 && len(splits) > 0 && prev != nil && len(prev.live) > 0 {
		s.logger.Warn("no live version of the new routing could be loaded; keeping the previous live versions", slog.String("model", m.name))
		r.live, r.total, r.top = prev.live, prev.total, prev.top
		for _, sp := range r.live {
			m.versions[sp.v.num] = sp.v
		}
	}
	for _, sp := range r.live {
		r.byNum[sp.v.num] = sp.v
	}
	for _, n := range rm.GetShadow().GetVersions() {
		if v := avail(n); v != nil {
			r.shadows = append(r.shadows, v)
			r.byNum[n] = v
		}
	}
	for a, n := range rm.GetAliases() {
		if v := avail(n); v != nil {
			r.aliases[a] = v
			r.byNum[n] = v
		}
	}
	return r
}

// load fetches, verifies, loads and warms one version.
func (s *Store) load(ctx context.Context, m *model, v *version) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.LoadTimeout)
	defer cancel()
	start := time.Now()
	mv, sm, err := s.loadVersion(ctx, m.name, v.num)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		v.state = servingv1.ModelState_MODEL_STATE_FAILED
		v.problem = &commonv1.Problem{Reason: "LOAD_FAILED", Description: err.Error()}
		v.mv = mv
		s.logger.Error("loading a model version failed", slog.String("model", m.name), slog.Int64("version", v.num), slog.Any("error", err))
		return
	}
	v.mv, v.sm = mv, sm
	v.state, v.problem = servingv1.ModelState_MODEL_STATE_AVAILABLE, nil
	v.loaded, v.took = time.Now(), time.Since(start)
	v.gone = func() { s.drain(m, v) }
	if m.task == trainingv1.TaskKind_TASK_KIND_UNSPECIFIED {
		m.task = sm.Task
	}
	s.logger.Info("model version loaded", slog.String("model", m.name), slog.Int64("version", v.num), slog.Duration("took", v.took))
}

func (s *Store) loadVersion(ctx context.Context, name string, n int64) (*trainingv1.ModelVersion, *scoring.Model, error) {
	mv, err := s.src.Version(ctx, name, n)
	if err != nil {
		return nil, nil, err
	}
	a, err := s.src.LoadArtifact(ctx, mv)
	if err != nil {
		return mv, nil, err
	}
	sm, err := s.build(a)
	if err != nil {
		return mv, nil, err
	}
	if err := sm.Warm(ctx); err != nil {
		sm.Close()
		sm.Wait()
		return mv, nil, fmt.Errorf("warming up: %w", err)
	}
	return mv, sm, nil
}

// drain releases a closed version once its queue is empty.
func (s *Store) drain(m *model, v *version) {
	s.drains.Add(1)
	go func() {
		defer s.drains.Done()
		v.sm.Close()
		v.sm.Wait()
		m.mu.Lock()
		delete(m.draining, v)
		m.mu.Unlock()
		s.updateGauge(m)
		s.logger.Info("model version unloaded", slog.String("model", m.name), slog.Int64("version", v.num))
	}()
}

// Close takes every model out of service and waits, up to ctx, for their versions to drain.
// Call it after the server has stopped taking requests.
func (s *Store) Close(ctx context.Context) error {
	s.mu.RLock()
	ms := slices.Collect(maps.Values(s.models))
	s.mu.RUnlock()
	for _, m := range ms {
		m.mu.Lock()
		m.route.Store(nil)
		var retired []*version
		for n, v := range m.versions {
			delete(m.versions, n)
			if v.sm != nil {
				v.state = servingv1.ModelState_MODEL_STATE_UNLOADING
				m.draining[v] = struct{}{}
				retired = append(retired, v)
			}
		}
		m.mu.Unlock()
		for _, v := range retired {
			v.retire()
		}
	}
	// Leases still held (shadow scoring) close their versions when released; once none is
	// left, no drain can start any more.
	for s.draining() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("draining the models: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.drains.Wait()
	return nil
}

// draining counts the versions still draining.
func (s *Store) draining() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, m := range s.models {
		m.mu.Lock()
		n += len(m.draining)
		m.mu.Unlock()
	}
	return n
}

func (s *Store) updateGauge(m *model) {
	if s.gauge == nil {
		return
	}
	counts := map[servingv1.ModelState]int{}
	m.mu.Lock()
	for _, v := range m.versions {
		counts[v.state]++
	}
	for v := range m.draining {
		counts[v.state]++
	}
	m.mu.Unlock()
	for _, st := range []servingv1.ModelState{servingv1.ModelState_MODEL_STATE_LOADING, servingv1.ModelState_MODEL_STATE_AVAILABLE,
		servingv1.ModelState_MODEL_STATE_UNLOADING, servingv1.ModelState_MODEL_STATE_FAILED} {
		s.gauge.WithLabelValues(m.name, stateName(st)).Set(float64(counts[st]))
	}
}

func stateName(st servingv1.ModelState) string {
	switch st {
	case servingv1.ModelState_MODEL_STATE_LOADING:
		return "loading"
	case servingv1.ModelState_MODEL_STATE_AVAILABLE:
		return "available"
	case servingv1.ModelState_MODEL_STATE_UNLOADING:
		return "unloading"
	}
	return "failed"
}

// Lease holds the versions one request uses, so that none is released under it.
type Lease struct {
	route  *route
	pinned *version
	held   []*version
	refs   atomic.Int32
}

// Acquire returns a lease on the versions a model reference selects: the pinned or aliased
// version, or the live versions with the shadow versions. It fails with ErrNotLoaded.
func (s *Store) Acquire(ref *commonv1.ModelRef) (*Lease, error) {
	s.mu.RLock()
	m := s.models[ref.GetName()]
	s.mu.RUnlock()
	if m == nil {
		return nil, notLoaded("model %q is not loaded here", ref.GetName())
	}
	for {
		r := m.route.Load()
		if r == nil {
			return nil, notLoaded("model %q is not loaded here", ref.GetName())
		}
		l := &Lease{route: r}
		switch sel := ref.GetSelector().(type) {
		case *commonv1.ModelRef_Version:
			l.pinned = r.byNum[sel.Version]
			if l.pinned == nil {
				return nil, notLoaded("version %d of model %q is not loaded here", sel.Version, ref.GetName())
			}
			l.held = []*version{l.pinned}
		case *commonv1.ModelRef_Alias:
			l.pinned = r.aliases[sel.Alias]
			if l.pinned == nil {
				return nil, notLoaded("alias %q of model %q names no version loaded here", sel.Alias, ref.GetName())
			}
			l.held = []*version{l.pinned}
		default:
			if len(r.live) == 0 {
				return nil, notLoaded("model %q has no live version loaded here", ref.GetName())
			}
			l.held = make([]*version, 0, len(r.live)+len(r.shadows))
			for _, sp := range r.live {
				l.held = append(l.held, sp.v)
			}
			l.held = append(l.held, r.shadows...)
		}
		if l.acquireAll() {
			l.refs.Store(1)
			return l, nil
		}
		// A version closed under this route: a newer route exists; use it.
	}
}

func (l *Lease) acquireAll() bool {
	for i, v := range l.held {
		if !v.acquire() {
			for _, u := range l.held[:i] {
				u.release()
			}
			return false
		}
	}
	return true
}

// Retain adds a holder to the lease (e.g. shadow scoring that outlives the request).
func (l *Lease) Retain() { l.refs.Add(1) }

// Release drops a holder; the last one releases the versions.
func (l *Lease) Release() {
	if l.refs.Add(-1) == 0 {
		for _, v := range l.held {
			v.release()
		}
	}
}

// Pinned reports whether the reference selected one version (by number or alias).
func (l *Lease) Pinned() bool { return l.pinned != nil }

// Top returns the pinned version, or the live version with the largest share: the version
// for rows without a user id.
func (l *Lease) Top() *scoring.Model {
	if l.pinned != nil {
		return l.pinned.sm
	}
	return l.route.top.sm
}

// For returns the version that answers a customer: the pinned version, or the live version
// the stable hash of the user id selects in the traffic split (Top without a user id).
func (l *Lease) For(userID string) *scoring.Model {
	if l.pinned != nil {
		return l.pinned.sm
	}
	if userID == "" || len(l.route.live) == 1 {
		return l.Top()
	}
	h := Hash(userID) % l.route.total
	for _, sp := range l.route.live {
		if h < sp.upTo {
			return sp.v.sm
		}
	}
	return l.Top()
}

// Shadows returns the shadow versions (none with a pinned version).
func (l *Lease) Shadows() []*scoring.Model {
	if l.pinned != nil || len(l.route.shadows) == 0 {
		return nil
	}
	out := make([]*scoring.Model, len(l.route.shadows))
	for i, v := range l.route.shadows {
		out[i] = v.sm
	}
	return out
}

// Hash is the stable hash of a user id that places the user in a traffic split: FNV-1a,
// finished with a 64-bit mixer so that its low bits are well spread.
func Hash(userID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(userID))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Status returns the model as this instance holds it: with a pinned version or an alias that
// version only, else every held version, newest first. It fails with ErrNotLoaded for a model
// (or version, or alias) this instance does not hold.
func (s *Store) Status(ref *commonv1.ModelRef) (*servingv1.ServedModel, error) {
	s.mu.RLock()
	m := s.models[ref.GetName()]
	s.mu.RUnlock()
	if m == nil {
		return nil, notLoaded("model %q is not known here", ref.GetName())
	}
	out := m.status()
	if out == nil {
		return nil, notLoaded("model %q is not known here", ref.GetName())
	}
	var want int64
	switch sel := ref.GetSelector().(type) {
	case *commonv1.ModelRef_Version:
		want = sel.Version
	case *commonv1.ModelRef_Alias:
		n, ok := m.routingAlias(sel.Alias)
		if !ok {
			return nil, notLoaded("model %q has no alias %q", ref.GetName(), sel.Alias)
		}
		want = n
	default:
		return out, nil
	}
	kept := out.Versions[:0]
	for _, v := range out.Versions {
		if v.GetVersion() == want {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		return nil, notLoaded("version %d of model %q is not held here", want, ref.GetName())
	}
	out.Versions = kept
	return out, nil
}

func (m *model) routingAlias(a string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.routing.GetAliases()[a]
	return n, ok
}

// status describes the model, or returns nil when it holds nothing and has no routing.
func (m *model) status() *servingv1.ServedModel {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.versions) == 0 && len(m.draining) == 0 {
		return nil
	}
	r := m.route.Load()
	out := &servingv1.ServedModel{Name: m.name, Task: m.task, RegistryRevision: m.routing.GetRevision()}
	aliases := map[int64][]string{}
	for a, n := range m.routing.GetAliases() {
		aliases[n] = append(aliases[n], a)
	}
	shadow := map[int64]bool{}
	for _, n := range m.routing.GetShadow().GetVersions() {
		shadow[n] = true
	}
	share := map[*version]float64{}
	if r != nil {
		prev := uint64(0)
		for _, sp := range r.live {
			share[sp.v] = float64(sp.upTo-prev) / float64(r.total)
			prev = sp.upTo
		}
	}
	add := func(v *version) {
		sv := &servingv1.ServedVersion{
			Version:      v.num,
			State:        v.state,
			Error:        v.problem,
			TrafficShare: share[v],
			Shadow:       shadow[v.num] && v.state != servingv1.ModelState_MODEL_STATE_UNLOADING,
		}
		if v.state != servingv1.ModelState_MODEL_STATE_UNLOADING {
			sv.Aliases = slices.Sorted(slices.Values(aliases[v.num]))
		}
		if v.mv != nil {
			sv.Family = v.mv.GetFamily()
			sv.Inputs = v.mv.GetInputs()
			sv.ArtifactSha256 = v.mv.GetArtifact().GetSha256()
		}
		if v.sm != nil {
			sv.Family = v.sm.Family
			sv.Inputs = v.sm.Inputs
			sv.LoadTime = timestamppb.New(v.loaded)
			sv.LoadDuration = durationpb.New(v.took)
		}
		out.Versions = append(out.Versions, sv)
	}
	for _, v := range m.versions {
		add(v)
	}
	for v := range m.draining {
		add(v)
	}
	slices.SortFunc(out.Versions, func(a, b *servingv1.ServedVersion) int { return int(b.GetVersion() - a.GetVersion()) })
	return out
}

// List returns every model held whose name starts with prefix, by name.
func (s *Store) List(prefix string) []*servingv1.ServedModel {
	s.mu.RLock()
	ms := slices.Collect(maps.Values(s.models))
	s.mu.RUnlock()
	slices.SortFunc(ms, func(a, b *model) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	var out []*servingv1.ServedModel
	for _, m := range ms {
		if len(m.name) < len(prefix) || m.name[:len(prefix)] != prefix {
			continue
		}
		if st := m.status(); st != nil {
			out = append(out, st)
		}
	}
	return out
}

// ModelReady reports whether a model (version) answers requests: version "" means every version
// of its live split, a decimal number that version, anything else an alias.
func (s *Store) ModelReady(name, ver string) bool {
	s.mu.RLock()
	m := s.models[name]
	s.mu.RUnlock()
	if m == nil {
		return false
	}
	r := m.route.Load()
	if r == nil {
		return false
	}
	if ver == "" {
		m.mu.Lock()
		live := m.routing.GetLive().GetVersions()
		m.mu.Unlock()
		if len(live) == 0 || len(r.live) == 0 {
			return false
		}
		for _, vw := range live {
			if r.byNum[vw.GetVersion()] == nil {
				return false
			}
		}
		return true
	}
	if n, err := strconv.ParseInt(ver, 10, 64); err == nil {
		return r.byNum[n] != nil
	}
	return r.aliases[ver] != nil
}
