// Package fault is the error every Bullseye service returns for a request
// it refuses, and the one mapping of such errors to gRPC statuses: the
// kinds of whole-request errors (each answered with one code), field
// violations (INVALID_ARGUMENT with a google.rpc.BadRequest that names each
// field and says what is wrong with it), errors that carry a stable reason
// and a message written for the caller (Coded), and Mapper, which turns
// whatever a handler returns into the status its caller sees. Each service
// adds only its table of its own errors (Sentinel).
package fault

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// Kinds of whole-request errors; test for them with errors.Is. Each is
// answered with one gRPC code.
var (
	// ErrInvalid: the request is malformed (INVALID_ARGUMENT). Every
	// Violations error matches it, and says which fields.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: the request names something that does not exist
	// (NOT_FOUND).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the request collides with an earlier one
	// (ALREADY_EXISTS).
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: the request is well formed but the system is
	// not in a state to accept it (FAILED_PRECONDITION).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrAborted: another request on the same thing won a race; retry
	// (ABORTED).
	ErrAborted = errors.New("aborted by a concurrent request")
	// ErrResourceExhausted: a bounded resource is full; retry with backoff
	// (RESOURCE_EXHAUSTED).
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrUnavailable: the service, or one it depends on, cannot answer now;
	// retry (UNAVAILABLE).
	ErrUnavailable = errors.New("unavailable")
	// ErrDataLoss: stored data is damaged (DATA_LOSS). Mapper logs it, as
	// an error.
	ErrDataLoss = errors.New("data loss")
)

// Coded is an error of one of the kinds above with a stable reason (the
// ErrorInfo reason) and a message written for the caller.
type Coded struct {
	// Kind is one of the kinds above.
	Kind error
	// Reason is the stable, UPPER_SNAKE_CASE reason, e.g. "REQUEST_ID_REUSED".
	Reason string
	// Message is safe to show to the caller.
	Message string
	// Metadata goes into the ErrorInfo.
	Metadata map[string]string
	// Cause is the underlying error, for logs only: Mapper logs a Coded
	// error that has one, as a warning.
	Cause error
}

// Error returns the message, and the cause's text after it.
func (c *Coded) Error() string {
	if c.Cause != nil {
		return c.Message + ": " + c.Cause.Error()
	}
	return c.Message
}

// Is makes Coded match its kind.
func (c *Coded) Is(target error) bool { return target == c.Kind }

// Unwrap returns the cause.
func (c *Coded) Unwrap() error { return c.Cause }

// New returns a Coded error of kind with reason and a message.
func New(kind error, reason, format string, args ...any) error {
	return &Coded{Kind: kind, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Violation names one invalid field of a request.
type Violation struct {
	// Field is the field's path, e.g. "feature_set.features[2].aggregate.window".
	Field string
	// Description says what is wrong and how to fix it, without quoting
	// personal data.
	Description string
}

// Violations is every invalid field found in a request; it is an error.
type Violations []Violation

// MaxReported is the most violations an error message or its BadRequest
// lists; the rest are counted ("and N more"), so that a request with
// thousands of bad items gets an answer of bounded size.
const MaxReported = 20

// Error lists the violations: "invalid request: <field>: <description>; ...".
func (v Violations) Error() string {
	n := min(len(v), MaxReported)
	parts := make([]string, n, n+1)
	for i, x := range v[:n] {
		parts[i] = x.Field + ": " + x.Description
	}
	if len(v) > n {
		parts = append(parts, fmt.Sprintf("and %d more", len(v)-n))
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Is makes Violations match ErrInvalid.
func (v Violations) Is(target error) bool { return target == ErrInvalid }

// Add appends a violation.
func (v *Violations) Add(field, format string, args ...any) {
	*v = append(*v, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// Err returns v as an error, or nil when it is empty.
func (v Violations) Err() error {
	if len(v) == 0 {
		return nil
	}
	return v
}

// Invalid returns a Violations error with one violation.
func Invalid(field, format string, args ...any) error {
	return Violations{{Field: field, Description: fmt.Sprintf(format, args...)}}
}

// BadRequest is the status detail listing the violations (the first
// MaxReported of them, then one that counts the rest).
func (v Violations) BadRequest() *errdetails.BadRequest {
	n := min(len(v), MaxReported)
	br := &errdetails.BadRequest{FieldViolations: make([]*errdetails.BadRequest_FieldViolation, n, n+1)}
	for i, x := range v[:n] {
		br.FieldViolations[i] = &errdetails.BadRequest_FieldViolation{Field: x.Field, Description: x.Description}
	}
	if len(v) > n {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Description: fmt.Sprintf("and %d more violations", len(v)-n)})
	}
	return br
}
