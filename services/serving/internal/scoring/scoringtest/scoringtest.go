// Package scoringtest makes the small model artifacts serving's unit tests load: a linear
// regression and a logistic classifier trained on the People feature set, and a recommender
// that knows one user and two items. Their outputs are simple enough to work out by hand.
package scoringtest

import (
	"math"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	mlrec "github.com/bullseye-ml/bullseye/pkg/ml/recommend"
)

// People is the feature set the feature models were trained on, version 1: age, spend and
// tier (which no model takes).
var People = &featurev1.FeatureSet{Name: "people", Version: 1, Columns: []*featurev1.FeatureColumn{
	{Name: "age", Type: commonv1.ValueType_VALUE_TYPE_INT},
	{Name: "spend", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
	{Name: "tier", Type: commonv1.ValueType_VALUE_TYPE_STRING},
}}

// Linear is a linear regression on age (never missing in training, so required), spend
// (imputed by its training mean, 2) and bonus, an input of no feature set (imputed by 0), all
// unscaled: score = 1 + age + 10·spend + 100·bonus.
func Linear(t testing.TB, name string, version int64) *modelv1.ModelArtifact {
	t.Helper()
	return fit(t, name, version, modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, modelv1.TaskKind_TASK_KIND_REGRESSION,
		&linear.Model{Weights: []float64{1, 10, 100}, Intercept: 1})
}

// Classifier is a logistic regression on the inputs of Linear with score = age/10 − 4: it
// says "yes" (the positive label) above age 40 and "no" below.
func Classifier(t testing.TB, name string, version int64) *modelv1.ModelArtifact {
	t.Helper()
	a := fit(t, name, version, modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION,
		&logistic.Model{Model: linear.Model{Weights: []float64{0.1, 0, 0}, Intercept: -4}})
	a.Classification = &modelv1.ClassificationOutput{
		PositiveLabel: &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: "yes"}},
		NegativeLabel: &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: "no"}},
		Threshold:     0.5,
	}
	return a
}

func fit(t testing.TB, name string, version int64, family modelv1.ModelFamily, task modelv1.TaskKind, m ml.Model) *modelv1.ModelArtifact {
	t.Helper()
	nan := math.NaN()
	table := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("age", []float64{20, 40, 30}),
		ml.NumericColumn("spend", []float64{1, 3, nan}),
		ml.NumericColumn("bonus", []float64{nan, 0, 0}),
	}}
	pipe, err := preprocess.Fit(table, preprocess.Spec{
		Defaults: preprocess.Options{NoStandardize: true, Impute: preprocess.ImputeMean, Indicator: preprocess.IndicatorNever},
		Columns:  map[string]preprocess.Options{"age": {NoStandardize: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Encode(&artifact.Fitted{
		Family: family, Task: task,
		Inputs: []*modelv1.InputColumn{
			{Name: "age", Type: commonv1.ValueType_VALUE_TYPE_INT},
			{Name: "spend", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
			{Name: "bonus", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
		},
		Pipeline: pipe, Model: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.ModelName, a.ModelVersion = name, version
	a.Lineage = &modelv1.Lineage{FeatureSet: People.GetName(), FeatureSetVersion: People.GetVersion()}
	return a
}

// Recommender is an implicit ALS recommender of rank 1 that knows user u1 and items i0 and i1
// (scores 1 and 2 for u1, who saw neither), with the popularity ranking i0 (5), i1 (1).
func Recommender(t testing.TB, name string, version int64) *modelv1.ModelArtifact {
	t.Helper()
	f := &mlrec.Factors{
		Rank:        1,
		UserIDs:     []string{"u1"},
		ItemIDs:     []string{"i0", "i1"},
		UserFactors: []float32{1},
		ItemFactors: []float32{1, 2},
		SeenOffsets: []uint32{0, 0},
		Popularity:  mlrec.Popularity{ItemIDs: []string{"i0", "i1"}, Scores: []float64{5, 1}},
	}
	a, err := artifact.EncodeFactors(modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT, f)
	if err != nil {
		t.Fatal(err)
	}
	a.ModelName, a.ModelVersion = name, version
	return a
}
