package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/datasets"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	mlrec "github.com/bullseye-ml/bullseye/pkg/ml/recommend"
)

// DataFile returns the path of a shared data set (datasets.Require): it fails the test when
// the file is absent.
func DataFile(t TB, name string) string {
	t.Helper()
	return datasets.Require(t, name)
}

var (
	intRE     = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)$`)
	decimalRE = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)?(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
)

// Table is a `;`-separated file with a header, typed per column as an importer with a
// typing mapping would: INT when every value is a whole number, NUMBER when every one is a
// number, STRING otherwise.
type Table struct {
	// Columns are the header's names, Types their types, Rows the data rows as text.
	Columns []string
	Types   []commonv1.ValueType
	Rows    [][]string
}

// ReadTable reads a Bank-shaped file (`;`-separated, quoted strings, CRLF line ends).
func ReadTable(t TB, path string) *Table {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer f.Close()
	tb := &Table{}
	sc := bufio.NewScanner(f)
	split := func(line string) []string {
		fs := strings.Split(strings.TrimRight(line, "\r"), ";")
		for i := range fs {
			fs[i] = strings.Trim(fs[i], `"`)
		}
		return fs
	}
	for sc.Scan() {
		if tb.Columns == nil {
			tb.Columns = split(sc.Text())
			continue
		}
		tb.Rows = append(tb.Rows, split(sc.Text()))
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	tb.Types = make([]commonv1.ValueType, len(tb.Columns))
	for j := range tb.Columns {
		isInt, isNum := true, true
		for _, r := range tb.Rows {
			isInt = isInt && intRE.MatchString(r[j])
			isNum = isNum && decimalRE.MatchString(r[j])
		}
		switch {
		case isInt:
			tb.Types[j] = commonv1.ValueType_VALUE_TYPE_INT
		case isNum:
			tb.Types[j] = commonv1.ValueType_VALUE_TYPE_NUMBER
		default:
			tb.Types[j] = commonv1.ValueType_VALUE_TYPE_STRING
		}
	}
	return tb
}

// Value returns column j's value s, typed.
func (tb *Table) Value(j int, s string) *commonv1.Value {
	switch tb.Types[j] {
	case commonv1.ValueType_VALUE_TYPE_INT:
		i, _ := strconv.ParseInt(s, 10, 64)
		return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: i}}
	case commonv1.ValueType_VALUE_TYPE_NUMBER:
		f, _ := strconv.ParseFloat(s, 64)
		return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
	}
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}

// FeatureName is the feature name of a file column ("emp.var.rate" → "emp_var_rate").
func FeatureName(col string) string { return strings.ReplaceAll(col, ".", "_") }

// BankID is the customer id of Bank row i.
func BankID(i int) string { return "bank-" + strconv.Itoa(i) }

// BankImportID is the import id of the seeded Bank rows.
const BankImportID = "bank-import"

// SeedTable publishes every row as the traits of customer id(i), as an import does, and
// applies a feature set named set with one trait feature per column but label (the
// columns' own types), waiting until it is READY.
func (e *Env) SeedTable(ctx context.Context, tb *Table, set, label string, id func(int) string) (*featurev1.FeatureSet, error) {
	at := time.Date(2010, 11, 30, 0, 0, 0, 0, time.UTC)
	p := e.Publisher()
	for i, r := range tb.Rows {
		traits := make(map[string]*commonv1.Value, len(r))
		for j, col := range tb.Columns {
			traits[col] = tb.Value(j, r[j])
		}
		if err := p.Publish(Identify(id(i), fmt.Sprintf("%s-%d", set, i), at, traits, BankImportID, int64(i))); err != nil {
			return nil, err
		}
	}
	if _, err := p.Flush(ctx); err != nil {
		return nil, err
	}
	fs := &featurev1.FeatureSet{Name: set, Description: "every input of " + set}
	for j, col := range tb.Columns {
		if col == label {
			continue
		}
		fs.Features = append(fs.Features, &featurev1.Feature{
			Name:   FeatureName(col),
			Type:   tb.Types[j],
			Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: col}},
		})
	}
	return e.ApplyReady(ctx, fs)
}

// Dataset is a training set as training reads it: the rows, and their raw values as a
// table converted with pkg/artifact's conversions.
type Dataset struct {
	// Header and Rows are the stream's.
	Header *featurev1.TrainingSetHeader
	Rows   []*featurev1.TrainingRow
	// Inputs are the feature columns as model inputs; Table their values, row for row.
	Inputs []*modelv1.InputColumn
	Table  *ml.Table
	// Y are the labels (0 or 1); Train and Test the rows of each split.
	Y     []float64
	Train []int
	Test  []int
}

