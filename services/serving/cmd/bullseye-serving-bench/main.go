// Command bullseye-serving-bench measures the serving service on this machine with ghz, over
// gRPC on loopback, against embedded etcd and NATS and the real feature service, and prints
// one table (medians of several runs):
//
//	(a) an empty server (a plain gRPC server on which any method answers an empty message
//	    without reading the request) and a no-op PredictionService answering the same messages
//	    (64 inline features in, the same reply out), beside Predict of a logistic regression
//	    with 64 inline features, concurrency 32: Predict's rate as a share of each, and each
//	    server's CPU time per call against the empty server's;
//	(b) Predict by user id (features fetched from the feature service), concurrency 64: feature
//	    lookups per call, and the rate as a share of the empty server answering the same
//	    messages and of (a)'s Predict;
//	(c) Recommend top 10 over 20,000 items at rank 64, concurrency 64, batched beside batching
//	    off (max batch size 1);
//	(d) the p99 latency of Predict (a) at half its peak rate;
//	(e) Predict of boosted trees (300 trees of up to 31 leaves) with the same 64 inline
//	    features, concurrency 32, as a share of the logistic regression's rate; and with
//	    include_contributions, the serving CPU time TreeSHAP adds to a row (serving's own CPU
//	    time, user and system, per call).
//
// ghz runs pinned to CPU 0 and the servers under test (serving, the no-op and the empty
// server) to CPU 1 (taskset; -pin=false turns it off), ghz spreading its calls over
// -connections connections so that it is not the bottleneck. A server's CPU time per call is
// its process's user and system time over the calls of a measurement.
//
// Serving and the no-op server run as child processes (this binary re-executed), each with
// its own heap, beside the embedded etcd and NATS of this process and the bullseye-feature
// binary; both log warnings only. Each comparison is measured A B B A so that a shared
// machine's background load weighs on both sides alike. Feature lookups are counted by the
// feature service itself. ghz (pinned, v0.120.0) is found in $BULLSEYE_BIN or bin/ at the
// repository's root; bullseye-feature in $BULLSEYE_BIN, else it is built from the sources.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/services/serving"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

type options struct {
	runs      int
	phase     time.Duration
	customers int
	ghz       string
	profile   string
	only      string
	write     string
	pin       bool
	conns     int
	profDir   string
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case childServing:
			os.Exit(runChildServing(os.Args[2:]))
		case childNoop:
			os.Exit(runChildNoop(os.Args[2:]))
		case childEmpty:
			os.Exit(runChildEmpty())
		}
	}
	var o options
	flag.IntVar(&o.runs, "runs", 5, "independent runs of every phase; the table shows medians")
	flag.DurationVar(&o.phase, "phase", 3*time.Second, "how long each measurement lasts")
	flag.IntVar(&o.customers, "customers", 10000, "customers with 64 features in the feature service")
	flag.StringVar(&o.ghz, "ghz", "", "the ghz binary (default: $BULLSEYE_BIN/ghz or bin/ghz at the repository's root)")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the measurements to this file")
	flag.StringVar(&o.only, "only", "", "measure only one load (empty, noop, inline, user, recs), for profiling; no table")
	flag.StringVar(&o.profDir, "serving-profile", "", "with -only: write a CPU profile of the serving process under the load, and its allocations, to this directory")
	flag.BoolVar(&o.pin, "pin", true, "pin ghz to CPU 0 and the servers under test to CPU 1 (taskset), on machines with 2 or more CPUs")
	flag.IntVar(&o.conns, "connections", 4, "gRPC connections ghz spreads its concurrency over")
	flag.StringVar(&o.write, "write", "", "also write the table, with this machine's description, to this file's bench-serve section (BENCHMARKS.md)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bullseye-serving-bench:", err)
		os.Exit(1)
	}
}

// tb is testenv's view of the benchmark: failures end it.
type tb struct{ dir string }

