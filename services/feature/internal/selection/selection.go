// Package selection ranks features against a label: variance, mutual
// information, chi-squared, correlation redundancy and the entry points of
// an L1 regularisation path (lasso for a numeric label, L1 logistic
// regression for a BOOL or categorical one), with gonum.
package selection

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// Defaults of Params.
const (
	DefaultBins           = 10
	DefaultMaxCorrelation = 0.95
	DefaultPathLength     = 50
	// MaxL1Rows is the most rows the L1 path is fitted on (the first
	// ones); the other methods use every row.
	MaxL1Rows = 20000
	// MaxCategories is the most categories of a categorical feature that
	// get their own column on the L1 path; the rarer ones share one.
	MaxCategories = 20
)

// Input is the data to score on.
type Input struct {
	// Columns are the features, in the order of each row of X.
	Columns []*featurev1.FeatureColumn
	// X holds one row of feature values per training row.
	X [][]profile.Value
	// Y holds the labels.
	Y []profile.Value
	// LabelType is the label's type.
	LabelType commonv1.ValueType
}

// Params tune the methods.
type Params struct {
	// Methods to run; empty means all.
	Methods []featurev1.SelectionMethod
	// Bins for discretising numbers; 0 means DefaultBins.
	Bins int
	// MinVariance: features at or below it are suggested for dropping.
	MinVariance float64
	// MaxCorrelation: features above it are suggested for dropping; 0
	// means DefaultMaxCorrelation.
	MaxCorrelation float64
	// PathLength is the number of penalties on the L1 path; 0 means
	// DefaultPathLength.
	PathLength int
}

// feature is one column prepared for scoring.
type feature struct {
	name        string
	categorical bool
	num         []float64 // numeric values, NaN for null
	codes       []int     // categorical codes (0 = null), or bins of num
	ncodes      int
	nonNegative bool
}

type score struct {
	s          *featurev1.MethodScore
	applicable bool
}

