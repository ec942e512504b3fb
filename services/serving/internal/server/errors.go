package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	"github.com/bullseye-ml/bullseye/services/serving/internal/audience"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
	"github.com/bullseye-ml/bullseye/services/serving/internal/oip"
)

// ErrorDomain is the domain of the ErrorInfo details of the service's errors.
const ErrorDomain = "serving.bullseye"

// Stable reasons of ErrorInfo details.
const (
	ReasonInvalidArgument = "INVALID_ARGUMENT"
	ReasonModelNotLoaded  = "MODEL_NOT_LOADED"
	ReasonQueueFull       = "QUEUE_FULL"
	ReasonFeatureLookup   = "FEATURE_LOOKUP_FAILED"
	ReasonNoFeatureSet    = "NO_FEATURE_SET"
	ReasonDraining        = "DRAINING"
	ReasonInternal        = "INTERNAL"
)

// errDraining: the server is shutting down.
var errDraining = errors.New("the server is shutting down")

// toStatus maps an error to the gRPC status the caller sees, once, at the handler. Internal
// errors are logged, not shown.
func toStatus(ctx context.Context, logger *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	withInfo := func(c codes.Code, msg, reason string, more ...protoadapt.MessageV1) error {
		st := status.New(c, msg)
		details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}}, more...)
		if d, derr := st.WithDetails(details...); derr == nil {
			st = d
		}
		return st.Err()
	}
	badRequest := func(vs fault.Violations) error {
		return withInfo(codes.InvalidArgument, vs.Error(), ReasonInvalidArgument, vs.BadRequest())
	}
	var inv fault.Violations
	var ov oip.Violations
	switch {
	case errors.As(err, &inv):
		return badRequest(inv)
	case errors.As(err, &ov):
		return badRequest(fault.Violations(ov))
	case errors.Is(err, models.ErrNotLoaded):
		return withInfo(codes.NotFound, err.Error(), ReasonModelNotLoaded)
	case errors.Is(err, batch.ErrQueueFull):
		return withInfo(codes.ResourceExhausted, "the model's queue is full: retry with backoff", ReasonQueueFull)
	case errors.Is(err, batch.ErrClosed):
		return withInfo(codes.Unavailable, "the model version is being unloaded: retry", ReasonModelNotLoaded)
	case errors.Is(err, audience.ErrNoFeatureSet):
		return withInfo(codes.FailedPrecondition, err.Error(), ReasonNoFeatureSet)
	case errors.Is(err, errDraining):
		return withInfo(codes.Unavailable, "the server is shutting down: retry on another instance", ReasonDraining)
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return status.Error(codes.DeadlineExceeded, "the call's deadline passed before it was computed")
	case errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled:
		return status.Error(codes.Canceled, "the call was cancelled")
	case errors.Is(err, features.ErrLookup) || errors.Is(err, features.ErrNoFeatureSet):
		logger.WarnContext(ctx, "feature lookup failed", slog.String("method", method), slog.Any("error", err))
		return withInfo(codes.Unavailable, "the feature service could not be reached or refused the lookup; retry later", ReasonFeatureLookup)
	}
	logger.ErrorContext(ctx, "request failed", slog.String("method", method), slog.Any("error", err))
	return withInfo(codes.Internal, "internal error", ReasonInternal)
}
