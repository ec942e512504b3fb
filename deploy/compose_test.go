package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image   string            `json:"image"`
	Build   *composeBuild     `json:"build"`
	Command []string          `json:"command"`
	Env     map[string]string `json:"environment"`
	Volumes []string          `json:"volumes"`
	Health  *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
}

type composeBuild struct {
	Context    string            `json:"context"`
	Dockerfile string            `json:"dockerfile"`
	Args       map[string]string `json:"args"`
}

var versionTag = regexp.MustCompile(`:v?\d+(\.\d+)+(-[a-z0-9.]+)?$`)

// TestCompose checks docker-compose.yml: every build context and Dockerfile
// exists, every third-party image is pinned to a version tag, each project
// binary gets only flags and BULLSEYE_ settings it accepts, its health check
// runs its own health subcommand, and the tracing and metrics backends are
// there.
func TestCompose(t *testing.T) {
	cf := readCompose(t)
	for _, want := range []string{"etcd", "nats", "ingest", "feature", "training", "serving", "otel-collector", "jaeger", "prometheus"} {
		if _, ok := cf.Services[want]; !ok {
			t.Errorf("docker-compose.yml has no %s service", want)
		}
	}
	for name, s := range cf.Services {
		if s.Build == nil {
			if !versionTag.MatchString(s.Image) {
				t.Errorf("%s: image %q is not pinned to a version tag", name, s.Image)
			}
			continue
		}
		ctx := filepath.Join("..", s.Build.Context)
		if st, err := os.Stat(ctx); err != nil || !st.IsDir() {
			t.Errorf("%s: build context %s does not exist", name, s.Build.Context)
		}
		if _, err := os.Stat(filepath.Join(ctx, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: Dockerfile %s does not exist", name, s.Build.Dockerfile)
		}
		cmd := s.Build.Args["CMD"]
		if _, err := os.Stat(filepath.Join(ctx, cmd, "main.go")); err != nil {
			t.Errorf("%s: build argument CMD=%s is not a command of the project", name, cmd)
		}
		svc, ok := serviceOfImage(cmd)
		if !ok {
			t.Errorf("%s: CMD=%s is not a service binary", name, cmd)
			continue
		}
		checkEnv(t, name, svc, s.Env)
		checkArgs(t, name, svc, s.Command)
		if s.Health == nil || len(s.Health.Test) < 3 || s.Health.Test[0] != "CMD" || s.Health.Test[1] != "/bullseye" || s.Health.Test[2] != "health" {
			t.Errorf("%s: the health check must run the binary's health subcommand, got %v", name, s.Health)
		} else {
			checkArgs(t, name+" healthcheck", svc, s.Health.Test[2:])
		}
		if !strings.HasPrefix(s.Env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel-collector:") {
			t.Errorf("%s: traces are not sent to the collector", name)
		}
	}
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatalf("parsing docker-compose.yml: %v", err)
	}
	return cf
}

// TestComposeKeyReachesEveryServiceThatTakesIt checks that each service whose
// binary takes --hmac-key-file reads one, from a named volume (kept across
// restarts, unlike a path in the container) mounted read-only, and that all
// of them read the same file of the same volume.
func TestComposeKeyReachesEveryServiceThatTakesIt(t *testing.T) {
	cf := readCompose(t)
	sources := map[string]string{} // service -> "volume/file"
	for name, s := range cf.Services {
		if s.Build == nil {
			continue
		}
		svc, ok := serviceOfImage(s.Build.Args["CMD"])
		if !ok || flagsOf(t, svc).Lookup("hmac-key-file") == nil {
			continue
		}
		if _, ok := s.Env["BULLSEYE_DEV_HMAC_KEY"]; ok {
			t.Errorf("%s: generates a development key (BULLSEYE_DEV_HMAC_KEY) inside its container", name)
		}
		src, err := composeKeySource(cf, s)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		sources[svc] = src
	}
	for _, svc := range []string{"ingest", "feature"} {
		if _, ok := sources[svc]; !ok {
			t.Errorf("the %s service is given no HMAC key on a volume", svc)
		}
	}
	for svc, src := range sources {
		if src != sources["ingest"] {
			t.Errorf("the %s service reads its HMAC key from %s, ingest from %s", svc, src, sources["ingest"])
		}
	}
}

// composeKeySource returns "volume/file" for the file that a service's
// BULLSEYE_HMAC_KEY_FILE names, or why it is not on a named volume mounted
// read-only.
func composeKeySource(cf composeFile, s composeService) (string, error) {
	path := s.Env["BULLSEYE_HMAC_KEY_FILE"]
	if path == "" {
		return "", fmt.Errorf("BULLSEYE_HMAC_KEY_FILE is not set")
	}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			continue
		}
		rel, err := filepath.Rel(parts[1], path)
		if err != nil || strings.HasPrefix(rel, "..") || rel == "." {
			continue
		}
		if _, named := cf.Volumes[parts[0]]; !named {
			return "", fmt.Errorf("%s is on %s, which is not a named volume", path, parts[0])
		}
		if len(parts) < 3 || parts[2] != "ro" {
			return "", fmt.Errorf("%s is on volume %s mounted writable", path, parts[0])
		}
		return parts[0] + "/" + rel, nil
	}
	return "", fmt.Errorf("%s is on no volume", path)
}