// TrainingSet builds the training set of feature set set with the boolean label
// "label == positive", TEST rows those whose import row number is 4 modulo 5.
func (e *Env) TrainingSet(ctx context.Context, set, label, positive string) (*Dataset, error) {
	stream, err := e.Feature.BuildTrainingSet(ctx, &featurev1.BuildTrainingSetRequest{
		Spec: &featurev1.TrainingSetSpec{
			FeatureSet: &featurev1.FeatureSetRef{Name: set},
			Label: &featurev1.LabelSpec{Name: label, Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{
				Trait: label, PositiveValues: []*commonv1.Value{{Kind: &commonv1.Value_StringValue{StringValue: positive}}},
			}}},
			Cutoff:   &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: timestamppb.New(time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC))}},
			Split:    &featurev1.SplitSpec{Method: &featurev1.SplitSpec_RowNumber{RowNumber: &featurev1.RowNumberSplit{Modulus: 5, TestRemainders: []int64{4}}}},
			Entities: &featurev1.EntityFilter{ImportId: BankImportID},
		},
		Order:          featurev1.TrainingSetOrder_TRAINING_SET_ORDER_IMPORT_ROW,
		RowsPerMessage: 5000,
	})
	if err != nil {
		return nil, err
	}
	d := &Dataset{}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if m.GetHeader() != nil {
			d.Header = m.GetHeader()
		}
		d.Rows = append(d.Rows, m.GetRows()...)
	}
	for _, c := range d.Header.GetColumns() {
		d.Inputs = append(d.Inputs, &modelv1.InputColumn{Name: c.GetName(), Type: c.GetType()})
	}
	d.Table = &ml.Table{}
	for k, in := range d.Inputs {
		col := ml.Column{Name: in.GetName(), Kind: artifact.KindOf(in.GetType())}
		for _, r := range d.Rows {
			v := r.GetFeatures()[k]
			if col.Kind == ml.Numeric {
				x, err := artifact.Number(v, r.GetCutoffTime().AsTime())
				if err != nil {
					return nil, err
				}
				col.Numeric = append(col.Numeric, x)
			} else {
				x, err := artifact.Category(v)
				if err != nil {
					return nil, err
				}
				col.Categorical = append(col.Categorical, x)
			}
		}
		d.Table.Columns = append(d.Table.Columns, col)
	}
	for i, r := range d.Rows {
		y := 0.0
		if r.GetLabel().GetBoolValue() {
			y = 1
		}
		d.Y = append(d.Y, y)
		if r.GetSplit() == featurev1.Split_SPLIT_TEST {
			d.Test = append(d.Test, i)
		} else {
			d.Train = append(d.Train, i)
		}
	}
	return d, nil
}

// FitLogistic fits preprocessing and an L2 logistic regression with inverse penalty c on the
// rows of t (targets y), as training does, and encodes the model as an artifact of a binary
// classifier whose lineage names the feature set.
func FitLogistic(ctx context.Context, t *ml.Table, y []float64, inputs []*modelv1.InputColumn, c float64, set string, setVersion int64) (*modelv1.ModelArtifact, error) {
	return fitClassifier(ctx, t, y, inputs, preprocess.Spec{}, logistic.Regression{C: c},
		modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, set, setVersion)
}

// FitBoosted fits boosted trees with params p on the rows of t (targets y) behind the native
// preprocessing, as training does, and encodes them as FitLogistic does.
func FitBoosted(ctx context.Context, t *ml.Table, y []float64, inputs []*modelv1.InputColumn, p gbt.Params, set string, setVersion int64) (*modelv1.ModelArtifact, error) {
	return fitClassifier(ctx, t, y, inputs, preprocess.Spec{}.Native(), gbt.Estimator{Params: p},
		modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES, set, setVersion)
}

func fitClassifier(ctx context.Context, t *ml.Table, y []float64, inputs []*modelv1.InputColumn, prep preprocess.Spec,
	est ml.Estimator, family modelv1.ModelFamily, set string, setVersion int64) (*modelv1.ModelArtifact, error) {
	pipe, x, err := preprocess.FitTransform(t, prep)
	if err != nil {
		return nil, err
	}
	if ce, ok := est.(ml.CategoricalEstimator); ok {
		est = ce.WithCategorical(pipe.Categorical())
	}
	model, err := est.Fit(ctx, x, y)
	if err != nil {
		return nil, err
	}
	a, err := artifact.Encode(&artifact.Fitted{
		Family:   family,
		Task:     modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION,
		Inputs:   inputs,
		Pipeline: pipe,
		Model:    model,
	})
	if err != nil {
		return nil, err
	}
	a.Classification = &modelv1.ClassificationOutput{
		PositiveLabel: &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}},
		NegativeLabel: &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: false}},
		Threshold:     0.5,
	}
	a.Lineage = &modelv1.Lineage{FeatureSet: set, FeatureSetVersion: setVersion}
	return a, nil
}

