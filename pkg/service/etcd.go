package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// DependencyEtcd is the name of the etcd connection among a server's dependencies.
const DependencyEtcd = "etcd"

// How often the etcd connection is probed, how long one probe may take, and how many probes
// in a row must fail before etcd counts as lost (one slow answer is not a lost connection).
const (
	etcdProbeInterval = time.Second
	etcdProbeTimeout  = 2 * time.Second
	etcdProbeFailures = 3
)

// etcdProbeKey is read (linearizably, so a member without quorum fails the probe) to check
// that etcd answers; it is never written.
const etcdProbeKey = "bullseye/health-probe"

// ConnectEtcd connects to etcd, the one way every service does: reconnecting for ever with a
// backoff capped at natsMaxReconnectDelay, keepalives that notice a dead connection, and a
// first request within dialTimeout so that a wrong endpoint is reported at start. The client
// lives until it is closed, not until ctx ends.
func ConnectEtcd(ctx context.Context, endpoints []string, dialTimeout time.Duration) (*clientv3.Client, error) {
	// etcd closes a connection that pings more often than every 5 s (its
	// --grpc-keepalive-min-time); the probes of WatchEtcd notice a lost etcd sooner anyway.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		Context:              context.WithoutCancel(ctx),
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: natsMinReconnectDelay, Multiplier: 1.6, Jitter: 0.2, MaxDelay: natsMaxReconnectDelay},
			MinConnectTimeout: dialTimeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %v: %w", endpoints, err)
	}
	// clientv3.New does not wait for a connection.
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	_, err = cli.Get(pctx, etcdProbeKey)
	cancel()
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("reaching etcd at %v: %w", endpoints, err)
	}
	return cli, nil
}

// WatchEtcd keeps srv's "etcd" dependency in step with cli until cli is closed: down after
// etcdProbeFailures failed probes in a row (health NOT_SERVING, out of discovery), up again at
// the first probe that succeeds, each change logged in one line.
func WatchEtcd(cli *clientv3.Client, srv *mesh.Server) {
	srv.SetDependency(DependencyEtcd, true)
	go func() {
		up, failures := true, 0
		t := time.NewTicker(etcdProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-cli.Ctx().Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(cli.Ctx(), etcdProbeTimeout)
			_, err := cli.Get(pctx, etcdProbeKey)
			cancel()
			if cli.Ctx().Err() != nil {
				return
			}
			switch {
			case err == nil && !up:
				up, failures = true, 0
				srv.Logger().Info("etcd connection back; serving")
				srv.SetDependency(DependencyEtcd, true)
			case err == nil:
				failures = 0
			case up:
				if failures++; failures >= etcdProbeFailures {
					up = false
					srv.Logger().Warn("etcd connection lost; not serving while reconnecting", slog.Any("error", err))
					srv.SetDependency(DependencyEtcd, false)
				}
			}
		}
	}()
}
