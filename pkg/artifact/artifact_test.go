package artifact_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gonum.org/v1/gonum/mat"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/svm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func num(v float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: v}}
}
func str(v string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: v}}
}
func integer(v int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: v}}
}
func boolean(v bool) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: v}}
}
func at(t time.Time) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(t)}}
}

// inputs are the raw inputs of the synthetic data: every value type, a hashed and a
// log-transformed column, missing values everywhere.
var inputs = []*modelv1.InputColumn{
	{Name: "age", Type: commonv1.ValueType_VALUE_TYPE_INT},
	{Name: "spend", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
	{Name: "member", Type: commonv1.ValueType_VALUE_TYPE_BOOL},
	{Name: "last_order", Type: commonv1.ValueType_VALUE_TYPE_TIME},
	{Name: "channel", Type: commonv1.ValueType_VALUE_TYPE_STRING},
	{Name: "city", Type: commonv1.ValueType_VALUE_TYPE_STRING},
}

var spec = preprocess.Spec{Columns: map[string]preprocess.Options{
	"spend":   {Log1p: true, Impute: preprocess.ImputeMean},
	"city":    {Encoding: preprocess.EncodingHash, HashBuckets: 16, HashSeed: 7},
	"channel": {MinFrequency: 5},
}}

// data is rows of raw values with their cutoff times, the same rows as a table (converted as
// training converts them), and labels.
type data struct {
	rows  []map[string]*commonv1.Value
	refs  []time.Time
	table *ml.Table
	y     []float64 // 0/1
	value []float64 // a regression target
}

func makeData(n int, seed uint64) *data {
	rng := rand.New(rand.NewPCG(seed, 1))
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	d := &data{}
	channels := []string{"web", "app", "mail", "store", "sms-rare"}
	for i := range n {
		r := map[string]*commonv1.Value{}
		age := 18 + rng.IntN(60)
		spend := math.Exp(rng.NormFloat64() * 2)
		member := rng.IntN(2) == 0
		days := rng.Float64() * 400
		ch := channels[rng.IntN(4)]
		if i%50 == 0 {
			ch = channels[4]
		}
		city := fmt.Sprintf("city-%d", rng.IntN(40))
		ref := base.Add(time.Duration(rng.IntN(90)) * 24 * time.Hour)
		r["age"] = integer(int64(age))
		r["spend"] = num(spend)
		r["member"] = boolean(member)
		r["last_order"] = at(ref.Add(-time.Duration(days * float64(24*time.Hour))))
		r["channel"] = str(ch)
		r["city"] = str(city)
		switch i % 7 { // missing values: absent, and null
		case 1:
			delete(r, "age")
		case 2:
			r["spend"] = &commonv1.Value{}
		case 3:
			delete(r, "channel")
		case 4:
			delete(r, "last_order")
		}
		z := 0.04*float64(age-45) + 0.5*math.Log1p(spend) - 0.004*days
		if member {
			z += 0.8
		}
		if ch == "app" {
			z += 0.5
		}
		p := 1 / (1 + math.Exp(-z))
		y := 0.0
		if rng.Float64() < p {
			y = 1
		}
		d.rows = append(d.rows, r)
		d.refs = append(d.refs, ref)
		d.y = append(d.y, y)
		d.value = append(d.value, 3*z+rng.NormFloat64())
	}
	d.table = toTable(d.rows, d.refs)
	return d
}

// toTable converts rows as training does: artifact.Number and artifact.Category by input kind.
func toTable(rows []map[string]*commonv1.Value, refs []time.Time) *ml.Table {
	t := &ml.Table{}
	for _, in := range inputs {
		c := ml.Column{Name: in.Name, Kind: artifact.KindOf(in.Type)}
		for i, r := range rows {
			if c.Kind == ml.Numeric {
				v, err := artifact.Number(r[in.Name], refs[i])
				if err != nil {
					panic(err)
				}
				c.Numeric = append(c.Numeric, v)
			} else {
				v, err := artifact.Category(r[in.Name])
				if err != nil {
					panic(err)
				}
				c.Categorical = append(c.Categorical, v)
			}
		}
		t.Columns = append(t.Columns, c)
	}
	return t
}

func TestRoundTripEveryFamily(t *testing.T) {
	ctx := context.Background()
	train, test := makeData(400, 1), makeData(150, 2)
	pipe, xTrain, err := preprocess.FitTransform(train.table, spec)
	if err != nil {
		t.Fatal(err)
	}
	xTest, err := pipe.Transform(test.table)
	if err != nil {
		t.Fatal(err)
	}
	rbf := kernel.Kernel{Kind: kernel.RBF}
	linSVM := svm.Linear{C: 1, Solver: svm.Primal}
	calibrated := func(est ml.Estimator, set func(ml.Model, *svm.Platt)) func(context.Context, []float64) (ml.Model, error) {
		return func(ctx context.Context, y []float64) (ml.Model, error) {
			m, err := est.Fit(ctx, xTrain, y)
			if err != nil {
				return nil, err
			}
			p, err := svm.Calibrate(ctx, est, xTrain, y, 3, 1)
			if err != nil {
				return nil, err
			}
			set(m, p)
			return m, nil
		}
	}
	plain := func(est ml.Estimator) func(context.Context, []float64) (ml.Model, error) {
		return func(ctx context.Context, y []float64) (ml.Model, error) { return est.Fit(ctx, xTrain, y) }
	}
	const (
		cls = modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION
		reg = modelv1.TaskKind_TASK_KIND_REGRESSION
	)
	tests := []struct {
		name      string
		family    modelv1.ModelFamily
		task      modelv1.TaskKind
		fit       func(context.Context, []float64) (ml.Model, error)
		wantProba bool
	}{
		{"ols", modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, reg, plain(linear.OLS{}), false},
		{"ridge", modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, reg, plain(linear.Ridge{Alpha: 3}), false},
		{"lasso", modelv1.ModelFamily_MODEL_FAMILY_LASSO, reg, plain(linear.Lasso{Alpha: 0.05}), false},
		{"elastic net", modelv1.ModelFamily_MODEL_FAMILY_ELASTIC_NET, reg, plain(linear.ElasticNet{Alpha: 0.05, L1Ratio: 0.3}), false},
		{"logistic l2", modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, cls, plain(logistic.Regression{C: 1}), true},
		{"logistic l1", modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, cls, plain(logistic.Regression{C: 0.5, Penalty: logistic.L1}), true},
		{"linear svm", modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM, cls, plain(svm.Linear{C: 1, Loss: svm.Hinge}), false},
		{"linear svm platt", modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM, cls, calibrated(linSVM, func(m ml.Model, p *svm.Platt) {
			m.(*svm.LinearModel).Platt = p
		}), true},
		{"kernel svm rbf", modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM, cls, plain(svm.Kernel{C: 1, Probability: true, Seed: 3}), true},
		{"kernel svm poly", modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM, cls,
			plain(svm.Kernel{C: 1, Kernel: kernel.Kernel{Kind: kernel.Poly, Degree: 2, Coef0: 1}}), false},
		{"kernel svm linear", modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM, cls,
			plain(svm.Kernel{C: 1, Kernel: kernel.Kernel{Kind: kernel.Linear}}), false},
		{"nystroem svm", modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM, cls, calibrated(kernel.NystroemEstimator{
			Nystroem: kernel.Nystroem{Kernel: rbf, Components: 40, Seed: 2}, Estimator: linSVM,
		}, func(m ml.Model, p *svm.Platt) { m.(*kernel.NystroemModel).Inner.(*svm.LinearModel).Platt = p }), true},
		{"nystroem logistic", modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_LOGISTIC, cls, plain(kernel.NystroemEstimator{
			Nystroem: kernel.Nystroem{Kernel: rbf, Components: 40, Seed: 2}, Estimator: logistic.Regression{C: 1},
		}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := train.y
			if tc.task == reg {
				y = train.value
			}
			m, err := tc.fit(ctx, y)
			if err != nil {
				t.Fatal(err)
			}
			a, err := artifact.Encode(&artifact.Fitted{Family: tc.family, Task: tc.task, Inputs: inputs, Pipeline: pipe, Model: m})
			if err != nil {
				t.Fatal(err)
			}
			a.ModelName, a.ModelVersion = "m", 3
			if tc.task == cls {
				a.Classification = &modelv1.ClassificationOutput{PositiveLabel: boolean(true), NegativeLabel: boolean(false), Threshold: 0.5}
			}
			b, sha, err := artifact.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			if _, sha2, _ := artifact.Marshal(a); sha2 != sha {
				t.Error("Marshal is not deterministic")
			}
			back, err := artifact.Unmarshal(b, sha)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(a, back) {
				t.Fatal("artifact changed through Marshal and Unmarshal")
			}

			// The decoded model scores the design matrix bit for bit as the original.
			f, err := artifact.Decode(back)
			if err != nil {
				t.Fatal(err)
			}
			want := m.Predict(xTest).RawVector().Data
			same(t, "decoded Predict", f.Model.Predict(xTest).RawVector().Data, want)
			var wantP []float64
			if pm, ok := ml.Probabilities(m); ok {
				wantP = pm.PredictProba(xTest).RawVector().Data
			}
			if (wantP != nil) != tc.wantProba {
				t.Fatalf("model gives probabilities: %v, want %v", wantP != nil, tc.wantProba)
			}

			// The scorer, from raw rows and from the table, gives the same scores and
			// probabilities.
			s, err := artifact.NewScorer(back)
			if err != nil {
				t.Fatal(err)
			}
			info := s.Info()
			if info.Name != "m" || info.Version != 3 || info.HasProbability != tc.wantProba {
				t.Errorf("info = %+v", info)
			}
			wantOutputs := []string{"score", "value"}
			if tc.task == cls {
				wantOutputs = []string{"score", "label"}
				if tc.wantProba {
					wantOutputs = []string{"score", "probability", "label"}
				}
			}
			if got := outputNames(back.GetOutputs()); !slices.Equal(got, wantOutputs) {
				t.Errorf("output signature %v, want %v", got, wantOutputs)
			}
			batch := artifact.NewBatch(info)
			for i, r := range test.rows {
				batch.AddMap(r, test.refs[i])
			}
			var res artifact.Result
			if err := s.Score(ctx, batch, &res); err != nil {
				t.Fatal(err)
			}
			same(t, "scorer on rows", res.Scores, want)
			if tc.wantProba {
				same(t, "scorer probabilities", res.Probabilities, wantP)
			}
			for i, p := range res.Problems {
				if p != nil {
					t.Fatalf("row %d: problem %v", i, p)
				}
			}
			var tres artifact.Result
			if err := s.Score(ctx, &artifact.Batch{Table: test.table}, &tres); err != nil {
				t.Fatal(err)
			}
			same(t, "scorer on the table", tres.Scores, want)
			if tc.task == cls {
				for i := range res.Positive {
					wantPos := want[i] >= 0
					if tc.wantProba {
						wantPos = wantP[i] >= 0.5
					}
					if res.Positive[i] != wantPos {
						t.Fatalf("row %d: positive %v, want %v", i, res.Positive[i], wantPos)
					}
				}
			} else if res.Positive != nil {
				t.Error("regression result has Positive")
			}
		})
	}
}

func same(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: row %d = %v, want %v exactly (difference %g)", what, i, got[i], want[i], got[i]-want[i])
		}
	}
}

