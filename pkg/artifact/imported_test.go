package artifact_test

import (
	"context"
	"errors"
	"math"
	"os"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
)

// readTiny reads testdata/tiny-xgboost.json: one XGBoost tree on age (a number; age < 30
// goes left, a missing age left) and job (category code 1 goes right, the others left, a
// missing one right), leaves 0.5 (age ≥ 30), -0.2 and 0.3.
func readTiny(t *testing.T) *gbt.Imported {
	t.Helper()
	f, err := os.Open("testdata/tiny-xgboost.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imp, err := gbt.ReadXGBoostJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	return imp
}

func TestEncodeImported(t *testing.T) {
	imp := readTiny(t)
	inputs := []artifact.ImportedInput{
		{Column: &modelv1.InputColumn{Name: "age", Type: commonv1.ValueType_VALUE_TYPE_INT}},
		{Column: &modelv1.InputColumn{Name: "job", Type: commonv1.ValueType_VALUE_TYPE_STRING, Missing: modelv1.MissingPolicy_MISSING_POLICY_REQUIRED},
			Categories: []string{"admin.", "blue-collar", "services"}},
	}
	from := &modelv1.ImportedFrom{Format: "xgboost-json", LibraryVersion: imp.Version, Sha256: "ab"}
	a, err := artifact.EncodeImported(imp, modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, inputs, from)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.GetTrees().GetImportedFrom(); got.GetFormat() != "xgboost-json" || got.GetLibraryVersion() != "1.7.4" ||
		len(got.GetFeatureNames()) != 2 || got.GetFeatureNames()[1] != "job" {
		t.Errorf("imported_from = %v", got)
	}
	if a.GetTrees().GetRules() != modelv1.SplitRules_SPLIT_RULES_XGBOOST {
		t.Errorf("rules %v, want XGBoost's", a.GetTrees().GetRules())
	}
	if got := a.GetInputs(); got[0].GetMissing() != modelv1.MissingPolicy_MISSING_POLICY_IMPUTE || got[1].GetMissing() != modelv1.MissingPolicy_MISSING_POLICY_REQUIRED {
		t.Errorf("missing policies %v, %v; want IMPUTE (unset) and REQUIRED (as given)", got[0].GetMissing(), got[1].GetMissing())
	}
	b, sha, err := artifact.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := artifact.Unmarshal(b, sha)
	if err != nil {
		t.Fatal(err)
	}
	s, err := artifact.NewScorer(back)
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
	}
	age := func(n int64) *commonv1.Value { return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: n}} }
	rows := []struct {
		age, job *commonv1.Value
		margin   float64
	}{
		{age(40), str("admin."), 0.5},
		{age(30), str("admin."), 0.5}, // not below 30
		{age(25), str("blue-collar"), 0.3},
		{age(25), str("admin."), -0.2},
		{age(25), str("services"), -0.2},
		{age(25), str("retired"), 0.3}, // not listed: missing, sent right
		{nil, str("admin."), -0.2},     // missing age: sent left
	}
	batch := artifact.NewBatch(s.Info())
	for _, r := range rows {
		batch.AddMap(map[string]*commonv1.Value{"age": r.age, "job": r.job}, time.Time{})
	}
	var res artifact.Result
	if err := s.Score(context.Background(), batch, &res); err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if res.Problems[i] != nil {
			t.Errorf("row %d: %v", i, res.Problems[i])
			continue
		}
		// The leaves are float32 in XGBoost's file: compare at that precision.
		if math.Abs(res.Scores[i]-r.margin) > 1e-7 || math.Abs(res.Probabilities[i]-1/(1+math.Exp(-r.margin))) > 1e-7 {
			t.Errorf("row %d: score %v, probability %v; want margin %v", i, res.Scores[i], res.Probabilities[i], r.margin)
		}
	}
}

func TestEncodeImportedRefusesWhatDoesNotFit(t *testing.T) {
	imp := readTiny(t)
	num := func(name string) artifact.ImportedInput {
		return artifact.ImportedInput{Column: &modelv1.InputColumn{Name: name, Type: commonv1.ValueType_VALUE_TYPE_NUMBER}}
	}
	cat := func(name string, typ commonv1.ValueType, cats ...string) artifact.ImportedInput {
		return artifact.ImportedInput{Column: &modelv1.InputColumn{Name: name, Type: typ}, Categories: cats}
	}
	binary, regression := modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, modelv1.TaskKind_TASK_KIND_REGRESSION
	for name, tc := range map[string]struct {
		task   modelv1.TaskKind
		inputs []artifact.ImportedInput
	}{
		"one input for two features":   {binary, []artifact.ImportedInput{num("age")}},
		"a logistic model regressing":  {regression, []artifact.ImportedInput{num("age"), cat("job", commonv1.ValueType_VALUE_TYPE_STRING, "a", "b")}},
		"categories of a number":       {binary, []artifact.ImportedInput{num("age"), cat("job", commonv1.ValueType_VALUE_TYPE_INT, "a", "b")}},
		"a string without categories":  {binary, []artifact.ImportedInput{num("age"), cat("job", commonv1.ValueType_VALUE_TYPE_STRING)}},
		"no type":                      {binary, []artifact.ImportedInput{num("age"), cat("job", commonv1.ValueType_VALUE_TYPE_UNSPECIFIED, "a")}},
		"an empty category":            {binary, []artifact.ImportedInput{num("age"), cat("job", commonv1.ValueType_VALUE_TYPE_STRING, "a", "")}},
		"one column for both features": {binary, []artifact.ImportedInput{num("age"), num("age")}},
	} {
		if _, err := artifact.EncodeImported(imp, tc.task, tc.inputs, nil); !errors.Is(err, artifact.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}
