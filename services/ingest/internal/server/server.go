// Package server implements bullseye.ingest.v1.IngestService: the gRPC
// handlers of Track, Identify, SetConsent, Import, ListDeadLetters,
// ReplayDeadLetters and ForgetUser over the event log. Go errors are mapped
// to gRPC status codes in one place (Status); internal error text never
// reaches callers, and logs, spans and errors never hold a raw personal
// value.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/fault"
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

// Status maps an error from the layers below to the gRPC status the caller
// sees. It is the only place where that happens. Messages are fixed texts
// or texts written for callers (fault kinds); other error text is logged,
// never returned.
func (s *Server) Status(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	var (
		v    fault.Violations
		pre  fault.Precondition
		abrt fault.Aborted
	)
	switch {
	case errors.As(err, &v):
		return withDetails(codes.InvalidArgument, "invalid request: see the field violations", v.BadRequest(),
			&errdetails.ErrorInfo{Reason: "INVALID_REQUEST", Domain: errorDomain})
	case errors.As(err, &pre):
		return withDetails(codes.FailedPrecondition, string(pre), &errdetails.ErrorInfo{Reason: "FAILED_PRECONDITION", Domain: errorDomain})
	case errors.As(err, &abrt):
		return withDetails(codes.Aborted, string(abrt), &errdetails.ErrorInfo{Reason: "CONCURRENT_REQUEST", Domain: errorDomain})
	case errors.Is(err, store.ErrUnavailable):
		s.logger.WarnContext(ctx, "event log unavailable", "method", method, "error", err)
		return withDetails(codes.Unavailable, "the event log is unavailable; nothing was reported stored, retry with the same message ids",
			&errdetails.ErrorInfo{Reason: "EVENT_LOG_UNAVAILABLE", Domain: errorDomain})
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "the call was cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the call's deadline passed")
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		// From the transport (a stream's Recv or Send).
		return status.Error(st.Code(), "the stream failed: "+st.Code().String())
	}
	s.logger.ErrorContext(ctx, "internal error", "method", method, "error", err)
	return withDetails(codes.Internal, "internal error", &errdetails.ErrorInfo{Reason: "INTERNAL", Domain: errorDomain})
}

func withDetails(c codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st := status.New(c, msg)
	if withD, err := st.WithDetails(details...); err == nil {
		st = withD
	}
	return st.Err()
}

// invalid is a whole-request violation.
func invalid(field, format string, args ...any) error {
	return fault.Invalid(field, fmt.Sprintf(format, args...))
}
