package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// Predict implements PredictionService.Predict.
func (s *Server) Predict(ctx context.Context, req *servingv1.PredictRequest) (*servingv1.PredictResponse, error) {
	start := time.Now()
	label := ""
	resp, err := s.predict(ctx, req, &label)
	err = statuses.Status(ctx, s.logger, "Predict", err)
	s.metrics.observe(label, "Predict", err, start)
	return resp, err
}

func (s *Server) predict(ctx context.Context, req *servingv1.PredictRequest, label *string) (*servingv1.PredictResponse, error) {
	var c fault.Violations
	ref := modelOf(&c, req.GetModel(), req.GetModelName())
	insts := req.GetInstances()
	if n := len(insts); n == 0 || n > MaxInstances {
		c.Add("instances", "needs 1 to %d instances, got %d", MaxInstances, n)
	}
	if req.GetMaxContributions() < 0 {
		c.Add("max_contributions", "must not be negative")
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	lease, err := s.store.Acquire(ref)
	if err != nil {
		return nil, err
	}
	*label = ref.GetName()
	n := len(insts)
	out := make([]scoring.Outcome, n)
	by := make([]*scoring.Model, n)
	feats := make([]map[string]*commonv1.Value, n)
	for i, inst := range insts {
		by[i] = lease.For(inst.GetUserId())
		feats[i] = instanceFeatures(&c, "instances["+strconv.Itoa(i)+"]", inst, by[i])
	}
	if err := c.Err(); err != nil {
		lease.Release()
		return nil, err
	}
	var f fanout
	valid := make([]int, 0, n)
	for i, inst := range insts {
		m := by[i]
		if p := checkInstance(inst, feats[i], m); p != nil {
			out[i] = scoring.Outcome{Status: scoring.StatusInvalid, Problem: p}
			continue
		}
		f.add(m, i)
		valid = append(valid, i)
	}
	rowsOf := func(m *scoring.Model, idx []int) []scoring.Row { return predictRows(m, insts, feats, idx) }
	setup := func(t *scoring.Task) { t.Contributions = req.GetIncludeContributions() }
	fl, err := dispatch(ctx, lease, &f, out, rowsOf, setup)
	if err != nil {
		fl.abandon()
		return nil, err
	}
	if shadows := lease.Shadows(); len(shadows) > 0 && len(valid) > 0 {
		s.shadow(ctx, lease, shadows, insts, feats, valid, out, by, fl.g)
	}
	if err := fl.wait(ctx); err != nil {
		return nil, err
	}
	s.countRows(by, out)
	return s.predictResponse(req, out, by), nil
}

// checkInstance returns the problem of a malformed instance, whose inline features are
// inline, or nil.
func checkInstance(inst *servingv1.Instance, inline map[string]*commonv1.Value, m *scoring.Model) *commonv1.Problem {
	uid := inst.GetUserId()
	if uid != "" {
		if p := idProblem("user_id", uid); p != nil {
			return p
		}
	}
	if m.Recommender() {
		switch {
		case uid == "":
			return &commonv1.Problem{Field: "user_id", Reason: "MISSING", Description: "a recommender scores a user id and an item id"}
		case inst.GetItemId() == "":
			return &commonv1.Problem{Field: "item_id", Reason: "MISSING", Description: "a recommender scores a user id and an item id"}
		}
		return idProblem("item_id", inst.GetItemId())
	}
	if inst.GetItemId() != "" {
		if p := idProblem("item_id", inst.GetItemId()); p != nil {
			return p
		}
	}
	if uid == "" && len(inline) == 0 {
		return &commonv1.Problem{Reason: "EMPTY_INSTANCE", Description: "give a user_id, inline features, or both"}
	}
	for name, v := range inline {
		if !fault.ValidName(name) {
			var v fault.Violations
			v.CheckName("features key "+fault.Quote(name), name)
			return &commonv1.Problem{Field: "features", Reason: "INVALID_NAME", Description: v[0].Field + " " + v[0].Description}
		}
		if p := valueProblem(name, v); p != nil {
			return p
		}
	}
	return unknownFeatures(inline, m)
}

// valueProblem returns the problem of an inline string value that fails the shared bounds of
// text (fault.MaxTextBytes, UTF-8), or nil: such a value is refused, never taken for an unseen
// category.
func valueProblem(name string, v *commonv1.Value) *commonv1.Problem {
	sv, ok := v.GetKind().(*commonv1.Value_StringValue)
	if !ok {
		return nil
	}
	s := sv.StringValue
	switch {
	case len(s) > fault.MaxTextBytes:
		return &commonv1.Problem{Field: "features." + name, Reason: "TOO_LONG",
			Description: fmt.Sprintf("feature %q is %d bytes long; the limit is %d bytes", name, len(s), fault.MaxTextBytes)}
	case !utf8.ValidString(s):
		return &commonv1.Problem{Field: "features." + name, Reason: "INVALID_VALUE",
			Description: fmt.Sprintf("feature %q is not valid UTF-8", name)}
	}
	return nil
}

// unknownFeatures returns the problem of inline features the model does not take, naming them
// (the first one in the field), or nil.
func unknownFeatures(features map[string]*commonv1.Value, m *scoring.Model) *commonv1.Problem {
	var unknown []string
	for name := range features {
		if _, ok := m.InputIndex(name); !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	quoted := make([]string, 0, min(len(unknown), 5))
	for _, name := range unknown[:min(len(unknown), 5)] {
		quoted = append(quoted, fault.Quote(name))
	}
	list := strings.Join(quoted, ", ")
	if len(unknown) > 5 {
		list += fmt.Sprintf(" and %d more", len(unknown)-5)
	}
	field := "features"
	if fault.ValidName(unknown[0]) && len(unknown[0]) <= 64 {
		field += "." + unknown[0]
	}
	return &commonv1.Problem{Field: field, Reason: "UNKNOWN_FEATURE",
		Description: fmt.Sprintf("model %q version %d takes no feature %s (GetModelStatus lists its inputs)", m.Name, m.Version, list)}
}

// predictRows builds model m's rows of the instances at idx: their inline features (feats,
// by instance) by input position (names the model does not take are ignored: checkInstance
// refused them for the live versions; a shadow version may take fewer).
func predictRows(m *scoring.Model, insts []*servingv1.Instance, feats []map[string]*commonv1.Value, idx []int) []scoring.Row {
	rows := make([]scoring.Row, len(idx))
	w := len(m.Inputs)
	var slab []*commonv1.Value
	for j, i := range idx {
		inst := insts[i]
		rows[j].UserID = inst.GetUserId()
		rows[j].ItemID = inst.GetItemId()
		if w == 0 || len(feats[i]) == 0 {
			continue
		}
		if slab == nil {
			slab = make([]*commonv1.Value, len(idx)*w)
		}
		vals := slab[j*w : (j+1)*w : (j+1)*w]
		given := false
		for name, v := range feats[i] {
			if k, ok := m.InputIndex(name); ok {
				vals[k] = v
				given = true
			}
		}
		if given {
			rows[j].Values = vals
		}
	}
	return rows
}

// countRows counts the rows answered, by version and status.
func (s *Server) countRows(by []*scoring.Model, out []scoring.Outcome) {
	type key struct {
		m  *scoring.Model
		st scoring.Status
	}
	counts := map[key]int{}
	for i, o := range out {
		if by[i] != nil {
			counts[key{by[i], o.Status}]++
		}
	}
	for k, n := range counts {
		s.metrics.rows.WithLabelValues(k.m.Name, strconv.FormatInt(k.m.Version, 10), statusLabel(k.st)).Add(float64(n))
	}
}

func statusLabel(st scoring.Status) string {
	switch st {
	case scoring.StatusOK:
		return "ok"
	case scoring.StatusSuppressed:
		return "suppressed"
	case scoring.StatusNotFound:
		return "not_found"
	case scoring.StatusInvalid:
		return "invalid"
	}
	return "filtered"
}

func statusOf(st scoring.Status) servingv1.PredictionStatus {
	switch st {
	case scoring.StatusOK:
		return servingv1.PredictionStatus_PREDICTION_STATUS_OK
	case scoring.StatusSuppressed:
		return servingv1.PredictionStatus_PREDICTION_STATUS_SUPPRESSED
	case scoring.StatusNotFound:
		return servingv1.PredictionStatus_PREDICTION_STATUS_NOT_FOUND
	}
	return servingv1.PredictionStatus_PREDICTION_STATUS_INVALID
}

// rowProblem returns p with its field placed under the row's path.
func rowProblem(p *commonv1.Problem, path string) *commonv1.Problem {
	if p == nil {
		return nil
	}
	field := path
	if p.GetField() != "" {
		field += "." + p.GetField()
	}
	return &commonv1.Problem{Field: field, Reason: p.GetReason(), Description: p.GetDescription()}
}

var (
	trueValue  = &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}}
	falseValue = &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: false}}
)

