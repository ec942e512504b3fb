// Package preprocess turns a column-typed [ml.Table] into a dense design matrix.
//
// A [Spec] says what to do with each column; [Fit] learns the statistics it needs (medians,
// most frequent values, means and scales, category lists) from training rows only and returns a
// [Pipeline]: a plain struct of exported fields that serialises as it is (JSON, or protobuf
// later) and that serving applies unchanged with [Pipeline.Transform].
//
// Numeric columns are, in order: imputed (median by default, computed on the raw values),
// optionally log-transformed (log1p(max(v, 0))), followed by a missing indicator when the
// training rows had missing values, and standardised to zero mean and unit variance (population
// variance, as scikit-learn's StandardScaler). Categorical columns are imputed with the most
// frequent value (with a missing indicator likewise) and one-hot encoded with an extra bucket
// column for categories not seen in training (and for rare ones), or, when they have many
// distinct values, hashed into a fixed number of columns by a seeded 64-bit FNV-1a hash.
//
// These are the semantics of bullseye.model.v1.FittedColumn, so that a Pipeline converts to
// and from a model artifact without loss (package artifact).
package preprocess

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// Impute is how missing values are filled.
type Impute int

const (
	// ImputeAuto is the median for numeric columns and the most frequent value for
	// categorical ones.
	ImputeAuto Impute = iota
	// ImputeMedian fills a numeric column with its training median.
	ImputeMedian
	// ImputeMean fills a numeric column with its training mean.
	ImputeMean
	// ImputeMostFrequent fills with the most frequent training value (the smallest one on ties).
	ImputeMostFrequent
	// ImputeMissingCategory keeps a missing categorical value as a category of its own.
	ImputeMissingCategory
	// ImputeConstant fills with Options.FillValue (numeric) or Options.FillCategory
	// (categorical).
	ImputeConstant
	// ImputeNone keeps a missing value missing: NaN in the design matrix, for models that
	// route missing values themselves (boosted trees).
	ImputeNone
)

// Indicator says when a missing-indicator column is added.
type Indicator int

const (
	// IndicatorAuto adds an indicator when the training rows have a missing value.
	IndicatorAuto Indicator = iota
	// IndicatorNever adds no indicator.
	IndicatorNever
	// IndicatorAlways adds an indicator even when the training rows have no missing value.
	IndicatorAlways
)

// Encoding is how a categorical column becomes numbers.
type Encoding int

const (
	// EncodingAuto is one-hot, or hashing when the column has more than MaxOneHot
	// distinct training values.
	EncodingAuto Encoding = iota
	// EncodingOneHot is one column per training category.
	EncodingOneHot
	// EncodingHash is the hashing trick: HashBuckets columns, a category sets the column
	// its seeded 64-bit FNV-1a hash selects (see [HashBucket]).
	EncodingHash
	// EncodingOrdinal is one column holding a category code: 0 for the most frequent
	// training category, 1 for the next (ties by value), up to MaxOrdinal codes; other
	// categories, unseen ones and missing values are NaN. For models that split
	// categories natively (boosted trees).
	EncodingOrdinal
)

// MaxOrdinal is the largest number of categories an ordinal column codes.
const MaxOrdinal = 254

// Unseen is what one-hot encoding does with a category not seen in training.
type Unseen int

const (
	// UnseenBucket adds one more column, set for unseen categories and for categories seen
	// fewer than MinFrequency times in training.
	UnseenBucket Unseen = iota
	// UnseenIgnore encodes an unseen category as all zeros, as scikit-learn's
	// OneHotEncoder(handle_unknown="ignore").
	UnseenIgnore
)

