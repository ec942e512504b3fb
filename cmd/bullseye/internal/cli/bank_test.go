package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
)

// repoRoot is the folder holding go.work.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
	}
	t.Fatal("no go.work above the test's folder")
	return ""
}

// TestBankThroughTheMesh runs the Bank Marketing path end to end with the
// CLI against a real mesh: import through ingest, the feature set, training
// sets split by import row number, training jobs, the registry. Logistic
// regression (C = 1) must reach scikit-learn's test ROC-AUC within 0.003,
// with and without duration, and so must the linear SVM
// (../shared/data/README.md).
func TestBankThroughTheMesh(t *testing.T) {
	file := datasets.Require(t, "bank-additional-full.csv")
	examples := filepath.Join(repoRoot(t), "examples", "bank")
	m := startMesh(t)

	code, out, errOut := bullseye(t, m, "import", "--timeout", "2m", "--mapping", filepath.Join(examples, "mapping.yaml"), file)
	if code != 0 {
		t.Fatalf("import exited %d: %s", code, errOut)
	}
	if !strings.Contains(out, "41188 rows read, 41188 accepted, 0 rejected") {
		t.Fatalf("import printed %q, want all 41188 rows accepted", out)
	}
	if code, _, errOut := bullseye(t, m, "featureset", "apply", filepath.Join(examples, "features.yaml")); code != 0 {
		t.Fatalf("featureset apply exited %d: %s", code, errOut)
	}
	for _, tc := range []struct {
		spec, model string
		want        float64
	}{
		{"train-lr.yaml", "bank-response", 0.9302},
		{"train-lr-no-duration.yaml", "bank-response-no-duration", 0.7734},
		{"train-svm.yaml", "bank-response-svm", 0.9304},
	} {
		code, out, errOut := bullseye(t, m, "train", "--timeout", "5m", filepath.Join(examples, tc.spec))
		if code != 0 {
			t.Fatalf("train %s exited %d:\n%s\n%s", tc.spec, code, out, errOut)
		}
		code, out, errOut = bullseye(t, m, "models", "--output", "json", "get", tc.model)
		if code != 0 {
			t.Fatalf("models get %s exited %d: %s", tc.model, code, errOut)
		}
		var got struct {
			ModelVersion struct {
				TestMetrics []struct {
					Name  string  `json:"name"`
					Value float64 `json:"value"`
				} `json:"testMetrics"`
			} `json:"modelVersion"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("models get printed %q: %v", out, err)
		}
		auc := math.NaN()
		for _, mt := range got.ModelVersion.TestMetrics {
			if mt.Name == "roc_auc" {
				auc = mt.Value
			}
		}
		t.Logf("%s: test ROC-AUC %.4f (scikit-learn %.4f)", tc.model, auc, tc.want)
		reports := t.TempDir()
		if code, stdout, errOut := bullseye(t, m, "report", "--out", reports, tc.model); code != 0 || !strings.Contains(stdout, ".html") {
			t.Errorf("report %s: exit %d, %q %s", tc.model, code, stdout, errOut)
		} else if html, err := os.ReadFile(filepath.Join(reports, tc.model+"-v1.html")); err != nil || !bytes.Contains(html, []byte("data:image/png;base64,")) {
			t.Errorf("report %s has no embedded plots (err %v)", tc.model, err)
		}
		if !(math.Abs(auc-tc.want) <= 0.003) {
			t.Errorf("%s: test ROC-AUC %.4f, want within 0.003 of %.4f", tc.model, auc, tc.want)
		}
	}

	// A person debugging with the pinned grpcurl: the README's walkthrough as written, against
	// this mesh's serving address and the README's customer (Bank row 4).
	if code, out, errOut := bullseye(t, m, "promote", "bank-response", "--version", "1"); code != 0 {
		t.Fatalf("promote exited %d: %s %s", code, out, errOut)
	}
	grpcurl := grpcurlPath(t)
	ids, err := bankRowIDs(file, 4)
	if err != nil {
		t.Fatal(err)
	}
	replies := map[string]string{}
	for _, args := range readmeGrpcurl(t) {
		for i, a := range args {
			a = strings.ReplaceAll(a, "127.0.0.1:7404", m.Addr("serving"))
			args[i] = strings.ReplaceAll(a, "bank-74adfc578bf77a7f-4", ids[0])
		}
		key := strings.Join(args[len(args)-1:], "")
		if i := slices.Index(args, "-d"); i >= 0 && strings.HasSuffix(key, "Health/Check") {
			key += " " + args[i+1]
		}
		replies[key] = runGrpcurl(t, grpcurl, args...)
	}
	if out := replies["list"]; !strings.Contains(out, "bullseye.serving.v1.PredictionService") {
		t.Errorf("grpcurl list = %q", out)
	}
	if out := replies["bullseye.serving.v1.PredictionService.Predict"]; !strings.Contains(out, "rpc Predict") {
		t.Errorf("grpcurl describe = %q", out)
	}
	if out := replies["bullseye.serving.v1.PredictionService/ListModels"]; !strings.Contains(out, `"name": "bank-response"`) {
		t.Errorf("grpcurl ListModels = %q, want bank-response listed", out)
	}
	if out := replies["inference.GRPCInferenceService/ModelMetadata"]; !strings.Contains(out, `"name": "bank-response"`) {
		t.Errorf("grpcurl ModelMetadata = %q", out)
	}
	for _, check := range []string{`{"service": ""}`, `{"service": "liveness"}`} {
		if out := replies["grpc.health.v1.Health/Check "+check]; !strings.Contains(out, "SERVING") {
			t.Errorf("grpcurl Health/Check %s = %q", check, out)
		}
	}
	out = replies["bullseye.serving.v1.PredictionService/Predict"]
	type number struct {
		Number float64 `json:"number"`
	}
	var reply struct {
		Predictions []struct {
			Status       string  `json:"status"`
			Score        float64 `json:"score"`
			Probability  float64 `json:"probability"`
			ModelVersion string  `json:"modelVersion"`
			Outputs      struct {
				Probability number `json:"probability"`
			} `json:"outputs"`
			Explanation struct {
				Contributions []struct {
					Feature string `json:"feature"`
					Value   struct {
						NumberValue float64 `json:"numberValue"`
					} `json:"value"`
				} `json:"contributions"`
			} `json:"explanation"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal([]byte(out), &reply); err != nil {
		t.Fatalf("grpcurl Predict printed %q: %v", out, err)
	}
	if len(reply.Predictions) != 2 {
		t.Fatalf("grpcurl Predict = %s, want two rows", out)
	}
	for r, p := range reply.Predictions {
		if p.Status != "PREDICTION_STATUS_OK" || p.Score == 0 || p.Probability <= 0 || p.ModelVersion != "1" || p.Outputs.Probability.Number != p.Probability {
			t.Errorf("grpcurl Predict row %d = %+v, want OK with a score and a probability (also in its outputs) from version 1", r, p)
		}
	}
	age := math.NaN()
	for _, c := range reply.Predictions[1].Explanation.Contributions {
		if c.Feature == "age" {
			age = c.Value.NumberValue
		}
	}
	if age != 41 || reply.Predictions[1].Score == reply.Predictions[0].Score {
		t.Errorf("grpcurl Predict with jsonFeatures: age %v in its contributions, score %v (the customer's own %v); want 41 and another score",
			age, reply.Predictions[1].Score, reply.Predictions[0].Score)
	}
}

// bankRowIDs returns the customer ids the Bank mapping generates for rows.
func bankRowIDs(file string, rows ...int) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	var ids []string
	for _, r := range rows {
		ids = append(ids, fmt.Sprintf("bank-%s-%d", digest[:16], r))
	}
	return ids, nil
}

// grpcurlPath finds the pinned grpcurl: $BULLSEYE_BIN or the repository's bin.
func grpcurlPath(t *testing.T) string {
	t.Helper()
	for _, d := range []string{os.Getenv("BULLSEYE_BIN"), filepath.Join(repoRoot(t), "bin")} {
		if d == "" {
			continue
		}
		if p := filepath.Join(d, "grpcurl"); fileExists(p) {
			return p
		}
	}
	t.Fatal("grpcurl not found in $BULLSEYE_BIN or bin/: run 'make tools'")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func runGrpcurl(t *testing.T, grpcurl string, args ...string) string {
	t.Helper()
	out, err := exec.Command(grpcurl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
	}
	return string(out)
}
