package recommend

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
)

// EvalOptions says what Evaluate measures.
type EvalOptions struct {
	// K lists the cut-offs of the ranking metrics; empty means {10}.
	K []int
	// Threshold makes a test pair relevant for the ranking metrics when its value is at
	// least Threshold; 0 means any positive value.
	Threshold float64
	// Ratings also measures RMSE and MAE of the predicted values of the test pairs
	// (explicit models).
	Ratings bool
}

// Evaluation is a model's quality on held-out interactions.
type Evaluation struct {
	// Rows counts the test pairs; Known those whose user and item both have factors. The
	// others are predicted from the known biases and the global mean.
	Rows  int `json:"rows"`
	Known int `json:"known"`
	// RMSE and MAE are over all test pairs (with EvalOptions.Ratings); NaN, and absent from
	// Metrics, for a model that predicts no ratings (Factors.PredictsRatings: popularity).
	RMSE float64 `json:"rmse"`
	MAE  float64 `json:"mae"`
	// Users counts the test users with a relevant pair, whom the ranking metrics average
	// over; Fallback counts those the model did not know, who got the popularity ranking.
	Users    int `json:"users"`
	Fallback int `json:"fallback"`
	// Ranking holds the ranking metrics at each cut-off of EvalOptions.K. Each user's list
	// excludes the items the user had in training.
	Ranking []metrics.TopKSummary `json:"ranking"`
	// Metrics holds every value above by its Metric name (bullseye.common.v1): "rmse",
	// "mae", and for each k "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
	// "mrr_at_k" and "catalogue_coverage_at_k".
	Metrics map[string]float64 `json:"metrics"`
}

// Evaluate scores the model behind s on test, whose id lists may differ from the model's:
// users and items are matched by id. Every test user with a relevant pair gets one list of
// max(K) items, from one batched Recommend.
func Evaluate(s *Scorer, test *Interactions, o EvalOptions) (*Evaluation, error) {
	if err := test.Validate(); err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	if test.Len() == 0 {
		return nil, errors.New("evaluate: no test interactions")
	}
	ks := o.K
	if len(ks) == 0 {
		ks = []int{10}
	}
	maxK := slices.Max(ks)
	if slices.Min(ks) < 1 {
		return nil, fmt.Errorf("evaluate: cut-offs %v, want each at least 1", ks)
	}
	userOf := make([]int32, len(test.UserIDs))
	for u, id := range test.UserIDs {
		userOf[u] = -1
		if m, ok := s.users[id]; ok {
			userOf[u] = m
		}
	}
	// Items the model cannot recommend get distinct negative indexes.
	itemOf := make([]int32, len(test.ItemIDs))
	for i, id := range test.ItemIDs {
		itemOf[i] = -1 - int32(i)
		if m, ok := s.items[id]; ok {
			itemOf[i] = m
		}
	}
	ev := &Evaluation{Rows: test.Len(), Metrics: map[string]float64{}, RMSE: math.NaN(), MAE: math.NaN()}
	ratings := o.Ratings && s.f.PredictsRatings()
	var se, ae float64
	relevant := make([][]int32, len(test.UserIDs))
	for r := range test.Users {
		u, i := userOf[test.Users[r]], itemOf[test.Items[r]]
		uok, iok := u >= 0, i >= 0 && int(i) < s.nf
		if uok && iok {
			ev.Known++
		}
		v := test.Values[r]
		if ratings {
			e := s.predict(int(u), int(i), uok, iok) - v
			se += e * e
			ae += math.Abs(e)
		}
		if (o.Threshold == 0 && v > 0) || (o.Threshold != 0 && v >= o.Threshold) {
			relevant[test.Users[r]] = append(relevant[test.Users[r]], i)
		}
	}
	if ratings {
		ev.RMSE = math.Sqrt(se / float64(ev.Rows))
		ev.MAE = ae / float64(ev.Rows)
		ev.Metrics["rmse"], ev.Metrics["mae"] = ev.RMSE, ev.MAE
	}
	var qs []iquery
	var rel [][]int32
	for tu, items := range relevant {
		if len(items) == 0 {
			continue
		}
		qs = append(qs, iquery{user: userOf[tu], k: maxK})
		rel = append(rel, items)
		if userOf[tu] < 0 {
			ev.Fallback++
		}
	}
	ev.Users = len(qs)
	if len(qs) == 0 {
		if !o.Ratings {
			return nil, errors.New("evaluate: no test pair is relevant")
		}
		return ev, nil
	}
	res := s.topK(qs)
	ranked := make([][]int32, len(res))
	for q := range res {
		ranked[q] = res[q].items
	}
	for _, k := range ks {
		sum, err := metrics.MeanTopK(ranked, rel, k, len(s.catalogue))
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		ev.Ranking = append(ev.Ranking, sum)
		at := "_at_" + strconv.Itoa(k)
		ev.Metrics["precision"+at] = sum.Precision
		ev.Metrics["recall"+at] = sum.Recall
		ev.Metrics["ndcg"+at] = sum.NDCG
		ev.Metrics["map"+at] = sum.MAP
		ev.Metrics["mrr"+at] = sum.MRR
		ev.Metrics["catalogue_coverage"+at] = sum.Coverage
	}
	return ev, nil
}

// metricSpec is a parsed metric name.
type metricSpec struct {
	name   string
	k      int // the cut-off of a ranking metric; 0 for rmse and mae
	higher bool
}

var rankingMetrics = []string{"precision", "recall", "ndcg", "map", "mrr", "catalogue_coverage"}

// parseMetric accepts "rmse", "mae" and the ranking metrics "<name>_at_<k>".
func parseMetric(name string) (metricSpec, error) {
	switch name {
	case "rmse", "mae":
		return metricSpec{name: name}, nil
	}
	if base, ks, ok := strings.Cut(name, "_at_"); ok && slices.Contains(rankingMetrics, base) {
		if k, err := strconv.Atoi(ks); err == nil && k >= 1 {
			return metricSpec{name: name, k: k, higher: true}, nil
		}
	}
	return metricSpec{}, fmt.Errorf("unknown recommender metric %q (want rmse, mae or <%s>_at_<k>)", name, strings.Join(rankingMetrics, "|"))
}
