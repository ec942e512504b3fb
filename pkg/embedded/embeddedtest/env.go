package embeddedtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
)

// HMACKey is the key of an environment's key file, which its Pseudonymiser uses.
const HMACKey = "bullseye-test-hmac-key-0123456789abcdef"

// Env is what the services stand on, for tests: embedded etcd and NATS with the event log's
// streams and buckets, clients of both, and ingest's HMAC key in a file with the
// pseudonymiser built from it.
type Env struct {
	// Etcd and NATS are the embedded servers; NC, JS and Cli clients of them.
	Etcd *embedded.Etcd
	NATS *embedded.NATS
	NC   *nats.Conn
	JS   jetstream.JetStream
	Cli  *clientv3.Client
	// KeyFile holds HMACKey; Pseudonymiser pseudonymises with it.
	KeyFile       string
	Pseudonymiser *eventlog.Pseudonymiser

	dir     string
	mu      sync.Mutex
	closers []func()
}

// New starts an environment for t in its temporary directories and closes it when t's
// cleanup runs.
func New(t testing.TB) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// Start starts an environment with its files under dir. Close releases it.
func Start(ctx context.Context, dir string) (_ *Env, err error) {
	e := &Env{dir: dir}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Etcd, err = embedded.StartEtcd(ctx, filepath.Join(dir, "etcd")); err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	e.OnClose(e.Etcd.Close)
	if e.NATS, err = embedded.StartNATS(filepath.Join(dir, "nats")); err != nil {
		return nil, fmt.Errorf("starting NATS: %w", err)
	}
	e.OnClose(e.NATS.Shutdown)
	if e.NC, err = nats.Connect(e.NATS.URL()); err != nil {
		return nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	e.OnClose(e.NC.Close)
	if e.JS, err = jetstream.New(e.NC, jetstream.WithPublishAsyncMaxPending(8192)); err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	if err := eventlog.Ensure(ctx, e.JS); err != nil {
		return nil, fmt.Errorf("event log layout: %w", err)
	}
	if e.Cli, err = clientv3.New(clientv3.Config{Endpoints: e.Etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	e.OnClose(func() { e.Cli.Close() })
	e.KeyFile = filepath.Join(dir, "hmac.key")
	if err := os.WriteFile(e.KeyFile, []byte(HMACKey+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if e.Pseudonymiser, err = eventlog.NewPseudonymiser([]byte(HMACKey), ""); err != nil {
		return nil, fmt.Errorf("pseudonymiser: %w", err)
	}
	return e, nil
}

// OnClose adds f to what Close runs, before everything added earlier.
func (e *Env) OnClose(f func()) {
	e.mu.Lock()
	e.closers = append(e.closers, f)
	e.mu.Unlock()
}

// Close stops everything the environment started, last started first.
func (e *Env) Close() {
	e.mu.Lock()
	cs := e.closers
	e.closers = nil
	e.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// Dir returns a new directory under the environment's.
func (e *Env) Dir(name string) (string, error) {
	return os.MkdirTemp(e.dir, name+"-")
}
