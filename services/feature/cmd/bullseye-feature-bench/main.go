// Command bullseye-feature-bench measures the feature service on this
// machine, over gRPC on loopback, against embedded etcd and a NATS server in
// a process of its own:
//
//   - ingest's Track rate and materialisation throughput in the same run:
//     a backlog of customers' events is sent through a real bullseye-ingest
//     process (Track, batches of 500, 4 in flight), then a fresh feature
//     service applies it to profiles (events per second); then more events
//     are tracked while the feature service runs, and the time it needs to
//     catch up after the last Track is acknowledged tells whether it keeps
//     up;
//   - GetOnlineFeatures latency (p50, p99) and call rate for batches of 1
//     and 64 entities of 20 features at concurrency 1 and 16, in both reply
//     layouts, closed loop (each caller calls again as soon as it has its
//     answer: the service's peak rate);
//   - p50 and p99 for 64 entities from 16 callers at a stated load (a fixed
//     rate, or a fraction of the peak rate measured just before), calls
//     started on a fixed schedule and timed from their scheduled start (so
//     a call that waits for a free caller counts the wait).
//
// The services run in processes of their own, with their default settings;
// this process is only the load generator.
//
// Each run starts from nothing; the tables show the median of the runs.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/services/feature"
	"github.com/bullseye-ml/bullseye/services/feature/internal/benchset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/materialize"
)

type options struct {
	runs        int
	customers   int
	perCust     int
	livePer     int
	phase       time.Duration
	statedPhase time.Duration
	ingestBin   string
	featureBin  string
	inProcess   bool
	cpuProfile  string // the latency phases
	matProfile  string // materialisation of the backlog
	memProfile  string // the heap after the latency phases
	// featureProfile is a CPU profile of the feature process (in its own
	// process) during the latency phase named profilePhase.
	featureProfile, profilePhase string
}

func main() {
	embedded.ServeNATSIfChild()
	var o options
	flag.IntVar(&o.runs, "runs", 5, "independent runs; the tables show medians")
	flag.IntVar(&o.customers, "customers", 10000, "customers in the backlog")
	flag.IntVar(&o.perCust, "events", 20, "records per customer in the backlog (one trait update, the rest events)")
	flag.IntVar(&o.livePer, "live-events", 10, "events per customer tracked while the feature service runs")
	flag.DurationVar(&o.phase, "phase", 2*time.Second, "how long each closed-loop latency measurement lasts")
	flag.DurationVar(&o.statedPhase, "stated-phase", 6*time.Second, "how long each latency measurement at a stated load lasts (its p99 needs more calls)")
	flag.StringVar(&o.ingestBin, "ingest", "", "the bullseye-ingest binary (default: built from this workspace)")
	flag.StringVar(&o.featureBin, "feature", "", "the bullseye-feature binary (default: built from this workspace)")
	flag.BoolVar(&o.inProcess, "in-process", false, "run the feature service in this process (for -cpuprofile and -matprofile) instead of its own")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the latency phases to this file")
	flag.StringVar(&o.matProfile, "matprofile", "", "write a CPU profile of materialising the backlog to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile (live objects after the latency phases, and every allocation) to this file")
	flag.StringVar(&o.featureProfile, "feature-cpuprofile", "", "write a CPU profile of the bullseye-feature process during -profile-phase (first run) to this file")
	flag.StringVar(&o.profilePhase, "profile-phase", "64 entities, concurrency 16, columns", "the latency phase -feature-cpuprofile profiles")
	flag.Parse()
	// This process is the load generator: with its small heap the default
	// GOGC collects every few milliseconds, and its pauses would be timed as
	// the service's latency. The services keep the default.
	debug.SetGCPercent(800)
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bullseye-feature-bench:", err)
		os.Exit(1)
	}
}

