package cli

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/dev"
	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"github.com/bullseye-ml/bullseye/pkg/registry"
)

// registerTiny fits a logistic regression on two numeric inputs, "x" (missing in some
// training rows, so the model imputes it) and "y" (never missing: required), registers it as
// version 1 of name in the mesh's registry and makes it live.
func registerTiny(t *testing.T, m *dev.Mesh, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	x, y := ml.Column{Name: "x", Kind: ml.Numeric}, ml.Column{Name: "y", Kind: ml.Numeric}
	var labels []float64
	for i := range 200 {
		xi, yi := float64(i%17)-8, float64(i%11)-5
		label := 0.0
		if xi+2*yi+float64(i%3)-1 > 0 {
			label = 1
		}
		if i%10 == 0 {
			xi = math.NaN()
		}
		x.Numeric, y.Numeric = append(x.Numeric, xi), append(y.Numeric, yi)
		labels = append(labels, label)
	}
	pipe, design, err := preprocess.FitTransform(&ml.Table{Columns: []ml.Column{x, y}}, preprocess.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	model, err := logistic.Regression{C: 1}.Fit(ctx, design, labels)
	if err != nil {
		t.Fatal(err)
	}
	number := commonv1.ValueType_VALUE_TYPE_NUMBER
	a, err := artifact.Encode(&artifact.Fitted{
		Family:   modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
		Task:     modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION,
		Inputs:   []*modelv1.InputColumn{{Name: "x", Type: number}, {Name: "y", Type: number}},
		Pipeline: pipe,
		Model:    model,
	})
	if err != nil {
		t.Fatal(err)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: m.EtcdEndpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	nc, err := nats.Connect(m.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(ctx, cli, js)
	if err != nil {
		t.Fatal(err)
	}
	mv := &modelv1.ModelVersion{ModelName: name, Family: a.GetFamily(), Task: a.GetTask(), Inputs: a.GetInputs(),
		SelectionMetric: "roc_auc", SelectionDirection: modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE,
		TestMetrics: []*commonv1.Metric{{Name: "roc_auc", Value: 0.9}}}
	if _, _, err := reg.Register(ctx, mv, a); err != nil {
		t.Fatal(err)
	}
	rm, err := reg.Model(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Promote(ctx, registry.Promotion{ModelName: name, ExpectedRevision: rm.GetRevision(), Force: true,
		Live: &modelv1.TrafficSplit{Versions: []*modelv1.VersionWeight{{Version: 1, Weight: 1}}}}); err != nil {
		t.Fatal(err)
	}
}

// TestPredictExitsNonZeroWhenUnscored: `bullseye predict` exits 0 when every instance is
// scored, and 1 with a summary on stderr when one is not (a feature the model does not take, a
// missing input it does not impute, NaN or ±Inf), unless --allow-unscored.
func TestPredictExitsNonZeroWhenUnscored(t *testing.T) {
	m := startMesh(t)
	const model = "tiny"
	registerTiny(t, m, model)
	deadline := time.Now().Add(time.Minute)
	for {
		code, _, errOut := bullseye(t, m, "predict", model, "--set", "x=1", "--set", "y=2")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serving never scored with %s: exit %d, %s", model, code, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}

	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string // in stdout
		stderr  string // in stderr
		noError bool   // stderr must be empty
	}{
		{"every input", []string{"--set", "x=1", "--set", "y=2"}, 0, "score", "", true},
		{"imputed x", []string{"--set", "y=2"}, 0, "imputed x", "", true},
		{"null x", []string{"--set", "x=", "--set", "y=2"}, 0, "imputed x", "", true},
		{"null y", []string{"--set", "x=1", "--set", "y="}, 1, `"y" is missing`, "not scored", false},
		{"unknown feature", []string{"--set", "x=1", "--set", "y=2", "--set", "agee=3"}, 1, `"agee"`, "1 of 1 instances were not scored (1 INVALID)", false},
		{"unknown feature allowed", []string{"--allow-unscored", "--set", "x=1", "--set", "y=2", "--set", "agee=3"}, 0, "INVALID", "", true},
		{"missing y", []string{"--set", "x=1"}, 1, `"y" is missing`, "not scored", false},
		{"NaN", []string{"--set", "x=NaN", "--set", "y=2"}, 1, "not a finite number", "not scored", false},
		{"+Inf", []string{"--set", "x=+Inf", "--set", "y=2"}, 1, "not a finite number", "not scored", false},
		{"-Inf", []string{"--set", "x=1", "--set", "y=-Inf"}, 1, "not a finite number", "not scored", false},
		{"json", []string{"--output", "json", "--set", "x=1", "--set", "y=2", "--set", "agee=3"}, 1, "PREDICTION_STATUS_INVALID", "1 INVALID", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := bullseye(t, m, append([]string{"predict", model}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) || (tt.noError && errOut != "") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}
