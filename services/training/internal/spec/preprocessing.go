package spec

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
)

// Column is one raw column of a training set.
type Column struct {
	// Name is the column's feature name.
	Name string
	// Type is the type of its raw values.
	Type commonv1.ValueType
}

// Excluded returns the columns the preprocessing spec leaves out (excluded_columns and
// columns[...].exclude), in name order.
func Excluded(p *trainingv1.PreprocessingSpec) []string {
	out := slices.Clone(p.GetExcludedColumns())
	for name, c := range p.GetColumns() {
		if c.GetExclude() {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Preprocessing returns the preprocess.Spec of a PreprocessingSpec for the given columns (the
// excluded ones already removed), with notes on options that do not apply to a column and
// were ignored.
func Preprocessing(p *trainingv1.PreprocessingSpec, cols []Column) (preprocess.Spec, []string) {
	out := preprocess.Spec{Columns: map[string]preprocess.Options{}}
	var notes []string
	known := map[string]bool{}
	for _, c := range cols {
		known[c.Name] = true
		co := p.GetColumns()[c.Name]
		numeric := artifact.KindOf(c.Type) == ml.Numeric
		o := preprocess.Options{Indicator: preprocess.IndicatorAuto}
		if p != nil && p.MissingIndicators != nil && !p.GetMissingIndicators() {
			o.Indicator = preprocess.IndicatorNever
		}
		strategy := co.GetImputation()
		if strategy == trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_UNSPECIFIED {
			if numeric {
				strategy = p.GetNumericImputation()
			} else {
				strategy = p.GetCategoricalImputation()
			}
		}
		switch strategy {
		case trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_UNSPECIFIED:
			o.Impute = preprocess.ImputeAuto
		case trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MEDIAN, trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MEAN:
			if !numeric {
				notes = append(notes, fmt.Sprintf("column %q is categorical: imputation %v does not apply, the most frequent value is used", c.Name, strategy))
				o.Impute = preprocess.ImputeMostFrequent
			} else if strategy == trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MEAN {
				o.Impute = preprocess.ImputeMean
			} else {
				o.Impute = preprocess.ImputeMedian
			}
		case trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MOST_FREQUENT:
			o.Impute = preprocess.ImputeMostFrequent
		case trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_CONSTANT:
			o.Impute = preprocess.ImputeConstant
			fill := co.GetFillValue()
			if numeric {
				v, err := artifact.Number(fill, zeroTime)
				if err != nil || v != v {
					if fill.GetKind() != nil {
						notes = append(notes, fmt.Sprintf("column %q: fill_value %v is not a number, 0 is used", c.Name, fill))
					}
					v = 0
				}
				o.FillValue = v
			} else {
				v, err := artifact.Category(fill)
				if err != nil {
					notes = append(notes, fmt.Sprintf("column %q: fill_value %v is not a category, \"\" is used", c.Name, fill))
				}
				o.FillCategory = v
			}
		}
		scaling := cmp.Or(co.GetScaling(), p.GetScaling())
		o.NoStandardize = scaling == trainingv1.Scaling_SCALING_NONE
		if co.GetLogTransform() {
			if numeric {
				o.Log1p = true
			} else {
				notes = append(notes, fmt.Sprintf("column %q is categorical: log_transform does not apply", c.Name))
			}
		}
		o.MinFrequency = int(p.GetOneHot().GetMinCount())
		o.MaxCategories = int(p.GetOneHot().GetMaxCategories())
		if p.GetOneHot().GetDropUnseenBucket() {
			o.Unseen = preprocess.UnseenIgnore
		}
		o.MaxOneHot = cmp.Or(int(p.GetHashing().GetCardinalityThreshold()), DefaultCardinality)
		o.HashBuckets = cmp.Or(int(co.GetHashBuckets()), int(p.GetHashing().GetBuckets()), DefaultHashBuckets)
		switch co.GetEncoding() {
		case modelv1.ColumnEncoding_COLUMN_ENCODING_ONE_HOT, modelv1.ColumnEncoding_COLUMN_ENCODING_HASHING:
			if numeric {
				notes = append(notes, fmt.Sprintf("column %q is %v: encoding %v applies to string columns, it stays numeric", c.Name, c.Type, co.GetEncoding()))
			} else if co.GetEncoding() == modelv1.ColumnEncoding_COLUMN_ENCODING_ONE_HOT {
				o.Encoding = preprocess.EncodingOneHot
			} else {
				o.Encoding = preprocess.EncodingHash
			}
		case modelv1.ColumnEncoding_COLUMN_ENCODING_NUMERIC:
			if !numeric {
				notes = append(notes, fmt.Sprintf("column %q is a string column: encoding NUMERIC does not apply, it is encoded as a category", c.Name))
			}
		}
		out.Columns[c.Name] = o
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range p.GetColumns() {
			if !yield(k) {
				return
			}
		}
	}) {
		if !known[name] && !p.GetColumns()[name].GetExclude() {
			notes = append(notes, fmt.Sprintf("preprocessing.columns names %q, which the training set does not have", name))
		}
	}
	return out, notes
}

// zeroTime is the reference time of fill values (never times).
var zeroTime = time.Time{}
