package selection

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/floats"

	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// pathRatio is the smallest penalty of the path as a fraction of the
// largest.
const pathRatio = 1e-3

// design builds the standardised design matrix, column by column, and the
// feature each column belongs to.
func design(feats []*feature, n int) (cols [][]float64, owner []int) {
	for fi, f := range feats {
		if !f.categorical {
			x := meanImpute(f.num[:n])
			if standardise(x) {
				cols = append(cols, x)
				owner = append(owner, fi)
			}
			continue
		}
		counts := make([]int, f.ncodes)
		for _, c := range f.codes[:n] {
			counts[c]++
		}
		idx := make([]int, f.ncodes)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return counts[idx[a]] > counts[idx[b]] })
		for k, code := range idx {
			if k >= MaxCategories || counts[code] == 0 {
				break
			}
			x := make([]float64, n)
			for i, c := range f.codes[:n] {
				if c == code {
					x[i] = 1
				}
			}
			if standardise(x) {
				cols = append(cols, x)
				owner = append(owner, fi)
			}
		}
	}
	return cols, owner
}

// standardise scales x to mean 0 and variance 1 in place; false when x is
// constant.
func standardise(x []float64) bool {
	n := float64(len(x))
	mean := floats.Sum(x) / n
	ss := 0.0
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	sd := math.Sqrt(ss / n)
	if sd < 1e-12 {
		return false
	}
	for i := range x {
		x[i] = (x[i] - mean) / sd
	}
	return true
}

func soft(z, g float64) float64 {
	switch {
	case z > g:
		return z - g
	case z < -g:
		return z + g
	}
	return 0
}

// l1Path returns, per feature, the largest penalty on the path at which one
// of its coefficients is non-zero, as a fraction of the largest penalty at
// which any coefficient is (0 when it never enters).
func l1Path(feats []*feature, y []profile.Value, classification bool, length int) []float64 {
	entry := make([]float64, len(feats))
	n := min(len(y), MaxL1Rows)
	if n < 2 {
		return entry
	}
	cols, owner := design(feats, n)
	if len(cols) == 0 {
		return entry
	}
	if !classification {
		t := make([]float64, n)
		for i := range t {
			t[i] = toFloat(y[i])
		}
		t = meanImpute(t)
		mean := floats.Sum(t) / float64(n)
		for i := range t {
			t[i] -= mean
		}
		merge(entry, lassoPath(cols, owner, t, length), owner)
		return entry
	}
	// One path per class against the rest (at most ten classes), keeping
	// each feature's earliest entry.
	counts := map[string]int{}
	for _, v := range y[:n] {
		counts[v.Key()]++
	}
	classes := make([]string, 0, len(counts))
	for k := range counts {
		classes = append(classes, k)
	}
	sort.Slice(classes, func(a, b int) bool {
		if counts[classes[a]] != counts[classes[b]] {
			return counts[classes[a]] < counts[classes[b]]
		}
		return classes[a] < classes[b]
	})
	if len(classes) < 2 {
		return entry
	}
	if len(classes) == 2 {
		classes = classes[:1]
	}
	if len(classes) > 10 {
		classes = classes[:10]
	}
	for _, cls := range classes {
		t := make([]float64, n)
		for i := range t {
			if y[i].Key() == cls {
				t[i] = 1
			}
		}
		merge(entry, logisticPath(cols, t, length), owner)
	}
	return entry
}

func merge(entry, colEntry []float64, owner []int) {
	for j, e := range colEntry {
		if e > entry[owner[j]] {
			entry[owner[j]] = e
		}
	}
}

func grid(lmax float64, length int) []float64 {
	g := make([]float64, length)
	for k := range g {
		g[k] = lmax * math.Pow(pathRatio, float64(k)/float64(max(1, length-1)))
	}
	return g
}