// Options configure one column. The zero value is the default treatment.
type Options struct {
	// Exclude leaves the column out of the design matrix.
	Exclude bool `json:"exclude,omitempty"`
	// Impute is how missing values are filled.
	Impute Impute `json:"impute,omitempty"`
	// Indicator says when a missing-indicator column is added.
	Indicator Indicator `json:"indicator,omitempty"`
	// Log1p applies log1p(max(v, 0)) to a numeric column after imputation, before
	// standardisation.
	Log1p bool `json:"log1p,omitempty"`
	// NoStandardize leaves a numeric column unscaled.
	NoStandardize bool `json:"no_standardize,omitempty"`
	// Encoding is how a categorical column is encoded.
	Encoding Encoding `json:"encoding,omitempty"`
	// Unseen is what one-hot encoding does with categories not seen in training.
	Unseen Unseen `json:"unseen,omitempty"`
	// MinFrequency sends categories seen fewer times in training to the unseen bucket
	// (with UnseenBucket). 0 keeps every category.
	MinFrequency int `json:"min_frequency,omitempty"`
	// MaxCategories keeps at most this many categories of a one-hot column, the most
	// frequent first (ties by value); the others go to the unseen bucket (with UnseenBucket)
	// or encode as all zeros. 0 means no limit.
	MaxCategories int `json:"max_categories,omitempty"`
	// MaxOneHot is the largest number of distinct training values that EncodingAuto one-hot
	// encodes; 0 means 64.
	MaxOneHot int `json:"max_one_hot,omitempty"`
	// HashBuckets is the number of columns of a hashed column; 0 means 32.
	HashBuckets int `json:"hash_buckets,omitempty"`
	// HashSeed is mixed into the hash of a hashed column.
	HashSeed uint64 `json:"hash_seed,omitempty"`
	// FillValue is the fill of a numeric column with ImputeConstant.
	FillValue float64 `json:"fill_value,omitempty"`
	// FillCategory is the fill of a categorical column with ImputeConstant.
	FillCategory string `json:"fill_category,omitempty"`
}

// Spec configures preprocessing. Columns not named in Columns get Defaults.
type Spec struct {
	Defaults Options            `json:"defaults"`
	Columns  map[string]Options `json:"columns,omitempty"`
}

// Native returns the spec for models that split categories natively and route missing
// values themselves (boosted trees): each column keeps its exclusion and category limits,
// numbers stay raw with missing values missing, and categories become ordinal codes.
func (s Spec) Native() Spec {
	native := func(o Options) Options {
		return Options{
			Exclude: o.Exclude, Impute: ImputeNone, Indicator: IndicatorNever, NoStandardize: true,
			Encoding: EncodingOrdinal, MinFrequency: o.MinFrequency, MaxCategories: o.MaxCategories,
		}
	}
	out := Spec{Defaults: native(s.Defaults)}
	if len(s.Columns) > 0 {
		out.Columns = make(map[string]Options, len(s.Columns))
		for name, o := range s.Columns {
			out.Columns[name] = native(o)
		}
	}
	return out
}

func (s Spec) options(name string) Options {
	if o, ok := s.Columns[name]; ok {
		return o
	}
	return s.Defaults
}

// Input is the fitted treatment of one input column. Its output columns are
// [Offset, Offset+Width) of the design matrix.
type Input struct {
	Name   string  `json:"name"`
	Kind   ml.Kind `json:"kind"`
	Offset int     `json:"offset"`
	Width  int     `json:"width"`
	// Indicator is true when the last output column is a missing indicator.
	Indicator bool `json:"indicator,omitempty"`
	// Imputes is true when the column is fitted for missing values: its training rows had
	// some, or its imputation was chosen (Options.Impute other than ImputeAuto). Serving
	// imputes a missing value only for such columns.
	Imputes bool `json:"imputes,omitempty"`

	// Fill replaces missing numeric values (a raw value: Log1p applies to it).
	Fill float64 `json:"fill,omitempty"`
	// Log1p applies log1p(max(v, 0)) to numeric values after imputation.
	Log1p bool `json:"log1p,omitempty"`
	// Mean and Scale standardise numeric values: (v - Mean) / Scale.
	Mean  float64 `json:"mean,omitempty"`
	Scale float64 `json:"scale,omitempty"`

	// FillCategory replaces missing categorical values; "" keeps them as a category.
	FillCategory string `json:"fill_category,omitempty"`
	// Categories are the one-hot columns, in output order.
	Categories []string `json:"categories,omitempty"`
	// Bucket is true when the column after Categories takes unseen and rare categories.
	Bucket bool `json:"bucket,omitempty"`
	// HashBuckets is non-zero for a hashed column: the number of its columns.
	HashBuckets int `json:"hash_buckets,omitempty"`
	// HashSeed is mixed into the hash of a hashed column (see [HashBucket]).
	HashSeed uint64 `json:"hash_seed,omitempty"`
	// Ordinal is true for an ordinal column: its one output is the index of the value in
	// Categories, or NaN.
	Ordinal bool `json:"ordinal,omitempty"`
	// KeepMissing is true when missing values stay NaN instead of being imputed.
	KeepMissing bool `json:"keep_missing,omitempty"`
}

