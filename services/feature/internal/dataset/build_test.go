package dataset

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

const byEntity = featurev1.TrainingSetOrder_TRAINING_SET_ORDER_ENTITY

// TestFeaturesSeeOnlyRecordsStrictlyBeforeTheCutoff: an event or trait update at exactly the
// cutoff, or after it, is not part of the row's features; a missing trait takes the column's
// default; an entity whose first record is at or after a fixed cutoff has no row.
func TestFeaturesSeeOnlyRecordsStrictlyBeforeTheCutoff(t *testing.T) {
	h := newHistory()
	h.identify("a", T-hour, map[string]*commonv1.Value{"tier": str("silver")})
	h.track("a", "Visit", T-1)
	h.track("a", "Visit", T)
	h.track("a", "Visit", T+hour)
	h.identify("a", T, map[string]*commonv1.Value{"tier": str("gold")})
	h.identify("a", T+day, map[string]*commonv1.Value{"y": str("yes")}) // a trait label is not cut off
	h.track("b", "Visit", T)                                            // first record at the cutoff
	h.identify("b", T+day, map[string]*commonv1.Value{"y": str("yes")})
	h.track("c", "Visit", T+1)
	h.identify("c", T+day, map[string]*commonv1.Value{"y": str("yes")})
	h.track("d", "Visit", T-day)
	h.identify("d", T+day, map[string]*commonv1.Value{"y": str("no")})
	plan := compile(t, featureSet(t), spec(traitLabel(str("yes")), fixedCutoff(T)))
	res, rows := build(t, builder(t, h), plan, byEntity)

	if got, want := keys(rows), []rowKey{{"a", 0}, {"d", 0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	a, d := rows[0], rows[1]
	if got := feature(t, plan, a, "visits"); got != profile.IntValue(1) {
		t.Errorf("a's visits = %+v, want 1 (the visit at the cutoff and the one after do not count)", got)
	}
	if got := feature(t, plan, a, "tier"); got != profile.StringValue("silver") {
		t.Errorf("a's tier = %+v, want silver (gold was set at the cutoff)", got)
	}
	if got := feature(t, plan, d, "tier"); got != profile.StringValue("none") {
		t.Errorf("d's tier = %+v, want the default none", got)
	}
	if a.Label != profile.BoolValue(true) || d.Label != profile.BoolValue(false) {
		t.Errorf("labels %+v and %+v, want true and false", a.Label, d.Label)
	}
	if res.LabelType != commonv1.ValueType_VALUE_TYPE_BOOL {
		t.Errorf("label type %v, want BOOL", res.LabelType)
	}
	s := res.Summary
	if s.GetRows() != 2 || s.GetEntities() != 2 || s.GetTrainRows() != 2 || s.GetTestRows() != 0 {
		t.Errorf("summary %v, want 2 rows of 2 entities, all TRAIN", s)
	}
	if !s.GetMinCutoffTime().AsTime().Equal(time.Unix(0, T)) || !s.GetMaxCutoffTime().AsTime().Equal(time.Unix(0, T)) {
		t.Errorf("cutoff times %v to %v, want both %v", s.GetMinCutoffTime().AsTime(), s.GetMaxCutoffTime().AsTime(), time.Unix(0, T).UTC())
	}
}

// TestOutcomeLabelCountsEventsFromTheCutoffToTheHorizon: an outcome label summarises the
// matching events in [cutoff, cutoff+horizon): one at exactly the cutoff counts, one at
// exactly the horizon's end does not, nor one just before the cutoff.
func TestOutcomeLabelCountsEventsFromTheCutoffToTheHorizon(t *testing.T) {
	h := newHistory()
	h.track("a", "Visit", T-day)
	h.track("a", "Order", T-1, value(1))
	h.track("a", "Order", T, value(10), props(map[string]*commonv1.Value{"amount": num(3)}))
	h.track("a", "Order", T+hour, value(20)) // same day as the one at T
	h.track("a", "Order", T+7*day-1, value(40), props(map[string]*commonv1.Value{"amount": num(4)}))
	h.track("a", "Order", T+7*day, value(80))
	h.track("a", "Browse", T+day, value(1000))
	h.track("b", "Visit", T-day)
	b := builder(t, h)
	week := 7 * 24 * time.Hour
	for _, c := range []struct {
		agg      featurev1.OutcomeAggregation
		field    string
		typ      commonv1.ValueType
		a, other profile.Value
	}{
		{featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_UNSPECIFIED, "", commonv1.ValueType_VALUE_TYPE_BOOL, profile.BoolValue(true), profile.BoolValue(false)},
		{featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_COUNT, "", commonv1.ValueType_VALUE_TYPE_INT, profile.IntValue(3), profile.IntValue(0)},
		{featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM, "", commonv1.ValueType_VALUE_TYPE_NUMBER, profile.NumberValue(70), profile.NumberValue(0)},
		{featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM, "properties.amount", commonv1.ValueType_VALUE_TYPE_NUMBER, profile.NumberValue(7), profile.NumberValue(0)},
		{featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_DISTINCT_DAYS, "", commonv1.ValueType_VALUE_TYPE_INT, profile.IntValue(2), profile.IntValue(0)},
	} {
		label := outcomeLabel(c.agg, week, "Order")
		label.GetOutcome().Field = c.field
		plan := compile(t, featureSet(t), spec(label, fixedCutoff(T)))
		res, rows := build(t, b, plan, byEntity)
		if len(rows) != 2 {
			t.Fatalf("%v %s: %d rows, want 2", c.agg, c.field, len(rows))
		}
		if rows[0].Label != c.a || rows[1].Label != c.other {
			t.Errorf("%v %s: labels %+v and %+v, want %+v and %+v", c.agg, c.field, rows[0].Label, rows[1].Label, c.a, c.other)
		}
		if res.LabelType != c.typ {
			t.Errorf("%v: label type %v, want %v", c.agg, res.LabelType, c.typ)
		}
		if res.Summary.GetDroppedMissingLabel() != 0 {
			t.Errorf("%v: %d rows dropped for a missing label; an outcome label is never null", c.agg, res.Summary.GetDroppedMissingLabel())
		}
	}
}

// TestTriggerCutoffs: a row per trigger event in [start_time, end_time), cut off at the
// trigger's time (its features see the earlier triggers only), with the trigger's message
// id; its outcome leaves out the trigger event itself but counts another event at the same
// instant; FIRST and LAST keep one trigger.
func TestTriggerCutoffs(t *testing.T) {
	h := newHistory()
	h.track("a", "Exposed", T-1)
	first := h.track("a", "Exposed", T)
	h.track("a", "Order", T)
	second := h.track("a", "Exposed", T+day)
	h.track("a", "Exposed", T+2*day) // at end_time: not a trigger, but an outcome of the second
	h.track("b", "Visit", T)
	msgID := func(seq uint64) string {
		for _, e := range h.user("a").Events {
			if e.Seq == seq {
				return e.MessageID
			}
		}
		return ""
	}
	b := builder(t, h)
	for _, c := range []struct {
		sel  featurev1.TriggerSelection
		want []rowKey
	}{
		{featurev1.TriggerSelection_TRIGGER_SELECTION_UNSPECIFIED, []rowKey{{"a", 0}, {"a", 1}}},
		{featurev1.TriggerSelection_TRIGGER_SELECTION_ALL, []rowKey{{"a", 0}, {"a", 1}}},
		{featurev1.TriggerSelection_TRIGGER_SELECTION_FIRST, []rowKey{{"a", 0}}},
		{featurev1.TriggerSelection_TRIGGER_SELECTION_LAST, []rowKey{{"a", 1}}},
	} {
		cutoff := &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_Trigger{Trigger: &featurev1.TriggerCutoff{
			Filter:    &featurev1.EventFilter{Names: []string{"Exposed"}},
			StartTime: profile.Timestamp(T), EndTime: profile.Timestamp(T + 2*day), Selection: c.sel}}}
		plan := compile(t, featureSet(t), spec(outcomeLabel(featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_COUNT, 2*24*time.Hour, "Exposed", "Order"), cutoff))
		_, rows := build(t, b, plan, byEntity)
		if got := keys(rows); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v: rows %v, want %v", c.sel, got, c.want)
			continue
		}
		for _, r := range rows {
			wantID, exposures, outcome := msgID(first), int64(1), int64(2) // the order at T and the trigger a day later
			if r.Cutoff != T {
				wantID, exposures, outcome = msgID(second), 2, 1 // the exposure at the end time
			}
			if r.TriggerID != wantID {
				t.Errorf("%v: row at %d has trigger %q, want %q", c.sel, r.Cutoff, r.TriggerID, wantID)
			}
			if got := feature(t, plan, r, "exposures"); got != profile.IntValue(exposures) {
				t.Errorf("%v: row at %d sees %+v exposures, want %d", c.sel, r.Cutoff, got, exposures)
			}
			if r.Label != profile.IntValue(outcome) {
				t.Errorf("%v: row at %d has outcome %+v, want %d", c.sel, r.Cutoff, r.Label, outcome)
			}
		}
	}
}