// result is one run's figures.
type result struct {
	trackRate, applyRate float64
	applyingRate         float64 // from the first consumer seen
	liveTrackRate        float64
	catchUp              time.Duration               // after the last live Track ack
	fresh                [2]time.Duration            // p50 and max from a Track ack to the value online, at light load
	lat                  map[string][2]time.Duration // p50, p99 by phase
	calls                map[string]float64          // calls per second by phase
	cpu                  map[string]time.Duration    // the feature process's CPU per call by phase
	clientCPU            map[string]time.Duration    // this process's (the callers') CPU per call by phase
}

type phase struct {
	name        string
	batch, conc int
	layout      featurev1.OnlineLayout
	// rate, when not 0, paces the calls at this many per second; load, when
	// not 0, at this fraction of the closed-loop rate of the phase named
	// peak.
	rate float64
	load float64
	peak string
}

const (
	rows    = featurev1.OnlineLayout_ONLINE_LAYOUT_ROWS
	columns = featurev1.OnlineLayout_ONLINE_LAYOUT_COLUMNS
)

var phases = func() []phase {
	var ps []phase
	for _, l := range []featurev1.OnlineLayout{rows, columns} {
		for _, bc := range [][2]int{{1, 1}, {1, 16}, {64, 1}, {64, 16}} {
			ps = append(ps, phase{name: fmt.Sprintf("%d %s, concurrency %d, %s", bc[0], plural(bc[0], "entity", "entities"), bc[1], layoutName(l)), batch: bc[0], conc: bc[1], layout: l})
		}
	}
	for _, x := range []struct {
		l    featurev1.OnlineLayout
		rate float64
	}{{rows, 1000}, {columns, 1000}, {columns, 2000}} {
		ps = append(ps, phase{name: fmt.Sprintf("64 entities, 16 callers, %s, %.0f calls/s", layoutName(x.l), x.rate), batch: 64, conc: 16, layout: x.l, rate: x.rate})
	}
	for _, x := range []struct {
		l    featurev1.OnlineLayout
		load float64
	}{{rows, 0.5}, {columns, 0.25}, {columns, 0.5}} {
		peak := "64 entities, concurrency 16, " + layoutName(x.l)
		ps = append(ps, phase{name: fmt.Sprintf("64 entities, 16 callers, %s, %.0f%% of its peak", layoutName(x.l), 100*x.load), batch: 64, conc: 16, layout: x.l, load: x.load, peak: peak})
	}
	return ps
}()

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func layoutName(l featurev1.OnlineLayout) string {
	if l == columns {
		return "columns"
	}
	return "rows"
}

