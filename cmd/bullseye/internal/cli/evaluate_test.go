package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

// evalStub is a TrainingService that answers Evaluate with a fixed reply and keeps the
// requests it got.
type evalStub struct {
	trainingv1.UnimplementedTrainingServiceServer
	mu    sync.Mutex
	reqs  []*trainingv1.EvaluateRequest
	reply *trainingv1.EvaluateResponse
}

func (s *evalStub) Evaluate(_ context.Context, req *trainingv1.EvaluateRequest) (*trainingv1.EvaluateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, req)
	return s.reply, nil
}

func (s *evalStub) last() *trainingv1.EvaluateRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return nil
	}
	return s.reqs[len(s.reqs)-1]
}

// TestEvaluateCommand runs `bullseye evaluate` against a training service on 127.0.0.1: the
// test set comes from a YAML DataSpec, a training spec, or an interactions export, and the
// reply's counts and metrics are printed; no labelled row is a failure.
func TestEvaluateCommand(t *testing.T) {
	stub := &evalStub{reply: &trainingv1.EvaluateResponse{ModelName: "u1", ModelVersion: 2, RowsScored: 20000, RowsLabelled: 20000, RowsCold: 12,
		Metrics: []*commonv1.Metric{{Name: "rmse", Value: 0.9512}, {Name: "ndcg_at_5", Value: 0.1234}}}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	trainingv1.RegisterTrainingServiceServer(srv, stub)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), evaluateCommand, append([]string{"--addr", lis.Addr().String()}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	export := `{explicit: {eventNames: [u1.base], ratingProperty: rating}}`
	dataSpec := write("test.yaml", "interactions:\n  export: "+export+"\n  split: {eventNames: {testEventNames: [u1.test]}}\n")
	code, out, errOut := run("u1@2", "--test", dataSpec, "--k", "5", "--partition", "test")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	req := stub.last()
	want := &trainingv1.EvaluateRequest{
		Model: &commonv1.ModelRef{Name: "u1", Selector: &commonv1.ModelRef_Version{Version: 2}},
		Data: &trainingv1.DataSpec{Source: &trainingv1.DataSpec_Interactions{Interactions: &trainingv1.InteractionsSpec{
			Export: req.GetData().GetInteractions().GetExport(),
			Split: &trainingv1.InteractionSplit{Method: &trainingv1.InteractionSplit_EventNames{EventNames: &trainingv1.EventNameSplit{
				TestEventNames: []string{"u1.test"}}}}}}},
		Partition:  trainingv1.DataPartition_DATA_PARTITION_TEST,
		Options:    &trainingv1.EvaluationOptions{RankingK: []int32{5}},
		OmitScores: true,
	}
	if !proto.Equal(req, want) || req.GetData().GetInteractions().GetExport().GetExplicit().GetEventNames()[0] != "u1.base" {
		t.Errorf("request %v, want %v", req, want)
	}
	for _, s := range []string{"u1 version 2: 20000 rows scored, 20000 labelled, 0 invalid, 12 cold", "rmse      0.9512", "ndcg_at_5 0.1234"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}

	// A training spec's data, and a bare export.
	trainSpec := write("train.yaml", "modelName: u1\ntask: TASK_KIND_RECOMMENDATION_EXPLICIT\ncandidates: [{family: MODEL_FAMILY_MF_ALS}]\n"+
		"data:\n  interactions:\n    export: "+export+"\n    split: {random: {testFraction: 0.2}}\n")
	if code, _, errOut := run("u1", "--test", trainSpec); code != 0 || stub.last().GetData().GetInteractions().GetSplit().GetRandom().GetTestFraction() != 0.2 ||
		stub.last().GetModel().GetSelector() != nil {
		t.Errorf("a training spec: exit %d %s, request %v", code, errOut, stub.last())
	}
	bare := write("export.yaml", export+"\n")
	if code, _, errOut := run("u1@prod", "--test", bare); code != 0 || stub.last().GetData().GetInteractions().GetExport().GetExplicit().GetRatingProperty() != "rating" ||
		stub.last().GetModel().GetAlias() != "prod" {
		t.Errorf("an export: exit %d %s, request %v", code, errOut, stub.last())
	}

	// Mistakes: no --test, a file of something else, nothing labelled.
	if code, _, errOut := run("u1"); code != 2 || !strings.Contains(errOut, "--test") {
		t.Errorf("no --test: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run("u1", "--test", write("bad.yaml", "nonsense: 1\n")); code != 1 || !strings.Contains(errOut, "not a DataSpec") {
		t.Errorf("a bad file: exit %d, %s", code, errOut)
	}
	stub.reply = &trainingv1.EvaluateResponse{ModelName: "u1", ModelVersion: 2, RowsScored: 3}
	if code, _, errOut := run("u1", "--test", dataSpec); code != 1 || !strings.Contains(errOut, "no scored row had a label") {
		t.Errorf("nothing labelled: exit %d, %s", code, errOut)
	}
}
