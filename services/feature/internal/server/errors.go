package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/bullseye-ml/bullseye/services/feature/internal/catalog"
	"github.com/bullseye-ml/bullseye/services/feature/internal/featureset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/materialize"
)

// ErrorDomain is the domain of the ErrorInfo details of the service's
// errors.
const ErrorDomain = "feature.bullseye"

// Stable reasons of ErrorInfo details.
const (
	ReasonInvalidArgument = "INVALID_ARGUMENT"
	ReasonNotFound        = "FEATURE_SET_NOT_FOUND"
	ReasonNotReady        = "FEATURE_SET_NOT_READY"
	ReasonBehind          = "MATERIALISATION_BEHIND"
	ReasonInternal        = "INTERNAL"
)

// toStatus maps an error to the gRPC status the caller sees, once, at the
// handler. Internal errors are logged, not shown.
func toStatus(ctx context.Context, logger *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	withInfo := func(c codes.Code, msg, reason string, more ...any) error {
		st := status.New(c, msg)
		details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}}
		for _, m := range more {
			details = append(details, m.(protoadapt.MessageV1))
		}
		if d, derr := st.WithDetails(details...); derr == nil {
			st = d
		}
		return st.Err()
	}
	var v featureset.Violations
	switch {
	case errors.As(err, &v):
		return withInfo(codes.InvalidArgument, v.Error(), ReasonInvalidArgument, v.BadRequest())
	case errors.Is(err, catalog.ErrNotFound):
		return withInfo(codes.NotFound, err.Error(), ReasonNotFound)
	case errors.Is(err, catalog.ErrNotReady):
		return withInfo(codes.FailedPrecondition, err.Error(), ReasonNotReady)
	case errors.Is(err, materialize.ErrBehind):
		return withInfo(codes.Unavailable, "feature state is still catching up with the events stream; retry later", ReasonBehind)
	case errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled:
		return status.Error(codes.Canceled, "the call was cancelled")
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return status.Error(codes.DeadlineExceeded, "the call's deadline passed")
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	logger.ErrorContext(ctx, "request failed", slog.String("method", method), slog.Any("error", err))
	return withInfo(codes.Internal, "internal error", ReasonInternal)
}
