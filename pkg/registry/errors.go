package registry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// Errors of the registry; test for them with errors.Is, and get details with errors.As on the
// typed errors below.
var (
	// ErrNotFound: the model, version or alias does not exist, or nothing is live. It is a
	// *fault.Coded error with a stable reason: MODEL_NOT_FOUND, VERSION_NOT_FOUND,
	// ALIAS_NOT_FOUND or NO_LIVE_VERSION.
	ErrNotFound = fault.ErrNotFound
	// ErrInvalid: the request is malformed; a fault.Violations error names the fields.
	ErrInvalid = fault.ErrInvalid
	// ErrRevisionMismatch: a promotion's expected revision is stale; a *RevisionError gives
	// the current one.
	ErrRevisionMismatch = errors.New("registry revision mismatch")
	// ErrQualityGate: a version that would newly take live traffic is worse than the live
	// one; a *QualityGateError gives the comparisons.
	ErrQualityGate = errors.New("quality gate refused the promotion")
	// ErrConflict: the request contradicts what is registered (a version of another task
	// than the model's).
	ErrConflict = errors.New("conflicts with the registered model")
	// ErrCorrupt: stored data does not read back (a malformed record, an artifact whose
	// checksum or size does not match its metadata).
	ErrCorrupt = errors.New("corrupt registry data")
)

func notFound(reason, format string, args ...any) error {
	return fault.New(ErrNotFound, reason, format, args...)
}

// RevisionError is an ErrRevisionMismatch error.
type RevisionError struct {
	// Model is the model's name.
	Model string
	// Expected is the revision the caller gave; Current the model's revision now.
	Expected, Current int64
}

// Error says which revisions differ.
func (e *RevisionError) Error() string {
	return fmt.Sprintf("model %q is at revision %d, not %d: read it again and retry", e.Model, e.Current, e.Expected)
}

// Is makes RevisionError match ErrRevisionMismatch.
func (e *RevisionError) Is(target error) bool { return target == ErrRevisionMismatch }

// QualityGateError is an ErrQualityGate error.
type QualityGateError struct {
	// Checks are the quality gate's comparisons, failed ones included.
	Checks []*modelv1.QualityGateCheck
}

// Error names the failed checks.
func (e *QualityGateError) Error() string {
	var parts []string
	for _, c := range e.Checks {
		if !c.GetPassed() {
			parts = append(parts, fmt.Sprintf("version %d has %s %.6g, live version %d has %.6g",
				c.GetVersion(), c.GetMetric(), c.GetValue(), c.GetLiveVersion(), c.GetLiveValue()))
		}
	}
	return "quality gate: " + strings.Join(parts, "; ") + " (set force to promote anyway)"
}

// Is makes QualityGateError match ErrQualityGate.
func (e *QualityGateError) Is(target error) bool { return target == ErrQualityGate }
