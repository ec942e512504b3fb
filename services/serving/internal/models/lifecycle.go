package models

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// Ready is closed once the routing states present at start are applied: their versions
// loaded (or failed).
func (s *Store) Ready() <-chan struct{} { return s.ready }

// Run follows the registry until ctx is done, then returns ctx's error.
func (s *Store) Run(ctx context.Context) error {
	updates := s.src.Watch(ctx)
	ticker := time.NewTicker(s.retryInterval)
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
		s.apply(ctx, &modelv1.RegisteredModel{Name: name})
	}
}

func (s *Store) retryFailed(ctx context.Context) {
	s.mu.RLock()
	var again []*modelv1.RegisteredModel
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
func desired(rm *modelv1.RegisteredModel) map[int64]bool {
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
func (s *Store) apply(ctx context.Context, rm *modelv1.RegisteredModel) {
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
	if rm.GetTask() != modelv1.TaskKind_TASK_KIND_UNSPECIFIED {
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
func (s *Store) buildRoute(m *model, rm *modelv1.RegisteredModel, prev *route) *route {
	r := &route{aliases: map[string]*version{}, byNum: map[int64]*version{}, revision: rm.GetRevision()}
	avail := func(n int64) *version {
		if v := m.versions[n]; v != nil && v.state == servingv1.ModelState_MODEL_STATE_AVAILABLE {
			return v
		}
		return nil
	}
	splits := slices.Clone(rm.GetLive().GetVersions())
	slices.SortFunc(splits, func(a, b *modelv1.VersionWeight) int { return int(a.GetVersion() - b.GetVersion()) })
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
	ctx, cancel := context.WithTimeout(ctx, s.loadTimeout)
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
	if m.task == modelv1.TaskKind_TASK_KIND_UNSPECIFIED {
		m.task = sm.Task
	}
	s.logger.Info("model version loaded", slog.String("model", m.name), slog.Int64("version", v.num), slog.Duration("took", v.took))
}

func (s *Store) loadVersion(ctx context.Context, name string, n int64) (*modelv1.ModelVersion, *scoring.Model, error) {
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
