package dev

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

// Command runs `bullseye dev`: it starts the mesh, prints each service's
// name and addresses and the environment variable that points the client
// commands at the mesh, and runs until SIGINT or SIGTERM, then shuts
// everything down cleanly. It returns the process exit code.
func Command(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bullseye dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := Options{}
	var etcd string
	var verbose bool
	fs.StringVar(&opts.DataDir, "data-dir", ".data/dev", "directory for etcd's and NATS's data, kept across restarts")
	fs.StringVar(&opts.Host, "host", "127.0.0.1", "address every server listens on and advertises")
	fs.IntVar(&opts.PortBase, "port-base", 7400, "services listen on port-base+1..4 (metrics on port-base+1001..1004) and etcd/NATS on 2379/4222; 0 picks free ports")
	fs.StringVar(&etcd, "etcd", "", "comma-separated endpoints of an external etcd to use instead of the embedded one")
	fs.StringVar(&opts.NATSURL, "nats", "", "URL of an external NATS server (JetStream enabled) to use instead of the embedded one")
	fs.DurationVar(&opts.LeaseTTL, "lease-ttl", 0, "discovery lease of each service (default 10s)")
	fs.BoolVar(&verbose, "v", false, "print the services' logs")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: bullseye dev [flags]\n\nRuns etcd, NATS with JetStream and the four Bullseye services on this machine.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := mesh.ApplyEnv(fs, "BULLSEYE_DEV"); err != nil {
		fmt.Fprintln(stderr, "bullseye dev:", err)
		return 2
	}
	for _, e := range strings.Split(etcd, ",") {
		if e = strings.TrimSpace(e); e != "" {
			opts.EtcdEndpoints = append(opts.EtcdEndpoints, e)
		}
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "bullseye dev:", err)
		return 1
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = m.WaitServing(wctx)
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "bullseye dev:", err)
		m.Close()
		return 1
	}
	fmt.Fprint(stdout, m.Describe())
	// The client commands read --etcd from the environment (cli.Main).
	fmt.Fprintf(stdout, "# for the bullseye client in another shell:\nexport %s=%s\n", mesh.EnvName(service.EnvPrefix, "etcd"), strings.Join(m.EtcdEndpoints, ","))
	fmt.Fprintln(stdout, "mesh ready; Ctrl-C stops it")
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	if err := m.Close(); err != nil {
		fmt.Fprintln(stderr, "bullseye dev:", err)
		return 1
	}
	fmt.Fprintln(stdout, "stopped")
	return 0
}