// Pipeline is fitted preprocessing. It is a plain value: serialise it as it is.
type Pipeline struct {
	Inputs []Input `json:"inputs"`
	// Features names the output columns, e.g. "age", "age_missing", "job=admin.",
	// "job=<other>", "city#7".
	Features []string `json:"features"`
}

// NumFeatures returns the number of columns of the design matrix.
func (p *Pipeline) NumFeatures() int { return len(p.Features) }

// Categorical marks the columns of the design matrix that hold category codes (the
// outputs of ordinal columns).
func (p *Pipeline) Categorical() []bool {
	out := make([]bool, len(p.Features))
	for _, in := range p.Inputs {
		if in.Ordinal {
			out[in.Offset] = true
		}
	}
	return out
}

// Fit learns preprocessing from the rows of t (all of them are training rows).
func Fit(t *ml.Table, spec Spec) (*Pipeline, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("fit preprocessing: %w", err)
	}
	if t.Rows() == 0 {
		return nil, errors.New("fit preprocessing: no rows")
	}
	for name := range spec.Columns {
		if _, ok := t.Column(name); !ok {
			return nil, fmt.Errorf("fit preprocessing: spec names column %q, which the table lacks", name)
		}
	}
	p := &Pipeline{}
	for i := range t.Columns {
		c := &t.Columns[i]
		o := spec.options(c.Name)
		if o.Exclude {
			continue
		}
		var in Input
		var names []string
		var err error
		if c.Kind == ml.Numeric {
			in, names, err = fitNumeric(c, o)
		} else {
			in, names, err = fitCategorical(c, o)
		}
		if err != nil {
			return nil, fmt.Errorf("fit preprocessing of column %q: %w", c.Name, err)
		}
		in.Offset = len(p.Features)
		in.Width = len(names)
		p.Inputs = append(p.Inputs, in)
		p.Features = append(p.Features, names...)
	}
	return p, nil
}

// Log1p is the log transform of numeric columns: log(1 + max(v, 0)).
func Log1p(v float64) float64 {
	return math.Log1p(math.Max(v, 0))
}

// HashBucket returns the column of a hashed categorical value among buckets columns: the
// 64-bit FNV-1a hash of seed's 8 little-endian bytes followed by value's bytes, modulo
// buckets.
func HashBucket(value string, seed uint64, buckets int) int {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := range 8 {
		h ^= uint64(byte(seed >> (8 * i)))
		h *= prime
	}
	for i := 0; i < len(value); i++ {
		h ^= uint64(value[i])
		h *= prime
	}
	return int(h % uint64(buckets))
}

func wantIndicator(o Options, missing int) bool {
	switch o.Indicator {
	case IndicatorAlways:
		return true
	case IndicatorNever:
		return false
	}
	return missing > 0
}

