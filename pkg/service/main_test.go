package service

import (
	"bytes"
	"context"
	"flag"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// TestMainVersion checks that --version (or -version) prints the version on
// stdout and exits 0 without parsing the service's flags or running it.
func TestMainVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version"} {
		cmd := Command{
			Name:   "probe",
			Flags:  func(*flag.FlagSet) { t.Errorf("%s: the flags were registered", arg) },
			Server: func() *mesh.ServerConfig { return nil },
			Run: func(context.Context) error {
				t.Errorf("%s: the service ran", arg)
				return nil
			},
		}
		var stdout, stderr bytes.Buffer
		if code := Main(cmd, []string{arg}, &stdout, &stderr); code != 0 {
			t.Errorf("Main(%s) = %d, want 0; stderr %q", arg, code, stderr.String())
		}
		out := stdout.String()
		if !strings.HasPrefix(out, "bullseye-probe ") || !strings.Contains(out, "  go        "+runtime.Version()+"\n") {
			t.Errorf("Main(%s) printed %q, want the program's name and the Go version", arg, out)
		}
		if stderr.Len() != 0 {
			t.Errorf("Main(%s) wrote %q on stderr", arg, stderr.String())
		}
	}
}

// TestFormatVersion checks what --version prints from a binary's build
// information, with and without version control information.
func TestFormatVersion(t *testing.T) {
	info := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/bullseye-ml/bullseye/services/ingest", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "e88a8d20c76cdeb7a6d478681c7a0034f63323f8"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	want := "bullseye-ingest v1.2.3\n" +
		"  revision  e88a8d20c76cdeb7a6d478681c7a0034f63323f8\n" +
		"  modified  true\n" +
		"  go        go1.26.0\n"
	if got := formatVersion("bullseye-ingest", info); got != want {
		t.Errorf("with VCS information:\n%s\nwant\n%s", got, want)
	}
	bare := &debug.BuildInfo{GoVersion: "go1.26.0"}
	want = "bullseye-ingest (devel)\n" +
		"  revision  unknown (built without version control information)\n" +
		"  modified  unknown\n" +
		"  go        go1.26.0\n"
	if got := formatVersion("bullseye-ingest", bare); got != want {
		t.Errorf("without VCS information:\n%s\nwant\n%s", got, want)
	}
}
