package recommend_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
)

// benchData is the 1M-shaped generated set of the benchmarks, ratings rounded to 1..5 as
// MovieLens's. When BULLSEYE_RECS_DATA names a file, it is written there in u.data format
// for scripts/bench-recs.py's numpy side.
var benchData = sync.OnceValues(func() (*synth.Data, error) {
	c := synth.MovieLens1M()
	c.Round = true
	d, err := synth.Generate(c)
	if err != nil {
		return nil, err
	}
	if path := os.Getenv("BULLSEYE_RECS_DATA"); path != "" {
		if err := writeMovieLensFile(path, d.Interactions); err != nil {
			return nil, err
		}
	}
	return d, nil
})

func writeMovieLensFile(path string, in *recommend.Interactions) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := synth.WriteMovieLens(f, in); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Clean(path))
}

// BenchmarkALSIteration times one iteration (a user half and an item half) of explicit ALS
// (weighted-λ, biased, Cholesky) and of implicit ALS (3 CG steps) at rank 10 on the
// 1M-shaped set: the time of a fit of 1 + n iterations less that of a fit of 1, over n, so
// that the set-up (indexing the interactions) is left out as on the numpy side. Each
// benchmark iteration measures once; s/iter is the metric.
func BenchmarkALSIteration(b *testing.B) {
	d, err := benchData()
	if err != nil {
		b.Fatal(err)
	}
	const n = 5
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		fit  func(iterations int) (*recommend.Factors, error)
	}{
		{"explicit", func(it int) (*recommend.Factors, error) {
			return recommend.ALS{Rank: 10, Lambda: 0.1, Iterations: it, Tol: -1, Seed: 1}.Fit(ctx, d.Interactions)
		}},
		{"implicit", func(it int) (*recommend.Factors, error) {
			return recommend.ImplicitALS{Rank: 10, Lambda: 1, Alpha: 1, Iterations: it, CGSteps: 3, Tol: -1, Seed: 1}.Fit(ctx, d.Interactions)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var per time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := tc.fit(1); err != nil {
					b.Fatal(err)
				}
				one := time.Since(start)
				start = time.Now()
				if _, err := tc.fit(1 + n); err != nil {
					b.Fatal(err)
				}
				per += (time.Since(start) - one) / n
			}
			b.ReportMetric(per.Seconds()/float64(b.N), "s/iter")
		})
	}
}

// BenchmarkTopK measures top-10 recommendation throughput (users per second) over 20,000
// items at rank 64: batches of users through Recommend (one blocked product per batch,
// parallel) beside the same users one at a time through RecommendOne (one Sgemv each), on one
// goroutine and on two.
func BenchmarkTopK(b *testing.B) {
	f := randomFactors(4096, 20_000, 64, 9)
	s, err := recommend.NewScorer(f)
	if err != nil {
		b.Fatal(err)
	}
	queries := func(n int) []recommend.Query {
		qs := make([]recommend.Query, n)
		for i := range qs {
			qs[i] = recommend.Query{User: f.UserIDs[(i*7919)%len(f.UserIDs)], K: 10}
		}
		return qs
	}
	rate := func(b *testing.B, users int) {
		b.ReportMetric(float64(b.N*users)/b.Elapsed().Seconds(), "users/s")
	}
	for _, batch := range []int{64, 256, 1024} {
		qs := queries(batch)
		b.Run(fmt.Sprintf("batched/%d", batch), func(b *testing.B) {
			for b.Loop() {
				s.Recommend(qs)
			}
			rate(b, batch)
		})
	}
	qs := queries(256)
	b.Run("one", func(b *testing.B) {
		for b.Loop() {
			for _, q := range qs {
				s.RecommendOne(q)
			}
		}
		rate(b, len(qs))
	})
	b.Run("one/2-goroutines", func(b *testing.B) {
		for b.Loop() {
			var wg sync.WaitGroup
			for g := range 2 {
				wg.Go(func() {
					for _, q := range qs[g*len(qs)/2 : (g+1)*len(qs)/2] {
						s.RecommendOne(q)
					}
				})
			}
			wg.Wait()
		}
		rate(b, len(qs))
	})
}
