package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/dev"
	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...)
}

// startMesh runs a development mesh for one test.
func startMesh(t *testing.T) *dev.Mesh {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := dev.Start(ctx, dev.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// bullseye runs one client command against the mesh, found through etcd.
func bullseye(t *testing.T, m *dev.Mesh, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	c, ok := Find(args[0])
	if !ok {
		t.Fatalf("no command %q", args[0])
	}
	var out, errOut bytes.Buffer
	rest := append([]string{"--etcd", strings.Join(m.EtcdEndpoints, ",")}, args[1:]...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = Main(ctx, c, rest, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestFeatureSetApplyAndList(t *testing.T) {
	m := startMesh(t)
	code, out, errOut := bullseye(t, m, "featureset", "apply", "testdata/rfm.yaml")
	if code != 0 {
		t.Fatalf("apply exited %d: %s", code, errOut)
	}
	if !strings.Contains(out, "feature set purchases applied version 1") {
		t.Errorf("apply printed %q, want the new version", out)
	}
	code, out, _ = bullseye(t, m, "featureset", "apply", "testdata/rfm.yaml")
	if code != 0 || !strings.Contains(out, "unchanged") {
		t.Errorf("applying the same definition again: exit %d, %q; want unchanged", code, out)
	}
	code, out, errOut = bullseye(t, m, "featureset", "--output", "json", "list")
	if code != 0 {
		t.Fatalf("list exited %d: %s", code, errOut)
	}
	var listed struct {
		FeatureSets []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"featureSets"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("--output json printed %q: %v", out, err)
	}
	if len(listed.FeatureSets) != 1 || listed.FeatureSets[0].Name != "purchases" || listed.FeatureSets[0].Version != "1" {
		t.Errorf("list = %+v, want purchases version 1", listed.FeatureSets)
	}
}

// TestErrorsNameWhatToFix checks the messages people see when they get
// something wrong: each names the flag, field or step to fix.
func TestErrorsNameWhatToFix(t *testing.T) {
	m := startMesh(t)
	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"unknown field in YAML", []string{"featureset", "apply", "testdata/bad-field.yaml"}, 1, `testdata/bad-field.yaml:2:1: unknown field "featurez" of bullseye.feature.v1.FeatureSet; did you mean "features"?`},
		{"missing file", []string{"featureset", "apply", "testdata/nope.yaml"}, 1, "nope.yaml"},
		{"missing mapping", []string{"import", "testdata/rfm.yaml"}, 2, "--mapping is required"},
		{"bad output", []string{"models", "--output", "xml", "list"}, 2, `--output "xml"`},
		{"bad split", []string{"promote", "m", "--split", "3:90"}, 2, "VERSION=WEIGHT"},
		{"nothing to promote", []string{"promote", "m"}, 2, "say what to promote"},
		{"invalid feature set", []string{"featureset", "apply", "testdata/invalid.yaml"}, 1, "window"},
		{"import without a name", []string{"models", "import", "--mapping", "testdata/bank-xgboost-mapping.json", "testdata/rfm.yaml"}, 2, "import needs --name"},
		{"import without a mapping", []string{"models", "import", "--name", "m", "testdata/rfm.yaml"}, 2, "import needs --mapping"},
		{"import of an unknown format", []string{"models", "import", "--name", "m", "--format", "onnx", "--mapping", "testdata/bank-xgboost-mapping.json", "testdata/rfm.yaml"},
			2, `--format "onnx"`},
		{"import of an unknown task", []string{"models", "import", "--name", "m", "--task", "ranking", "--mapping", "testdata/bank-xgboost-mapping.json", "testdata/rfm.yaml"},
			2, `--task "ranking"`},
		{"import with a mistake in the mapping", []string{"models", "import", "--name", "m", "--mapping", "testdata/bad-import-mapping.yaml", "testdata/rfm.yaml"},
			1, `testdata/bad-import-mapping.yaml:3:5: features[0]: unknown field "modelFeatur" of bullseye.model.v1.FeatureMapping; did you mean "modelFeature"?`},
		{"import from an unknown feature set", []string{"models", "import", "--name", "m", "--mapping", "testdata/bank-xgboost-mapping.json", "testdata/rfm.yaml"},
			1, `NotFound: reading feature set "bank-marketing"`},
		{"import with a feature set as the mapping", []string{"models", "import", "--name", "m", "--mapping", "testdata/rfm.yaml", "testdata/rfm.yaml"},
			1, "reading the mapping"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := bullseye(t, m, tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.wantCode, tc.want)
			}
		})
	}
}

// TestNoMesh checks that without a running mesh the client says so and
// what to do, promptly.
func TestNoMesh(t *testing.T) {
	c, _ := Find("models")
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	code := Main(ctx, c, []string{"--etcd", "http://127.0.0.1:1", "list"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "--etcd") {
		t.Errorf("exit %d, stderr %q; want 1 and a hint to set --etcd", code, errOut.String())
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v to give up", d)
	}
}
