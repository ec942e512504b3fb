package service

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// DependencyNATS is the name of the NATS connection among a server's dependencies
// (mesh.Server.SetDependency, the bullseye_dependency_up metric).
const DependencyNATS = "nats"

// Bounds of the wait between two rounds of reconnection attempts to NATS.
const (
	natsMinReconnectDelay = 100 * time.Millisecond
	natsMaxReconnectDelay = 2 * time.Second
)

// natsReconnectDelay doubles the wait from natsMinReconnectDelay up to natsMaxReconnectDelay,
// and draws it between half of that and all of it, so that replicas do not come back in step.
func natsReconnectDelay(attempts int) time.Duration {
	d := natsMaxReconnectDelay
	if attempts < 16 {
		d = min(natsMinReconnectDelay<<max(attempts-1, 0), natsMaxReconnectDelay)
	}
	return d/2 + rand.N(d/2+1)
}

// ConnectNATS connects to NATS at url as name, the one way every service connects: it retries
// a failed first connection and reconnects for ever with a capped, jittered backoff, and opts
// are applied after these options (ingest adds nats.ReconnectBufSize(-1) so that publishes fail
// at once while disconnected). When srv is not nil the connection's state is its "nats"
// dependency: down (health NOT_SERVING, out of discovery) from the start until connected and
// while disconnected, each change logged in one line. A connection that the client closes for
// good (such as after an -ERR the client does not retry) cannot come back, since the service's
// consumers hold it: ConnectNATS then calls srv.Fail, so that Serve returns an error and the
// process is restarted by its supervisor. Closing the returned connection deliberately does not.
func ConnectNATS(url, name string, srv *mesh.Server, opts ...nats.Option) (*nats.Conn, error) {
	logger := slog.Default()
	if srv != nil {
		logger = srv.Logger()
		srv.SetDependency(DependencyNATS, false)
	}
	var mu sync.Mutex
	report := func(nc *nats.Conn) {
		if srv == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		srv.SetDependency(DependencyNATS, nc.IsConnected())
	}
	base := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(natsReconnectDelay),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.NoCallbacksAfterClientClose(),
		nats.ConnectHandler(func(nc *nats.Conn) {
			logger.Info("connected to NATS", slog.String("url", nc.ConnectedUrlRedacted()))
			report(nc)
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			logger.Warn("NATS connection lost; not serving while reconnecting", slog.Any("error", err))
			report(nc)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("NATS connection back; serving", slog.String("url", nc.ConnectedUrlRedacted()))
			report(nc)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			err := fmt.Errorf("NATS connection to %s closed for good: %v", url, nc.LastError())
			logger.Error("NATS connection closed for good; the service stops so that it is restarted", slog.Any("error", nc.LastError()))
			if srv != nil {
				report(nc)
				srv.Fail(err)
			}
		}),
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", url, err)
	}
	report(nc)
	return nc, nil
}

// JetStreamOptions are the settings of a service's JetStream connection; the zero value takes
// nats.go's defaults.
type JetStreamOptions struct {
	// MaxPending is the most asynchronous publishes awaiting their acks; 0 means nats.go's
	// default (4000).
	MaxPending int
	// Timeout bounds a JetStream API call whose context has no deadline, and the wait for the
	// ack of an asynchronous publish; 0 means nats.go's defaults (5 s for a call, no bound for
	// an ack).
	Timeout time.Duration
	// NoReconnectBuffer makes publishes fail at once while the connection is down, instead of
	// being buffered and sent once it is back: for a service that tells its caller a write is
	// stored only once it is.
	NoReconnectBuffer bool
}

// ConnectJetStream connects to NATS at url as name (ConnectNATS, with srv's "nats" dependency)
// and opens JetStream on the connection with o. The caller closes the connection, once what
// uses it has stopped.
func ConnectJetStream(url, name string, srv *mesh.Server, o JetStreamOptions) (*nats.Conn, jetstream.JetStream, error) {
	var natsOpts []nats.Option
	if o.NoReconnectBuffer {
		natsOpts = append(natsOpts, nats.ReconnectBufSize(-1))
	}
	var jsOpts []jetstream.JetStreamOpt
	if o.MaxPending > 0 {
		jsOpts = append(jsOpts, jetstream.WithPublishAsyncMaxPending(o.MaxPending))
	}
	if o.Timeout > 0 {
		jsOpts = append(jsOpts, jetstream.WithPublishAsyncTimeout(o.Timeout), jetstream.WithDefaultTimeout(o.Timeout))
	}
	nc, err := ConnectNATS(url, name, srv, natsOpts...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jsOpts...)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("opening JetStream at %s: %w", url, err)
	}
	return nc, js, nil
}
