// Package server answers the bullseye.training.v1.TrainingService RPCs: jobs through package
// jobs, the registry through pkg/registry, evaluation through pkg/artifact's scorer, imports
// of models fitted elsewhere through package modelimport. Errors
// from the layers below are mapped to gRPC statuses in one place, statuses.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/training/internal/jobs"
	"github.com/bullseye-ml/bullseye/services/training/internal/modelimport"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
	"github.com/bullseye-ml/bullseye/services/training/internal/trainer"
)

// errorDomain is the domain of ErrorInfo details.
const errorDomain = "training.bullseye"

// Limits of requests.
const (
	defaultPageSize = 50
	maxPageSize     = 500
	maxReason       = 1024
	maxNameLen      = 63
	maxInlineRows   = 100_000
	scorerCacheSize = 16
)

// notNameRune reports whether r is a character no model name has.
func notNameRune(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }

// Server answers the TrainingService RPCs.
type Server struct {
	trainingv1.UnimplementedTrainingServiceServer

	jobs     *jobs.Store
	registry *registry.Registry
	features featurev1.FeatureServiceClient
	logger   *slog.Logger
	draining <-chan struct{}

	maxImportBytes int64
	codeVersion    string

	mu      sync.Mutex
	scorers map[string]artifact.Scorer
	order   []string
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithDraining sets the channel that closes when the server begins to shut down: WatchJob
// streams end then, with UNAVAILABLE, so that clients watch again on another replica.
func WithDraining(ch <-chan struct{}) Option { return func(s *Server) { s.draining = ch } }

// WithMaxImportBytes sets the largest model file ImportModel takes; the default is
// modelimport.DefaultMaxBytes (256 MiB).
func WithMaxImportBytes(n int64) Option { return func(s *Server) { s.maxImportBytes = n } }

// New returns a Server on a job store, the registry and the feature service.
func New(store *jobs.Store, reg *registry.Registry, features featurev1.FeatureServiceClient, opts ...Option) *Server {
	s := &Server{jobs: store, registry: reg, features: features, logger: slog.Default(), scorers: map[string]artifact.Scorer{},
		maxImportBytes: modelimport.DefaultMaxBytes, codeVersion: trainer.CodeVersion()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// StartTraining implements TrainingService.
func (s *Server) StartTraining(ctx context.Context, req *trainingv1.StartTrainingRequest) (*trainingv1.StartTrainingResponse, error) {
	var v fault.Violations
	if v.CheckMessage("", req); len(v) > 0 {
		return nil, statuses.Status(ctx, s.logger, "StartTraining", v)
	}
	checkTimes(&v, "spec", req.GetSpec())
	if !spec.ValidRequestID(req.GetRequestId()) {
		v.Add("request_id", "required: 1 to 128 characters of [A-Za-z0-9._:-]")
	}
	v = append(v, spec.Validate(req.GetSpec(), "spec")...)
	if err := v.Err(); err != nil {
		return nil, statuses.Status(ctx, s.logger, "StartTraining", err)
	}
	// A model keeps one task: refuse at once a job that could not register.
	m, err := s.registry.Model(ctx, req.GetSpec().GetModelName())
	switch {
	case err == nil && m.GetTask() != req.GetSpec().GetTask():
		return nil, statuses.Status(ctx, s.logger, "StartTraining", &fault.Coded{Kind: fault.ErrFailedPrecondition, Reason: "TASK_MISMATCH",
			Message: fmt.Sprintf("model %q holds %v versions; a %v job must register under another name", m.GetName(), m.GetTask(), req.GetSpec().GetTask())})
	case err != nil && !errors.Is(err, registry.ErrNotFound):
		return nil, statuses.Status(ctx, s.logger, "StartTraining", err)
	}
	job, created, err := s.jobs.Create(ctx, req.GetRequestId(), req.GetSpec())
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "StartTraining", err)
	}
	return &trainingv1.StartTrainingResponse{Job: job, Created: created}, nil
}

// GetJob implements TrainingService.
func (s *Server) GetJob(ctx context.Context, req *trainingv1.GetJobRequest) (*trainingv1.GetJobResponse, error) {
	var v fault.Violations
	checkJobID(&v, "job_id", req.GetJobId())
	checkEnum(&v, "view", req.GetView())
	if err := v.Err(); err != nil {
		return nil, statuses.Status(ctx, s.logger, "GetJob", err)
	}
	job, _, err := s.jobs.Get(ctx, req.GetJobId())
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "GetJob", err)
	}
	return &trainingv1.GetJobResponse{Job: view(job, req.GetView(), trainingv1.JobView_JOB_VIEW_FULL)}, nil
}

// view returns a job as a view shows it.
func view(job *trainingv1.Job, v, def trainingv1.JobView) *trainingv1.Job {
	if v == trainingv1.JobView_JOB_VIEW_UNSPECIFIED {
		v = def
	}
	if v == trainingv1.JobView_JOB_VIEW_FULL {
		return job
	}
	out := proto.Clone(job).(*trainingv1.Job)
	out.Spec, out.Messages = nil, nil
	if out.Progress != nil {
		out.Progress.Leaderboard = nil
	}
	return out
}

