// Package fault holds the kinds of whole-request errors the training service reports. The
// gRPC handlers map them, and the registry's errors, to status codes in one place
// (server.Status).
package fault

import (
	"errors"
	"fmt"
	"strings"
)

// Error kinds; test for them with errors.Is.
var (
	// ErrInvalid: the request is malformed (INVALID_ARGUMENT); Violations say which fields.
	ErrInvalid = errors.New("invalid request")
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

// Violation names one invalid field of a request.
type Violation struct {
	// Field is the field's path, e.g. "spec.candidates[0].hyperparameters[\"c\"]".
	Field string
	// Description says what is wrong and how to fix it.
	Description string
}

// Violations is an ErrInvalid error listing the invalid fields.
type Violations []Violation

// Error lists the violations.
func (v Violations) Error() string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = x.Field + ": " + x.Description
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

// Invalid returns an ErrInvalid error with one violation.
func Invalid(field, format string, args ...any) error {
	return Violations{{Field: field, Description: fmt.Sprintf(format, args...)}}
}

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