func (s *Server) predictResponse(req *servingv1.PredictRequest, out []scoring.Outcome, by []*scoring.Model) *servingv1.PredictResponse {
	n := len(out)
	preds := make([]servingv1.Prediction, n)
	ptrs := make([]*servingv1.Prediction, n)
	floats := make([]float64, 2*n)
	var outs outputSlab
	for i := range out {
		p, o, m := &preds[i], &out[i], by[i]
		ptrs[i] = p
		p.ModelName = m.Name
		p.Status = statusOf(o.Status)
		p.Problem = rowProblem(o.Problem, "instances["+strconv.Itoa(i)+"]")
		if o.Status != scoring.StatusOK {
			continue
		}
		p.ModelVersion = m.Version
		p.Score = o.Score
		p.ImputedInputs = o.Imputed
		switch m.Task {
		case modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION:
			if m.HasProbability {
				floats[2*i] = o.Probability
				p.Probability = &floats[2*i]
			}
			p.Label = labelOf(m, o.Positive)
		case modelv1.TaskKind_TASK_KIND_REGRESSION, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT:
			floats[2*i+1] = o.Score
			p.Value = &floats[2*i+1]
		}
		if req.GetIncludeContributions() && o.Contributions != nil {
			p.Explanation = explain(m, o, int(req.GetMaxContributions()))
		}
		p.Outputs = outs.of(m.Outputs, p, o.Outputs)
	}
	return &servingv1.PredictResponse{Predictions: ptrs}
}