// Select scores every feature and suggests drops.
func Select(in Input, p Params) ([]*featurev1.FeatureScore, []*featurev1.DropSuggestion, error) {
	if len(in.X) != len(in.Y) {
		return nil, nil, fmt.Errorf("selecting features: %d rows but %d labels", len(in.X), len(in.Y))
	}
	if p.Bins <= 0 {
		p.Bins = DefaultBins
	}
	if p.MaxCorrelation <= 0 {
		p.MaxCorrelation = DefaultMaxCorrelation
	}
	if p.PathLength <= 0 {
		p.PathLength = DefaultPathLength
	}
	methods := p.Methods
	if len(methods) == 0 {
		methods = []featurev1.SelectionMethod{
			featurev1.SelectionMethod_SELECTION_METHOD_VARIANCE,
			featurev1.SelectionMethod_SELECTION_METHOD_MUTUAL_INFORMATION,
			featurev1.SelectionMethod_SELECTION_METHOD_CHI_SQUARED,
			featurev1.SelectionMethod_SELECTION_METHOD_CORRELATION_REDUNDANCY,
			featurev1.SelectionMethod_SELECTION_METHOD_L1_PATH,
		}
	}
	run := map[featurev1.SelectionMethod]bool{}
	for _, m := range methods {
		run[m] = true
	}
	feats := prepare(in, p.Bins)
	classification := in.LabelType == commonv1.ValueType_VALUE_TYPE_BOOL || in.LabelType == commonv1.ValueType_VALUE_TYPE_STRING
	ycodes, ny := labelCodes(in.Y, classification, p.Bins)
	scores := map[featurev1.SelectionMethod][]score{}

	if run[featurev1.SelectionMethod_SELECTION_METHOD_VARIANCE] {
		sc := make([]score, len(feats))
		for i, f := range feats {
			sc[i] = score{s: &featurev1.MethodScore{Method: featurev1.SelectionMethod_SELECTION_METHOD_VARIANCE, Score: variance(f), Applicable: true}, applicable: true}
		}
		rank(sc, true)
		scores[featurev1.SelectionMethod_SELECTION_METHOD_VARIANCE] = sc
	}
	if run[featurev1.SelectionMethod_SELECTION_METHOD_MUTUAL_INFORMATION] {
		sc := make([]score, len(feats))
		for i, f := range feats {
			sc[i] = score{s: &featurev1.MethodScore{Method: featurev1.SelectionMethod_SELECTION_METHOD_MUTUAL_INFORMATION, Score: mutualInformation(f.codes, f.ncodes, ycodes, ny), Applicable: true}, applicable: true}
		}
		rank(sc, true)
		scores[featurev1.SelectionMethod_SELECTION_METHOD_MUTUAL_INFORMATION] = sc
	}
	if run[featurev1.SelectionMethod_SELECTION_METHOD_CHI_SQUARED] {
		sc := make([]score, len(feats))
		for i, f := range feats {
			ms := &featurev1.MethodScore{Method: featurev1.SelectionMethod_SELECTION_METHOD_CHI_SQUARED}
			if classification && f.nonNegative {
				ms.Score, ms.PValue = chiSquared(f.codes, f.ncodes, ycodes, ny)
				ms.Applicable = true
			}
			sc[i] = score{s: ms, applicable: ms.Applicable}
		}
		rank(sc, true)
		scores[featurev1.SelectionMethod_SELECTION_METHOD_CHI_SQUARED] = sc
	}
	if run[featurev1.SelectionMethod_SELECTION_METHOD_L1_PATH] {
		entry := l1Path(feats, in.Y, classification, p.PathLength)
		sc := make([]score, len(feats))
		for i := range feats {
			sc[i] = score{s: &featurev1.MethodScore{Method: featurev1.SelectionMethod_SELECTION_METHOD_L1_PATH, Score: entry[i], Applicable: true}, applicable: true}
		}
		rank(sc, true)
		scores[featurev1.SelectionMethod_SELECTION_METHOD_L1_PATH] = sc
	}

	// The overall rank: the mean of the ranks by MI, chi-squared and the
	// L1 path where they apply (or of whatever ran), ties by name.
	overall := make([]float64, len(feats))
	contributing := []featurev1.SelectionMethod{
		featurev1.SelectionMethod_SELECTION_METHOD_MUTUAL_INFORMATION,
		featurev1.SelectionMethod_SELECTION_METHOD_CHI_SQUARED,
		featurev1.SelectionMethod_SELECTION_METHOD_L1_PATH,
	}
	if !run[contributing[0]] && !run[contributing[1]] && !run[contributing[2]] {
		contributing = methods
	}
	for i := range feats {
		n, total := 0, 0.0
		for _, m := range contributing {
			if sc, ok := scores[m]; ok && sc[i].applicable {
				total += float64(sc[i].s.Rank)
				n++
			}
		}
		overall[i] = math.Inf(1)
		if n > 0 {
			overall[i] = total / float64(n)
		}
	}
	order := make([]int, len(feats))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ia, ib := order[a], order[b]
		if overall[ia] != overall[ib] {
			return overall[ia] < overall[ib]
		}
		return feats[ia].name < feats[ib].name
	})

	if run[featurev1.SelectionMethod_SELECTION_METHOD_CORRELATION_REDUNDANCY] {
		scores[featurev1.SelectionMethod_SELECTION_METHOD_CORRELATION_REDUNDANCY] = redundancy(feats, order)
	}

	out := make([]*featurev1.FeatureScore, len(feats))
	for pos, i := range order {
		fs := &featurev1.FeatureScore{Name: feats[i].name, Rank: int32(pos + 1)}
		for _, m := range methods {
			if sc, ok := scores[m]; ok {
				fs.Scores = append(fs.Scores, sc[i].s)
			}
		}
		out[pos] = fs
	}
	var drops []*featurev1.DropSuggestion
	for _, i := range order {
		f := feats[i]
		if sc, ok := scores[featurev1.SelectionMethod_SELECTION_METHOD_VARIANCE]; ok {
			if v := sc[i].s.Score; v <= p.MinVariance || (p.MinVariance == 0 && v < 1e-12) {
				drops = append(drops, &featurev1.DropSuggestion{Name: f.name, Reason: featurev1.DropReason_DROP_REASON_LOW_VARIANCE, Description: fmt.Sprintf("variance %.3g", v)})
				continue
			}
		}
		if sc, ok := scores[featurev1.SelectionMethod_SELECTION_METHOD_CORRELATION_REDUNDANCY]; ok && sc[i].applicable && sc[i].s.Score > p.MaxCorrelation {
			drops = append(drops, &featurev1.DropSuggestion{Name: f.name, Reason: featurev1.DropReason_DROP_REASON_REDUNDANT,
				Description: fmt.Sprintf("correlation %.2f with %s", sc[i].s.Score, sc[i].s.RelatedFeature)})
			continue
		}
		mi, okMI := scores[featurev1.SelectionMethod_SELECTION_METHOD_MUTUAL_INFORMATION]
		l1, okL1 := scores[featurev1.SelectionMethod_SELECTION_METHOD_L1_PATH]
		if okMI && okL1 && mi[i].s.Score < 1e-9 && l1[i].s.Score == 0 {
			drops = append(drops, &featurev1.DropSuggestion{Name: f.name, Reason: featurev1.DropReason_DROP_REASON_NO_SIGNAL, Description: "no mutual information with the label and never on the L1 path"})
		}
	}
	return out, drops, nil
}

