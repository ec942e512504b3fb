package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// healthMethodPrefix starts the full method names of the health service, whose frequent probes
// are logged at debug level only.
const healthMethodPrefix = "/grpc.health.v1.Health/"

// recoverUnary turns a panic in a unary handler into codes.Internal, logging the panic and its
// stack. The caller sees no detail of the panic.
func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = panicError(ctx, logger, info.FullMethod, p)
			}
		}()
		return handler(ctx, req)
	}
}

// recoverStream is recoverUnary for streaming handlers.
func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = panicError(ss.Context(), logger, info.FullMethod, p)
			}
		}()
		return handler(srv, ss)
	}
}

func panicError(ctx context.Context, logger *slog.Logger, method string, p any) error {
	logger.LogAttrs(ctx, slog.LevelError, "panic in gRPC handler",
		slog.String("method", method),
		slog.String("panic", fmt.Sprint(p)),
		slog.String("stack", string(debug.Stack())),
	)
	return status.Error(codes.Internal, "internal error")
}

// logUnary logs every finished unary call that failed or took slow or longer, with its
// method, status code and duration (and the trace id the logger adds); a quick success is
// logged at debug only, so that a busy server does not pay a log line per call.
func logUnary(logger *slog.Logger, slow time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logCall(ctx, logger, info.FullMethod, err, time.Since(start), slow)
		return resp, err
	}
}

// logStream is logUnary for streaming calls.
func logStream(logger *slog.Logger, slow time.Duration) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logCall(ss.Context(), logger, info.FullMethod, err, time.Since(start), slow)
		return err
	}
}

func logCall(ctx context.Context, logger *slog.Logger, method string, err error, d, slow time.Duration) {
	code := status.Code(err)
	level := levelFor(code)
	isSlow := slow > 0 && d >= slow
	switch {
	case strings.HasPrefix(method, healthMethodPrefix):
		level = slog.LevelDebug
	case code == codes.OK && !isSlow:
		level = slog.LevelDebug
	}
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Duration("duration", d),
	}
	if isSlow {
		attrs = append(attrs, slog.Bool("slow", true))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", status.Convert(err).Message()))
	}
	logger.LogAttrs(ctx, level, "gRPC call", attrs...)
}

// levelFor maps a status code to the level its call is logged at: the caller's mistakes and
// a slow success at info, trouble worth a look at warn, the server's own faults at error.
func levelFor(code codes.Code) slog.Level {
	switch code {
	case codes.OK, codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.Unauthenticated:
		return slog.LevelInfo
	case codes.DeadlineExceeded, codes.PermissionDenied, codes.ResourceExhausted, codes.FailedPrecondition,
		codes.Aborted, codes.OutOfRange, codes.Unavailable:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}
