// Package fault holds the kinds of whole-request errors ingest reports,
// which the gRPC handlers map to status codes in one place: a request that
// is invalid (with field violations), one that conflicts with the state of
// the system, one that lost a race, and one that names something missing.
// Unavailability of the event log is store.ErrUnavailable.
package fault

import (
	"errors"

	"github.com/bullseye-ml/bullseye/pkg/fault"
)

// Error kinds; test them with errors.Is.
var (
	// ErrInvalid: the request is malformed (INVALID_ARGUMENT). Violations
	// say which fields.
	ErrInvalid = fault.ErrInvalid
	// ErrFailedPrecondition: the request is well formed but the system is
	// not in a state to accept it (FAILED_PRECONDITION).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrAborted: another request on the same thing won a race; retry
	// (ABORTED).
	ErrAborted = errors.New("aborted by a concurrent request")
)

// Violation names one invalid field of a request (the shared kind of
// every service). Its description must not quote personal data.
type Violation = fault.Violation

// Violations is an ErrInvalid error listing the invalid fields.
type Violations = fault.Violations

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
