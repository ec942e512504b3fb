package fault

import (
	"errors"
	"fmt"
	"testing"
)

func TestViolations(t *testing.T) {
	var v Violations
	if v.Err() != nil {
		t.Fatal("no violations is an error")
	}
	v.Add("a.b", "must be %d or more", 2)
	v = append(v, Violation{Field: "c", Description: "is required"})
	err := fmt.Errorf("checking: %w", v.Err())
	if got, want := v.Error(), "invalid request: a.b: must be 2 or more; c: is required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Error("a wrapped Violations is not ErrInvalid")
	}
	var got Violations
	if !errors.As(err, &got) || len(got) != 2 {
		t.Fatalf("errors.As = %v", got)
	}
	br := got.BadRequest()
	if len(br.GetFieldViolations()) != 2 || br.GetFieldViolations()[0].GetField() != "a.b" || br.GetFieldViolations()[1].GetDescription() != "is required" {
		t.Errorf("BadRequest = %v", br)
	}
	if one := Invalid("x", "bad %q", "y"); one.Error() != `invalid request: x: bad "y"` || !errors.Is(one, ErrInvalid) {
		t.Errorf("Invalid = %v", one)
	}
}
