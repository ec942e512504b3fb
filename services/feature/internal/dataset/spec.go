// Package dataset builds the feature service's training data from the
// materialised profiles: point-in-time correct training sets (a feature
// sees only records strictly before the row's cutoff; an outcome label only
// records at or after it) and user-item interaction lists for recommenders.
// Every build reads the profiles as of one events stream sequence, after
// materialisation has passed it, so the same request at the same sequence
// yields the same rows.
package dataset

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
	"github.com/bullseye-ml/bullseye/services/feature/internal/featureset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// Limits of training set requests.
const (
	// MaxCutoffs is the most cutoffs of a rolling cutoff.
	MaxCutoffs = 1000
	// MinRollingStep is the shortest step of a rolling cutoff.
	MinRollingStep = time.Hour
)

// Resolver finds compiled feature set versions.
type Resolver interface {
	// Resolve returns a version (0: the latest); see catalog.Catalog.
	Resolve(name string, version int64, ready bool) (*featureset.Set, error)
}

type cutoffKind int

const (
	cutoffFixed cutoffKind = iota
	cutoffTrigger
	cutoffRolling
)

type splitKind int

const (
	splitNone splitKind = iota
	splitHash
	splitTime
	splitRow
)

// Plan is a validated, compiled TrainingSetSpec.
type Plan struct {
	// Spec is the request's definition.
	Spec *featurev1.TrainingSetSpec
	// Set is the resolved feature set version.
	Set *featureset.Set
	// Columns are the training set's feature columns, in row order.
	Columns []*featurev1.FeatureColumn
	cols    []int

	labelName      string
	labelTrait     string
	positives      []profile.Value
	labelAsOf      int64
	outcome        *featureset.Filter
	horizon        int64
	outcomeAgg     featurev1.OutcomeAggregation
	outcomeField   func(*profile.Event) profile.Value
	dropIncomplete bool
	keepMissing    bool

	cutoff      cutoffKind
	fixed       int64
	trigger     *featureset.Filter
	triggerFrom int64
	triggerTo   int64
	triggerSel  featurev1.TriggerSelection
	rolling     []int64

	split        splitKind
	testFraction float64
	seed         uint64
	testStart    int64
	modulus      int64
	remainders   map[int64]bool
	splitImport  string

	entities        map[string]bool
	importID        string
	conditions      *featureset.TraitConditions
	limit           int64
	includeObjected bool
}