// rank sets the ranks of applicable scores: 1 for the highest score when
// higherBetter (ties share the order of appearance).
func rank(sc []score, higherBetter bool) {
	idx := make([]int, 0, len(sc))
	for i := range sc {
		if sc[i].applicable {
			idx = append(idx, i)
		} else {
			sc[i].s.Score, sc[i].s.Rank = 0, 0
		}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if higherBetter {
			return sc[idx[a]].s.Score > sc[idx[b]].s.Score
		}
		return sc[idx[a]].s.Score < sc[idx[b]].s.Score
	})
	for r, i := range idx {
		sc[i].s.Rank = int32(r + 1)
	}
}

func prepare(in Input, bins int) []*feature {
	n := len(in.X)
	feats := make([]*feature, len(in.Columns))
	for j, c := range in.Columns {
		f := &feature{name: c.GetName(), nonNegative: true}
		feats[j] = f
		if c.GetType() == commonv1.ValueType_VALUE_TYPE_STRING {
			f.categorical = true
			f.codes = make([]int, n)
			dict := map[string]int{}
			var cats []string
			for i := range in.X {
				v := in.X[i][j]
				if v.IsNull() {
					continue
				}
				s := v.Convert(commonv1.ValueType_VALUE_TYPE_STRING).Str
				if _, ok := dict[s]; !ok {
					dict[s] = 0
					cats = append(cats, s)
				}
			}
			slices.Sort(cats)
			for k, s := range cats {
				dict[s] = k + 1
			}
			for i := range in.X {
				v := in.X[i][j]
				if !v.IsNull() {
					f.codes[i] = dict[v.Convert(commonv1.ValueType_VALUE_TYPE_STRING).Str]
				}
			}
			f.ncodes = len(cats) + 1
			continue
		}
		f.num = make([]float64, n)
		for i := range in.X {
			f.num[i] = toFloat(in.X[i][j])
			if f.num[i] < 0 {
				f.nonNegative = false
			}
		}
		f.codes, f.ncodes = discretise(f.num, bins)
	}
	return feats
}

func toFloat(v profile.Value) float64 {
	switch v.Kind {
	case profile.Number:
		return v.Num
	case profile.Int, profile.Bool:
		return float64(v.Int)
	case profile.Time:
		return float64(v.Int) / 1e9
	}
	return math.NaN()
}