func fitNumeric(c *ml.Column, o Options) (Input, []string, error) {
	in := Input{Name: c.Name, Kind: ml.Numeric, Log1p: o.Log1p, Scale: 1}
	vals := make([]float64, 0, len(c.Numeric))
	for _, v := range c.Numeric {
		if math.IsNaN(v) {
			continue
		}
		if math.IsInf(v, 0) {
			return in, nil, fmt.Errorf("infinite value %v", v)
		}
		vals = append(vals, v)
	}
	missing := len(c.Numeric) - len(vals)
	switch o.Impute {
	case ImputeAuto, ImputeMedian:
		if len(vals) > 0 {
			in.Fill = median(vals)
		}
	case ImputeMean:
		if len(vals) > 0 {
			in.Fill = mean(vals)
		}
	case ImputeMostFrequent:
		if len(vals) > 0 {
			in.Fill = mostFrequentFloat(vals)
		}
	case ImputeConstant:
		if math.IsNaN(o.FillValue) || math.IsInf(o.FillValue, 0) {
			return in, nil, fmt.Errorf("fill value %v is not finite", o.FillValue)
		}
		in.Fill = o.FillValue
	case ImputeNone:
		in.KeepMissing = true
	default:
		return in, nil, fmt.Errorf("imputation %d does not apply to a numeric column", o.Impute)
	}
	if !o.NoStandardize {
		// Statistics over the imputed, transformed column, as an imputer, a transformer and
		// a scaler in a row.
		fill := in.transform(in.Fill)
		n := float64(len(c.Numeric))
		var sum float64
		for _, v := range vals {
			sum += in.transform(v)
		}
		sum += float64(missing) * fill
		mu := sum / n
		var ss float64
		for _, v := range vals {
			d := in.transform(v) - mu
			ss += d * d
		}
		ss += float64(missing) * (fill - mu) * (fill - mu)
		in.Mean = mu
		if sd := math.Sqrt(ss / n); sd > 1e-12*math.Max(1, math.Abs(mu)) {
			in.Scale = sd
		}
	}
	in.Imputes = missing > 0 || o.Impute != ImputeAuto
	names := []string{c.Name}
	if in.Indicator = wantIndicator(o, missing); in.Indicator {
		names = append(names, c.Name+"_missing")
	}
	return in, names, nil
}

// transform applies the column's log transform, if any, to an imputed value.
func (in *Input) transform(v float64) float64 {
	if in.Log1p {
		return Log1p(v)
	}
	return v
}

func fitCategorical(c *ml.Column, o Options) (Input, []string, error) {
	in := Input{Name: c.Name, Kind: ml.Categorical}
	counts := map[string]int{}
	missing := 0
	for _, v := range c.Categorical {
		if v == "" {
			missing++
			continue
		}
		counts[v]++
	}
	switch o.Impute {
	case ImputeAuto, ImputeMostFrequent:
		best, bestN := "", 0
		for v, n := range counts {
			if n > bestN || n == bestN && v < best {
				best, bestN = v, n
			}
		}
		in.FillCategory = best
	case ImputeConstant:
		in.FillCategory = o.FillCategory
		if missing > 0 && o.FillCategory != "" {
			counts[o.FillCategory] += missing
		}
	case ImputeMissingCategory:
		if missing > 0 {
			counts[""] = missing
		}
	case ImputeNone:
		in.KeepMissing = true
	default:
		return in, nil, fmt.Errorf("imputation %d does not apply to a categorical column", o.Impute)
	}
	maxOneHot := cmp.Or(o.MaxOneHot, 64)
	enc := o.Encoding
	if enc == EncodingAuto {
		enc = EncodingOneHot
		if len(counts) > maxOneHot {
			enc = EncodingHash
		}
	}
	var names []string
	switch enc {
	case EncodingOneHot:
		for v, n := range counts {
			if n >= o.MinFrequency || o.Unseen == UnseenIgnore {
				in.Categories = append(in.Categories, v)
			}
		}
		if o.MaxCategories > 0 && len(in.Categories) > o.MaxCategories {
			slices.SortFunc(in.Categories, func(a, b string) int {
				return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
			})
			in.Categories = in.Categories[:o.MaxCategories]
		}
		slices.Sort(in.Categories)
		for _, v := range in.Categories {
			names = append(names, c.Name+"="+v)
		}
		if o.Unseen == UnseenBucket {
			in.Bucket = true
			names = append(names, c.Name+"=<other>")
		}
	case EncodingOrdinal:
		in.Ordinal = true
		for v, n := range counts {
			if n >= o.MinFrequency {
				in.Categories = append(in.Categories, v)
			}
		}
		slices.SortFunc(in.Categories, func(a, b string) int {
			return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
		})
		limit := MaxOrdinal
		if o.MaxCategories > 0 {
			limit = min(limit, o.MaxCategories)
		}
		in.Categories = in.Categories[:min(len(in.Categories), limit)]
		names = append(names, c.Name)
	case EncodingHash:
		in.HashBuckets = cmp.Or(o.HashBuckets, 32)
		in.HashSeed = o.HashSeed
		for b := range in.HashBuckets {
			names = append(names, fmt.Sprintf("%s#%d", c.Name, b))
		}
	default:
		return in, nil, fmt.Errorf("unknown encoding %d", o.Encoding)
	}
	in.Imputes = missing > 0 || o.Impute != ImputeAuto
	if in.Indicator = wantIndicator(o, missing); in.Indicator {
		names = append(names, c.Name+"_missing")
	}
	return in, names, nil
}