// Compile validates a spec and resolves its feature set; violations name
// fields under prefix (e.g. "spec").
func Compile(r Resolver, spec *featurev1.TrainingSetSpec, prefix string) (*Plan, error) {
	var v fault.Violations
	bad := func(field, format string, args ...any) {
		v = append(v, fault.Violation{Field: prefix + "." + field, Description: fmt.Sprintf(format, args...)})
	}
	if spec == nil {
		return nil, fault.Violations{{Field: prefix, Description: "is required"}}
	}
	p := &Plan{Spec: spec, includeObjected: spec.GetIncludeObjected()}
	ref := spec.GetFeatureSet()
	if ref.GetName() == "" {
		bad("feature_set.name", "is required")
		return nil, v
	}
	if ref.GetVersion() < 0 {
		bad("feature_set.version", "must not be negative")
		return nil, v
	}
	set, err := r.Resolve(ref.GetName(), ref.GetVersion(), false)
	if err != nil {
		return nil, err
	}
	p.Set = set
	if len(spec.GetFeatureNames()) == 0 {
		for i, c := range set.Columns {
			p.cols = append(p.cols, i)
			p.Columns = append(p.Columns, c)
		}
	}
	for i, name := range spec.GetFeatureNames() {
		idx, ok := set.Index(name)
		if !ok {
			bad(fmt.Sprintf("feature_names[%d]", i), "feature set %q version %d has no column %q", set.Name, set.Version, name)
			continue
		}
		p.cols = append(p.cols, idx)
		p.Columns = append(p.Columns, set.Columns[idx])
	}

	// Label.
	label := spec.GetLabel()
	p.labelName = label.GetName()
	if p.labelName == "" {
		p.labelName = "label"
	}
	p.keepMissing = label.GetKeepMissing()
	switch src := label.GetSource().(type) {
	case *featurev1.LabelSpec_Trait:
		if src.Trait.GetTrait() == "" {
			bad("label.trait.trait", "is required: the trait's name")
		}
		p.labelTrait = src.Trait.GetTrait()
		for _, x := range src.Trait.GetPositiveValues() {
			p.positives = append(p.positives, profile.FromProto(x))
		}
		p.labelAsOf = math.MaxInt64
		if ts := src.Trait.GetAsOfTime(); ts != nil {
			if err := ts.CheckValid(); err != nil {
				bad("label.trait.as_of_time", "is not a valid time")
			}
			p.labelAsOf = values.UnixNanos(ts)
		}
	case *featurev1.LabelSpec_Outcome:
		o := src.Outcome
		if o.GetFilter() == nil {
			bad("label.outcome.filter", "is required: which events are the outcome")
		}
		f, fv := featureset.CompileFilter(o.GetFilter(), prefix+".label.outcome.filter")
		v = append(v, fv...)
		p.outcome = f
		h := o.GetHorizon()
		if h == nil || h.GetSeconds() < 0 || h.GetNanos() < 0 || (h.GetSeconds() == 0 && h.GetNanos() == 0) {
			bad("label.outcome.horizon", "is required and must be positive")
		} else {
			p.horizon = h.GetSeconds()*1e9 + int64(h.GetNanos())
		}
		p.outcomeAgg = o.GetAggregation()
		if p.outcomeAgg == featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_UNSPECIFIED {
			p.outcomeAgg = featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_ANY
		}
		if _, ok := featurev1.OutcomeAggregation_name[int32(p.outcomeAgg)]; !ok {
			bad("label.outcome.aggregation", "unknown aggregation %d", p.outcomeAgg)
		}
		field := o.GetField()
		if field != "" && p.outcomeAgg != featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM {
			bad("label.outcome.field", "applies only to OUTCOME_AGGREGATION_SUM")
		}
		if field == "" {
			field = "value"
		}
		if field != "value" && !strings.HasPrefix(field, "properties.") {
			bad("label.outcome.field", "must be value or properties.<name>, got %q", field)
		}
		p.outcomeField, _ = featureset.EventField(field)
		p.dropIncomplete = o.GetDropIncompleteHorizon()
	default:
		bad("label.source", "is required: trait or outcome")
	}

	// Cutoffs.
	switch c := spec.GetCutoff().GetCutoff().(type) {
	case *featurev1.CutoffSpec_FixedTime:
		if err := c.FixedTime.CheckValid(); err != nil {
			bad("cutoff.fixed_time", "is not a valid time")
		}
		p.cutoff, p.fixed = cutoffFixed, values.UnixNanos(c.FixedTime)
	case *featurev1.CutoffSpec_Trigger:
		p.cutoff = cutoffTrigger
		if c.Trigger.GetFilter() == nil {
			bad("cutoff.trigger.filter", "is required: which events are triggers")
		}
		f, fv := featureset.CompileFilter(c.Trigger.GetFilter(), prefix+".cutoff.trigger.filter")
		v = append(v, fv...)
		p.trigger = f
		p.triggerFrom, p.triggerTo = math.MinInt64, math.MaxInt64
		if ts := c.Trigger.GetStartTime(); ts != nil {
			p.triggerFrom = values.UnixNanos(ts)
		}
		if ts := c.Trigger.GetEndTime(); ts != nil {
			p.triggerTo = values.UnixNanos(ts)
		}
		p.triggerSel = c.Trigger.GetSelection()
		if _, ok := featurev1.TriggerSelection_name[int32(p.triggerSel)]; !ok {
			bad("cutoff.trigger.selection", "unknown selection %d", p.triggerSel)
		}
	case *featurev1.CutoffSpec_Rolling:
		p.cutoff = cutoffRolling
		r := c.Rolling
		if r.GetStartTime() == nil || r.GetEndTime() == nil {
			bad("cutoff.rolling", "start_time and end_time are required")
			break
		}
		start, end := values.UnixNanos(r.GetStartTime()), values.UnixNanos(r.GetEndTime())
		step := r.GetStep().AsDuration()
		switch {
		case end < start:
			bad("cutoff.rolling.end_time", "is before start_time")
		case step < MinRollingStep:
			bad("cutoff.rolling.step", "must be at least one hour")
		case (end-start)/int64(step)+1 > MaxCutoffs:
			bad("cutoff.rolling.step", "makes %d cutoffs, more than %d", (end-start)/int64(step)+1, MaxCutoffs)
		default:
			for t := start; t <= end; t += int64(step) {
				p.rolling = append(p.rolling, t)
			}
		}
	default:
		bad("cutoff.cutoff", "is required: fixed_time, trigger or rolling")
	}

	// Split.
	switch s := spec.GetSplit().GetMethod().(type) {
	case nil:
		if spec.GetSplit() != nil {
			bad("split.method", "is required: entity_hash, time or row_number")
		}
	case *featurev1.SplitSpec_EntityHash:
		p.split, p.testFraction, p.seed = splitHash, s.EntityHash.GetTestFraction(), s.EntityHash.GetSeed()
		if !(p.testFraction > 0 && p.testFraction < 1) {
			bad("split.entity_hash.test_fraction", "must be in (0, 1), got %v", p.testFraction)
		}
	case *featurev1.SplitSpec_Time:
		p.split = splitTime
		if s.Time.GetTestStartTime() == nil {
			bad("split.time.test_start_time", "is required")
		}
		p.testStart = values.UnixNanos(s.Time.GetTestStartTime())
	case *featurev1.SplitSpec_RowNumber:
		p.split, p.modulus, p.splitImport = splitRow, s.RowNumber.GetModulus(), s.RowNumber.GetImportId()
		if p.modulus < 2 {
			bad("split.row_number.modulus", "must be at least 2, got %d", p.modulus)
		}
		if len(s.RowNumber.GetTestRemainders()) == 0 {
			bad("split.row_number.test_remainders", "are required")
		}
		p.remainders = map[int64]bool{}
		for i, r := range s.RowNumber.GetTestRemainders() {
			if r < 0 || (p.modulus >= 2 && r >= p.modulus) {
				bad(fmt.Sprintf("split.row_number.test_remainders[%d]", i), "must be in [0, %d)", p.modulus)
			}
			p.remainders[r] = true
		}
	}

	// Entities.
	if ef := spec.GetEntities(); ef != nil {
		for i, e := range ef.GetEntities() {
			if t := e.GetEntityType(); t != "" && t != "customer" {
				bad(fmt.Sprintf("entities.entities[%d].entity_type", i), "training sets hold customers only, got %q", t)
			}
			if e.GetId() == "" {
				bad(fmt.Sprintf("entities.entities[%d].id", i), "is required")
			}
			if p.entities == nil {
				p.entities = map[string]bool{}
			}
			p.entities[e.GetId()] = true
		}
		p.importID = ef.GetImportId()
		conds, cv := featureset.CompileTraitConditions(ef.GetConditions(), prefix+".entities.conditions")
		v = append(v, cv...)
		p.conditions = conds
		if ef.GetLimit() < 0 {
			bad("entities.limit", "must not be negative")
		}
		p.limit = ef.GetLimit()
	}
	if len(v) > 0 {
		return nil, v
	}
	return p, nil
}

// LabelName returns the label column's name.
func (p *Plan) LabelName() string { return p.labelName }

// labelType returns the label's type when it follows from the spec alone.
func (p *Plan) labelType() commonv1.ValueType {
	if p.outcome != nil {
		switch p.outcomeAgg {
		case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_COUNT, featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_DISTINCT_DAYS:
			return commonv1.ValueType_VALUE_TYPE_INT
		case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM:
			return commonv1.ValueType_VALUE_TYPE_NUMBER
		}
		return commonv1.ValueType_VALUE_TYPE_BOOL
	}
	if len(p.positives) > 0 {
		return commonv1.ValueType_VALUE_TYPE_BOOL
	}
	return commonv1.ValueType_VALUE_TYPE_UNSPECIFIED
}
