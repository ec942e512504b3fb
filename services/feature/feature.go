// Package feature runs Bullseye's feature service, which turns customer
// events into per-customer features: online for serving and point-in-time
// correct for training (DESIGN §1).
package feature

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/feature/internal/backfill"
	"github.com/bullseye-ml/bullseye/services/feature/internal/catalog"
	"github.com/bullseye-ml/bullseye/services/feature/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/materialize"
	"github.com/bullseye-ml/bullseye/services/feature/internal/server"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
	"github.com/bullseye-ml/bullseye/services/feature/internal/verify"
)

// Name is the service's name in discovery: bullseye/services/feature.
const Name = "feature"

// Config is the feature service's configuration.
type Config struct {
	service.Config
	// HMACKeyFile holds the HMAC key ingest pseudonymises with; with it
	// (or the key itself in $BULLSEYE_HMAC_KEY) the service consults the
	// erasure list, so an erased customer answers CONSENT_STATE_ERASED
	// and no late record of them is used. Without a key, erased customers
	// are still deleted (by their erasure records) but answer NOT_FOUND
	// with no consent state.
	HMACKeyFile string
	// ReadyWhenCaughtUp keeps health NOT_SERVING until materialisation has
	// applied every record that was on the stream at start.
	ReadyWhenCaughtUp bool
	// TrainingWaitTimeout bounds how long a training set or interaction
	// export waits for materialisation to reach the stream's end.
	TrainingWaitTimeout time.Duration
	// CacheSize is the most profiles each replica caches.
	CacheSize int
	// BatchSize is the most records applied in one batch.
	BatchSize int
	// MaxProfileBytes is the retention of a customer's profile: the largest
	// encoding stored. Past it the oldest events are dropped and counted
	// per event name; training-set summaries and VerifyMaterialization
	// report them. Zero (the default) means the NATS server's max_payload
	// less 64 KiB; a value above that is refused at start.
	MaxProfileBytes int
	// MaxEntities is the most entities of one GetOnlineFeatures call.
	MaxEntities int
	// MemoryState keeps the profile bucket in memory (benchmarks only).
	MemoryState bool
	// LoseDeliveries is a fault hook for tests (materialize.WithLoseDeliveries):
	// it returns the records of a fetch the consumer receives.
	LoseDeliveries func(partition int, fetched []jetstream.Msg) []jetstream.Msg
}

// NewConfig returns the defaults.
func NewConfig() Config {
	return Config{
		Config:              service.NewConfig(Name),
		ReadyWhenCaughtUp:   true,
		TrainingWaitTimeout: 2 * time.Minute,
		CacheSize:           state.DefaultCacheSize,
		BatchSize:           materialize.DefaultBatchSize,
		MaxEntities:         server.DefaultMaxEntities,
	}
}

// RegisterFlags registers the service's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.StringVar(&c.HMACKeyFile, "hmac-key-file", c.HMACKeyFile, "file holding ingest's HMAC key, to consult the erasure list (or set "+eventlog.KeyEnv+")")
	fs.BoolVar(&c.ReadyWhenCaughtUp, "ready-when-caught-up", c.ReadyWhenCaughtUp, "stay NOT_SERVING until the events stream present at start is applied")
	fs.DurationVar(&c.TrainingWaitTimeout, "training-wait-timeout", c.TrainingWaitTimeout, "how long a training set waits for materialisation to catch up")
	fs.IntVar(&c.CacheSize, "cache-size", c.CacheSize, "most customer profiles cached in memory")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "most events applied in one batch")
	fs.IntVar(&c.MaxProfileBytes, "max-profile-bytes", c.MaxProfileBytes, "retention of a customer's profile: past this size its oldest events are dropped and counted; 0: the NATS server's max_payload less 64 KiB")
	fs.IntVar(&c.MaxEntities, "max-entities", c.MaxEntities, "most entities of one GetOnlineFeatures call")
}

