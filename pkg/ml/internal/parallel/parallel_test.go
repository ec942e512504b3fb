package parallel_test

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFor(t *testing.T) {
	for _, tc := range []struct{ n, minChunk int }{{0, 1}, {1, 1}, {10, 3}, {1000, 1}, {1000, 600}} {
		seen := make([]int32, tc.n)
		var parts atomic.Int32
		parallel.For(tc.n, tc.minChunk, func(_, lo, hi int) {
			parts.Add(1)
			for i := lo; i < hi; i++ {
				atomic.AddInt32(&seen[i], 1)
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: item %d visited %d times", tc.n, i, c)
			}
		}
		if want := parallel.Parts(tc.n, tc.minChunk); int(parts.Load()) != want || want > runtime.GOMAXPROCS(0) {
			t.Errorf("n=%d minChunk=%d: %d chunks, Parts says %d", tc.n, tc.minChunk, parts.Load(), want)
		}
	}
}

func TestDo(t *testing.T) {
	var running, peak, done atomic.Int32
	parallel.Do(50, 3, func(int) {
		r := running.Add(1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		runtime.Gosched()
		running.Add(-1)
		done.Add(1)
	})
	if done.Load() != 50 || peak.Load() > 3 {
		t.Errorf("done %d tasks with up to %d at once, want 50 with at most 3", done.Load(), peak.Load())
	}
}
