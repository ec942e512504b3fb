package mesh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	etcdresolver "go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
)

// ServicePrefix is the etcd key prefix under which every service instance registers, as
// ServicePrefix + "<service>/<instance>".
const ServicePrefix = "bullseye/services/"

// DefaultLeaseTTL is the default time to live of a registration's lease: how long a crashed
// instance stays discoverable.
const DefaultLeaseTTL = 10 * time.Second

// reregisterMaxBackoff caps the wait between two failed attempts to register again.
const reregisterMaxBackoff = 2 * time.Second

// ServiceTarget returns the etcd key prefix of a service's instances, without the trailing
// slash: "bullseye/services/<service>".
func ServiceTarget(service string) string {
	return ServicePrefix + service
}

// Discovery registers service instances in etcd and dials services through it. It keeps the
// experimental etcd naming API behind this small type.
type Discovery struct {
	cli    *clientv3.Client
	ttl    time.Duration
	logger *slog.Logger
}

// DiscoveryOption configures a Discovery.
type DiscoveryOption func(*Discovery)

// WithLeaseTTL sets the time to live of registration leases, rounded up to whole seconds. The
// default is DefaultLeaseTTL.
func WithLeaseTTL(ttl time.Duration) DiscoveryOption {
	return func(d *Discovery) { d.ttl = ttl }
}

// WithDiscoveryLogger sets the logger that reports lost and renewed registrations. The default
// is slog.Default().
func WithDiscoveryLogger(logger *slog.Logger) DiscoveryOption {
	return func(d *Discovery) { d.logger = logger }
}

// NewDiscovery returns a Discovery that uses the etcd client cli. The caller keeps ownership of
// cli and closes it after every Registration and connection made here is closed.
func NewDiscovery(cli *clientv3.Client, opts ...DiscoveryOption) *Discovery {
	d := &Discovery{cli: cli, ttl: DefaultLeaseTTL}
	for _, opt := range opts {
		opt(d)
	}
	if d.logger == nil {
		d.logger = slog.Default()
	}
	if d.ttl <= 0 {
		d.ttl = DefaultLeaseTTL
	}
	return d
}

// ttlSeconds returns the lease TTL in whole seconds, at least one.
func (d *Discovery) ttlSeconds() int64 {
	return max(1, int64(math.Ceil(d.ttl.Seconds())))
}

// RegisterOption configures Discovery.Register.
type RegisterOption func(*registerOptions)

type registerOptions struct {
	instanceID string
}

// WithInstanceID names the registered instance; the default is a random name. The key is
// ServicePrefix + "<service>/<instance>".
func WithInstanceID(id string) RegisterOption {
	return func(o *registerOptions) { o.instanceID = id }
}

// Registration is one service instance registered in etcd under a lease. It keeps the lease
// alive and registers again under a new lease whenever the old one ends (expired after a network
// partition, or revoked), until Close or Abandon.
type Registration struct {
	d       *Discovery
	em      endpoints.Manager
	service string
	key     string
	addr    string

	cancel context.CancelFunc // stops the keepalive and re-registration loop
	done   chan struct{}      // closed when the loop has returned

	mu    sync.Mutex
	lease clientv3.LeaseID

	finishOnce sync.Once
}