// Validate reports configuration mistakes, naming the flag.
func (c *Config) Validate() error {
	var errs []error
	if c.TrainingWaitTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--training-wait-timeout: %v, want a positive duration", c.TrainingWaitTimeout))
	}
	if c.CacheSize < 1 {
		errs = append(errs, fmt.Errorf("--cache-size: %d, want at least 1", c.CacheSize))
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("--batch-size: %d, want 1 to 10000", c.BatchSize))
	}
	if c.MaxProfileBytes != 0 && (c.MaxProfileBytes < 64<<10 || c.MaxProfileBytes > 64<<20) {
		errs = append(errs, fmt.Errorf("--max-profile-bytes: %d, want 0 (from the NATS server) or 64 KiB to 64 MiB", c.MaxProfileBytes))
	}
	if c.MaxEntities < 1 {
		errs = append(errs, fmt.Errorf("--max-entities: %d, want at least 1", c.MaxEntities))
	}
	return errors.Join(c.Config.Validate(), errors.Join(errs...))
}

// profileHeadroom is what a profile write needs beside the profile within
// the server's largest message: its subject and headers.
const profileHeadroom = 64 << 10

// profileRetention returns the retention of a profile: configured, or the
// NATS server's largest message less the headroom; a configured one that
// the server would refuse is an error naming the flag.
func profileRetention(configured int, maxPayload int64) (int, error) {
	limit := int(maxPayload) - profileHeadroom
	switch {
	case configured == 0 && limit < 64<<10:
		return 0, fmt.Errorf("the NATS server's max_payload is %d bytes: too small for profiles (want at least 128 KiB)", maxPayload)
	case configured == 0:
		return limit, nil
	case configured > limit:
		return 0, fmt.Errorf("--max-profile-bytes: %d is more than the NATS server's max_payload (%d) less %d bytes of headroom", configured, maxPayload, profileHeadroom)
	}
	return configured, nil
}

// pseudonymiser returns the HMAC pseudonymiser from the key file or the
// environment, loaded exactly as ingest loads it, or nil when neither is
// given.
func (c *Config) pseudonymiser() (*eventlog.Pseudonymiser, error) {
	ps, err := eventlog.LoadPseudonymiser(c.HMACKeyFile, "")
	if errors.Is(err, eventlog.ErrNoKey) {
		return nil, nil
	}
	return ps, err
}

// Run serves the feature service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	ps, err := cfg.pseudonymiser()
	if err != nil {
		return err
	}
	node, err := service.NewNode(ctx, cfg.Config)
	if err != nil {
		return err
	}
	logger := node.Logger()
	if ps == nil {
		logger.Warn("no HMAC key: the erasure list is not consulted; erased customers answer NOT_FOUND without CONSENT_STATE_ERASED")
	}
	parts, err := start(ctx, cfg, node, ps)
	if err != nil {
		node.Close()
		return err
	}
	defer parts.close()
	featurev1.RegisterFeatureServiceServer(node.GRPC(), parts.server)
	parts.run(ctx, cfg, node)
	return node.Serve(ctx)
}

