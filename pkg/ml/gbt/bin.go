package gbt

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// binSample is how many rows the bin edges of a numeric column are fitted on at most, as
// scikit-learn does.
const binSample = 200_000

// binner maps a column's values to bins: a numeric value v to the number of thresholds
// below it (so v ≤ thresholds[b] exactly when its bin is at most b), a category code to
// itself, and a missing value to missingBin.
type binner struct {
	categorical bool
	thresholds  []float64
	codes       int // categorical: one more than the largest code in the column
}

// bins is the number of non-missing bins of the column.
func (b *binner) bins() int {
	if b.categorical {
		return b.codes
	}
	return len(b.thresholds) + 1
}

func (b *binner) bin(v float64) uint8 {
	if math.IsNaN(v) {
		return missingBin
	}
	if b.categorical {
		if v < 0 || v >= MaxBins || v != math.Trunc(v) {
			return missingBin
		}
		return uint8(v)
	}
	return uint8(sort.SearchFloat64s(b.thresholds, v))
}

// fitBinner fits the thresholds of a numeric column on the given rows: midpoints between
// distinct values when there are at most maxBins of them, else quantiles of a sample.
func fitBinner(col []float64, rows []int, categorical bool, maxBins int, rng *rand.Rand) *binner {
	if categorical {
		codes := 1
		for _, v := range col {
			if !math.IsNaN(v) {
				codes = max(codes, int(v)+1)
			}
		}
		return &binner{categorical: true, codes: codes}
	}
	if len(rows) > binSample {
		rows = slices.Clone(rows)
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		rows = rows[:binSample]
	}
	vals := make([]float64, 0, len(rows))
	for _, r := range rows {
		if v := col[r]; !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	slices.Sort(vals)
	distinct := slices.Compact(slices.Clone(vals))
	if len(distinct) <= maxBins {
		t := make([]float64, 0, max(len(distinct)-1, 0))
		for i := 1; i < len(distinct); i++ {
			t = append(t, distinct[i-1]+(distinct[i]-distinct[i-1])/2)
		}
		return &binner{thresholds: t}
	}
	t := make([]float64, 0, maxBins-1)
	for k := 1; k < maxBins; k++ {
		q := midpointQuantile(vals, float64(k)/float64(maxBins))
		if len(t) == 0 || q > t[len(t)-1] {
			t = append(t, q)
		}
	}
	return &binner{thresholds: t}
}

// midpointQuantile is NumPy's percentile with method "midpoint" on sorted values.
func midpointQuantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo, hi := int(math.Floor(pos)), int(math.Ceil(pos))
	return sorted[lo] + (sorted[hi]-sorted[lo])/2
}

// binned is the training matrix in bins, twice: column by column, for routing rows
// through splits, and row by row, for histograms, which read all of a row's bins at once.
// In the rows, a missing value is in the bin after the column's value bins, as in its
// histogram.
type binned struct {
	layout
	cols    [][]uint8
	byRow   []uint8 // row i's bins are byRow[i*width : (i+1)*width]
	width   int
	binners []*binner
	rows    int
}

func binColumns(cols [][]float64, binners []*binner, rows int) *binned {
	out := &binned{
		layout:  newLayout(binners),
		cols:    make([][]uint8, len(cols)),
		byRow:   make([]uint8, rows*len(cols)),
		width:   len(cols),
		binners: binners,
		rows:    rows,
	}
	for j, col := range cols {
		b := make([]uint8, rows)
		missing := uint8(binners[j].bins())
		for i, v := range col[:rows] {
			b[i] = binners[j].bin(v)
			out.byRow[i*out.width+j] = b[i]
			if b[i] == missingBin {
				out.byRow[i*out.width+j] = missing
			}
		}
		out.cols[j] = b
	}
	return out
}

func (d *binned) row(i int32) []uint8 {
	return d.byRow[int(i)*d.width : int(i+1)*d.width : int(i+1)*d.width]
}