// outputSlab allocates the named outputs of a reply's rows in blocks.
type outputSlab struct {
	values  slab[modelv1.OutputValue]
	numbers slab[modelv1.OutputValue_Number]
	labels  slab[modelv1.OutputValue_Label]
}

// of returns a scored row's named outputs, as sig declares them, from the fields of p that
// hold them and, for the others, from named (a CLV model's outputs).
func (s *outputSlab) of(sig *modelv1.OutputSignature, p *servingv1.Prediction, named map[string]float64) map[string]*modelv1.OutputValue {
	specs := sig.GetOutputs()
	if len(specs) == 0 {
		return nil
	}
	out := make(map[string]*modelv1.OutputValue, len(specs))
	number := func(name string, x float64) {
		v, n := s.values.next(), s.numbers.next()
		n.Number = x
		v.Kind = n
		out[name] = v
	}
	for _, spec := range specs {
		switch name := spec.GetName(); {
		case name == artifact.OutputScore:
			number(name, p.GetScore())
		case name == artifact.OutputProbability && p.Probability != nil:
			number(name, p.GetProbability())
		case name == artifact.OutputValue && p.Value != nil:
			number(name, p.GetValue())
		case name == artifact.OutputLabel && p.GetLabel() != nil:
			v, l := s.values.next(), s.labels.next()
			l.Label = p.GetLabel()
			v.Kind = l
			out[name] = v
		default:
			if x, ok := named[name]; ok {
				number(name, x)
			}
		}
	}
	return out
}

// slab hands out Ts from blocks of 256, one allocation a block.
type slab[T any] struct{ free []T }

func (s *slab[T]) next() *T {
	if len(s.free) == 0 {
		s.free = make([]T, 256)
	}
	x := &s.free[0]
	s.free = s.free[1:]
	return x
}

