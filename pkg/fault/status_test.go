package fault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	errFull     = errors.New("the queue is full")
	errGone     = errors.New("thing not found")
	errBackend  = errors.New("backend failed")
	errDamaged  = errors.New("record does not decode")
	errRevision = errors.New("revision mismatch")
)

// testMapper is a service's table as the services write theirs.
var testMapper = Mapper{
	Domain:        "test.bullseye",
	InvalidReason: "INVALID_REQUEST",
	Sentinels: []Sentinel{
		{Err: errFull, Kind: ErrResourceExhausted, Reason: "QUEUE_FULL", Message: "the queue is full: retry with backoff"},
		{Err: errGone, Kind: ErrNotFound, Reason: "THING_NOT_FOUND"},
		{Err: errBackend, Kind: ErrUnavailable, Reason: "BACKEND_FAILED", Message: "the backend could not be reached; retry later", Dependency: true},
		{Err: errDamaged, Kind: ErrDataLoss, Reason: "DAMAGED", Message: "the stored data is damaged"},
		{Err: errRevision, Kind: ErrAborted, Reason: "REVISION_MISMATCH", Metadata: func(err error) map[string]string {
			return map[string]string{"current_revision": "7"}
		}},
	},
}

func TestMapperStatus(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	expired, cancel2 := context.WithTimeout(live, -1)
	defer cancel2()
	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		code     codes.Code
		message  string
		reason   string // "" when the status carries no ErrorInfo
		metadata string
		fields   []string // the BadRequest's fields
		logged   string   // what the log holds ("" when nothing is logged)
	}{
		{name: "violations", ctx: live, err: fmt.Errorf("checking: %w", Violations{{"a.b", "is required"}, {"c", "too long"}}),
			code: codes.InvalidArgument, message: "invalid request: a.b: is required; c: too long", reason: "INVALID_REQUEST", fields: []string{"a.b", "c"}},
		{name: "coded", ctx: live, err: fmt.Errorf("creating: %w", New(ErrAlreadyExists, "REQUEST_ID_REUSED", "request id %q names another job", "r-1")),
			code: codes.AlreadyExists, message: `request id "r-1" names another job`, reason: "REQUEST_ID_REUSED"},
		{name: "coded metadata", ctx: live, err: &Coded{Kind: ErrFailedPrecondition, Reason: "TASK_MISMATCH", Message: "other task", Metadata: map[string]string{"task": "regression"}},
			code: codes.FailedPrecondition, message: "other task", reason: "TASK_MISMATCH", metadata: "task=regression"},
		{name: "coded with a cause", ctx: live, err: &Coded{Kind: ErrUnavailable, Reason: "REGISTRY_FAILED", Message: "registering failed", Cause: errors.New("etcd: no leader")},
			code: codes.Unavailable, message: "registering failed", reason: "REGISTRY_FAILED", logged: "etcd: no leader"},
		{name: "coded with a cause, call cancelled", ctx: cancelled, err: &Coded{Kind: ErrUnavailable, Reason: "REGISTRY_FAILED", Message: "registering failed", Cause: errors.New("etcd: no leader")},
			code: codes.Canceled, message: "the call was cancelled"},
		{name: "sentinel with a message", ctx: live, err: fmt.Errorf("enqueueing: %w", errFull),
			code: codes.ResourceExhausted, message: "the queue is full: retry with backoff", reason: "QUEUE_FULL"},
		{name: "sentinel with its own text", ctx: live, err: fmt.Errorf("%w: %s", errGone, `"x"`),
			code: codes.NotFound, message: `thing not found: "x"`, reason: "THING_NOT_FOUND"},
		{name: "sentinel metadata", ctx: live, err: errRevision,
			code: codes.Aborted, message: "revision mismatch", reason: "REVISION_MISMATCH", metadata: "current_revision=7"},
		{name: "dependency", ctx: live, err: fmt.Errorf("%w: dialing 10.0.0.7: connection refused", errBackend),
			code: codes.Unavailable, message: "the backend could not be reached; retry later", reason: "BACKEND_FAILED", logged: "dialing 10.0.0.7"},
		{name: "dependency, deadline passed", ctx: expired, err: fmt.Errorf("%w: dialing 10.0.0.7", errBackend),
			code: codes.DeadlineExceeded, message: "the call's deadline passed"},
		{name: "sentinel before the call's end", ctx: expired, err: fmt.Errorf("%w: %w", errFull, context.DeadlineExceeded),
			code: codes.ResourceExhausted, message: "the queue is full: retry with backoff", reason: "QUEUE_FULL"},
		{name: "data loss", ctx: live, err: fmt.Errorf("reading record 9: %w", errDamaged),
			code: codes.DataLoss, message: "the stored data is damaged", reason: "DAMAGED", logged: "reading record 9"},
		{name: "call cancelled", ctx: cancelled, err: errors.New("scan stopped"),
			code: codes.Canceled, message: "the call was cancelled"},
		{name: "context error", ctx: live, err: fmt.Errorf("waiting: %w", context.DeadlineExceeded),
			code: codes.DeadlineExceeded, message: "the call's deadline passed"},
		{name: "transport", ctx: live, err: fmt.Errorf("reading chunk: %w", Transport(status.Error(codes.InvalidArgument, "grpc: cannot parse"))),
			code: codes.InvalidArgument, message: "the stream failed: InvalidArgument"},
		{name: "transport, unknown", ctx: live, err: Transport(errors.New("EOF")),
			code: codes.Internal, message: "internal error", reason: "INTERNAL", logged: "EOF"},
		{name: "a dependency's status", ctx: live, err: fmt.Errorf("reading sets: %w", status.Error(codes.PermissionDenied, "etcdserver: permission denied")),
			code: codes.Internal, message: "internal error", reason: "INTERNAL", logged: "etcdserver: permission denied"},
		{name: "internal", ctx: live, err: errors.New("index out of range at row 7"),
			code: codes.Internal, message: "internal error", reason: "INTERNAL", logged: "row 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			st := status.Convert(testMapper.Status(tt.ctx, slog.New(slog.NewTextHandler(&logs, nil)), "Do", tt.err))
			if st.Code() != tt.code || st.Message() != tt.message {
				t.Errorf("status %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.message)
			}
			var reason, metadata string
			var fields []string
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.ErrorInfo:
					if d.GetDomain() != "test.bullseye" {
						t.Errorf("domain %q", d.GetDomain())
					}
					reason = d.GetReason()
					for k, v := range d.GetMetadata() {
						metadata += k + "=" + v
					}
				case *errdetails.BadRequest:
					for _, f := range d.GetFieldViolations() {
						fields = append(fields, f.GetField())
					}
				}
			}
			if reason != tt.reason || metadata != tt.metadata || fmt.Sprint(fields) != fmt.Sprint(tt.fields) {
				t.Errorf("reason %q metadata %q fields %v, want %q %q %v", reason, metadata, fields, tt.reason, tt.metadata, tt.fields)
			}
			switch got := logs.String(); {
			case tt.logged == "":
				if got != "" {
					t.Errorf("logged %s", got)
				}
			case !strings.Contains(got, tt.logged) || !strings.Contains(got, "method=Do"):
				t.Errorf("the log %q does not hold %q and the method", got, tt.logged)
			}
		})
	}
	if err := testMapper.Status(live, slog.Default(), "Do", nil); err != nil {
		t.Errorf("nil maps to %v", err)
	}
	if Transport(nil) != nil {
		t.Error("Transport(nil) is not nil")
	}
}

func TestCoded(t *testing.T) {
	cause := errors.New("connection refused")
	err := fmt.Errorf("registering: %w", &Coded{Kind: ErrUnavailable, Reason: "R", Message: "the registry failed", Cause: cause})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, cause) || errors.Is(err, ErrNotFound) {
		t.Errorf("a Coded error matches its kind and its cause only: %v", err)
	}
	if got, want := err.Error(), "registering: the registry failed: connection refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
