package preprocess_test

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"gonum.org/v1/gonum/mat"
)

var nan = math.NaN()

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

func TestNumeric(t *testing.T) {
	train := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("age", []float64{20, nan, 40, 30, nan}),
		ml.NumericColumn("spend", []float64{0, 9, 99, 999, 9}),
	}}
	p, x, err := preprocess.FitTransform(train, preprocess.Spec{Columns: map[string]preprocess.Options{
		"spend": {Log1p: true, Impute: preprocess.ImputeMean},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// age: median of {20, 40, 30} = 30 fills two rows; an indicator is added because the
	// training rows had missing values. Imputed column 20 30 40 30 30: mean 30, population
	// variance (100+0+100+0+0)/5 = 40.
	// spend: log1p gives 0, ln 10, ln 100, ln 1000, ln 10; no missing value, no indicator.
	if want := []string{"age", "age_missing", "spend"}; !reflect.DeepEqual(p.Features, want) {
		t.Fatalf("features = %v, want %v", p.Features, want)
	}
	sd := math.Sqrt(40)
	wantAge := []float64{-10 / sd, 0, 10 / sd, 0, 0}
	wantInd := []float64{0, 1, 0, 0, 1}
	logs := []float64{0, math.Log(10), math.Log(100), math.Log(1000), math.Log(10)}
	mu := (logs[0] + logs[1] + logs[2] + logs[3] + logs[4]) / 5
	var ss float64
	for _, v := range logs {
		ss += (v - mu) * (v - mu)
	}
	for i := range 5 {
		if !near(x.At(i, 0), wantAge[i]) || x.At(i, 1) != wantInd[i] || !near(x.At(i, 2), (logs[i]-mu)/math.Sqrt(ss/5)) {
			t.Errorf("row %d = %v, want [%v %v %v]", i, x.RawRowView(i), wantAge[i], wantInd[i], (logs[i]-mu)/math.Sqrt(ss/5))
		}
	}
	// New rows use the training statistics: a missing age becomes the training median.
	test := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("spend", []float64{nan}),
		ml.NumericColumn("age", []float64{nan}),
	}}
	xt, err := p.Transform(test)
	if err != nil {
		t.Fatal(err)
	}
	// The fill is the mean of the raw values, (0+9+99+999+9)/5 = 223.2, log-transformed like
	// any value.
	if !near(xt.At(0, 0), 0) || xt.At(0, 1) != 1 || !near(xt.At(0, 2), (math.Log1p(223.2)-mu)/math.Sqrt(ss/5)) {
		t.Errorf("test row = %v", xt.RawRowView(0))
	}
	if !near(p.Inputs[1].Fill, 223.2) {
		t.Errorf("spend mean fill = %v, want 223.2", p.Inputs[1].Fill)
	}
	// Negative values are clipped to 0 before the log transform.
	xt, err = p.Transform(&ml.Table{Columns: []ml.Column{
		ml.NumericColumn("spend", []float64{-5}),
		ml.NumericColumn("age", []float64{30}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !near(xt.At(0, 2), (0-mu)/math.Sqrt(ss/5)) {
		t.Errorf("negative spend = %v, want it clipped to 0", xt.At(0, 2))
	}
}

func TestCategorical(t *testing.T) {
	train := &ml.Table{Columns: []ml.Column{
		ml.CategoricalColumn("channel", []string{"web", "app", "web", "", "mail", "web"}),
	}}
	p, x, err := preprocess.FitTransform(train, preprocess.Spec{Defaults: preprocess.Options{MinFrequency: 2}})
	if err != nil {
		t.Fatal(err)
	}
	// "web" is the most frequent value (3) and fills the missing row. With MinFrequency 2
	// "app" and "mail" (once each) go to the bucket, as will unseen categories.
	if want := []string{"channel=web", "channel=<other>", "channel_missing"}; !reflect.DeepEqual(p.Features, want) {
		t.Fatalf("features = %v, want %v", p.Features, want)
	}
	want := [][]float64{{1, 0, 0}, {0, 1, 0}, {1, 0, 0}, {1, 0, 1}, {0, 1, 0}, {1, 0, 0}}
	for i, w := range want {
		if got := x.RawRowView(i); !reflect.DeepEqual(got, w) {
			t.Errorf("row %d = %v, want %v", i, got, w)
		}
	}
	xt, err := p.Transform(&ml.Table{Columns: []ml.Column{ml.CategoricalColumn("channel", []string{"sms"})}})
	if err != nil {
		t.Fatal(err)
	}
	if got := xt.RawRowView(0); !reflect.DeepEqual(got, []float64{0, 1, 0}) {
		t.Errorf("unseen category row = %v, want the bucket", got)
	}

	// Ignoring unseen categories gives an all-zero row, as scikit-learn's
	// handle_unknown="ignore".
	p, _, err = preprocess.FitTransform(train, preprocess.Spec{Defaults: preprocess.Options{
		Unseen: preprocess.UnseenIgnore, Indicator: preprocess.IndicatorNever}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"channel=app", "channel=mail", "channel=web"}; !reflect.DeepEqual(p.Features, want) {
		t.Fatalf("features = %v, want %v", p.Features, want)
	}
	xt, _ = p.Transform(&ml.Table{Columns: []ml.Column{ml.CategoricalColumn("channel", []string{"sms"})}})
	if got := xt.RawRowView(0); !reflect.DeepEqual(got, []float64{0, 0, 0}) {
		t.Errorf("ignored unseen category row = %v, want zeros", got)
	}
}

func TestHashing(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "f"}
	p, x, err := preprocess.FitTransform(&ml.Table{Columns: []ml.Column{ml.CategoricalColumn("item", ids)}},
		preprocess.Spec{Defaults: preprocess.Options{MaxOneHot: 4, HashBuckets: 8}})
	if err != nil {
		t.Fatal(err)
	}
	// Six distinct values exceed MaxOneHot 4: the column is hashed into 8 columns, value v
	// setting column FNV-1a-64(8 zero seed bytes, v) mod 8.
	if p.NumFeatures() != 8 || p.Inputs[0].HashBuckets != 8 {
		t.Fatalf("features = %v, want 8 hashed columns", p.Features)
	}
	for i, v := range append(ids, "unseen") {
		h := fnv.New64a()
		h.Write(make([]byte, 8))
		h.Write([]byte(v))
		want := int(h.Sum64() % 8)
		if got := preprocess.HashBucket(v, 0, 8); got != want {
			t.Errorf("HashBucket(%q) = %d, want %d", v, got, want)
		}
		var row []float64
		if i < len(ids) {
			row = x.RawRowView(i)
		} else {
			xt, err := p.Transform(&ml.Table{Columns: []ml.Column{ml.CategoricalColumn("item", []string{v})}})
			if err != nil {
				t.Fatal(err)
			}
			row = xt.RawRowView(0)
		}
		for j, got := range row {
			if got != 0 && j != want || j == want && got != 1 {
				t.Errorf("%q: row %v, want column %d set", v, row, want)
				break
			}
		}
	}
}

func TestExcludeAndErrors(t *testing.T) {
	train := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("id", []float64{1, 2}),
		ml.NumericColumn("v", []float64{1, 3}),
	}}
	p, err := preprocess.Fit(train, preprocess.Spec{Columns: map[string]preprocess.Options{"id": {Exclude: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Features, []string{"v"}) {
		t.Errorf("features = %v, want [v]", p.Features)
	}
	for _, tc := range []struct {
		name string
		t    *ml.Table
	}{
		{"missing column", &ml.Table{Columns: []ml.Column{ml.NumericColumn("w", []float64{1})}}},
		{"kind changed", &ml.Table{Columns: []ml.Column{ml.CategoricalColumn("v", []string{"1"})}}},
		{"ragged", &ml.Table{Columns: []ml.Column{ml.NumericColumn("v", []float64{1}), ml.NumericColumn("u", nil)}}},
	} {
		if _, err := p.Transform(tc.t); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := preprocess.Fit(train, preprocess.Spec{Columns: map[string]preprocess.Options{"nope": {}}}); err == nil {
		t.Error("spec naming an absent column: no error")
	}
	if _, err := preprocess.Fit(&ml.Table{Columns: []ml.Column{ml.NumericColumn("v", []float64{math.Inf(1)})}}, preprocess.Spec{}); err == nil {
		t.Error("infinite value: no error")
	}
}

// TestSerialisable checks that a fitted pipeline survives JSON and transforms alike.
func TestSerialisable(t *testing.T) {
	train := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("age", []float64{20, nan, 40, 31}),
		ml.CategoricalColumn("city", []string{"porto", "lisbon", "", "porto"}),
	}}
	p, x, err := preprocess.FitTransform(train, preprocess.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q preprocess.Pipeline
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, &q) {
		t.Fatalf("round trip changed the pipeline:\n%+v\n%+v", p, &q)
	}
	y, err := q.Transform(train)
	if err != nil {
		t.Fatal(err)
	}
	if !mat.Equal(x, y) {
		t.Errorf("transform after round trip differs")
	}
}

func TestConstantAndMaxCategories(t *testing.T) {
	train := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("n", []float64{1, nan, 3}),
		ml.CategoricalColumn("c", []string{"a", "", "b"}),
		ml.CategoricalColumn("k", []string{"x", "y", "y", "z", "z", "z"}[:3]),
	}}
	p, x, err := preprocess.FitTransform(train, preprocess.Spec{
		Defaults: preprocess.Options{Impute: preprocess.ImputeConstant, FillValue: -1, FillCategory: "none", NoStandardize: true},
		Columns:  map[string]preprocess.Options{"k": {MaxCategories: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"n", "n_missing", "c=a", "c=b", "c=none", "c=<other>", "c_missing", "k=y", "k=<other>"}
	if !reflect.DeepEqual(p.Features, want) {
		t.Fatalf("features = %v, want %v", p.Features, want)
	}
	// Row 1: n missing → -1 with the indicator; c missing → "none" with the indicator; k "y"
	// is the most frequent category and keeps its own column.
	if got, want := x.RawRowView(1), []float64{-1, 1, 0, 0, 1, 0, 1, 1, 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("row 1 = %v, want %v", got, want)
	}
	// Row 0: k "x" is beyond MaxCategories and goes to the bucket.
	if got, want := x.RawRowView(0), []float64{1, 0, 1, 0, 0, 0, 0, 0, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("row 0 = %v, want %v", got, want)
	}
}

func TestOrdinalKeepsMissingForTrees(t *testing.T) {
	train := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("age", []float64{30, math.NaN(), 50, 40}),
		ml.CategoricalColumn("job", []string{"b", "a", "b", ""}),
	}}
	spec := preprocess.Spec{Defaults: preprocess.Options{Impute: preprocess.ImputeNone, Encoding: preprocess.EncodingOrdinal, NoStandardize: true, Indicator: preprocess.IndicatorNever}}
	p, err := preprocess.Fit(train, spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Categorical(); !slices.Equal(got, []bool{false, true}) {
		t.Fatalf("categorical flags %v", got)
	}
	test := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("age", []float64{math.NaN(), 20, 1, 2}),
		ml.CategoricalColumn("job", []string{"b", "a", "", "never seen"}),
	}}
	x, err := p.Transform(test)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float64{{math.NaN(), 0}, {20, 1}, {1, math.NaN()}, {2, math.NaN()}}
	for i, row := range want {
		for j, v := range row {
			got := x.At(i, j)
			if got != v && !(math.IsNaN(got) && math.IsNaN(v)) {
				t.Errorf("x[%d][%d] = %v, want %v", i, j, got, v)
			}
		}
	}
	for _, in := range p.Inputs {
		if !in.Imputes || !in.KeepMissing {
			t.Errorf("column %s does not take missing values as missing", in.Name)
		}
	}
}

func TestOrdinalCodesAtMostMaxOrdinal(t *testing.T) {
	vals := make([]string, 0, 400)
	for i := range 300 {
		vals = append(vals, fmt.Sprintf("c%03d", i))
	}
	vals = append(vals, "c299", "c299")
	p, err := preprocess.Fit(&ml.Table{Columns: []ml.Column{ml.CategoricalColumn("k", vals)}}, preprocess.Spec{Defaults: preprocess.Options{Encoding: preprocess.EncodingOrdinal}})
	if err != nil {
		t.Fatal(err)
	}
	in := p.Inputs[0]
	if len(in.Categories) != preprocess.MaxOrdinal || in.Categories[0] != "c299" {
		t.Fatalf("%d categories, the first %q; want %d with the most frequent first", len(in.Categories), in.Categories[0], preprocess.MaxOrdinal)
	}
}
