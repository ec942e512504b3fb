package deploy

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/feature"
	"github.com/bullseye-ml/bullseye/services/ingest"
	"github.com/bullseye-ml/bullseye/services/serving"
	"github.com/bullseye-ml/bullseye/services/training"
)

// flagsOf returns the flag set of the named service's binary, built by the
// service's own RegisterFlags, so the checks follow the code.
func flagsOf(t *testing.T, name string) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	switch name {
	case ingest.Name:
		c := ingest.NewConfig()
		c.RegisterFlags(fs)
	case feature.Name:
		c := feature.NewConfig()
		c.RegisterFlags(fs)
	case training.Name:
		c := training.NewConfig()
		c.RegisterFlags(fs)
	case serving.Name:
		c := serving.NewConfig()
		c.RegisterFlags(fs)
	default:
		t.Fatalf("no service named %q", name)
	}
	return fs
}

// serviceOfImage maps a project image or build target to its service name.
func serviceOfImage(s string) (string, bool) {
	for _, name := range []string{ingest.Name, feature.Name, training.Name, serving.Name} {
		if strings.Contains(s, "bullseye-"+name) {
			return name, true
		}
	}
	return "", false
}

// checkEnv reports environment variables a service binary would not accept:
// BULLSEYE_<FLAG> must name one of its flags; OTEL_* are OpenTelemetry's
// standard settings; POD_IP and the like are Kubernetes helpers, allowed.
func checkEnv(t *testing.T, where, svc string, env map[string]string) {
	t.Helper()
	fs := flagsOf(t, svc)
	for k := range env {
		switch {
		case strings.HasPrefix(k, "OTEL_"), k == "POD_IP", k == "POD_NAME":
		case strings.HasPrefix(k, service.EnvPrefix+"_"):
			if flagForEnv(fs, k) == nil {
				t.Errorf("%s: %s matches no flag of bullseye-%s", where, k, svc)
			}
		default:
			t.Errorf("%s: %s is neither a BULLSEYE_ flag nor an OpenTelemetry setting", where, k)
		}
	}
	// The values must parse too: set them on a fresh flag set.
	fs = flagsOf(t, svc)
	for k, v := range env {
		if f := flagForEnv(fs, k); f != nil && !strings.Contains(v, "$(") {
			if err := fs.Set(f.Name, v); err != nil {
				t.Errorf("%s: %s=%q: %v", where, k, v, err)
			}
		}
	}
}

func flagForEnv(fs *flag.FlagSet, env string) *flag.Flag {
	var found *flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if mesh.EnvName(service.EnvPrefix, f.Name) == env {
			found = f
		}
	})
	return found
}

// checkArgs reports command-line arguments a service binary would not
// accept, for the service itself or its health subcommand.
func checkArgs(t *testing.T, where, svc string, args []string) {
	t.Helper()
	fs := flagsOf(t, svc)
	if len(args) > 0 && args[0] == "health" {
		args = args[1:]
		fs.String("addr", "", "")
		fs.Duration("timeout", 0, "")
		fs.String("service", "", "")
	}
	if err := fs.Parse(args); err != nil {
		t.Errorf("%s: arguments %q: %v", where, args, err)
	} else if fs.NArg() > 0 {
		t.Errorf("%s: unexpected arguments %q", where, fs.Args())
	}
}