// TestDesignMatchesPipeline checks the scorer's preprocessing against preprocess.Pipeline bit
// for bit, through an identity-like linear model: one weight per design position, scored one
// position at a time.
func TestDesignMatchesPipeline(t *testing.T) {
	train, test := makeData(300, 5), makeData(100, 6)
	// Unseen and rare categories, unseen cities.
	test.rows[0]["channel"] = str("fax")
	test.rows[1]["city"] = str("atlantis")
	test.table = toTable(test.rows, test.refs)
	pipe, err := preprocess.Fit(train.table, spec)
	if err != nil {
		t.Fatal(err)
	}
	x, err := pipe.Transform(test.table)
	if err != nil {
		t.Fatal(err)
	}
	for j := range pipe.NumFeatures() {
		w := make([]float64, pipe.NumFeatures())
		w[j] = 1
		a, err := artifact.Encode(&artifact.Fitted{Family: modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION,
			Task: modelv1.TaskKind_TASK_KIND_REGRESSION, Inputs: inputs, Pipeline: pipe, Model: &linear.Model{Weights: w}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := artifact.NewScorer(a)
		if err != nil {
			t.Fatal(err)
		}
		b := artifact.NewBatch(s.Info())
		for i, r := range test.rows {
			b.AddMap(r, test.refs[i])
		}
		var res artifact.Result
		if err := s.Score(context.Background(), b, &res); err != nil {
			t.Fatal(err)
		}
		for i, v := range res.Scores {
			if v != x.At(i, j) {
				t.Fatalf("design (%d, %q) = %v, pipeline %v", i, pipe.Features[j], v, x.At(i, j))
			}
		}
	}
}

func TestRowProblemsAndContributions(t *testing.T) {
	ctx := context.Background()
	train := makeData(300, 7)
	pipe, x, err := preprocess.FitTransform(train.table, spec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := logistic.Regression{C: 1}.FitLogistic(ctx, x, train.y)
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Encode(&artifact.Fitted{Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
		Task: modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, Inputs: inputs, Pipeline: pipe, Model: m})
	if err != nil {
		t.Fatal(err)
	}
	s, err := artifact.NewScorer(a)
	if err != nil {
		t.Fatal(err)
	}
	b := artifact.NewBatch(s.Info())
	b.Contributions = true
	b.Now = time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	b.AddMap(train.rows[0], time.Time{})
	b.AddMap(map[string]*commonv1.Value{"age": str("old"), "channel": str("web")}, time.Time{})
	b.AddMap(map[string]*commonv1.Value{"member": num(1)}, time.Time{})                      // a number for a bool
	b.AddMap(map[string]*commonv1.Value{"age": num(40.5), "unknown": str("x")}, time.Time{}) // numbers stand in for ints
	b.AddMap(nil, time.Time{})                                                               // all imputed
	var res artifact.Result
	if err := s.Score(ctx, b, &res); err != nil {
		t.Fatal(err)
	}
	wantBad := []bool{false, true, true, false, false}
	for i, bad := range wantBad {
		if got := res.Problems[i] != nil; got != bad {
			t.Errorf("row %d: problem %v, want a problem: %v", i, res.Problems[i], bad)
		}
		if bad != math.IsNaN(res.Scores[i]) {
			t.Errorf("row %d: score %v", i, res.Scores[i])
		}
	}
	if p := res.Problems[1]; p.GetField() != "features.age" || p.GetReason() != "WRONG_TYPE" {
		t.Errorf("problem = %v, want features.age WRONG_TYPE", p)
	}
	nIn := len(s.Info().Inputs)
	if len(res.Contributions) != 5*nIn || res.Baseline != m.Intercept {
		t.Fatalf("%d contributions, baseline %v; want %d, %v", len(res.Contributions), res.Baseline, 5*nIn, m.Intercept)
	}
	for _, i := range []int{0, 3, 4} {
		sum := res.Baseline
		for _, c := range res.Contributions[i*nIn : (i+1)*nIn] {
			sum += c
		}
		if math.Abs(sum-res.Scores[i]) > 1e-12 {
			t.Errorf("row %d: baseline + contributions = %v, score %v", i, sum, res.Scores[i])
		}
	}
}

// TestScoreAllocations checks the hot path of logistic, linear and boosted-tree scoring:
// with a reused Batch and Result, a Score call allocates nothing, whatever its rows.
func TestScoreAllocations(t *testing.T) {
	ctx := context.Background()
	train := makeData(300, 9)
	fit := func(native bool, est func(x *mat.Dense) (ml.Model, error), family modelv1.ModelFamily, task modelv1.TaskKind) *modelv1.ModelArtifact {
		prep := spec
		if native {
			prep = spec.Native()
		}
		pipe, x, err := preprocess.FitTransform(train.table, prep)
		if err != nil {
			t.Fatal(err)
		}
		m, err := est(x)
		if err != nil {
			t.Fatal(err)
		}
		a, err := artifact.Encode(&artifact.Fitted{Family: family, Task: task, Inputs: inputs, Pipeline: pipe, Model: m})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, c := range []struct {
		name string
		a    *modelv1.ModelArtifact
	}{
		{"logistic", fit(false, func(x *mat.Dense) (ml.Model, error) { return logistic.Regression{C: 1}.FitLogistic(ctx, x, train.y) },
			modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION)},
		{"linear", fit(false, func(x *mat.Dense) (ml.Model, error) { return linear.Ridge{Alpha: 1}.FitLinear(ctx, x, train.value) },
			modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, modelv1.TaskKind_TASK_KIND_REGRESSION)},
		{"boosted trees", fit(true, func(x *mat.Dense) (ml.Model, error) {
			return gbt.Fit(ctx, x, train.y, gbt.Params{Trees: 50, MaxLeaves: 15, EarlyStopping: -1, MinSamplesLeaf: 5})
		}, modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES, modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := artifact.NewScorer(c.a)
			if err != nil {
				t.Fatal(err)
			}
			b := artifact.NewBatch(s.Info())
			var res artifact.Result
			fill := func() {
				b.Reset()
				for i, r := range train.rows[:64] {
					row := b.Add(train.refs[i])
					for k, in := range s.Info().Inputs {
						row[k] = r[in.Name]
					}
				}
			}
			fill()
			if err := s.Score(ctx, b, &res); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(50, func() {
				fill()
				if err := s.Score(ctx, b, &res); err != nil {
					t.Fatal(err)
				}
			})
			// The pool may drop its scratch memory on a GC; allow that rarely.
			if allocs > 1 {
				t.Errorf("Score of 64 rows allocates %v times per call, want 0", allocs)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	train := makeData(100, 11)
	pipe, x, err := preprocess.FitTransform(train.table, spec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := linear.Ridge{Alpha: 1}.FitLinear(context.Background(), x, train.value)
	if err != nil {
		t.Fatal(err)
	}
	good, err := artifact.Encode(&artifact.Fitted{Family: modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION,
		Task: modelv1.TaskKind_TASK_KIND_REGRESSION, Inputs: inputs, Pipeline: pipe, Model: m})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(a *modelv1.ModelArtifact)
		want   error
	}{
		{"unknown layout", func(a *modelv1.ModelArtifact) { a.FormatVersion = 2 }, artifact.ErrInvalid},
		{"short weights", func(a *modelv1.ModelArtifact) { a.GetLinear().Weights = a.GetLinear().Weights[1:] }, artifact.ErrInvalid},
		{"wrong width", func(a *modelv1.ModelArtifact) { a.Preprocessing.Columns[0].OutputWidth++ }, artifact.ErrInvalid},
		{"zero scale", func(a *modelv1.ModelArtifact) { a.Preprocessing.Columns[1].Scale = 0 }, artifact.ErrInvalid},
		{"family mismatch", func(a *modelv1.ModelArtifact) {
			a.Family = modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION
		}, artifact.ErrInvalid},
		{"signed hashing", func(a *modelv1.ModelArtifact) { a.Preprocessing.Columns[5].SignedHash = true }, artifact.ErrUnsupported},
		{"recommender of a feature task", func(a *modelv1.ModelArtifact) {
			a.Family = modelv1.ModelFamily_MODEL_FAMILY_MF_ALS
			a.Preprocessing = nil
			a.Parameters = &modelv1.ModelArtifact_Factorization{Factorization: &modelv1.FactorizationParameters{Rank: 2}}
		}, artifact.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := proto.Clone(good).(*modelv1.ModelArtifact)
			tc.change(a)
			if _, err := artifact.NewScorer(a); !errors.Is(err, tc.want) {
				t.Errorf("NewScorer error = %v, want %v", err, tc.want)
			}
		})
	}
	b, sha, err := artifact.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if _, err := artifact.Unmarshal(b, sha); !errors.Is(err, artifact.ErrChecksum) {
		t.Errorf("Unmarshal of corrupted bytes: %v, want ErrChecksum", err)
	}
	if _, err := artifact.Encode(&artifact.Fitted{Family: modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM,
		Task: modelv1.TaskKind_TASK_KIND_REGRESSION, Inputs: inputs, Pipeline: pipe, Model: m}); !errors.Is(err, artifact.ErrInvalid) {
		t.Errorf("Encode of a regression model as a linear SVM: %v, want ErrInvalid", err)
	}
}

func TestValues(t *testing.T) {
	ref := time.Date(2025, 1, 11, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		v      *commonv1.Value
		number float64
		cat    string
		numErr bool
		catErr bool
	}{
		{nil, math.NaN(), "", false, false},
		{&commonv1.Value{}, math.NaN(), "", false, false},
		{num(2.5), 2.5, "2.5", false, false},
		{integer(-3), -3, "-3", false, false},
		{boolean(true), 1, "true", false, false},
		{str("web"), 0, "web", true, false},
		{at(ref.Add(-36 * time.Hour)), 1.5, "", false, true},
	}
	for _, tc := range tests {
		n, err := artifact.Number(tc.v, ref)
		if (err != nil) != tc.numErr || err == nil && !(n == tc.number || math.IsNaN(n) && math.IsNaN(tc.number)) {
			t.Errorf("Number(%v) = %v, %v; want %v, error %v", tc.v, n, err, tc.number, tc.numErr)
		}
		c, err := artifact.Category(tc.v)
		if (err != nil) != tc.catErr || err == nil && c != tc.cat {
			t.Errorf("Category(%v) = %q, %v; want %q, error %v", tc.v, c, err, tc.cat, tc.catErr)
		}
	}
	for _, tc := range []struct {
		want commonv1.ValueType
		v    *commonv1.Value
		ok   bool
	}{
		{commonv1.ValueType_VALUE_TYPE_INT, num(1), true},
		{commonv1.ValueType_VALUE_TYPE_NUMBER, integer(1), true},
		{commonv1.ValueType_VALUE_TYPE_BOOL, integer(1), false},
		{commonv1.ValueType_VALUE_TYPE_STRING, integer(1), false},
		{commonv1.ValueType_VALUE_TYPE_TIME, nil, true},
	} {
		if err := artifact.CheckType(tc.want, tc.v); (err == nil) != tc.ok {
			t.Errorf("CheckType(%v, %v) = %v, want ok %v", tc.want, tc.v, err, tc.ok)
		}
	}
}

// BenchmarkScoreLogistic scores batches of raw rows with a logistic regression: one
// preprocessing pass and one matrix-vector product per batch.
func BenchmarkScoreLogistic(b *testing.B) {
	ctx := context.Background()
	train := makeData(1000, 13)
	pipe, x, err := preprocess.FitTransform(train.table, spec)
	if err != nil {
		b.Fatal(err)
	}
	m, err := logistic.Regression{C: 1}.FitLogistic(ctx, x, train.y)
	if err != nil {
		b.Fatal(err)
	}
	a, err := artifact.Encode(&artifact.Fitted{Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
		Task: modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, Inputs: inputs, Pipeline: pipe, Model: m})
	if err != nil {
		b.Fatal(err)
	}
	s, err := artifact.NewScorer(a)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			batch := artifact.NewBatch(s.Info())
			var res artifact.Result
			b.ReportAllocs()
			for b.Loop() {
				batch.Reset()
				for i := range n {
					row := batch.Add(train.refs[i])
					for k, in := range s.Info().Inputs {
						row[k] = train.rows[i][in.Name]
					}
				}
				if err := s.Score(ctx, batch, &res); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}

// TestMissingPolicy: Encode records per input whether the model imputes it — the columns whose
// training rows had missing values, or whose imputation was chosen — and Decode keeps it; an
// artifact without the policy (written before it) imputes every input.
func TestMissingPolicy(t *testing.T) {
	train := makeData(300, 11)
	// member is never missing in makeData, but its imputation is chosen; city is never missing.
	sp := preprocess.Spec{Columns: map[string]preprocess.Options{
		"member": {Impute: preprocess.ImputeConstant, FillValue: 1},
	}}
	pipe, x, err := preprocess.FitTransform(train.table, sp)
	if err != nil {
		t.Fatal(err)
	}
	m, err := logistic.Regression{C: 1}.FitLogistic(context.Background(), x, train.y)
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Encode(&artifact.Fitted{Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
		Task: modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, Inputs: inputs, Pipeline: pipe, Model: m})
	if err != nil {
		t.Fatal(err)
	}
	impute, required := modelv1.MissingPolicy_MISSING_POLICY_IMPUTE, modelv1.MissingPolicy_MISSING_POLICY_REQUIRED
	want := map[string]modelv1.MissingPolicy{
		"age": impute, "spend": impute, "member": impute, "last_order": impute, "channel": impute, "city": required,
	}
	check := func(what string, in []*modelv1.InputColumn) {
		t.Helper()
		for _, c := range in {
			if c.GetMissing() != want[c.GetName()] {
				t.Errorf("%s: input %q: policy %v, want %v", what, c.GetName(), c.GetMissing(), want[c.GetName()])
			}
			if got := artifact.Imputes(c); got != (want[c.GetName()] == impute) {
				t.Errorf("%s: Imputes(%q) = %v", what, c.GetName(), got)
			}
		}
	}
	check("encoded", a.GetInputs())
	f, err := artifact.Decode(a)
	if err != nil {
		t.Fatal(err)
	}
	check("decoded", f.Inputs)
	again, err := artifact.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	check("encoded again", again.GetInputs())

	old := proto.Clone(a).(*modelv1.ModelArtifact)
	for _, c := range old.GetInputs() {
		c.Missing = modelv1.MissingPolicy_MISSING_POLICY_UNSPECIFIED
	}
	s, err := artifact.NewScorer(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Info().Inputs {
		if !artifact.Imputes(c) {
			t.Errorf("an artifact without the policy: Imputes(%q) = false, want true", c.GetName())
		}
	}
}

// TestNonFiniteNumbers: in scored rows NaN, +Inf and -Inf are one kind of problem, NOT_FINITE
// naming the feature, for numeric and categorical inputs alike; a null value is missing and
// imputed.
func TestNonFiniteNumbers(t *testing.T) {
	ctx := context.Background()
	train := makeData(300, 7)
	pipe, x, err := preprocess.FitTransform(train.table, spec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := logistic.Regression{C: 1}.FitLogistic(ctx, x, train.y)
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Encode(&artifact.Fitted{Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
		Task: modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, Inputs: inputs, Pipeline: pipe, Model: m})
	if err != nil {
		t.Fatal(err)
	}
	s, err := artifact.NewScorer(a)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		feature string
		v       *commonv1.Value
		reason  string // "" for scored
	}{
		{"spend", num(math.NaN()), "NOT_FINITE"},
		{"spend", num(math.Inf(1)), "NOT_FINITE"},
		{"spend", num(math.Inf(-1)), "NOT_FINITE"},
		{"age", num(math.NaN()), "NOT_FINITE"},
		{"channel", num(math.NaN()), "NOT_FINITE"},
		{"channel", num(math.Inf(1)), "NOT_FINITE"},
		{"spend", &commonv1.Value{}, ""},
		{"spend", nil, ""},
		{"spend", num(12.5), ""},
	}
	b := artifact.NewBatch(s.Info())
	for _, tc := range tests {
		b.AddMap(map[string]*commonv1.Value{tc.feature: tc.v}, time.Time{})
	}
	var res artifact.Result
	if err := s.Score(ctx, b, &res); err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		p := res.Problems[i]
		if p.GetReason() != tc.reason {
			t.Errorf("%s = %v: problem %v, want reason %q", tc.feature, tc.v, p, tc.reason)
			continue
		}
		if tc.reason != "" && p.GetField() != "features."+tc.feature {
			t.Errorf("%s = %v: problem field %q, want features.%s", tc.feature, tc.v, p.GetField(), tc.feature)
		}
		if (tc.reason != "") != math.IsNaN(res.Scores[i]) {
			t.Errorf("%s = %v: score %v", tc.feature, tc.v, res.Scores[i])
		}
	}
}

func outputNames(sig *modelv1.OutputSignature) []string {
	var names []string
	for _, o := range sig.GetOutputs() {
		names = append(names, o.GetName())
	}
	return names
}

// TestOutputs: an artifact's recorded signature is its outputs; one written before signatures
// were recorded gets the signature its task declares, as Encode records it now.
func TestOutputs(t *testing.T) {
	recorded := &modelv1.OutputSignature{Outputs: []*modelv1.OutputSpec{{Name: "clv", Kind: modelv1.OutputKind_OUTPUT_KIND_NUMBER}}}
	if got := artifact.Outputs(&modelv1.ModelArtifact{Outputs: recorded}, false); got != recorded {
		t.Errorf("recorded signature: got %v", got)
	}
	tests := []struct {
		task  modelv1.TaskKind
		proba bool
		want  []string
	}{
		{modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, true, []string{"score", "probability", "label"}},
		{modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, false, []string{"score", "label"}},
		{modelv1.TaskKind_TASK_KIND_REGRESSION, false, []string{"score", "value"}},
		{modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT, false, []string{"score", "value"}},
		{modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT, false, []string{"score"}},
	}
	for _, tc := range tests {
		if got := outputNames(artifact.Outputs(&modelv1.ModelArtifact{Task: tc.task}, tc.proba)); !slices.Equal(got, tc.want) {
			t.Errorf("%v (probability %v): outputs %v, want %v", tc.task, tc.proba, got, tc.want)
		}
	}
	f := &recommend.Factors{Popularity: recommend.Popularity{ItemIDs: []string{"a"}, Scores: []float64{1}}}
	a, err := artifact.EncodeFactors(modelv1.ModelFamily_MODEL_FAMILY_POPULARITY, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := outputNames(a.GetOutputs()); !slices.Equal(got, []string{"score"}) {
		t.Errorf("EncodeFactors records outputs %v", got)
	}
}
