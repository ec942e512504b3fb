package server

import (
	"context"
	"strconv"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/recommend"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// Recommend implements PredictionService.Recommend.
func (s *Server) Recommend(ctx context.Context, req *servingv1.RecommendRequest) (*servingv1.RecommendResponse, error) {
	start := time.Now()
	label := ""
	resp, err := s.recommend(ctx, req, &label)
	err = statuses.Status(ctx, s.logger, "Recommend", err)
	s.metrics.observe(label, "Recommend", err, start)
	return resp, err
}

func (s *Server) recommend(ctx context.Context, req *servingv1.RecommendRequest, label *string) (*servingv1.RecommendResponse, error) {
	var c fault.Violations
	ref := modelOf(&c, req.GetModel(), req.GetModelName())
	users := req.GetUserIds()
	if n := len(users); n == 0 || n > MaxUsers {
		c.Add("user_ids", "needs 1 to %d user ids, got %d", MaxUsers, n)
	}
	k := int(req.GetK())
	if k == 0 {
		k = 10
	}
	if k < 1 || k > MaxK {
		c.Add("k", "must be 0 (10) to %d", MaxK)
	}
	if c.CheckLen("allowed_item_ids", len(req.GetAllowedItemIds()), MaxItemFilter) {
		checkIDs(&c, "allowed_item_ids", req.GetAllowedItemIds())
	}
	if c.CheckLen("excluded_item_ids", len(req.GetExcludedItemIds()), MaxItemFilter) {
		checkIDs(&c, "excluded_item_ids", req.GetExcludedItemIds())
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	lease, err := s.store.Acquire(ref)
	if err != nil {
		return nil, err
	}
	*label = ref.GetName()
	q := &recommend.Query{K: k, IncludeSeen: req.GetIncludeSeenItems(), Allowed: req.GetAllowedItemIds(), Excluded: req.GetExcludedItemIds()}
	n := len(users)
	out := make([]scoring.Outcome, n)
	by := make([]*scoring.Model, n)
	var f fanout
	for i, u := range users {
		m := lease.For(u)
		by[i] = m
		if !m.Recommender() {
			lease.Release()
			return nil, fault.Invalid("model", "model %q version %d is a %v model, not a recommender", m.Name, m.Version, m.Task)
		}
		if p := idProblem("user_id", u); p != nil {
			p.Field = "" // the row's own path, user_ids[i], names it
			out[i] = scoring.Outcome{Status: scoring.StatusInvalid, Problem: p}
			continue
		}
		f.add(m, i)
	}
	rowsOf := func(m *scoring.Model, idx []int) []scoring.Row {
		rows := make([]scoring.Row, len(idx))
		for j, i := range idx {
			rows[j].UserID = users[i]
		}
		return rows
	}
	fl, err := dispatch(ctx, lease, &f, out, rowsOf, func(t *scoring.Task) { t.Query = q })
	if err != nil {
		fl.abandon()
		return nil, err
	}
	if err := fl.wait(ctx); err != nil {
		return nil, err
	}
	s.countRows(by, out)
	resp := &servingv1.RecommendResponse{Recommendations: make([]*servingv1.UserRecommendations, n)}
	for i, o := range out {
		m := by[i]
		ur := &servingv1.UserRecommendations{
			UserId:             users[i],
			Status:             statusOf(o.Status),
			Problem:            rowProblem(o.Problem, "user_ids["+strconv.Itoa(i)+"]"),
			ModelName:          m.Name,
			PopularityFallback: o.Fallback,
		}
		if o.Status == scoring.StatusOK {
			ur.ModelVersion = m.Version
			ur.Items = make([]*servingv1.RecommendedItem, len(o.Items))
			for j, it := range o.Items {
				ur.Items[j] = &servingv1.RecommendedItem{ItemId: it.ID, Score: it.Score}
			}
		}
		resp.Recommendations[i] = ur
	}
	return resp, nil
}
