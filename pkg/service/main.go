package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// EnvPrefix is the prefix of the environment variables that set flags:
// --nats-url can be given as BULLSEYE_NATS_URL.
const EnvPrefix = "BULLSEYE"

// Command describes one service binary for Main.
type Command struct {
	// Name is the service's name ("ingest", "feature", ...).
	Name string
	// Flags registers the service's flags (shared ones included) on fs.
	Flags func(fs *flag.FlagSet)
	// Server returns the server settings after flags are parsed; the
	// health subcommand uses its address and TLS settings.
	Server func() *mesh.ServerConfig
	// Run runs the service until ctx is cancelled.
	Run func(ctx context.Context) error
}

// ProgramName is the name of the named service's binary, bullseye-<service>:
// what it calls itself in messages and in --version, and the service.name
// of its traces.
func ProgramName(service string) string { return "bullseye-" + service }

// Main is the entry point of a service binary. With no subcommand it runs
// the service until SIGINT or SIGTERM; `health` checks a running instance
// and exits 0 only when it is SERVING (a container health check);
// `--version` prints Version on stdout. It returns the process exit code.
func Main(cmd Command, args []string, stdout, stderr io.Writer) int {
	program := ProgramName(cmd.Name)
	if len(args) > 0 && args[0] == "health" {
		return health(cmd, args[1:], stderr)
	}
	if VersionRequested(args) {
		fmt.Fprint(stdout, Version(program))
		return 0
	}
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmd.Flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %[1]s [flags]\n       %[1]s health [--addr host:port] [flags]\n       %[1]s --version\n\nEvery flag can also be set as %[2]s_<FLAG> in the environment.\n\nFlags:\n", program, EnvPrefix)
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdownTelemetry, err := mesh.SetupTelemetry(ctx, program)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return 1
	}
	runErr := cmd.Run(ctx)
	tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdownTelemetry(tctx); err != nil {
		fmt.Fprintf(stderr, "%s: flushing telemetry: %v\n", program, err)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		fmt.Fprintf(stderr, "%s: %v\n", program, runErr)
		return 1
	}
	return 0
}

// VersionRequested reports whether a command line asks for the version:
// its only argument is --version (or -version). It is not a flag of the
// flag set, so that no BULLSEYE_VERSION in the environment turns it on.
func VersionRequested(args []string) bool {
	return len(args) == 1 && (args[0] == "--version" || args[0] == "-version")
}

// Version describes the running binary for --version, from the build
// information Go records in it (runtime/debug.ReadBuildInfo): the
// program's name and its main module's version, the version control
// revision it was built from and whether the work tree had changes then,
// and the Go version that built it. Every Bullseye binary prints this.
func Version(program string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return program + " (no build information)\n"
	}
	return formatVersion(program, info)
}

func formatVersion(program string, info *debug.BuildInfo) string {
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	revision, modified := "unknown (built without version control information)", "unknown"
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", program, version)
	fmt.Fprintf(&b, "  revision  %s\n", revision)
	fmt.Fprintf(&b, "  modified  %s\n", modified)
	fmt.Fprintf(&b, "  go        %s\n", info.GoVersion)
	return b.String()
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errors.New("unexpected argument")
	}
	if err := mesh.ApplyEnv(fs, EnvPrefix); err != nil {
		fmt.Fprintln(fs.Output(), err)
		return err
	}
	return nil
}

func health(cmd Command, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bullseye-"+cmd.Name+" health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmd.Flags(fs)
	addr := fs.String("addr", "", "address to check (default: the --advertise or --listen address)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	name := fs.String("service", "", `health service name to check: "" is readiness, "liveness" is liveness`)
	if err := parse(fs, args); err != nil {
		return 2
	}
	sc := cmd.Server()
	target := *addr
	if target == "" {
		target = sc.AdvertiseAddr
	}
	if target == "" {
		target = sc.ListenAddr
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := mesh.CheckHealth(ctx, target, *name, sc.TLS.ForService(cmd.Name)); err != nil {
		fmt.Fprintf(stderr, "bullseye-%s at %s: %v\n", cmd.Name, target, err)
		return 1
	}
	fmt.Fprintf(stderr, "bullseye-%s at %s: SERVING\n", cmd.Name, target)
	return 0
}
