package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// binDir holds the binaries built for these tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bullseye-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// -buildvcs=auto stamps the revision (for --version) when the sources
	// are a git checkout, whatever GOFLAGS says.
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", dir,
		"github.com/bullseye-ml/bullseye/cmd/bullseye",
		"github.com/bullseye-ml/bullseye/services/ingest/cmd/bullseye-ingest",
		"github.com/bullseye-ml/bullseye/services/feature/cmd/bullseye-feature",
		"github.com/bullseye-ml/bullseye/services/training/cmd/bullseye-training",
		"github.com/bullseye-ml/bullseye/services/serving/cmd/bullseye-serving")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries under test:", err)
		os.Exit(1)
	}
	code := 0
	func() {
		defer os.RemoveAll(dir)
		if err := goleak.Find(leakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines running before the tests:", err)
		}
		code = m.Run()
		if code == 0 {
			if err := goleak.Find(leakOptions()...); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
			}
		}
	}()
	os.Exit(code)
}

// TestVersionOfEveryBinary runs each of the five binaries with --version:
// each exits 0 and prints its name, the Go version that built it and, in a
// git clone, the commit it was built from and whether the tree had
// changes.
func TestVersionOfEveryBinary(t *testing.T) {
	root := repoRoot(t)
	// Go stamps the revision in a clone, not in a linked worktree (whose .git is a file).
	st, err := os.Stat(filepath.Join(root, ".git"))
	inGit := err == nil && st.IsDir()
	revision := regexp.MustCompile(`(?m)^  revision  ([0-9a-f]{40})$`)
	modified := regexp.MustCompile(`(?m)^  modified  (true|false)$`)
	for _, name := range []string{"bullseye", "bullseye-ingest", "bullseye-feature", "bullseye-training", "bullseye-serving"} {
		out, err := exec.Command(filepath.Join(binDir, name), "--version").Output()
		if err != nil {
			t.Errorf("%s --version: %v", name, err)
			continue
		}
		text := string(out)
		if !strings.HasPrefix(text, name+" ") || !strings.Contains(text, "\n  go        "+runtime.Version()+"\n") {
			t.Errorf("%s --version printed %q, want its name and %s", name, text, runtime.Version())
		}
		if !inGit {
			continue
		}
		m := revision.FindStringSubmatch(text)
		if m == nil {
			t.Errorf("%s --version printed %q, want the revision it was built from", name, text)
			continue
		}
		if kind, err := exec.Command("git", "-C", root, "cat-file", "-t", m[1]).Output(); err != nil || strings.TrimSpace(string(kind)) != "commit" {
			t.Errorf("%s --version names revision %s, which is not a commit of this repository (%v)", name, m[1], err)
		}
		if !modified.MatchString(text) {
			t.Errorf("%s --version printed %q, want whether the tree was modified", name, text)
		}
	}
}

// repoRoot returns the folder of go.work above the working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
	}
	t.Fatalf("no go.work above %s", wd)
	return ""
}

