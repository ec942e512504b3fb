// Command bullseye-serving-bench measures the serving service on this machine with ghz, over
// gRPC on loopback, against embedded etcd and NATS and the real feature service, and prints
// one table (medians of several runs):
//
//	(a) a no-op PredictionService answering the same messages (64 inline features in, the same
//	    reply out) beside Predict of a logistic regression with 64 inline features, concurrency
//	    32: Predict's rate as a share of the no-op's;
//	(b) Predict by user id (features fetched from the feature service), concurrency 64: feature
//	    lookups per call, and the rate as a share of (a)'s Predict;
//	(c) Recommend top 10 over 20,000 items at rank 64, concurrency 64, batched beside batching
//	    off (max batch size 1);
//	(d) the p99 latency of Predict (a) at half its peak rate;
//	(e) Predict of boosted trees (300 trees of up to 31 leaves) with the same 64 inline
//	    features, concurrency 32, as a share of the logistic regression's rate; and with
//	    include_contributions, the serving CPU time TreeSHAP adds to a row (serving's own CPU
//	    time, user and system, per call).
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
	"log/slog"
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
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

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
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case childServing:
			os.Exit(runChildServing(os.Args[2:]))
		case childNoop:
			os.Exit(runChildNoop(os.Args[2:]))
		}
	}
	var o options
	flag.IntVar(&o.runs, "runs", 5, "independent runs of every phase; the table shows medians")
	flag.DurationVar(&o.phase, "phase", 3*time.Second, "how long each measurement lasts")
	flag.IntVar(&o.customers, "customers", 10000, "customers with 64 features in the feature service")
	flag.StringVar(&o.ghz, "ghz", "", "the ghz binary (default: $BULLSEYE_BIN/ghz or bin/ghz at the repository's root)")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the measurements to this file")
	flag.StringVar(&o.only, "only", "", "measure only one load (noop, inline, user, recs), for profiling; no table")
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

	srv, err := startChild(childServing,
		"--etcd-endpoints", strings.Join(env.Endpoints(), ","), "--nats-url", env.NATS.URL(), "--insecure",
		"--listen", "127.0.0.1:0", "--lease-ttl", "2s", "--data-dir", filepath.Join(dir, "serving"), "--readiness-interval", "100ms",
		"--model-batching", fmt.Sprintf("%s:max-batch-size=1,max-concurrent-batches=%d", mfNoBatch, runtime.GOMAXPROCS(0)))
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
	noopAddr := noop.addr
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
	for _, w := range []struct{ addr, call, file string }{{noopAddr, predict, files["inline"]}, {addr, predict, files["inline"]},
		{addr, predict, files["user"]}, {addr, predict, files["boosted"]}, {addr, predict, files["explained"]}, {addr, recommend, files["recs"]}, {addr, recommend, files["recs-off"]}} {
		if _, err := ghz(o.ghz, w.addr, w.call, w.file, 32, 0, time.Second); err != nil {
			return err
		}
	}
	// Each comparison is measured A B B A, every part half a phase long, so that the
	// background load of a shared machine weighs on both sides alike.
	half := o.phase / 2
	pair := func(a, b func() (report_, error)) (report_, report_, error) {
		var ra, rb [2]report_
		var err error
		if ra[0], err = a(); err != nil {
			return report_{}, report_{}, err
		}
		if rb[0], err = b(); err != nil {
			return report_{}, report_{}, err
		}
		if rb[1], err = b(); err != nil {
			return report_{}, report_{}, err
		}
		if ra[1], err = a(); err != nil {
			return report_{}, report_{}, err
		}
		return merge(ra), merge(rb), nil
	}
	call := func(addr, method, file string, c int) func() (report_, error) {
		return func() (report_, error) { return ghz(o.ghz, addr, method, file, c, 0, half) }
	}
	// servingCall is call against serving that also measures serving's CPU time per call.
	servingCall := func(file string, c int) func() (report_, error) {
		return func() (report_, error) {
			before, err := srv.cpu()
			if err != nil {
				return report_{}, err
			}
			r, err := ghz(o.ghz, addr, predict, file, c, 0, half)
			after, cerr := srv.cpu()
			if err == nil && cerr != nil {
				err = cerr
			}
			if r.Count > 0 {
				r.CPUPerCall = (after - before) / time.Duration(r.Count)
			}
			return r, err
		}
	}
	var lookupCount float64
	var userCalls int64
	byUserCall := func() (report_, error) {
		before := lookups()
		r, err := ghz(o.ghz, addr, predict, files["user"], 64, 0, half)
		lookupCount += lookups() - before
		userCalls += r.Count
		return r, err
	}
	var results []result
	for r := range o.runs {
		var res result
		if o.only != "" {
			switch o.only {
			case "inline":
				_, err = call(addr, predict, files["inline"], 32)()
			case "noop":
				_, err = call(noopAddr, predict, files["inline"], 32)()
			case "user":
				_, err = byUserCall()
			case "recs":
				_, err = call(addr, recommend, files["recs"], 64)()
			}
			if err != nil {
				return err
			}
			continue
		}
		if res.noop, res.inline, err = pair(call(noopAddr, predict, files["inline"], 32), call(addr, predict, files["inline"], 32)); err != nil {
			return err
		}
		lookupCount, userCalls = 0, 0
		if res.inline2, res.user, err = pair(call(addr, predict, files["inline"], 32), byUserCall); err != nil {
			return err
		}
		res.lookupsPerCall = lookupCount / float64(userCalls)
		if res.inline3, res.boosted, err = pair(call(addr, predict, files["inline"], 32), servingCall(files["boosted"], 32)); err != nil {
			return err
		}
		if res.boosted2, res.explained, err = pair(servingCall(files["boosted"], 32), servingCall(files["explained"], 32)); err != nil {
			return err
		}
		if res.recs, res.recsOff, err = pair(call(addr, recommend, files["recs"], 64), call(addr, recommend, files["recs-off"], 64)); err != nil {
			return err
		}
		if res.half, err = ghz(o.ghz, addr, predict, files["inline"], 32, res.inline.Rps/2, o.phase); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "run %d: no-op %.0f/s, Predict inline %.0f/s (%.2f); Predict inline %.0f/s, by user %.0f/s (%.2f, %.3f lookups/call); Recommend %.0f/s vs unbatched %.0f/s (%.1f); p99 at %.0f/s %v\n",
			r+1, res.noop.Rps, res.inline.Rps, res.inline.Rps/res.noop.Rps, res.inline2.Rps, res.user.Rps, res.user.Rps/res.inline2.Rps, res.lookupsPerCall,
			res.recs.Rps, res.recsOff.Rps, res.recs.Rps/res.recsOff.Rps, res.half.Rps, res.half.p(99).Round(time.Microsecond))
		fmt.Fprintf(os.Stderr, "run %d: Predict boosted trees %.0f/s (%.2f × logistic's %.0f/s), %v CPU a call; with contributions %.0f/s, %v CPU a call\n",
			r+1, res.boosted.Rps, res.boosted.Rps/res.inline3.Rps, res.inline3.Rps, res.boosted2.CPUPerCall, res.explained.Rps, res.explained.CPUPerCall)
		results = append(results, res)
	}
	if o.only != "" {
		return nil
	}
	return report(o, results)
}

