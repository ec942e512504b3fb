package dataset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/featureset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
)

// T is the instant most tests cut off at; hour and day are in Unix nanoseconds.
var T = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()

const (
	hour = int64(time.Hour)
	day  = featureset.Day
)

// history builds customers' profiles record by record, numbering the records as the events
// stream would.
type history struct {
	seq      uint64
	profiles map[eventlog.Key]*profile.Profile
}

func newHistory() *history { return &history{profiles: map[eventlog.Key]*profile.Profile{}} }

func (h *history) apply(key eventlog.Key, r *ingestv1.StoredEvent) uint64 {
	p := h.profiles[key]
	if p == nil {
		p = profile.New(key)
		h.profiles[key] = p
	}
	h.seq++
	if r.MessageId == "" {
		r.MessageId = fmt.Sprintf("m%d", h.seq)
	}
	p.Apply(h.seq, r)
	return h.seq
}

// track records an event of customer id; opts fill in more of the record.
func (h *history) track(id, name string, at int64, opts ...func(*ingestv1.StoredEvent)) uint64 {
	r := &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_TRACK, UserId: id, Name: name, EventTime: profile.Timestamp(at)}
	for _, o := range opts {
		o(r)
	}
	return h.apply(eventlog.UserKey(id), r)
}

// identify records a trait update of customer id; a nil value clears the trait.
func (h *history) identify(id string, at int64, traits map[string]*commonv1.Value, opts ...func(*ingestv1.StoredEvent)) uint64 {
	r := &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, UserId: id, Traits: traits, EventTime: profile.Timestamp(at)}
	for _, o := range opts {
		o(r)
	}
	return h.apply(eventlog.UserKey(id), r)
}

func (h *history) consent(id string, at int64, s commonv1.ConsentState) uint64 {
	return h.apply(eventlog.UserKey(id), &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_CONSENT, UserId: id, ConsentState: s, EventTime: profile.Timestamp(at)})
}

func (h *history) user(id string) *profile.Profile { return h.profiles[eventlog.UserKey(id)] }

func value(v float64) func(*ingestv1.StoredEvent) {
	return func(r *ingestv1.StoredEvent) { r.Value = &v }
}

func item(id string) func(*ingestv1.StoredEvent) {
	return func(r *ingestv1.StoredEvent) { r.ItemId = id }
}

func props(m map[string]*commonv1.Value) func(*ingestv1.StoredEvent) {
	return func(r *ingestv1.StoredEvent) { r.Properties = m }
}

func fromImport(id string, row int64) func(*ingestv1.StoredEvent) {
	return func(r *ingestv1.StoredEvent) { r.ImportId, r.RowNumber = id, row }
}

func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
func num(f float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
}
func integer(i int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: i}}
}

// openStore starts NATS and opens the profile bucket on it.
func openStore(t *testing.T) *state.Store {
	t.Helper()
	js, _ := embeddedtest.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := state.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// store writes every profile of h into s, as materialisation leaves them.
func (h *history) store(t *testing.T, s *state.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for k, p := range h.profiles {
		key, err := state.KeyOf(k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.KV().Put(ctx, key, profile.Encode(nil, p)); err != nil {
			t.Fatal(err)
		}
	}
}

// progress is materialisation standing at seq: LastSeq says seq, Wait returns at once.
type progress struct {
	seq              uint64
	lastErr, waitErr error
	waited           *time.Duration // the time Wait was given, when set
}

func (p progress) LastSeq(context.Context) (uint64, error) { return p.seq, p.lastErr }

func (p progress) Wait(ctx context.Context, seq uint64) error {
	if p.waited != nil {
		if d, ok := ctx.Deadline(); ok {
			*p.waited = time.Until(d)
		}
	}
	if seq != p.seq {
		return errors.New("waited for a sequence LastSeq did not give")
	}
	return p.waitErr
}

// builder stores h in a new bucket and returns a Builder reading it with materialisation at
// h's last record.
func builder(t *testing.T, h *history) *Builder {
	t.Helper()
	s := openStore(t)
	h.store(t, s)
	return NewBuilder(s, progress{seq: h.seq}, WithWaitTimeout(time.Minute))
}

// sets resolves the feature sets it holds, by name.
type sets map[string]*featureset.Set

func (s sets) Resolve(name string, version int64, _ bool) (*featureset.Set, error) {
	set, ok := s[name]
	if !ok || (version != 0 && version != set.Version) {
		return nil, errors.New("no such feature set")
	}
	return set, nil
}

// featureSet is the feature set most tests build with: visits counts "Visit" events,
// exposures "Exposed" events, and tier is the tier trait (default "none").
func featureSet(t *testing.T) sets {
	t.Helper()
	count := func(name, event string) *featurev1.Feature {
		return &featurev1.Feature{Name: name, Source: &featurev1.Feature_Aggregate{Aggregate: &featurev1.AggregateFeature{
			Aggregation: featurev1.Aggregation_AGGREGATION_COUNT, Filter: &featurev1.EventFilter{Names: []string{event}}}}}
	}
	set, err := featureset.Compile(&featurev1.FeatureSet{Name: "people", Version: 1, Features: []*featurev1.Feature{
		count("visits", "Visit"),
		count("exposures", "Exposed"),
		{Name: "tier", Type: commonv1.ValueType_VALUE_TYPE_STRING, DefaultValue: str("none"),
			Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: "tier"}}},
	}}, "feature_set")
	if err != nil {
		t.Fatal(err)
	}
	return sets{"people": set}
}