// labelOf returns the class label of a binary classifier's prediction.
func labelOf(m *scoring.Model, positive bool) *commonv1.Value {
	if c := m.Classification; c != nil && c.GetPositiveLabel() != nil && c.GetNegativeLabel() != nil {
		if positive {
			return c.GetPositiveLabel()
		}
		return c.GetNegativeLabel()
	}
	if positive {
		return trueValue
	}
	return falseValue
}

// explain builds a row's explanation: contributions by input, largest absolute first.
func explain(m *scoring.Model, o *scoring.Outcome, most int) *servingv1.Explanation {
	order := make([]int, len(o.Contributions))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, y := math.Abs(o.Contributions[a]), math.Abs(o.Contributions[b])
		switch {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	})
	if most > 0 && most < len(order) {
		order = order[:most]
	}
	ex := &servingv1.Explanation{Baseline: m.Baseline(), Contributions: make([]*servingv1.FeatureContribution, len(order))}
	for j, k := range order {
		fc := &servingv1.FeatureContribution{Feature: m.Inputs[k].GetName(), Contribution: o.Contributions[k]}
		if v := o.Values[k]; v.GetKind() != nil {
			fc.Value = v
		}
		ex.Contributions[j] = fc
	}
	return ex
}

// shadow scores the valid instances with the shadow versions, in the background: their rows
// are logged and counted, never returned. The lease is kept until they are done.
func (s *Server) shadow(ctx context.Context, lease *models.Lease, shadows []*scoring.Model, insts []*servingv1.Instance,
	feats []map[string]*commonv1.Value, valid []int, live []scoring.Outcome, by []*scoring.Model, liveDone *scoring.Group) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shadowTimeout)
	type run struct {
		m   *scoring.Model
		out []scoring.Outcome
		g   *scoring.Group
	}
	var runs []run
	for _, sm := range shadows {
		if sm.Recommender() {
			continue
		}
		rows := predictRows(sm, insts, feats, valid)
		size := sm.MaxBatchSize()
		out := make([]scoring.Outcome, len(valid))
		g := scoring.NewGroup((len(rows) + size - 1) / size)
		var tasks []*scoring.Task
		for start := 0; start < len(rows); start += size {
			end := min(len(rows), start+size)
			tasks = append(tasks, scoring.NewTask(sctx, g, rows[start:end], out[start:end]))
		}
		version := strconv.FormatInt(sm.Version, 10)
		if err := sm.Submit(tasks...); err != nil {
			s.metrics.shadow.WithLabelValues(sm.Name, version, "dropped").Add(float64(len(rows)))
			continue
		}
		runs = append(runs, run{sm, out, g})
	}
	if len(runs) == 0 {
		cancel()
		return
	}
	lease.Retain()
	go func() {
		defer lease.Release()
		defer cancel()
		<-liveDone.Done()
		for _, r := range runs {
			<-r.g.Done()
			version := strconv.FormatInt(r.m.Version, 10)
			if r.g.Err() != nil {
				s.metrics.shadow.WithLabelValues(r.m.Name, version, "failed").Add(float64(len(valid)))
				continue
			}
			var sum float64
			compared := 0
			counts := map[scoring.Status]int{}
			for j, i := range valid {
				o := r.out[j]
				counts[o.Status]++
				if o.Status == scoring.StatusOK && live[i].Status == scoring.StatusOK && liveDone.Err() == nil {
					d := math.Abs(o.Score - live[i].Score)
					s.metrics.diff.WithLabelValues(r.m.Name, version).Observe(d)
					sum += d
					compared++
				}
			}
			for st, n := range counts {
				s.metrics.shadow.WithLabelValues(r.m.Name, version, statusLabel(st)).Add(float64(n))
			}
			if s.logger.Enabled(ctx, slog.LevelDebug) {
				mean := 0.0
				if compared > 0 {
					mean = sum / float64(compared)
				}
				s.logger.DebugContext(ctx, "shadow scored", slog.String("model", r.m.Name), slog.Int64("shadow_version", r.m.Version),
					slog.Int64("live_version", by[valid[0]].Version), slog.Int("rows", len(valid)), slog.Int("compared", compared),
					slog.Float64("mean_abs_score_difference", mean))
			}
		}
	}()
}
