// Package dataset reads training sets from the feature service's BuildTrainingSet stream into
// column-typed tables, converting raw values exactly as the model artifact's scorer does
// (package artifact), and turns labels into the 0/1 or numeric targets models fit.
package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

// rowsPerMessage is the batch size asked of BuildTrainingSet.
const rowsPerMessage = 2000

// Dataset is a training set: its feature columns as a table, and per row the label, split,
// entity, cutoff time and import row number.
type Dataset struct {
	// Header and Summary are the stream's first and last messages.
	Header  *featurev1.TrainingSetHeader
	Summary *featurev1.TrainingSetSummary
	// Table holds one column per feature, in the header's order: strings as categorical
	// columns, everything else numeric (times as days before the row's cutoff).
	Table *ml.Table
	// Types are the columns' value types, as the header gives them.
	Types []commonv1.ValueType
	// Labels are the rows' labels as given.
	Labels []*commonv1.Value
	// Split is each row's side.
	Split []featurev1.Split
	// Entities and Cutoffs identify each row.
	Entities []string
	Cutoffs  []time.Time
	// RowNumbers are the import row numbers, -1 for rows without one.
	RowNumbers []int64
	// Imports are the rows' import ids, empty for rows without one.
	Imports []string
	// WrongType counts values whose type differed from their column's; they count as
	// missing.
	WrongType int
}

// Load streams the training set spec defines from the feature service and converts it.
// progress, when set, is called with the rows read so far after each message.
func Load(ctx context.Context, fs featurev1.FeatureServiceClient, spec *featurev1.TrainingSetSpec, progress func(rows int64)) (*Dataset, error) {
	stream, err := fs.BuildTrainingSet(ctx, &featurev1.BuildTrainingSetRequest{Spec: spec, RowsPerMessage: rowsPerMessage})
	if err != nil {
		return nil, FeatureError("building the training set", err)
	}
	d := &Dataset{Table: &ml.Table{}}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, FeatureError("reading the training set", err)
		}
		if h := msg.GetHeader(); h != nil {
			if d.Header != nil {
				return nil, errors.New("reading the training set: a second header")
			}
			if err := d.setHeader(h); err != nil {
				return nil, err
			}
		}
		if len(msg.GetRows()) > 0 {
			if d.Header == nil {
				return nil, errors.New("reading the training set: rows before the header")
			}
			for _, r := range msg.GetRows() {
				if err := d.add(r); err != nil {
					return nil, err
				}
			}
			if progress != nil {
				progress(int64(len(d.Labels)))
			}
		}
		if s := msg.GetSummary(); s != nil {
			d.Summary = s
		}
	}
	if d.Header == nil {
		return nil, errors.New("reading the training set: the stream had no header")
	}
	return d, nil
}

// FeatureError wraps an error of a feature service call: a refusal of the request keeps its
// kind and message for the caller (fault.ErrInvalid, ErrNotFound, ErrFailedPrecondition), an
// unreachable service is fault.ErrUnavailable.
func FeatureError(doing string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", doing, err)
	}
	msg := fmt.Sprintf("%s: the feature service answered %s: %s", doing, st.Code(), st.Message())
	switch st.Code() {
	case codes.InvalidArgument:
		return &fault.Coded{Kind: fault.ErrInvalid, Reason: "TRAINING_SET_REFUSED", Message: msg}
	case codes.NotFound:
		return &fault.Coded{Kind: fault.ErrNotFound, Reason: "FEATURE_SET_NOT_FOUND", Message: msg}
	case codes.FailedPrecondition:
		return &fault.Coded{Kind: fault.ErrFailedPrecondition, Reason: "TRAINING_SET_NOT_READY", Message: msg}
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return &fault.Coded{Kind: fault.ErrUnavailable, Reason: "FEATURE_SERVICE_UNAVAILABLE", Message: msg, Cause: err}
	case codes.Canceled:
		return fmt.Errorf("%s: %w", doing, context.Canceled)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func (d *Dataset) setHeader(h *featurev1.TrainingSetHeader) error {
	d.Header = h
	seen := map[string]bool{}
	for i, c := range h.GetColumns() {
		if c.GetName() == "" || seen[c.GetName()] {
			return fmt.Errorf("reading the training set: column %d has an empty or repeated name %q", i, c.GetName())
		}
		seen[c.GetName()] = true
		if c.GetType() == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
			return fmt.Errorf("reading the training set: column %q has no type", c.GetName())
		}
		d.Table.Columns = append(d.Table.Columns, ml.Column{Name: c.GetName(), Kind: artifact.KindOf(c.GetType())})
		d.Types = append(d.Types, c.GetType())
	}
	return nil
}