// traitLabel labels rows with trait y: whether it is one of positives, or y itself when
// there are none.
func traitLabel(positives ...*commonv1.Value) *featurev1.LabelSpec {
	return &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{Trait: "y", PositiveValues: positives}}}
}

// outcomeLabel labels rows with the events named names within horizon after the cutoff.
func outcomeLabel(agg featurev1.OutcomeAggregation, horizon time.Duration, names ...string) *featurev1.LabelSpec {
	return &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{
		Filter: &featurev1.EventFilter{Names: names}, Horizon: durationpb.New(horizon), Aggregation: agg}}}
}

func fixedCutoff(at int64) *featurev1.CutoffSpec {
	return &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: profile.Timestamp(at)}}
}

func rollingCutoff(start, end int64, step time.Duration) *featurev1.CutoffSpec {
	return &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_Rolling{Rolling: &featurev1.RollingCutoff{
		StartTime: profile.Timestamp(start), EndTime: profile.Timestamp(end), Step: durationpb.New(step)}}}
}

func spec(label *featurev1.LabelSpec, cutoff *featurev1.CutoffSpec) *featurev1.TrainingSetSpec {
	return &featurev1.TrainingSetSpec{FeatureSet: &featurev1.FeatureSetRef{Name: "people"}, Label: label, Cutoff: cutoff}
}

// compile compiles a spec that must be valid.
func compile(t *testing.T, r Resolver, s *featurev1.TrainingSetSpec) *Plan {
	t.Helper()
	p, err := Compile(r, s, "spec")
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// build builds plan in order and returns its result and every row (features copied).
func build(t *testing.T, b *Builder, plan *Plan, order featurev1.TrainingSetOrder) (Result, []Row) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rows []Row
	headers := 0
	res, err := b.Build(ctx, plan, order, func(Result) error {
		headers++
		return nil
	}, func(r Row) error {
		if headers != 1 {
			t.Errorf("a row came after %d headers, want 1", headers)
		}
		r.Features = slices.Clone(r.Features)
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if headers != 1 {
		t.Errorf("Build called header %d times, want once", headers)
	}
	return res, rows
}

// feature returns a row's value of the named column of plan.
func feature(t *testing.T, plan *Plan, r Row, name string) profile.Value {
	t.Helper()
	for i, c := range plan.Columns {
		if c.GetName() == name {
			return r.Features[i]
		}
	}
	t.Fatalf("no column %q", name)
	return profile.Value{}
}

// rowKey is a row's entity and cutoff, in days from T.
type rowKey struct {
	entity string
	days   float64
}

func keys(rows []Row) []rowKey {
	out := make([]rowKey, len(rows))
	for i, r := range rows {
		out[i] = rowKey{r.Entity, float64(r.Cutoff-T) / float64(day)}
	}
	return out
}
