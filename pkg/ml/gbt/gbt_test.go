package gbt

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"gonum.org/v1/gonum/mat"
)

// synthetic returns n rows of a numeric column with missing values, a categorical column
// of 8 categories and a noise column, with a logistic target that depends on the first two.
func synthetic(n int, seed uint64) (*mat.Dense, []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := mat.NewDense(n, 3, nil)
	y := make([]float64, n)
	for i := range n {
		a := rng.NormFloat64()
		c := float64(rng.IntN(8))
		f := 1.5 * a
		if c == 1 || c == 4 || c == 6 {
			f += 2
		}
		if rng.Float64() < 0.1 {
			a = math.NaN()
			f = -2
		}
		x.Set(i, 0, a)
		x.Set(i, 1, c)
		x.Set(i, 2, rng.Float64())
		if rng.Float64() < logistic.Sigmoid(f-1) {
			y[i] = 1
		}
	}
	return x, y
}

func TestBestNumericMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := range 200 {
		n := 5 + rng.IntN(60)
		col := make([]float64, n)
		gh := make([]gradPair, n)
		for i := range col {
			col[i] = float64(rng.IntN(12))
			if rng.Float64() < 0.2 {
				col[i] = math.NaN()
			}
			gh[i] = gradPair{rng.NormFloat64(), 0.1 + rng.Float64()}
		}
		rows := make([]int, n)
		for i := range rows {
			rows[i] = i
		}
		bn := fitBinner(col, rows, false, MaxBins, rng)
		data := binColumns([][]float64{col}, []*binner{bn}, n)
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(i)
		}
		h := make(histogram, data.size())
		h.build(data, []int{0}, idx, gh, parallel.NewTeam(1))
		var total stat
		for _, p := range gh {
			total = total.add(stat{p.g, p.h, 1})
		}
		rules := splitRules{l2: 0.5, minSamplesLeaf: 1 + rng.IntN(4), minChildWeight: 1e-3}
		got := bestSplit(h, []int{0}, data, total, &rules)

		want := 0.0
		for _, thr := range bn.thresholds {
			for _, missLeft := range []bool{false, true} {
				var l stat
				for i, v := range col {
					if (math.IsNaN(v) && missLeft) || (!math.IsNaN(v) && v <= thr) {
						l = l.add(stat{gh[i].g, gh[i].h, 1})
					}
				}
				r := total.sub(l)
				if rules.admits(l) && rules.admits(r) {
					want = math.Max(want, gain(l, r, total, rules.l2))
				}
			}
		}
		// All non-missing values on one side and the missing ones on the other.
		var l stat
		for i, v := range col {
			if !math.IsNaN(v) {
				l = l.add(stat{gh[i].g, gh[i].h, 1})
			}
		}
		if r := total.sub(l); rules.admits(l) && rules.admits(r) {
			want = math.Max(want, gain(l, r, total, rules.l2))
		}
		if math.Abs(got.gain-want) > 1e-9*math.Max(1, want) {
			t.Fatalf("trial %d: histogram split gain %v, brute force %v", trial, got.gain, want)
		}
	}
}

func TestCategoricalAndMissingRouting(t *testing.T) {
	const n = 4000
	rng := rand.New(rand.NewPCG(3, 3))
	x := mat.NewDense(n, 2, nil)
	y := make([]float64, n)
	for i := range n {
		c := float64(rng.IntN(10))
		v := rng.Float64()
		if i%7 == 0 {
			v = math.NaN()
		}
		x.Set(i, 0, c)
		x.Set(i, 1, v)
		switch {
		case math.IsNaN(v):
			y[i] = 2
		case c == 2 || c == 5 || c == 9:
			y[i] = 1
		}
	}
	fit, err := Fit(context.Background(), x, y, Params{Objective: SquaredError, Trees: 60, LearningRate: 0.3, Categorical: []bool{true, false}, EarlyStopping: -1})
	if err != nil {
		t.Fatal(err)
	}
	probe := mat.NewDense(4, 2, []float64{
		5, 0.5, // in the set
		3, 0.5, // not in the set
		5, math.NaN(), // missing numeric
		42, 0.5, // a category never seen goes right, with the categories not in the set
	})
	got := fit.Predict(probe).RawVector().Data
	want := []float64{1, 0, 2, 0}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 0.02 {
			t.Errorf("row %d: predicted %.4f, want %v", i, got[i], want[i])
		}
	}
	for _, tr := range fit.Trees {
		for _, nd := range tr.Nodes {
			if !nd.IsLeaf() && nd.Feature == 0 && nd.CatSet < 0 {
				t.Fatal("the categorical column was split by a threshold")
			}
		}
	}
}

