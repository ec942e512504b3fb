package embeddedtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
)

// JetStream starts an embedded NATS server for t in its temporary directory and returns a
// JetStream context with default options on a connection to it, and that connection. The
// server holds no streams or buckets: unlike New it does not lay out the event log. t's
// cleanup closes the connection, then shuts the server down.
func JetStream(t testing.TB) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	srv, err := embedded.StartNATS(t.TempDir())
	if err != nil {
		t.Fatalf("starting NATS: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatalf("connecting to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("JetStream: %v", err)
	}
	return js, nc
}

// Etcd starts an embedded etcd server for t in its temporary directory and returns a client of
// it whose logger discards. t's cleanup closes the client, then stops the server.
func Etcd(t testing.TB) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := embedded.StartEtcd(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
