package scoring

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features/featurestest"
	"github.com/bullseye-ml/bullseye/services/serving/internal/recommend"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring/scoringtest"
)

var (
	objected = commonv1.ConsentState_CONSENT_STATE_OBJECTED
	erased   = commonv1.ConsentState_CONSENT_STATE_ERASED
	granted  = commonv1.ConsentState_CONSENT_STATE_GRANTED
)

func knownPeople() *featurestest.Service {
	return featurestest.New([]*featurev1.FeatureSet{scoringtest.People}, knownCustomers())
}

func knownCustomers() map[string]featurestest.Customer {
	return map[string]featurestest.Customer{
		"c1":       {Consent: granted, Values: map[string]*commonv1.Value{"age": integer(30), "spend": num(4), "tier": str("gold")}},
		"c2":       {Values: map[string]*commonv1.Value{"age": integer(50), "tier": str("silver")}},
		"objected": {Consent: objected, Values: map[string]*commonv1.Value{"age": integer(30), "spend": num(1), "tier": str("gold")}},
		"erased":   {Consent: erased},
		"noage":    {Consent: granted, Values: map[string]*commonv1.Value{"spend": num(1)}},
	}
}

// TestScoreGatesAndFillsEachRow: a row is scored from its customer's looked-up values with
// its inline values over them, imputing what the model imputes and naming it; an unknown
// customer with nothing inline is NOT_FOUND; objected and erased customers are SUPPRESSED; a
// missing input the model does not impute is MISSING_INPUT, and a value of the wrong type is
// reported before it. One lookup asks for each customer once, and only for the feature set's
// columns the model takes.
func TestScoreGatesAndFillsEachRow(t *testing.T) {
	fs := knownPeople()
	m := load(t, fs.Serve(t), scoringtest.Linear(t, "spend", 1), 64)
	v := func(byName map[string]*commonv1.Value) []*commonv1.Value { return inputRow(t, m, byName) }
	outs, tasks, err := run(t, m, nil, []Row{
		{UserID: "c1"},
		{UserID: "c1", Values: v(map[string]*commonv1.Value{"spend": num(0.5)})},
		{UserID: "c2"},
		{UserID: "nobody"},
		{UserID: "nobody", Values: v(map[string]*commonv1.Value{"age": integer(20), "spend": num(1)})},
		{Values: v(map[string]*commonv1.Value{"age": integer(10), "bonus": num(0.5)})},
	}, []Row{
		{UserID: "objected"},
		{UserID: "erased"},
		{UserID: "noage"},
		{UserID: "c1", Values: v(map[string]*commonv1.Value{"age": str("old")})},
		{UserID: "noage", Values: v(map[string]*commonv1.Value{"spend": str("lots")})},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if task.Err() != nil {
			t.Errorf("task error %v", task.Err())
		}
	}
	type want struct {
		status  Status
		score   float64
		imputed []string
		field   string
		reason  string
	}
	wants := [][]want{{
		{status: StatusOK, score: 1 + 30 + 40, imputed: []string{"bonus"}},
		{status: StatusOK, score: 1 + 30 + 5, imputed: []string{"bonus"}},
		{status: StatusOK, score: 1 + 50 + 20, imputed: []string{"spend", "bonus"}},
		{status: StatusNotFound, field: "user_id", reason: "UNKNOWN_CUSTOMER"},
		{status: StatusOK, score: 1 + 20 + 10, imputed: []string{"bonus"}},
		{status: StatusOK, score: 1 + 10 + 20 + 50, imputed: []string{"spend"}},
	}, {
		{status: StatusSuppressed},
		{status: StatusSuppressed},
		{status: StatusInvalid, field: "features.age", reason: "MISSING_INPUT"},
		{status: StatusInvalid, field: "features.age", reason: "WRONG_TYPE"},
		{status: StatusInvalid, field: "features.spend", reason: "WRONG_TYPE"},
	}}
	for k := range wants {
		for i, w := range wants[k] {
			o := outs[k][i]
			if o.Status != w.status || (w.status == StatusOK && o.Score != w.score) || !slices.Equal(o.Imputed, w.imputed) ||
				o.Problem.GetField() != w.field || o.Problem.GetReason() != w.reason {
				t.Errorf("task %d row %d: status %v score %v imputed %v problem %v; want %v %v %v %s %s",
					k, i, o.Status, o.Score, o.Imputed, o.Problem, w.status, w.score, w.imputed, w.field, w.reason)
			}
		}
	}
	for _, req := range fs.Lookups() {
		var ids []string
		for _, e := range req.GetEntities() {
			ids = append(ids, e.GetId())
		}
		if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
			t.Errorf("a lookup asked for %v, some more than once", ids)
		}
		if !slices.Equal(req.GetFeatureNames(), []string{"age", "spend"}) || req.GetLayout() != featurev1.OnlineLayout_ONLINE_LAYOUT_COLUMNS {
			t.Errorf("a lookup of %v in layout %v, want the model's inputs of the set, [age spend], in columns", req.GetFeatureNames(), req.GetLayout())
		}
	}
}