// result is one run's measurements.
type result struct {
	noop, inline, inline2, user, recs, recsOff, half report_
	inline3, boosted, boosted2, explained            report_
	lookupsPerCall                                   float64
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
	pass := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	noop := med(func(r result) float64 { return r.noop.Rps })
	inline := med(func(r result) float64 { return r.inline.Rps })
	inlineRatio := med(func(r result) float64 { return r.inline.Rps / r.noop.Rps })
	user := med(func(r result) float64 { return r.user.Rps })
	userRatio := med(func(r result) float64 { return r.user.Rps / r.inline2.Rps })
	lpc := med(func(r result) float64 { return r.lookupsPerCall })
	recs := med(func(r result) float64 { return r.recs.Rps })
	recsOff := med(func(r result) float64 { return r.recsOff.Rps })
	recRatio := med(func(r result) float64 { return r.recs.Rps / r.recsOff.Rps })
	p99 := dur(func(r result) time.Duration { return r.half.p(99) })
	boosted := med(func(r result) float64 { return r.boosted.Rps })
	boostedRatio := med(func(r result) float64 { return r.boosted.Rps / r.inline3.Rps })
	explained := med(func(r result) float64 { return r.explained.Rps })
	perRow := dur(func(r result) time.Duration { return r.explained.CPUPerCall - r.boosted2.CPUPerCall })

	var table bytes.Buffer
	w := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "serving, ghz v0.120.0, gRPC loopback, %d cores, median of %d runs of %v\tcalls/s\tp50\tp99\tfigure\ttarget\tmet\n", runtime.NumCPU(), o.runs, o.phase)
	fmt.Fprintf(w, "(a) no-op server, same messages (64 inline features), c=32\t%.0f\t%v\t%v\t\t\t\n", noop,
		dur(func(r result) time.Duration { return r.noop.p(50) }), dur(func(r result) time.Duration { return r.noop.p(99) }))
	fmt.Fprintf(w, "(a) Predict, logistic, 64 inline features, c=32\t%.0f\t%v\t%v\t%.2f × no-op\t≥ 0.85\t%s\n", inline,
		dur(func(r result) time.Duration { return r.inline.p(50) }), dur(func(r result) time.Duration { return r.inline.p(99) }), inlineRatio, pass(inlineRatio >= 0.85))
	fmt.Fprintf(w, "(b) Predict by user id (feature lookups), c=64\t%.0f\t%v\t%v\t%.2f × (a) Predict\t≥ 0.6\t%s\n", user,
		dur(func(r result) time.Duration { return r.user.p(50) }), dur(func(r result) time.Duration { return r.user.p(99) }), userRatio, pass(userRatio >= 0.6))
	fmt.Fprintf(w, "(b) feature lookups per Predict call\t\t\t\t%.3f\t≤ 0.2\t%s\n", lpc, pass(lpc <= 0.2))
	fmt.Fprintf(w, "(c) Recommend top 10 of %d items, rank %d, batched, c=64\t%.0f\t%v\t%v\t%.1f × unbatched\t≥ 2\t%s\n", items, rank, recs,
		dur(func(r result) time.Duration { return r.recs.p(50) }), dur(func(r result) time.Duration { return r.recs.p(99) }), recRatio, pass(recRatio >= 2))
	fmt.Fprintf(w, "(c) Recommend, batching off (max batch size 1), c=64\t%.0f\t%v\t%v\t\t\t\n", recsOff,
		dur(func(r result) time.Duration { return r.recsOff.p(50) }), dur(func(r result) time.Duration { return r.recsOff.p(99) }))
	fmt.Fprintf(w, "(d) Predict (a) at half its peak rate, c=32\t%.0f\t%v\t%v\tp99 %v\t< 10ms\t%s\n", med(func(r result) float64 { return r.half.Rps }),
		dur(func(r result) time.Duration { return r.half.p(50) }), p99, p99, pass(p99 < 10*time.Millisecond))
	fmt.Fprintf(w, "(e) Predict, boosted trees (%d trees, ≤ %d leaves), 64 inline features, c=32\t%.0f\t%v\t%v\t%.2f × logistic (a)\t≥ 0.8\t%s\n", boostedTrees, boostedLeaves, boosted,
		dur(func(r result) time.Duration { return r.boosted.p(50) }), dur(func(r result) time.Duration { return r.boosted.p(99) }), boostedRatio, pass(boostedRatio >= 0.8))
	fmt.Fprintf(w, "(e) the same with include_contributions (TreeSHAP), 1 row a call, c=32\t%.0f\t%v\t%v\t+%v serving CPU a row\t\t\n", explained,
		dur(func(r result) time.Duration { return r.explained.p(50) }), dur(func(r result) time.Duration { return r.explained.p(99) }), perRow)
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
)

