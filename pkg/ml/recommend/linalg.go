package recommend

import (
	"math"
	"math/rand/v2"
	"sync"
)

// cholSolve solves a·x = b for a symmetric positive definite n × n matrix a whose upper
// triangle (row-major) is set, overwriting a with its Cholesky factor and b with x. It
// reports false when a is not positive definite. The systems are small (rank + 1), where a
// plain loop beats a general routine's setup.
func cholSolve(a []float64, n int, b []float64) bool {
	// Factor a = Uᵀ·U with U upper triangular, in place.
	for j := range n {
		row := a[j*n : j*n+n]
		d := row[j]
		for k := range j {
			u := a[k*n+j]
			d -= u * u
		}
		if !(d > 0) {
			return false
		}
		d = math.Sqrt(d)
		row[j] = d
		inv := 1 / d
		for c := j + 1; c < n; c++ {
			s := row[c]
			for k := range j {
				s -= a[k*n+j] * a[k*n+c]
			}
			row[c] = s * inv
		}
	}
	// Uᵀ·y = b, then U·x = y.
	for j := range n {
		s := b[j]
		for k := range j {
			s -= a[k*n+j] * b[k]
		}
		b[j] = s / a[j*n+j]
	}
	for j := n - 1; j >= 0; j-- {
		s := b[j]
		row := a[j*n : j*n+n]
		for c := j + 1; c < n; c++ {
			s -= row[c] * b[c]
		}
		b[j] = s / row[j]
	}
	return true
}

// addOuter adds v·vᵀ to the upper triangle of the n × n row-major matrix a, n = len(v).
func addOuter(a, v []float64) {
	n := len(v)
	for j, vj := range v {
		row := a[j*n+j : j*n+n]
		tail := v[j:]
		tail = tail[:len(row)]
		for c, vc := range tail {
			row[c] += vj * vc
		}
	}
}

// dot returns the dot product of a and b, len(a) ≤ len(b).
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s float64
	for k, v := range a {
		s += v * b[k]
	}
	return s
}

// axpy adds alpha·x to y, len(x) ≤ len(y).
func axpy(alpha float64, x, y []float64) {
	y = y[:len(x)]
	for k, v := range x {
		y[k] += alpha * v
	}
}

// randomRows fills rows of width stride with Gaussian values of standard deviation std,
// leaving the first skip columns of each row at 0.
func randomRows(rng *rand.Rand, x []float64, stride, skip int, std float64) {
	for k := range x {
		if k%stride >= skip {
			x[k] = std * rng.NormFloat64()
		}
	}
}

// errorOnce keeps the first error set from any goroutine.
type errorOnce struct {
	mu  sync.Mutex
	err error
}

func (e *errorOnce) set(err error) {
	e.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.mu.Unlock()
}