func (tb) Helper()                           {}
func (tb) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (tb) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (t tb) TempDir() string                 { d, _ := os.MkdirTemp(t.dir, "t-"); return d }
func ctxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// Model names.
const (
	logisticModel = "bench-logistic"
	boostedModel  = "bench-boosted"
	boostedTrees  = 300
	boostedLeaves = 31
	mfModel       = "bench-mf"
	mfNoBatch     = "bench-mf-unbatched"
	items         = 20000
	rank          = 64
	mfUsers       = 5000
)

func run(o options) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	if o.ghz == "" {
		o.ghz = findBin("ghz")
	}
	if o.profDir != "" && o.only == "" {
		return fmt.Errorf("-serving-profile needs -only: the load to profile serving under")
	}
	load := &ghzRunner{bin: o.ghz, connections: o.conns}
	if o.pin && runtime.NumCPU() >= 2 {
		if _, err := exec.LookPath("taskset"); err != nil {
			return fmt.Errorf("-pin needs taskset (util-linux): %w", err)
		}
		load.cpus, childCPUs = "0", "1"
	}
	dir, err := os.MkdirTemp("", "bullseye-serving-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(os.Stderr, "setting up: etcd, NATS, feature service, %d customers × 64 features, models...\n", o.customers)
	var bins embeddedtest.Binaries
	defer bins.Remove()
	env := testenv.New(tb{dir}, &bins)
	defer env.Close()
	ctx, cancel := ctxFor(5 * time.Minute)
	defer cancel()

	syn := testenv.MakeSynthetic(o.customers, 64, 1)
	set, err := env.SeedSynthetic(ctx, syn, "bench")
	if err != nil {
		return err
	}
	logistic, err := testenv.FitLogistic(ctx, syn.Table, syn.Y, syn.Inputs, 1, "bench", set.GetVersion())
	if err != nil {
		return err
	}
	boosted, err := testenv.FitBoosted(ctx, syn.Table, syn.Y, syn.Inputs,
		gbt.Params{Trees: boostedTrees, MaxLeaves: boostedLeaves, LearningRate: 0.05, EarlyStopping: -1}, "bench", set.GetVersion())
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "boosted trees: %d trees, %.1f leaves a tree on average\n", len(boosted.GetTrees().GetTrees()), meanLeaves(boosted))
	mf := testenv.FactorsArtifact(testenv.RandomFactors(mfUsers, items, rank, 3), modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT)
	for _, m := range []struct {
		name string
		a    *modelv1.ModelArtifact
	}{{logisticModel, logistic}, {boostedModel, boosted}, {mfModel, mf}, {mfNoBatch, mf}} {
		if _, err := env.Register(ctx, m.name, m.a, 0.9); err != nil {
			return err
		}
		if _, err := env.Promote(ctx, m.name, testenv.Routing{Live: map[int64]uint32{1: 1}}); err != nil {
			return err
		}
	}

	profiling := []string{}
	if o.profDir != "" {
		profiling = []string{"--metrics-listen", "127.0.0.1:0", "--pprof"}
	}
	srv, err := startChild(childServing, append(profiling,
		"--etcd-endpoints", strings.Join(env.Endpoints(), ","), "--nats-url", env.NATS.URL(), "--insecure",
		"--listen", "127.0.0.1:0", "--lease-ttl", "2s", "--data-dir", filepath.Join(dir, "serving"), "--readiness-interval", "100ms",
		"--model-batching", fmt.Sprintf("%s:max-batch-size=1,max-concurrent-batches=%d", mfNoBatch, runtime.GOMAXPROCS(0)))...)
	if err != nil {
		return err
	}
	defer srv.stop()
	addr := srv.addr

	// The requests: ghz sends the messages of a file round robin.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := servingv1.NewPredictionServiceClient(conn)
	var inline, byUser, boostedReqs, explained []*servingv1.PredictRequest
	var recReqs, recOffReqs []*servingv1.RecommendRequest
	for i := range 200 {
		inline = append(inline, &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: logisticModel}, Instances: []*servingv1.Instance{{Features: syn.Features(i)}}})
		boostedReqs = append(boostedReqs, &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: boostedModel}, Instances: []*servingv1.Instance{{Features: syn.Features(i)}}})
		explained = append(explained, &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: boostedModel}, Instances: []*servingv1.Instance{{Features: syn.Features(i)}}, IncludeContributions: true})
	}
	for _, id := range syn.IDs {
		byUser = append(byUser, &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: logisticModel}, Instances: []*servingv1.Instance{{UserId: id}}})
	}
	for u := range mfUsers {
		id := fmt.Sprintf("user-%d", u)
		recReqs = append(recReqs, &servingv1.RecommendRequest{Model: &commonv1.ModelRef{Name: mfModel}, UserIds: []string{id}, K: 10})
		recOffReqs = append(recOffReqs, &servingv1.RecommendRequest{Model: &commonv1.ModelRef{Name: mfNoBatch}, UserIds: []string{id}, K: 10})
	}
	// The no-op server answers what Predict answers.
	reply, err := client.Predict(ctx, inline[0])
	if err != nil {
		return err
	}
	replyFile := filepath.Join(dir, "reply.bin")
	if b, err := proto.Marshal(reply); err != nil {
		return err
	} else if err := os.WriteFile(replyFile, b, 0o600); err != nil {
		return err
	}
	noop, err := startChild(childNoop, replyFile)
	if err != nil {
		return err
	}
	defer noop.stop()
	empty, err := startChild(childEmpty)
	if err != nil {
		return err
	}
	defer empty.stop()
	files := map[string]string{}
	if err := checkExplained(ctx, client, explained[0], len(syn.Inputs)); err != nil {
		return err
	}
	for name, msgs := range map[string][]*servingv1.PredictRequest{"inline": inline, "user": byUser, "boosted": boostedReqs, "explained": explained} {
		if files[name], err = writeMessages(dir, name, msgs); err != nil {
			return err
		}
	}
	for name, msgs := range map[string][]*servingv1.RecommendRequest{"recs": recReqs, "recs-off": recOffReqs} {
		if files[name], err = writeMessages(dir, name, msgs); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "Predict reply %d bytes, request %d bytes; ghz %s\n", proto.Size(reply), proto.Size(inline[0]), o.ghz)

	if o.profile != "" {
		f, err := os.Create(o.profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	const predict, recommend = "bullseye.serving.v1.PredictionService.Predict", "bullseye.serving.v1.PredictionService.Recommend"
	// Lookups are counted by the feature service itself.
	lookups := func() float64 { return env.FeatureCalls(tb{}, "GetOnlineFeatures") }
	// Warm up every path once.
	for _, w := range []struct {
		c          *child
		call, file string
	}{{empty, predict, files["inline"]}, {noop, predict, files["inline"]}, {srv, predict, files["inline"]},
		{srv, predict, files["user"]}, {srv, predict, files["boosted"]}, {srv, predict, files["explained"]}, {srv, recommend, files["recs"]}, {srv, recommend, files["recs-off"]}} {
		if _, err := load.run(w.c, w.call, w.file, 32, 0, time.Second); err != nil {
			return err
		}
	}
	// Each comparison is measured A B … B A, every part half a phase long, so that the
	// background load of a shared machine weighs on every side alike.
	half := o.phase / 2
	abba := func(fs ...func() (report_, error)) ([]report_, error) {
		parts := make([][2]report_, len(fs))
		for k := range 2 * len(fs) {
			i, round := k, 0
			if k >= len(fs) {
				i, round = 2*len(fs)-1-k, 1
			}
			r, err := fs[i]()
			if err != nil {
				return nil, err
			}
			parts[i][round] = r
		}
		out := make([]report_, len(fs))
		for i, p := range parts {
			out[i] = merge(p)
		}
		return out, nil
	}
	call := func(c *child, method, file string, conc int) func() (report_, error) {
		return func() (report_, error) { return load.run(c, method, file, conc, 0, half) }
	}
	var lookupCount float64
	var userCalls int64
	byUserCall := func() (report_, error) {
		before := lookups()
		r, err := load.run(srv, predict, files["user"], 64, 0, half)
		lookupCount += lookups() - before
		userCalls += r.Count
		return r, err
	}
	var results []result
	for r := range o.runs {
		var res result
		if o.only != "" {
			var profiled chan error
			if o.profDir != "" {
				profiled = make(chan error, 1)
				go func() { profiled <- profileServing(srv.metricsAddr, o.profDir, half) }()
			}
			switch o.only {
			case "inline":
				_, err = call(srv, predict, files["inline"], 32)()
			case "noop":
				_, err = call(noop, predict, files["inline"], 32)()
			case "empty":
				_, err = call(empty, predict, files["inline"], 32)()
			case "user":
				_, err = byUserCall()
			case "recs":
				_, err = call(srv, recommend, files["recs"], 64)()
			default:
				err = fmt.Errorf("-only %q: want empty, noop, inline, user or recs", o.only)
			}
			if profiled != nil {
				if perr := <-profiled; err == nil {
					err = perr
				}
			}
			if err != nil {
				return err
			}
			continue
		}
		rs, err := abba(call(empty, predict, files["inline"], 32), call(noop, predict, files["inline"], 32), call(srv, predict, files["inline"], 32))
		if err != nil {
			return err
		}
		res.empty, res.noop, res.inline = rs[0], rs[1], rs[2]
		lookupCount, userCalls = 0, 0
		if rs, err = abba(call(srv, predict, files["inline"], 32), byUserCall, call(empty, predict, files["user"], 64)); err != nil {
			return err
		}
		res.inline2, res.user, res.emptyUser = rs[0], rs[1], rs[2]
		res.lookupsPerCall = lookupCount / float64(userCalls)
		if rs, err = abba(call(srv, predict, files["inline"], 32), call(srv, predict, files["boosted"], 32), call(srv, predict, files["explained"], 32)); err != nil {
			return err
		}
		res.inline3, res.boosted, res.explained = rs[0], rs[1], rs[2]
		if rs, err = abba(call(srv, recommend, files["recs"], 64), call(srv, recommend, files["recs-off"], 64)); err != nil {
			return err
		}
		res.recs, res.recsOff = rs[0], rs[1]
		if res.half, err = load.run(srv, predict, files["inline"], 32, res.inline.Rps/2, o.phase); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "run %d: empty %.0f/s (%v CPU a call), no-op %.0f/s (%v); Predict inline %.0f/s (%v, %.2f × empty)\n", r+1,
			res.empty.Rps, res.empty.CPUPerCall, res.noop.Rps, res.noop.CPUPerCall, res.inline.Rps, res.inline.CPUPerCall, res.inline.Rps/res.empty.Rps)
		fmt.Fprintf(os.Stderr, "run %d: no-op %.0f/s, Predict inline %.0f/s (%.2f); Predict inline %.0f/s, by user %.0f/s (%.2f, %.3f lookups/call); Recommend %.0f/s vs unbatched %.0f/s (%.1f); p99 at %.0f/s %v\n",
			r+1, res.noop.Rps, res.inline.Rps, res.inline.Rps/res.noop.Rps, res.inline2.Rps, res.user.Rps, res.user.Rps/res.inline2.Rps, res.lookupsPerCall,
			res.recs.Rps, res.recsOff.Rps, res.recs.Rps/res.recsOff.Rps, res.half.Rps, res.half.p(99).Round(time.Microsecond))
		fmt.Fprintf(os.Stderr, "run %d: Predict boosted trees %.0f/s (%.2f × logistic's %.0f/s), %v CPU a call; with contributions %.0f/s, %v CPU a call\n",
			r+1, res.boosted.Rps, res.boosted.Rps/res.inline3.Rps, res.inline3.Rps, res.boosted.CPUPerCall, res.explained.Rps, res.explained.CPUPerCall)
		results = append(results, res)
	}
	if o.only != "" {
		return nil
	}
	return report(o, results)
}

