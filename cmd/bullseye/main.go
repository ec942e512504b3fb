// Command bullseye is Bullseye's command-line tool. `bullseye dev` runs the
// whole mesh on one machine.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/dev"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage: bullseye <command> [flags]

Commands:
  dev     run etcd, NATS with JetStream and the four services on this machine

Run 'bullseye <command> -h' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "dev":
		return dev.Command(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "bullseye: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
