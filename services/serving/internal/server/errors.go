package server

import (
	"errors"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	"github.com/bullseye-ml/bullseye/services/serving/internal/audience"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
)

// ErrorDomain is the domain of the ErrorInfo details of the service's errors.
const ErrorDomain = "serving.bullseye"

// Stable reasons of ErrorInfo details.
const (
	ReasonModelNotLoaded = "MODEL_NOT_LOADED"
	ReasonQueueFull      = "QUEUE_FULL"
	ReasonFeatureLookup  = "FEATURE_LOOKUP_FAILED"
	ReasonNoFeatureSet   = "NO_FEATURE_SET"
	ReasonDraining       = "DRAINING"
)

// errDraining: the server is shutting down.
var errDraining = errors.New("the server is shutting down")

// lookupFailed is what the caller reads when the feature service failed a lookup.
const lookupFailed = "the feature service could not be reached or refused the lookup; retry later"

// statuses maps the service's errors to the statuses its callers see, once, at the handler.
var statuses = fault.Mapper{
	Domain: ErrorDomain,
	Sentinels: []fault.Sentinel{
		{Err: models.ErrNotLoaded, Kind: fault.ErrNotFound, Reason: ReasonModelNotLoaded},
		{Err: batch.ErrQueueFull, Kind: fault.ErrResourceExhausted, Reason: ReasonQueueFull, Message: "the model's queue is full: retry with backoff"},
		{Err: batch.ErrClosed, Kind: fault.ErrUnavailable, Reason: ReasonModelNotLoaded, Message: "the model version is being unloaded: retry"},
		{Err: audience.ErrNoFeatureSet, Kind: fault.ErrFailedPrecondition, Reason: ReasonNoFeatureSet},
		{Err: errDraining, Kind: fault.ErrUnavailable, Reason: ReasonDraining, Message: "the server is shutting down: retry on another instance"},
		{Err: features.ErrLookup, Kind: fault.ErrUnavailable, Reason: ReasonFeatureLookup, Message: lookupFailed, Dependency: true},
		{Err: features.ErrNoFeatureSet, Kind: fault.ErrUnavailable, Reason: ReasonFeatureLookup, Message: lookupFailed, Dependency: true},
	},
}