// parts are the service's components and the goroutines running them.
type parts struct {
	etcd     *clientv3.Client
	nc       *nats.Conn
	erasures *eventlog.ErasureList
	store    *state.Store
	catalog  *catalog.Catalog
	progress *materialize.Progress
	mat      *materialize.Materializer
	server   *server.Server
	logger   *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func start(ctx context.Context, cfg Config, node *service.Node, ps *eventlog.Pseudonymiser) (_ *parts, err error) {
	p := &parts{logger: node.Logger()}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	// The service's own etcd client: the node closes its client when it
	// stops serving, and the materialiser still gives up its partitions
	// after that.
	p.etcd, err = service.ConnectEtcd(ctx, cfg.EtcdEndpoints, cfg.EtcdDialTimeout)
	if err != nil {
		return nil, err
	}
	var js jetstream.JetStream
	if p.nc, js, err = node.JetStream(service.JetStreamOptions{MaxPending: 4 * cfg.BatchSize}); err != nil {
		return nil, err
	}
	layout := []eventlog.Option{eventlog.KeepExisting(), eventlog.WithReplicas(cfg.StreamReplicas)}
	if err := eventlog.Ensure(ctx, js, layout...); err != nil {
		return nil, err
	}
	if p.erasures, err = eventlog.WatchErasures(ctx, js); err != nil {
		return nil, err
	}
	var erased func(string) bool
	if ps != nil {
		list := p.erasures
		erased = func(id string) bool { return list.Len() > 0 && list.Contains(ps.SubjectHash(id)) }
	}
	if p.store, err = state.Open(ctx, js, state.WithReplicas(cfg.StreamReplicas), state.WithMemory(cfg.MemoryState),
		state.WithCacheSize(cfg.CacheSize), state.WithLogger(p.logger)); err != nil {
		return nil, err
	}
	if p.catalog, err = catalog.Open(ctx, p.etcd, catalog.WithLogger(p.logger)); err != nil {
		return nil, err
	}
	p.progress = materialize.NewProgress(js)
	retention, err := profileRetention(cfg.MaxProfileBytes, p.nc.MaxPayload())
	if err != nil {
		return nil, err
	}
	p.mat, err = materialize.New(ctx, p.etcd, js, p.store, node.Server().InstanceID(),
		materialize.WithLeaseTTL(cfg.LeaseTTL),
		materialize.WithBatchSize(cfg.BatchSize),
		materialize.WithMaxProfileBytes(retention),
		materialize.WithErasures(p.erasures, ps),
		materialize.WithRegisterer(node.Server().Registry()),
		materialize.WithLogger(p.logger),
		materialize.WithLoseDeliveries(cfg.LoseDeliveries))
	if err != nil {
		return nil, err
	}
	events, err := js.Stream(ctx, eventlog.EventsStream)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", eventlog.EventsStream, err)
	}
	verified, err := server.VerifyMetrics(node.Server().Registry())
	if err != nil {
		return nil, err
	}
	builder := dataset.NewBuilder(p.store, p.progress, dataset.WithErased(erased), dataset.WithWaitTimeout(cfg.TrainingWaitTimeout))
	verifier := verify.New(events, p.store, func(id string) bool { return erased != nil && erased(id) },
		func() []*featurev1.FeatureSet { return p.catalog.List("", false) })
	p.server = server.New(p.catalog, p.store, builder, verifier, p.progress.LastSeq,
		server.WithErasures(p.erasures, ps),
		server.WithMaxEntities(cfg.MaxEntities),
		server.WithLogger(p.logger),
		server.WithVerifyGauges(verified))
	return p, nil
}

// run starts materialisation, backfill tracking and the readiness check.
func (p *parts) run(ctx context.Context, cfg Config, node *service.Node) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	// The materialiser stops with ctx (the service's stop), not later.
	go func() {
		select {
		case <-ctx.Done():
		case <-rctx.Done():
		}
		cancel()
	}()
	p.wg.Add(3)
	go func() {
		defer p.wg.Done()
		if err := p.mat.Run(rctx); err != nil {
			p.logger.Error("materialising", slog.Any("error", err))
		}
	}()
	go func() {
		defer p.wg.Done()
		backfill.Track(rctx, p.catalog, p.progress, backfill.DefaultInterval, p.logger)
	}()
	go func() {
		defer p.wg.Done()
		if !cfg.ReadyWhenCaughtUp {
			node.Server().SetReady(true)
			return
		}
		for rctx.Err() == nil {
			seq, err := p.progress.LastSeq(rctx)
			if err == nil {
				if err = p.progress.Wait(rctx, seq); err == nil {
					p.logger.Info("caught up with the events stream; ready", slog.Uint64("stream_sequence", seq))
					node.Server().SetReady(true)
					return
				}
			}
			if rctx.Err() == nil {
				p.logger.Warn("waiting to catch up with the events stream", slog.Any("error", err))
				time.Sleep(time.Second)
			}
		}
	}()
}

func (p *parts) close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	if p.catalog != nil {
		p.catalog.Close()
	}
	if p.store != nil {
		p.store.Close()
	}
	if p.erasures != nil {
		p.erasures.Stop()
	}
	if p.nc != nil {
		p.nc.Close()
	}
	if p.etcd != nil {
		p.etcd.Close()
	}
}
