// Package fault is the error every Bullseye service returns for a request
// with invalid fields, and its gRPC form: INVALID_ARGUMENT carrying a
// google.rpc.BadRequest that names each field and says what is wrong with
// it. Each service adds its own kinds of errors around it.
package fault

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// ErrInvalid matches every Violations error (errors.Is).
var ErrInvalid = errors.New("invalid request")

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