// TestContributionsKeepTheirValues: with contributions, a row's contributions and the
// baseline add up to its score, and the values it reports outlive the batch's lookup (whose
// storage the next batch reuses); inline values are reported as given.
func TestContributionsKeepTheirValues(t *testing.T) {
	fs := knownPeople()
	m := load(t, fs.Serve(t), scoringtest.Linear(t, "spend", 1), 64)
	if !m.HasContributions || m.Baseline() != 1 {
		t.Fatalf("contributions %v, baseline %v; want a linear model's, 1", m.HasContributions, m.Baseline())
	}
	bonus := num(0.25)
	withContributions := func(t *Task) { t.Contributions = true }
	outs, _, err := run(t, m, withContributions, []Row{{UserID: "c1", Values: inputRow(t, m, map[string]*commonv1.Value{"bonus": bonus})}})
	if err != nil {
		t.Fatal(err)
	}
	first := outs[0][0]
	sum := m.Baseline()
	for _, c := range first.Contributions {
		sum += c
	}
	if len(first.Contributions) != len(m.Inputs) || math.Abs(sum-first.Score) > 1e-9 {
		t.Errorf("contributions %v and baseline %v add up to %v, want the score %v", first.Contributions, m.Baseline(), sum, first.Score)
	}
	if first.Values[2] != bonus {
		t.Errorf("the inline bonus was reported as %v, not as given", first.Values[2])
	}
	for range 3 { // later batches of the same shape, with another customer's values
		if _, _, err := run(t, m, withContributions, []Row{{UserID: "c2", Values: inputRow(t, m, map[string]*commonv1.Value{"spend": num(7)})}}); err != nil {
			t.Fatal(err)
		}
	}
	if first.Values[0].GetIntValue() != 30 || first.Values[1].GetNumberValue() != 4 {
		t.Errorf("after later batches the first row reports age %v and spend %v, want 30 and 4", first.Values[0], first.Values[1])
	}
	if outs, _, _ := run(t, m, nil, []Row{{UserID: "c1"}}); outs[0][0].Contributions != nil || outs[0][0].Values != nil {
		t.Errorf("without asking, a row has contributions %v and values %v", outs[0][0].Contributions, outs[0][0].Values)
	}
}

