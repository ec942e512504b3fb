package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultStartTimeout bounds how long StartEtcd and StartNATS wait for their server to become
// ready when no other timeout is given.
const DefaultStartTimeout = 30 * time.Second

// etcdMemberName is the member name of the single-node cluster. It is stored in the data
// directory, so it must stay the same across restarts.
const etcdMemberName = "bullseye"

// portAttempts is how many times StartEtcd retries with fresh ports when a port it picked was
// taken by someone else between picking and binding.
const portAttempts = 3

// Etcd is a single-node etcd server running in this process.
type Etcd struct {
	etcd      *embed.Etcd
	dir       string
	endpoints []string
	closing   *atomic.Bool
}

// EtcdOption configures StartEtcd.
type EtcdOption func(*etcdOptions)

type etcdOptions struct {
	clientPort   int
	peerPort     int
	startTimeout time.Duration
	logLevel     string
}

// WithEtcdClientPort makes etcd serve clients on the given port of 127.0.0.1. Zero, the default,
// picks a free port.
func WithEtcdClientPort(port int) EtcdOption {
	return func(o *etcdOptions) { o.clientPort = port }
}

// WithEtcdPeerPort makes etcd listen for peers on the given port of 127.0.0.1. Zero, the
// default, picks a free port. A single-node cluster never receives peer traffic, but etcd needs
// the port anyway.
func WithEtcdPeerPort(port int) EtcdOption {
	return func(o *etcdOptions) { o.peerPort = port }
}

// WithEtcdStartTimeout bounds how long StartEtcd waits for the server to become ready. The
// default is DefaultStartTimeout.
func WithEtcdStartTimeout(d time.Duration) EtcdOption {
	return func(o *etcdOptions) { o.startTimeout = d }
}

// WithEtcdLogLevel sets etcd's own log level: debug, info, warn, error, panic or fatal. The
// default, error, keeps etcd quiet unless something is wrong.
func WithEtcdLogLevel(level string) EtcdOption {
	return func(o *etcdOptions) { o.logLevel = level }
}

// StartEtcd starts a single-node etcd server whose data lives in dir and waits until it serves
// clients. Calling StartEtcd again with the same dir after Close recovers the stored keys.
// Client and peer URLs are on 127.0.0.1; their ports are picked free unless options fix them.
// ctx bounds the wait for the server to become ready, as does the start timeout.
func StartEtcd(ctx context.Context, dir string, opts ...EtcdOption) (*Etcd, error) {
	o := etcdOptions{startTimeout: DefaultStartTimeout, logLevel: "error"}
	for _, opt := range opts {
		opt(&o)
	}
	if dir == "" {
		return nil, errors.New("starting etcd: no data directory given")
	}
	var err error
	for attempt := 0; attempt < portAttempts; attempt++ {
		var e *Etcd
		e, err = startEtcd(ctx, dir, o)
		if err == nil {
			return e, nil
		}
		// A port picked free may have been taken before etcd bound it: pick again. Ports the
		// caller fixed are not retried, since the same ports would fail the same way.
		if !addrInUse(err) || (o.clientPort != 0 && o.peerPort != 0) {
			break
		}
	}
	return nil, err
}

func startEtcd(ctx context.Context, dir string, o etcdOptions) (*Etcd, error) {
	clientPort, err := portOrFree(o.clientPort)
	if err != nil {
		return nil, fmt.Errorf("picking a client port for etcd: %w", err)
	}
	peerPort, err := portOrFree(o.peerPort)
	if err != nil {
		return nil, fmt.Errorf("picking a peer port for etcd: %w", err)
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}

	cfg := embed.NewConfig()
	cfg.Name = etcdMemberName
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.LogLevel = o.logLevel
	cfg.LogOutputs = []string{embed.StdErrLogOutput}
	closing := new(atomic.Bool)
	logger, err := newEtcdLogger(o.logLevel, closing)
	if err != nil {
		return nil, fmt.Errorf("starting etcd in %s: %w", dir, err)
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd in %s: %w", dir, err)
	}
	endpoints := make([]string, 0, len(e.Clients))
	for _, l := range e.Clients {
		endpoints = append(endpoints, "http://"+l.Addr().String())
	}
	started := &Etcd{etcd: e, dir: dir, endpoints: endpoints, closing: closing}

	timer := time.NewTimer(o.startTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return started, nil
	case err := <-e.Err():
		started.Close()
		return nil, fmt.Errorf("starting etcd in %s: %w", dir, err)
	case <-timer.C:
		started.Close()
		return nil, fmt.Errorf("starting etcd in %s: not ready after %s", dir, o.startTimeout)
	case <-ctx.Done():
		started.Close()
		return nil, fmt.Errorf("starting etcd in %s: %w", dir, ctx.Err())
	}
}

// newEtcdLogger returns a JSON logger to stderr at the given level that goes silent once closing
// is set: etcd reports the closing of its own listeners as errors, which are noise on a
// deliberate Close.
func newEtcdLogger(level string, closing *atomic.Bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("parsing etcd log level: %w", err)
	}
	enc := zapcore.NewJSONEncoder(logutil.DefaultZapLoggerConfig.EncoderConfig)
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), lvl)
	return zap.New(gatedCore{Core: core, closing: closing, bootstrapNoted: new(atomic.Bool)}, zap.AddCaller()), nil
}

// benignBootstrapError is what a new single-node etcd logs once when its storage version monitor
// runs before the first raft term is persisted (etcd-io/etcd#18978). The monitor retries and
// succeeds, so the first occurrence is dropped; a repeat is logged.
const benignBootstrapError = "failed to update storage version"

// gatedCore drops every entry once closing is set, and the first benignBootstrapError.
type gatedCore struct {
	zapcore.Core
	closing *atomic.Bool
	// bootstrapNoted is set once the first benignBootstrapError has been dropped.
	bootstrapNoted *atomic.Bool
}

func (c gatedCore) Enabled(l zapcore.Level) bool {
	return !c.closing.Load() && c.Core.Enabled(l)
}

func (c gatedCore) With(fields []zapcore.Field) zapcore.Core {
	return gatedCore{Core: c.Core.With(fields), closing: c.closing, bootstrapNoted: c.bootstrapNoted}
}

func (c gatedCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.closing.Load() {
		return ce
	}
	if ent.Message == benignBootstrapError && c.bootstrapNoted.CompareAndSwap(false, true) {
		return ce
	}
	return c.Core.Check(ent, ce)
}

// Endpoints returns the client URLs of the server, for clientv3.Config.Endpoints.
func (e *Etcd) Endpoints() []string {
	return append([]string(nil), e.endpoints...)
}

// Dir returns the data directory of the server.
func (e *Etcd) Dir() string {
	return e.dir
}

// Client returns a new client connected to the server. The caller closes it.
func (e *Etcd) Client() (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to embedded etcd at %v: %w", e.endpoints, err)
	}
	return cli, nil
}

// Err returns a channel that reports a fatal error of the running server.
func (e *Etcd) Err() <-chan error {
	return e.etcd.Err()
}

// Close stops the server and waits until it has stopped. Data stays in the directory.
func (e *Etcd) Close() {
	e.closing.Store(true)
	e.etcd.Close()
}

// addrInUse reports whether err says that a port was already taken. etcd does not always wrap
// the listener's error, so its text is checked too.
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// portOrFree returns port when it is set, and otherwise a port of 127.0.0.1 that was free a
// moment ago.
func portOrFree(port int) (int, error) {
	if port != 0 {
		return port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