// WatchJob implements TrainingService.
func (s *Server) WatchJob(req *trainingv1.WatchJobRequest, stream trainingv1.TrainingService_WatchJobServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var v fault.Violations
	if checkJobID(&v, "job_id", req.GetJobId()); len(v) > 0 {
		return statuses.Status(ctx, s.logger, "WatchJob", v)
	}
	w, err := s.jobs.Watch(ctx, req.GetJobId())
	if err != nil {
		return statuses.Status(ctx, s.logger, "WatchJob", err)
	}
	sent := 0
	for {
		select {
		case job, ok := <-w.C:
			if !ok {
				if err := w.Err(); err != nil {
					return statuses.Status(ctx, s.logger, "WatchJob", err)
				}
				return nil
			}
			p := proto.Clone(job.GetProgress()).(*trainingv1.JobProgress)
			if p == nil {
				p = &trainingv1.JobProgress{}
			}
			p.JobId, p.State = job.GetJobId(), job.GetState()
			if msgs := job.GetMessages(); len(msgs) > sent {
				p.Messages = msgs[sent:]
				sent = len(msgs)
			}
			if err := stream.Send(&trainingv1.WatchJobResponse{Progress: p}); err != nil {
				return err
			}
			if jobs.Terminal(job.GetState()) {
				return nil
			}
		case <-s.draining:
			return statuses.Status(ctx, s.logger, "WatchJob", fault.New(fault.ErrUnavailable, "DRAINING", "the training replica is shutting down: watch the job again"))
		case <-ctx.Done():
			return statuses.Status(ctx, s.logger, "WatchJob", ctx.Err())
		}
	}
}

// CancelJob implements TrainingService.
func (s *Server) CancelJob(ctx context.Context, req *trainingv1.CancelJobRequest) (*trainingv1.CancelJobResponse, error) {
	var v fault.Violations
	checkJobID(&v, "job_id", req.GetJobId())
	checkText(&v, "reason", req.GetReason(), maxReason)
	if err := v.Err(); err != nil {
		return nil, statuses.Status(ctx, s.logger, "CancelJob", err)
	}
	job, err := s.jobs.Cancel(ctx, req.GetJobId(), req.GetReason())
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "CancelJob", err)
	}
	return &trainingv1.CancelJobResponse{Job: job}, nil
}

// ListJobs implements TrainingService.
func (s *Server) ListJobs(ctx context.Context, req *trainingv1.ListJobsRequest) (*trainingv1.ListJobsResponse, error) {
	n, err := fault.PageSize(req.GetPageSize(), defaultPageSize, maxPageSize)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListJobs", err)
	}
	var v fault.Violations
	after := v.CheckPageToken(jobsToken, req.GetPageToken(), jobs.ValidID)
	if v.CheckLen("states", len(req.GetStates()), fault.MaxListLen) {
		for i, st := range req.GetStates() {
			checkEnum(&v, fmt.Sprintf("states[%d]", i), st)
		}
	}
	if m := req.GetModelName(); m != "" && !registry.ValidName(m) {
		v.Add("model_name", "%s", nameRule)
	}
	checkEnum(&v, "view", req.GetView())
	if err := v.Err(); err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListJobs", err)
	}
	list, next, err := s.jobs.List(ctx, jobs.ListOptions{PageSize: n, Token: after, States: req.GetStates(), Model: req.GetModelName()})
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListJobs", err)
	}
	out := &trainingv1.ListJobsResponse{NextPageToken: fault.PageToken(jobsToken, next)}
	for _, j := range list {
		out.Jobs = append(out.Jobs, view(j, req.GetView(), trainingv1.JobView_JOB_VIEW_BASIC))
	}
	return out, nil
}

// ListModels implements TrainingService.
func (s *Server) ListModels(ctx context.Context, req *trainingv1.ListModelsRequest) (*trainingv1.ListModelsResponse, error) {
	n, err := fault.PageSize(req.GetPageSize(), defaultPageSize, maxPageSize)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListModels", err)
	}
	var v fault.Violations
	after := v.CheckPageToken(modelsToken, req.GetPageToken(), registry.ValidName)
	if p := req.GetNamePrefix(); v.CheckString("name_prefix", p, maxNameLen, false) && strings.IndexFunc(p, notNameRune) >= 0 {
		v.Add("name_prefix", "holds a character no model name has: names are of [a-z0-9-]")
	}
	if err := v.Err(); err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListModels", err)
	}
	models, next, err := s.registry.Models(ctx, req.GetNamePrefix(), after, n)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListModels", err)
	}
	return &trainingv1.ListModelsResponse{Models: models, NextPageToken: fault.PageToken(modelsToken, next)}, nil
}

