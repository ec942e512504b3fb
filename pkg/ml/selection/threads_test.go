package selection

import (
	"runtime"
	"testing"
)

func TestThreadsPerFitShareTheCores(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	for _, c := range []struct{ parallelism, fits, want int }{
		{0, 100, 1},         // GOMAXPROCS fits at once: one core each
		{1, 100, procs},     // one fit at a time: all of them
		{0, 1, procs},       // a single fit: all of them
		{2 * procs, 100, 1}, // more fits than cores: still at least one
		{max(1, procs/2), 100, procs / max(1, procs/2)},
	} {
		if got := threadsPerFit(c.parallelism, c.fits); got != c.want {
			t.Errorf("threadsPerFit(%d, %d) = %d with GOMAXPROCS %d, want %d", c.parallelism, c.fits, got, procs, c.want)
		}
	}
}
