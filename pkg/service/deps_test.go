package service_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...) }

// startNATS starts a NATS server on 127.0.0.1 for the test; the test needs the server itself to
// cut a client's connection from the server's side.
func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func serving(t *testing.T, s *mesh.Server) (chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done; done <- nil })
	return done, cancel
}

func waitHealth(t *testing.T, addr string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := mesh.CheckHealth(ctx, addr, "", mesh.TLSConfig{Insecure: true})
		cancel()
		got := healthpb.HealthCheckResponse_SERVING
		if errors.Is(err, mesh.ErrNotServing) {
			got = healthpb.HealthCheckResponse_NOT_SERVING
		} else if err != nil {
			got = healthpb.HealthCheckResponse_UNKNOWN
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of %s is %s (%v) after 10s, want %s", addr, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newServer(t *testing.T) *mesh.Server {
	t.Helper()
	cfg := mesh.NewServerConfig("feature")
	cfg.TLS = mesh.TLSConfig{Insecure: true}
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := mesh.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConnectNATSKickedConnectionIsNotServingUntilBack(t *testing.T) {
	ns := startNATS(t)
	s := newServer(t)
	serving(t, s)
	s.SetReady(true)
	nc, err := service.ConnectNATS(ns.ClientURL(), "kick-test", s)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitHealth(t, s.Addr(), healthpb.HealthCheckResponse_SERVING)

	// Cut from the server's side: the client reconnects after at least natsMinReconnectDelay/2,
	// long enough for the NOT_SERVING phase to be seen.
	id, err := nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.DisconnectClientByID(id); err != nil {
		t.Fatalf("DisconnectClientByID: %v", err)
	}
	waitHealth(t, s.Addr(), healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, s.Addr(), healthpb.HealthCheckResponse_SERVING)
	if !nc.IsConnected() {
		t.Fatal("SERVING again but the connection is not connected")
	}
}

func TestConnectNATSClosedConnectionFailsServe(t *testing.T) {
	ns := startNATS(t)
	s := newServer(t)
	done, _ := serving(t, s)
	s.SetReady(true)
	nc, err := service.ConnectNATS(ns.ClientURL(), "closed-test", s)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitHealth(t, s.Addr(), healthpb.HealthCheckResponse_SERVING)

	// A subject past the server's max control line: the server answers -ERR and the client
	// closes the connection for good.
	_ = nc.Publish(strings.Repeat("x", 8<<10), nil)
	_ = nc.Flush()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "closed for good") {
			t.Fatalf("Serve = %v, want the connection's permanent close", err)
		}
		done <- nil
	case <-time.After(10 * time.Second):
		t.Fatalf("Serve did not return within 10s of the NATS connection closing (status %v)", nc.Status())
	}
}

// freePort returns a port of 127.0.0.1 that was free a moment ago, for a server that must come
// back at the same address.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestEtcdStoppedIsNotServingUntilBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	opts := []embedded.EtcdOption{embedded.WithEtcdClientPort(freePort(t)), embedded.WithEtcdPeerPort(freePort(t))}
	etcd, err := embedded.StartEtcd(ctx, dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { etcd.Close() }()
	s := newServer(t)
	serving(t, s)
	s.SetReady(true)
	cli, err := service.ConnectEtcd(ctx, etcd.Endpoints(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	service.WatchEtcd(cli, s)
	waitHealth(t, s.Addr(), healthpb.HealthCheckResponse_SERVING)

	etcd.Close()
	waitHealth(t, s.Addr(), healthpb.HealthCheckResponse_NOT_SERVING)
	if etcd, err = embedded.StartEtcd(ctx, dir, opts...); err != nil {
		t.Fatalf("starting etcd again at the same address: %v", err)
	}
	waitHealth(t, s.Addr(), healthpb.HealthCheckResponse_SERVING)
	if _, err := cli.Put(ctx, "bullseye/test/after", "x"); err != nil {
		t.Fatalf("SERVING again but the client cannot write: %v", err)
	}
}

func TestConnectEtcdUnreachableIsAnErrorAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	_, err := service.ConnectEtcd(ctx, []string{endpoint}, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), endpoint) {
		t.Fatalf("ConnectEtcd to a closed port = %v, want an error naming %s", err, endpoint)
	}
}

func TestConnectJetStreamAppliesTheOptions(t *testing.T) {
	ns := startNATS(t)
	for _, tc := range []struct {
		name        string
		o           service.JetStreamOptions
		timeout     time.Duration // the JetStream's default timeout
		reconnectBS int           // the connection's reconnect buffer size
	}{
		{"defaults", service.JetStreamOptions{}, 5 * time.Second, nats.DefaultReconnectBufSize},
		{"every option", service.JetStreamOptions{MaxPending: 7, Timeout: 300 * time.Millisecond, NoReconnectBuffer: true}, 300 * time.Millisecond, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, js, err := service.ConnectJetStream(ns.ClientURL(), "jetstream-test", nil, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if got := js.Options().DefaultTimeout; got != tc.timeout {
				t.Errorf("default timeout %v, want %v", got, tc.timeout)
			}
			if got := nc.Opts.ReconnectBufSize; got != tc.reconnectBS {
				t.Errorf("reconnect buffer %d, want %d", got, tc.reconnectBS)
			}
			if got := nc.Opts.Name; got != "jetstream-test" {
				t.Errorf("connection name %q, want jetstream-test", got)
			}
		})
	}
}
