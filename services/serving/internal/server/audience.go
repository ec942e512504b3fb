package server

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/serving/internal/audience"
)

// ScoreAudience implements PredictionService.ScoreAudience.
func (s *Server) ScoreAudience(req *servingv1.ScoreAudienceRequest, stream servingv1.PredictionService_ScoreAudienceServer) error {
	start := time.Now()
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.draining:
			cancel(errDraining)
		case <-stop:
		}
	}()
	label := ""
	err := s.scoreAudience(ctx, req, stream, &label)
	if cause := context.Cause(ctx); cause == errDraining && err != nil {
		err = errDraining
	}
	err = statuses.Status(stream.Context(), s.logger, "ScoreAudience", err)
	s.metrics.observe(label, "ScoreAudience", err, start)
	return err
}

func (s *Server) scoreAudience(ctx context.Context, req *servingv1.ScoreAudienceRequest, stream servingv1.PredictionService_ScoreAudienceServer, label *string) error {
	var c fault.Violations
	ref := modelOf(&c, req.GetModel(), req.GetModelName())
	size := int(req.GetBatchSize())
	if size == 0 {
		size = 1000
	}
	if size < 1 || size > MaxAudienceBatch {
		c.Add("batch_size", "must be 0 (1,000) to %d", MaxAudienceBatch)
	}
	if req.GetTopN() < 0 {
		c.Add("top_n", "must not be negative")
	}
	if req.MinScore != nil && (math.IsNaN(req.GetMinScore()) || math.IsInf(req.GetMinScore(), 0)) {
		c.Add("min_score", "must be a finite number")
	}
	if err := c.Err(); err != nil {
		return err
	}
	lease, err := s.store.Acquire(ref)
	if err != nil {
		return err
	}
	defer lease.Release()
	*label = ref.GetName()
	top := lease.Top()
	if top.Recommender() {
		return fault.Invalid("model", "model %q is a recommender; an audience is scored with a classifier or regression model", top.Name)
	}
	ar := audience.Request{TopN: req.GetTopN(), BatchSize: size}
	if req.MinScore != nil {
		v := req.GetMinScore()
		ar.MinScore = &v
	}
	if req.GetSegment() != nil {
		name, ver := top.FeatureSet()
		if name == "" {
			return audience.ErrNoFeatureSet
		}
		set, err := s.features.Resolve(ctx, name, ver)
		if err != nil {
			return err
		}
		f, bad := audience.Compile(req.GetSegment(), func(n string) (commonv1.ValueType, bool) { return set.Type(n) }, "segment")
		if len(bad) > 0 {
			return fault.Violations(bad)
		}
		ar.Filter = f
	}
	return s.audience.Run(ctx, lease, ar, stream.Send)
}

// ListModels implements PredictionService.ListModels.
func (s *Server) ListModels(ctx context.Context, req *servingv1.ListModelsRequest) (*servingv1.ListModelsResponse, error) {
	n, err := fault.PageSize(req.GetPageSize(), defaultPageSize, maxPageSize)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListModels", err)
	}
	var c fault.Violations
	after := c.CheckPageToken(modelsToken, req.GetPageToken(), registry.ValidName)
	if p := req.GetNamePrefix(); p != "" && !fault.ValidName(p) {
		c.CheckName("name_prefix", p)
	}
	if err := c.Err(); err != nil {
		return nil, statuses.Status(ctx, s.logger, "ListModels", err)
	}
	models := s.store.List(req.GetNamePrefix())
	start, _ := slices.BinarySearchFunc(models, after, func(m *servingv1.ServedModel, name string) int {
		if m.GetName() <= name {
			return -1
		}
		return 1
	})
	page := models[start:min(len(models), start+n)]
	out := &servingv1.ListModelsResponse{Models: page}
	if start+n < len(models) {
		out.NextPageToken = fault.PageToken(modelsToken, page[len(page)-1].GetName())
	}
	return out, nil
}

// GetModelStatus implements PredictionService.GetModelStatus.
func (s *Server) GetModelStatus(ctx context.Context, req *servingv1.GetModelStatusRequest) (*servingv1.GetModelStatusResponse, error) {
	var c fault.Violations
	checkRef(&c, req.GetModel(), "model")
	if err := c.Err(); err != nil {
		return nil, statuses.Status(ctx, s.logger, "GetModelStatus", err)
	}
	m, err := s.store.Status(req.GetModel())
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "GetModelStatus", err)
	}
	return &servingv1.GetModelStatusResponse{Model: m}, nil
}