// Register registers addr as an instance of service and keeps it registered until the
// Registration is closed or abandoned. addr must be a host:port that other services can dial:
// wildcard hosts such as 0.0.0.0 are refused. ctx bounds the first registration only.
func (d *Discovery) Register(ctx context.Context, service, addr string, opts ...RegisterOption) (*Registration, error) {
	o := registerOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if err := validateRegistration(service, addr, o.instanceID); err != nil {
		return nil, err
	}
	if o.instanceID == "" {
		o.instanceID = newInstanceID()
	}
	target := ServiceTarget(service)
	em, err := endpoints.NewManager(d.cli, target)
	if err != nil {
		return nil, fmt.Errorf("registering %s at %s: %w", service, addr, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &Registration{
		d:       d,
		em:      em,
		service: service,
		key:     target + "/" + o.instanceID,
		addr:    addr,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	sess, err := r.register(ctx, runCtx)
	if err != nil {
		cancel()
		return nil, err
	}
	go r.run(runCtx, sess)
	return r, nil
}

func validateRegistration(service, addr, instanceID string) error {
	if service == "" || strings.ContainsAny(service, "/ ") {
		return fmt.Errorf("registering service %q: the name is empty or contains a slash or a space", service)
	}
	if strings.Contains(instanceID, "/") {
		return fmt.Errorf("registering %s: instance id %q contains a slash", service, instanceID)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("registering %s at %q: %w", service, addr, err)
	}
	if isWildcardHost(host) {
		return fmt.Errorf("registering %s at %q: a wildcard address cannot be dialed; advertise a specific host", service, addr)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("registering %s at %q: no port", service, addr)
	}
	return nil
}

// register grants a lease, starts keeping it alive for as long as runCtx lasts, and puts the
// key under it. ctx bounds the grant and the put.
func (r *Registration) register(ctx, runCtx context.Context) (*concurrency.Session, error) {
	grant, err := r.d.cli.Grant(ctx, r.d.ttlSeconds())
	if err != nil {
		return nil, fmt.Errorf("granting a lease to register %s at %s: %w", r.service, r.addr, err)
	}
	sess, err := concurrency.NewSession(r.d.cli,
		concurrency.WithLease(grant.ID),
		concurrency.WithTTL(int(grant.TTL)),
		concurrency.WithContext(runCtx))
	if err != nil {
		r.revokeQuietly(grant.ID)
		return nil, fmt.Errorf("keeping the lease of %s at %s alive: %w", r.service, r.addr, err)
	}
	if err := r.em.AddEndpoint(ctx, r.key, endpoints.Endpoint{Addr: r.addr}, clientv3.WithLease(grant.ID)); err != nil {
		sess.Orphan()
		r.revokeQuietly(grant.ID)
		return nil, fmt.Errorf("registering %s at %s: %w", r.service, r.addr, err)
	}
	r.mu.Lock()
	r.lease = grant.ID
	r.mu.Unlock()
	return sess, nil
}

// revokeQuietly revokes a lease that never carried a registration, as a best effort.
func (r *Registration) revokeQuietly(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = r.d.cli.Revoke(ctx, id)
}

// run waits for the session to end and registers again, until runCtx is canceled.
func (r *Registration) run(runCtx context.Context, sess *concurrency.Session) {
	defer close(r.done)
	for {
		select {
		case <-runCtx.Done():
			return
		case <-sess.Done():
		}
		if runCtx.Err() != nil {
			return
		}
		r.d.logger.Warn("registration lease ended; registering again",
			slog.String("service", r.service), slog.String("key", r.key), slog.String("addr", r.addr))
		next, ok := r.reregister(runCtx)
		if !ok {
			return
		}
		sess = next
		r.d.logger.Info("registered again",
			slog.String("service", r.service), slog.String("key", r.key), slog.String("addr", r.addr))
	}
}

// reregister tries to register until it succeeds or runCtx is canceled.
func (r *Registration) reregister(runCtx context.Context) (*concurrency.Session, bool) {
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(runCtx, r.d.ttl)
		sess, err := r.register(ctx, runCtx)
		cancel()
		if err == nil {
			return sess, true
		}
		if runCtx.Err() != nil {
			return nil, false
		}
		if r.d.cli.Ctx().Err() != nil {
			r.d.logger.Error("etcd client closed; giving up the registration",
				slog.String("service", r.service), slog.String("key", r.key))
			return nil, false
		}
		r.d.logger.Warn("registering again", slog.String("service", r.service), slog.Any("error", err),
			slog.Duration("retry_in", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-runCtx.Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
		backoff = min(2*backoff, reregisterMaxBackoff)
	}
}

// Key returns the etcd key of the registration.
func (r *Registration) Key() string {
	return r.key
}

// Addr returns the registered address.
func (r *Registration) Addr() string {
	return r.addr
}

// Close removes the registration: it stops keeping the lease alive, deletes the key and
// revokes the lease. ctx bounds the deletion and the revocation. Calls after the first, or
// after Abandon, do nothing.
func (r *Registration) Close(ctx context.Context) error {
	var err error
	r.finishOnce.Do(func() {
		r.stopLoop()
		r.mu.Lock()
		lease := r.lease
		r.mu.Unlock()
		var errs []error
		if derr := r.em.DeleteEndpoint(ctx, r.key); derr != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", r.key, derr))
		}
		if _, rerr := r.d.cli.Revoke(ctx, lease); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			errs = append(errs, fmt.Errorf("revoking the lease of %s: %w", r.key, rerr))
		}
		if len(errs) > 0 {
			err = fmt.Errorf("deregistering %s at %s: %w", r.service, r.addr, errors.Join(errs...))
		}
	})
	return err
}

// Abandon stops keeping the lease alive without revoking it or deleting the key, as a crashed
// process would: the key disappears when the lease expires. Calls after the first, or after
// Close, do nothing.
func (r *Registration) Abandon() {
	r.finishOnce.Do(r.stopLoop)
}

func (r *Registration) stopLoop() {
	r.cancel()
	<-r.done
}

// Endpoints returns the addresses currently registered for service, sorted.
func (d *Discovery) Endpoints(ctx context.Context, service string) ([]string, error) {
	em, err := endpoints.NewManager(d.cli, ServiceTarget(service))
	if err != nil {
		return nil, fmt.Errorf("listing instances of %s: %w", service, err)
	}
	m, err := em.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing instances of %s: %w", service, err)
	}
	addrs := make([]string, 0, len(m))
	for _, ep := range m {
		addrs = append(addrs, ep.Addr)
	}
	slices.Sort(addrs)
	return addrs, nil
}

// Dial returns a client connection to every registered instance of service, kept up to date
// as instances come and go: etcd:///bullseye/services/<service> through the etcd resolver, round
// robin over the instances whose health ("" service) is SERVING. The server certificates are
// verified against the TLS option's ServerName, by default ServerNameFor(service); without a TLS
// option, Dial fails with ErrNoCertificates, as plaintext must be chosen explicitly
// (WithTLS(TLSConfig{Insecure: true})). The connection is lazy: ctx is only checked here, and
// calls wait for the first instance according to their own deadlines.
func (d *Discovery) Dial(ctx context.Context, service string, opts ...DialOption) (*grpc.ClientConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dialing %s: %w", service, err)
	}
	o := newDialOptions(opts)
	creds, err := o.tls.ForService(service).ClientCredentials()
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", service, err)
	}
	builder, err := etcdresolver.NewBuilder(d.cli)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", service, err)
	}
	gopts := append(o.grpcOptions(creds),
		grpc.WithResolvers(builder),
		grpc.WithDefaultServiceConfig(discoveryServiceConfig),
	)
	gopts = append(gopts, o.extra...)
	conn, err := grpc.NewClient("etcd:///"+ServiceTarget(service), gopts...)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", service, err)
	}
	return conn, nil
}

// discoveryServiceConfig balances round robin over the instances whose overall health is
// SERVING. Client-side health checking needs the grpc/health package linked in, which server.go
// imports.
const discoveryServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

// newInstanceID returns a name for an instance: the host name, for people reading the keys, and
// random hex, for uniqueness.
func newInstanceID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error.
	suffix := hex.EncodeToString(b[:])
	host, err := os.Hostname()
	if err != nil || host == "" {
		return suffix
	}
	host = strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '-'
		}
		return r
	}, host)
	return host + "-" + suffix
}
