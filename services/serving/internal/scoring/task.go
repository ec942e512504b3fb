package scoring

import (
	"context"
	"sync"
	"sync/atomic"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/recommend"
)

// Status is the outcome of one row.
type Status int

// Row outcomes.
const (
	// StatusOK: scored.
	StatusOK Status = iota + 1
	// StatusSuppressed: not scored, the customer objected to marketing or was erased.
	StatusSuppressed
	// StatusNotFound: not scored, the customer is unknown and nothing was given inline (or,
	// for a recommender's pair, the model knows neither the user nor the item).
	StatusNotFound
	// StatusInvalid: not scored, a value is malformed; Outcome.Problem says which.
	StatusInvalid
	// StatusFiltered: not scored, the customer is outside the task's audience filter.
	StatusFiltered
)

// Row is one thing to score.
type Row struct {
	// UserID is the customer's id; empty for inline-only rows (no lookup, no consent check).
	UserID string
	// Values are the inline raw values by input index (Model.InputIndex); nil entries were
	// not given (fetched or imputed). A nil slice gives nothing inline.
	Values []*commonv1.Value
	// ItemID is the item to score, for recommenders' pairs.
	ItemID string
}

// Outcome is one row's result.
type Outcome struct {
	// Status says whether the row was scored.
	Status Status
	// Problem says what was wrong, with StatusInvalid and StatusNotFound; its field is
	// relative to the row ("features.age", "user_id").
	Problem *commonv1.Problem
	// Score is the raw output; Probability the positive class's probability when the model
	// gives one; Positive the predicted class of binary classifiers.
	Score       float64
	Probability float64
	Positive    bool
	// Contributions (by input) and Values (the raw values used, by input; nil where missing)
	// are set when the task asked for contributions from a linear model.
	Contributions []float64
	Values        []*commonv1.Value
	// Outputs are the row's named numeric outputs beyond score, probability, label and value
	// (a customer lifetime value model's), by name; nil for other models.
	Outputs map[string]float64
	// Items and Fallback are a recommendation's result.
	Items    []recommend.Item
	Fallback bool
	// Imputed names the inputs the row was missing and the model imputed, in input order;
	// nil when none was.
	Imputed []string
}

// Filter selects the rows of an audience by the customer's current feature values.
type Filter interface {
	// Names are the feature columns the filter reads.
	Names() []string
	// Match reports whether the customer whose values value gives belongs to the audience;
	// value returns a column's value and whether it is present (not missing, not null). The
	// values belong to the batch's lookup: Match must not keep them.
	Match(value func(name string) (*commonv1.Value, bool)) bool
}

// Task is some rows of one request for one model version: the unit the core queues.
type Task struct {
	ctx   context.Context
	group *Group

	// Rows are the rows to score, at most the model's batch size.
	Rows []Row
	// Out receives one outcome per row.
	Out []Outcome
	// Contributions asks for per-input contributions (linear models).
	Contributions bool
	// Query makes the task a recommendation: every row's user gets its top items.
	Query *recommend.Query
	// Filter, when set, leaves out rows outside an audience (StatusFiltered).
	Filter Filter
	// Done, when set, is called once the task has ended, before its group hears of it.
	Done func(t *Task, err error)
	// imputeAll imputes every missing input, even those the model does not impute (the
	// warm-up's rows of missing values).
	imputeAll bool

	err error
}

// NewTask returns a task of rows whose outcomes go to out (len(out) == len(rows)), ended
// through g.
func NewTask(ctx context.Context, g *Group, rows []Row, out []Outcome) *Task {
	return &Task{ctx: ctx, group: g, Rows: rows, Out: out}
}

// Context implements batch.Task.
func (t *Task) Context() context.Context { return t.ctx }

// Size implements batch.Task.
func (t *Task) Size() int { return len(t.Rows) }

// Fail implements batch.Task.
func (t *Task) Fail(err error) { t.finish(err) }

// Err returns the error the task ended with, if any.
func (t *Task) Err() error { return t.err }

func (t *Task) finish(err error) {
	t.err = err
	if t.Done != nil {
		t.Done(t, err)
	}
	t.group.done(err)
}

// Group waits for the tasks of one request.
type Group struct {
	pending atomic.Int64
	ch      chan struct{}
	once    sync.Once
	mu      sync.Mutex
	err     error
}

// NewGroup returns a group expecting n tasks.
func NewGroup(n int) *Group {
	g := &Group{ch: make(chan struct{})}
	g.pending.Store(int64(n))
	if n == 0 {
		close(g.ch)
	}
	return g
}

// Abandon ends n tasks that were never submitted, with err.
func (g *Group) Abandon(n int, err error) {
	for range n {
		g.done(err)
	}
}

func (g *Group) done(err error) {
	if err != nil {
		g.mu.Lock()
		if g.err == nil {
			g.err = err
		}
		g.mu.Unlock()
	}
	if g.pending.Add(-1) == 0 {
		g.once.Do(func() { close(g.ch) })
	}
}

// Done is closed once every task has ended.
func (g *Group) Done() <-chan struct{} { return g.ch }

// Err returns the first error a task ended with.
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
