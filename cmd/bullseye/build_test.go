package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeBuildInstallsGrpcurl runs `make build` into an empty bin folder
// (building only the CLI, for time): grpcurl is installed there at the
// version pinned in scripts/tools.sh; a second run leaves it as it is.
func TestMakeBuildInstallsGrpcurl(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Fatalf("the build is made with make: %v", err)
	}
	root := repoRoot(t)
	tools, err := os.ReadFile(filepath.Join(root, "scripts", "tools.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var pinned string
	for _, l := range strings.Split(string(tools), "\n") {
		if f := strings.Fields(strings.Trim(strings.TrimSpace(l), `"`)); len(f) == 2 && f[0] == "grpcurl" {
			pinned = f[1]
		}
	}
	if pinned == "" {
		t.Fatal("scripts/tools.sh pins no grpcurl")
	}
	bin := t.TempDir()
	build := func() string {
		t.Helper()
		out, err := exec.Command(mk, "-C", root, "build", "BIN="+bin, "COMMANDS=cmd/bullseye").CombinedOutput()
		if err != nil {
			t.Fatalf("make build: %v\n%s", err, out)
		}
		return string(out)
	}
	out := build()
	if _, err := os.Stat(filepath.Join(bin, "bullseye")); err != nil {
		t.Fatalf("make build built no bullseye: %v\n%s", err, out)
	}
	grpcurl := filepath.Join(bin, "grpcurl")
	if err := exec.Command(grpcurl, "-version").Run(); err != nil {
		t.Fatalf("make build installed no working grpcurl in its bin folder: %v\n%s", err, out)
	}
	if stamp, _ := os.ReadFile(filepath.Join(bin, ".grpcurl.version")); strings.TrimSpace(string(stamp)) != pinned {
		t.Errorf("grpcurl installed as %q, want the pinned %s", stamp, pinned)
	}
	before, err := os.Stat(grpcurl)
	if err != nil {
		t.Fatal(err)
	}
	out = build()
	after, err := os.Stat(grpcurl)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "tools: installing") || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("a second make build installed grpcurl again:\n%s", out)
	}
}
