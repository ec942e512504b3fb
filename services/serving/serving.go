// Package serving runs Bullseye's serving service, which holds the promoted models in memory
// and answers Predict, Recommend and ScoreAudience for internal backends, and the Open
// Inference Protocol v2 for KServe and Triton clients, through a batched prediction core
// (DESIGN §1, §7).
//
// The service follows the model registry (pkg/registry) in etcd: a version that becomes live,
// shadow or aliased is loaded from the JetStream object store, verified and warmed before the
// routing that uses it takes effect; the switch is atomic and the versions no longer used
// drain. Requests are queued per model version and taken in batches by a pool of compute
// slots, one per core: one batch makes one GetOnlineFeatures call to the feature service for
// all its customers (which also gives their consent state), one preprocessing pass and one
// matrix operation.
package serving

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/serving/internal/audience"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
	"github.com/bullseye-ml/bullseye/services/serving/internal/server"
)

// Name is the service's name in discovery: bullseye/services/serving.
const Name = "serving"

// featureService is the name under which the feature service registers.
const featureService = "feature"

// Config is the serving service's configuration.
type Config struct {
	service.Config
	// ReadinessInterval is how often serving checks that it reaches the feature service; it
	// is ready only while it does, and once the models live at start are loaded.
	ReadinessInterval time.Duration
	// Workers is the number of compute slots shared by every model: batches computing at
	// once. 0 means one per core (GOMAXPROCS).
	Workers int
	// Batching is every model's batching settings, unless ModelBatching has the model's own.
	Batching Batching
	// ModelBatching holds per-model batching settings, by model name.
	ModelBatching map[string]Batching
	// ArtifactBucket is the JetStream object store bucket of model artifacts.
	ArtifactBucket string
	// ConsentFeatureSet is the feature set whose lookups give customers' consent states for
	// models without a feature set of their own (recommenders); empty means the first feature
	// set the feature service lists.
	ConsentFeatureSet string
	// LookupTimeout bounds a feature lookup whose requests have no deadline.
	LookupTimeout time.Duration
	// ShadowTimeout bounds the scoring of a request by the shadow versions.
	ShadowTimeout time.Duration
	// LoadTimeout bounds the loading and warm-up of one model version.
	LoadTimeout time.Duration
	// RetryInterval is how often versions that failed to load are tried again.
	RetryInterval time.Duration
	// AudiencePageSize is how many customers ScoreAudience lists and queues at a time.
	AudiencePageSize int

	// modelFlags are the --model-batching values, applied by Validate.
	modelFlags []string
	// wrapFeatures, set by tests only, wraps the feature service client (to count or delay
	// lookups).
	wrapFeatures func(featurev1.FeatureServiceClient) featurev1.FeatureServiceClient
}

// Batching is the batched core's settings of a model (DESIGN §7).
type Batching struct {
	// MaxBatchSize is the most rows of one batch; larger requests are split across batches.
	MaxBatchSize int
	// BatchTimeout is how long a batch that is not full waits for more requests; 0 takes
	// what is queued and never waits on an idle server.
	BatchTimeout time.Duration
	// MaxQueue is the most tasks (requests, or batch-sized parts of large ones) waiting per
	// model version; beyond it requests fail at once with RESOURCE_EXHAUSTED.
	MaxQueue int
	// MaxConcurrentBatches is how many batches of one model version are in flight at once.
	MaxConcurrentBatches int
}

func (b Batching) options() batch.Options {
	return batch.Options{MaxBatchSize: b.MaxBatchSize, BatchTimeout: b.BatchTimeout, MaxQueue: b.MaxQueue, MaxConcurrentBatches: b.MaxConcurrentBatches}
}

// DefaultBatching returns the default batching settings.
func DefaultBatching() Batching {
	o := batch.DefaultOptions()
	return Batching{MaxBatchSize: o.MaxBatchSize, BatchTimeout: o.BatchTimeout, MaxQueue: o.MaxQueue, MaxConcurrentBatches: o.MaxConcurrentBatches}
}

// NewConfig returns the defaults.
func NewConfig() Config {
	return Config{
		Config:            service.NewConfig(Name),
		ReadinessInterval: time.Second,
		Batching:          DefaultBatching(),
		ModelBatching:     map[string]Batching{},
		ArtifactBucket:    registry.DefaultBucket,
		LookupTimeout:     5 * time.Second,
		ShadowTimeout:     5 * time.Second,
		LoadTimeout:       time.Minute,
		RetryInterval:     10 * time.Second,
		AudiencePageSize:  1000,
	}
}

