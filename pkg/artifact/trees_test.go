package artifact_test

import (
	"context"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
)

// treeSpec is the preprocessing of boosted trees: raw numbers with missing values kept,
// categories as ordinal codes.
var treeSpec = preprocess.Spec{Defaults: preprocess.Options{
	Impute: preprocess.ImputeNone, NoStandardize: true, Indicator: preprocess.IndicatorNever, Encoding: preprocess.EncodingOrdinal,
}}

func TestRoundTripTrees(t *testing.T) {
	ctx := context.Background()
	train, test := makeData(600, 11), makeData(200, 12)
	test.rows[0]["channel"] = str("fax") // unseen: routed as missing
	test.table = toTable(test.rows, test.refs)
	pipe, xTrain, err := preprocess.FitTransform(train.table, treeSpec)
	if err != nil {
		t.Fatal(err)
	}
	xTest, err := pipe.Transform(test.table)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]float64, len(train.value))
	for i, v := range train.value {
		counts[i] = math.Floor(math.Abs(v))
	}
	for _, tc := range []struct {
		name      string
		objective gbt.Objective
		task      modelv1.TaskKind
		y         []float64
	}{
		{"logistic", gbt.Logistic, modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, train.y},
		{"squared error", gbt.SquaredError, modelv1.TaskKind_TASK_KIND_REGRESSION, train.value},
		{"poisson", gbt.Poisson, modelv1.TaskKind_TASK_KIND_REGRESSION, counts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fit, err := gbt.Fit(ctx, xTrain, tc.y, gbt.Params{Objective: tc.objective, Trees: 30, MaxLeaves: 8, MinSamplesLeaf: 5, Categorical: pipe.Categorical(), Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			a, err := artifact.Encode(&artifact.Fitted{Family: modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES, Task: tc.task, Inputs: inputs, Pipeline: pipe, Model: fit.Ensemble})
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range a.GetInputs() {
				if in.GetMissing() != modelv1.MissingPolicy_MISSING_POLICY_IMPUTE {
					t.Errorf("input %s: missing policy %v; trees take missing values", in.GetName(), in.GetMissing())
				}
			}
			b, sha, err := artifact.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			back, err := artifact.Unmarshal(b, sha)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(a, back) {
				t.Fatal("artifact changed through Marshal and Unmarshal")
			}
			f, err := artifact.Decode(back)
			if err != nil {
				t.Fatal(err)
			}
			want := fit.Predict(xTest).RawVector().Data
			same(t, "decoded Predict", f.Model.Predict(xTest).RawVector().Data, want)

			s, err := artifact.NewScorer(back)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Info().HasProbability; got != (tc.objective == gbt.Logistic) {
				t.Errorf("HasProbability %v", got)
			}
			batch := artifact.NewBatch(s.Info())
			for i, r := range test.rows {
				batch.AddMap(r, test.refs[i])
			}
			batch.Contributions = true
			var res artifact.Result
			if err := s.Score(ctx, batch, &res); err != nil {
				t.Fatal(err)
			}
			same(t, "scorer on rows", res.Scores, want)
			if tc.objective == gbt.Logistic {
				same(t, "scorer probabilities", res.Probabilities, fit.PredictProba(xTest).RawVector().Data)
			}
			margins := fit.Margins(xTest)
			w := len(inputs)
			for i := range margins {
				sum := res.Baseline
				for _, c := range res.Contributions[i*w : (i+1)*w] {
					sum += c
				}
				if math.Abs(sum-margins[i]) > 1e-9 {
					t.Fatalf("row %d: baseline + contributions = %v, margin %v", i, sum, margins[i])
				}
			}
			var tres artifact.Result
			if err := s.Score(ctx, &artifact.Batch{Table: test.table}, &tres); err != nil {
				t.Fatal(err)
			}
			same(t, "scorer on the table", tres.Scores, want)
		})
	}
}

func TestDecodeRefusesBrokenTrees(t *testing.T) {
	train := makeData(200, 3)
	pipe, x, err := preprocess.FitTransform(train.table, treeSpec)
	if err != nil {
		t.Fatal(err)
	}
	fit, err := gbt.Fit(context.Background(), x, train.y, gbt.Params{Trees: 3, MaxLeaves: 4, MinSamplesLeaf: 5, Categorical: pipe.Categorical()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Encode(&artifact.Fitted{Family: modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES, Task: modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, Inputs: inputs, Pipeline: pipe, Model: fit.Ensemble})
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func(*modelv1.TreeEnsemble){
		"a cycle":          func(e *modelv1.TreeEnsemble) { e.Trees[0].Left[0] = 0 },
		"a lost array":     func(e *modelv1.TreeEnsemble) { e.Trees[0].Cover = nil },
		"a feature beyond": func(e *modelv1.TreeEnsemble) { e.Trees[0].Feature[0] = 999 },
		"no objective":     func(e *modelv1.TreeEnsemble) { e.Objective = 0 },
		"a missing set":    func(e *modelv1.TreeEnsemble) { e.Trees[0].CategorySet[0] = 7 },
	} {
		b := proto.Clone(a).(*modelv1.ModelArtifact)
		damage(b.GetTrees())
		if _, err := artifact.Decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
