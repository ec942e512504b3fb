package models

import (
	"maps"
	"slices"
	"strconv"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
)

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
			sv.Outputs = v.mv.GetOutputs()
			sv.ArtifactSha256 = v.mv.GetArtifact().GetSha256()
		}
		if v.sm != nil {
			sv.Family = v.sm.Family
			sv.Inputs = v.sm.Inputs
			sv.Outputs = v.sm.Outputs
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
