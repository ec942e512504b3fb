// Package training runs Bullseye's training service: training jobs with preprocessing, the
// model families, model selection by cross-validation, evaluation and the model registry
// (DESIGN §1, issue 5).
//
// Jobs live in etcd and are taken by one replica at a time under an etcd lease (package
// internal/jobs); a job whose replica dies is taken over by another. Training data comes from
// the feature service ("feature" in discovery); models are registered in pkg/registry, their
// artifacts in the JetStream object store.
package training

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"

	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/training/internal/jobs"
	"github.com/bullseye-ml/bullseye/services/training/internal/modelimport"
	"github.com/bullseye-ml/bullseye/services/training/internal/server"
	"github.com/bullseye-ml/bullseye/services/training/internal/trainer"
)

// Name is the service's name in discovery: bullseye/services/training.
const Name = "training"

// featureService is the name under which the feature service registers.
const featureService = "feature"

// Config is the training service's configuration.
type Config struct {
	service.Config
	// Worker names this replica in job records (Job.worker); empty means the server's
	// instance id.
	Worker string
	// JobLeaseTTL is the lease a replica holds its jobs under: the jobs of a replica that
	// dies are taken over by another after at most this long.
	JobLeaseTTL time.Duration
	// MaxConcurrentJobs is the number of jobs a replica runs at once (DefaultMaxConcurrentJobs
	// by default). Waiting jobs are taken in fair order: round-robin over model names, the
	// one served least recently first, so that a short job does not wait behind another
	// model's backlog.
	MaxConcurrentJobs int
	// ProgressInterval is how often a running job's progress is written to etcd.
	ProgressInterval time.Duration
	// ScanInterval is how often a replica looks for jobs to take besides watching for them.
	ScanInterval time.Duration
	// ArtifactBucket is the JetStream object store bucket of model artifacts.
	ArtifactBucket string
	// JobRetention is how long the record of an ended job is kept (then pruned, hourly);
	// 0 keeps every record.
	JobRetention time.Duration
	// MaxImportBytes is the largest model file ImportModel takes (DefaultMaxImportBytes by
	// default); the file is held in memory while it is read.
	MaxImportBytes int64
}

// DefaultMaxImportBytes is the default limit of an imported model file: 256 MiB.
const DefaultMaxImportBytes = modelimport.DefaultMaxBytes

// DefaultJobRetention is how long ended jobs are kept by default.
const DefaultJobRetention = 30 * 24 * time.Hour

// DefaultMaxConcurrentJobs returns the default number of jobs a replica runs at once: half
// its cores (a job's fits run in parallel too), at least 1.
func DefaultMaxConcurrentJobs() int { return max(1, runtime.NumCPU()/2) }

// NewConfig returns the defaults.
func NewConfig() Config {
	return Config{
		Config:            service.NewConfig(Name),
		JobLeaseTTL:       jobs.DefaultLeaseTTL,
		MaxConcurrentJobs: DefaultMaxConcurrentJobs(),
		ProgressInterval:  jobs.DefaultProgressInterval,
		ScanInterval:      jobs.DefaultScanInterval,
		ArtifactBucket:    registry.DefaultBucket,
		JobRetention:      DefaultJobRetention,
		MaxImportBytes:    DefaultMaxImportBytes,
	}
}

// RegisterFlags registers the service's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.StringVar(&c.Worker, "worker", c.Worker, "name of this replica in job records (default: the instance id)")
	fs.DurationVar(&c.JobLeaseTTL, "job-lease-ttl", c.JobLeaseTTL, "lease a replica holds its jobs under; another replica takes over a dead one's jobs after it")
	fs.IntVar(&c.MaxConcurrentJobs, "max-concurrent-jobs", c.MaxConcurrentJobs, "jobs a replica runs at once (default: half the cores, at least 1); waiting jobs are taken round-robin over model names")
	fs.DurationVar(&c.ProgressInterval, "progress-interval", c.ProgressInterval, "how often a running job's progress is written")
	fs.DurationVar(&c.ScanInterval, "scan-interval", c.ScanInterval, "how often the job queue is scanned besides being watched")
	fs.StringVar(&c.ArtifactBucket, "artifact-bucket", c.ArtifactBucket, "JetStream object store bucket of model artifacts")
	fs.DurationVar(&c.JobRetention, "job-retention", c.JobRetention, "how long the records of ended jobs are kept before they are pruned (0: for ever)")
	fs.Int64Var(&c.MaxImportBytes, "max-import-bytes", c.MaxImportBytes, "largest model file ImportModel takes, in bytes (held in memory while it is read)")
}

