// Package datasets finds the shared data sets (Bank Marketing, CDNOW) that
// the acceptance tests and benchmarks run on: in $BULLSEYE_DATA_DIR, or in
// ../shared/data beside the repository's root.
package datasets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvDir names the environment variable that overrides the folder.
const EnvDir = "BULLSEYE_DATA_DIR"

// Dir returns the folder of the data sets: $BULLSEYE_DATA_DIR, or
// ../shared/data beside the folder holding go.work, found from the working
// directory upwards. It does not check that the folder exists.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locating the data sets: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, "..", "shared", "data"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("locating the data sets: no go.work above the working directory; set " + EnvDir)
		}
		dir = parent
	}
}

// T is what Require needs of a test or benchmark; testing.TB has it.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Require returns the path of the data set file name, failing t, with how
// to fix it, when the file is absent: the tests on real data must run, not
// quietly pass.
func Require(t T, name string) string {
	t.Helper()
	path := filepath.Join(RequireDir(t), name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("data set %s: %v (set %s to the folder holding it)", name, err, EnvDir)
	}
	return path
}

// RequireDir returns the folder of the data sets, failing t when it is
// absent.
func RequireDir(t T) string {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the shared data sets: %v (set %s to the folder holding them)", err, EnvDir)
	}
	return dir
}
