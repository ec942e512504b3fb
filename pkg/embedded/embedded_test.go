package embedded_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...)
}

func TestEtcdStartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	e, err := embedded.StartEtcd(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("StartEtcd: %v", err)
	}
	defer e.Close()

	eps := e.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") {
		t.Fatalf("Endpoints() = %v, want one http://127.0.0.1:<port> URL", eps)
	}
	cli, err := e.Client()
	if err != nil {
		t.Fatalf("Client: %v", err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func TestEtcdRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()

	first, err := embedded.StartEtcd(ctx, dir)
	if err != nil {
		t.Fatalf("StartEtcd: %v", err)
	}
	cli, err := first.Client()
	if err != nil {
		first.Close()
		t.Fatalf("Client: %v", err)
	}
	_, err = cli.Put(ctx, "bullseye/test/key", "kept")
	cli.Close()
	first.Close()
	if err != nil {
		t.Fatalf("Put: %v", err)
	}

	second, err := embedded.StartEtcd(ctx, dir)
	if err != nil {
		t.Fatalf("StartEtcd again on %s: %v", dir, err)
	}
	defer second.Close()
	cli, err = second.Client()
	if err != nil {
		t.Fatalf("Client: %v", err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "bullseye/test/key")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("after restart Get = %v, want one value %q", resp.Kvs, "kept")
	}
}

func TestEtcdFixedClientPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()

	first, err := embedded.StartEtcd(ctx, dir)
	if err != nil {
		t.Fatalf("StartEtcd: %v", err)
	}
	want := first.Endpoints()
	first.Close()
	u, err := url.Parse(want[0])
	if err != nil {
		t.Fatalf("parsing endpoint %q: %v", want[0], err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("parsing port of %q: %v", want[0], err)
	}

	second, err := embedded.StartEtcd(ctx, dir, embedded.WithEtcdClientPort(p))
	if err != nil {
		t.Fatalf("StartEtcd on port %d: %v", p, err)
	}
	defer second.Close()
	if got := second.Endpoints(); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("Endpoints() = %v, want %v", got, want)
	}
}

func TestEtcdErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		dir  string
		opts []embedded.EtcdOption
	}{
		{name: "no dir", dir: ""},
		{name: "bad log level", dir: t.TempDir(), opts: []embedded.EtcdOption{embedded.WithEtcdLogLevel("loud")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := embedded.StartEtcd(ctx, tt.dir, tt.opts...)
			if err == nil {
				e.Close()
				t.Fatal("StartEtcd succeeded, want an error")
			}
		})
	}
}

func TestNATSStartStop(t *testing.T) {
	n, err := embedded.StartNATS(t.TempDir())
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	defer n.Shutdown()
	if !strings.HasPrefix(n.URL(), "nats://127.0.0.1:") || n.Port() == 0 {
		t.Fatalf("URL() = %q, Port() = %d; want nats://127.0.0.1:<port>", n.URL(), n.Port())
	}
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func TestNATSRestartKeepsStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()

	first, err := embedded.StartNATS(dir)
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	port := first.Port()
	func() {
		defer first.Shutdown()
		nc, err := nats.Connect(first.URL())
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatalf("jetstream.New: %v", err)
		}
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name:     "EVENTS",
			Subjects: []string{"events.>"},
			Storage:  jetstream.FileStorage,
		}); err != nil {
			t.Fatalf("CreateStream: %v", err)
		}
		if _, err := js.Publish(ctx, "events.track", []byte("order completed")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}()

	second, err := embedded.StartNATS(dir, embedded.WithNATSPort(port))
	if err != nil {
		t.Fatalf("StartNATS again on port %d: %v", port, err)
	}
	defer second.Shutdown()
	if second.Port() != port {
		t.Fatalf("Port() = %d after restart, want %d", second.Port(), port)
	}
	nc, err := nats.Connect(second.URL())
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	stream, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatalf("Stream after restart: %v", err)
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("GetMsg after restart: %v", err)
	}
	if got, want := string(msg.Data), "order completed"; got != want || msg.Subject != "events.track" {
		t.Fatalf("after restart message = %q on %q, want %q on events.track", got, msg.Subject, want)
	}
}

func TestNATSReconnectAfterRestart(t *testing.T) {
	dir := t.TempDir()
	first, err := embedded.StartNATS(dir)
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	reconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(first.URL(),
		nats.ReconnectWait(20*time.Millisecond),
		nats.MaxReconnects(-1),
		nats.ReconnectHandler(func(*nats.Conn) {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		first.Shutdown()
		t.Fatalf("Connect: %v", err)
	}
	defer nc.Close()
	first.Shutdown()

	second, err := embedded.StartNATS(dir, embedded.WithNATSPort(first.Port()))
	if err != nil {
		t.Fatalf("StartNATS again: %v", err)
	}
	defer second.Shutdown()
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("client did not reconnect to the restarted server within 10s")
	}
}

func TestNATSLogger(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := embedded.StartNATS(t.TempDir(), embedded.WithNATSLogger(logger))
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	n.Shutdown()
	if !strings.Contains(buf.String(), "component=nats") {
		t.Fatalf("log = %q, want records from the NATS server", buf.String())
	}
}

func TestNATSErrors(t *testing.T) {
	if n, err := embedded.StartNATS(""); err == nil {
		n.Shutdown()
		t.Fatal("StartNATS with no dir succeeded, want an error")
	}
}

// TestServersUnderUseLeaveNoGoroutines exercises what the services use (an etcd watch and lease
// keepalive, a JetStream key-value bucket and a pull consumer) and closes everything: TestMain's
// leak check then proves that GoleakOptions needs no exception.
func TestServersUnderUseLeaveNoGoroutines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	e, err := embedded.StartEtcd(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("StartEtcd: %v", err)
	}
	defer e.Close()
	cli, err := e.Client()
	if err != nil {
		t.Fatalf("Client: %v", err)
	}
	defer cli.Close()
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	watch := cli.Watch(wctx, "bullseye/", clientv3.WithPrefix())
	lease, err := cli.Grant(ctx, 5)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	if _, err := cli.KeepAlive(wctx, lease.ID); err != nil {
		t.Fatalf("KeepAlive: %v", err)
	}
	if _, err := cli.Put(ctx, "bullseye/x", "1", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	select {
	case resp := <-watch:
		if len(resp.Events) != 1 {
			t.Fatalf("watch got %v, want one event", resp.Events)
		}
	case <-ctx.Done():
		t.Fatal("no watch event")
	}

	n, err := embedded.StartNATS(t.TempDir())
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	defer n.Shutdown()
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "features"})
	if err != nil {
		t.Fatalf("CreateKeyValue: %v", err)
	}
	if _, err := kv.Put(ctx, "user.1", []byte("v")); err != nil {
		t.Fatalf("kv Put: %v", err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
	if err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	if _, err := js.Publish(ctx, "events.track", []byte("e")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "feature", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("CreateOrUpdateConsumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	for msg := range batch.Messages() {
		if err := msg.Ack(); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	if err := batch.Error(); err != nil {
		t.Fatalf("batch: %v", err)
	}
}
