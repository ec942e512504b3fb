package datasets

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a T that records a failure instead of ending the test.
type recorder struct{ failed string }

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

func require(name string) (path, failed string) {
	r := &recorder{}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		failed = r.failed
	}()
	return Require(r, name), ""
}

func TestRequire(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bank.csv"), []byte("a;b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvDir, dir)
	if path, failed := require("bank.csv"); failed != "" || path != filepath.Join(dir, "bank.csv") {
		t.Errorf("present file: path %q, failure %q", path, failed)
	}
	if _, failed := require("cdnow.txt"); !strings.Contains(failed, "cdnow.txt") || !strings.Contains(failed, EnvDir) {
		t.Errorf("absent file: failure %q, want one naming the file and %s", failed, EnvDir)
	}
	t.Setenv(EnvDir, filepath.Join(dir, "nowhere"))
	if _, failed := require("bank.csv"); !strings.Contains(failed, "nowhere") {
		t.Errorf("absent folder: failure %q, want one naming it", failed)
	}
}

func TestDirFindsTheSharedFolder(t *testing.T) {
	t.Setenv(EnvDir, "")
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(dir, filepath.Join("shared", "data")) {
		t.Errorf("Dir() = %s, want ../shared/data beside the repository", dir)
	}
}
