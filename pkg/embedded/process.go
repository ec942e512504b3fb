package embedded

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// natsChildEnv marks a process started by StartNATSProcess.
const natsChildEnv = "BULLSEYE_BENCH_NATS_DIR"

// ServeNATSIfChild runs an embedded NATS server and never returns when the
// process was started by StartNATSProcess; otherwise it returns at once.
// Benchmark programs call it first in main, so that NATS runs in a process
// of its own, as in production, not sharing the Go heap (and its garbage
// collector) with the service under test.
func ServeNATSIfChild() {
	dir := os.Getenv(natsChildEnv)
	if dir == "" {
		return
	}
	srv, err := StartNATS(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench NATS:", err)
		os.Exit(1)
	}
	fmt.Println(srv.URL())
	// Serve until the parent closes stdin (or dies).
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Shutdown()
	os.Exit(0)
}

// StartNATSProcess starts this program again as a NATS server (see
// ServeNATSIfChild) with its files in dir, and returns its URL and a
// function that stops it.
func StartNATSProcess(dir string) (url string, stop func(), err error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), natsChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("starting the NATS process: %w", err)
	}
	return strings.TrimSpace(line), stop, nil
}