// infra starts an embedded etcd and NATS for one test.
func infra(t *testing.T) (*embedded.Etcd, *embedded.NATS, *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := embedded.StartEtcd(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	n, err := embedded.StartNATS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return e, n, cli
}

// proc is a service binary running under a test.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

func startFeature(t *testing.T, e *embedded.Etcd, n *embedded.NATS, ttl time.Duration) *proc {
	t.Helper()
	return startService(t, "feature", e, n, "--listen", "127.0.0.1:0", "--lease-ttl", ttl.String())
}

// startService runs the named service's binary against e and n, in
// plaintext, with extra flags.
func startService(t *testing.T, name string, e *embedded.Etcd, n *embedded.NATS, extra ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "bullseye-"+name), append([]string{
		"--etcd-endpoints", strings.Join(e.Endpoints(), ","),
		"--nats-url", n.URL(),
		"--insecure",
		"--data-dir", t.TempDir(),
	}, extra...)...)
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// waitEndpoints polls discovery until service has exactly want endpoints and
// returns them and how long it took.
func waitEndpoints(t *testing.T, d *mesh.Discovery, service string, want int, within time.Duration) ([]string, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		eps, err := d.Endpoints(ctx, service)
		cancel()
		if err == nil && len(eps) == want {
			return eps, time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s has endpoints %v (err %v) after %v, want %d", service, eps, err, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKilledServiceLeavesDiscoveryWithinTTL kills a feature process without
// letting it deregister: its registration must expire with its lease, and a
// restarted process must register again.
func TestKilledServiceLeavesDiscoveryWithinTTL(t *testing.T) {
	e, n, cli := infra(t)
	d := mesh.NewDiscovery(cli)
	const ttl = 2 * time.Second
	p := startFeature(t, e, n, ttl)
	first, _ := waitEndpoints(t, d, "feature", 1, 20*time.Second)

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	// etcd checks lease expiry every 500 ms; allow that and a little slack.
	_, took := waitEndpoints(t, d, "feature", 0, ttl+3*time.Second)
	t.Logf("the killed instance %s left discovery after %v (lease TTL %v)", first[0], took, ttl)

	startFeature(t, e, n, ttl)
	again, _ := waitEndpoints(t, d, "feature", 1, 20*time.Second)
	if again[0] == first[0] {
		t.Logf("the restarted instance reused address %s", again[0])
	}
}

// TestGracefulStopOfOneInstanceFailsNoCall runs two feature instances, sends
// a steady stream of calls through discovery, stops one with SIGTERM and
// checks that no call failed and that the survivor took over.
func TestGracefulStopOfOneInstanceFailsNoCall(t *testing.T) {
	e, n, cli := infra(t)
	d := mesh.NewDiscovery(cli)
	a := startFeature(t, e, n, 10*time.Second)
	startFeature(t, e, n, 10*time.Second)
	eps, _ := waitEndpoints(t, d, "feature", 2, 20*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := d.Dial(ctx, "feature", mesh.WithTLS(mesh.TLSConfig{Insecure: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	var (
		mu       sync.Mutex
		served   = map[string]int{}
		failures []error
		calls    atomic.Int64
		stopped  atomic.Bool
		after    = map[string]int{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var p peer.Peer
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := client.Check(cctx, &healthpb.HealthCheckRequest{Service: "liveness"}, grpc.Peer(&p), grpc.WaitForReady(true))
				ccancel()
				calls.Add(1)
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else if p.Addr != nil {
					served[p.Addr.String()]++
					if stopped.Load() {
						after[p.Addr.String()]++
					}
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	// Let both instances take calls, then stop the first gracefully.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		both := len(served) == 2
		for _, n := range served {
			both = both && n >= 20
		}
		mu.Unlock()
		if both || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
		stopped.Store(true)
		if a.err != nil {
			t.Errorf("the stopped instance exited with %v, want a clean exit", a.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stopped instance did not exit within 30s")
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d calls; served per instance %v; after the stop %v", calls.Load(), served, after)
	if len(failures) > 0 {
		t.Fatalf("%d of %d calls failed, first: %v", len(failures), calls.Load(), failures[0])
	}
	if len(served) != 2 {
		t.Errorf("calls reached %v, want both instances %v", served, eps)
	}
	if len(after) != 1 {
		t.Errorf("after the stop calls reached %v, want only the surviving instance", after)
	}
	waitEndpoints(t, d, "feature", 1, 5*time.Second)
}

// TestServingReadinessFollowsFeature checks that serving is ready only while
// it reaches the feature service through discovery, as the binary's health
// subcommand (a container health check) reports it.
func TestServingReadinessFollowsFeature(t *testing.T) {
	e, n, _ := infra(t)
	addr := freeAddr(t)
	startService(t, "serving", e, n, "--listen", addr, "--readiness-interval", "100ms")
	health := func() (int, string) {
		cmd := exec.Command(filepath.Join(binDir, "bullseye-serving"), "health", "--addr", addr, "--insecure", "--timeout", "1s")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	// Without a feature service, serving answers but is not ready.
	waitFor(t, 20*time.Second, "serving to answer NOT_SERVING", func() bool {
		code, out := health()
		return code == 1 && strings.Contains(out, "NOT_SERVING")
	})
	feature := startFeature(t, e, n, 2*time.Second)
	waitFor(t, 20*time.Second, "serving to become ready once feature runs", func() bool {
		code, _ := health()
		return code == 0
	})
	// Losing every feature instance makes serving unready again.
	if err := feature.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "serving to become unready once feature stops", func() bool {
		code, _ := health()
		return code == 1
	})
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var (
	endpointLine = regexp.MustCompile(`^(ingest|feature|training|serving)\s+(\S+)\s+metrics\s+(\S+)$`)
	exportLine   = regexp.MustCompile(`^export (BULLSEYE_ETCD)=(\S+)$`)
)

// TestGrpcurlAgainstDev runs `bullseye dev --port-base 0`, reads the
// addresses it prints and checks with the pinned grpcurl that each lists
// its services by reflection and that an RPC can be described, and that
// each printed metrics URL serves the service's metrics, and that the
// bullseye client finds the mesh through the printed export line alone;
// then stops the mesh with SIGTERM and expects a clean exit.
func TestGrpcurlAgainstDev(t *testing.T) {
	grpcurl := tool(t, "grpcurl")
	cmd := exec.Command(filepath.Join(binDir, "bullseye"), "dev", "--port-base", "0", "--data-dir", t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	addrs, metrics := map[string]string{}, map[string]string{}
	var export []string
	timeout := time.After(90 * time.Second)
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				<-exited
				t.Fatalf("bullseye dev stopped before it was ready: %v", exitErr)
			}
			if m := endpointLine.FindStringSubmatch(l); m != nil {
				addrs[m[1]], metrics[m[1]] = m[2], m[3]
			}
			if m := exportLine.FindStringSubmatch(l); m != nil {
				export = m[1:]
			}
			if strings.HasPrefix(l, "mesh ready") {
				break read
			}
		case <-timeout:
			t.Fatal("bullseye dev printed no 'mesh ready' within 90s")
		}
	}
	want := map[string][]string{
		"ingest":   {"bullseye.ingest.v1.IngestService"},
		"feature":  {"bullseye.feature.v1.FeatureService"},
		"training": {"bullseye.training.v1.TrainingService"},
		"serving":  {"bullseye.serving.v1.PredictionService", "inference.GRPCInferenceService"},
	}
	if len(addrs) != len(want) {
		t.Fatalf("bullseye dev printed %v, want an address and a metrics URL for each of the four services", addrs)
	}
	for svc, url := range metrics {
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("%s metrics at %s: %v", svc, url, err)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf(`bullseye_dependency_up{dependency="etcd",service=%q} 1`, svc)
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s metrics at %s: %s, %d bytes (%v); want 200 and %s", svc, url, resp.Status, len(body), err, want)
		}
	}
	for svc, names := range want {
		out := runTool(t, grpcurl, "-plaintext", addrs[svc], "list")
		for _, n := range append(names, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection") {
			if !strings.Contains(out, n+"\n") {
				t.Errorf("grpcurl list at %s (%s) = %q, want it to contain %s", addrs[svc], svc, out, n)
			}
		}
	}
	if export == nil {
		t.Error("bullseye dev printed no export BULLSEYE_ETCD= line")
	} else {
		client := exec.Command(filepath.Join(binDir, "bullseye"), "models", "list")
		client.Env = append(os.Environ(), export[0]+"="+export[1])
		if out, err := client.CombinedOutput(); err != nil {
			t.Errorf("%s=%s bullseye models list: %v\n%s", export[0], export[1], err, out)
		}
	}
	desc := runTool(t, grpcurl, "-plaintext", addrs["ingest"], "describe", "bullseye.ingest.v1.IngestService.Track")
	if !strings.Contains(desc, "rpc Track") {
		t.Errorf("grpcurl describe Track = %q, want the rpc's signature", desc)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("bullseye dev exited with %v after SIGTERM, want 0", exitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bullseye dev did not exit within 30s of SIGTERM")
	}
	if !strings.Contains(strings.Join(rest, "\n"), "stopped") {
		t.Errorf("bullseye dev printed %q after SIGTERM, want it to say it stopped", rest)
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
	}
	return string(out)
}

// tool finds one of the project's pinned tools: in $BULLSEYE_BIN, else in
// the bin folder at the repository's root (make tools installs it there).
func tool(t *testing.T, name string) string {
	t.Helper()
	dirs := []string{os.Getenv("BULLSEYE_BIN"), filepath.Join(repoRoot(t), "bin")}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found in %v: run 'make tools'", name, dirs)
	return ""
}

// testWriter sends a subprocess's stderr to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}

func leakOptions() []goleak.Option {
	return embeddedtest.GoleakOptions()
}
