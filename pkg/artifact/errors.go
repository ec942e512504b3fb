package artifact

import "errors"

// Errors of the package; test for them with errors.Is.
var (
	// ErrInvalid marks an artifact that is malformed or inconsistent: an unknown format
	// version, parameters that do not fit the family, preprocessing whose widths do not add
	// up. Loading refuses it.
	ErrInvalid = errors.New("invalid model artifact")
	// ErrUnsupported marks an artifact or model this package cannot convert or score yet
	// (feature-model decoding of recommenders, signed hashing).
	ErrUnsupported = errors.New("unsupported model")
	// ErrChecksum marks serialised artifact bytes whose SHA-256 digest is not the expected
	// one.
	ErrChecksum = errors.New("artifact checksum mismatch")
	// ErrWrongType marks a raw value whose type the input does not take; it is reported
	// per row, never for a whole batch.
	ErrWrongType = errors.New("wrong value type")
	// ErrNotFinite marks a number given for a scored row that is NaN or infinite: it is
	// neither a value nor a missing one (a missing value is nil, or a Value with no kind).
	// It is reported per row.
	ErrNotFinite = errors.New("not a finite number")
)
