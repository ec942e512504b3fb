// Package bankdata reads the UCI Bank Marketing file of the shared data folder for tests
// and benchmarks, and prepares the split and design matrices of the project's reference
// results (../shared/data/README.md). It is a small local reader; the ingest service's
// importer is the production path.
package bankdata

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"gonum.org/v1/gonum/mat"
)

// FullFile is the name of the full Bank Marketing file (41,188 rows).
const FullFile = "bank-additional-full.csv"

// Bank is the Bank Marketing table: the 20 inputs (numeric columns typed numeric) and
// the outcome y as 1 (yes) or 0 (no).
type Bank struct {
	Table *ml.Table
	Y     []float64
}

// Read parses a Bank Marketing file: ';'-separated, quoted strings, a header, CRLF line ends.
// A column is numeric when every value parses as a number.
func Read(r io.Reader) (*Bank, error) {
	cr := csv.NewReader(r)
	cr.Comma = ';'
	cr.ReuseRecord = false
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read bank csv: %w", err)
	}
	if len(recs) < 2 {
		return nil, errors.New("read bank csv: no data rows")
	}
	header, body := recs[0], recs[1:]
	b := &Bank{Table: &ml.Table{}}
	for j, name := range header {
		if name == "y" {
			b.Y = make([]float64, len(body))
			for i, r := range body {
				switch r[j] {
				case "yes":
					b.Y[i] = 1
				case "no":
				default:
					return nil, fmt.Errorf("read bank csv: row %d: y is %q", i+1, r[j])
				}
			}
			continue
		}
		nums := make([]float64, len(body))
		numeric := true
		for i, r := range body {
			v, err := strconv.ParseFloat(r[j], 64)
			if err != nil {
				numeric = false
				break
			}
			nums[i] = v
		}
		if numeric {
			b.Table.Columns = append(b.Table.Columns, ml.NumericColumn(name, nums))
			continue
		}
		cats := make([]string, len(body))
		for i, r := range body {
			cats[i] = r[j]
		}
		b.Table.Columns = append(b.Table.Columns, ml.CategoricalColumn(name, cats))
	}
	if b.Y == nil {
		return nil, errors.New("read bank csv: no y column")
	}
	return b, nil
}

// Load reads the Bank file at path.
func Load(path string) (*Bank, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}

// Require loads the full Bank file for a test or benchmark, failing tb when it is absent.
func Require(tb testing.TB) *Bank {
	tb.Helper()
	b, err := Load(datasets.Require(tb, FullFile))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Split returns the reference split: row i is test when i%5 == 4. With kernelRows the
// training rows are only those with i%4 == 0 (8,237 of them), as for the kernel SVM.
func Split(n int, kernelRows bool) (train, test []int) {
	for i := range n {
		switch {
		case i%5 == 4:
			test = append(test, i)
		case !kernelRows || i%4 == 0:
			train = append(train, i)
		}
	}
	return train, test
}

// Design is a preprocessed split.
type Design struct {
	Pipeline      *preprocess.Pipeline
	XTrain, XTest *mat.Dense
	YTrain, YTest []float64
}

// Spec is the reference preprocessing: numeric columns standardised, categoricals one-hot
// with unseen categories ignored, no imputation needed (the file has no missing values).
func Spec() preprocess.Spec {
	return preprocess.Spec{Defaults: preprocess.Options{Unseen: preprocess.UnseenIgnore, Indicator: preprocess.IndicatorNever}}
}

// Prepare fits the reference preprocessing on the training rows and returns the design
// matrices. Without duration the column is dropped (62 features instead of 63).
func (b *Bank) Prepare(withDuration, kernelRows bool) (*Design, error) {
	t := b.Table
	if !withDuration {
		t = t.Drop("duration")
	}
	train, test := Split(t.Rows(), kernelRows)
	d := &Design{YTrain: pick(b.Y, train), YTest: pick(b.Y, test)}
	var err error
	d.Pipeline, d.XTrain, err = preprocess.FitTransform(t.Subset(train), Spec())
	if err != nil {
		return nil, err
	}
	if d.XTest, err = d.Pipeline.Transform(t.Subset(test)); err != nil {
		return nil, err
	}
	return d, nil
}

func pick(v []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for k, i := range idx {
		out[k] = v[i]
	}
	return out
}

// Name returns "with-duration" or "without-duration", the sub-test names that
// scripts/bench-train.py parses.
func Name(withDuration bool) string {
	if withDuration {
		return "with-duration"
	}
	return "without-duration"
}

// Close reports whether got is within tol of want.
func Close(got, want, tol float64) bool { return math.Abs(got-want) <= tol }