func run(o options) error {
	if o.featureProfile != "" {
		if o.inProcess {
			return errors.New("-feature-cpuprofile profiles the feature service in its own process: use -cpuprofile with -in-process")
		}
		if !slices.ContainsFunc(phases, func(p phase) bool { return p.name == o.profilePhase }) {
			return fmt.Errorf("-profile-phase %q is not a latency phase", o.profilePhase)
		}
	}
	if (o.cpuProfile != "" || o.matProfile != "" || o.memProfile != "") && !o.inProcess {
		return errors.New("-cpuprofile, -matprofile and -memprofile need -in-process")
	}
	dir, err := os.MkdirTemp("", "bullseye-feature-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, b := range []struct {
		path *string
		pkg  string
	}{{&o.ingestBin, "services/ingest/cmd/bullseye-ingest"}, {&o.featureBin, "services/feature/cmd/bullseye-feature"}} {
		if *b.path != "" {
			continue
		}
		*b.path = filepath.Join(dir, filepath.Base(b.pkg))
		build := exec.Command("go", "build", "-o", *b.path, "github.com/bullseye-ml/bullseye/"+b.pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building %s: %w", b.pkg, err)
		}
	}
	var results []result
	for r := 0; r < o.runs; r++ {
		res, err := once(o, r == 0)
		if err != nil {
			return fmt.Errorf("run %d: %w", r+1, err)
		}
		fmt.Fprintf(os.Stderr, "run %d: track %.0f/s, materialise %.0f/s (%.0f/s applying), live track %.0f/s, caught up %v after", r+1, res.trackRate, res.applyRate, res.applyingRate, res.liveTrackRate, res.catchUp.Round(time.Millisecond))
		for _, p := range phases {
			l := res.lat[p.name]
			fmt.Fprintf(os.Stderr, "; %s p50 %v p99 %v %.0f/s", p.name, l[0].Round(time.Microsecond), l[1].Round(time.Microsecond), res.calls[p.name])
		}
		fmt.Fprintln(os.Stderr)
		results = append(results, res)
	}
	med := func(f func(result) float64) float64 {
		xs := make([]float64, len(results))
		for i, r := range results {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "GetOnlineFeatures, 20 features, gRPC loopback (median of %d runs)\tp50\tp99\tcalls/s\tCPU/call: feature\tcallers\n", o.runs)
	for i, p := range phases {
		if (p.rate != 0 || p.load != 0) && phases[i-1].rate == 0 && phases[i-1].load == 0 {
			fmt.Fprintf(w, "at a stated load (calls on a fixed schedule, timed from their scheduled start; %v each):\t\t\t\t\t\n", o.statedPhase)
		}
		p50 := time.Duration(med(func(r result) float64 { return float64(r.lat[p.name][0]) }))
		p99 := time.Duration(med(func(r result) float64 { return float64(r.lat[p.name][1]) }))
		cpu, client := "-", "-"
		if !o.inProcess {
			cpu = time.Duration(med(func(r result) float64 { return float64(r.cpu[p.name]) })).Round(time.Microsecond).String()
			client = time.Duration(med(func(r result) float64 { return float64(r.clientCPU[p.name]) })).Round(time.Microsecond).String()
		}
		fmt.Fprintf(w, "%s\t%v\t%v\t%.0f\t%s\t%s\n", p.name, p50.Round(time.Microsecond), p99.Round(time.Microsecond), med(func(r result) float64 { return r.calls[p.name] }), cpu, client)
	}
	track, apply := med(func(r result) float64 { return r.trackRate }), med(func(r result) float64 { return r.applyRate })
	fmt.Fprintf(w, "\nevents (median of %d runs, %d customers)\tevents/s\t\t\n", o.runs, o.customers)
	fmt.Fprintf(w, "Track through bullseye-ingest, %d events in batches of 500, 4 in flight\t%.0f\t\t\n", o.customers*(o.perCust-1), track)
	fmt.Fprintf(w, "materialise that backlog (and %d trait updates), from launching bullseye-feature\t%.0f\t(%.2f x Track)\t\n", o.customers, apply, med(func(r result) float64 { return r.applyRate / r.trackRate }))
	fmt.Fprintf(w, "  the same, from its first partition consumer (without the service's start)\t%.0f\t(%.2f x Track)\t\n", med(func(r result) float64 { return r.applyingRate }), med(func(r result) float64 { return r.applyingRate / r.trackRate }))
	fmt.Fprintf(w, "Track %d more events while the feature service materialises\t%.0f\t\t\n", o.customers*o.livePer, med(func(r result) float64 { return r.liveTrackRate }))
	fmt.Fprintf(w, "  every one of them applied, after the last Track ack\t%v\t\t\n", time.Duration(med(func(r result) float64 { return float64(r.catchUp) })).Round(time.Millisecond))
	fmt.Fprintf(w, "one event at a time (%d, 50 ms apart): its Track ack to its value online, p50 / max\t%v / %v\t\t\n", freshTrials,
		time.Duration(med(func(r result) float64 { return float64(r.fresh[0]) })).Round(100*time.Microsecond),
		time.Duration(med(func(r result) float64 { return float64(r.fresh[1]) })).Round(100*time.Microsecond))
	return w.Flush()
}

func once(o options, first bool) (res result, err error) {
	res = result{lat: map[string][2]time.Duration{}, calls: map[string]float64{}, cpu: map[string]time.Duration{}, clientCPU: map[string]time.Duration{}}
	dir, err := os.MkdirTemp("", "bullseye-feature-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	etcd, err := embedded.StartEtcd(ctx, dir+"/etcd")
	if err != nil {
		return res, err
	}
	defer etcd.Close()
	natsURL, stopNATS, err := embedded.StartNATSProcess(dir + "/nats")
	if err != nil {
		return res, err
	}
	defer stopNATS()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}

	// ingest, in a process of its own.
	keyFile := filepath.Join(dir, "hmac.key")
	if err := os.WriteFile(keyFile, []byte("bench key: not a secret, 32 bytes or more"), 0o600); err != nil {
		return res, err
	}
	ingestAddr, stopIngest, err := startService(ctx, o.ingestBin, etcd.Endpoints(), natsURL, "--data-dir", filepath.Join(dir, "ingest"), "--hmac-key-file", keyFile)
	if err != nil {
		return res, err
	}
	defer stopIngest()
	iconn, err := mesh.DialAddr(ctx, ingestAddr, mesh.TLSConfig{Insecure: true})
	if err != nil {
		return res, err
	}
	defer iconn.Close()
	ingest := ingestv1.NewIngestServiceClient(iconn)
	now := time.Now()
	if err := identify(ctx, ingest, o, now); err != nil {
		return res, err
	}
	n, d, err := track(ctx, ingest, events(o, 1, o.perCust, now))
	if err != nil {
		return res, err
	}
	res.trackRate = float64(n) / d.Seconds()

	// The feature service catches up with the backlog.
	prog := materialize.NewProgress(js)
	seq, err := prog.LastSeq(ctx)
	if err != nil {
		return res, err
	}
	if o.inProcess && first && o.matProfile != "" {
		stop, err := startProfile(o.matProfile)
		if err != nil {
			return res, err
		}
		defer stop()
	}
	start := time.Now()
	var addr string
	featurePID := 0   // in its own process
	metricsAddr := "" // of the feature process, when profiled
	if o.inProcess {
		cfg := feature.NewConfig()
		cfg.EtcdEndpoints, cfg.NATSURL = etcd.Endpoints(), natsURL
		cfg.Server.TLS.Insecure = true
		cfg.Server.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.DataDir = dir + "/feature"
		cfg.LeaseTTL = 2 * time.Second
		cfg.HMACKeyFile = keyFile
		addrs := make(chan string, 1)
		cfg.Started = func(_, addr, _ string) { addrs <- addr }
		done := make(chan error, 1)
		go func() { done <- feature.Run(ctx, cfg) }()
		select {
		case addr = <-addrs:
		case err := <-done:
			return res, err
		}
		defer func() { cancel(); <-done }()
	} else {
		// Its readiness waits for the backlog: start it without waiting.
		var stopFeature func()
		args := []string{"--data-dir", filepath.Join(dir, "feature"), "--hmac-key-file", keyFile}
		if o.featureProfile != "" && first {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return res, err
			}
			metricsAddr = l.Addr().String()
			l.Close()
			args = append(args, "--metrics-listen", metricsAddr, "--pprof")
		}
		addr, stopFeature, featurePID, err = launchPID(o.featureBin, etcd.Endpoints(), natsURL, args...)
		if err != nil {
			return res, err
		}
		defer stopFeature()
	}
	consuming, err := caughtUp(ctx, js, seq, 5*time.Minute)
	if err != nil {
		return res, err
	}
	res.applyRate = float64(o.customers*o.perCust) / time.Since(start).Seconds()
	res.applyingRate = float64(o.customers*o.perCust) / time.Since(consuming).Seconds()
	if o.inProcess && first && o.matProfile != "" {
		pprof.StopCPUProfile()
	}

	// More events while it runs: does it keep up?
	n, d, err = track(ctx, ingest, events(o, o.perCust, o.perCust+o.livePer, time.Now()))
	if err != nil {
		return res, err
	}
	res.liveTrackRate = float64(n) / d.Seconds()
	acked := time.Now()
	if seq, err = prog.LastSeq(ctx); err != nil {
		return res, err
	}
	if _, err := caughtUp(ctx, js, seq, 5*time.Minute); err != nil {
		return res, err
	}
	res.catchUp = time.Since(acked)

	if err := waitServing(ctx, addr, nil); err != nil {
		return res, err
	}
	// The mesh's own client, as serving dials the feature service: its
	// codec decodes replies with the generated vtproto code.
	conn, err := mesh.DialAddr(ctx, addr, mesh.TLSConfig{Insecure: true})
	if err != nil {
		return res, err
	}
	defer conn.Close()
	client := featurev1.NewFeatureServiceClient(conn)
	if err := applyReady(ctx, client); err != nil {
		return res, err
	}
	// A live system has forgotten customers: lookups then check each
	// customer against a non-empty erasure list.
	if _, err := ingest.ForgetUser(ctx, &ingestv1.ForgetUserRequest{UserId: "cust-forgotten", Reason: "bench"}); err != nil {
		return res, fmt.Errorf("forget: %w", err)
	}
	if res.fresh, err = freshness(ctx, ingest, client, o); err != nil {
		return res, fmt.Errorf("freshness: %w", err)
	}
	if o.inProcess && first && o.cpuProfile != "" {
		stop, err := startProfile(o.cpuProfile)
		if err != nil {
			return res, err
		}
		defer stop()
	}
	for _, p := range phases {
		rate := p.rate
		if p.load != 0 {
			rate = p.load * res.calls[p.peak]
		}
		var cpu0 time.Duration
		self0 := selfCPU()
		if featurePID != 0 {
			if cpu0, err = cpuTime(featurePID); err != nil {
				return res, err
			}
		}
		var profiled chan error
		if metricsAddr != "" && p.name == o.profilePhase {
			profiled = make(chan error, 1)
			go func() { profiled <- fetchProfile(ctx, metricsAddr, o.duration(rate), o.featureProfile) }()
		}
		lats, calls, all, err := load(ctx, client, o, p, rate)
		if profiled != nil {
			if err := <-profiled; err != nil {
				return res, fmt.Errorf("profiling the feature process: %w", err)
			}
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", p.name, err)
		}
		if featurePID != 0 {
			cpu1, err := cpuTime(featurePID)
			if err != nil {
				return res, err
			}
			res.cpu[p.name] = (cpu1 - cpu0) / time.Duration(all)
			res.clientCPU[p.name] = (selfCPU() - self0) / time.Duration(all)
		}
		res.lat[p.name] = [2]time.Duration{pct(lats, 0.50), pct(lats, 0.99)}
		res.calls[p.name] = calls
	}
	if o.inProcess && first && o.memProfile != "" {
		f, err := os.Create(o.memProfile)
		if err != nil {
			return res, err
		}
		runtime.GC()
		err = errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// caughtUp polls the partitions' consumers every 20 ms (only those not
// there yet, to load NATS little) until every record up to seq is applied.
// It returns when it first saw a partition's consumer, which the feature
// service creates just before it fetches from the partition.
func caughtUp(ctx context.Context, js jetstream.JetStream, seq uint64, limit time.Duration) (first time.Time, err error) {
	deadline := time.Now().Add(limit)
	s, err := js.Stream(ctx, eventlog.EventsStream)
	if err != nil {
		return first, err
	}
	done := make([]bool, eventlog.Partitions)
	left := eventlog.Partitions
	for {
		for p := range done {
			if done[p] {
				continue
			}
			c, err := s.Consumer(ctx, materialize.ConsumerName(p))
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				continue
			}
			if err != nil {
				return first, err
			}
			info, err := c.Info(ctx)
			if err != nil {
				return first, err
			}
			if first.IsZero() {
				first = time.Now()
			}
			if info.AckFloor.Stream >= seq || (info.NumPending == 0 && info.NumAckPending == 0) {
				done[p] = true
				left--
			}
		}
		if left == 0 {
			return first, nil
		}
		if time.Now().After(deadline) {
			return first, fmt.Errorf("not caught up with sequence %d after %v", seq, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startService runs a service binary against etcd and NATS and waits
// until it is SERVING.
func startService(ctx context.Context, bin string, etcd []string, natsURL string, extra ...string) (string, func(), error) {
	addr, stop, err := launch(bin, etcd, natsURL, extra...)
	if err != nil {
		return "", nil, err
	}
	if err := waitServing(ctx, addr, stop); err != nil {
		return "", nil, fmt.Errorf("%s: %w", filepath.Base(bin), err)
	}
	return addr, stop, nil
}

// launch starts a service binary on a free loopback port.
func launch(bin string, etcd []string, natsURL string, extra ...string) (string, func(), error) {
	addr, stop, _, err := launchPID(bin, etcd, natsURL, extra...)
	return addr, stop, err
}

// launchPID is launch that also returns the process id.
func launchPID(bin string, etcd []string, natsURL string, extra ...string) (string, func(), int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, 0, err
	}
	addr := l.Addr().String()
	l.Close()
	args := append([]string{"--nats-url", natsURL, "--insecure", "--listen", addr, "--lease-ttl", "2s", "--log-level", "warn"}, extra...)
	for _, e := range etcd {
		args = append(args, "--etcd-endpoints", e)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, 0, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	return addr, stop, cmd.Process.Pid, nil
}

// freshTrials is how many single events freshness times.
const freshTrials = 40

// freshness tracks one order at a time for different customers, 50 ms
// apart, and times each from its Track ack until GetOnlineFeatures shows it
// (the customer's orders_7d one higher), polling every 200 µs. It returns
// the median and the longest.
func freshness(ctx context.Context, ingest ingestv1.IngestServiceClient, c featurev1.FeatureServiceClient, o options) ([2]time.Duration, error) {
	orders := func(id string) (int64, error) {
		resp, err := c.GetOnlineFeatures(ctx, &featurev1.GetOnlineFeaturesRequest{
			FeatureSet: &featurev1.FeatureSetRef{Name: benchset.Name}, Entities: []*commonv1.EntityKey{{Id: id}},
			FeatureNames: []string{"orders_7d"}, Layout: columns,
		})
		if err != nil {
			return 0, err
		}
		return resp.GetColumns().GetFeatures()[0].GetIntValues()[0], nil
	}
	var lats []time.Duration
	for i := 0; i < freshTrials; i++ {
		id := "cust-" + strconv.Itoa(i*(o.customers/freshTrials))
		before, err := orders(id)
		if err != nil {
			return [2]time.Duration{}, err
		}
		v := 10.0
		now := time.Now()
		resp, err := ingest.Track(ctx, &ingestv1.TrackRequest{Events: []*ingestv1.Event{{
			MessageId: fmt.Sprintf("fresh-%d-%d", now.UnixNano(), i), UserId: id, Name: "Order Completed", Value: &v, Currency: "EUR",
			OriginalTimestamp: timestamppb.New(now), SentAt: timestamppb.New(now),
		}}})
		if err != nil {
			return [2]time.Duration{}, err
		}
		if resp.GetCounts().GetAccepted() != 1 {
			return [2]time.Duration{}, fmt.Errorf("tracking one event: %v, want 1 accepted", resp.GetCounts())
		}
		acked := time.Now()
		for {
			got, err := orders(id)
			if err != nil {
				return [2]time.Duration{}, err
			}
			if got > before {
				break
			}
			if time.Since(acked) > 10*time.Second {
				return [2]time.Duration{}, fmt.Errorf("%s's order not online 10 s after its ack", id)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lats = append(lats, time.Since(acked))
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(lats)
	return [2]time.Duration{pct(lats, 0.5), lats[len(lats)-1]}, nil
}

// fetchProfile writes a CPU profile of d of the process serving
// /debug/pprof on addr to path.
func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds())))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// selfCPU returns the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTime returns the CPU time (user and system) process pid has used so
// far, from /proc/<pid>/stat, in clock ticks of 10 ms.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// waitServing waits up to a minute for addr to answer SERVING; stop, when
// not nil, is called when it does not.
func waitServing(ctx context.Context, addr string, stop func()) error {
	deadline := time.Now().Add(time.Minute)
	for {
		cctx, c := context.WithTimeout(ctx, time.Second)
		err := mesh.CheckHealth(cctx, addr, "", mesh.TLSConfig{Insecure: true})
		c()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			if stop != nil {
				stop()
			}
			return fmt.Errorf("not SERVING after a minute: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// identify sends every customer's traits (untimed).
func identify(ctx context.Context, c ingestv1.IngestServiceClient, o options, now time.Time) error {
	rng := rand.New(rand.NewPCG(42, 0))
	var ups []*ingestv1.TraitUpdate
	for cu := 0; cu < o.customers; cu++ {
		user := "cust-" + strconv.Itoa(cu)
		ups = append(ups, &ingestv1.TraitUpdate{
			MessageId: user + "-traits", UserId: user,
			OriginalTimestamp: timestamppb.New(now.Add(-time.Duration(rng.Float64() * float64(120*24*time.Hour)))),
			SentAt:            timestamppb.New(now),
			Traits: map[string]*commonv1.Value{
				"age":     {Kind: &commonv1.Value_IntValue{IntValue: int64(18 + rng.IntN(60))}},
				"plan":    {Kind: &commonv1.Value_StringValue{StringValue: []string{"free", "plus", "pro"}[rng.IntN(3)]}},
				"country": {Kind: &commonv1.Value_StringValue{StringValue: []string{"PT", "ES", "FR", "DE"}[rng.IntN(4)]}},
				"score":   {Kind: &commonv1.Value_NumberValue{NumberValue: rng.Float64()}},
			},
		})
	}
	for i := 0; i < len(ups); i += 500 {
		resp, err := c.Identify(ctx, &ingestv1.IdentifyRequest{Updates: ups[i:min(len(ups), i+500)]})
		if err != nil {
			return fmt.Errorf("identify: %w", err)
		}
		if got, want := resp.GetCounts().GetAccepted(), int64(min(len(ups), i+500)-i); got != want {
			return fmt.Errorf("identify: %v, want %d accepted", resp.GetCounts(), want)
		}
	}
	return nil
}

// events makes rounds [from, to) of events: in each round one event of every
// customer (orders, views and cart events spread over the last 120 days), in
// batches of 500.
func events(o options, from, to int, now time.Time) [][]*ingestv1.Event {
	rng := rand.New(rand.NewPCG(42, uint64(from)))
	names := []string{"Order Completed", "Product Viewed", "Product Viewed", "Added To Cart"}
	var batches [][]*ingestv1.Event
	var cur []*ingestv1.Event
	for i := from; i < to; i++ {
		for cu := 0; cu < o.customers; cu++ {
			user := "cust-" + strconv.Itoa(cu)
			ev := &ingestv1.Event{
				MessageId:         user + "-" + strconv.Itoa(i),
				UserId:            user,
				Name:              names[rng.IntN(len(names))],
				ItemId:            "item-" + strconv.Itoa(rng.IntN(500)),
				OriginalTimestamp: timestamppb.New(now.Add(-time.Duration(rng.Float64() * float64(120*24*time.Hour)))),
				SentAt:            timestamppb.New(now),
				Properties:        map[string]*commonv1.Value{"category": {Kind: &commonv1.Value_StringValue{StringValue: []string{"books", "music", "games"}[rng.IntN(3)]}}},
			}
			if ev.Name == "Order Completed" {
				v := 5 + 100*rng.Float64()
				ev.Value, ev.Currency = &v, "EUR"
			}
			cur = append(cur, ev)
			if len(cur) == 500 {
				batches, cur = append(batches, cur), nil
			}
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// track sends the batches through Track, 4 in flight, and returns how many
// events were accepted and how long it took.
func track(ctx context.Context, c ingestv1.IngestServiceClient, batches [][]*ingestv1.Event) (int, time.Duration, error) {
	var next atomic.Int64
	var accepted atomic.Int64
	errs := make(chan error, 4)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batches) {
					return
				}
				resp, err := c.Track(ctx, &ingestv1.TrackRequest{Events: batches[i]})
				if err != nil {
					errs <- fmt.Errorf("track: %w", err)
					return
				}
				if got := resp.GetCounts().GetAccepted(); got != int64(len(batches[i])) {
					errs <- fmt.Errorf("track: %v, want %d accepted", resp.GetCounts(), len(batches[i]))
					return
				}
				accepted.Add(int64(len(batches[i])))
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	select {
	case err := <-errs:
		return 0, 0, err
	default:
	}
	return int(accepted.Load()), d, nil
}

func pct(xs []time.Duration, q float64) time.Duration {
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	return xs[min(len(xs)-1, int(q*float64(len(xs))))]
}

func applyReady(ctx context.Context, c featurev1.FeatureServiceClient) error {
	resp, err := c.ApplyFeatureSet(ctx, &featurev1.ApplyFeatureSetRequest{FeatureSet: benchset.FeatureSet()})
	if err != nil {
		return err
	}
	if n := len(resp.GetFeatureSet().GetColumns()); n != 20 {
		return fmt.Errorf("the bench feature set has %d columns, want 20", n)
	}
	for {
		got, err := c.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: benchset.Name}})
		if err != nil {
			return err
		}
		if got.GetFeatureSet().GetBackfill().GetState() == featurev1.BackfillState_BACKFILL_STATE_READY {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// duration is how long a latency measurement at rate (0: closed loop)
// lasts.
func (o options) duration(rate float64) time.Duration {
	if rate > 0 {
		return o.statedPhase
	}
	return o.phase
}

// load calls GetOnlineFeatures from p.conc goroutines for o.duration(rate) (after a
// short warm-up) and returns every timed call's latency, the call rate and
// how many calls it made in all, the warm-up's included. With
// rate > 0 the calls start on a fixed schedule of rate calls per second and
// each is timed from its scheduled start; otherwise each caller calls again
// as soon as it has its answer.
func load(ctx context.Context, c featurev1.FeatureServiceClient, o options, p phase, rate float64) ([]time.Duration, float64, int64, error) {
	// The customers' keys, made once and shared by the callers (a request
	// only reads them): the callers' own garbage is kept small so that their
	// collections are not timed as the service's latency.
	keys := make([]*commonv1.EntityKey, o.customers)
	for i := range keys {
		keys[i] = &commonv1.EntityKey{Id: "cust-" + strconv.Itoa(i)}
	}
	var all atomic.Int64
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr error
	begin := time.Now()
	warm := begin.Add(300 * time.Millisecond)
	end := warm.Add(o.duration(rate))
	var ticket atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < p.conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var mine []time.Duration
			req := &featurev1.GetOnlineFeaturesRequest{FeatureSet: &featurev1.FeatureSetRef{Name: benchset.Name}, Entities: make([]*commonv1.EntityKey, p.batch), Layout: p.layout}
			for {
				t0 := time.Now()
				if rate > 0 {
					// A call whose time has come while its caller was busy
					// is timed from its scheduled start (it waited for a free
					// caller); one its caller slept for is timed from when
					// the caller woke, so that timer lateness in this process
					// is not put on the service.
					t0 = begin.Add(time.Duration(float64(ticket.Add(1)-1) / rate * float64(time.Second)))
					if d := time.Until(t0); d > 0 {
						time.Sleep(d)
						t0 = time.Now()
					}
				}
				if !t0.Before(end) {
					break
				}
				for i := range req.Entities {
					req.Entities[i] = keys[rng.IntN(o.customers)]
				}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := c.GetOnlineFeatures(cctx, req)
				cancel()
				d := time.Since(t0)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				all.Add(1)
				if !t0.Before(warm) {
					mine = append(mine, d)
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, 0, 0, firstErr
	}
	if len(lats) == 0 {
		return nil, 0, 0, fmt.Errorf("no call finished")
	}
	return lats, float64(len(lats)) / o.duration(rate).Seconds(), all.Load(), nil
}