// Synthetic is a synthetic population: n customers with width numeric traits f00, f01, ...
// and a label drawn from a planted logistic model.
type Synthetic struct {
	// IDs are the customers' ids; Inputs the traits as model inputs.
	IDs    []string
	Inputs []*modelv1.InputColumn
	// Values are each customer's traits; Table the same by column; Y the labels.
	Values [][]float64
	Table  *ml.Table
	Y      []float64
}

// MakeSynthetic draws a synthetic population with a fixed seed.
func MakeSynthetic(n, width int, seed uint64) *Synthetic {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := &Synthetic{Table: &ml.Table{}}
	w := make([]float64, width)
	for j := range w {
		w[j] = rng.NormFloat64() / math.Sqrt(float64(width))
		s.Inputs = append(s.Inputs, &modelv1.InputColumn{Name: fmt.Sprintf("f%02d", j), Type: commonv1.ValueType_VALUE_TYPE_NUMBER})
	}
	cols := make([][]float64, width)
	for i := range n {
		s.IDs = append(s.IDs, fmt.Sprintf("syn-%d", i))
		row := make([]float64, width)
		z := 0.0
		for j := range row {
			row[j] = rng.NormFloat64()*3 + float64(j%5)
			z += w[j] * (row[j] - float64(j%5))
			cols[j] = append(cols[j], row[j])
		}
		s.Values = append(s.Values, row)
		y := 0.0
		if rng.Float64() < 1/(1+math.Exp(-z)) {
			y = 1
		}
		s.Y = append(s.Y, y)
	}
	for j, in := range s.Inputs {
		s.Table.Columns = append(s.Table.Columns, ml.NumericColumn(in.GetName(), cols[j]))
	}
	return s
}

// Features returns customer i's traits as inline features.
func (s *Synthetic) Features(i int) map[string]*commonv1.Value {
	m := make(map[string]*commonv1.Value, len(s.Inputs))
	for j, in := range s.Inputs {
		m[in.GetName()] = &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: s.Values[i][j]}}
	}
	return m
}

// SeedSynthetic publishes the population's traits and applies a feature set of them named set.
func (e *Env) SeedSynthetic(ctx context.Context, s *Synthetic, set string) (*featurev1.FeatureSet, error) {
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	p := e.Publisher()
	for i, id := range s.IDs {
		if err := p.Publish(Identify(id, fmt.Sprintf("%s-%d", set, i), at, s.Features(i), "", 0)); err != nil {
			return nil, err
		}
	}
	if _, err := p.Flush(ctx); err != nil {
		return nil, err
	}
	fs := &featurev1.FeatureSet{Name: set}
	for _, in := range s.Inputs {
		fs.Features = append(fs.Features, &featurev1.Feature{Name: in.GetName(), Type: in.GetType(),
			Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: in.GetName()}}})
	}
	return e.ApplyReady(ctx, fs)
}

// FactorsArtifact encodes a recommender as an artifact with pkg/artifact, as training does.
func FactorsArtifact(f *mlrec.Factors, family modelv1.ModelFamily, task modelv1.TaskKind) *modelv1.ModelArtifact {
	a, err := artifact.EncodeFactors(family, task, f)
	if err != nil {
		panic(fmt.Sprintf("testenv: encoding a test recommender: %v", err))
	}
	return a
}

// RandomFactors draws an implicit factorisation model of users × items at rank, with a few
// seen items per user and a popularity ranking, with a fixed seed.
func RandomFactors(users, items, rank int, seed uint64) *mlrec.Factors {
	rng := rand.New(rand.NewPCG(seed, 11))
	f := &mlrec.Factors{Rank: rank}
	for u := range users {
		f.UserIDs = append(f.UserIDs, fmt.Sprintf("user-%d", u))
	}
	for i := range items {
		f.ItemIDs = append(f.ItemIDs, fmt.Sprintf("item-%d", i))
	}
	for range users * rank {
		f.UserFactors = append(f.UserFactors, float32(rng.NormFloat64()*0.3))
	}
	for range items * rank {
		f.ItemFactors = append(f.ItemFactors, float32(rng.NormFloat64()*0.3))
	}
	f.SeenOffsets = append(f.SeenOffsets, 0)
	for range users {
		seen := map[uint32]bool{}
		for range 5 {
			seen[uint32(rng.IntN(items))] = true
		}
		var s []uint32
		for i := range seen {
			s = append(s, i)
		}
		slices.Sort(s)
		f.SeenItems = append(f.SeenItems, s...)
		f.SeenOffsets = append(f.SeenOffsets, uint32(len(f.SeenItems)))
	}
	for i := range min(items, 1000) {
		f.Popularity.ItemIDs = append(f.Popularity.ItemIDs, f.ItemIDs[i])
		f.Popularity.Scores = append(f.Popularity.Scores, float64(1000-i))
	}
	return f
}
