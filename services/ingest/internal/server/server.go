// Package server implements bullseye.ingest.v1.IngestService: the gRPC
// handlers of Track, Identify, SetConsent, Import, ListDeadLetters,
// ReplayDeadLetters and ForgetUser over the event log. Go errors are mapped
// to gRPC status codes in one place (statuses); internal error text never
// reaches callers, and logs, spans and errors never hold a raw personal
// value.
package server

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/importer"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/record"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/store"
)

// Defaults of New's options.
const (
	// DefaultMaxBatch is the most items one Track, Identify, SetConsent or
	// ReplayDeadLetters call may carry.
	DefaultMaxBatch = 500
	// DefaultErasureWait bounds how long ForgetUser waits for the feature
	// service to confirm that it deleted the customer's state.
	DefaultErasureWait = 3 * time.Second
	// maxDeadLetterItemBytes is the largest item kept whole in a dead
	// letter; larger ones (TOO_LARGE rejections) lose their maps.
	maxDeadLetterItemBytes = 256 << 10
)

// errorDomain is the domain of ErrorInfo details.
const errorDomain = "ingest.bullseye"

// Server answers the IngestService RPCs.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer

	store       *store.Store
	builder     *record.Builder
	importer    *importer.Importer
	logger      *slog.Logger
	tracer      trace.Tracer
	maxBatch    int
	erasureWait time.Duration
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithTracerProvider sets where the server's spans go; the default is the
// global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Server) { s.tracer = tp.Tracer("github.com/bullseye-ml/bullseye/services/ingest") }
}

// WithMaxBatch sets the most items per batch call; the default is
// DefaultMaxBatch.
func WithMaxBatch(n int) Option { return func(s *Server) { s.maxBatch = n } }

// WithErasureWait sets how long ForgetUser waits for the feature service's
// confirmation; the call's deadline bounds it too. Zero does not wait. The
// default is DefaultErasureWait.
func WithErasureWait(d time.Duration) Option { return func(s *Server) { s.erasureWait = d } }

// WithImporter sets the importer that runs Import streams; the default is
// importer.New(store, builder) with the server's logger.
func WithImporter(im *importer.Importer) Option { return func(s *Server) { s.importer = im } }

// New returns a Server storing through st and building records with b.
func New(st *store.Store, b *record.Builder, opts ...Option) *Server {
	s := &Server{
		store:       st,
		builder:     b,
		logger:      slog.Default(),
		tracer:      otel.GetTracerProvider().Tracer("github.com/bullseye-ml/bullseye/services/ingest"),
		maxBatch:    DefaultMaxBatch,
		erasureWait: DefaultErasureWait,
	}
	for _, o := range opts {
		o(s)
	}
	if s.importer == nil {
		s.importer = importer.New(st, b, importer.WithLogger(s.logger))
	}
	return s
}

// statuses maps the errors of the layers below to the gRPC statuses callers
// see, once, at the handler: messages are fixed texts or texts written for
// callers (fault kinds); other error text is logged, never returned.
var statuses = fault.Mapper{
	Domain:        errorDomain,
	InvalidReason: "INVALID_REQUEST",
	Sentinels: []fault.Sentinel{
		{Err: store.ErrUnavailable, Kind: fault.ErrUnavailable, Reason: "EVENT_LOG_UNAVAILABLE", Dependency: true,
			Message: "the event log is unavailable; nothing was reported stored, retry with the same message ids"},
	},
}