// RegisterFlags registers the service's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.DurationVar(&c.ReadinessInterval, "readiness-interval", c.ReadinessInterval, "how often to check that the feature service is reachable")
	fs.IntVar(&c.Workers, "workers", c.Workers, "compute slots shared by every model (0: one per core)")
	fs.IntVar(&c.Batching.MaxBatchSize, "max-batch-size", c.Batching.MaxBatchSize, "most rows of one batch")
	fs.DurationVar(&c.Batching.BatchTimeout, "batch-timeout", c.Batching.BatchTimeout, "how long a batch that is not full waits for more requests (0: never wait)")
	fs.IntVar(&c.Batching.MaxQueue, "max-queue", c.Batching.MaxQueue, "most waiting tasks per model version; beyond, RESOURCE_EXHAUSTED")
	fs.IntVar(&c.Batching.MaxConcurrentBatches, "max-concurrent-batches", c.Batching.MaxConcurrentBatches, "batches of one model version in flight at once")
	fs.Func("model-batching", "a model's own batching, repeatable: name:max-batch-size=64,batch-timeout=1ms,max-queue=512,max-concurrent-batches=2 (keys left out take the flags above)", func(s string) error {
		// Checked now, resolved by Validate against the final defaults.
		if _, _, err := parseModelBatching(s, DefaultBatching()); err != nil {
			return err
		}
		c.modelFlags = append(c.modelFlags, s)
		return nil
	})
	fs.StringVar(&c.ArtifactBucket, "artifact-bucket", c.ArtifactBucket, "JetStream object store bucket of model artifacts")
	fs.StringVar(&c.ConsentFeatureSet, "consent-feature-set", c.ConsentFeatureSet, "feature set whose lookups give consent states for models without one (recommenders); empty: the first listed")
	fs.DurationVar(&c.LookupTimeout, "lookup-timeout", c.LookupTimeout, "bound of a feature lookup whose requests have no deadline")
	fs.DurationVar(&c.ShadowTimeout, "shadow-timeout", c.ShadowTimeout, "bound of the scoring of a request by shadow versions")
	fs.DurationVar(&c.LoadTimeout, "load-timeout", c.LoadTimeout, "bound of loading and warming one model version")
	fs.DurationVar(&c.RetryInterval, "retry-interval", c.RetryInterval, "how often versions that failed to load are tried again")
	fs.IntVar(&c.AudiencePageSize, "audience-page-size", c.AudiencePageSize, "customers ScoreAudience lists and queues at a time")
}

// Validate reports configuration mistakes, naming the flag, and applies the --model-batching
// flags to ModelBatching (their keys left out take Batching's values).
func (c *Config) Validate() error {
	var errs []error
	if c.ReadinessInterval <= 0 {
		errs = append(errs, fmt.Errorf("--readiness-interval: %v, want a positive duration", c.ReadinessInterval))
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("--workers: %d, want 0 (one per core) or more", c.Workers))
	}
	if err := c.Batching.options().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("batching: %w", err))
	}
	for _, f := range c.modelFlags {
		name, b, err := parseModelBatching(f, c.Batching)
		if err != nil {
			errs = append(errs, fmt.Errorf("--model-batching %w", err))
			continue
		}
		if c.ModelBatching == nil {
			c.ModelBatching = map[string]Batching{}
		}
		c.ModelBatching[name] = b
	}
	c.modelFlags = nil
	for name, b := range c.ModelBatching {
		if err := b.options().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--model-batching %s: %w", name, err))
		}
	}
	if c.ArtifactBucket == "" {
		errs = append(errs, errors.New("--artifact-bucket: required"))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"lookup-timeout", c.LookupTimeout}, {"shadow-timeout", c.ShadowTimeout}, {"load-timeout", c.LoadTimeout}, {"retry-interval", c.RetryInterval}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("--%s: %v, want a positive duration", d.flag, d.v))
		}
	}
	if c.AudiencePageSize < 1 || c.AudiencePageSize > 10_000 {
		errs = append(errs, fmt.Errorf("--audience-page-size: %d, want 1 to 10000", c.AudiencePageSize))
	}
	return errors.Join(c.Config.Validate(), errors.Join(errs...))
}

// batchingOf returns a model's batching settings.
func (c *Config) batchingOf(model string) batch.Options {
	if b, ok := c.ModelBatching[model]; ok {
		return b.options()
	}
	return c.Batching.options()
}

// Run serves the serving service until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	node, err := service.NewNode(ctx, cfg.Config)
	if err != nil {
		return err
	}
	parts, err := start(ctx, cfg, node)
	if err != nil {
		node.Close()
		return err
	}
	defer parts.close()
	servingv1.RegisterPredictionServiceServer(node.GRPC(), parts.server)
	inference.RegisterGRPCInferenceServiceServer(node.GRPC(), parts.server.Inference())
	parts.run(ctx, cfg, node)
	return node.Serve(ctx)
}

