// Package server answers serving's gRPC APIs — bullseye.serving.v1.PredictionService and the
// Open Inference Protocol v2 (inference.GRPCInferenceService) — on the batched core: it checks
// requests, routes their rows to model versions through a lease, queues them, waits for their
// outcomes and maps errors to gRPC status codes once, here.
package server

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/serving/internal/audience"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
)

// Limits of requests.
const (
	// MaxInstances is the most instances of one Predict.
	MaxInstances = 10_000
	// MaxUsers is the most users of one Recommend.
	MaxUsers = 1000
	// MaxK is the most items per user.
	MaxK = 1000
	// MaxItemFilter is the most ids of allowed_item_ids and excluded_item_ids.
	MaxItemFilter = 100_000
	// MaxAudienceBatch is the largest ScoreAudience batch_size.
	MaxAudienceBatch = 10_000
)

// ListModels pages: 50 models unless asked, at most 500; its page tokens are of kind
// modelsToken (fault.PageToken).
const (
	defaultPageSize = 50
	maxPageSize     = 500
	modelsToken     = "models"
)

// Server implements both services.
type Server struct {
	servingv1.UnimplementedPredictionServiceServer
	store         *models.Store
	features      *features.Client
	audience      *audience.Runner
	ready         func() bool
	draining      <-chan struct{}
	shadowTimeout time.Duration
	version       string
	logger        *slog.Logger
	registerer    prometheus.Registerer
	metrics       *metrics
}

// Option configures a Server.
type Option func(*Server)

// WithReady sets what reports whether the instance is ready (ServerReady); the default
// reports it always is.
func WithReady(ready func() bool) Option { return func(s *Server) { s.ready = ready } }

// WithDraining gives the channel closed when the server begins to shut down; streams end then.
func WithDraining(draining <-chan struct{}) Option { return func(s *Server) { s.draining = draining } }

// WithShadowTimeout bounds the scoring of shadow versions; the default is 5 s.
func WithShadowTimeout(d time.Duration) Option { return func(s *Server) { s.shadowTimeout = d } }

// WithVersion sets the server's version for ServerMetadata.
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// WithLogger sets the logger of failures and shadow comparisons; the default is
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithRegisterer has the server export its per-model request metrics to reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(s *Server) { s.registerer = reg } }

// Inference returns the Open Inference Protocol side of the server.
func (s *Server) Inference() inference.GRPCInferenceServiceServer { return &inferenceServer{s: s} }

// New returns a server answering from the models of store, reading feature sets (audience
// filters, enumeration) through fc and scoring audiences with runner.
func New(store *models.Store, fc *features.Client, runner *audience.Runner, opts ...Option) (*Server, error) {
	s := &Server{store: store, features: fc, audience: runner}
	for _, o := range opts {
		o(s)
	}
	if s.ready == nil {
		s.ready = func() bool { return true }
	}
	if s.shadowTimeout <= 0 {
		s.shadowTimeout = 5 * time.Second
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	var err error
	if s.metrics, err = newMetrics(s.registerer); err != nil {
		return nil, err
	}
	return s, nil
}

// metrics are the per-model request metrics.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	rows     *prometheus.CounterVec
	shadow   *prometheus.CounterVec
	diff     *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bullseye_serving_requests_total",
			Help: "Requests by model, method and gRPC code (model \"\" when it is not loaded here).",
		}, []string{"model", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bullseye_serving_request_seconds",
			Help:    "Request latency inside the server, by model and method.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18),
		}, []string{"model", "method"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bullseye_serving_rows_total",
			Help: "Rows answered, by model, version and status (ok, suppressed, not_found, invalid).",
		}, []string{"model", "version", "status"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bullseye_serving_shadow_rows_total",
			Help: "Rows scored by shadow versions (logged, never returned), by status; dropped when the shadow's queue was full.",
		}, []string{"model", "version", "status"}),
		diff: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bullseye_serving_shadow_score_difference",
			Help:    "Absolute difference between a shadow version's score and the live score of the same row.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 14),
		}, []string{"model", "version"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.rows, m.shadow, m.diff} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

// observe records one request. model is "" when the request never reached a loaded model;
// err is the status error the caller sees (from statuses.Status), whose code labels the count.
func (m *metrics) observe(model, method string, err error, start time.Time) {
	m.requests.WithLabelValues(model, method, status.Code(err).String()).Inc()
	m.latency.WithLabelValues(model, method).Observe(time.Since(start).Seconds())
}

// checkRef checks a model reference (names under the shared bounds, fault.CheckName); field
// is its path.
func checkRef(c *fault.Violations, ref *commonv1.ModelRef, field string) {
	c.CheckName(field+".name", ref.GetName())
	switch sel := ref.GetSelector().(type) {
	case *commonv1.ModelRef_Version:
		if sel.Version < 1 {
			c.Add(field+".version", "must be 1 or more")
		}
	case *commonv1.ModelRef_Alias:
		c.CheckName(field+".alias", sel.Alias)
	}
}

// modelOf returns a request's model, given as a reference (field model) or as one string
// (model_name, "NAME", "NAME@VERSION" or "NAME@ALIAS"), and checks it.
func modelOf(c *fault.Violations, ref *commonv1.ModelRef, name string) *commonv1.ModelRef {
	switch {
	case name == "":
		checkRef(c, ref, "model")
		return ref
	case ref != nil:
		c.Add("model_name", "give model or model_name, not both")
		return nil
	}
	parsed := registry.ParseRef(name)
	var bad fault.Violations
	checkRef(&bad, parsed, "model_name")
	for _, v := range bad {
		c.Add("model_name", "%s %s (want NAME, NAME@VERSION or NAME@ALIAS)", strings.TrimPrefix(v.Field, "model_name."), v.Description)
	}
	return parsed
}

// idProblem returns the problem of a row whose id (field, e.g. "user_id") fails the shared
// bounds of ids (fault.CheckID: fault.MaxIDBytes, UTF-8, no control characters), or nil.
func idProblem(field, id string) *commonv1.Problem {
	if fault.ValidID(id) {
		return nil
	}
	var v fault.Violations
	v.CheckID(field, id)
	reason := "INVALID_ID"
	switch {
	case id == "":
		reason = "MISSING"
	case len(id) > fault.MaxIDBytes:
		reason = "TOO_LONG"
	}
	return &commonv1.Problem{Field: field, Reason: reason, Description: field + " " + v[0].Description}
}

// checkIDs checks every id of a list that applies to the whole request (field, e.g.
// "allowed_item_ids") against the shared bounds.
func checkIDs(c *fault.Violations, field string, ids []string) {
	for i, id := range ids {
		if !fault.ValidID(id) {
			c.CheckID(field+"["+strconv.Itoa(i)+"]", id)
		}
	}
}
