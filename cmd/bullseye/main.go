// Command bullseye is Bullseye's command-line tool: `bullseye dev` runs the
// whole mesh on one machine, and the other commands are its client (import,
// feature sets, training, models, promotion, predictions, erasure).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/cli"
	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/demo"
	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/dev"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage() string {
	var b strings.Builder
	b.WriteString("Usage: bullseye <command> [flags]\n       bullseye --version\n\nCommands:\n")
	fmt.Fprintf(&b, "  %-11s %s\n", "dev", "run etcd, NATS with JetStream and the four services on this machine")
	fmt.Fprintf(&b, "  %-11s %s\n", "demo", "run the end-to-end demonstration on a fresh mesh")
	for _, c := range cli.Commands {
		summary, _, _ := strings.Cut(c.Summary, ". ")
		fmt.Fprintf(&b, "  %-11s %s\n", c.Name, strings.TrimSuffix(summary, "."))
	}
	fmt.Fprintf(&b, "\nThe client commands find the mesh through etcd (--etcd or $%s, default\n127.0.0.1:2379) or take a direct --addr; --output json prints protobuf JSON for\nscripts. Run 'bullseye <command> -h' for a command's flags.\n", mesh.EnvName(service.EnvPrefix, "etcd"))
	return b.String()
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	if service.VersionRequested(args) {
		fmt.Fprint(stdout, service.Version("bullseye"))
		return 0
	}
	switch args[0] {
	case "dev":
		return dev.Command(args[1:], stdout, stderr)
	case "demo":
		return demo.Command(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return 0
	}
	c, ok := cli.Find(args[0])
	if !ok {
		fmt.Fprintf(stderr, "bullseye: unknown command %q\n\n%s", args[0], usage())
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return cli.Main(ctx, c, args[1:], stdout, stderr)
}
