package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsServerName is the server name of the embedded NATS server. JetStream keeps it with its
// state, so it must stay the same across restarts.
const natsServerName = "bullseye"

// NATS is a NATS server with JetStream running in this process.
type NATS struct {
	srv  *server.Server
	dir  string
	port int
}

// NATSOption configures StartNATS.
type NATSOption func(*natsOptions)

type natsOptions struct {
	port         int
	startTimeout time.Duration
	logger       *slog.Logger
}

// WithNATSPort makes the server listen on the given port of 127.0.0.1. Zero, the default, picks
// a free port. Restarting on the port of a previous server keeps clients' URLs valid.
func WithNATSPort(port int) NATSOption {
	return func(o *natsOptions) { o.port = port }
}

// WithNATSStartTimeout bounds how long StartNATS waits for the server to accept connections. The
// default is DefaultStartTimeout.
func WithNATSStartTimeout(d time.Duration) NATSOption {
	return func(o *natsOptions) { o.startTimeout = d }
}

// WithNATSLogger sends the server's warnings and errors to logger; its notices go at debug level.
// By default the server logs nothing.
func WithNATSLogger(logger *slog.Logger) NATSOption {
	return func(o *natsOptions) { o.logger = logger }
}

// MaxPayload is the embedded server's largest message, 8 MiB (NATS's own
// default is 1 MiB): a customer's profile is one message of the feature
// state, and its retention is this less a little headroom.
const MaxPayload = 8 << 20

// StartNATS starts a NATS server with JetStream whose streams live in dir and waits until it
// accepts connections. Starting again with the same dir after Shutdown recovers the streams, and
// with WithNATSPort the same port keeps the URL that clients already use.
func StartNATS(dir string, opts ...NATSOption) (*NATS, error) {
	o := natsOptions{port: 0, startTimeout: DefaultStartTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if dir == "" {
		return nil, errors.New("starting NATS: no data directory given")
	}
	port := o.port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{
		ServerName: natsServerName,
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		MaxPayload: MaxPayload,
		NoSigs:     true,
		NoLog:      o.logger == nil,
		// The monitoring endpoint stays off: HTTPPort zero.
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("configuring NATS in %s: %w", dir, err)
	}
	if o.logger != nil {
		srv.SetLoggerV2(natsLogger{o.logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(o.startTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("starting NATS on 127.0.0.1:%d in %s: not ready for connections after %s", o.port, dir, o.startTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("starting NATS in %s: JetStream did not start (see the server log, WithNATSLogger)", dir)
	}
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("starting NATS in %s: unexpected listener address %v", dir, srv.Addr())
	}
	return &NATS{srv: srv, dir: dir, port: addr.Port}, nil
}

// URL returns the client URL of the server, such as nats://127.0.0.1:4222.
func (n *NATS) URL() string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
}

// Port returns the port the server listens on. Pass it to WithNATSPort to restart on it.
func (n *NATS) Port() int {
	return n.port
}

// Dir returns the directory that holds the server's JetStream data.
func (n *NATS) Dir() string {
	return n.dir
}

// Shutdown stops the server and waits until it has stopped. Streams stay in the directory.
func (n *NATS) Shutdown() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// natsLogger adapts slog to the NATS server's logger interface.
type natsLogger struct {
	log *slog.Logger
}

func (l natsLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, v...), slog.String("component", "nats"))
}

func (l natsLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l natsLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l natsLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l natsLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l natsLogger) Tracef(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
