package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// dataFile returns a file of the shared data sets: $BULLSEYE_DATA_DIR, by
// default ../shared/data beside the repository. Only when that folder is
// absent does the test skip, saying so.
func dataFile(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("BULLSEYE_DATA_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "..", "shared", "data")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SKIP: the shared data folder %s is absent (set BULLSEYE_DATA_DIR)", dir)
	}
	return filepath.Join(dir, name)
}

// TestBankThroughTheMesh runs the Bank Marketing path end to end with the
// CLI against a real mesh: import through ingest, the feature set, training
// sets split by import row number, training jobs, the registry. Logistic
// regression (C = 1) must reach scikit-learn's test ROC-AUC within 0.003,
// with and without duration, and so must the linear SVM
// (../shared/data/README.md).
func TestBankThroughTheMesh(t *testing.T) {
	file := dataFile(t, "bank-additional-full.csv")
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
}