// child is a server this binary runs in a child mode.
type child struct {
	addr string
	cmd  *exec.Cmd
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

// startChild starts this binary in a child mode and waits until the server it runs is
// SERVING.
func startChild(mode string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{cmd: exec.Command(self, append([]string{mode}, args...)...)}
	c.cmd.Stderr = os.Stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				addrs <- a
			}
		}
	}()
	select {
	case c.addr = <-addrs:
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
	cfg.Started = func(_, addr, _ string) { fmt.Printf("ADDR %s\n", addr) }
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

// ghz runs one measurement: concurrency c, a rate limit (0: none), for d.
func ghz(bin, addr, call, data string, c int, rps float64, d time.Duration) (report_, error) {
	args := []string{"--insecure", "--call", call, "-B", data, "-c", strconv.Itoa(c), "-z", d.String(), "-O", "json", "--connections", "1", "--duration-stop", "ignore"}
	if rps > 0 {
		args = append(args, "--rps", strconv.Itoa(int(rps)))
	}
	ctx, cancel := ctxFor(d + time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, addr)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return report_{}, fmt.Errorf("ghz %s: %v: %s", call, err, stderr.String())
	}
	var r report_
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("ghz report: %w", err)
	}
	if len(r.Errors) > 0 || r.Status["OK"] != r.Count {
		return r, fmt.Errorf("ghz %s: errors %v, statuses %v", call, r.Errors, r.Status)
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
