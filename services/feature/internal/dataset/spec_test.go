package dataset

import (
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// violationFields returns the fields err names, or fails when err is not Violations.
func violationFields(t *testing.T, err error) []string {
	t.Helper()
	var v fault.Violations
	if !errors.As(err, &v) {
		t.Fatalf("error %v, want violations", err)
	}
	var out []string
	for _, x := range v {
		out = append(out, x.Field)
	}
	return out
}

// TestCompileNamesEveryBadField: each malformed part of a spec is a violation naming its
// field under the prefix.
func TestCompileNamesEveryBadField(t *testing.T) {
	r := featureSet(t)
	ts := profile.Timestamp
	for _, c := range []struct {
		name  string
		edit  func(s *featurev1.TrainingSetSpec)
		field string
	}{
		{"no feature set", func(s *featurev1.TrainingSetSpec) { s.FeatureSet = nil }, "spec.feature_set.name"},
		{"negative version", func(s *featurev1.TrainingSetSpec) { s.FeatureSet.Version = -1 }, "spec.feature_set.version"},
		{"unknown column", func(s *featurev1.TrainingSetSpec) { s.FeatureNames = []string{"visits", "nope"} }, "spec.feature_names[1]"},
		{"no label", func(s *featurev1.TrainingSetSpec) { s.Label = nil }, "spec.label.source"},
		{"no label trait", func(s *featurev1.TrainingSetSpec) { s.Label.GetTrait().Trait = "" }, "spec.label.trait.trait"},
		{"bad as_of_time", func(s *featurev1.TrainingSetSpec) {
			s.Label.GetTrait().AsOfTime = &timestamppb.Timestamp{Nanos: -1}
		}, "spec.label.trait.as_of_time"},
		{"no outcome filter", func(s *featurev1.TrainingSetSpec) { s.Label = outcome(nil, time.Hour) }, "spec.label.outcome.filter"},
		{"zero horizon", func(s *featurev1.TrainingSetSpec) { s.Label = outcome(orders(), 0) }, "spec.label.outcome.horizon"},
		{"negative horizon", func(s *featurev1.TrainingSetSpec) { s.Label = outcome(orders(), -time.Hour) }, "spec.label.outcome.horizon"},
		{"field without SUM", func(s *featurev1.TrainingSetSpec) {
			s.Label = outcome(orders(), time.Hour)
			s.Label.GetOutcome().Field = "value"
		}, "spec.label.outcome.field"},
		{"field not numeric", func(s *featurev1.TrainingSetSpec) {
			s.Label = outcome(orders(), time.Hour)
			s.Label.GetOutcome().Aggregation = featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM
			s.Label.GetOutcome().Field = "item_id"
		}, "spec.label.outcome.field"},
		{"unknown aggregation", func(s *featurev1.TrainingSetSpec) {
			s.Label = outcome(orders(), time.Hour)
			s.Label.GetOutcome().Aggregation = 99
		}, "spec.label.outcome.aggregation"},
		{"bad outcome filter", func(s *featurev1.TrainingSetSpec) {
			s.Label = outcome(&featurev1.EventFilter{Conditions: []*featurev1.FieldCondition{{Field: "nope", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NOT_NULL}}}, time.Hour)
		}, "spec.label.outcome.filter.conditions[0].field"},
		{"no cutoff", func(s *featurev1.TrainingSetSpec) { s.Cutoff = nil }, "spec.cutoff.cutoff"},
		{"bad fixed time", func(s *featurev1.TrainingSetSpec) { s.Cutoff = fixed(&timestamppb.Timestamp{Seconds: 1 << 62}) }, "spec.cutoff.fixed_time"},
		{"no trigger filter", func(s *featurev1.TrainingSetSpec) {
			s.Cutoff = &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_Trigger{Trigger: &featurev1.TriggerCutoff{}}}
		}, "spec.cutoff.trigger.filter"},
		{"unknown selection", func(s *featurev1.TrainingSetSpec) {
			s.Cutoff = &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_Trigger{Trigger: &featurev1.TriggerCutoff{Filter: orders(), Selection: 7}}}
		}, "spec.cutoff.trigger.selection"},
		{"rolling without end", func(s *featurev1.TrainingSetSpec) {
			s.Cutoff = &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_Rolling{Rolling: &featurev1.RollingCutoff{StartTime: ts(T), Step: durationpb.New(time.Hour)}}}
		}, "spec.cutoff.rolling"},
		{"rolling backwards", func(s *featurev1.TrainingSetSpec) { s.Cutoff = rollingCutoff(T, T-1, time.Hour) }, "spec.cutoff.rolling.end_time"},
		{"rolling step under an hour", func(s *featurev1.TrainingSetSpec) { s.Cutoff = rollingCutoff(T, T+day, time.Hour-1) }, "spec.cutoff.rolling.step"},
		{"too many cutoffs", func(s *featurev1.TrainingSetSpec) { s.Cutoff = rollingCutoff(T, T+MaxCutoffs*hour, time.Hour) }, "spec.cutoff.rolling.step"},
		{"split without method", func(s *featurev1.TrainingSetSpec) { s.Split = &featurev1.SplitSpec{} }, "spec.split.method"},
		{"hash fraction 0", func(s *featurev1.TrainingSetSpec) { s.Split = entityHashSplit(0) }, "spec.split.entity_hash.test_fraction"},
		{"hash fraction 1", func(s *featurev1.TrainingSetSpec) { s.Split = entityHashSplit(1) }, "spec.split.entity_hash.test_fraction"},
		{"time split without start", func(s *featurev1.TrainingSetSpec) {
			s.Split = &featurev1.SplitSpec{Method: &featurev1.SplitSpec_Time{Time: &featurev1.TimeSplit{}}}
		}, "spec.split.time.test_start_time"},
		{"modulus 1", func(s *featurev1.TrainingSetSpec) { s.Split = rowSplit(1, 0) }, "spec.split.row_number.modulus"},
		{"no remainders", func(s *featurev1.TrainingSetSpec) { s.Split = rowSplit(3) }, "spec.split.row_number.test_remainders"},
		{"remainder = modulus", func(s *featurev1.TrainingSetSpec) { s.Split = rowSplit(3, 1, 3) }, "spec.split.row_number.test_remainders[1]"},
		{"negative remainder", func(s *featurev1.TrainingSetSpec) { s.Split = rowSplit(3, -1) }, "spec.split.row_number.test_remainders[0]"},
		{"entity of another type", func(s *featurev1.TrainingSetSpec) {
			s.Entities = &featurev1.EntityFilter{Entities: []*commonv1.EntityKey{{Id: "a", EntityType: "visitor"}}}
		}, "spec.entities.entities[0].entity_type"},
		{"entity without id", func(s *featurev1.TrainingSetSpec) {
			s.Entities = &featurev1.EntityFilter{Entities: []*commonv1.EntityKey{{Id: "a"}, {}}}
		}, "spec.entities.entities[1].id"},
		{"condition not on a trait", func(s *featurev1.TrainingSetSpec) {
			s.Entities = &featurev1.EntityFilter{Conditions: []*featurev1.FieldCondition{{Field: "tier", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NOT_NULL}}}
		}, "spec.entities.conditions[0].field"},
		{"negative limit", func(s *featurev1.TrainingSetSpec) { s.Entities = &featurev1.EntityFilter{Limit: -1} }, "spec.entities.limit"},
	} {
		s := spec(traitLabel(), fixedCutoff(T))
		c.edit(s)
		_, err := Compile(r, s, "spec")
		if err == nil {
			t.Errorf("%s: compiled", c.name)
			continue
		}
		if got := violationFields(t, err); !slices.Contains(got, c.field) {
			t.Errorf("%s: violations name %v, want %s", c.name, got, c.field)
		}
	}
	if _, err := Compile(r, nil, "spec"); !slices.Equal(violationFields(t, err), []string{"spec"}) {
		t.Errorf("a nil spec: %v, want spec is required", err)
	}
}

