// Package server answers serving's gRPC APIs — bullseye.serving.v1.PredictionService and the
// Open Inference Protocol v2 (inference.GRPCInferenceService) — on the batched core: it checks
// requests, routes their rows to model versions through a lease, queues them, waits for their
// outcomes and maps errors to gRPC status codes once, here.
package server

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
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

// Config is what the server needs.
type Config struct {
	// Store holds the models.
	Store *models.Store
	// Features reads feature sets (audience filters, enumeration).
	Features *features.Client
	// Audience scores audiences.
	Audience *audience.Runner
	// Ready reports whether the instance is ready (ServerReady).
	Ready func() bool
	// Draining is closed when the server begins to shut down; streams end then.
	Draining <-chan struct{}
	// ShadowTimeout bounds the scoring of shadow versions; 0 means 5 s.
	ShadowTimeout time.Duration
	// Version is the server's version for ServerMetadata.
	Version string
	// Logger logs failures and shadow comparisons.
	Logger *slog.Logger
	// Registerer receives the per-model request metrics.
	Registerer prometheus.Registerer
}

// Server implements both services.
type Server struct {
	servingv1.UnimplementedPredictionServiceServer
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
}

// Inference returns the Open Inference Protocol side of the server.
func (s *Server) Inference() inference.GRPCInferenceServiceServer { return &inferenceServer{s: s} }

// New returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.ShadowTimeout <= 0 {
		cfg.ShadowTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, logger: cfg.Logger, metrics: m}, nil
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

// refOf turns an OIP model name and version (a decimal number, an alias or empty) into a
// model reference.
func refOf(name, version string) *commonv1.ModelRef {
	ref := &commonv1.ModelRef{Name: name}
	if version == "" {
		return ref
	}
	if n, err := strconv.ParseInt(version, 10, 64); err == nil {
		ref.Selector = &commonv1.ModelRef_Version{Version: n}
	} else {
		ref.Selector = &commonv1.ModelRef_Alias{Alias: version}
	}
	return ref
}
