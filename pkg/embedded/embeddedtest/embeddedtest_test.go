package embeddedtest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

// probeEnv, when set, makes this test binary a service binary (bullseye-probe, a pkg/service
// node serving nothing but health), for the Process tests to run.
const probeEnv = "BULLSEYE_EMBEDDEDTEST_PROBE"

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) != "" {
		os.Exit(runProbe(os.Args[1:]))
	}
	goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...)
}

func runProbe(args []string) int {
	cfg := service.NewConfig("probe")
	return service.Main(service.Command{
		Name:   "probe",
		Flags:  cfg.RegisterFlags,
		Server: func() *mesh.ServerConfig { return &cfg.Server },
		Run: func(ctx context.Context) error {
			n, err := service.NewNode(ctx, cfg)
			if err != nil {
				return err
			}
			n.Server().SetReady(true)
			return n.Serve(ctx)
		},
	}, args, os.Stdout, os.Stderr)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestNewStartsWhatServicesStandOn: the environment's etcd answers, its JetStream holds the
// event log's streams, and its key file holds the key its pseudonymiser uses.
func TestNewStartsWhatServicesStandOn(t *testing.T) {
	e := embeddedtest.New(t)
	ctx := ctxT(t, 20*time.Second)
	if _, err := e.Cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("etcd Put: %v", err)
	}
	for _, name := range []string{eventlog.EventsStream, eventlog.AuditStream} {
		if _, err := e.JS.Stream(ctx, name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
	ps, err := eventlog.LoadPseudonymiser(e.KeyFile, "")
	if err != nil {
		t.Fatalf("loading the key file: %v", err)
	}
	if got, want := ps.SubjectHash("alice"), e.Pseudonymiser.SubjectHash("alice"); got != want {
		t.Errorf("the key file's pseudonymiser hashes alice to %q, the environment's to %q", got, want)
	}
}

// TestCloseRunsLastAddedFirst: Close runs what OnClose added in reverse, then the servers'
// own stops, once.
func TestCloseRunsLastAddedFirst(t *testing.T) {
	e, err := embeddedtest.Start(ctxT(t, 30*time.Second), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var order []int
	e.OnClose(func() { order = append(order, 1) })
	e.OnClose(func() { order = append(order, 2) })
	e.Close()
	e.Close()
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Errorf("Close ran %v, want [2 1]", order)
	}
	if _, err := e.Cli.Get(ctxT(t, time.Second), "k"); err == nil {
		t.Error("the etcd client still answers after Close")
	}
}

// TestJetStreamPublishesAndConsumes: JetStream's server takes a stream, a message published
// to it is consumed back, and the test's cleanup closes the connection.
func TestJetStreamPublishesAndConsumes(t *testing.T) {
	var nc *nats.Conn
	t.Run("server", func(t *testing.T) {
		var js jetstream.JetStream
		js, nc = embeddedtest.JetStream(t)
		ctx := ctxT(t, 20*time.Second)
		st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
		if err != nil {
			t.Fatalf("CreateStream: %v", err)
		}
		if _, err := js.Publish(ctx, "t.one", []byte("hello")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatalf("OrderedConsumer: %v", err)
		}
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if m.Subject() != "t.one" || string(m.Data()) != "hello" {
			t.Errorf("consumed %s %q, want t.one \"hello\"", m.Subject(), m.Data())
		}
	})
	if nc == nil || !nc.IsClosed() {
		t.Error("the connection is open after the test's cleanup")
	}
}

// TestEtcdPutsAndGets: Etcd's client reads back what it puts, and the test's cleanup closes
// it.
func TestEtcdPutsAndGets(t *testing.T) {
	var cli *clientv3.Client
	t.Run("server", func(t *testing.T) {
		cli = embeddedtest.Etcd(t)
		ctx := ctxT(t, 20*time.Second)
		if _, err := cli.Put(ctx, "k", "v"); err != nil {
			t.Fatalf("Put: %v", err)
		}
		resp, err := cli.Get(ctx, "k")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
			t.Errorf("Get(k) = %v, want one value v", resp.Kvs)
		}
	})
	if cli == nil {
		t.Fatal("no client")
	}
	if _, err := cli.Get(ctxT(t, time.Second), "k"); err == nil {
		t.Error("the etcd client still answers after the test's cleanup")
	}
}

// TestBinariesPrefersBULLSEYE_BIN: a binary in $BULLSEYE_BIN is used as it is; one that is in
// neither $BULLSEYE_BIN nor the sources is an error that says so.
func TestBinariesPrefersBULLSEYE_BIN(t *testing.T) {
	dir := t.TempDir()
	want := filepath.Join(dir, "bullseye-probe")
	if err := os.WriteFile(want, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BULLSEYE_BIN", dir)
	var bins embeddedtest.Binaries
	defer bins.Remove()
	if got, err := bins.Path("bullseye-probe"); err != nil || got != want {
		t.Errorf("Path(bullseye-probe) = %q, %v; want %q", got, err, want)
	}
	if got, err := bins.Path("bullseye-nothing"); err == nil || !strings.Contains(err.Error(), "no sources of bullseye-nothing") {
		t.Errorf("Path(bullseye-nothing) = %q, %v; want an error naming the missing sources", got, err)
	}
}

// TestStartProcessFindsItsListeners: a service binary started on ports of its choosing is
// SERVING at the address StartProcess read from its log, serves metrics at MetricsAddr (Gather
// parses them), gets the environment's flags (it registers in the environment's etcd), and
// Kill stops it.
func TestStartProcessFindsItsListeners(t *testing.T) {
	e := embeddedtest.New(t)
	t.Setenv(probeEnv, "1")
	var logs bytes.Buffer
	p, err := e.StartProcess(ctxT(t, time.Minute), os.Args[0], &logs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Addr, "127.0.0.1:") || strings.HasSuffix(p.Addr, ":0") || !strings.HasPrefix(p.MetricsAddr, "127.0.0.1:") {
		t.Errorf("Addr %q, MetricsAddr %q; want ports chosen on 127.0.0.1", p.Addr, p.MetricsAddr)
	}
	mfs, err := p.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "go_goroutines"
	}
	if !found {
		t.Errorf("Gather gave %d metric families, none go_goroutines", len(mfs))
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := e.Cli.Get(ctxT(t, 5*time.Second), mesh.ServicePrefix+"probe/", clientv3.WithPrefix())
		if err == nil && len(resp.Kvs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe is not registered in the environment's etcd: %v, %v", resp, err)
		}
	}
	p.Kill()
	if err := embeddedtest.WaitServing(ctxT(t, 300*time.Millisecond), p.Addr); err == nil {
		t.Error("the process still serves after Kill")
	}
	if !strings.Contains(logs.String(), `"msg":"serving"`) {
		t.Errorf("the log written to logs has no serving record:\n%s", logs.String())
	}
}

// TestStartProcessReportsAnEarlyExit: a binary that exits before it listens is an error that
// shows the start of its log.
func TestStartProcessReportsAnEarlyExit(t *testing.T) {
	e := embeddedtest.New(t)
	t.Setenv(probeEnv, "1")
	_, err := e.StartProcess(ctxT(t, time.Minute), os.Args[0], nil, "--no-such-flag")
	if err == nil || !strings.Contains(err.Error(), "exited before listening") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("StartProcess with a bad flag: %v; want an early exit showing the log", err)
	}
}

func TestWriteBenchmarksReplacesItsSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(path, []byte("# Benchmarks\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"first table", "second table"} {
		if err := embeddedtest.WriteBenchmarks(path, "bench-x", "make bench-x", table); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if strings.Count(text, "<!-- bench-x:begin -->") != 1 || strings.Contains(text, "first table") ||
		!strings.Contains(text, "```\nsecond table\n```\n<!-- bench-x:end -->\n") || !strings.Contains(text, "kept\n<!-- other:end -->") {
		t.Errorf("after two writes:\n%s", text)
	}
	if !strings.Contains(text, embeddedtest.Machine()) || !strings.Contains(text, "## make bench-x") {
		t.Errorf("the section does not say the command and the machine:\n%s", text)
	}
}