// discretise bins numbers into equal-frequency bins (1..), NaN into bin 0.
func discretise(x []float64, bins int) ([]int, int) {
	var vals []float64
	for _, v := range x {
		if !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	codes := make([]int, len(x))
	if len(vals) == 0 {
		return codes, 1
	}
	slices.Sort(vals)
	var edges []float64
	for b := 1; b < bins; b++ {
		e := vals[b*len(vals)/bins]
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	for i, v := range x {
		if math.IsNaN(v) {
			continue
		}
		codes[i] = sort.SearchFloat64s(edges, math.Nextafter(v, math.Inf(1))) + 1
	}
	return codes, len(edges) + 2
}

func labelCodes(y []profile.Value, classification bool, bins int) ([]int, int) {
	if !classification {
		x := make([]float64, len(y))
		for i, v := range y {
			x[i] = toFloat(v)
		}
		return discretise(x, bins)
	}
	dict := map[string]int{}
	codes := make([]int, len(y))
	for i, v := range y {
		k := v.Key()
		c, ok := dict[k]
		if !ok {
			c = len(dict)
			dict[k] = c
		}
		codes[i] = c
	}
	return codes, max(1, len(dict))
}

func variance(f *feature) float64 {
	n := len(f.codes)
	if n == 0 {
		return 0
	}
	if f.categorical {
		counts := make([]float64, f.ncodes)
		for _, c := range f.codes {
			counts[c]++
		}
		g := 1.0
		for _, c := range counts {
			p := c / float64(n)
			g -= p * p
		}
		return g
	}
	var vals []float64
	for _, v := range f.num {
		if !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	if len(vals) < 2 {
		return 0
	}
	lo, hi := floats.Min(vals), floats.Max(vals)
	if hi == lo {
		return 0
	}
	for i := range vals {
		vals[i] = (vals[i] - lo) / (hi - lo)
	}
	_, v := stat.PopMeanVariance(vals, nil)
	return v
}

func contingency(x []int, nx int, y []int, ny int) [][]float64 {
	t := make([][]float64, nx)
	for i := range t {
		t[i] = make([]float64, ny)
	}
	for i := range x {
		t[x[i]][y[i]]++
	}
	return t
}

func mutualInformation(x []int, nx int, y []int, ny int) float64 {
	n := float64(len(x))
	if n == 0 {
		return 0
	}
	t := contingency(x, nx, y, ny)
	px, py := make([]float64, nx), make([]float64, ny)
	for i := range t {
		for j, c := range t[i] {
			px[i] += c
			py[j] += c
		}
	}
	mi := 0.0
	for i := range t {
		for j, c := range t[i] {
			if c > 0 {
				mi += c / n * math.Log(c*n/(px[i]*py[j]))
			}
		}
	}
	return math.Max(0, mi)
}

func chiSquared(x []int, nx int, y []int, ny int) (stat, p float64) {
	t := contingency(x, nx, y, ny)
	var rows, cols []float64
	n := 0.0
	rowSum := make([]float64, nx)
	colSum := make([]float64, ny)
	for i := range t {
		for j, c := range t[i] {
			rowSum[i] += c
			colSum[j] += c
			n += c
		}
	}
	for _, r := range rowSum {
		if r > 0 {
			rows = append(rows, r)
		}
	}
	for _, c := range colSum {
		if c > 0 {
			cols = append(cols, c)
		}
	}
	if len(rows) < 2 || len(cols) < 2 {
		return 0, 1
	}
	for i := range t {
		if rowSum[i] == 0 {
			continue
		}
		for j, c := range t[i] {
			if colSum[j] == 0 {
				continue
			}
			e := rowSum[i] * colSum[j] / n
			stat += (c - e) * (c - e) / e
		}
	}
	dof := float64((len(rows) - 1) * (len(cols) - 1))
	p = distuv.ChiSquared{K: dof}.Survival(stat)
	return stat, p
}

// redundancy scores each numeric feature by its largest absolute Pearson
// correlation with a better-ranked numeric feature (nulls take the mean).
func redundancy(feats []*feature, order []int) []score {
	sc := make([]score, len(feats))
	imputed := make([][]float64, len(feats))
	for i, f := range feats {
		if f.categorical {
			sc[i] = score{s: &featurev1.MethodScore{Method: featurev1.SelectionMethod_SELECTION_METHOD_CORRELATION_REDUNDANCY}}
			continue
		}
		imputed[i] = meanImpute(f.num)
		sc[i] = score{s: &featurev1.MethodScore{Method: featurev1.SelectionMethod_SELECTION_METHOD_CORRELATION_REDUNDANCY, Applicable: true}, applicable: true}
	}
	var better []int
	for _, i := range order {
		if feats[i].categorical {
			continue
		}
		best, related := 0.0, ""
		for _, j := range better {
			c := math.Abs(pearson(imputed[i], imputed[j]))
			if c > best {
				best, related = c, feats[j].name
			}
		}
		sc[i].s.Score, sc[i].s.RelatedFeature = best, related
		better = append(better, i)
	}
	rank(sc, false)
	return sc
}

func meanImpute(x []float64) []float64 {
	sum, n := 0.0, 0
	for _, v := range x {
		if !math.IsNaN(v) {
			sum += v
			n++
		}
	}
	mean := 0.0
	if n > 0 {
		mean = sum / float64(n)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		if math.IsNaN(v) {
			v = mean
		}
		out[i] = v
	}
	return out
}

func pearson(a, b []float64) float64 {
	if len(a) < 2 {
		return 0
	}
	_, va := stat.PopMeanVariance(a, nil)
	_, vb := stat.PopMeanVariance(b, nil)
	if va == 0 || vb == 0 {
		return 0
	}
	return stat.Correlation(a, b, nil)
}
