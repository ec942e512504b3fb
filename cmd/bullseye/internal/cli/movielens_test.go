package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
	"github.com/bullseye-ml/bullseye/pkg/report"
)

// TestMovieLensThroughTheMesh imports a file in MovieLens's u.data format
// (generated with planted rank-10 structure, 100,000 ratings) with the
// example mapping, trains the example ALS job from the feature service's
// ExportInteractions, and evaluates the registered version on the held-out
// ratings with Evaluate.
func TestMovieLensThroughTheMesh(t *testing.T) {
	data, err := synth.Generate(synth.MovieLens100K())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "u.data")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.WriteMovieLens(f, data.Interactions); err != nil {
		t.Fatal(err)
	}
	f.Close()
	examples := filepath.Join(repoRoot(t), "examples", "movielens")
	m := startMesh(t)

	code, out, errOut := bullseye(t, m, "import", "--timeout", "2m", "--mapping", filepath.Join(examples, "mapping.yaml"), file)
	if code != 0 || !strings.Contains(out, "100000 rows read, 100000 accepted, 0 rejected") {
		t.Fatalf("import: exit %d, %q %s", code, out, errOut)
	}
	if code, out, errOut := bullseye(t, m, "train", "--timeout", "5m", filepath.Join(examples, "train-als.yaml")); code != 0 {
		t.Fatalf("train exited %d:\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = bullseye(t, m, "models", "--output", "json", "get", "movielens-als")
	if code != 0 {
		t.Fatalf("models get: %s", errOut)
	}
	var got struct {
		ModelVersion trainingv1Version `json:"modelVersion"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.ModelVersion.Family != "MODEL_FAMILY_MF_ALS" {
		t.Errorf("selected %s, want MF_ALS over popularity", got.ModelVersion.Family)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := mesh.DialAddr(ctx, m.Addr("training"), mesh.TLSConfig{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := trainingv1.NewTrainingServiceClient(conn)
	mv, err := client.GetModel(ctx, &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: "movielens-als", Selector: &commonv1.ModelRef_Version{Version: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := client.Evaluate(ctx, &trainingv1.EvaluateRequest{
		Model:      &commonv1.ModelRef{Name: "movielens-als", Selector: &commonv1.ModelRef_Version{Version: 1}},
		Data:       report.TrainingData(mv.GetModelVersion()),
		Partition:  trainingv1.DataPartition_DATA_PARTITION_TEST,
		OmitScores: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	metric := map[string]float64{}
	for _, mt := range ev.GetMetrics() {
		metric[mt.GetName()] = mt.GetValue()
	}
	t.Logf("Evaluate on %d held-out ratings: RMSE %.4f, MAE %.4f, precision@10 %.4f", ev.GetRowsScored(), metric["rmse"], metric["mae"], metric["precision_at_10"])
	// 25,000 held-out ratings of 1 to 5 with noise sd 0.85: a model that
	// learnt nothing scores about 1.1 (the ratings' spread); the planted
	// model about 0.85 (the rounded ratings add a little).
	if ev.GetRowsScored() < 20000 || !(metric["rmse"] > 0.8 && metric["rmse"] < 1.0) {
		t.Errorf("Evaluate scored %d rows with RMSE %.4f; want about 25,000 held-out rows and an RMSE between 0.8 and 1.0", ev.GetRowsScored(), metric["rmse"])
	}
}

// trainingv1Version is the part of a ModelVersion's JSON the test reads.
type trainingv1Version struct {
	Family string `json:"family"`
}
