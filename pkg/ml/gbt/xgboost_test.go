package gbt

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// exportRows writes generated rows for the XGBoost exporter and returns them as a matrix
// (a, b, c numeric with missing values, k a category code).
func exportRows(t *testing.T, path string, n int) *mat.Dense {
	rng := rand.New(rand.NewPCG(5, 8))
	x := mat.NewDense(n, 4, nil)
	var b strings.Builder
	b.WriteString("a,b,c,k,y\n")
	for i := range n {
		a, bb, c, k := rng.NormFloat64(), rng.Float64()*10, float64(rng.IntN(50)), float64(rng.IntN(12))
		y := a + 0.3*bb - 0.02*c + []float64{0, 1, -1, 2, 0, 0, 1, -2, 0, 3, 0, 1}[int(k)] + rng.NormFloat64()*0.5
		cell := func(v float64) string {
			if math.IsNaN(v) {
				return ""
			}
			return fmt.Sprint(v)
		}
		if rng.Float64() < 0.1 {
			a = math.NaN()
		}
		if rng.Float64() < 0.05 {
			k = math.NaN()
		}
		x.SetRow(i, []float64{a, bb, c, k})
		fmt.Fprintf(&b, "%s,%s,%s,%s,%v\n", cell(a), cell(bb), cell(c), cell(k), y)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return x
}

type xgboostPredictions struct {
	Margin        []float64   `json:"margin"`
	Prediction    []float64   `json:"prediction"`
	Contributions [][]float64 `json:"contributions"`
}

// TestXGBoostJSONScoresAsXGBoost trains models with Debian's python3-xgboost (installed by
// scripts/apt.sh through make test), reads their JSON files and compares margins,
// predictions and TreeSHAP contributions with XGBoost's own on every row.
func TestXGBoostJSONScoresAsXGBoost(t *testing.T) {
	dir := t.TempDir()
	x := exportRows(t, filepath.Join(dir, "rows.csv"), 2000)
	cmd := exec.Command("/usr/bin/python3", "testdata/xgboost_export.py", filepath.Join(dir, "rows.csv"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the XGBoost exporter (python3-xgboost, python3-pandas; scripts/apt.sh installs them): %v\n%s", err, out)
	}
	for _, name := range []string{"logistic", "logistic-categorical", "squarederror", "poisson"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			imp, err := ReadXGBoostJSON(f)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, name+".predictions.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want xgboostPredictions
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			if name == "logistic-categorical" && !imp.FeatureCategorical[3] {
				t.Fatal("feature k is not read as categorical")
			}
			margin := imp.Margins(x)
			pred := imp.Predict(x).RawVector().Data
			if imp.Objective == Logistic {
				pred = imp.PredictProba(x).RawVector().Data
			}
			phi := make([]float64, imp.Features)
			var worstMargin, worstPred, worstPhi float64
			for i := range margin {
				// XGBoost sums in float32: compare to its precision.
				worstMargin = math.Max(worstMargin, math.Abs(margin[i]-want.Margin[i])/math.Max(1, math.Abs(want.Margin[i])))
				worstPred = math.Max(worstPred, math.Abs(pred[i]-want.Prediction[i])/math.Max(1, math.Abs(want.Prediction[i])))
				imp.Contributions(x.RawRowView(i), phi)
				for j, v := range phi {
					worstPhi = math.Max(worstPhi, math.Abs(v-want.Contributions[i][j]))
				}
				bias := want.Contributions[i][imp.Features]
				worstPhi = math.Max(worstPhi, math.Abs(imp.ExpectedValue()-bias))
			}
			t.Logf("%d trees: max relative |Δ margin| %.2g, |Δ prediction| %.2g, |Δ contribution| %.2g", len(imp.Trees), worstMargin, worstPred, worstPhi)
			if worstMargin > 1e-5 || worstPred > 1e-6 || worstPhi > 1e-4 {
				t.Errorf("differs from XGBoost: margin %.3g, prediction %.3g, contribution %.3g", worstMargin, worstPred, worstPhi)
			}
		})
	}
}

func TestXGBoostJSONRefusesWhatItCannotScore(t *testing.T) {
	base := `{"learner":{"feature_names":[],"feature_types":[],"learner_model_param":{"base_score":"5E-1","num_class":"%s","num_feature":"2","num_target":"1"},"objective":{"name":"%s"},"gradient_booster":{"name":"%s","model":{"trees":[%s]}}},"version":[1,7,4]}`
	leaf := `{"left_children":[-1],"right_children":[-1],"split_conditions":[0.5],"split_indices":[0],"default_left":[0],"split_type":[0],"sum_hessian":[1]}`
	loop := `{"left_children":[0,-1],"right_children":[1,-1],"split_conditions":[0.5,1],"split_indices":[0,0],"default_left":[0,0],"split_type":[0,0],"sum_hessian":[1,1]}`
	feature := `{"left_children":[1,-1,-1],"right_children":[2,-1,-1],"split_conditions":[0.5,1,2],"split_indices":[7,0,0],"default_left":[0,0,0],"split_type":[0,0,0],"sum_hessian":[2,1,1]}`
	cases := map[string]string{
		"num_class":        fmt.Sprintf(base, "3", "multi:softprob", "gbtree", leaf),
		"objective":        fmt.Sprintf(base, "0", "rank:pairwise", "gbtree", leaf),
		"gradient_booster": fmt.Sprintf(base, "0", "binary:logistic", "gblinear", leaf),
		"no trees":         fmt.Sprintf(base, "0", "binary:logistic", "gbtree", ""),
		"not later nodes":  fmt.Sprintf(base, "0", "binary:logistic", "gbtree", loop),
		"feature 7":        fmt.Sprintf(base, "0", "binary:logistic", "gbtree", feature),
		"not an XGBoost":   `{"learner": 3}`,
	}
	for want, file := range cases {
		_, err := ReadXGBoostJSON(strings.NewReader(file))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
	if _, err := ReadXGBoostJSON(strings.NewReader("PK\x03\x04")); err == nil || !strings.Contains(err.Error(), "not an XGBoost JSON model") {
		t.Errorf("a zip file: got %v", err)
	}
	if _, err := ReadXGBoostJSON(strings.NewReader(fmt.Sprintf(base, "0", "binary:logistic", "gbtree", leaf))); err != nil {
		t.Errorf("a one-leaf model: %v", err)
	}
}
