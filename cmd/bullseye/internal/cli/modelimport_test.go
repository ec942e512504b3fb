package cli

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// TestModelImportXGBoostBank brings a model of one's own through the mesh: an XGBoost
// classifier trained on Bank Marketing with native categorical features (by /usr/bin/python3
// with python3-xgboost and python3-pandas, which make test installs), its categories coded
// in the mapping's order rather than pandas' sorted one and one rare category left out. It
// is imported with `bullseye models import`, promoted, and every test row (i % 5 == 4) is
// scored by serving's Predict by customer id, so that its features come from the feature
// service's online state and its categories through the artifact's encoding. Every
// probability must be XGBoost's own within 1e-6.
func TestModelImportXGBoostBank(t *testing.T) {
	file := datasets.Require(t, "bank-additional-full.csv")
	mapping := filepath.Join("testdata", "bank-xgboost-mapping.json")
	dir := t.TempDir()
	cmd := exec.Command("/usr/bin/python3", filepath.Join("testdata", "bank_xgboost.py"), file, mapping, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the XGBoost exporter needs /usr/bin/python3 with python3-xgboost and python3-pandas (scripts/apt.sh python3-xgboost python3-pandas installs them, as make test does): %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "predictions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Rows        []int     `json:"rows"`
		Probability []float64 `json:"probability"`
	}
	if err := json.Unmarshal(raw, &want); err != nil || len(want.Rows) == 0 || len(want.Rows) != len(want.Probability) {
		t.Fatalf("predictions.json: %v, %d rows, %d probabilities", err, len(want.Rows), len(want.Probability))
	}

	m := startMesh(t)
	examples := filepath.Join(repoRoot(t), "examples", "bank")
	if code, _, errOut := bullseye(t, m, "import", "--timeout", "2m", "--mapping", filepath.Join(examples, "mapping.yaml"), file); code != 0 {
		t.Fatalf("import exited %d: %s", code, errOut)
	}
	if code, _, errOut := bullseye(t, m, "featureset", "apply", filepath.Join(examples, "features.yaml")); code != 0 {
		t.Fatalf("featureset apply exited %d: %s", code, errOut)
	}
	code, out, errOut := bullseye(t, m, "models", "import", "--name", "bank-xgb", "--format", "xgboost-json", "--mapping", mapping, filepath.Join(dir, "model.json"))
	if code != 0 {
		t.Fatalf("models import exited %d: %s %s", code, out, errOut)
	}
	t.Logf("models import printed:\n%s", out)
	if !strings.Contains(out, "as bank-xgb version 1: GRADIENT_BOOSTED_TREES, BINARY_CLASSIFICATION") ||
		!strings.Contains(out, "inputs from feature set bank-marketing version 1: age, job, marital") {
		t.Errorf("models import printed %q", out)
	}
	if code, out, errOut := bullseye(t, m, "promote", "bank-xgb", "--version", "1"); code != 0 {
		t.Fatalf("promote exited %d: %s %s", code, out, errOut)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitBackfilled(ctx, t, m.Addr("feature"), "bank-marketing")
	conn, err := mesh.DialAddr(ctx, m.Addr("serving"), mesh.TLSConfig{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	serving := servingv1.NewPredictionServiceClient(conn)
	ids, err := bankRowIDs(file, want.Rows...)
	if err != nil {
		t.Fatal(err)
	}
	worst, at, got := 0.0, -1, 0.0
	const batch = 1000
	for lo := 0; lo < len(ids); lo += batch {
		hi := min(lo+batch, len(ids))
		req := &servingv1.PredictRequest{ModelName: "bank-xgb"}
		for _, id := range ids[lo:hi] {
			req.Instances = append(req.Instances, &servingv1.Instance{UserId: id})
		}
		resp, err := serving.Predict(ctx, req)
		if err != nil {
			t.Fatalf("Predict of test rows %d to %d: %v", lo, hi, err)
		}
		for k, p := range resp.GetPredictions() {
			i := lo + k
			if p.GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK || p.Probability == nil || p.GetModelVersion() != 1 {
				t.Fatalf("row %d (%s): %v %v, version %d", want.Rows[i], ids[i], p.GetStatus(), p.GetProblem(), p.GetModelVersion())
			}
			if d := math.Abs(p.GetProbability() - want.Probability[i]); d > worst || at < 0 {
				worst, at, got = d, i, p.GetProbability()
			}
		}
	}
	t.Logf("%d test rows scored by serving: max |Δ probability| vs XGBoost %.3g (row %d: %.9f, XGBoost %.9f)",
		len(ids), worst, want.Rows[at], got, want.Probability[at])
	if worst > 1e-6 {
		t.Errorf("max |Δ probability| %.3g over %d test rows, want at most 1e-6", worst, len(ids))
	}
}

// waitBackfilled waits until the latest version of a feature set is materialised.
func waitBackfilled(ctx context.Context, t *testing.T, addr, name string) {
	t.Helper()
	conn, err := mesh.DialAddr(ctx, addr, mesh.TLSConfig{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fc := featurev1.NewFeatureServiceClient(conn)
	for {
		resp, err := fc.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: name}})
		state := resp.GetFeatureSet().GetBackfill().GetState()
		if state == featurev1.BackfillState_BACKFILL_STATE_READY {
			return
		}
		if state == featurev1.BackfillState_BACKFILL_STATE_FAILED {
			t.Fatalf("feature set %s failed to materialise: %v", name, resp.GetFeatureSet().GetBackfill())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("feature set %s not materialised in time (last: %v, %v)", name, state, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
