package recommend_test

import (
	"context"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
)

// TestConvergedOnlyAgainstATolerance checks that the recommender solvers flag a fit as not
// converged only when they had a tolerance and missed it: at their defaults (no tolerance)
// they run every iteration or epoch and report converged (every ALS, SGD and BPR fit used
// to say "not converged" at its default iterations); with a tolerance they stop when they
// reach it, and say so when the iterations ran out first.
func TestConvergedOnlyAgainstATolerance(t *testing.T) {
	explicit, err := synth.Generate(synth.Config{Users: 200, Items: 300, Ratings: 12_000, Round: true, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	implicit, err := synth.Implicit(synth.Config{Users: 200, Items: 300, Ratings: 12_000, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name             string
		d                *recommend.Interactions
		def, tight, easy recommend.Estimator
		iterations       int
	}{
		{"mf_als", explicit.Interactions, recommend.ALS{Seed: 1}, recommend.ALS{Iterations: 3, Tol: 1e-12, Seed: 1}, recommend.ALS{Tol: 0.5, Seed: 1}, 15},
		{"mf_sgd", explicit.Interactions, recommend.SGD{Seed: 1}, recommend.SGD{Epochs: 3, Tol: 1e-12, Seed: 1}, recommend.SGD{Tol: 0.5, Seed: 1}, 20},
		{"implicit_als", implicit.Interactions, recommend.ImplicitALS{Seed: 1}, recommend.ImplicitALS{Iterations: 3, Tol: 1e-12, Seed: 1}, recommend.ImplicitALS{Tol: 0.5, Seed: 1}, 15},
		{"bpr", implicit.Interactions, recommend.BPR{Seed: 1}, recommend.BPR{Epochs: 3, Tol: 1e-12, Seed: 1}, recommend.BPR{Tol: 0.5, Seed: 1}, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fit := func(e recommend.Estimator) *recommend.Factors {
				f, err := e.Fit(ctx, tc.d)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			if f := fit(tc.def); !f.Converged || f.Iterations != tc.iterations || f.Objective <= 0 {
				t.Errorf("defaults: converged %v after %d iterations (objective %v), want converged after all %d", f.Converged, f.Iterations, f.Objective, tc.iterations)
			}
			if f := fit(tc.tight); f.Converged || f.Iterations != 3 {
				t.Errorf("a tolerance of 1e-12 in 3 iterations: converged %v after %d, want not converged after 3", f.Converged, f.Iterations)
			}
			if f := fit(tc.easy); !f.Converged || f.Iterations >= tc.iterations {
				t.Errorf("a tolerance of 0.5: converged %v after %d iterations, want converged early", f.Converged, f.Iterations)
			}
		})
	}
}
