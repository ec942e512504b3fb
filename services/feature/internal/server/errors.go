package server

import (
	"github.com/bullseye-ml/bullseye/pkg/fault"
	"github.com/bullseye-ml/bullseye/services/feature/internal/catalog"
	"github.com/bullseye-ml/bullseye/services/feature/internal/materialize"
)

// ErrorDomain is the domain of the ErrorInfo details of the service's
// errors.
const ErrorDomain = "feature.bullseye"

// Stable reasons of ErrorInfo details.
const (
	ReasonNotFound = "FEATURE_SET_NOT_FOUND"
	ReasonNotReady = "FEATURE_SET_NOT_READY"
	ReasonBehind   = "MATERIALISATION_BEHIND"
)

// statuses maps the service's errors to the statuses its callers see, once,
// at the handler.
var statuses = fault.Mapper{
	Domain: ErrorDomain,
	Sentinels: []fault.Sentinel{
		{Err: catalog.ErrNotFound, Kind: fault.ErrNotFound, Reason: ReasonNotFound},
		{Err: catalog.ErrNotReady, Kind: fault.ErrFailedPrecondition, Reason: ReasonNotReady},
		{Err: materialize.ErrBehind, Kind: fault.ErrUnavailable, Reason: ReasonBehind,
			Message: "feature state is still catching up with the events stream; retry later"},
	},
}