func (d *Dataset) add(r *featurev1.TrainingRow) error {
	if len(r.GetFeatures()) != len(d.Types) {
		return fmt.Errorf("reading the training set: a row has %d features, the header %d columns", len(r.GetFeatures()), len(d.Types))
	}
	cutoff := r.GetCutoffTime().AsTime()
	for j, v := range r.GetFeatures() {
		c := &d.Table.Columns[j]
		if artifact.CheckType(d.Types[j], v) != nil {
			d.WrongType++
			v = nil
		}
		if c.Kind == ml.Numeric {
			x, err := artifact.Number(v, cutoff)
			if err != nil {
				d.WrongType++
				x = nan
			}
			c.Numeric = append(c.Numeric, x)
		} else {
			x, err := artifact.Category(v)
			if err != nil {
				d.WrongType++
			}
			c.Categorical = append(c.Categorical, x)
		}
	}
	d.Labels = append(d.Labels, r.GetLabel())
	split := r.GetSplit()
	if split == featurev1.Split_SPLIT_UNSPECIFIED {
		split = featurev1.Split_SPLIT_TRAIN
	}
	d.Split = append(d.Split, split)
	d.Entities = append(d.Entities, r.GetEntity().GetId())
	d.Cutoffs = append(d.Cutoffs, cutoff)
	n := int64(-1)
	if r.GetImportId() != "" {
		n = r.GetImportRowNumber()
	}
	d.RowNumbers = append(d.RowNumbers, n)
	d.Imports = append(d.Imports, r.GetImportId())
	return nil
}

// SplitByImport applies a predefined split by import (DataSpec.import_split): the rows of
// the test imports become test rows, every other row a training row. It fails when no row
// comes from a test import, naming the imports the rows do come from.
func (d *Dataset) SplitByImport(s *trainingv1.ImportSplit) error {
	test := s.GetTestImportIds()
	found := false
	seen := map[string]bool{}
	for i, id := range d.Imports {
		d.Split[i] = featurev1.Split_SPLIT_TRAIN
		if slices.Contains(test, id) {
			d.Split[i], found = featurev1.Split_SPLIT_TEST, true
		}
		if id != "" {
			seen[id] = true
		}
	}
	if !found {
		return fmt.Errorf("no row of the training set comes from the test imports %q; its rows come from %q", test, slices.Sorted(maps.Keys(seen)))
	}
	return nil
}

var nan = math.NaN()

// Len returns the number of rows.
func (d *Dataset) Len() int { return len(d.Labels) }

// Columns returns the feature columns with their types.
func (d *Dataset) Columns() []*modelv1.InputColumn {
	out := make([]*modelv1.InputColumn, len(d.Types))
	for j, t := range d.Types {
		out[j] = &modelv1.InputColumn{Name: d.Table.Columns[j].Name, Type: t}
	}
	return out
}

// Keep drops every feature column not named in keep.
func (d *Dataset) Keep(keep func(name string) bool) {
	var cols []ml.Column
	var types []commonv1.ValueType
	for j, c := range d.Table.Columns {
		if keep(c.Name) {
			cols = append(cols, c)
			types = append(types, d.Types[j])
		}
	}
	d.Table.Columns, d.Types = cols, types
}

// Rows returns the indexes of the rows of a partition, after the training filter (which
// applies to training rows only).
func (d *Dataset) Rows(part trainingv1.DataPartition, filter *trainingv1.RowNumberFilter) []int {
	var out []int
	for i, s := range d.Split {
		test := s == featurev1.Split_SPLIT_TEST
		switch part {
		case trainingv1.DataPartition_DATA_PARTITION_TRAIN:
			if test {
				continue
			}
		case trainingv1.DataPartition_DATA_PARTITION_TEST:
			if !test {
				continue
			}
		}
		if !test && filter != nil {
			n := d.RowNumbers[i]
			if n < 0 || !slices.Contains(filter.GetRemainders(), n%filter.GetModulus()) {
				continue
			}
		}
		out = append(out, i)
	}
	return out
}

