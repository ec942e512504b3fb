// Package scoring is one loaded model version at work: its queue in the batched core, and
// the processing of a batch — one feature lookup for all its customers (which also gives
// their consent state), one preprocessing pass and one matrix operation through pkg/artifact
// (or, for recommenders, one pass of package recommend) — with an outcome per row.
package scoring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
	"github.com/bullseye-ml/bullseye/services/serving/internal/recommend"
)

// Deps are what a model needs from its serving instance.
type Deps struct {
	// Features looks customers up.
	Features *features.Client
	// Pool is the shared compute pool; Metrics the core's metrics (optional).
	Pool    *batch.Pool
	Metrics *batch.Metrics
	// Options returns the batching settings of a model, by name.
	Options func(model string) batch.Options
	// Logger logs what the model does.
	Logger *slog.Logger
}

// Model is a loaded model version. It is safe for concurrent use.
type Model struct {
	// Name and Version identify the version.
	Name    string
	Version int64
	// Family and Task are the model's.
	Family modelv1.ModelFamily
	Task   modelv1.TaskKind
	// Inputs are the raw inputs (empty for recommenders).
	Inputs []*modelv1.InputColumn
	// Classification maps outputs to labels; binary classifiers only.
	Classification *modelv1.ClassificationOutput
	// HasProbability and HasContributions describe the scorer's outputs.
	HasProbability   bool
	HasContributions bool
	// Outputs are the named outputs its predictions carry.
	Outputs *modelv1.OutputSignature

	scorer   artifact.Scorer
	info     *artifact.Info
	rec      *recommend.Model
	baseline float64

	fc         *features.Client
	setName    string
	setVersion int64
	plan       atomic.Pointer[plan]
	imputes    []bool // by input: whether a missing value is imputed

	queue   *batch.Queue[*Task]
	labels  batch.Labels
	metrics *batch.Metrics
	logger  *slog.Logger
	work    sync.Pool
}

// plan is how the model's lookups read the feature set.
type plan struct {
	set   *features.Set
	names []string // the columns requested
	pos   []int    // input index of each requested column, -1 for none
}

// Load prepares an artifact for scoring and starts its queue.
func Load(d Deps, a *modelv1.ModelArtifact) (*Model, error) {
	m := &Model{
		Name:           a.GetModelName(),
		Version:        a.GetModelVersion(),
		Family:         a.GetFamily(),
		Task:           a.GetTask(),
		Inputs:         a.GetInputs(),
		Classification: a.GetClassification(),
		fc:             d.Features,
		setName:        a.GetLineage().GetFeatureSet(),
		setVersion:     a.GetLineage().GetFeatureSetVersion(),
		metrics:        d.Metrics,
		logger:         d.Logger.With(slog.String("model", a.GetModelName()), slog.Int64("version", a.GetModelVersion())),
	}
	if recommend.IsRecommender(m.Task) {
		rec, err := recommend.New(a)
		if err != nil {
			return nil, err
		}
		m.rec = rec
		m.Inputs = nil
	} else {
		s, err := artifact.NewScorer(a)
		if err != nil {
			return nil, fmt.Errorf("loading %s version %d: %w", m.Name, m.Version, err)
		}
		m.scorer, m.info = s, s.Info()
		m.imputes = make([]bool, len(m.Inputs))
		for k, in := range m.Inputs {
			m.imputes[k] = artifact.Imputes(in)
		}
		m.HasProbability, m.HasContributions = m.info.HasProbability, m.info.HasContributions
		if m.HasContributions {
			var res artifact.Result
			b := artifact.NewBatch(m.info)
			b.Add(time.Time{})
			if err := s.Score(context.Background(), b, &res); err != nil {
				return nil, fmt.Errorf("loading %s version %d: %w", m.Name, m.Version, err)
			}
			m.baseline = res.Baseline
		}
	}
	m.Outputs = artifact.Outputs(a, m.HasProbability)
	m.work.New = func() any { return &work{} }
	m.labels = batch.Labels{Model: m.Name, Version: strconv.FormatInt(m.Version, 10)}
	q, err := batch.NewQueue(d.Pool, d.Options(m.Name), d.Metrics, m.labels, m.process)
	if err != nil {
		return nil, fmt.Errorf("batching settings of %s: %w", m.Name, err)
	}
	m.queue = q
	return m, nil
}

