package models

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestVersionReferences: a retired version closes once its last lease is released, never
// before; a closed version can be neither acquired nor revived; a revived one stays open.
func TestVersionReferences(t *testing.T) {
	tests := []struct {
		name       string
		steps      func(v *version) // after which the version's state is checked
		wantClosed bool
		acquirable bool
	}{
		{"fresh", func(v *version) {}, false, true},
		{"retired unheld", func(v *version) { v.retire() }, true, false},
		{"retired while held", func(v *version) { v.acquire(); v.retire() }, false, true},
		{"released after retirement", func(v *version) { v.acquire(); v.retire(); v.release() }, true, false},
		{"two holders", func(v *version) { v.acquire(); v.acquire(); v.retire(); v.release() }, false, true},
		{"revived before release", func(v *version) { v.acquire(); v.retire(); v.revive(); v.release() }, false, true},
		{"revive after close fails", func(v *version) {
			v.retire()
			if v.revive() {
				panic("revived a closed version")
			}
		}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gone atomic.Int32
			v := &version{gone: func() { gone.Add(1) }}
			tt.steps(v)
			if closed := gone.Load() == 1; closed != tt.wantClosed {
				t.Errorf("closed = %v, want %v", closed, tt.wantClosed)
			}
			if got := v.acquire(); got != tt.acquirable {
				t.Errorf("acquire = %v, want %v", got, tt.acquirable)
			}
		})
	}
}

// TestVersionClosesOnceUnderRace: leases taken and released concurrently with the retirement
// close the version exactly once, after every successful acquire was released.
func TestVersionClosesOnceUnderRace(t *testing.T) {
	for range 200 {
		var gone atomic.Int32
		var held atomic.Int32
		v := &version{}
		v.gone = func() {
			if held.Load() != 0 {
				t.Error("closed while held")
			}
			gone.Add(1)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					if v.acquire() {
						held.Add(1)
						held.Add(-1)
						v.release()
					}
				}
			}()
		}
		v.retire()
		wg.Wait()
		if gone.Load() != 1 {
			t.Fatalf("closed %d times", gone.Load())
		}
	}
}

// TestSplitIsStableAndProportional: users keep their version, and a 90/10 split sends about
// a tenth of them to the canary.
func TestSplitIsStableAndProportional(t *testing.T) {
	a, b := &version{num: 1}, &version{num: 2}
	r := &route{live: []split{{v: a, upTo: 90}, {v: b, upTo: 100}}, total: 100, top: a}
	pick := func(id string) int64 {
		h := Hash(id) % r.total
		for _, sp := range r.live {
			if h < sp.upTo {
				return sp.v.num
			}
		}
		return 0
	}
	canary := 0
	const n = 20000
	for i := range n {
		id := "customer-" + strconv.Itoa(i)
		v := pick(id)
		if v != pick(id) {
			t.Fatalf("%s moved", id)
		}
		if v == 2 {
			canary++
		}
	}
	if share := float64(canary) / n; share < 0.09 || share > 0.11 {
		t.Errorf("canary share %.3f, want about 0.10", share)
	}
}