// TestRollingCutoffs: an entity has a row at each rolling cutoff after its first record
// (strictly: not at a cutoff equal to it), in cutoff order; a trait label without positive
// values keeps the trait's type.
func TestRollingCutoffs(t *testing.T) {
	h := newHistory()
	h.identify("a", T-hour, map[string]*commonv1.Value{"y": integer(3)})
	h.track("a", "Visit", T+hour)
	h.identify("b", T+day, map[string]*commonv1.Value{"y": integer(4)})
	h.identify("c", T+2*day+1, map[string]*commonv1.Value{"y": integer(5)})
	plan := compile(t, featureSet(t), spec(traitLabel(), rollingCutoff(T, T+2*day, 24*time.Hour)))
	res, rows := build(t, builder(t, h), plan, byEntity)
	if got, want := keys(rows), []rowKey{{"a", 0}, {"a", 1}, {"a", 2}, {"b", 2}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	if got := []profile.Value{feature(t, plan, rows[0], "visits"), feature(t, plan, rows[1], "visits")}; got[0] != profile.IntValue(0) || got[1] != profile.IntValue(1) {
		t.Errorf("a's visits at T and T+1d = %+v, want 0 and 1", got)
	}
	if res.LabelType != commonv1.ValueType_VALUE_TYPE_INT || rows[3].Label != profile.IntValue(4) {
		t.Errorf("label type %v and b's label %+v, want INT 4", res.LabelType, rows[3].Label)
	}
	if res.Summary.GetEntities() != 2 || !res.Summary.GetMaxCutoffTime().AsTime().Equal(time.Unix(0, T+2*day)) {
		t.Errorf("summary %v, want 2 entities and the last cutoff T+2d", res.Summary)
	}
}

// TestTraitLabelAsOfTime: a trait label as of a time takes the value of the updates strictly
// before it; a trait never set, or cleared, is a missing label, dropped and counted unless
// keep_missing; without positive values and with no value at all the label is a STRING.
func TestTraitLabelAsOfTime(t *testing.T) {
	asOf := T + 10*day
	h := newHistory()
	h.identify("a", asOf-hour, map[string]*commonv1.Value{"y": str("no")})
	h.identify("a", asOf, map[string]*commonv1.Value{"y": str("yes")})
	h.identify("b", asOf-2*hour, map[string]*commonv1.Value{"y": str("yes")})
	h.identify("b", asOf-hour, map[string]*commonv1.Value{"y": nil}) // cleared
	h.track("c", "Visit", T-day)                                     // never set
	h.identify("d", T-day, map[string]*commonv1.Value{"y": str("yes")})
	b := builder(t, h)

	label := traitLabel(str("yes"))
	label.GetTrait().AsOfTime = profile.Timestamp(asOf)
	plan := compile(t, featureSet(t), spec(label, fixedCutoff(T+20*day)))
	res, rows := build(t, b, plan, byEntity)
	got := map[string]profile.Value{}
	for _, r := range rows {
		got[r.Entity] = r.Label
	}
	want := map[string]profile.Value{"a": profile.BoolValue(false), "d": profile.BoolValue(true)}
	if !reflect.DeepEqual(got, want) || res.Summary.GetDroppedMissingLabel() != 2 {
		t.Errorf("labels %v with %d dropped, want %v with b and c dropped", got, res.Summary.GetDroppedMissingLabel(), want)
	}

	label.KeepMissing = true
	plan = compile(t, featureSet(t), spec(label, fixedCutoff(T+20*day)))
	res, rows = build(t, b, plan, byEntity)
	if len(rows) != 4 || !rows[1].Label.IsNull() || !rows[2].Label.IsNull() || res.Summary.GetDroppedMissingLabel() != 0 {
		t.Errorf("keep_missing: %d rows, labels of b and c %+v %+v, %d dropped; want 4 rows, two null labels, none dropped",
			len(rows), rows[1].Label, rows[2].Label, res.Summary.GetDroppedMissingLabel())
	}

	plan = compile(t, featureSet(t), spec(&featurev1.LabelSpec{Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{Trait: "unset"}}, KeepMissing: true}, fixedCutoff(T+20*day)))
	if res, _ := build(t, b, plan, byEntity); res.LabelType != commonv1.ValueType_VALUE_TYPE_STRING {
		t.Errorf("a label trait nobody has: type %v, want STRING", res.LabelType)
	}
}

