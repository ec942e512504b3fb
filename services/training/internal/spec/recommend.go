package spec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
)

// IsRecommendation reports whether a task is a recommendation task.
func IsRecommendation(t modelv1.TaskKind) bool {
	return t == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT || t == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT
}

// rankingMetrics are the ranking metrics of recommenders, each named "<name>_at_<k>".
var rankingMetrics = []string{"precision", "recall", "ndcg", "map", "mrr", "catalogue_coverage"}

// recMetric parses a recommender metric name: "rmse", "mae" or "<ranking>_at_<k>". It returns
// whether larger is better and the ranking cut-off (0 for rmse and mae).
func recMetric(name string) (higher bool, k int) {
	switch name {
	case "rmse", "mae":
		return false, 0
	}
	base, ks, ok := strings.Cut(name, "_at_")
	if !ok || !slices.Contains(rankingMetrics, base) {
		return false, -1
	}
	k, err := strconv.Atoi(ks)
	if err != nil || k < 1 {
		return false, -1
	}
	return true, k
}

// RankingK returns the cut-offs of ranking metrics: the evaluation options' (default 10)
// and the selection metric's.
func RankingK(s *trainingv1.TrainingSpec) []int {
	var ks []int
	for _, k := range s.GetEvaluation().GetRankingK() {
		ks = append(ks, int(k))
	}
	if len(ks) == 0 {
		ks = []int{10}
	}
	if name, _ := Metric(s); IsRecommendation(s.GetTask()) {
		if _, k := recMetric(name); k > 0 && !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

// RecMetrics returns the metrics a recommender is reported by, in order, for the cut-offs
// ks: rmse and mae for explicit feedback, then the ranking metrics at each cut-off.
func RecMetrics(task modelv1.TaskKind, ks []int) []string {
	var out []string
	if task == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT {
		out = append(out, "rmse", "mae")
	}
	for _, k := range ks {
		for _, m := range rankingMetrics {
			out = append(out, m+"_at_"+strconv.Itoa(k))
		}
	}
	return out
}

func validateRecSelection(v *fault.Violations, s *trainingv1.TrainingSpec, field string) {
	name, _ := Metric(s)
	higher, k := recMetric(name)
	switch {
	case k < 0:
		v.Add(field+".metric", "%s does not rank recommenders; use rmse, mae (explicit feedback) or <%s>_at_<k>", fault.Quote(name), strings.Join(rankingMetrics, "|"))
		return
	case k == 0 && s.GetTask() == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT:
		v.Add(field+".metric", "%s measures ratings; implicit feedback is ranked by a ranking metric such as ndcg_at_10", name)
		return
	case k == 0 && len(s.GetCandidates()) > 0 && !slices.ContainsFunc(s.GetCandidates(), func(c *trainingv1.CandidateSpec) bool {
		return c.GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_POPULARITY
	}):
		v.Add(field+".metric", "%s measures ratings, which popularity does not predict; rank popularity by a ranking metric such as ndcg_at_10", name)
		return
	}
	switch d := s.GetSelection().GetDirection(); {
	case d == modelv1.MetricDirection_METRIC_DIRECTION_UNSPECIFIED:
	case d == modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE && !higher,
		d == modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE && higher:
		v.Add(field+".direction", "%s is better %s; the opposite direction is not supported", name, directionWord(higher))
	case d != modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE && d != modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE:
		v.Add(field+".direction", "unknown direction %v", d)
	}
}

// validateInteractionsTask checks that the export's mode suits the task.
func validateInteractionsTask(v *fault.Violations, s *trainingv1.TrainingSpec, field string) {
	ex := s.GetData().GetInteractions().GetExport()
	if s.GetTask() == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT && ex.GetImplicit() != nil {
		v.Add(field+".implicit", "explicit recommendation trains on ratings: set explicit")
	}
}

func validateInteractions(v *fault.Violations, is *trainingv1.InteractionsSpec, field string) {
	ex := is.GetExport()
	switch {
	case ex == nil:
		v.Add(field+".export", "required")
	case ex.GetExplicit() != nil:
		if len(ex.GetExplicit().GetEventNames()) == 0 {
			v.Add(field+".export.explicit.event_names", "at least one event name is required")
		}
		if ex.GetExplicit().GetRatingProperty() == "" {
			v.Add(field+".export.explicit.rating_property", "required")
		}
	case ex.GetImplicit() != nil:
		if len(ex.GetImplicit().GetEventWeights()) == 0 {
			v.Add(field+".export.implicit.event_weights", "at least one event weight is required")
		}
	default:
		v.Add(field+".export", "set explicit or implicit")
	}
	if is.GetMinUserInteractions() < 0 {
		v.Add(field+".min_user_interactions", "must not be negative")
	}
	if is.GetMinItemInteractions() < 0 {
		v.Add(field+".min_item_interactions", "must not be negative")
	}
	if sp := is.GetSplit(); sp != nil {
		switch m := sp.GetMethod().(type) {
		case *trainingv1.InteractionSplit_Random:
			if f := m.Random.GetTestFraction(); !(f > 0 && f < 1) {
				v.Add(field+".split.random.test_fraction", "must be above 0 and below 1")
			}
		case *trainingv1.InteractionSplit_TestStartTime:
			if m.TestStartTime.CheckValid() != nil {
				v.Add(field+".split.test_start_time", "must be a valid time")
			}
		case *trainingv1.InteractionSplit_LastPerUser:
			if m.LastPerUser.GetN() < 1 {
				v.Add(field+".split.last_per_user.n", "must be at least 1")
			}
		case *trainingv1.InteractionSplit_EventNames:
			validateEventNameSplit(v, ex, m.EventNames.GetTestEventNames(), field+".split.event_names.test_event_names")
		default:
			v.Add(field+".split", "set random, test_start_time, last_per_user or event_names")
		}
	}
}

// validateEventNameSplit checks the test event names of a split by event name: given, valid,
// and none of the export's own (training) event names.
func validateEventNameSplit(v *fault.Violations, ex *featurev1.ExportInteractionsRequest, names []string, field string) {
	if len(names) == 0 {
		v.Add(field, "at least one event name is required")
	}
	if !v.CheckLen(field, len(names), maxSplitNames) {
		return
	}
	own := ex.GetExplicit().GetEventNames()
	for name := range ex.GetImplicit().GetEventWeights() {
		own = append(own, name)
	}
	for i, name := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		if v.CheckName(f, name) && slices.Contains(own, name) {
			v.Add(f, "%s is one of the export's own (training) event names; an event cannot both train and test", fault.Quote(name))
		}
	}
}

// TestExport returns the export of the test interactions of a split by event name: the
// export with the test event names in place of its own (each weighing 1 with implicit
// feedback); nil for other splits.
func TestExport(is *trainingv1.InteractionsSpec) *featurev1.ExportInteractionsRequest {
	m, ok := is.GetSplit().GetMethod().(*trainingv1.InteractionSplit_EventNames)
	if !ok {
		return nil
	}
	names := m.EventNames.GetTestEventNames()
	out := proto.Clone(is.GetExport()).(*featurev1.ExportInteractionsRequest)
	switch m := out.GetMode().(type) {
	case *featurev1.ExportInteractionsRequest_Explicit:
		m.Explicit.EventNames = slices.Clone(names)
	case *featurev1.ExportInteractionsRequest_Implicit:
		m.Implicit.EventWeights = map[string]float64{}
		for _, name := range names {
			m.Implicit.EventWeights[name] = 1
		}
	}
	return out
}

// RecCandidate returns the pkg/ml/recommend candidate of c: its family's estimator with c's
// hyperparameters, the solver's tolerance and the spec's seed. The solver's iteration cap,
// when set, caps "iterations" and "epochs".
func RecCandidate(c Candidate, s *trainingv1.TrainingSpec) (recommend.Candidate, error) {
	fams := recommend.Families(Seed(s))
	fam, ok := fams[strings.ToLower(strings.TrimPrefix(c.Family.String(), "MODEL_FAMILY_"))]
	if !ok {
		return recommend.Candidate{}, fmt.Errorf("%v is not a recommender family", c.Family)
	}
	p := values(c.Params)
	out := selection.Params{}
	for name := range c.Params {
		switch name {
		case "biased":
			out[name] = 0
			if p.boolean(name) {
				out[name] = 1
			}
		case "weighting":
			out[name] = float64(recommend.ByUsers)
			if p.str(name) == "value" {
				out[name] = float64(recommend.ByValue)
			}
		default:
			out[name] = p.num(name)
		}
	}
	if cap := float64(c.Solver.GetMaxIterations()); cap > 0 {
		for _, name := range []string{"iterations", "epochs"} {
			if v, ok := out[name]; ok {
				out[name] = min(v, cap)
			}
		}
	}
	if tol := c.Solver.GetTolerance(); tol > 0 && c.Family != modelv1.ModelFamily_MODEL_FAMILY_POPULARITY {
		out["tol"] = tol
	}
	return recommend.Candidate{Family: fam, Params: out}, nil
}
