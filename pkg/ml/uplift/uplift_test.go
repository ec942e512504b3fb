package uplift_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/uplift"
	"gonum.org/v1/gonum/mat"
)

func learners() []struct {
	name string
	est  uplift.Estimator
} {
	return []struct {
		name string
		est  uplift.Estimator
	}{
		{"two-model", uplift.TwoModels{Base: logistic.Regression{}}},
		{"class-transformation", uplift.ClassTransformation{Base: logistic.Regression{}}},
		{"x-learner", uplift.XLearner{Outcome: logistic.Regression{}, Effect: linear.OLS{}}},
	}
}

func campaign(t *testing.T, cfg uplift.CampaignConfig) *uplift.Campaign {
	t.Helper()
	c, err := uplift.GenerateCampaign(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFitValidation(t *testing.T) {
	x := mat.NewDense(4, 2, []float64{0, 1, 1, 0, 2, 1, 1, 2})
	for _, tc := range []struct {
		name         string
		x            *mat.Dense
		treatment, y []float64
		want         []string
	}{
		{"no rows", nil, nil, nil, []string{"x: no rows"}},
		{"lengths", x, []float64{1, 0, 1}, []float64{1, 0}, []string{"treatment: 3 values for 4 rows", "y: 2 values for 4 rows"}},
		{"non-binary treatment", x, []float64{1, 0, 0.3, 0}, []float64{1, 0, 1, 0}, []string{"treatment[2] = 0.3 is not 0 or 1"}},
		{"NaN treatment", x, []float64{1, math.NaN(), 1, 0}, []float64{1, 0, 1, 0}, []string{"treatment[1] = NaN is not 0 or 1"}},
		{"non-binary outcome", x, []float64{1, 0, 1, 0}, []float64{1, 2, 1, 0}, []string{"y[1] = 2 is not 0 or 1"}},
		{"no control rows", x, []float64{1, 1, 1, 1}, []float64{1, 0, 1, 0}, []string{"treatment: no control rows"}},
		{"no treated rows", x, []float64{0, 0, 0, 0}, []float64{1, 0, 1, 0}, []string{"treatment: no treated rows"}},
	} {
		for _, l := range learners() {
			t.Run(tc.name+"/"+l.name, func(t *testing.T) {
				_, err := l.est.Fit(context.Background(), tc.x, tc.treatment, tc.y)
				if err == nil {
					t.Fatalf("err = nil, want %q", tc.want)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %q, want it to contain %q", err, w)
					}
				}
			})
		}
	}
}

func TestFitEstimatorErrors(t *testing.T) {
	c := campaign(t, uplift.CampaignConfig{Customers: 400, Seed: 1, Strength: 1})
	x := c.OneHot()
	for _, tc := range []struct {
		name string
		est  uplift.Estimator
		want string
	}{
		{"no base", uplift.TwoModels{}, "two-model uplift: base (treated rows): no estimator"},
		{"no probabilities", uplift.TwoModels{Base: linear.OLS{}}, "base (treated rows): a *linear.Model gives no probabilities"},
		{"class transformation without probabilities", uplift.ClassTransformation{Base: linear.OLS{}}, "class-transformation uplift: base: a *linear.Model gives no probabilities"},
		{"no outcome", uplift.XLearner{Effect: linear.OLS{}}, "x-learner uplift: outcome (treated rows): no estimator"},
		{"no effect", uplift.XLearner{Outcome: logistic.Regression{}}, "x-learner uplift: effect: no estimator"},
		{"propensity without probabilities", uplift.XLearner{Outcome: logistic.Regression{}, Effect: linear.OLS{}, Propensity: linear.OLS{}}, "propensity: a *linear.Model gives no probabilities"},
		{"base error", uplift.TwoModels{Base: logistic.Regression{C: -1}}, "base (treated rows): logistic regression: invalid settings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.est.Fit(context.Background(), x, c.Treatment, c.Y)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFitCancelled(t *testing.T) {
	c := campaign(t, uplift.CampaignConfig{Customers: 400, Seed: 1, Strength: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, l := range learners() {
		if _, err := l.est.Fit(ctx, c.OneHot(), c.Treatment, c.Y); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context.Canceled", l.name, err)
		}
	}
}

func TestScores(t *testing.T) {
	c := campaign(t, uplift.CampaignConfig{Customers: 4000, Seed: 3, Strength: 2})
	x := c.OneHot()
	ctx := context.Background()
	two, err := uplift.TwoModels{Base: logistic.Regression{}}.FitTwoModels(ctx, x, c.Treatment, c.Y)
	if err != nil {
		t.Fatal(err)
	}
	s := two.Scores(x)
	pred := two.Predict(x)
	for i := range s.Uplift {
		if s.Uplift[i] != s.Treated[i]-s.Control[i] || pred.AtVec(i) != s.Uplift[i] {
			t.Fatalf("row %d: two-model uplift %v, Predict %v, treated %v − control %v", i, s.Uplift[i], pred.AtVec(i), s.Treated[i], s.Control[i])
		}
	}

	ct, err := uplift.ClassTransformation{Base: logistic.Regression{}}.FitClassTransformation(ctx, x, c.Treatment, c.Y)
	if err != nil {
		t.Fatal(err)
	}
	cs := ct.Scores(x)
	z := ct.Model.PredictProba(x)
	for i := range cs.Uplift {
		if !math.IsNaN(cs.Treated[i]) || !math.IsNaN(cs.Control[i]) {
			t.Fatalf("row %d: class transformation gives arms %v and %v, want NaN", i, cs.Treated[i], cs.Control[i])
		}
		if cs.Uplift[i] != 2*z.AtVec(i)-1 {
			t.Fatalf("row %d: uplift %v, want 2·%v − 1", i, cs.Uplift[i], z.AtVec(i))
		}
	}

	xl, err := uplift.XLearner{Outcome: logistic.Regression{}, Effect: linear.OLS{}}.FitXLearner(ctx, x, c.Treatment, c.Y)
	if err != nil {
		t.Fatal(err)
	}
	xs := xl.Scores(x)
	tt, tc := xl.EffectTreated.Predict(x), xl.EffectControl.Predict(x)
	g := xl.Share
	if math.Abs(g-0.5) > 0.03 {
		t.Errorf("treated share %v, want about ½", g)
	}
	for i := range xs.Uplift {
		// Stage 1 is the two-model fit: the same base on the same rows.
		if xs.Treated[i] != s.Treated[i] || xs.Control[i] != s.Control[i] {
			t.Fatalf("row %d: x-learner arms %v, %v; two-model %v, %v", i, xs.Treated[i], xs.Control[i], s.Treated[i], s.Control[i])
		}
		if want := g*tc.AtVec(i) + (1-g)*tt.AtVec(i); math.Abs(xs.Uplift[i]-want) > 1e-12 {
			t.Fatalf("row %d: x-learner uplift %v, want g·τ_C + (1 − g)·τ_T = %v", i, xs.Uplift[i], want)
		}
	}

	withProp, err := uplift.XLearner{Outcome: logistic.Regression{}, Effect: linear.OLS{}, Propensity: logistic.Regression{}}.FitXLearner(ctx, x, c.Treatment, c.Y)
	if err != nil {
		t.Fatal(err)
	}
	e := withProp.Propensity.PredictProba(x)
	u := withProp.Predict(x)
	for i := range u.Len() {
		if want := e.AtVec(i)*tc.AtVec(i) + (1-e.AtVec(i))*tt.AtVec(i); math.Abs(u.AtVec(i)-want) > 1e-12 {
			t.Fatalf("row %d: uplift with a fitted propensity %v, want %v", i, u.AtVec(i), want)
		}
		if math.Abs(e.AtVec(i)-0.5) > 0.1 {
			t.Fatalf("row %d: fitted propensity %v in a randomised campaign", i, e.AtVec(i))
		}
	}

	var models []ml.Model = []ml.Model{two, ct, xl}
	for _, m := range models {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%T: Predict on 3 columns did not panic", m)
				}
			}()
			m.Predict(mat.NewDense(1, 3, nil))
		}()
	}
}

// TestClassTransformationBalances checks that the class transformation stays unbiased when
// the arms are unequal: with a treated share p = ¼ the raw transformation would be off by
// (2p − 1)(p_T + p_C − 1), here about +0.3.
func TestClassTransformationBalances(t *testing.T) {
	c := campaign(t, uplift.CampaignConfig{Customers: 40000, Seed: 5, Strength: 2, TreatedShare: 0.25})
	x := c.OneHot()
	var treated int
	for _, v := range c.Treatment {
		treated += int(v)
	}
	m, err := uplift.ClassTransformation{Base: logistic.Regression{}, Seed: 9}.FitClassTransformation(context.Background(), x, c.Treatment, c.Y)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(c.Y) - 2*treated; m.LeftOut != want || m.LeftOutOf != "control" {
		t.Errorf("left out %d %s rows, want %d control rows (%d treated of %d)", m.LeftOut, m.LeftOutOf, want, treated, len(c.Y))
	}
	if note := m.FitNote(); !strings.Contains(note, "control rows") {
		t.Errorf("FitNote = %q", note)
	}
	var mean, oracle, bias float64
	u := m.Predict(x)
	for i := range c.Y {
		mean += u.AtVec(i)
		oracle += c.Oracle[i]
		bias += -0.5 * (c.TreatedProb[i] + c.ControlProb[i] - 1)
	}
	n := float64(len(c.Y))
	mean, oracle, bias = mean/n, oracle/n, bias/n
	t.Logf("mean predicted uplift %.4f, true %.4f; the unbalanced transformation would add %.4f", mean, oracle, bias)
	if math.Abs(mean-oracle) > 0.02 {
		t.Errorf("mean predicted uplift %.4f, want about the true mean %.4f", mean, oracle)
	}
}

func TestTreatment(t *testing.T) {
	got := uplift.Treatment([]bool{true, false, true})
	if len(got) != 3 || got[0] != 1 || got[1] != 0 || got[2] != 1 {
		t.Errorf("Treatment = %v", got)
	}
}