// Transform returns the design matrix of t: one row per table row, NumFeatures columns.
// Columns are matched by name; extra table columns are ignored.
func (p *Pipeline) Transform(t *ml.Table) (*mat.Dense, error) {
	n := t.Rows()
	if n == 0 {
		return nil, errors.New("transform: no rows")
	}
	x := mat.NewDense(n, len(p.Features), nil)
	if err := p.TransformTo(x, t); err != nil {
		return nil, err
	}
	return x, nil
}

// TransformTo writes the design matrix of t into dst, which must be t.Rows() × NumFeatures
// and zero where one-hot and indicator columns are unset (a fresh matrix is).
func (p *Pipeline) TransformTo(dst *mat.Dense, t *ml.Table) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("transform: %w", err)
	}
	if r, c := dst.Dims(); r != t.Rows() || c != len(p.Features) {
		return fmt.Errorf("transform: destination is %d×%d, want %d×%d", r, c, t.Rows(), len(p.Features))
	}
	raw := dst.RawMatrix()
	for k := range p.Inputs {
		in := &p.Inputs[k]
		c, ok := t.Column(in.Name)
		if !ok {
			return fmt.Errorf("transform: table lacks column %q", in.Name)
		}
		if c.Kind != in.Kind {
			return fmt.Errorf("transform: column %q is %v, the pipeline was fitted on %v", in.Name, c.Kind, in.Kind)
		}
		if in.Kind == ml.Numeric {
			in.numeric(raw, c.Numeric)
		} else {
			in.categorical(raw, c.Categorical)
		}
	}
	return nil
}

func (in *Input) numeric(raw blas64.General, vals []float64) {
	scale := in.Scale
	if scale == 0 {
		scale = 1
	}
	for i, v := range vals {
		row := raw.Data[i*raw.Stride : i*raw.Stride+raw.Cols]
		missing := math.IsNaN(v)
		if missing && in.KeepMissing {
			row[in.Offset] = math.NaN()
			if in.Indicator {
				row[in.Offset+in.Width-1] = 1
			}
			continue
		}
		if missing {
			v = in.Fill
		}
		if in.Log1p {
			v = Log1p(v)
		}
		row[in.Offset] = (v - in.Mean) / scale
		if in.Indicator && missing {
			row[in.Offset+in.Width-1] = 1
		}
	}
}

func (in *Input) categorical(raw blas64.General, vals []string) {
	index := make(map[string]int, len(in.Categories))
	for i, v := range in.Categories {
		index[v] = i
	}
	for i, v := range vals {
		row := raw.Data[i*raw.Stride : i*raw.Stride+raw.Cols]
		missing := v == ""
		if missing && in.FillCategory != "" {
			v = in.FillCategory
		}
		if in.Indicator && missing {
			row[in.Offset+in.Width-1] = 1
		}
		if in.HashBuckets > 0 {
			row[in.Offset+HashBucket(v, in.HashSeed, in.HashBuckets)] = 1
			continue
		}
		if in.Ordinal {
			row[in.Offset] = math.NaN()
			if j, ok := index[v]; ok {
				row[in.Offset] = float64(j)
			}
			continue
		}
		if j, ok := index[v]; ok {
			row[in.Offset+j] = 1
		} else if in.Bucket {
			row[in.Offset+len(in.Categories)] = 1
		}
	}
}

// FitTransform fits preprocessing on t and returns it with t's design matrix.
func FitTransform(t *ml.Table, spec Spec) (*Pipeline, *mat.Dense, error) {
	p, err := Fit(t, spec)
	if err != nil {
		return nil, nil, err
	}
	x, err := p.Transform(t)
	if err != nil {
		return nil, nil, err
	}
	return p, x, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func mostFrequentFloat(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	best, bestN := s[0], 0
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		if j-i > bestN {
			best, bestN = s[i], j-i
		}
		i = j
	}
	return best
}