// Recommender reports whether the model is a recommender.
func (m *Model) Recommender() bool { return m.rec != nil }

// InputIndex returns the position of the named raw input in Row.Values.
func (m *Model) InputIndex(name string) (int, bool) {
	if m.info == nil {
		return 0, false
	}
	return m.info.InputIndex(name)
}

// MaxBatchSize is the most rows of one task.
func (m *Model) MaxBatchSize() int { return m.queue.Options().MaxBatchSize }

// FeatureSet returns the name and version of the feature set the model was trained on
// (empty for recommenders).
func (m *Model) FeatureSet() (string, int64) { return m.setName, m.setVersion }

// Submit queues tasks, all or none (batch.ErrQueueFull, batch.ErrClosed).
func (m *Model) Submit(tasks ...*Task) error { return m.queue.Enqueue(tasks...) }

// Close stops the model's queue; what it holds is still scored. Wait waits for that.
func (m *Model) Close() { m.queue.Close() }

// Wait waits after Close until the queue has drained, then forgets its metrics.
func (m *Model) Wait() {
	m.queue.Wait()
	m.metrics.Forget(m.labels)
}

// warmupID is the customer id warm-up lookups ask for: nobody.
const warmupID = "bullseye-serving-warmup"

// Warm runs the model once before it takes traffic: it resolves its feature set, looks a
// customer up (which also opens the connection) and scores a few rows of imputed values.
// A lookup failure is only logged: the feature service may come later.
func (m *Model) Warm(ctx context.Context) error {
	if m.rec != nil {
		g := NewGroup(1)
		t := NewTask(ctx, g, []Row{{UserID: warmupID}}, make([]Outcome, 1))
		t.Query = &recommend.Query{K: 10}
		return m.runWarm(ctx, g, []*Task{t})
	}
	rows := make([]Row, 4)
	rows[0].UserID = warmupID
	for i := range rows {
		// Every value missing: the rows exercise imputation and the whole design.
		rows[i].Values = make([]*commonv1.Value, len(m.Inputs))
	}
	out := make([]Outcome, len(rows))
	size := m.MaxBatchSize()
	// One task at a time: a small queue (max_queue) must not refuse the warm-up.
	for start := 0; start < len(rows); start += size {
		end := min(len(rows), start+size)
		g := NewGroup(1)
		t := NewTask(ctx, g, rows[start:end], out[start:end])
		t.Contributions = m.HasContributions
		t.imputeAll = true
		if err := m.runWarm(ctx, g, []*Task{t}); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) runWarm(ctx context.Context, g *Group, tasks []*Task) error {
	if err := m.Submit(tasks...); err != nil {
		return err
	}
	select {
	case <-g.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := g.Err(); err != nil {
		if errors.Is(err, features.ErrLookup) || errors.Is(err, features.ErrNoFeatureSet) {
			m.logger.Warn("warm-up lookup failed; the model is loaded", slog.Any("error", err))
			return nil
		}
		return err
	}
	for _, t := range tasks {
		for i, o := range t.Out {
			// A model that imputes nothing (a CLV model) refuses the rows of missing values.
			if o.Status == StatusInvalid && o.Problem.GetReason() != "MISSING_INPUT" {
				return fmt.Errorf("warming %s version %d: row %d: %s", m.Name, m.Version, i, o.Problem.GetDescription())
			}
		}
	}
	return nil
}

// resolve returns the model's lookup plan, resolving its feature set the first time.
func (m *Model) resolve(ctx context.Context) (*plan, error) {
	if p := m.plan.Load(); p != nil {
		return p, nil
	}
	p := &plan{}
	if m.setName != "" && m.rec == nil {
		set, err := m.fc.Resolve(ctx, m.setName, m.setVersion)
		if err != nil {
			return nil, err
		}
		p.set = set
		for k, in := range m.Inputs {
			if set.Has(in.GetName()) {
				p.names = append(p.names, in.GetName())
				p.pos = append(p.pos, k)
			}
		}
	} else {
		set, err := m.fc.ConsentSet(ctx)
		if err != nil {
			return nil, err
		}
		p.set = set
	}
	if len(p.names) == 0 {
		if len(p.set.Columns) == 0 {
			return nil, fmt.Errorf("%w: feature set %s has no columns", features.ErrLookup, p.set.Name)
		}
		// Consent only: the smallest lookup the service takes is one column.
		p.names, p.pos = []string{p.set.Columns[0].GetName()}, []int{-1}
	}
	m.plan.Store(p)
	return p, nil
}

// work is the scratch memory of one batch.
type work struct {
	ids    []string
	index  map[string]int
	names  []string
	look   features.Lookup
	batch  *artifact.Batch
	result artifact.Result
	refs   []ref
	users  []string
	items  []string
	scores []float64
	known  []bool
	qs     []*recommend.Query
	recs   []recommend.Result
}

// ref points a scored row back at its task and row; bad rows already have their outcome.
type ref struct {
	t   *Task
	i   int
	bad bool
}

func (w *work) reset() {
	w.ids, w.names, w.refs = w.ids[:0], w.names[:0], w.refs[:0]
	w.users, w.items, w.scores, w.known = w.users[:0], w.items[:0], w.scores[:0], w.known[:0]
	clear(w.qs)
	w.qs, w.recs = w.qs[:0], w.recs[:0]
	clear(w.index)
}

// process handles one batch: one lookup, then, holding a compute slot, one scoring pass.
func (m *Model) process(b *batch.Batch[*Task]) {
	w := m.work.Get().(*work)
	defer func() {
		// The batch's tasks have ended: nothing of theirs points into the lookup any more
		// (score copies what an outcome keeps).
		w.look.Reset()
		m.work.Put(w)
	}()
	w.reset()
	if w.index == nil {
		w.index = map[string]int{}
	}
	tasks := b.Tasks()
	var look *features.Lookup
	var lookupErr error
	for _, t := range tasks {
		for _, r := range t.Rows {
			if r.UserID == "" {
				continue
			}
			if _, ok := w.index[r.UserID]; !ok {
				w.index[r.UserID] = len(w.ids)
				w.ids = append(w.ids, r.UserID)
			}
		}
	}
	var p *plan
	if len(w.ids) > 0 {
		ctx, cancel := lookupContext(tasks)
		p, lookupErr = m.resolve(ctx)
		if lookupErr == nil {
			w.names = append(w.names, p.names...)
			for _, t := range tasks {
				if t.Filter == nil {
					continue
				}
				for _, n := range t.Filter.Names() {
					if !contains(w.names, n) {
						w.names = append(w.names, n)
					}
				}
			}
			if lookupErr = m.fc.Lookup(ctx, p.set, w.names, w.ids, &w.look); lookupErr == nil {
				look = &w.look
			}
		}
		cancel()
	}
	tasks = b.DropExpired()
	if lookupErr != nil {
		kept := tasks[:0]
		for _, t := range tasks {
			if needsLookup(t) {
				t.finish(lookupErr)
				continue
			}
			kept = append(kept, t)
		}
		tasks = kept
	}
	if len(tasks) == 0 {
		return
	}
	var err error
	b.Compute(func() {
		if m.rec != nil {
			err = m.recommend(w, tasks, look)
		} else {
			err = m.score(w, tasks, look, p)
		}
	})
	for _, t := range tasks {
		t.finish(err)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func needsLookup(t *Task) bool {
	for _, r := range t.Rows {
		if r.UserID != "" {
			return true
		}
	}
	return false
}

// lookupContext returns the context of a batch's lookup: the first task's values (its
// trace), no cancellation of its own, and the latest deadline of the batch's tasks (none when
// one has none: the client's timeout then bounds the call).
func lookupContext(tasks []*Task) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, t := range tasks {
		d, ok := t.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(tasks[0].ctx))
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(tasks[0].ctx), latest)
}

// gate applies what the lookup says of a row's customer: suppression, unknown customers, the
// audience filter. It returns the customer's index in look (-1 without a lookup) and whether
// the row goes on to scoring.
func gate(w *work, t *Task, i int, look *features.Lookup, notFound bool) (int, bool) {
	r := &t.Rows[i]
	o := &t.Out[i]
	if r.UserID == "" || look == nil {
		return -1, true
	}
	e := w.index[r.UserID]
	// The segment first: a customer outside it is not part of the audience at all.
	if t.Filter != nil {
		match := t.Filter.Match(func(name string) (*commonv1.Value, bool) {
			for j, n := range w.names {
				if n == name {
					v := look.Value(e, j)
					return v, look.Present(e, j) && v.GetKind() != nil
				}
			}
			return nil, false
		})
		if !match {
			o.Status = StatusFiltered
			return -1, false
		}
	}
	if features.Suppressed(look.Consent(e)) {
		o.Status = StatusSuppressed
		return -1, false
	}
	if notFound && !look.Found(e) && r.Values == nil {
		o.Status = StatusNotFound
		o.Problem = &commonv1.Problem{Field: "user_id", Reason: "UNKNOWN_CUSTOMER",
			Description: "the feature service does not know this customer and no features were given inline"}
		return -1, false
	}
	return e, true
}

// score scores the feature rows of tasks: one preprocessing pass and one matrix operation.
func (m *Model) score(w *work, tasks []*Task, look *features.Lookup, p *plan) error {
	if w.batch == nil {
		w.batch = artifact.NewBatch(m.info)
	}
	b := w.batch
	b.Reset()
	b.Now = time.Now()
	b.Contributions = false
	width := len(m.Inputs)
	for _, t := range tasks {
		b.Contributions = b.Contributions || (t.Contributions && m.HasContributions)
		for i := range t.Rows {
			t.Out[i] = Outcome{}
			e, ok := gate(w, t, i, look, true)
			if !ok {
				continue
			}
			row := b.Add(time.Time{})
			if e >= 0 {
				for j, k := range p.pos {
					if k >= 0 {
						row[k] = look.Value(e, j)
					}
				}
			}
			for k, v := range t.Rows[i].Values {
				if v != nil {
					row[k] = v
				}
			}
			// A row missing an input the model does not impute is scored with its
			// neighbours all the same (its values are imputed), but its problem stands.
			bad := !t.imputeAll && m.checkMissing(row, &t.Out[i])
			w.refs = append(w.refs, ref{t: t, i: i, bad: bad})
		}
	}
	if len(w.refs) == 0 {
		return nil
	}
	res := &w.result
	if err := m.scorer.Score(context.Background(), b, res); err != nil {
		return fmt.Errorf("scoring %s version %d: %w", m.Name, m.Version, err)
	}
	for k, rf := range w.refs {
		o := &rf.t.Out[rf.i]
		// A value given of the wrong type is the first thing to fix, before a missing one.
		if pr := res.Problems[k]; pr != nil {
			o.Status, o.Problem, o.Imputed = StatusInvalid, pr, nil
			continue
		}
		if rf.bad {
			continue
		}
		o.Status = StatusOK
		o.Score = res.Scores[k]
		if res.Probabilities != nil {
			o.Probability = res.Probabilities[k]
		}
		if res.Positive != nil {
			o.Positive = res.Positive[k]
		}
		if len(res.Outputs) > 0 {
			o.Outputs = make(map[string]float64, len(res.Outputs))
			for name, col := range res.Outputs {
				o.Outputs[name] = col[k]
			}
		}
		if rf.t.Contributions && res.Contributions != nil {
			o.Contributions = append([]float64(nil), res.Contributions[k*width:(k+1)*width]...)
			o.Values = keep(b.Row(k), rf.t.Rows[rf.i].Values)
		}
	}
	return nil
}

// checkMissing applies the model's missing policy to a row about to be scored: it names the
// missing inputs the model imputes in o.Imputed, and makes the row INVALID (MISSING_INPUT) for
// the first one it does not impute. It reports whether the row is invalid.
func (m *Model) checkMissing(row []*commonv1.Value, o *Outcome) bool {
	for k, v := range row {
		if !values.Missing(v) {
			continue
		}
		name := m.Inputs[k].GetName()
		if !m.imputes[k] {
			o.Status, o.Imputed = StatusInvalid, nil
			o.Problem = &commonv1.Problem{Field: "features." + name, Reason: "MISSING_INPUT",
				Description: fmt.Sprintf("feature %q is missing (neither fetched nor given, or null) and the model does not impute it: it was never missing in training", name)}
			return true
		}
		o.Imputed = append(o.Imputed, name)
	}
	return false
}

// keep returns a copy of a scored row's values for its outcome. The looked-up ones live in the
// batch's lookup, whose storage the next batch reuses: they are copied; the row's inline
// values (the caller's) are kept as they are.
func keep(row, inline []*commonv1.Value) []*commonv1.Value {
	out := make([]*commonv1.Value, len(row))
	var copies []commonv1.Value
	for k, v := range row {
		if v == nil || (k < len(inline) && inline[k] == v) {
			out[k] = v
			continue
		}
		if copies == nil {
			copies = make([]commonv1.Value, len(row))
		}
		c := &copies[k]
		switch x := v.GetKind().(type) {
		case *commonv1.Value_NumberValue:
			c.Kind = &commonv1.Value_NumberValue{NumberValue: x.NumberValue}
		case *commonv1.Value_IntValue:
			c.Kind = &commonv1.Value_IntValue{IntValue: x.IntValue}
		case *commonv1.Value_StringValue:
			c.Kind = &commonv1.Value_StringValue{StringValue: x.StringValue}
		case *commonv1.Value_BoolValue:
			c.Kind = &commonv1.Value_BoolValue{BoolValue: x.BoolValue}
		case *commonv1.Value_TimeValue:
			c.Kind = &commonv1.Value_TimeValue{TimeValue: &timestamppb.Timestamp{Seconds: x.TimeValue.GetSeconds(), Nanos: x.TimeValue.GetNanos()}}
		}
		out[k] = c
	}
	return out
}

// Baseline returns a linear model's intercept: the score when every contribution is 0.
func (m *Model) Baseline() float64 { return m.baseline }

// recommend answers the recommendation and pair rows of tasks in one pass each.
func (m *Model) recommend(w *work, tasks []*Task, look *features.Lookup) error {
	var recRefs, pairRefs []ref
	for _, t := range tasks {
		for i := range t.Rows {
			t.Out[i] = Outcome{}
			if _, ok := gate(w, t, i, look, false); !ok {
				continue
			}
			r := t.Rows[i]
			if t.Query != nil {
				w.users = append(w.users, r.UserID)
				w.qs = append(w.qs, t.Query)
				recRefs = append(recRefs, ref{t: t, i: i})
			} else {
				pairRefs = append(pairRefs, ref{t: t, i: i})
			}
		}
	}
	ctx := context.Background()
	if len(recRefs) > 0 {
		w.recs = append(w.recs[:0], make([]recommend.Result, len(recRefs))...)
		if err := m.rec.Recommend(ctx, w.users, w.qs, w.recs); err != nil {
			return fmt.Errorf("recommending with %s version %d: %w", m.Name, m.Version, err)
		}
		for k, p := range recRefs {
			o := &p.t.Out[p.i]
			o.Status, o.Items, o.Fallback = StatusOK, w.recs[k].Items, w.recs[k].Fallback
		}
	}
	if len(pairRefs) > 0 {
		users := make([]string, len(pairRefs))
		for k, p := range pairRefs {
			users[k] = p.t.Rows[p.i].UserID
			w.items = append(w.items, p.t.Rows[p.i].ItemID)
		}
		w.scores = append(w.scores[:0], make([]float64, len(pairRefs))...)
		w.known = append(w.known[:0], make([]bool, len(pairRefs))...)
		if err := m.rec.Score(ctx, users, w.items, w.scores, w.known); err != nil {
			return fmt.Errorf("scoring pairs with %s version %d: %w", m.Name, m.Version, err)
		}
		for k, p := range pairRefs {
			o := &p.t.Out[p.i]
			if !w.known[k] {
				o.Status = StatusNotFound
				o.Problem = &commonv1.Problem{Field: "item_id", Reason: "UNKNOWN_ITEM", Description: "the model does not know this item"}
				continue
			}
			o.Status, o.Score = StatusOK, w.scores[k]
		}
	}
	return nil
}
