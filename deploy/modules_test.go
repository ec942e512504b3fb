package deploy

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repository is the import path of the repository's root; its modules sit below it.
const repository = "github.com/bullseye-ml/bullseye"

// services returns the names of the service modules (../services/<name>/go.mod).
func services(t *testing.T) []string {
	t.Helper()
	mods, err := filepath.Glob("../services/*/go.mod")
	if err != nil || len(mods) == 0 {
		t.Fatalf("no service modules under ../services (%v)", err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, filepath.Base(filepath.Dir(m)))
	}
	return names
}

// goCmd runs the go command in dir and returns its standard output.
func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr)
	}
	return string(out)
}

// inModule reports whether package path p belongs to module mod (nested modules aside).
func inModule(p, mod string) bool { return p == mod || strings.HasPrefix(p, mod+"/") }

// serviceOf returns the service module that package path p belongs to, or "" when p is not
// a service's. A test binary ("…/services/x.test") and an external test package
// ("…/services/x_test") belong to their service.
func serviceOf(p string) string {
	rest, ok := strings.CutPrefix(p, repository+"/services/")
	if !ok {
		return ""
	}
	name := strings.SplitN(rest, "/", 2)[0]
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".test"), "_test")
	return repository + "/services/" + name
}

// TestServicesImportNoOtherService checks the services' layering (DESIGN: services never
// import services, tests included): the packages of each service module and of its tests
// import no package of another service module, and its go.mod requires none. A service
// reaches another only over gRPC; a test that needs another service runs its binary.
func TestServicesImportNoOtherService(t *testing.T) {
	for _, svc := range services(t) {
		t.Run(svc, func(t *testing.T) {
			dir := filepath.Join("..", "services", svc)
			own := repository + "/services/" + svc
			// Test variants are named "p [q.test]"; the tab and commas keep the fields apart.
			out := goCmd(t, dir, "list", "-deps", "-test", "-f", `{{.ImportPath}}{{"\t"}}{{join .Imports ","}}`, "./...")
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				importer, imports, _ := strings.Cut(line, "\t")
				for _, imp := range strings.Split(imports, ",") {
					imp, _, _ = strings.Cut(imp, " [")
					if mod := serviceOf(imp); mod != "" && mod != own && mod != serviceOf(importer) {
						t.Errorf("%s imports %s, of module %s", importer, imp, mod)
					}
				}
			}
			var mod struct {
				Require []struct{ Path string }
				Replace []struct{ Old struct{ Path string } }
			}
			if err := json.Unmarshal([]byte(goCmd(t, dir, "mod", "edit", "-json")), &mod); err != nil {
				t.Fatalf("go mod edit -json: %v", err)
			}
			for _, r := range mod.Require {
				if mod := serviceOf(r.Path); mod != "" && mod != own {
					t.Errorf("go.mod requires %s", r.Path)
				}
			}
			for _, r := range mod.Replace {
				if mod := serviceOf(r.Old.Path); mod != "" && mod != own {
					t.Errorf("go.mod replaces %s", r.Old.Path)
				}
			}
		})
	}
}

// TestBinariesLeaveTestSupportOut checks that no production binary (bullseye and each
// service's bullseye-<service>) links test support: goleak, or a package of the repository
// that exists for tests (a name ending in "test", such as pkg/embedded/embeddedtest).
func TestBinariesLeaveTestSupportOut(t *testing.T) {
	mains := []string{"./cmd/bullseye"}
	for _, svc := range services(t) {
		mains = append(mains, "./services/"+svc+"/cmd/bullseye-"+svc)
	}
	out := goCmd(t, "..", append([]string{"list", "-f", `{{.ImportPath}}{{"\t"}}{{join .Deps ","}}`}, mains...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(mains) {
		t.Fatalf("go list named %d packages, want the %d binaries %v", len(lines), len(mains), mains)
	}
	for _, line := range lines {
		bin, deps, _ := strings.Cut(line, "\t")
		for _, d := range strings.Split(deps, ",") {
			if inModule(d, "go.uber.org/goleak") || (inModule(d, repository) && strings.HasSuffix(d, "test")) {
				t.Errorf("binary %s links %s", bin, d)
			}
		}
		if !slices.ContainsFunc(strings.Split(deps, ","), func(d string) bool { return inModule(d, repository+"/pkg") }) {
			t.Errorf("binary %s links no package of %s/pkg: the dependency list is not what this test reads", bin, repository)
		}
	}
}
