// Package fault holds the kinds of whole-request errors the training service reports. The
// gRPC handlers map them, and the registry's errors, to status codes in one place
// (server.Status).
package fault

import (
	"errors"
	"fmt"

	"github.com/bullseye-ml/bullseye/pkg/fault"
)

// Error kinds; test for them with errors.Is.
var (
	// ErrInvalid: the request is malformed (INVALID_ARGUMENT); Violations say which fields.
	ErrInvalid = fault.ErrInvalid
	// ErrNotFound: the request names something that does not exist (NOT_FOUND).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the request collides with an earlier one (ALREADY_EXISTS).
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: the request is well formed but the system is not in a state to
	// accept it (FAILED_PRECONDITION).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrUnavailable: a service this one depends on cannot be reached (UNAVAILABLE).
	ErrUnavailable = errors.New("unavailable")
)

// Violation names one invalid field of a request (the shared kind of every service).
type Violation = fault.Violation

// Violations is an ErrInvalid error listing the invalid fields.
type Violations = fault.Violations

// Invalid returns an ErrInvalid error with one violation.
func Invalid(field, format string, args ...any) error { return fault.Invalid(field, format, args...) }

// Coded is an error of one of the kinds above with a stable reason (the ErrorInfo reason)
// and a message written for the caller.
type Coded struct {
	// Kind is ErrNotFound, ErrAlreadyExists, ErrFailedPrecondition or ErrUnavailable.
	Kind error
	// Reason is the stable, UPPER_SNAKE_CASE reason, e.g. "REQUEST_ID_REUSED".
	Reason string
	// Message is safe to show to the caller.
	Message string
	// Metadata goes into the ErrorInfo.
	Metadata map[string]string
	// Cause is the underlying error, for logs only.
	Cause error
}

// Error returns the message.
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

// New returns a Coded error of kind with reason and message.
func New(kind error, reason, format string, args ...any) error {
	return &Coded{Kind: kind, Reason: reason, Message: fmt.Sprintf(format, args...)}
}
