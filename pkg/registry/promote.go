package registry

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
)

// Limits of a routing state.
const (
	// MaxWeight is the largest traffic weight of a live version.
	MaxWeight = 10_000
	// MaxShadow is the most shadow versions of a model.
	MaxShadow = 4
	// MaxReason is the longest promotion reason, in bytes.
	MaxReason = 1024
)

// Promotion is a change of a model's routing state (aliases, live split, shadow versions),
// which Promote applies all at once or not at all. Fields left zero leave that part of the
// state as it is. Promote names a bad field by its snake_case name, e.g. "model_name" or
// "live.versions[1].weight".
type Promotion struct {
	// ModelName is the registered model's name.
	ModelName string
	// ExpectedRevision is the model's registry revision the caller last read
	// (RegisteredModel.revision): 0 for a model whose routing state was never set. The change
	// applies only if the revision is still this one.
	ExpectedRevision int64
	// SetAliases sets or moves aliases: alias → registered version.
	SetAliases map[string]int64
	// RemoveAliases are the aliases to remove; removing one that does not exist is no error.
	RemoveAliases []string
	// Live, when set, replaces the live traffic split; an empty split takes the model out of
	// live serving.
	Live *modelv1.TrafficSplit
	// Shadow, when set, replaces the set of shadow versions.
	Shadow *modelv1.ShadowVersions
	// Force lets a version that fails the quality gate take live traffic all the same.
	Force bool
	// GateMetric is the metric the quality gate compares; empty means each version's own
	// selection metric.
	GateMetric string
	// Reason says why the change is made, at most MaxReason bytes.
	Reason string
	// ValidateOnly checks the change without making it.
	ValidateOnly bool
}

// Promoted is a model's routing state after a promotion.
type Promoted struct {
	// Model is the model after the change (with ValidateOnly, as it would be), with its new
	// revision.
	Model *modelv1.RegisteredModel
	// Checks are the quality gate's comparisons, one per version that newly takes live traffic.
	Checks []*modelv1.QualityGateCheck
}

// Promote changes a model's routing state as p asks, by compare-and-set on
// p.ExpectedRevision. A version that newly takes live traffic must pass the quality gate: its
// gate metric must be at least as good as the current top live version's, unless p.Force is
// set.
//
// It fails with ErrInvalid (a fault.Violations), ErrNotFound (unknown model), ErrRevisionMismatch
// (a *RevisionError) or ErrQualityGate (a *QualityGateError). With p.ValidateOnly it checks
// everything and returns the model as it would be, without changing it.
func (r *Registry) Promote(ctx context.Context, p Promotion) (*Promoted, error) {
	name := p.ModelName
	if !ValidName(name) {
		return nil, fault.Violations{{Field: "model_name", Description: "must be 1 to 63 characters of [a-z0-9-], starting with a letter"}}
	}
	s, err := r.load(ctx, name)
	if err != nil {
		return nil, err
	}
	if bad := validatePromotion(p, s); len(bad) > 0 {
		return nil, bad
	}
	if s.revision != p.ExpectedRevision {
		return nil, &RevisionError{Model: name, Expected: p.ExpectedRevision, Current: s.revision}
	}
	next := proto.Clone(s.routing).(*modelv1.RegisteredModel)
	next.Name, next.Revision, next.Versions = name, 0, nil
	next.Task = s.model(true).GetTask()
	if next.Aliases == nil {
		next.Aliases = map[string]int64{}
	}
	for _, a := range p.RemoveAliases {
		delete(next.Aliases, a)
	}
	maps.Copy(next.Aliases, p.SetAliases)
	var checks []*modelv1.QualityGateCheck
	if p.Live != nil {
		next.Live = proto.Clone(p.Live).(*modelv1.TrafficSplit)
		checks, err = gate(s, next.Live, p.GateMetric, p.Force)
		if err != nil {
			return nil, err
		}
	}
	if p.Shadow != nil {
		next.Shadow = proto.Clone(p.Shadow).(*modelv1.ShadowVersions)
	}
	next.UpdateTime = timestamppb.New(r.now())
	if p.ValidateOnly {
		out := &state{versions: s.versions, routing: next, revision: s.revision}
		return &Promoted{Model: out.model(true), Checks: checks}, nil
	}
	val, err := proto.Marshal(next)
	if err != nil {
		return nil, fmt.Errorf("promoting %s: %w", name, err)
	}
	ops := []clientv3.Op{clientv3.OpPut(servingKey(name), string(val))}
	for a := range s.routing.GetAliases() {
		if _, ok := next.Aliases[a]; !ok {
			ops = append(ops, clientv3.OpDelete(aliasKey(name, a)))
		}
	}
	for _, a := range slices.Sorted(maps.Keys(next.Aliases)) {
		ops = append(ops, clientv3.OpPut(aliasKey(name, a), strconv.FormatInt(next.Aliases[a], 10)))
	}
	resp, err := r.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(servingKey(name)), "=", s.revision)).
		Then(ops...).
		Else(clientv3.OpGet(servingKey(name))).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("promoting %s: %w", name, err)
	}
	if !resp.Succeeded {
		current := int64(0)
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			current = kvs[0].ModRevision
		}
		return nil, &RevisionError{Model: name, Expected: p.ExpectedRevision, Current: current}
	}
	out := &state{versions: s.versions, routing: next, revision: resp.Header.Revision}
	return &Promoted{Model: out.model(true), Checks: checks}, nil
}