// TestLookupFailureFailsOnlyTheRowsThatNeedIt: when the feature service fails, the tasks with
// customers end with ErrLookup and tasks of inline rows alone are still scored.
func TestLookupFailureFailsOnlyTheRowsThatNeedIt(t *testing.T) {
	fs := knownPeople()
	fs.Fail(status.Error(codes.Unavailable, "feature service down"))
	m := load(t, fs.Serve(t), scoringtest.Linear(t, "spend", 1), 64)
	outs, tasks, err := run(t, m, nil,
		[]Row{{UserID: "c1"}},
		[]Row{{Values: inputRow(t, m, map[string]*commonv1.Value{"age": integer(10), "spend": num(1)})}})
	if !errors.Is(err, features.ErrLookup) || !errors.Is(tasks[0].Err(), features.ErrLookup) {
		t.Errorf("group error %v and the customer's task %v, want ErrLookup", err, tasks[0].Err())
	}
	if tasks[1].Err() != nil || outs[1][0].Status != StatusOK || outs[1][0].Score != 1+10+10 {
		t.Errorf("the inline task: %v, %+v; want it scored 21", tasks[1].Err(), outs[1][0])
	}
}

// audience keeps customers whose tier is gold.
type audience struct{}

func (audience) Names() []string { return []string{"tier"} }

func (audience) Match(value func(string) (*commonv1.Value, bool)) bool {
	v, ok := value("tier")
	return ok && v.GetStringValue() == "gold"
}

