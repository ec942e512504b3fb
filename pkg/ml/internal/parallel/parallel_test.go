package parallel_test

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

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

func TestTeam(t *testing.T) {
	team := parallel.NewTeam(3)
	defer team.Close()
	for round := range 200 {
		n, p := 1000+round, 1+round%7
		seen := make([]int32, n)
		var parts atomic.Int32
		team.Split(n, p, func(part, lo, hi int) {
			parts.Add(1)
			if lo != part*n/p || hi != (part+1)*n/p {
				t.Errorf("round %d: part %d is [%d, %d)", round, part, lo, hi)
			}
			for i := lo; i < hi; i++ {
				atomic.AddInt32(&seen[i], 1)
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("round %d: item %d visited %d times", round, i, c)
			}
		}
		if int(parts.Load()) != p {
			t.Fatalf("round %d: %d parts ran, want %d", round, parts.Load(), p)
		}
		if round%50 == 0 {
			time.Sleep(20 * time.Millisecond) // long enough for the workers to fall asleep
		}
	}
}

func TestTeamUsesItsWorkers(t *testing.T) {
	team := parallel.NewTeam(2)
	defer team.Close()
	var inside, overlapped atomic.Int32
	for range 100 {
		team.Split(2, 2, func(_, _, _ int) {
			if inside.Add(1) == 2 {
				overlapped.Add(1)
			}
			deadline := time.Now().Add(2 * time.Millisecond)
			for time.Now().Before(deadline) && inside.Load() < 2 {
				runtime.Gosched()
			}
			inside.Add(-1)
		})
	}
	if overlapped.Load() == 0 {
		t.Error("no two parts of a loop ever ran at once")
	}
}
