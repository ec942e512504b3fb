// Package fault holds the kinds of whole-request errors ingest reports,
// which the gRPC handlers map to status codes in one place: a request that
// is invalid (with field violations), one that conflicts with the state of
// the system, one that lost a race, and one that names something missing.
// Unavailability of the event log is store.ErrUnavailable.
package fault

import (
	"errors"
	"strings"
)

// Error kinds; test them with errors.Is.
var (
	// ErrInvalid: the request is malformed (INVALID_ARGUMENT). Violations
	// say which fields.
	ErrInvalid = errors.New("invalid request")
	// ErrFailedPrecondition: the request is well formed but the system is
	// not in a state to accept it (FAILED_PRECONDITION).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrAborted: another request on the same thing won a race; retry
	// (ABORTED).
	ErrAborted = errors.New("aborted by a concurrent request")
)

// Violation names one invalid field of a request.
type Violation struct {
	// Field is the field's path, e.g. "start.mapping.delimiter".
	Field string
	// Description says what is wrong, without quoting personal data.
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

// Invalid returns an ErrInvalid error with one violation.
func Invalid(field, description string) error {
	return Violations{{Field: field, Description: description}}
}

// Precondition is an ErrFailedPrecondition error whose message is safe to
// show to the caller.
type Precondition string

// Error returns the message.
func (p Precondition) Error() string { return string(p) }

// Is makes Precondition match ErrFailedPrecondition.
func (p Precondition) Is(target error) bool { return target == ErrFailedPrecondition }

// Aborted is an ErrAborted error whose message is safe to show.
type Aborted string

// Error returns the message.
func (a Aborted) Error() string { return string(a) }

// Is makes Aborted match ErrAborted.
func (a Aborted) Is(target error) bool { return target == ErrAborted }