// result is one run's measurements.
type result struct {
	empty, noop, inline, inline2, user, emptyUser, recs, recsOff, half report_
	inline3, boosted, explained                                        report_
	lookupsPerCall                                                     float64
}

func report(o options, rs []result) error {
	med := func(f func(result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	dur := func(f func(result) time.Duration) time.Duration {
		return time.Duration(med(func(r result) float64 { return float64(f(r)) })).Round(10 * time.Microsecond)
	}
	var table bytes.Buffer
	w := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	pin := "unpinned"
	if childCPUs != "" {
		pin = "ghz on CPU 0, servers under test on CPU 1"
	}
	fmt.Fprintf(w, "serving, ghz v0.120.0 (%d connections), gRPC loopback, %d cores, %s, median of %d runs of %v\tcalls/s\tp50\tp99\tserver CPU a call\tfigure\ttarget\tmet\n",
		o.conns, runtime.NumCPU(), pin, o.runs, o.phase)
	// row prints a load's medians; ratio, when set, is its figure against target (at least,
	// or at most when atMost).
	row := func(label string, load func(result) report_, figure string, ratio func(result) float64, target float64, atMost bool) {
		rate := med(func(r result) float64 { return load(r).Rps })
		p50 := dur(func(r result) time.Duration { return load(r).p(50) })
		p99 := dur(func(r result) time.Duration { return load(r).p(99) })
		cpu := dur(func(r result) time.Duration { return load(r).CPUPerCall })
		fig, tgt, met := "", "", ""
		if ratio != nil {
			v := med(ratio)
			fig = fmt.Sprintf(figure, v)
			if target != 0 {
				op, ok := "≥", v >= target
				if atMost {
					op, ok = "≤", v <= target
				}
				tgt, met = fmt.Sprintf("%s %g", op, target), map[bool]string{true: "yes", false: "NO"}[ok]
			}
		}
		fmt.Fprintf(w, "%s\t%.0f\t%v\t%v\t%v\t%s\t%s\t%s\n", label, rate, p50, p99, cpu, fig, tgt, met)
	}
	cpuRatio := func(a, b func(result) report_) func(result) float64 {
		return func(r result) float64 { return float64(a(r).CPUPerCall) / float64(b(r).CPUPerCall) }
	}
	rate := func(a, b func(result) report_) func(result) float64 {
		return func(r result) float64 { return a(r).Rps / b(r).Rps }
	}
	empty := func(r result) report_ { return r.empty }
	noop := func(r result) report_ { return r.noop }
	inline := func(r result) report_ { return r.inline }
	user := func(r result) report_ { return r.user }
	row("(a) empty server: any method answers {} unread, c=32", empty, "", nil, 0, false)
	row("(a) no-op PredictionService, same messages (64 inline features), c=32", noop, "%.2f × empty's CPU a call", cpuRatio(noop, empty), 0, false)
	row("(a) Predict, logistic, 64 inline features, c=32", inline, "%.2f × empty", rate(inline, empty), 0.90, false)
	row("    the same, against the same-shape no-op", inline, "%.2f × no-op", rate(inline, noop), 0.85, false)
	row("    the same, server CPU a call against the empty server's", inline, "%.2f ×", cpuRatio(inline, empty), 0, false)
	row("(b) empty server answering Predict by user id, c=64", func(r result) report_ { return r.emptyUser }, "", nil, 0, false)
	row("(b) Predict by user id (feature lookups), c=64", user, "%.2f × empty", rate(user, func(r result) report_ { return r.emptyUser }), 0.85, false)
	row("    the same, against (a) Predict", user, "%.2f × (a) Predict", rate(user, func(r result) report_ { return r.inline2 }), 0.6, false)
	row("(b) feature lookups per Predict call", user, "%.3f", func(r result) float64 { return r.lookupsPerCall }, 0.2, true)
	recs, recsOff := func(r result) report_ { return r.recs }, func(r result) report_ { return r.recsOff }
	row(fmt.Sprintf("(c) Recommend top 10 of %d items, rank %d, batched, c=64", items, rank), recs, "%.1f × unbatched", rate(recs, recsOff), 2, false)
	row("(c) Recommend, batching off (max batch size 1), c=64", recsOff, "", nil, 0, false)
	half := func(r result) report_ { return r.half }
	row("(d) Predict (a) at half its peak rate, c=32", half, "p99 %.2f ms", func(r result) float64 { return float64(r.half.p(99)) / 1e6 }, 10, true)
	boosted, explained := func(r result) report_ { return r.boosted }, func(r result) report_ { return r.explained }
	row(fmt.Sprintf("(e) Predict, boosted trees (%d trees, ≤ %d leaves), 64 inline features, c=32", boostedTrees, boostedLeaves), boosted,
		"%.2f × logistic (a)", rate(boosted, func(r result) report_ { return r.inline3 }), 0.8, false)
	row("(e) the same with include_contributions (TreeSHAP), 1 row a call, c=32", explained, "+%.2f ms serving CPU a row",
		func(r result) float64 { return float64(r.explained.CPUPerCall-r.boosted.CPUPerCall) / 1e6 }, 0, false)
	if err := w.Flush(); err != nil {
		return err
	}
	os.Stdout.Write(table.Bytes())
	if o.write == "" {
		return nil
	}
	return embeddedtest.WriteBenchmarks(o.write, "bench-serve", "make bench-serve", table.String())
}

// meanLeaves is the mean number of leaves of an artifact's trees.
func meanLeaves(a *modelv1.ModelArtifact) float64 {
	trees := a.GetTrees().GetTrees()
	var leaves int
	for _, t := range trees {
		leaves += (len(t.GetLeft()) + 1) / 2
	}
	return float64(leaves) / float64(max(len(trees), 1))
}

// checkExplained makes sure that Predict with include_contributions explains a boosted
// tree's row input by input, so that the row measuring it measures TreeSHAP.
func checkExplained(ctx context.Context, client servingv1.PredictionServiceClient, req *servingv1.PredictRequest, inputs int) error {
	resp, err := client.Predict(ctx, req)
	if err != nil {
		return err
	}
	if got := len(resp.GetPredictions()[0].GetExplanation().GetContributions()); got != inputs {
		return fmt.Errorf("boosted trees' Predict with include_contributions explains %d inputs, want %d", got, inputs)
	}
	return nil
}

// The benchmark runs serving and the no-op server as processes of their own, as in
// production: each with its own heap and garbage collector, apart from the embedded etcd and
// NATS of the benchmark's process. Both log warnings only.
const (
	childServing = "-child-serving"
	childNoop    = "-child-noop"
	childEmpty   = "-child-empty"
)

// child is a server this binary runs in a child mode.
type child struct {
	addr        string
	metricsAddr string // serving's, when it serves metrics
	cmd         *exec.Cmd
}

// stop ends the child with SIGTERM.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Wait()
}

// cpu returns the CPU time the child has used so far, user and system, all threads.
func (c *child) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name's closing parenthesis; utime and stime are the
	// 14th and 15th of the whole line, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", c.cmd.Process.Pid, len(f))
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}