// Validate reports configuration mistakes, naming the flag.
func (c *Config) Validate() error {
	var errs []error
	if c.JobLeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("--job-lease-ttl: %v, want at least 1s", c.JobLeaseTTL))
	}
	if c.MaxConcurrentJobs < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-jobs: %d, want at least 1", c.MaxConcurrentJobs))
	}
	if c.ProgressInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--progress-interval: %v, want at least 10ms", c.ProgressInterval))
	}
	if c.ScanInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--scan-interval: %v, want at least 100ms", c.ScanInterval))
	}
	if c.JobRetention < 0 {
		errs = append(errs, fmt.Errorf("--job-retention: %v, want 0 (keep for ever) or more", c.JobRetention))
	}
	if c.MaxImportBytes < 1 {
		errs = append(errs, fmt.Errorf("--max-import-bytes: %d, want at least 1", c.MaxImportBytes))
	}
	if c.ArtifactBucket == "" {
		errs = append(errs, errors.New("--artifact-bucket: required"))
	}
	return errors.Join(c.Config.Validate(), errors.Join(errs...))
}

// Run serves the training service until ctx is done. On shutdown it stops its running jobs
// and hands them back to the queue, where another replica takes them.
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
	trainingv1.RegisterTrainingServiceServer(node.GRPC(), parts.server)
	serveCtx := parts.run(ctx, cfg)
	parts.logger.InfoContext(ctx, "training ready", "worker", parts.workerName, "job_lease_ttl", cfg.JobLeaseTTL.String())
	node.Server().SetReady(true)
	return node.Serve(serveCtx)
}

// parts are the service's components and the goroutines running them.
type parts struct {
	nc         *nats.Conn
	features   *grpc.ClientConn
	store      *jobs.Store
	workerName string // this replica in job records
	worker     *jobs.Worker
	server     *server.Server
	logger     *slog.Logger

	stopServe context.CancelFunc
	wg        sync.WaitGroup
	sequenced chan struct{} // closed once the worker has stopped and serving may end
}

func start(ctx context.Context, cfg Config, node *service.Node) (_ *parts, err error) {
	p := &parts{logger: node.Logger()}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	var js jetstream.JetStream
	if p.nc, js, err = node.JetStream(service.JetStreamOptions{}); err != nil {
		return nil, err
	}
	reg, err := openRegistry(ctx, node, js, cfg)
	if err != nil {
		return nil, err
	}
	if p.features, err = node.Dial(ctx, featureService); err != nil {
		return nil, fmt.Errorf("dialing the feature service: %w", err)
	}
	fc := featurev1.NewFeatureServiceClient(p.features)
	p.workerName = cfg.Worker
	if p.workerName == "" {
		p.workerName = node.Server().InstanceID()
	}
	p.store = jobs.NewStore(node.Etcd())
	t := trainer.New(fc, reg, trainer.WithLogger(p.logger))
	p.worker = jobs.NewWorker(p.store, t,
		jobs.WithName(p.workerName),
		jobs.WithLeaseTTL(cfg.JobLeaseTTL),
		jobs.WithCapacity(cfg.MaxConcurrentJobs),
		jobs.WithProgressInterval(cfg.ProgressInterval),
		jobs.WithScanInterval(cfg.ScanInterval),
		jobs.WithLogger(p.logger))
	p.server = server.New(p.store, reg, fc, server.WithLogger(p.logger), server.WithDraining(node.Server().Draining()),
		server.WithMaxImportBytes(cfg.MaxImportBytes))
	return p, nil
}

// run starts the worker and the pruning of ended jobs, and returns the context to serve
// with: it ends once ctx has and the worker has stopped, since the worker hands its jobs back
// through etcd, which the node closes when it has served.
func (p *parts) run(ctx context.Context, cfg Config) context.Context {
	wctx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = p.worker.Run(wctx)
	}()
	if cfg.JobRetention > 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.store.PruneEvery(wctx, cfg.JobRetention, time.Hour, p.logger)
		}()
	}
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	p.stopServe = stopServe
	p.sequenced = make(chan struct{})
	go func() {
		defer close(p.sequenced)
		select {
		case <-ctx.Done():
		case <-serveCtx.Done():
		}
		stopWorker()
		p.wg.Wait()
		stopServe()
	}()
	return serveCtx
}

// close stops the worker (if serving has not already), then closes the connections.
func (p *parts) close() {
	if p.stopServe != nil {
		p.stopServe()
		<-p.sequenced
	}
	if p.features != nil {
		p.features.Close()
	}
	if p.nc != nil {
		p.nc.Close()
	}
}

// openRegistry opens the registry, retrying while NATS is not reachable yet.
func openRegistry(ctx context.Context, node *service.Node, js jetstream.JetStream, cfg Config) (*registry.Registry, error) {
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		reg, err := registry.Open(octx, node.Etcd(), js, registry.WithBucket(cfg.ArtifactBucket), registry.WithReplicas(cfg.StreamReplicas))
		cancel()
		if err == nil {
			return reg, nil
		}
		node.Logger().WarnContext(ctx, "opening the model registry", "error", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("opening the model registry at %s: %w", cfg.NATSURL, errors.Join(ctx.Err(), err))
		case <-time.After(wait):
		}
	}
}
