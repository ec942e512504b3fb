package dataset_test

import (
	"context"
	"math"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/training/internal/featuretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func num(x float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: x}}
}
func integer(n int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: n}}
}
func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
func boolean(b bool) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: b}}
}

func TestBinaryClasses(t *testing.T) {
	tests := []struct {
		name     string
		labels   []*commonv1.Value
		pos, neg string
		guessed  bool
		err      bool
	}{
		{"bools", []*commonv1.Value{boolean(true), boolean(false), nil}, "true", "false", false, false},
		{"zero-one", []*commonv1.Value{integer(1), num(0), integer(0)}, "1", "0", false, false},
		{"yes-no", []*commonv1.Value{str("no"), str("yes")}, "yes", "no", false, false},
		{"guessed", []*commonv1.Value{str("churned"), str("active")}, "churned", "active", true, false},
		{"three classes", []*commonv1.Value{str("a"), str("b"), str("c")}, "", "", false, true},
		{"numbers not 0/1", []*commonv1.Value{num(2), num(0)}, "", "", false, true},
		{"mixed", []*commonv1.Value{str("a"), boolean(true)}, "", "", false, true},
		{"none", []*commonv1.Value{nil, {}}, "", "", false, true},
	}
	text := func(v *commonv1.Value) string {
		switch k := v.GetKind().(type) {
		case *commonv1.Value_BoolValue:
			if k.BoolValue {
				return "true"
			}
			return "false"
		case *commonv1.Value_IntValue:
			return map[int64]string{0: "0", 1: "1"}[k.IntValue]
		case *commonv1.Value_StringValue:
			return k.StringValue
		}
		return "?"
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows := make([]int, len(tc.labels))
			for i := range rows {
				rows[i] = i
			}
			c, err := dataset.BinaryClasses(tc.labels, rows)
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if text(c.Positive) != tc.pos || text(c.Negative) != tc.neg || c.Guessed != tc.guessed {
				t.Errorf("classes %v / %v guessed %v; want %s / %s guessed %v", c.Positive, c.Negative, c.Guessed, tc.pos, tc.neg, tc.guessed)
			}
			for i, l := range tc.labels {
				y, ok := dataset.Target(l, c)
				if l.GetKind() == nil {
					if ok {
						t.Errorf("row %d: a missing label is a target", i)
					}
					continue
				}
				if want := 0.0; text(l) == tc.pos {
					want = 1
					if !ok || y != want {
						t.Errorf("row %d: target %v, %v; want 1", i, y, ok)
					}
				} else if !ok || y != want {
					t.Errorf("row %d: target %v, %v; want 0", i, y, ok)
				}
			}
		})
	}
	if y, ok := dataset.Target(integer(7), nil); !ok || y != 7 {
		t.Errorf("regression target = %v, %v", y, ok)
	}
}

// TestLoad reads a training set from the stand-in over gRPC and checks the conversion, the
// split and the training filter.
func TestLoad(t *testing.T) {
	tb := &featuretest.Table{
		Columns: []*featurev1.FeatureColumn{
			{Name: "age", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
			{Name: "job", Type: commonv1.ValueType_VALUE_TYPE_STRING},
			{Name: "y", Type: commonv1.ValueType_VALUE_TYPE_STRING},
		},
	}
	for i := range 10 {
		age := num(float64(20 + i))
		if i == 3 {
			age = str("thirty") // wrong type: counted and treated as missing
		}
		y := "no"
		if i%3 == 0 {
			y = "yes"
		}
		tb.Rows = append(tb.Rows, []*commonv1.Value{age, str([]string{"admin", "", "tech"}[i%3]), str(y)})
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	featurev1.RegisterFeatureServiceServer(srv, featuretest.New("fs", "c", tb))
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cutoff := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := &featurev1.TrainingSetSpec{
		FeatureSet: &featurev1.FeatureSetRef{Name: "fs"},
		Label:      &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{Trait: "y", PositiveValues: []*commonv1.Value{str("yes")}}}},
		Cutoff:     &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: timestamppb.New(cutoff)}},
		Split:      &featurev1.SplitSpec{Method: &featurev1.SplitSpec_RowNumber{RowNumber: &featurev1.RowNumberSplit{Modulus: 5, TestRemainders: []int64{4}}}},
	}
	var seen int64
	d, err := dataset.Load(context.Background(), featurev1.NewFeatureServiceClient(conn), spec, func(n int64) { seen = n })
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 10 || seen != 10 || d.WrongType != 1 || len(d.Table.Columns) != 2 {
		t.Fatalf("%d rows (%d seen), %d wrong values, %d columns", d.Len(), seen, d.WrongType, len(d.Table.Columns))
	}
	age, _ := d.Table.Column("age")
	job, _ := d.Table.Column("job")
	if age.Kind != ml.Numeric || age.Numeric[0] != 20 || !math.IsNaN(age.Numeric[3]) || job.Kind != ml.Categorical || job.Categorical[1] != "" {
		t.Errorf("columns: age %v, job %v", age.Numeric, job.Categorical)
	}
	if !d.Cutoffs[0].Equal(cutoff) || d.Entities[0] != "c-000000" || d.RowNumbers[9] != 9 || !d.Labels[0].GetBoolValue() {
		t.Errorf("row 0: cutoff %v, entity %s, label %v", d.Cutoffs[0], d.Entities[0], d.Labels[0])
	}
	if got := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TEST, nil); len(got) != 2 || got[0] != 4 || got[1] != 9 {
		t.Errorf("test rows %v, want [4 9]", got)
	}
	filter := &trainingv1.RowNumberFilter{Modulus: 2, Remainders: []int64{0}}
	if got := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TRAIN, filter); len(got) != 4 {
		t.Errorf("filtered training rows %v, want the 4 even ones", got)
	}
	if got := d.Rows(trainingv1.DataPartition_DATA_PARTITION_ALL, filter); len(got) != 6 {
		t.Errorf("every row, training ones filtered: %v, want 6 (the filter leaves test rows alone)", got)
	}
	spec.FeatureSet.Name = "other"
	if _, err := dataset.Load(context.Background(), featurev1.NewFeatureServiceClient(conn), spec, nil); err == nil {
		t.Error("an unknown feature set loads")
	}
}
