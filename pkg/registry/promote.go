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

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
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

// Promote changes a model's routing state (aliases, live split, shadow versions) as req asks,
// all at once, by compare-and-set on req.expected_revision (see
// TrainingService.PromoteModel). A version that newly takes live traffic must pass the
// quality gate: its gate metric must be at least as good as the current top live version's,
// unless req.force is set.
//
// It fails with ErrInvalid (an InvalidError), ErrNotFound (unknown model), ErrRevisionMismatch
// (a *RevisionError) or ErrQualityGate (a *QualityGateError). With req.validate_only it checks
// everything and returns the model as it would be, without changing it.
func (r *Registry) Promote(ctx context.Context, req *trainingv1.PromoteModelRequest) (*trainingv1.PromoteModelResponse, error) {
	name := req.GetModelName()
	if !ValidName(name) {
		return nil, InvalidError{{Field: "model_name", Description: "must be 1 to 63 characters of [a-z0-9-], starting with a letter"}}
	}
	s, err := r.load(ctx, name)
	if err != nil {
		return nil, err
	}
	if bad := validatePromotion(req, s); len(bad) > 0 {
		return nil, bad
	}
	if s.revision != req.GetExpectedRevision() {
		return nil, &RevisionError{Model: name, Expected: req.GetExpectedRevision(), Current: s.revision}
	}
	next := proto.Clone(s.routing).(*trainingv1.RegisteredModel)
	next.Name, next.Revision, next.Versions = name, 0, nil
	next.Task = s.model(true).GetTask()
	if next.Aliases == nil {
		next.Aliases = map[string]int64{}
	}
	for _, a := range req.GetRemoveAliases() {
		delete(next.Aliases, a)
	}
	maps.Copy(next.Aliases, req.GetSetAliases())
	var checks []*trainingv1.QualityGateCheck
	if req.GetLive() != nil {
		next.Live = proto.Clone(req.GetLive()).(*trainingv1.TrafficSplit)
		checks, err = gate(s, next.Live, req.GetGateMetric(), req.GetForce())
		if err != nil {
			return nil, err
		}
	}
	if req.GetShadow() != nil {
		next.Shadow = proto.Clone(req.GetShadow()).(*trainingv1.ShadowVersions)
	}
	next.UpdateTime = timestamppb.New(r.now())
	if req.GetValidateOnly() {
		out := &state{versions: s.versions, routing: next, revision: s.revision}
		return &trainingv1.PromoteModelResponse{Model: out.model(true), Checks: checks}, nil
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
		return nil, &RevisionError{Model: name, Expected: req.GetExpectedRevision(), Current: current}
	}
	out := &state{versions: s.versions, routing: next, revision: resp.Header.Revision}
	return &trainingv1.PromoteModelResponse{Model: out.model(true), Checks: checks}, nil
}

func validatePromotion(req *trainingv1.PromoteModelRequest, s *state) InvalidError {
	var bad InvalidError
	add := func(field, format string, args ...any) {
		bad = append(bad, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	registered := func(field string, v int64) {
		if _, ok := s.versions[v]; !ok {
			add(field, "version %d is not registered", v)
		}
	}
	if req.GetExpectedRevision() < 0 {
		add("expected_revision", "must not be negative")
	}
	removed := map[string]bool{}
	for i, a := range req.GetRemoveAliases() {
		if !ValidAlias(a) {
			add(fmt.Sprintf("remove_aliases[%d]", i), "must be 1 to 63 characters of [a-z0-9-], starting with a letter")
		}
		removed[a] = true
	}
	for _, a := range slices.Sorted(maps.Keys(req.GetSetAliases())) {
		field := fmt.Sprintf("set_aliases[%q]", a)
		if !ValidAlias(a) {
			add(field, "an alias must be 1 to 63 characters of [a-z0-9-], starting with a letter")
		}
		if removed[a] {
			add(field, "the alias is also in remove_aliases")
		}
		registered(field, req.GetSetAliases()[a])
	}
	live := map[int64]bool{}
	for i, vw := range req.GetLive().GetVersions() {
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
	shadow := req.GetShadow().GetVersions()
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
	if len(req.GetReason()) > MaxReason {
		add("reason", "at most %d bytes", MaxReason)
	}
	if m := req.GetGateMetric(); m != "" {
		if _, ok := higherIsBetter(m); !ok {
			add("gate_metric", "unknown metric %q", m)
		}
	}
	return bad
}

// gate runs the quality gate over the versions that newly take live traffic in next.
func gate(s *state, next *trainingv1.TrafficSplit, gateMetric string, force bool) ([]*trainingv1.QualityGateCheck, error) {
	current := s.routing.GetLive()
	wasLive := map[int64]bool{}
	for _, vw := range current.GetVersions() {
		wasLive[vw.GetVersion()] = true
	}
	top := topLive(current)
	var checks []*trainingv1.QualityGateCheck
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
		c := &trainingv1.QualityGateCheck{Version: v.GetVersion(), Metric: metric, Passed: true}
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
				} else if v.GetSelectionDirection() == trainingv1.MetricDirection_METRIC_DIRECTION_MINIMIZE {
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
func metricOf(v *trainingv1.ModelVersion, name string) (float64, bool) {
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
