package cli

import (
	"strings"
	"testing"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// TestLeaderboardNamesDiffer renders a text leaderboard whose candidates differ only in a
// hyperparameter that sorts last, as an L1 and an L2 logistic regression with every default
// filled in: their rows must not look alike.
func TestLeaderboardNamesDiffer(t *testing.T) {
	str := func(v string) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: v}}
	}
	num := func(v float64) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: v}}
	}
	hp := func(penalty string) map[string]*commonv1.Value {
		return map[string]*commonv1.Value{"c": num(1), "class_weight": str("balanced"), "fit_intercept": str("true"),
			"l1_ratio_unused": num(0.5), "penalty": str(penalty)}
	}
	board := leaderboard([]*modelv1.LeaderboardEntry{
		{Rank: 1, CandidateIndex: 1, Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, Hyperparameters: hp("l1"), Score: 0.93, Converged: true},
		{Rank: 2, CandidateIndex: 2, Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, Hyperparameters: hp("l2"), Score: 0.92, Converged: true},
	})
	lines := strings.Split(strings.TrimSpace(board), "\n")
	if len(lines) != 3 {
		t.Fatalf("leaderboard:\n%s", board)
	}
	name := func(line string) string { return strings.TrimSpace(line[5:strings.Index(line, "0.9")]) }
	if a, b := name(lines[1]), name(lines[2]); a == b || !strings.Contains(a, "penalty=l1") || !strings.Contains(b, "penalty=l2") {
		t.Errorf("the rows name their candidates %q and %q, want names that show the penalty:\n%s", a, b, board)
	}
}
