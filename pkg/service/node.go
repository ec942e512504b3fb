package service

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// Node is the plumbing of one running service: its etcd client, discovery
// and gRPC server. A service registers its handlers on Server().GRPC(),
// says when it is ready with Server().SetReady, and calls Serve.
type Node struct {
	cfg       Config
	logger    *slog.Logger
	etcd      *clientv3.Client
	discovery *mesh.Discovery
	server    *mesh.Server
}

// NewNode connects to etcd (its state the server's "etcd" dependency) and opens the
// service's listener. The caller must call Serve or Close.
func NewNode(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Server.Logger
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
		cfg.Server.Logger = logger
	}
	cli, err := ConnectEtcd(ctx, cfg.EtcdEndpoints, cfg.EtcdDialTimeout)
	if err != nil {
		return nil, err
	}
	srv, err := mesh.NewServer(cfg.Server)
	if err != nil {
		cli.Close()
		return nil, err
	}
	WatchEtcd(cli, srv)
	return &Node{
		cfg:       cfg,
		logger:    logger,
		etcd:      cli,
		discovery: mesh.NewDiscovery(cli, mesh.WithLeaseTTL(cfg.LeaseTTL)),
		server:    srv,
	}, nil
}

// Server returns the service's gRPC server wrapper.
func (n *Node) Server() *mesh.Server { return n.server }

// GRPC returns the grpc.Server on which the service registers its handlers.
func (n *Node) GRPC() *grpc.Server { return n.server.GRPC() }

// Etcd returns the node's etcd client.
func (n *Node) Etcd() *clientv3.Client { return n.etcd }

// Logger returns the service's structured logger.
func (n *Node) Logger() *slog.Logger { return n.server.Logger() }

// Config returns the configuration the node was built with.
func (n *Node) Config() Config { return n.cfg }

// Dial returns a connection to every instance of another service, found
// through etcd, with the node's TLS settings.
func (n *Node) Dial(ctx context.Context, service string) (*grpc.ClientConn, error) {
	return n.discovery.Dial(ctx, service, mesh.WithTLS(n.cfg.Server.TLS), mesh.WithTracerProvider(n.cfg.Server.TracerProvider))
}

// JetStream connects the service to NATS as bullseye-<service>, the connection's state the
// server's "nats" dependency, and opens JetStream with o (ConnectJetStream): the one way a
// service reaches JetStream. The caller closes the connection, once what uses it has stopped.
func (n *Node) JetStream(o JetStreamOptions) (*nats.Conn, jetstream.JetStream, error) {
	return ConnectJetStream(n.cfg.NATSURL, "bullseye-"+n.cfg.Server.Service, n.server, o)
}

// Serve registers the service in etcd and serves until ctx is done, then
// shuts down gracefully (DESIGN §5) and closes the etcd client.
func (n *Node) Serve(ctx context.Context) error {
	defer n.etcd.Close()
	if n.cfg.Started != nil {
		n.cfg.Started(n.cfg.Server.Service, n.server.Addr(), n.server.MetricsAddr())
	}
	err := n.server.Serve(ctx, n.discovery)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Close releases the node without serving (after a failed start).
func (n *Node) Close() {
	n.server.Stop()
	n.etcd.Close()
}