func TestEarlyStoppingKeepsTheBestRound(t *testing.T) {
	x, y := synthetic(3000, 5)
	fit, err := Fit(context.Background(), x, y, Params{Trees: 2000, LearningRate: 0.3, Categorical: []bool{false, true, false}, EarlyStopping: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !fit.Stopped || fit.Rounds >= 2000 {
		t.Fatalf("boosting ran %d rounds without stopping", fit.Rounds)
	}
	if len(fit.Trees) != fit.BestRound+1 || fit.Rounds-fit.BestRound-1 != 10 {
		t.Fatalf("kept %d trees, best round %d of %d", len(fit.Trees), fit.BestRound, fit.Rounds)
	}
	best := fit.ValidationLoss[fit.BestRound]
	for r, l := range fit.ValidationLoss {
		if l < best {
			t.Fatalf("round %d has validation loss %v below the best round's %v", r, l, best)
		}
	}
}

func TestDeterministicForASeed(t *testing.T) {
	x, y := synthetic(60000, 9) // enough rows for histograms and partitions to be shared out
	p := Params{Trees: 30, Subsample: 0.7, ColSample: 0.67, Categorical: []bool{false, true, false}, Seed: 11, Threads: 3}
	a, err := Fit(context.Background(), x, y, p)
	if err != nil {
		t.Fatal(err)
	}
	p.Threads = 1
	b, err := Fit(context.Background(), x, y, p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Ensemble, b.Ensemble) {
		t.Fatal("two fits with one seed (and different thread counts) differ")
	}
	p.Seed = 12
	c, err := Fit(context.Background(), x, y, p)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Ensemble, c.Ensemble) {
		t.Fatal("fits with different seeds are identical")
	}
}

func TestBatchEqualsRowByRow(t *testing.T) {
	x, y := synthetic(1500, 2)
	fit, err := Fit(context.Background(), x, y, Params{Trees: 40, Categorical: []bool{false, true, false}})
	if err != nil {
		t.Fatal(err)
	}
	batch := fit.Margins(x)
	for i := range batch {
		row := x.RawRowView(i)
		m := fit.Base
		for ti := range fit.Trees {
			tr := &fit.Trees[ti]
			m += tr.Nodes[walk(tr, row)].Value
		}
		if batch[i] != m {
			t.Fatalf("row %d: batch margin %v, row by row %v", i, batch[i], m)
		}
	}
}

// walk follows a row through a tree by pointer-style recursion, independently of the scorer.
func walk(t *Tree, x []float64) int {
	k := 0
	for t.Nodes[k].Left >= 0 {
		n := t.Nodes[k]
		v := x[n.Feature]
		var left bool
		switch {
		case math.IsNaN(v):
			left = n.DefaultLeft
		case n.CatSet >= 0:
			c := int(v)
			set := t.CatSets[n.CatSet]
			left = c < 64*len(set) && set[c/64]>>(c%64)&1 == 1
		default:
			left = v <= n.Threshold
		}
		if left {
			k = int(n.Left)
		} else {
			k = int(n.Right)
		}
	}
	return k
}

func TestContributionsAddUpToTheMargin(t *testing.T) {
	x, y := synthetic(2000, 4)
	fit, err := Fit(context.Background(), x, y, Params{Trees: 50, MaxLeaves: 15, Categorical: []bool{false, true, false}})
	if err != nil {
		t.Fatal(err)
	}
	ev := fit.ExpectedValue()
	m := fit.Margins(x)
	phi := make([]float64, 3)
	for i := range m {
		fit.Contributions(x.RawRowView(i), phi)
		sum := ev
		for _, v := range phi {
			sum += v
		}
		if math.Abs(sum-m[i]) > 1e-9 {
			t.Fatalf("row %d: contributions + expected value = %v, margin %v", i, sum, m[i])
		}
	}
}

func TestContributionsAreShapleyValues(t *testing.T) {
	const features = 5
	rng := rand.New(rand.NewPCG(21, 21))
	n := 1500
	x := mat.NewDense(n, features, nil)
	y := make([]float64, n)
	for i := range n {
		for j := range features {
			x.Set(i, j, rng.NormFloat64())
		}
		if j := rng.IntN(features); rng.Float64() < 0.1 {
			x.Set(i, j, math.NaN())
		}
		y[i] = x.At(i, 0)*x.At(i, 1) + math.Abs(x.At(i, 2)) + rng.NormFloat64()*0.1
		if math.IsNaN(y[i]) {
			y[i] = 1
		}
	}
	fit, err := Fit(context.Background(), x, y, Params{Objective: SquaredError, Trees: 6, MaxLeaves: 12, MaxDepth: 4, LearningRate: 0.5, EarlyStopping: -1})
	if err != nil {
		t.Fatal(err)
	}
	phi := make([]float64, features)
	for i := range 40 {
		row := x.RawRowView(i)
		fit.Contributions(row, phi)
		want := bruteShapley(fit.Ensemble, row)
		for j := range features {
			if math.Abs(phi[j]-want[j]) > 1e-9 {
				t.Fatalf("row %d feature %d: TreeSHAP %v, Shapley by enumeration %v", i, j, phi[j], want[j])
			}
		}
	}
}

// bruteShapley enumerates every coalition S of features, with v(S) the expected margin
// when the features of S follow x and the others are averaged out by node cover.
func bruteShapley(e *Ensemble, x []float64) []float64 {
	m := e.Features
	value := func(set uint) float64 {
		v := e.Base
		for ti := range e.Trees {
			v += condExpect(&e.Trees[ti], 0, x, set)
		}
		return v
	}
	fact := func(k int) float64 {
		f := 1.0
		for i := 2; i <= k; i++ {
			f *= float64(i)
		}
		return f
	}
	phi := make([]float64, m)
	for j := range m {
		for set := uint(0); set < 1<<m; set++ {
			if set&(1<<j) != 0 {
				continue
			}
			s := popcount(set)
			w := fact(s) * fact(m-s-1) / fact(m)
			phi[j] += w * (value(set|1<<j) - value(set))
		}
	}
	return phi
}

func condExpect(t *Tree, k int32, x []float64, set uint) float64 {
	n := &t.Nodes[k]
	if n.IsLeaf() {
		return n.Value
	}
	if set&(1<<n.Feature) != 0 {
		if t.goesLeft(n, x[n.Feature], NativeRules) {
			return condExpect(t, n.Left, x, set)
		}
		return condExpect(t, n.Right, x, set)
	}
	l, r := &t.Nodes[n.Left], &t.Nodes[n.Right]
	return (l.Cover*condExpect(t, n.Left, x, set) + r.Cover*condExpect(t, n.Right, x, set)) / n.Cover
}

func popcount(v uint) int {
	c := 0
	for ; v != 0; v &= v - 1 {
		c++
	}
	return c
}

func TestBadInputs(t *testing.T) {
	x, y := synthetic(100, 1)
	cases := map[string]struct {
		p Params
		y []float64
	}{
		"learning_rate": {Params{LearningRate: 2}, y},
		"max_leaves":    {Params{MaxLeaves: 1}, y},
		"subsample":     {Params{Subsample: math.NaN()}, y},
		"categorical":   {Params{Categorical: []bool{true}}, y},
		"label":         {Params{}, append(make([]float64, 99), 3)},
		"code":          {Params{Categorical: []bool{false, false, true}}, y},
	}
	for name, c := range cases {
		if _, err := Fit(context.Background(), x, c.y, c.p); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