// childCPUs, when set, is the CPU list (taskset -c) the servers under test run on.
var childCPUs string

// startChild starts this binary in a child mode and waits until the server it runs is
// SERVING.
func startChild(mode string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := append([]string{self, mode}, args...)
	if childCPUs != "" {
		argv = append([]string{"taskset", "-c", childCPUs}, argv...)
	}
	c := &child{cmd: exec.Command(argv[0], argv[1:]...)}
	c.cmd.Stderr = os.Stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				grpcAddr, metricsAddr, _ := strings.Cut(a, " ")
				addrs <- [2]string{grpcAddr, metricsAddr}
			}
		}
	}()
	select {
	case a := <-addrs:
		c.addr, c.metricsAddr = a[0], a[1]
	case <-time.After(time.Minute):
		c.stop()
		return nil, fmt.Errorf("%s did not start", mode)
	}
	ctx, cancel := ctxFor(time.Minute)
	defer cancel()
	if err := embeddedtest.WaitServing(ctx, c.addr); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// runChildServing runs the serving service with flags args until SIGTERM.
func runChildServing(args []string) int {
	cfg := serving.NewConfig()
	fs := flag.NewFlagSet("serving", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Server.Logger = warnings()
	cfg.Started = func(_, addr, metricsAddr string) { fmt.Printf("ADDR %s %s\n", addr, metricsAddr) }
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serving.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "serving:", err)
		return 1
	}
	return 0
}

