package feature_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/testenv"
)

var (
	intRE     = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)$`)
	decimalRE = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)?(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
)

// bankFile is the Bank Marketing file, parsed.
type bankFile struct {
	digest  string
	columns []string
	types   []commonv1.ValueType
	rows    [][]string
}

// readBank reads the file as ingest's importer does with a mapping that
// types each column: INT when every value is a whole number, NUMBER when
// every one is a number, STRING otherwise.
func readBank(t *testing.T) *bankFile {
	path := datasets.Require(t, "bank-additional-full.csv")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	b := &bankFile{digest: hex.EncodeToString(sum[:])}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	split := func(line string) []string {
		f := strings.Split(strings.TrimRight(line, "\r"), ";")
		for i := range f {
			f[i] = strings.Trim(f[i], `"`)
		}
		return f
	}
	for sc.Scan() {
		if b.columns == nil {
			b.columns = split(sc.Text())
			continue
		}
		b.rows = append(b.rows, split(sc.Text()))
	}
	b.types = make([]commonv1.ValueType, len(b.columns))
	for j := range b.columns {
		isInt, isNum := true, true
		for _, r := range b.rows {
			isInt = isInt && intRE.MatchString(r[j])
			isNum = isNum && decimalRE.MatchString(r[j])
		}
		switch {
		case isInt:
			b.types[j] = commonv1.ValueType_VALUE_TYPE_INT
		case isNum:
			b.types[j] = commonv1.ValueType_VALUE_TYPE_NUMBER
		default:
			b.types[j] = commonv1.ValueType_VALUE_TYPE_STRING
		}
	}
	return b
}

func (b *bankFile) value(t *testing.T, j int, s string) *commonv1.Value {
	switch b.types[j] {
	case commonv1.ValueType_VALUE_TYPE_INT:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return testenv.Int(i)
	case commonv1.ValueType_VALUE_TYPE_NUMBER:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		return testenv.Num(f)
	}
	return testenv.Str(s)
}

// TestBankMarketing imports the Bank Marketing file as trait updates with
// import row numbers (as ingest's importer stores them), builds a training
// set of it, and checks that it is the file: 41,188 rows in file order, each
// value equal to the file's, the label y, and the row-number split
// reproducing "row i is test when i % 5 == 4".
func TestBankMarketing(t *testing.T) {
	bank := readBank(t)
	if len(bank.rows) != 41188 {
		t.Fatalf("the file has %d rows, want 41188", len(bank.rows))
	}
	env := testenv.New(t)
	svc := env.Start(env.Config())

	importID := "imp-" + bank.digest[:16]
	at := time.Date(2010, 11, 30, 0, 0, 0, 0, time.UTC)
	pub := env.Publisher()
	for i, r := range bank.rows {
		traits := make(map[string]*commonv1.Value, len(r))
		for j, col := range bank.columns {
			traits[col] = bank.value(t, j, r[j])
		}
		if err := pub.Publish(&ingestv1.StoredEvent{
			Type:       ingestv1.EventType_EVENT_TYPE_IDENTIFY,
			MessageId:  importID + "-" + strconv.Itoa(i),
			UserId:     "bank-" + bank.digest[:16] + "-" + strconv.Itoa(i),
			Traits:     traits,
			EventTime:  timestamppb.New(at),
			ReceivedAt: timestamppb.Now(),
			Source:     ingestv1.EventSource_EVENT_SOURCE_IMPORT,
			ImportId:   importID,
			RowNumber:  int64(i),
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pub.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}

	fs := &featurev1.FeatureSet{Name: "bank-marketing", Description: "UCI Bank Marketing, every input"}
	yCol := -1
	for j, col := range bank.columns {
		if col == "y" {
			yCol = j
			continue
		}
		fs.Features = append(fs.Features, &featurev1.Feature{
			Name:   strings.ReplaceAll(col, ".", "_"),
			Type:   bank.types[j],
			Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: col}},
		})
	}
	testenv.ApplyReady(t, svc.Client, fs)
	start := time.Now()
	ts, err := testenv.Build(ctxT(t, 2*time.Minute), svc.Client, &featurev1.BuildTrainingSetRequest{
		Spec: &featurev1.TrainingSetSpec{
			FeatureSet: &featurev1.FeatureSetRef{Name: "bank-marketing"},
			Label: &featurev1.LabelSpec{Name: "y", Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{
				Trait: "y", PositiveValues: []*commonv1.Value{testenv.Str("yes")},
			}}},
			Cutoff:   fixedCutoff(time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)),
			Split:    &featurev1.SplitSpec{Method: &featurev1.SplitSpec_RowNumber{RowNumber: &featurev1.RowNumberSplit{Modulus: 5, TestRemainders: []int64{4}}}},
			Entities: &featurev1.EntityFilter{ImportId: importID},
		},
		Order:          featurev1.TrainingSetOrder_TRAINING_SET_ORDER_IMPORT_ROW,
		RowsPerMessage: 2000,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built 41,188 rows in %v", time.Since(start).Round(time.Millisecond))
	if got := len(ts.Rows); got != 41188 {
		t.Fatalf("got %d rows, want 41188", got)
	}
	if s := ts.Summary; s.GetRows() != 41188 || s.GetTrainRows() != 32951 || s.GetTestRows() != 8237 || s.GetEntities() != 41188 {
		t.Errorf("summary = %v, want 41188 rows, 32951 train, 8237 test, 41188 entities", s)
	}
	if ts.Header.GetLabelType() != commonv1.ValueType_VALUE_TYPE_BOOL || ts.Header.GetStreamSequence() < 41188 {
		t.Errorf("header = %v", ts.Header)
	}
	bad := 0
	for i, r := range ts.Rows {
		file := bank.rows[i]
		if r.GetImportRowNumber() != int64(i) || r.GetImportId() != importID {
			t.Fatalf("row %d has import row %d of %q", i, r.GetImportRowNumber(), r.GetImportId())
		}
		wantSplit := featurev1.Split_SPLIT_TRAIN
		if i%5 == 4 {
			wantSplit = featurev1.Split_SPLIT_TEST
		}
		if r.GetSplit() != wantSplit {
			t.Fatalf("row %d split %v, want %v", i, r.GetSplit(), wantSplit)
		}
		if got, want := value(r.GetLabel()), file[yCol] == "yes"; got != want {
			t.Fatalf("row %d label %v, want %v", i, got, want)
		}
		k := 0
		for j := range bank.columns {
			if j == yCol {
				continue
			}
			want := value(bank.value(t, j, file[j]))
			if got := value(r.GetFeatures()[k]); got != want {
				bad++
				if bad < 10 {
					t.Errorf("row %d %s = %v, want %v", i, bank.columns[j], got, want)
				}
			}
			k++
		}
	}
	if bad > 0 {
		t.Fatalf("%d values differ from the file", bad)
	}
}