// HasTest reports whether any row is a test row.
func (d *Dataset) HasTest() bool { return slices.Contains(d.Split, featurev1.Split_SPLIT_TEST) }

// Classes maps binary labels to 0 and 1.
type Classes struct {
	// Positive and Negative are the label values of the classes.
	Positive, Negative *commonv1.Value
	// Guessed is true when the positive class was chosen by name order, with no better
	// evidence (a bool label, 0/1 numbers or a conventional name such as "yes").
	Guessed bool
}

// positiveNames are string labels taken for the positive class.
var positiveNames = []string{"yes", "true", "1", "positive", "y", "t"}

// BinaryClasses works out the two classes of the labels of the given rows. Bools are
// true/false, numbers 1/0, and strings the two distinct values, the positive one being a
// conventional name ("yes", "true", "1", ...) or else the last in name order. Missing labels
// are skipped.
func BinaryClasses(labels []*commonv1.Value, rows []int) (*Classes, error) {
	var kind commonv1.ValueType
	distinct := map[string]*commonv1.Value{}
	for _, i := range rows {
		v := labels[i]
		t := values.TypeOf(v)
		if t == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
			continue
		}
		if kind == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
			kind = t
		}
		if !values.Comparable(t, kind) {
			return nil, fmt.Errorf("labels mix %v and %v values", kind, t)
		}
		key, _ := artifact.Category(v)
		if _, ok := distinct[key]; !ok {
			distinct[key] = v
			if len(distinct) > 2 {
				return nil, fmt.Errorf("a binary label has at most two values; found %d or more (e.g. %q)", len(distinct), slices.Sorted(mapsKeys(distinct)))
			}
		}
	}
	switch kind {
	case commonv1.ValueType_VALUE_TYPE_UNSPECIFIED:
		return nil, errors.New("no row has a label")
	case commonv1.ValueType_VALUE_TYPE_BOOL:
		return &Classes{Positive: boolValue(true), Negative: boolValue(false)}, nil
	case commonv1.ValueType_VALUE_TYPE_NUMBER, commonv1.ValueType_VALUE_TYPE_INT:
		for k := range distinct {
			if k != "0" && k != "1" {
				return nil, fmt.Errorf("numeric binary labels must be 0 or 1, found %s", k)
			}
		}
		return &Classes{Positive: intValue(1), Negative: intValue(0)}, nil
	case commonv1.ValueType_VALUE_TYPE_STRING:
		keys := slices.Sorted(mapsKeys(distinct))
		pos := -1
		for i, k := range keys {
			if slices.Contains(positiveNames, strings.ToLower(k)) {
				pos = i
			}
		}
		c := &Classes{}
		if pos < 0 {
			pos, c.Guessed = len(keys)-1, true
		}
		c.Positive = distinct[keys[pos]]
		if len(keys) == 2 {
			c.Negative = distinct[keys[1-pos]]
		}
		return c, nil
	}
	return nil, fmt.Errorf("a %v label cannot be a binary class", kind)
}

func mapsKeys(m map[string]*commonv1.Value) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func boolValue(b bool) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: b}}
}
func intValue(n int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: n}}
}

// Target returns a label as a model target: for classification 1 for the positive class and
// 0 for the other, for regression the number. ok is false for a missing label, or one that
// is neither class.
func Target(v *commonv1.Value, c *Classes) (float64, bool) {
	if values.TypeOf(v) == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED {
		return 0, false
	}
	if c == nil {
		x, err := artifact.Number(v, time.Time{})
		return x, err == nil && x == x
	}
	if sameValue(v, c.Positive) {
		return 1, true
	}
	if c.Negative == nil || sameValue(v, c.Negative) {
		return 0, true
	}
	return 0, false
}

// sameValue compares label values, numbers and whole numbers by value.
func sameValue(a, b *commonv1.Value) bool {
	c, ok := values.Compare(a, b)
	return (ok && c == 0) || proto.Equal(a, b)
}
