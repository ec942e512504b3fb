// Package models holds the model versions a serving instance serves and routes requests to
// them. It follows the registry's routing states (pkg/registry's Watch), loads and warms
// every version a model needs — its live versions, shadow versions and the versions its
// aliases name — before a routing state that uses it takes effect, switches the routing
// atomically, and drains the versions no longer used: a request holds a Lease on the versions
// it uses, and a version is released only when no lease holds it, so no request fails
// because a model is being replaced.
package models

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// ErrNotLoaded: the model, version or alias asked for is not loaded here (unknown, not live,
// still loading, failed), or the model has nothing live. A *NotLoadedError says which.
var ErrNotLoaded = errors.New("model not loaded")

// NotLoadedError is an ErrNotLoaded error.
type NotLoadedError struct {
	// Message says what is not loaded, for people.
	Message string
}

// Error returns the message.
func (e *NotLoadedError) Error() string { return e.Message }

// Is makes NotLoadedError match ErrNotLoaded.
func (e *NotLoadedError) Is(target error) bool { return target == ErrNotLoaded }

func notLoaded(format string, args ...any) error {
	return &NotLoadedError{Message: fmt.Sprintf(format, args...)}
}

// Source is the registry as the store uses it; *registry.Registry is one.
type Source interface {
	// Watch follows every model's routing state.
	Watch(ctx context.Context) <-chan registry.Update
	// Version returns a registered version's metadata.
	Version(ctx context.Context, name string, n int64) (*modelv1.ModelVersion, error)
	// LoadArtifact reads and verifies a version's artifact.
	LoadArtifact(ctx context.Context, v *modelv1.ModelVersion) (*modelv1.ModelArtifact, error)
}

// Builder turns a verified artifact into a loaded model with its queue.
type Builder func(a *modelv1.ModelArtifact) (*scoring.Model, error)

// Store is the model versions of one serving instance. It is safe for concurrent use.
type Store struct {
	src           Source
	build         Builder
	retryInterval time.Duration
	loadTimeout   time.Duration
	logger        *slog.Logger
	gauge         *prometheus.GaugeVec

	mu     sync.RWMutex
	models map[string]*model

	ready     chan struct{}
	readyOnce sync.Once
	drains    sync.WaitGroup
}

// Option configures a Store.
type Option func(*storeOptions)

type storeOptions struct {
	retryInterval time.Duration
	loadTimeout   time.Duration
	logger        *slog.Logger
	registerer    prometheus.Registerer
}

// WithRetryInterval sets how often versions that failed to load are tried again; the default
// is 10 s.
func WithRetryInterval(d time.Duration) Option { return func(o *storeOptions) { o.retryInterval = d } }

// WithLoadTimeout bounds the loading and warm-up of one version; the default is 1 minute.
func WithLoadTimeout(d time.Duration) Option { return func(o *storeOptions) { o.loadTimeout = d } }

// WithLogger sets the logger of loads, switches and drains; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *storeOptions) { o.logger = l } }

// WithRegisterer has the store export the bullseye_serving_model_versions gauge to reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *storeOptions) { o.registerer = reg }
}

// New returns a store that follows src and loads versions with build. Call Run.
func New(src Source, build Builder, opts ...Option) (*Store, error) {
	var o storeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.retryInterval <= 0 {
		o.retryInterval = 10 * time.Second
	}
	if o.loadTimeout <= 0 {
		o.loadTimeout = time.Minute
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	s := &Store{src: src, build: build, retryInterval: o.retryInterval, loadTimeout: o.loadTimeout, logger: o.logger,
		models: map[string]*model{}, ready: make(chan struct{})}
	if o.registerer != nil {
		s.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bullseye_serving_model_versions",
			Help: "Model versions held, by model and state (loading, available, unloading, failed).",
		}, []string{"model", "state"})
		if err := o.registerer.Register(s.gauge); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			s.gauge = are.ExistingCollector.(*prometheus.GaugeVec)
		}
	}
	return s, nil
}

// model is one model's versions and routing.
type model struct {
	name  string
	route atomic.Pointer[route]

	mu       sync.Mutex
	routing  *modelv1.RegisteredModel // the routing state last applied
	task     modelv1.TaskKind
	versions map[int64]*version // held and not draining
	draining map[*version]struct{}
}

// version is one held version. Its state fields are guarded by its model's mu.
type version struct {
	num     int64
	mv      *modelv1.ModelVersion
	sm      *scoring.Model
	state   servingv1.ModelState
	problem *commonv1.Problem
	loaded  time.Time
	took    time.Duration

	refs atomic.Int64 // leases holding it, plus retiring and closed bits
	gone func()       // called once when closed
}

// route is one immutable routing of a model to its loaded versions.
type route struct {
	live     []split
	total    uint64
	top      *version
	shadows  []*version
	aliases  map[string]*version
	byNum    map[int64]*version
	revision int64
}

type split struct {
	v    *version
	upTo uint64 // cumulative weight
}
