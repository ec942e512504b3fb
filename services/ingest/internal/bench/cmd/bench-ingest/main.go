// Command bench-ingest prints ingest's sustained events per second through
// Track beside the rate of publishing the same events straight to
// JetStream, measured in the same run (see package bench). It runs on
// loopback only. NATS (embedded, files in a temporary directory) runs in a
// process of its own, as in production, so that it does not share the
// service's heap and garbage collector; -in-process-nats puts it in this
// process instead.
//
//	go run ./internal/bench/cmd/bench-ingest [-runs 5] [-duration 3s] [-batch 500] [-concurrency 4]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/bench"
)

func main() {
	embedded.ServeNATSIfChild()
	o := bench.DefaultOptions()
	flag.IntVar(&o.Runs, "runs", o.Runs, "measurements of each path (the medians are reported)")
	flag.DurationVar(&o.Duration, "duration", o.Duration, "length of each measurement")
	flag.DurationVar(&o.Warmup, "warmup", o.Warmup, "warm-up before each measurement")
	flag.IntVar(&o.Batch, "batch", o.Batch, "events per batch")
	flag.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "batches in flight at once, on both paths")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	inProcess := flag.Bool("in-process-nats", false, "embed NATS in this process (sharing its heap) instead of running it in a process of its own")
	flag.StringVar(&o.NATSURL, "nats-url", "", "use this NATS server (JetStream enabled) instead of starting one")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up after this long")
	flag.Parse()
	watchdog := time.AfterFunc(*timeout, func() {
		fmt.Fprintf(os.Stderr, "bench-ingest: gave up after %s\n", *timeout)
		os.Exit(1)
	})
	defer watchdog.Stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-ingest:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench-ingest:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	natsDesc := o.NATSURL
	if o.NATSURL == "" && !*inProcess {
		dir, err := os.MkdirTemp("", "bench-ingest-nats-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-ingest:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		url, stopNATS, err := embedded.StartNATSProcess(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-ingest:", err)
			os.Exit(1)
		}
		defer stopNATS()
		o.NATSURL, natsDesc = url, "embedded NATS in its own process at "+url
	}
	if natsDesc == "" {
		natsDesc = "embedded NATS in this process"
	}
	fmt.Printf("bench-ingest: %d runs of %s per path, batches of %d, %d in flight, GOMAXPROCS %d, %s\n",
		o.Runs, o.Duration, o.Batch, o.Concurrency, runtime.GOMAXPROCS(0), natsDesc)
	start := time.Now()
	res, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-ingest:", err)
		os.Exit(1) //nolint:gocritic // the profile is worthless then
	}
	row := func(name string, rates []float64) {
		var s []string
		for _, r := range rates {
			s = append(s, fmt.Sprintf("%.0f", r))
		}
		fmt.Printf("%-36s median %8.0f events/s   runs: %s\n", name, bench.Median(rates), strings.Join(s, " "))
	}
	row("raw JetStream (async, acks awaited)", res.Raw)
	row("Track over gRPC (durable acks)", res.Track)
	verdict := "meets"
	if res.Ratio() < 0.5 {
		verdict = "MISSES"
	}
	fmt.Printf("Track / raw = %.2f (%s the target of 0.50); took %s\n", res.Ratio(), verdict, time.Since(start).Round(time.Second))
}