// TestAudienceFilter: a filter's columns are looked up with the model's; a customer outside it
// is FILTERED, before suppression is considered, and a missing value is outside it.
func TestAudienceFilter(t *testing.T) {
	fs := knownPeople()
	fs.SetCustomer("silver-objected", featurestest.Customer{Consent: objected, Values: map[string]*commonv1.Value{"age": integer(1), "tier": str("silver")}})
	m := load(t, fs.Serve(t), scoringtest.Linear(t, "spend", 1), 64)
	outs, _, err := run(t, m, func(t *Task) { t.Filter = audience{} },
		[]Row{{UserID: "c1"}, {UserID: "c2"}, {UserID: "objected"}, {UserID: "silver-objected"}, {UserID: "noage"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{StatusOK, StatusFiltered, StatusSuppressed, StatusFiltered, StatusFiltered}
	for i, o := range outs[0] {
		if o.Status != want[i] {
			t.Errorf("row %d: %v, want %v", i, o.Status, want[i])
		}
	}
	reqs := fs.Lookups()
	if last := reqs[len(reqs)-1]; !slices.Equal(last.GetFeatureNames(), []string{"age", "spend", "tier"}) {
		t.Errorf("the lookup asked for %v, want the model's columns and the filter's: [age spend tier]", last.GetFeatureNames())
	}
}

// TestExpiredTasksAreDropped: a task whose caller has gone ends with ErrExpired, its
// neighbours are scored.
func TestExpiredTasksAreDropped(t *testing.T) {
	m := load(t, knownPeople().Serve(t), scoringtest.Linear(t, "spend", 1), 64)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	g := NewGroup(2)
	expired := NewTask(gone, g, []Row{{UserID: "c1"}}, make([]Outcome, 1))
	live := NewTask(context.Background(), g, []Row{{UserID: "c1"}}, make([]Outcome, 1))
	if err := m.Submit(expired, live); err != nil {
		t.Fatal(err)
	}
	<-g.Done()
	if !errors.Is(expired.Err(), batch.ErrExpired) || live.Err() != nil || live.Out[0].Status != StatusOK {
		t.Errorf("expired task %v, live task %v %v; want ErrExpired and a score", expired.Err(), live.Err(), live.Out[0].Status)
	}
}

// TestFeatureSetWithoutTheModelsInputs: a feature set that has none of the model's inputs is
// still looked up for consent, by its first column, and rows are scored from inline values; one
// without columns is ErrLookup.
func TestFeatureSetWithoutTheModelsInputs(t *testing.T) {
	fs := featurestest.New([]*featurev1.FeatureSet{scoringtest.People,
		{Name: "other", Version: 1, Columns: []*featurev1.FeatureColumn{{Name: "tier", Type: commonv1.ValueType_VALUE_TYPE_STRING}}},
		{Name: "empty", Version: 1},
	}, knownCustomers())
	fc := fs.Serve(t)
	a := scoringtest.Linear(t, "spend", 1)
	a.GetLineage().FeatureSet = "other"
	m := load(t, fc, a, 64)
	inline := inputRow(t, m, map[string]*commonv1.Value{"age": integer(2), "spend": num(0)})
	outs, _, err := run(t, m, nil, []Row{{UserID: "c1", Values: inline}, {UserID: "objected", Values: inline}})
	if err != nil {
		t.Fatal(err)
	}
	if outs[0][0].Status != StatusOK || outs[0][0].Score != 3 || outs[0][1].Status != StatusSuppressed {
		t.Errorf("outcomes %+v, want c1 scored 3 and the objected customer suppressed", outs[0])
	}
	reqs := fs.Lookups()
	if last := reqs[len(reqs)-1]; !slices.Equal(last.GetFeatureNames(), []string{"tier"}) || last.GetFeatureSet().GetName() != "other" {
		t.Errorf("the lookup asked %s for %v, want other for [tier]", last.GetFeatureSet().GetName(), last.GetFeatureNames())
	}

	a = scoringtest.Linear(t, "spend", 1)
	a.ModelName, a.GetLineage().FeatureSet = "empty-set", "empty"
	m = load(t, fc, a, 64)
	if _, tasks, _ := run(t, m, nil, []Row{{UserID: "c1", Values: inline}}); !errors.Is(tasks[0].Err(), features.ErrLookup) {
		t.Errorf("a feature set without columns: %v, want ErrLookup", tasks[0].Err())
	}
}

// TestWarm: the warm-up scores rows of imputed values, also for inputs the model does not
// impute, and only logs a lookup that fails (the feature service may come later).
func TestWarm(t *testing.T) {
	fs := knownPeople()
	m := load(t, fs.Serve(t), scoringtest.Linear(t, "spend", 1), 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Warm(ctx); err != nil {
		t.Errorf("Warm: %v", err)
	}
	if len(fs.Lookups()) == 0 || fs.Lookups()[0].GetEntities()[0].GetId() != warmupID {
		t.Errorf("the warm-up looked up %v, want the warm-up id", fs.Lookups())
	}
	fs.Fail(status.Error(codes.Unavailable, "down"))
	a := scoringtest.Linear(t, "spend", 1)
	a.ModelName = "cold"
	if err := load(t, fs.Serve(t), a, 2).Warm(ctx); err != nil {
		t.Errorf("Warm with the feature service down: %v, want only a log", err)
	}
}

// TestRecommenderRows: a recommendation row gets the user's top items, the popularity ranking
// (marked a fallback) for a user the model does not know, and nothing for a customer who
// objected; a pair row gets the pair's score, NOT_FOUND for an item the model does not know.
// Consent comes from the first feature set listed; with none, the rows fail.
func TestRecommenderRows(t *testing.T) {
	fs := knownPeople()
	fs.SetCustomer("u1", featurestest.Customer{Consent: granted})
	m := load(t, fs.Serve(t), scoringtest.Recommender(t, "recs", 1), 64)
	if !m.Recommender() || len(m.Inputs) != 0 {
		t.Fatalf("a recommender with %d inputs", len(m.Inputs))
	}
	query := &recommend.Query{K: 2}
	outs, _, err := run(t, m, func(t *Task) {
		if len(t.Rows) == 3 {
			t.Query = query
		}
	}, []Row{{UserID: "u1"}, {UserID: "stranger"}, {UserID: "objected"}}, []Row{{UserID: "u1", ItemID: "i1"}, {UserID: "u1", ItemID: "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(items []recommend.Item) []string {
		var out []string
		for _, it := range items {
			out = append(out, it.ID)
		}
		return out
	}
	recs := outs[0]
	if recs[0].Status != StatusOK || !slices.Equal(ids(recs[0].Items), []string{"i1", "i0"}) || recs[0].Fallback {
		t.Errorf("u1: %v %v fallback %v, want [i1 i0] from the model", recs[0].Status, ids(recs[0].Items), recs[0].Fallback)
	}
	if recs[1].Status != StatusOK || !slices.Equal(ids(recs[1].Items), []string{"i0", "i1"}) || !recs[1].Fallback {
		t.Errorf("a stranger: %v %v fallback %v, want the popularity ranking [i0 i1]", recs[1].Status, ids(recs[1].Items), recs[1].Fallback)
	}
	if recs[2].Status != StatusSuppressed || recs[2].Items != nil {
		t.Errorf("an objected customer: %v %v, want suppressed", recs[2].Status, recs[2].Items)
	}
	pairs := outs[1]
	if pairs[0].Status != StatusOK || pairs[0].Score != 2 || pairs[1].Status != StatusNotFound || pairs[1].Problem.GetReason() != "UNKNOWN_ITEM" {
		t.Errorf("pairs %+v, want u1·i1 = 2 and an unknown item", pairs)
	}

	none := featurestest.New(nil, map[string]featurestest.Customer{"u1": {Consent: granted}})
	a := scoringtest.Recommender(t, "recs", 1)
	a.ModelName = "no-sets"
	if _, tasks, _ := run(t, load(t, none.Serve(t), a, 64), func(t *Task) { t.Query = query }, []Row{{UserID: "u1"}}); !errors.Is(tasks[0].Err(), features.ErrNoFeatureSet) {
		t.Errorf("without any feature set: %v, want ErrNoFeatureSet", tasks[0].Err())
	}
}

// TestGroup: a group of none is done at once; it ends when its last task does, with the first
// error any task ended with.
func TestGroup(t *testing.T) {
	select {
	case <-NewGroup(0).Done():
	default:
		t.Error("a group of no tasks is not done")
	}
	g := NewGroup(3)
	first, second := errors.New("first"), errors.New("second")
	g.Abandon(1, nil)
	g.Abandon(1, first)
	select {
	case <-g.Done():
		t.Fatal("done with a task left")
	default:
	}
	task := NewTask(context.Background(), g, nil, nil)
	task.Done = func(t2 *Task, err error) {
		if t2 != task || err != second {
			t.Errorf("Done(%p, %v), want the task and its error", t2, err)
		}
	}
	task.Fail(second)
	<-g.Done()
	if g.Err() != first || task.Err() != second {
		t.Errorf("group error %v, task error %v; want first and second", g.Err(), task.Err())
	}
}

type ctxKey struct{}

// TestLookupContext: a batch's lookup keeps the first task's values, outlives the tasks'
// cancellation, and has the latest of their deadlines, or none when a task has none.
func TestLookupContext(t *testing.T) {
	base := context.WithValue(context.Background(), ctxKey{}, "trace")
	soon, cancelSoon := context.WithTimeout(base, time.Hour)
	defer cancelSoon()
	later, cancelLater := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancelLater()
	task := func(ctx context.Context) *Task { return NewTask(ctx, NewGroup(1), nil, nil) }

	ctx, cancel := lookupContext([]*Task{task(soon), task(later)})
	defer cancel()
	d, ok := ctx.Deadline()
	if want, _ := later.Deadline(); !ok || !d.Equal(want) {
		t.Errorf("deadline %v (%v), want the later task's %v", d, ok, want)
	}
	if ctx.Value(ctxKey{}) != "trace" {
		t.Error("the first task's values are lost")
	}
	cancelSoon()
	if ctx.Err() != nil {
		t.Errorf("cancelling a task cancelled the lookup: %v", ctx.Err())
	}
	ctx2, cancel2 := lookupContext([]*Task{task(later), task(context.Background())})
	defer cancel2()
	if _, ok := ctx2.Deadline(); ok {
		t.Error("a lookup has a deadline though one task has none")
	}
}
