package gbt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"gonum.org/v1/gonum/mat"
)

// Fitted is an ensemble with how its fit went.
type Fitted struct {
	*Ensemble
	// Rounds is the number of boosting rounds run; with early stopping the ensemble keeps
	// the first BestRound+1 of them.
	Rounds    int
	BestRound int
	// ValidationLoss is the loss on the held-out rows after each round (empty without early
	// stopping).
	ValidationLoss []float64
	// Stopped is true when early stopping ended boosting before Params.Trees rounds.
	Stopped bool
}

// Fit boosts trees on the rows of x with targets y.
func Fit(ctx context.Context, x *mat.Dense, y []float64, p Params) (*Fitted, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.withDefaults()
	cols, err := columns(x, y, p)
	if err != nil {
		return nil, err
	}
	b := newBooster(cols, y, p)
	return b.run(ctx)
}

// columns checks the inputs and returns x column by column.
func columns(x *mat.Dense, y []float64, p Params) ([][]float64, error) {
	r, c := x.Dims()
	if r != len(y) {
		return nil, fmt.Errorf("x has %d rows and y %d values", r, len(y))
	}
	if r == 0 {
		return nil, errors.New("no training rows")
	}
	if len(p.Categorical) != 0 && len(p.Categorical) != c {
		return nil, fmt.Errorf("categorical: %d flags for %d columns", len(p.Categorical), c)
	}
	for i, v := range y {
		if err := checkTarget(p.Objective, v); err != nil {
			return nil, fmt.Errorf("y[%d]: %w", i, err)
		}
	}
	cols := make([][]float64, c)
	for j := range cols {
		col := make([]float64, r)
		mat.Col(col, j, x)
		cat := len(p.Categorical) != 0 && p.Categorical[j]
		for i, v := range col {
			switch {
			case math.IsInf(v, 0):
				return nil, fmt.Errorf("x[%d][%d] is infinite", i, j)
			case cat && !math.IsNaN(v) && (v < 0 || v >= MaxBins || v != math.Trunc(v)):
				return nil, fmt.Errorf("x[%d][%d] = %g is not a category code (0 to %d)", i, j, v, MaxBins-1)
			}
		}
		cols[j] = col
	}
	return cols, nil
}

func checkTarget(o Objective, v float64) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("%g is not a finite target", v)
	case o == Logistic && v != 0 && v != 1:
		return fmt.Errorf("%g is not a label 0 or 1", v)
	case o == Poisson && v < 0:
		return fmt.Errorf("%g is a negative count", v)
	}
	return nil
}

type booster struct {
	p       Params
	cols    [][]float64
	y       []float64
	train   []int // rows fitted on
	valid   []int // rows held out for early stopping
	data    *binned
	raw     []float64 // every row's margin so far
	gh      []gradPair
	rng     *rand.Rand
	threads int
	team    *parallel.Team // threads goroutines while run runs
	sampled []bool         // by row: in the current tree's sample (kept all false between trees)
	all     []int32        // the training rows
	rows    []int32        // the current tree's sample
}

