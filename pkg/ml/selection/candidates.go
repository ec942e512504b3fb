package selection

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
)

// Params are the hyperparameters of one candidate, by name.
type Params map[string]float64

// String formats the parameters in name order, e.g. "C=1 gamma=0.1".
func (p Params) String() string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(p)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%g", k, p[k])
	}
	return b.String()
}

// Family is a model family: a name and how to build its estimator from hyperparameters.
type Family struct {
	Name string
	New  func(Params) (ml.Estimator, error)
	// Native families split categories natively and route missing values themselves: they
	// are fitted behind the search's preprocessing made native (preprocess.Spec.Native), and
	// an ml.CategoricalEstimator is told which design columns hold category codes.
	Native bool
}

// Candidate is one family with one setting of its hyperparameters.
type Candidate struct {
	Family Family
	Params Params
}

// Estimator builds the candidate's estimator.
func (c Candidate) Estimator() (ml.Estimator, error) { return c.Family.New(c.Params) }

// EstimatorFor builds the candidate's estimator for a design made by pipe: a categorical
// estimator is told which of its columns hold category codes.
func (c Candidate) EstimatorFor(pipe *preprocess.Pipeline) (ml.Estimator, error) {
	est, err := c.Estimator()
	if err != nil {
		return nil, err
	}
	if ce, ok := est.(ml.CategoricalEstimator); ok {
		return ce.WithCategorical(pipe.Categorical()), nil
	}
	return est, nil
}

// Grid returns one candidate per combination of the axes' values, in a fixed order (axes by
// name, values as given).
func Grid(f Family, axes map[string][]float64) []Candidate {
	names := slices.Sorted(maps.Keys(axes))
	out := []Candidate{{Family: f, Params: Params{}}}
	for _, name := range names {
		var next []Candidate
		for _, c := range out {
			for _, v := range axes[name] {
				p := maps.Clone(c.Params)
				p[name] = v
				next = append(next, Candidate{Family: f, Params: p})
			}
		}
		out = next
	}
	return out
}

// Distribution is a distribution of one hyperparameter for random search.
type Distribution interface {
	Sample(r *rand.Rand) float64
}

// Uniform is the uniform distribution on [Lo, Hi).
type Uniform struct{ Lo, Hi float64 }

// Sample implements [Distribution].
func (u Uniform) Sample(r *rand.Rand) float64 { return u.Lo + (u.Hi-u.Lo)*r.Float64() }

// LogUniform is log-uniform on [Lo, Hi), Lo > 0: the scale for C, gamma and penalties.
type LogUniform struct{ Lo, Hi float64 }

// Sample implements [Distribution].
func (u LogUniform) Sample(r *rand.Rand) float64 {
	return math.Exp(math.Log(u.Lo) + (math.Log(u.Hi)-math.Log(u.Lo))*r.Float64())
}

// Choice picks one of its values uniformly.
type Choice []float64

// Sample implements [Distribution].
func (c Choice) Sample(r *rand.Rand) float64 { return c[r.IntN(len(c))] }

// Random returns n candidates with hyperparameters drawn from space, reproducibly for a
// seed.
func Random(f Family, space map[string]Distribution, n int, seed uint64) []Candidate {
	rng := rand.New(rand.NewPCG(seed, 0x7273))
	names := slices.Sorted(maps.Keys(space))
	out := make([]Candidate, n)
	for i := range out {
		p := Params{}
		for _, name := range names {
			p[name] = space[name].Sample(rng)
		}
		out[i] = Candidate{Family: f, Params: p}
	}
	return out
}