// parts are the service's components and the goroutines running them.
type parts struct {
	features     *grpc.ClientConn
	nc           *nats.Conn
	store        *models.Store
	server       *server.Server
	ready        atomic.Bool
	drainTimeout time.Duration
	logger       *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func start(ctx context.Context, cfg Config, node *service.Node) (_ *parts, err error) {
	p := &parts{drainTimeout: cfg.Server.ShutdownTimeout, logger: node.Logger()}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.features, err = node.Dial(ctx, featureService); err != nil {
		return nil, fmt.Errorf("dialing the feature service: %w", err)
	}
	var js jetstream.JetStream
	if p.nc, js, err = node.JetStream(service.JetStreamOptions{}); err != nil {
		return nil, err
	}
	reg, err := registry.Open(ctx, node.Etcd(), js, registry.WithBucket(cfg.ArtifactBucket))
	if err != nil {
		return nil, fmt.Errorf("opening the model registry: %w", err)
	}
	prom := node.Server().Registry()
	fm, err := features.NewMetrics(prom)
	if err != nil {
		return nil, err
	}
	bm, err := batch.NewMetrics(prom)
	if err != nil {
		return nil, err
	}
	var fsc featurev1.FeatureServiceClient = featurev1.NewFeatureServiceClient(p.features)
	if cfg.wrapFeatures != nil {
		fsc = cfg.wrapFeatures(fsc)
	}
	fc := features.New(fsc, features.WithTimeout(cfg.LookupTimeout), features.WithConsentFeatureSet(cfg.ConsentFeatureSet), features.WithMetrics(fm))
	workers := cfg.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	deps := scoring.Deps{Features: fc, Pool: batch.NewPool(workers), Metrics: bm, Options: cfg.batchingOf, Logger: p.logger}
	p.store, err = models.New(reg, func(a *modelv1.ModelArtifact) (*scoring.Model, error) { return scoring.Load(deps, a) },
		models.WithRetryInterval(cfg.RetryInterval), models.WithLoadTimeout(cfg.LoadTimeout), models.WithLogger(p.logger), models.WithRegisterer(prom))
	if err != nil {
		return nil, err
	}
	p.server, err = server.New(p.store, fc, audience.New(fc, audience.WithPageSize(cfg.AudiencePageSize)),
		server.WithReady(p.ready.Load),
		server.WithDraining(node.Server().Draining()),
		server.WithShadowTimeout(cfg.ShadowTimeout),
		server.WithVersion(version()),
		server.WithLogger(p.logger),
		server.WithRegisterer(prom))
	if err != nil {
		return nil, err
	}
	return p, nil
}

// run follows the registry and keeps the readiness in step, until ctx is done.
func (p *parts) run(ctx context.Context, cfg Config, node *service.Node) {
	rctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		_ = p.store.Run(rctx)
	}()
	go func() {
		defer p.wg.Done()
		watchReadiness(rctx, node, p.features, p.store.Ready(), &p.ready, cfg)
	}()
}

// close stops the goroutines, drains the models (within the shutdown timeout) and closes the
// connections.
func (p *parts) close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	if p.store != nil {
		dctx, cancel := context.WithTimeout(context.Background(), p.drainTimeout)
		if err := p.store.Close(dctx); err != nil {
			p.logger.Warn("unloading the models", "error", err)
		}
		cancel()
	}
	if p.nc != nil {
		p.nc.Close()
	}
	if p.features != nil {
		p.features.Close()
	}
}

// version is the serving binary's module version, for ServerMetadata.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// watchReadiness keeps serving's health in step with what it needs: the models live at start
// loaded, and the feature service reachable (every Predict by user id needs a lookup).
//
// The checks are not traced: ctx carries no span, and the mesh's health trace filter
// (pkg/mesh) traces a health check only inside a trace, on the client and on the feature
// service alike. Traced, a check a second would be most of every trace store's spans.
func watchReadiness(ctx context.Context, node *service.Node, features grpc.ClientConnInterface, modelsReady <-chan struct{}, ready *atomic.Bool, cfg Config) {
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	client := healthpb.NewHealthClient(features)
	loaded := false
	t := time.NewTicker(cfg.ReadinessInterval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, cfg.ReadinessInterval)
		resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		reachable := err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		now := reachable && loaded
		if now != ready.Load() {
			ready.Store(now)
			node.Server().SetReady(now)
			node.Logger().Info("readiness changed", "ready", now, "models_loaded", loaded, "feature_reachable", reachable, "feature_error", errString(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-modelsReady:
			modelsReady = nil
			loaded = true
		case <-t.C:
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