func newBooster(cols [][]float64, y []float64, p Params) *booster {
	b := &booster{p: p, cols: cols, y: y, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
	b.threads = p.Threads
	if b.threads == 0 {
		b.threads = runtime.GOMAXPROCS(0)
	}
	b.train, b.valid = b.holdOut()
	binners := make([]*binner, len(cols))
	for j, col := range cols {
		binners[j] = fitBinner(col, b.train, len(p.Categorical) != 0 && p.Categorical[j], p.Bins, b.rng)
	}
	b.data = binColumns(cols, binners, len(y))
	return b
}

// holdOut splits the rows into those fitted on and those held out for early stopping,
// stratified by label for Logistic. Early stopping is off when too few rows would be held out.
func (b *booster) holdOut() (train, valid []int) {
	n := len(b.y)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	if b.p.EarlyStopping < 0 || int(float64(n)*b.p.ValidationFraction) < 2 {
		return all, nil
	}
	groups := [][]int{all}
	if b.p.Objective == Logistic {
		var neg, pos []int
		for i, v := range b.y {
			if v == 1 {
				pos = append(pos, i)
			} else {
				neg = append(neg, i)
			}
		}
		groups = [][]int{neg, pos}
	}
	for _, g := range groups {
		g = slices.Clone(g)
		b.rng.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
		k := int(math.Round(float64(len(g)) * b.p.ValidationFraction))
		valid = append(valid, g[:k]...)
		train = append(train, g[k:]...)
	}
	slices.Sort(train)
	slices.Sort(valid)
	return train, valid
}

func (b *booster) run(ctx context.Context) (*Fitted, error) {
	p := b.p
	base := b.baseMargin()
	b.raw = make([]float64, len(b.y))
	for i := range b.raw {
		b.raw[i] = base
	}
	b.gh = make([]gradPair, len(b.y))
	b.team = parallel.NewTeam(b.threads)
	defer b.team.Close()
	g := &grower{
		data:      b.data,
		gh:        b.gh,
		rules:     splitRules{l2: p.L2, minSamplesLeaf: p.MinSamplesLeaf, minChildWeight: p.MinChildWeight},
		maxLeaves: p.MaxLeaves,
		maxDepth:  p.MaxDepth,
		shrink:    p.LearningRate,
		team:      b.team,
		pool:      &histPool{size: b.data.size()},
		tmp:       make([]int32, len(b.train)),
	}
	fit := &Fitted{Ensemble: &Ensemble{Objective: p.Objective, Base: base, Features: len(b.cols)}}
	var trees []*binTree
	best, bestLoss := -1, math.Inf(1)
	for round := range p.Trees {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b.gradients()
		g.idx = b.sampleRows()
		g.cols = b.sampleColumns()
		t, leaves := g.grow()
		b.update(t, leaves, g.idx)
		trees = append(trees, t)
		fit.Rounds = round + 1
		if len(b.valid) == 0 {
			continue
		}
		loss := b.validationLoss()
		fit.ValidationLoss = append(fit.ValidationLoss, loss)
		if best < 0 || loss < bestLoss-1e-12*math.Abs(bestLoss) {
			best, bestLoss = round, loss
		} else if round-best >= p.EarlyStopping {
			fit.Stopped = true
			break
		}
	}
	fit.BestRound = fit.Rounds - 1
	if len(b.valid) > 0 {
		fit.BestRound = best
		trees = trees[:best+1]
	}
	for _, t := range trees {
		fit.Trees = append(fit.Trees, b.convert(t))
	}
	return fit, nil
}

// baseMargin is the constant margin that minimises the loss on the training rows.
func (b *booster) baseMargin() float64 {
	var sum float64
	for _, i := range b.train {
		sum += b.y[i]
	}
	mean := sum / float64(len(b.train))
	switch b.p.Objective {
	case Logistic:
		mean = min(max(mean, 1e-12), 1-1e-12)
		return math.Log(mean / (1 - mean))
	case Poisson:
		return math.Log(max(mean, 1e-12))
	}
	return mean
}

func (b *booster) gradients() {
	parts := b.threads
	if len(b.train) < parallelRows {
		parts = 1
	}
	b.team.Split(len(b.train), parts, func(_, lo, hi int) {
		y, raw, gh, rows := b.y, b.raw, b.gh, b.train[lo:hi]
		switch b.p.Objective {
		case Logistic:
			for _, i := range rows {
				pr := logistic.Sigmoid(raw[i])
				gh[i] = gradPair{pr - y[i], max(pr*(1-pr), 1e-16)}
			}
		case SquaredError:
			for _, i := range rows {
				gh[i] = gradPair{raw[i] - y[i], 1}
			}
		case Poisson:
			for _, i := range rows {
				mu := math.Exp(raw[i])
				gh[i] = gradPair{mu - y[i], mu}
			}
		}
	})
}

// sampleRows returns the rows the next tree is fitted on, in increasing order, in a buffer
// that the next call reuses.
func (b *booster) sampleRows() []int32 {
	n := len(b.train)
	if b.rows == nil {
		b.all = make([]int32, n)
		for k, i := range b.train {
			b.all[k] = int32(i)
		}
		b.rows = make([]int32, n)
	}
	k := n
	if b.p.Subsample < 1 {
		k = max(1, int(math.Round(float64(n)*b.p.Subsample)))
	}
	if k == n {
		copy(b.rows, b.all)
		return b.rows
	}
	rows := b.rows[:0]
	for _, j := range b.rng.Perm(n)[:k] {
		rows = append(rows, b.all[j])
	}
	slices.Sort(rows)
	return rows
}

func (b *booster) sampleColumns() []int {
	n := len(b.cols)
	if b.p.ColSample >= 1 {
		cols := make([]int, n)
		for j := range cols {
			cols[j] = j
		}
		return cols
	}
	k := max(1, int(math.Round(float64(n)*b.p.ColSample)))
	cols := b.rng.Perm(n)[:k]
	slices.Sort(cols)
	return cols
}

// update adds the new tree's values to the margins: by leaf for the rows it was grown on,
// by walking it for the others.
func (b *booster) update(t *binTree, leaves []grown, idx []int32) {
	grownOn := len(idx) == len(b.train)
	for _, l := range leaves {
		for _, r := range idx[l.lo:l.hi] {
			b.raw[r] += l.value
		}
	}
	if !grownOn {
		if b.sampled == nil {
			b.sampled = make([]bool, len(b.y))
		}
		for _, r := range idx {
			b.sampled[r] = true
		}
		for _, i := range b.train {
			if !b.sampled[i] {
				b.raw[i] += t.nodes[t.leafOf(b.data, i)].value
			}
		}
		for _, r := range idx {
			b.sampled[r] = false
		}
	}
	for _, i := range b.valid {
		b.raw[i] += t.nodes[t.leafOf(b.data, i)].value
	}
}

func (b *booster) validationLoss() float64 {
	var sum float64
	for _, i := range b.valid {
		sum += loss(b.p.Objective, b.y[i], b.raw[i])
	}
	return sum / float64(len(b.valid))
}

// loss is the objective's loss of margin f for target y.
func loss(o Objective, y, f float64) float64 {
	switch o {
	case Logistic:
		// log(1 + e^f) − y f, computed without overflow.
		return math.Max(f, 0) + math.Log1p(math.Exp(-math.Abs(f))) - y*f
	case Poisson:
		return math.Exp(f) - y*f
	}
	d := y - f
	return d * d / 2
}

// convert turns a tree grown in bins into one over the input values.
func (b *booster) convert(t *binTree) Tree {
	out := Tree{Nodes: make([]Node, len(t.nodes))}
	for i, n := range t.nodes {
		o := Node{Left: -1, Right: -1, CatSet: -1, Value: n.value, Cover: n.cover}
		if !n.leaf {
			o.Left, o.Right, o.Feature = int32(n.left), int32(n.right), int32(n.col)
			s := n.split
			if s.categorical {
				o.CatSet = int32(len(out.CatSets))
				out.CatSets = append(out.CatSets, []uint64{s.cats[0], s.cats[1], s.cats[2], s.cats[3] &^ (1 << (missingBin & 63))})
				o.DefaultLeft = s.goesLeft(missingBin)
			} else {
				o.DefaultLeft = s.defaultLeft
				o.Threshold = math.Inf(1)
				if th := b.data.binners[n.col].thresholds; int(s.bin) < len(th) {
					o.Threshold = th[s.bin]
				}
			}
		}
		out.Nodes[i] = o
	}
	return out
}
