package clv

import (
	"errors"
	"fmt"
)

// ErrInvalidInput is wrapped by every error about values handed to this package, so
// callers can map them with errors.Is.
var ErrInvalidInput = errors.New("invalid input")

// FieldError says which value was rejected and why. Field is the Go name of the struct
// field (Frequency, Recency, T, Monetary of a [Customer]; Customer, At, Value of a
// [Purchase]) or of the argument (cutoff, unit, …).
type FieldError struct {
	// Row is the position of the rejected element in its slice, or -1 when the error
	// is about an argument.
	Row int
	// ID is the customer's identifier, when there is one.
	ID    string
	Field string
	// Problem states the value and what was wanted, e.g. "is -1, want ≥ 0".
	Problem string
}

// Error names the row and customer, when known, the field and the problem.
func (e *FieldError) Error() string {
	switch {
	case e.Row < 0:
		return fmt.Sprintf("%s %s", e.Field, e.Problem)
	case e.ID != "":
		return fmt.Sprintf("row %d (customer %q): %s %s", e.Row, e.ID, e.Field, e.Problem)
	default:
		return fmt.Sprintf("row %d: %s %s", e.Row, e.Field, e.Problem)
	}
}

// Unwrap returns ErrInvalidInput.
func (e *FieldError) Unwrap() error { return ErrInvalidInput }

func argError(field, format string, args ...any) error {
	return &FieldError{Row: -1, Field: field, Problem: fmt.Sprintf(format, args...)}
}

func rowError(row int, id, field, format string, args ...any) error {
	return &FieldError{Row: row, ID: id, Field: field, Problem: fmt.Sprintf(format, args...)}
}