// normalise turns each column's entry penalty into a fraction of the first
// entry's.
func normalise(colEntry []float64) []float64 {
	first := floats.Max(colEntry)
	if first <= 0 {
		return colEntry
	}
	for j := range colEntry {
		colEntry[j] /= first
	}
	return colEntry
}

// lassoPath runs coordinate descent for (1/2n)|t - Xb|² + λ|b|₁ down the
// path with warm starts, and returns each column's entry penalty.
func lassoPath(cols [][]float64, owner []int, t []float64, length int) []float64 {
	n := float64(len(t))
	lmax := 0.0
	for _, x := range cols {
		lmax = math.Max(lmax, math.Abs(floats.Dot(x, t))/n)
	}
	colEntry := make([]float64, len(cols))
	if lmax == 0 {
		return colEntry
	}
	b := make([]float64, len(cols))
	r := append([]float64(nil), t...)
	for _, lam := range grid(lmax, length)[1:] {
		for sweep := 0; sweep < 200; sweep++ {
			change := 0.0
			for j, x := range cols {
				rho := floats.Dot(x, r)/n + b[j]
				nb := soft(rho, lam)
				if d := nb - b[j]; d != 0 {
					floats.AddScaled(r, -d, x)
					b[j] = nb
					change = math.Max(change, math.Abs(d))
				}
			}
			if change < 1e-7 {
				break
			}
		}
		for j := range b {
			if b[j] != 0 && colEntry[j] == 0 {
				colEntry[j] = lam
			}
		}
	}
	return normalise(colEntry)
}

// logisticPath runs L1 logistic regression (an unpenalised intercept) down
// the path, by proximal Newton steps solved with coordinate descent, and
// returns each column's entry penalty.
func logisticPath(cols [][]float64, t []float64, length int) []float64 {
	n := len(t)
	nf := float64(n)
	mean := floats.Sum(t) / nf
	colEntry := make([]float64, len(cols))
	if mean == 0 || mean == 1 {
		return colEntry
	}
	resid := make([]float64, n)
	for i := range t {
		resid[i] = t[i] - mean
	}
	lmax := 0.0
	for _, x := range cols {
		lmax = math.Max(lmax, math.Abs(floats.Dot(x, resid))/nf)
	}
	if lmax == 0 {
		return colEntry
	}
	b0 := math.Log(mean / (1 - mean))
	b := make([]float64, len(cols))
	eta := make([]float64, n)
	w := make([]float64, n)
	r := make([]float64, n)
	wx := make([]float64, n)
	for i := range eta {
		eta[i] = b0
	}
	for _, lam := range grid(lmax, length)[1:] {
		for outer := 0; outer < 25; outer++ {
			for i := range eta {
				p := 1 / (1 + math.Exp(-eta[i]))
				w[i] = math.Max(p*(1-p), 1e-5)
				r[i] = (t[i] - p) / w[i] // z - eta
			}
			sumW := floats.Sum(w)
			maxChange := 0.0
			for inner := 0; inner < 100; inner++ {
				change := 0.0
				for j, x := range cols {
					floats.MulTo(wx, w, x)
					den := floats.Dot(wx, x) / nf
					num := floats.Dot(wx, r)/nf + b[j]*den
					nb := soft(num, lam) / den
					if d := nb - b[j]; d != 0 {
						floats.AddScaled(r, -d, x)
						floats.AddScaled(eta, d, x)
						b[j] = nb
						change = math.Max(change, math.Abs(d))
					}
				}
				d0 := floats.Dot(w, r) / sumW
				if d0 != 0 {
					for i := range r {
						r[i] -= d0
						eta[i] += d0
					}
					b0 += d0
					change = math.Max(change, math.Abs(d0))
				}
				maxChange = math.Max(maxChange, change)
				if change < 1e-6 {
					break
				}
			}
			if maxChange < 1e-5 {
				break
			}
		}
		for j := range b {
			if b[j] != 0 && colEntry[j] == 0 {
				colEntry[j] = lam
			}
		}
	}
	return normalise(colEntry)
}
