package gbt_test

import (
	"context"
	"math"
	"sort"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/bankdata"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"gonum.org/v1/gonum/mat"
)

// codes encodes a table for boosting: numeric columns as they are, categorical columns as
// codes ordered by frequency on the training rows (unseen values missing).
func codes(t *ml.Table, train []int) (*mat.Dense, []bool) {
	x := mat.NewDense(t.Rows(), len(t.Columns), nil)
	cat := make([]bool, len(t.Columns))
	for j, c := range t.Columns {
		if c.Kind == ml.Numeric {
			for i, v := range c.Numeric {
				x.Set(i, j, v)
			}
			continue
		}
		cat[j] = true
		count := map[string]int{}
		for _, i := range train {
			count[c.Categorical[i]]++
		}
		names := make([]string, 0, len(count))
		for k := range count {
			names = append(names, k)
		}
		sort.Slice(names, func(a, b int) bool {
			if count[names[a]] != count[names[b]] {
				return count[names[a]] > count[names[b]]
			}
			return names[a] < names[b]
		})
		code := map[string]float64{}
		for k, n := range names {
			code[n] = float64(k)
		}
		for i, v := range c.Categorical {
			if k, ok := code[v]; ok {
				x.Set(i, j, k)
			} else {
				x.Set(i, j, math.NaN())
			}
		}
	}
	return x, cat
}

func rows(x *mat.Dense, idx []int) *mat.Dense {
	_, c := x.Dims()
	out := mat.NewDense(len(idx), c, nil)
	for k, i := range idx {
		out.SetRow(k, x.RawRowView(i))
	}
	return out
}

// TestBankAUC fits the defaults on the reference split of Bank Marketing (test rows
// i%5 == 4), with and without duration.
func TestBankAUC(t *testing.T) {
	b := bankdata.Require(t)
	for _, c := range []struct {
		duration bool
		least    float64
	}{{true, 0.945}, {false, 0.780}} {
		t.Run(bankdata.Name(c.duration), func(t *testing.T) {
			tab := b.Table
			if !c.duration {
				tab = tab.Drop("duration")
			}
			train, test := bankdata.Split(tab.Rows(), false)
			x, cat := codes(tab, train)
			fit, err := gbt.Fit(context.Background(), rows(x, train), pick(b.Y, train), gbt.Params{Categorical: cat})
			if err != nil {
				t.Fatal(err)
			}
			auc, err := metrics.ROCAUC(pick(b.Y, test), fit.Margins(rows(x, test)))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("test ROC-AUC %.4f after %d rounds (best %d)", auc, fit.Rounds, fit.BestRound+1)
			if auc < c.least {
				t.Errorf("test ROC-AUC %.4f, want at least %.3f", auc, c.least)
			}
		})
	}
}

func pick(v []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for k, i := range idx {
		out[k] = v[i]
	}
	return out
}

// benchConfig is the configuration make bench-train fits with Bullseye, scikit-learn's
// HistGradientBoostingClassifier and XGBoost's hist alike: 400 trees of at most 31 leaves,
// learning rate 0.05, 255 bins, no early stopping, 2 threads, native categorical splits.
func benchConfig(cat []bool) gbt.Params {
	return gbt.Params{Trees: 400, MaxLeaves: 31, LearningRate: 0.05, Bins: 255, EarlyStopping: -1, Threads: 2, Categorical: cat, L2: 1}
}

// BenchmarkGBTBank times the fit of the bench configuration on the Bank training split
// and reports the test ROC-AUC; scripts/bench-train.py puts it beside scikit-learn's and
// XGBoost's.
func BenchmarkGBTBank(b *testing.B) {
	bank := bankdata.Require(b)
	for _, withDuration := range []bool{true, false} {
		tab := bank.Table
		if !withDuration {
			tab = tab.Drop("duration")
		}
		train, test := bankdata.Split(tab.Rows(), false)
		x, cat := codes(tab, train)
		xtr, ytr := rows(x, train), pick(bank.Y, train)
		b.Run(bankdata.Name(withDuration), func(b *testing.B) {
			var fit *gbt.Fitted
			var err error
			for b.Loop() {
				if fit, err = gbt.Fit(context.Background(), xtr, ytr, benchConfig(cat)); err != nil {
					b.Fatal(err)
				}
			}
			auc, _ := metrics.ROCAUC(pick(bank.Y, test), fit.Margins(rows(x, test)))
			b.ReportMetric(auc, "auc")
		})
	}
}