// TestCompileResolves: the feature set resolver's error comes back as it is; no feature names
// means every column in order, and names choose columns in their order.
func TestCompileResolves(t *testing.T) {
	r := featureSet(t)
	s := spec(traitLabel(), fixedCutoff(T))
	s.FeatureSet.Name = "missing"
	if _, err := Compile(r, s, "spec"); err == nil || errors.As(err, new(fault.Violations)) {
		t.Errorf("an unknown feature set: %v, want the resolver's error", err)
	}
	names := func(p *Plan) []string {
		var out []string
		for _, c := range p.Columns {
			out = append(out, c.GetName())
		}
		return out
	}
	if got := names(compile(t, r, spec(traitLabel(), fixedCutoff(T)))); !slices.Equal(got, []string{"visits", "exposures", "tier"}) {
		t.Errorf("every column: %v", got)
	}
	s = spec(traitLabel(), fixedCutoff(T))
	s.FeatureNames = []string{"tier", "visits"}
	p := compile(t, r, s)
	if got := names(p); !slices.Equal(got, []string{"tier", "visits"}) || p.LabelName() != "label" {
		t.Errorf("chosen columns %v and label %q, want [tier visits] and label", got, p.LabelName())
	}
}

// TestRollingCutoffBounds: a rolling cutoff whose end is its start has one cutoff, and one of
// exactly MaxCutoffs cutoffs is accepted.
func TestRollingCutoffBounds(t *testing.T) {
	r := featureSet(t)
	for _, c := range []struct {
		end  int64
		want int
	}{{T, 1}, {T + hour - 1, 1}, {T + hour, 2}, {T + (MaxCutoffs-1)*hour, MaxCutoffs}} {
		p := compile(t, r, spec(traitLabel(), rollingCutoff(T, c.end, time.Hour)))
		if len(p.rolling) != c.want || p.rolling[0] != T || p.rolling[len(p.rolling)-1] > c.end {
			t.Errorf("end %d ns after the start: %d cutoffs from %d to %d, want %d from the start, none after the end",
				c.end-T, len(p.rolling), p.rolling[0]-T, p.rolling[len(p.rolling)-1]-T, c.want)
		}
	}
}

func orders() *featurev1.EventFilter { return &featurev1.EventFilter{Names: []string{"Order"}} }

func outcome(f *featurev1.EventFilter, horizon time.Duration) *featurev1.LabelSpec {
	return &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{Filter: f, Horizon: durationpb.New(horizon)}}}
}

func fixed(ts *timestamppb.Timestamp) *featurev1.CutoffSpec {
	return &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: ts}}
}

func entityHashSplit(f float64) *featurev1.SplitSpec {
	return &featurev1.SplitSpec{Method: &featurev1.SplitSpec_EntityHash{EntityHash: &featurev1.EntityHashSplit{TestFraction: f}}}
}

func rowSplit(modulus int64, remainders ...int64) *featurev1.SplitSpec {
	return &featurev1.SplitSpec{Method: &featurev1.SplitSpec_RowNumber{RowNumber: &featurev1.RowNumberSplit{Modulus: modulus, TestRemainders: remainders}}}
}