// TestDropIncompleteHorizon: with drop_incomplete_horizon, a row whose horizon ends after the
// last record on the stream is dropped and counted; one whose horizon ends exactly at it is
// kept.
func TestDropIncompleteHorizon(t *testing.T) {
	for _, c := range []struct {
		last    int64
		dropped bool
	}{{T + 7*day, false}, {T + 7*day - 1, true}} {
		h := newHistory()
		h.track("a", "Visit", T-day)
		h.track("z", "Visit", c.last)
		label := outcomeLabel(featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_ANY, 7*24*time.Hour, "Order")
		label.GetOutcome().DropIncompleteHorizon = true
		plan := compile(t, featureSet(t), spec(label, fixedCutoff(T)))
		res, rows := build(t, builder(t, h), plan, byEntity)
		wantRows, wantDropped := 1, int64(0)
		if c.dropped {
			wantRows, wantDropped = 0, 1
		}
		if len(rows) != wantRows || res.Summary.GetDroppedIncompleteHorizon() != wantDropped {
			t.Errorf("last record %d ns after the horizon's end: %d rows, %d dropped; want %d and %d",
				c.last-(T+7*day), len(rows), res.Summary.GetDroppedIncompleteHorizon(), wantRows, wantDropped)
		}
	}
}

// TestBuildReadsUpToTheStreamSequence: a build reads the profiles as of the stream sequence
// materialisation was asked to reach: a record stored after it (even one dated earlier)
// counts for neither features nor labels, and an entity with only such records has no row.
// The result names the sequence.
func TestBuildReadsUpToTheStreamSequence(t *testing.T) {
	h := newHistory()
	h.track("a", "Visit", T-2*day)
	h.identify("a", T-day, map[string]*commonv1.Value{"y": str("no")})
	seq := h.track("b", "Visit", T-day)
	h.track("a", "Visit", T-3*day) // late
	h.identify("a", T+day, map[string]*commonv1.Value{"y": str("yes")})
	h.track("c", "Visit", T-day)
	b := builder(t, h)
	b.progress = progress{seq: seq}
	label := traitLabel(str("yes"))
	label.KeepMissing = true
	plan := compile(t, featureSet(t), spec(label, fixedCutoff(T)))
	res, rows := build(t, b, plan, byEntity)
	if got, want := keys(rows), []rowKey{{"a", 0}, {"b", 0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	if v := feature(t, plan, rows[0], "visits"); v != profile.IntValue(1) || rows[0].Label != profile.BoolValue(false) {
		t.Errorf("a: %+v visits, label %+v; want 1 visit and false (what came after sequence %d does not count)", v, rows[0].Label, seq)
	}
	if res.StreamSeq != seq {
		t.Errorf("stream sequence %d, want %d", res.StreamSeq, seq)
	}
}

// TestIDNamesTheRequestAndSequence: the training set id depends on the spec, the order and the
// stream sequence, and not on how the rows are cut into messages.
func TestIDNamesTheRequestAndSequence(t *testing.T) {
	req := &featurev1.BuildTrainingSetRequest{Spec: spec(traitLabel(), fixedCutoff(T))}
	id := ID(req, 7)
	other := &featurev1.BuildTrainingSetRequest{Spec: spec(traitLabel(), fixedCutoff(T+1))}
	ordered := &featurev1.BuildTrainingSetRequest{Spec: req.GetSpec(), Order: featurev1.TrainingSetOrder_TRAINING_SET_ORDER_IMPORT_ROW}
	for name, other := range map[string]string{"sequence": ID(req, 8), "spec": ID(other, 7), "order": ID(ordered, 7)} {
		if other == id {
			t.Errorf("another %s gives the same id %s", name, id)
		}
	}
	paged := &featurev1.BuildTrainingSetRequest{Spec: req.GetSpec(), RowsPerMessage: 3}
	if ID(paged, 7) != id {
		t.Errorf("rows_per_message changed the id: %s, want %s", ID(paged, 7), id)
	}
}

// TestBuildFailsWithMaterialisation: a build that cannot read the stream's end, or whose wait
// for materialisation fails, returns that error before any header or row; the wait is
// bounded by WaitTimeout.
func TestBuildFailsWithMaterialisation(t *testing.T) {
	h := newHistory()
	h.track("a", "Visit", T-day)
	b := builder(t, h)
	plan := compile(t, featureSet(t), spec(traitLabel(), fixedCutoff(T)))
	lastErr, waitErr := errors.New("stream gone"), errors.New("behind")
	var waited time.Duration
	for _, c := range []struct {
		p    progress
		want error
	}{
		{progress{seq: h.seq, lastErr: lastErr}, lastErr},
		{progress{seq: h.seq, waitErr: waitErr, waited: &waited}, waitErr},
	} {
		b.progress, b.waitTimeout = c.p, 3*time.Second
		called := false
		_, err := b.Build(context.Background(), plan, byEntity, func(Result) error { called = true; return nil }, func(Row) error { called = true; return nil })
		if !errors.Is(err, c.want) || called {
			t.Errorf("Build = %v (header or row called: %v), want %v before any", err, called, c.want)
		}
	}
	if waited <= 0 || waited > 3*time.Second {
		t.Errorf("Wait was given %v, want at most WaitTimeout (3s)", waited)
	}
}

// TestBuildStopsOnEmitErrors: an error from header or emit ends the build with it.
func TestBuildStopsOnEmitErrors(t *testing.T) {
	h := newHistory()
	h.identify("a", T-day, map[string]*commonv1.Value{"y": str("yes")})
	h.identify("b", T-day, map[string]*commonv1.Value{"y": str("yes")})
	b := builder(t, h)
	plan := compile(t, featureSet(t), spec(traitLabel(), fixedCutoff(T)))
	stop := errors.New("client gone")
	if _, err := b.Build(context.Background(), plan, byEntity, func(Result) error { return stop }, func(Row) error {
		t.Error("a row after a failed header")
		return nil
	}); !errors.Is(err, stop) {
		t.Errorf("header error: Build = %v, want %v", err, stop)
	}
	rows := 0
	if _, err := b.Build(context.Background(), plan, byEntity, func(Result) error { return nil }, func(Row) error {
		rows++
		return stop
	}); !errors.Is(err, stop) || rows != 1 {
		t.Errorf("emit error: Build = %v after %d rows, want %v after 1", err, rows, stop)
	}
}

// TestWhoIsLeftOut: erased customers and anonymous visitors never take part; customers whose
// latest consent is an objection are left out and counted unless include_objected, and those
// who objected and later granted consent take part.
func TestWhoIsLeftOut(t *testing.T) {
	h := newHistory()
	yes := map[string]*commonv1.Value{"y": str("yes")}
	h.identify("a", T-day, yes)
	h.identify("erased", T-day, yes)
	h.identify("objects", T-day, yes)
	h.consent("objects", T-day, commonv1.ConsentState_CONSENT_STATE_OBJECTED)
	h.identify("changed", T-day, yes)
	h.consent("changed", T-2*day, commonv1.ConsentState_CONSENT_STATE_OBJECTED)
	h.consent("changed", T-day, commonv1.ConsentState_CONSENT_STATE_GRANTED)
	h.apply(eventlog.AnonymousKey("visitor"), &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, AnonymousId: "visitor", Traits: yes, EventTime: profile.Timestamp(T - day)})
	b := builder(t, h)
	b.erased = func(id string) bool { return id == "erased" }
	for _, include := range []bool{false, true} {
		s := spec(traitLabel(), fixedCutoff(T))
		s.IncludeObjected = include
		res, rows := build(t, b, compile(t, featureSet(t), s), byEntity)
		want, objected := []rowKey{{"a", 0}, {"changed", 0}}, int64(1)
		if include {
			want, objected = []rowKey{{"a", 0}, {"changed", 0}, {"objects", 0}}, 0
		}
		if got := keys(rows); !reflect.DeepEqual(got, want) || res.Summary.GetExcludedObjected() != objected {
			t.Errorf("include_objected %v: rows %v with %d objected left out, want %v and %d", include, got, res.Summary.GetExcludedObjected(), want, objected)
		}
	}
}

// TestRetentionIsReported: an entity whose profile dropped events by retention, and that has
// rows, is counted with its dropped events; one without rows is not.
func TestRetentionIsReported(t *testing.T) {
	h := newHistory()
	for i := range 5 {
		h.track("a", "Visit", T-day+int64(i))
		h.track("late", "Visit", T+day+int64(i))
	}
	h.track("b", "Visit", T-day)
	h.user("a").DropOldest(2)
	h.user("late").DropOldest(3)
	plan := compile(t, featureSet(t), spec(outcomeLabel(featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_ANY, time.Hour, "Order"), fixedCutoff(T)))
	res, rows := build(t, builder(t, h), plan, byEntity)
	if len(rows) != 2 || res.Summary.GetEntitiesPastRetention() != 1 || res.Summary.GetEventsDroppedByRetention() != 2 {
		t.Errorf("%d rows, %d entities past retention with %d events dropped; want 2 rows, a alone with 2",
			len(rows), res.Summary.GetEntitiesPastRetention(), res.Summary.GetEventsDroppedByRetention())
	}
	if v := feature(t, plan, rows[0], "visits"); v != profile.IntValue(3) {
		t.Errorf("a's visits = %+v, want the 3 retained", v)
	}
}

// TestSplits: a time split puts rows cut off at or after its start in TEST; a row-number
// split uses the entity's import row modulo the modulus and drops (and counts) entities with
// no row number; a hash split puts every row of an entity on the side its hash says.
func TestSplits(t *testing.T) {
	h := newHistory()
	for i, id := range []string{"r0", "r1", "r2", "r3", "r4"} {
		h.identify(id, T-day, map[string]*commonv1.Value{"y": str("yes")}, fromImport("bank", int64(i)))
	}
	h.identify("none", T-day, map[string]*commonv1.Value{"y": str("yes")})
	b := builder(t, h)
	splits := func(rows []Row) map[rowKey]featurev1.Split {
		out := map[rowKey]featurev1.Split{}
		for _, r := range rows {
			out[rowKey{r.Entity, float64(r.Cutoff-T) / float64(day)}] = r.Split
		}
		return out
	}
	train, test := featurev1.Split_SPLIT_TRAIN, featurev1.Split_SPLIT_TEST

	s := spec(traitLabel(), rollingCutoff(T, T+2*day, 24*time.Hour))
	s.Entities = &featurev1.EntityFilter{Entities: []*commonv1.EntityKey{{Id: "r0"}}}
	s.Split = &featurev1.SplitSpec{Method: &featurev1.SplitSpec_Time{Time: &featurev1.TimeSplit{TestStartTime: profile.Timestamp(T + day)}}}
	res, rows := build(t, b, compile(t, featureSet(t), s), byEntity)
	if got, want := splits(rows), map[rowKey]featurev1.Split{{"r0", 0}: train, {"r0", 1}: test, {"r0", 2}: test}; !reflect.DeepEqual(got, want) {
		t.Errorf("time split: %v, want %v", got, want)
	}
	if res.Summary.GetTrainRows() != 1 || res.Summary.GetTestRows() != 2 {
		t.Errorf("time split: %d train and %d test rows, want 1 and 2", res.Summary.GetTrainRows(), res.Summary.GetTestRows())
	}

	s = spec(traitLabel(), fixedCutoff(T))
	s.Split = &featurev1.SplitSpec{Method: &featurev1.SplitSpec_RowNumber{RowNumber: &featurev1.RowNumberSplit{Modulus: 3, TestRemainders: []int64{2, 0}}}}
	res, rows = build(t, b, compile(t, featureSet(t), s), byEntity)
	want := map[rowKey]featurev1.Split{{"r0", 0}: test, {"r1", 0}: train, {"r2", 0}: test, {"r3", 0}: test, {"r4", 0}: train}
	if got := splits(rows); !reflect.DeepEqual(got, want) || res.Summary.GetDroppedNoRowNumber() != 1 {
		t.Errorf("row-number split: %v with %d dropped, want %v with none's row dropped", got, res.Summary.GetDroppedNoRowNumber(), want)
	}
	s.GetSplit().GetRowNumber().ImportId = "other"
	if res, rows = build(t, b, compile(t, featureSet(t), s), byEntity); len(rows) != 0 || res.Summary.GetDroppedNoRowNumber() != 6 {
		t.Errorf("row-number split of an import nobody came from: %d rows, %d dropped; want none and 6", len(rows), res.Summary.GetDroppedNoRowNumber())
	}

	s = spec(traitLabel(), rollingCutoff(T, T+day, 24*time.Hour))
	s.Split = &featurev1.SplitSpec{Method: &featurev1.SplitSpec_EntityHash{EntityHash: &featurev1.EntityHashSplit{TestFraction: 0.5, Seed: 9}}}
	_, rows = build(t, b, compile(t, featureSet(t), s), byEntity)
	sides := map[featurev1.Split]int{}
	for _, r := range rows {
		want := train
		if HashFraction(r.Entity, 9) < 0.5 {
			want = test
		}
		if r.Split != want {
			t.Errorf("hash split: %s at %d is %v, want %v", r.Entity, r.Cutoff, r.Split, want)
		}
		sides[r.Split]++
	}
	if len(rows) != 12 || sides[train] == 0 || sides[test] == 0 {
		t.Errorf("hash split: %d rows, sides %v; want 12 rows on both sides", len(rows), sides)
	}
}

// TestHashFraction: the hash is a fraction in [0, 1) that the seed changes.
func TestHashFraction(t *testing.T) {
	differ := 0
	for _, id := range []string{"", "a", "b", "customer-1", "customer-2", "\xff"} {
		f := HashFraction(id, 1)
		if f < 0 || f >= 1 || f != HashFraction(id, 1) {
			t.Errorf("HashFraction(%q, 1) = %v, want a stable fraction in [0, 1)", id, f)
		}
		if HashFraction(id, 2) != f {
			differ++
		}
	}
	if differ == 0 {
		t.Error("another seed gave the same fractions")
	}
}

// TestImportRowOrder: rows in import-row order come by the entity's row number, those without
// one last by entity id; the default order is by entity id, in byte order.
func TestImportRowOrder(t *testing.T) {
	h := newHistory()
	yes := map[string]*commonv1.Value{"y": str("yes")}
	h.identify("a", T-day, yes, fromImport("bank", 2))
	h.identify("b", T-day, yes, fromImport("bank", 0))
	h.identify("Z", T-day, yes)
	h.identify("c", T-day, yes, fromImport("bank", 1))
	h.identify("Y", T-day, yes)
	b := builder(t, h)
	plan := compile(t, featureSet(t), spec(traitLabel(), fixedCutoff(T)))
	for order, want := range map[featurev1.TrainingSetOrder][]string{
		featurev1.TrainingSetOrder_TRAINING_SET_ORDER_UNSPECIFIED: {"Y", "Z", "a", "b", "c"},
		byEntity: {"Y", "Z", "a", "b", "c"},
		featurev1.TrainingSetOrder_TRAINING_SET_ORDER_IMPORT_ROW: {"b", "c", "a", "Y", "Z"},
	} {
		_, rows := build(t, b, plan, order)
		var got []string
		for _, r := range rows {
			got = append(got, r.Entity)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%v: %v, want %v", order, got, want)
		}
		if rows[0].Entity == "b" && (rows[0].ImportID != "bank" || rows[0].ImportRow != 0) {
			t.Errorf("b's row locates bank row 0, not %s row %d", rows[0].ImportID, rows[0].ImportRow)
		}
	}
}

// TestEntityFilters: a list of entities, an import, trait conditions as of each cutoff (a
// trait set at exactly the cutoff does not hold yet) and a limit, which counts entities that
// have rows, the first in row order.
func TestEntityFilters(t *testing.T) {
	h := newHistory()
	h.identify("a", T-day, map[string]*commonv1.Value{"y": str("yes"), "tier": str("gold")}, fromImport("bank", 0))
	h.identify("b", T-day, map[string]*commonv1.Value{"y": str("yes")})
	h.identify("b", T, map[string]*commonv1.Value{"tier": str("gold")})
	h.identify("c", T+day, map[string]*commonv1.Value{"y": str("yes"), "tier": str("gold")}) // no row at T
	h.identify("d", T-day, map[string]*commonv1.Value{"y": str("yes"), "tier": str("gold")})
	h.track("d", "Visit", T-day, fromImport("clicks", 5))
	h.identify("e", T-day, map[string]*commonv1.Value{"y": str("yes"), "tier": str("gold")})
	b := builder(t, h)
	for _, c := range []struct {
		name   string
		filter *featurev1.EntityFilter
		want   []string
	}{
		{"entities", &featurev1.EntityFilter{Entities: []*commonv1.EntityKey{{Id: "d"}, {Id: "b", EntityType: "customer"}, {Id: "nobody"}}}, []string{"b", "d"}},
		{"import", &featurev1.EntityFilter{ImportId: "clicks"}, []string{"d"}},
		{"conditions", &featurev1.EntityFilter{Conditions: []*featurev1.FieldCondition{{Field: "traits.tier", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN, Values: []*commonv1.Value{str("gold")}}}}, []string{"a", "d", "e"}},
		{"limit", &featurev1.EntityFilter{Limit: 3}, []string{"a", "b", "d"}},
	} {
		s := spec(traitLabel(), fixedCutoff(T))
		s.Entities = c.filter
		res, rows := build(t, b, compile(t, featureSet(t), s), byEntity)
		var got []string
		for _, r := range rows {
			got = append(got, r.Entity)
		}
		if !reflect.DeepEqual(got, c.want) || res.Summary.GetEntities() != int64(len(c.want)) {
			t.Errorf("%s: %v (%d entities), want %v", c.name, got, res.Summary.GetEntities(), c.want)
		}
	}
}

// TestEmptyBucket: a build over no profiles sends its header, no rows and a zero summary
// without cutoff times.
func TestEmptyBucket(t *testing.T) {
	plan := compile(t, featureSet(t), spec(traitLabel(), fixedCutoff(T)))
	res, rows := build(t, builder(t, newHistory()), plan, byEntity)
	if len(rows) != 0 || res.Summary.GetRows() != 0 || res.Summary.GetMinCutoffTime() != nil || res.Summary.GetMaxCutoffTime() != nil {
		t.Errorf("%d rows, summary %v; want nothing", len(rows), res.Summary)
	}
	if res.LabelType != commonv1.ValueType_VALUE_TYPE_STRING {
		t.Errorf("label type %v, want STRING when no value says otherwise", res.LabelType)
	}
}

// TestIncompleteHorizonEndsAtTheStreamsLastRecord: whether a horizon is complete depends on
// the last record on the stream, not on which entities the training set selects: a row whose
// horizon the stream covers is kept when the entity with the latest record is filtered out
// or objected.
func TestIncompleteHorizonEndsAtTheStreamsLastRecord(t *testing.T) {
	h := newHistory()
	h.track("a", "Visit", T-day)
	h.track("z", "Visit", T+30*day)
	h.consent("z", T+30*day, commonv1.ConsentState_CONSENT_STATE_OBJECTED)
	b := builder(t, h)
	for name, filter := range map[string]*featurev1.EntityFilter{
		"every entity (z objected)": nil,
		"entity a":                  {Entities: []*commonv1.EntityKey{{Id: "a"}}},
	} {
		label := outcomeLabel(featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_ANY, 7*24*time.Hour, "Order")
		label.GetOutcome().DropIncompleteHorizon = true
		s := spec(label, fixedCutoff(T))
		s.Entities = filter
		res, rows := build(t, b, compile(t, featureSet(t), s), byEntity)
		if len(rows) != 1 || res.Summary.GetDroppedIncompleteHorizon() != 0 {
			t.Errorf("%s: %d rows, %d dropped for an incomplete horizon; want a's row kept, the stream reaching 30 days past the cutoff",
				name, len(rows), res.Summary.GetDroppedIncompleteHorizon())
		}
	}
}