// GetModel implements TrainingService.
func (s *Server) GetModel(ctx context.Context, req *trainingv1.GetModelRequest) (*trainingv1.GetModelResponse, error) {
	var bad fault.Violations
	if checkRef(&bad, "model", req.GetModel()); len(bad) > 0 {
		return nil, statuses.Status(ctx, s.logger, "GetModel", bad)
	}
	v, m, err := s.registry.Resolve(ctx, req.GetModel())
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "GetModel", err)
	}
	return &trainingv1.GetModelResponse{ModelVersion: v, Model: m}, nil
}

// PromoteModel implements TrainingService.
func (s *Server) PromoteModel(ctx context.Context, req *trainingv1.PromoteModelRequest) (*trainingv1.PromoteModelResponse, error) {
	var v fault.Violations
	if v.CheckMessage("", req); len(v) == 0 {
		if !registry.ValidName(req.GetModelName()) {
			v.Add("model_name", "%s", nameRule)
		}
		checkAliases(&v, req.GetSetAliases(), req.GetRemoveAliases())
		checkText(&v, "reason", req.GetReason(), maxReason)
		checkText(&v, "gate_metric", req.GetGateMetric(), fault.MaxNameBytes)
	}
	if err := v.Err(); err != nil {
		return nil, statuses.Status(ctx, s.logger, "PromoteModel", err)
	}
	p, err := s.registry.Promote(ctx, registry.Promotion{
		ModelName:        req.GetModelName(),
		ExpectedRevision: req.GetExpectedRevision(),
		SetAliases:       req.GetSetAliases(),
		RemoveAliases:    req.GetRemoveAliases(),
		Live:             req.GetLive(),
		Shadow:           req.GetShadow(),
		Force:            req.GetForce(),
		GateMetric:       req.GetGateMetric(),
		Reason:           req.GetReason(),
		ValidateOnly:     req.GetValidateOnly(),
	})
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "PromoteModel", err)
	}
	s.logger.InfoContext(ctx, "model routing changed", "model", req.GetModelName(), "revision", p.Model.GetRevision(),
		"reason", req.GetReason(), "force", req.GetForce(), "validate_only", req.GetValidateOnly())
	return &trainingv1.PromoteModelResponse{Model: p.Model, Checks: p.Checks}, nil
}

// scorer returns the scorer of a version, loading its artifact once.
func (s *Server) scorer(ctx context.Context, v *modelv1.ModelVersion) (artifact.Scorer, error) {
	key := v.GetModelName() + "/" + strconv.FormatInt(v.GetVersion(), 10)
	s.mu.Lock()
	sc, ok := s.scorers[key]
	s.mu.Unlock()
	if ok {
		return sc, nil
	}
	a, err := s.registry.LoadArtifact(ctx, v)
	if err != nil {
		return nil, err
	}
	if sc, err = artifact.NewScorer(a); err != nil {
		return nil, fmt.Errorf("loading %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.scorers[key]; !ok {
		s.scorers[key] = sc
		s.order = append(s.order, key)
		if len(s.order) > scorerCacheSize {
			delete(s.scorers, s.order[0])
			s.order = s.order[1:]
		}
	}
	return sc, nil
}

// statuses maps the errors of the layers below, and the registry's, to the gRPC statuses
// callers see, once, at the handler: messages are fixed texts or texts written for callers;
// other error text is logged, never returned.
var statuses = fault.Mapper{
	Domain: errorDomain,
	Sentinels: []fault.Sentinel{
		{Err: registry.ErrRevisionMismatch, Kind: fault.ErrAborted, Reason: "REVISION_MISMATCH", Metadata: currentRevision},
		{Err: registry.ErrQualityGate, Kind: fault.ErrFailedPrecondition, Reason: "QUALITY_GATE"},
		{Err: registry.ErrConflict, Kind: fault.ErrFailedPrecondition, Reason: "TASK_MISMATCH", Message: "the version conflicts with the registered model"},
		{Err: registry.ErrCorrupt, Kind: fault.ErrDataLoss, Reason: "ARTIFACT_CORRUPT", Message: artifactCorrupt},
		{Err: artifact.ErrInvalid, Kind: fault.ErrDataLoss, Reason: "ARTIFACT_CORRUPT", Message: artifactCorrupt},
		{Err: artifact.ErrChecksum, Kind: fault.ErrDataLoss, Reason: "ARTIFACT_CORRUPT", Message: artifactCorrupt},
		{Err: artifact.ErrUnsupported, Kind: fault.ErrFailedPrecondition, Reason: "MODEL_UNSUPPORTED", Message: "this model cannot be scored by this training service"},
	},
}

// artifactCorrupt is what the caller reads of damaged registry data.
const artifactCorrupt = "the model's stored artifact or metadata is damaged"

// currentRevision is the ErrorInfo metadata of a promotion that lost a race: the model's
// revision now.
func currentRevision(err error) map[string]string {
	var rev *registry.RevisionError
	if !errors.As(err, &rev) {
		return nil
	}
	return map[string]string{"current_revision": strconv.FormatInt(rev.Current, 10)}
}
