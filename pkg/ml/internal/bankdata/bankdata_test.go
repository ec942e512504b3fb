package bankdata_test

import (
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/bankdata"
)

func TestRead(t *testing.T) {
	const csv = "\"age\";\"job\";\"emp.var.rate\";\"y\"\r\n" +
		"56;\"housemaid\";1.1;\"no\"\r\n" +
		"41;\"blue-collar\";-1.8;\"yes\"\r\n"
	b, err := bankdata.Read(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Table.Columns) != 3 || b.Table.Rows() != 2 {
		t.Fatalf("table %+v", b.Table.Columns)
	}
	age, _ := b.Table.Column("age")
	job, _ := b.Table.Column("job")
	rate, _ := b.Table.Column("emp.var.rate")
	if age.Kind != ml.Numeric || age.Numeric[1] != 41 || job.Kind != ml.Categorical || job.Categorical[1] != "blue-collar" || rate.Numeric[1] != -1.8 {
		t.Errorf("columns %+v %+v %+v", age, job, rate)
	}
	if b.Y[0] != 0 || b.Y[1] != 1 {
		t.Errorf("y = %v", b.Y)
	}
	if _, err := bankdata.Read(strings.NewReader("\"a\";\"y\"\r\n1;\"maybe\"\r\n")); err == nil {
		t.Error("y = maybe: no error")
	}
}

func TestSplit(t *testing.T) {
	train, test := bankdata.Split(41188, false)
	if len(train) != 32951 || len(test) != 8237 {
		t.Errorf("split %d/%d, want 32951/8237", len(train), len(test))
	}
	train, _ = bankdata.Split(41188, true)
	if len(train) != 8237 {
		t.Errorf("kernel rows %d, want 8237", len(train))
	}
}

func TestFullFile(t *testing.T) {
	b := bankdata.Require(t)
	if b.Table.Rows() != 41188 || len(b.Table.Columns) != 20 {
		t.Errorf("%d rows, %d columns; want 41188, 20", b.Table.Rows(), len(b.Table.Columns))
	}
	var pos float64
	for _, v := range b.Y {
		pos += v
	}
	if rate := pos / 41188; rate < 0.112 || rate > 0.114 {
		t.Errorf("positive rate %v, want 11.3%%", rate)
	}
}
