package fault

import (
	"cmp"
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Mapper turns the errors a service's handlers return into the gRPC statuses
// their callers see; it is the only place where that happens. A caller reads
// only text written for callers; any other error's detail is logged, and the
// caller gets a fixed text. Mapper tries, in this order:
//
//   - Violations: INVALID_ARGUMENT with a BadRequest naming the fields;
//   - a Coded error: its kind's code, its reason, message and metadata;
//   - the service's Sentinels, in their order;
//   - the call's end: CANCELLED or DEADLINE_EXCEEDED when the call's context
//     ended or the error is a context's;
//   - an error a stream's Recv or Send returned (see Transport): its code;
//   - anything else: INTERNAL.
//
// Every status but the last three kinds' carries an ErrorInfo in Domain;
// INTERNAL carries one with reason "INTERNAL".
type Mapper struct {
	// Domain is the ErrorInfo domain, e.g. "serving.bullseye".
	Domain string
	// InvalidReason is the ErrorInfo reason of INVALID_ARGUMENT statuses;
	// empty means "INVALID_ARGUMENT".
	InvalidReason string
	// Sentinels are the service's own errors.
	Sentinels []Sentinel
}

// Sentinel maps one of a service's own errors to the status its caller sees.
type Sentinel struct {
	// Err is the service's error, matched with errors.Is.
	Err error
	// Kind is the kind the caller is answered with (ErrNotFound, …): it
	// gives the status code.
	Kind error
	// Reason is the stable ErrorInfo reason.
	Reason string
	// Message is what the caller reads; empty means the error's own text,
	// for errors whose text is written for callers.
	Message string
	// Metadata, when set, gives the ErrorInfo metadata from the error.
	Metadata func(err error) map[string]string
	// Dependency marks the failure of a service or store this one calls: it
	// is logged with its detail, as a warning, and when the call's own
	// context has ended the caller is told that instead.
	Dependency bool
}

// Status returns the status error the caller sees for err, a handler's
// error in method; nil for nil. Details the caller does not see go to
// logger.
func (m *Mapper) Status(ctx context.Context, logger *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	var v Violations
	if errors.As(err, &v) {
		return m.status(codes.InvalidArgument, v.Error(), cmp.Or(m.InvalidReason, "INVALID_ARGUMENT"), nil, v.BadRequest())
	}
	if c, dependency := m.coded(err); c != nil {
		if dependency {
			if ctx.Err() != nil {
				return callEnd(ctx, err)
			}
			logger.WarnContext(ctx, "a dependency failed", slog.String("method", method), slog.Any("error", err))
		}
		if c.Kind == ErrDataLoss {
			logger.ErrorContext(ctx, "stored data is damaged", slog.String("method", method), slog.Any("error", err))
		}
		return m.status(code(c.Kind), c.Message, c.Reason, c.Metadata)
	}
	if st := callEnd(ctx, err); st != nil {
		return st
	}
	var t *transportError
	if errors.As(err, &t) {
		if st, ok := status.FromError(t.err); ok && st.Code() != codes.Unknown {
			return status.Error(st.Code(), "the stream failed: "+st.Code().String())
		}
	}
	logger.ErrorContext(ctx, "request failed", slog.String("method", method), slog.Any("error", err))
	return m.status(codes.Internal, "internal error", "INTERNAL", nil)
}

// Transport marks err as what a stream's Recv or Send returned, whose
// status code is the transport's own (the caller sent a malformed message,
// the stream broke): Mapper keeps that code, with a fixed message. Any other
// error's code is never passed on, lest a dependency's status (etcd's, say)
// reach the caller as if it were this service's. Transport(nil) is nil.
func Transport(err error) error {
	if err == nil {
		return nil
	}
	return &transportError{err: err}
}

type transportError struct{ err error }

func (t *transportError) Error() string { return t.err.Error() }
func (t *transportError) Unwrap() error { return t.err }

// callEnd is the status of a call whose context ended, or that failed with a
// context's error; nil for any other.
func callEnd(ctx context.Context, err error) error {
	end := cmp.Or(ctx.Err(), err)
	switch {
	case errors.Is(end, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the call's deadline passed")
	case errors.Is(end, context.Canceled):
		return status.Error(codes.Canceled, "the call was cancelled")
	}
	return nil
}

// coded returns what the caller is told of err when it is a Coded error or
// one of the Sentinels, and whether it is a dependency's failure (a Coded
// error with a cause is); nil for any other error.
func (m *Mapper) coded(err error) (c *Coded, dependency bool) {
	if errors.As(err, &c) {
		return c, c.Cause != nil
	}
	for _, s := range m.Sentinels {
		if errors.Is(err, s.Err) {
			c = &Coded{Kind: s.Kind, Reason: s.Reason, Message: cmp.Or(s.Message, err.Error())}
			if s.Metadata != nil {
				c.Metadata = s.Metadata(err)
			}
			return c, s.Dependency
		}
	}
	return nil, false
}

func (m *Mapper) status(c codes.Code, msg, reason string, md map[string]string, more ...protoadapt.MessageV1) error {
	st := status.New(c, msg)
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: m.Domain, Metadata: md}}, more...)
	if withDetails, err := st.WithDetails(details...); err == nil {
		st = withDetails
	}
	return st.Err()
}

// code is the status code of a kind.
func code(kind error) codes.Code {
	switch kind {
	case ErrInvalid:
		return codes.InvalidArgument
	case ErrNotFound:
		return codes.NotFound
	case ErrAlreadyExists:
		return codes.AlreadyExists
	case ErrFailedPrecondition:
		return codes.FailedPrecondition
	case ErrAborted:
		return codes.Aborted
	case ErrResourceExhausted:
		return codes.ResourceExhausted
	case ErrUnavailable:
		return codes.Unavailable
	case ErrDataLoss:
		return codes.DataLoss
	}
	return codes.Internal
}