// noop answers every Predict with the same reply, computing nothing.
type noop struct {
	servingv1.UnimplementedPredictionServiceServer
	reply *servingv1.PredictResponse
}

func (n *noop) Predict(context.Context, *servingv1.PredictRequest) (*servingv1.PredictResponse, error) {
	return n.reply, nil
}

// runChildNoop runs a no-op PredictionService, answering the reply in file args[0], on a
// mesh server configured as serving's, until SIGTERM.
func runChildNoop(args []string) int {
	b, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	reply := &servingv1.PredictResponse{}
	if err := proto.Unmarshal(b, reply); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := mesh.NewServerConfig("noop")
	cfg.TLS.Insecure = true
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Logger = warnings()
	srv, err := mesh.NewServer(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	servingv1.RegisterPredictionServiceServer(srv.GRPC(), &noop{reply: reply})
	srv.SetReady(true)
	fmt.Printf("ADDR %s\n", srv.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := srv.Serve(ctx, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// profileServing fetches, from serving's pprof endpoint at metricsAddr, a CPU profile over d
// (while the load runs) and then its allocation profile, into dir as serving-cpu.pprof and
// serving-allocs.pprof.
func profileServing(metricsAddr, dir string, d time.Duration) error {
	if metricsAddr == "" {
		return fmt.Errorf("serving reported no metrics address to profile")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	seconds := max(1, int((d - 500*time.Millisecond).Seconds()))
	for _, p := range []struct{ path, file string }{
		{fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), "serving-cpu.pprof"},
		{"/debug/pprof/allocs", "serving-allocs.pprof"},
	} {
		resp, err := http.Get("http://" + metricsAddr + p.path)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", p.path, resp.Status, body)
		}
		path := filepath.Join(dir, p.file)
		if err := os.WriteFile(path, body, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s (go tool pprof -top %s)\n", path, path)
	}
	return nil
}

// runChildEmpty runs the empty server: a plain gRPC server on which every method of every
// service answers an empty message at once, without reading the request, until SIGTERM.
// An empty reply decodes as any message, so ghz takes it for a PredictResponse.
func runChildEmpty() int {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		return stream.SendMsg(&emptypb.Empty{})
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	// ghz learns the method's messages by reflection, which must list the service the empty
	// server stands in for.
	reflection.Register(reflectedServices{srv, servingv1.PredictionService_ServiceDesc})
	fmt.Printf("ADDR %s\n", lis.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	if err := srv.Serve(lis); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// reflectedServices is a server whose reflection also lists a service it answers through
// its unknown-service handler.
type reflectedServices struct {
	*grpc.Server
	extra grpc.ServiceDesc
}

func (r reflectedServices) GetServiceInfo() map[string]grpc.ServiceInfo {
	info := r.Server.GetServiceInfo()
	info[r.extra.ServiceName] = grpc.ServiceInfo{Metadata: r.extra.Metadata}
	return info
}

// warnings is the servers' logger: warnings and errors to stderr (no per-call logs).
func warnings() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// writeMessages writes messages length-delimited, as ghz's binary data file takes them.
func writeMessages[M proto.Message](dir, name string, msgs []M) (string, error) {
	var buf bytes.Buffer
	for _, m := range msgs {
		if _, err := protodelim.MarshalTo(&buf, m); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, name+".bin")
	return path, os.WriteFile(path, buf.Bytes(), 0o600)
}

// report_ is the part of ghz's JSON report the table uses.
type report_ struct {
	Count   int64   `json:"count"`
	Rps     float64 `json:"rps"`
	Latency []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`
	Status map[string]int64 `json:"statusCodeDistribution"`
	Errors map[string]int64 `json:"errorDistribution"`
	// CPUPerCall is the server's CPU time per call, where it was measured.
	CPUPerCall time.Duration `json:"-"`
}

// merge combines two measurements of the same load: counts add, rates and percentiles average.
func merge(rs [2]report_) report_ {
	out := report_{Count: rs[0].Count + rs[1].Count, Rps: (rs[0].Rps + rs[1].Rps) / 2, CPUPerCall: (rs[0].CPUPerCall + rs[1].CPUPerCall) / 2}
	for _, l := range rs[0].Latency {
		l.Latency = (l.Latency + rs[1].p(l.Percentage)) / 2
		out.Latency = append(out.Latency, l)
	}
	return out
}

func (r report_) p(pct int) time.Duration {
	for _, l := range r.Latency {
		if l.Percentage == pct {
			return l.Latency
		}
	}
	return 0
}

// ghzRunner runs ghz, pinned to cpus when set, over connections connections.
type ghzRunner struct {
	bin         string
	cpus        string
	connections int
}

// run runs one measurement against the server c: concurrency conc, a rate limit (0: none),
// for d; the report carries c's CPU time per call.
func (g *ghzRunner) run(c *child, call, data string, conc int, rps float64, d time.Duration) (report_, error) {
	args := []string{g.bin, "--insecure", "--call", call, "-B", data, "-c", strconv.Itoa(conc), "-z", d.String(), "-O", "json",
		"--connections", strconv.Itoa(min(g.connections, conc)), "--duration-stop", "ignore"}
	if rps > 0 {
		args = append(args, "--rps", strconv.Itoa(int(rps)))
	}
	args = append(args, c.addr)
	if g.cpus != "" {
		args = append([]string{"taskset", "-c", g.cpus}, args...)
	}
	ctx, cancel := ctxFor(d + time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	before, err := c.cpu()
	if err != nil {
		return report_{}, err
	}
	out, err := cmd.Output()
	if err != nil {
		return report_{}, fmt.Errorf("ghz %s: %v: %s", call, err, stderr.String())
	}
	after, err := c.cpu()
	if err != nil {
		return report_{}, err
	}
	var r report_
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("ghz report: %w", err)
	}
	if len(r.Errors) > 0 || r.Status["OK"] != r.Count {
		return r, fmt.Errorf("ghz %s: errors %v, statuses %v", call, r.Errors, r.Status)
	}
	if r.Count > 0 {
		r.CPUPerCall = (after - before) / time.Duration(r.Count)
	}
	return r, nil
}

// findBin returns a pinned tool: $BULLSEYE_BIN/name, or bin/name at the repository's root.
func findBin(name string) string {
	if dir := os.Getenv("BULLSEYE_BIN"); dir != "" {
		return filepath.Join(dir, name)
	}
	wd, _ := os.Getwd()
	for root := wd; ; root = filepath.Dir(root) {
		if _, err := os.Stat(filepath.Join(root, "go.work")); err == nil {
			return filepath.Join(root, "bin", name)
		}
		if filepath.Dir(root) == root {
			return name
		}
	}
}