func validatePromotion(p Promotion, s *state) fault.Violations {
	var bad fault.Violations
	add := func(field, format string, args ...any) {
		bad = append(bad, fault.Violation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	registered := func(field string, v int64) {
		if _, ok := s.versions[v]; !ok {
			add(field, "version %d is not registered", v)
		}
	}
	if p.ExpectedRevision < 0 {
		add("expected_revision", "must not be negative")
	}
	removed := map[string]bool{}
	for i, a := range p.RemoveAliases {
		if !ValidAlias(a) {
			add(fmt.Sprintf("remove_aliases[%d]", i), "must be 1 to 63 characters of [a-z0-9-], starting with a letter")
		}
		removed[a] = true
	}
	for _, a := range slices.Sorted(maps.Keys(p.SetAliases)) {
		field := fmt.Sprintf("set_aliases[%q]", a)
		if !ValidAlias(a) {
			add(field, "an alias must be 1 to 63 characters of [a-z0-9-], starting with a letter")
		}
		if removed[a] {
			add(field, "the alias is also in remove_aliases")
		}
		registered(field, p.SetAliases[a])
	}
	live := map[int64]bool{}
	for i, vw := range p.Live.GetVersions() {
		field := fmt.Sprintf("live.versions[%d]", i)
		registered(field+".version", vw.GetVersion())
		if live[vw.GetVersion()] {
			add(field+".version", "version %d is listed twice", vw.GetVersion())
		}
		live[vw.GetVersion()] = true
		if vw.GetWeight() < 1 || vw.GetWeight() > MaxWeight {
			add(field+".weight", "must be 1 to %d", MaxWeight)
		}
	}
	shadow := p.Shadow.GetVersions()
	if len(shadow) > MaxShadow {
		add("shadow.versions", "at most %d shadow versions", MaxShadow)
	}
	seen := map[int64]bool{}
	for i, v := range shadow {
		field := fmt.Sprintf("shadow.versions[%d]", i)
		registered(field, v)
		if seen[v] {
			add(field, "version %d is listed twice", v)
		}
		seen[v] = true
		if live[v] {
			add(field, "version %d is also live", v)
		}
	}
	if len(p.Reason) > MaxReason {
		add("reason", "at most %d bytes", MaxReason)
	}
	if m := p.GateMetric; m != "" {
		if _, ok := higherIsBetter(m); !ok {
			add("gate_metric", "unknown metric %q", m)
		}
	}
	return bad
}

// gate runs the quality gate over the versions that newly take live traffic in next.
func gate(s *state, next *modelv1.TrafficSplit, gateMetric string, force bool) ([]*modelv1.QualityGateCheck, error) {
	current := s.routing.GetLive()
	wasLive := map[int64]bool{}
	for _, vw := range current.GetVersions() {
		wasLive[vw.GetVersion()] = true
	}
	top := topLive(current)
	var checks []*modelv1.QualityGateCheck
	failed := false
	for _, vw := range next.GetVersions() {
		if wasLive[vw.GetVersion()] {
			continue
		}
		v := s.versions[vw.GetVersion()]
		metric := gateMetric
		if metric == "" {
			metric = v.GetSelectionMetric()
		}
		c := &modelv1.QualityGateCheck{Version: v.GetVersion(), Metric: metric, Passed: true}
		value, ok := metricOf(v, metric)
		c.Value = value
		if top != 0 {
			c.LiveVersion = top
			liveValue, liveOK := metricOf(s.versions[top], metric)
			c.LiveValue = liveValue
			switch {
			case !ok:
				// The candidate cannot show it is as good.
				c.Passed = false
			case liveOK:
				higher := true
				if h, known := higherIsBetter(metric); known {
					higher = h
				} else if v.GetSelectionDirection() == modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE {
					higher = false
				}
				if higher {
					c.Passed = value >= liveValue
				} else {
					c.Passed = value <= liveValue
				}
			}
		}
		if !c.Passed {
			failed = true
			c.Forced = force
		}
		checks = append(checks, c)
	}
	if failed && !force {
		return checks, &QualityGateError{Checks: checks}
	}
	return checks, nil
}

// metricOf returns a version's value of a metric: on its test split, else from
// cross-validation.
func metricOf(v *modelv1.ModelVersion, name string) (float64, bool) {
	for _, ms := range [][]*commonv1.Metric{v.GetTestMetrics(), v.GetCvMetrics()} {
		for _, m := range ms {
			if m.GetName() == name {
				return m.GetValue(), true
			}
		}
	}
	return 0, false
}

// higherIsBetter returns the natural direction of a metric name, and false when the name is
// not a known metric.
func higherIsBetter(name string) (higher, known bool) {
	if m, err := metrics.Lookup(name); err == nil {
		return m.HigherIsBetter, true
	}
	for _, p := range []string{"precision_at_", "recall_at_", "ndcg_at_", "map_at_"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			if _, err := strconv.Atoi(rest); err == nil {
				return true, true
			}
		}
	}
	switch name {
	case "mrr", "catalogue_coverage":
		return true, true
	}
	return false, false
}
