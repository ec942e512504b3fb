package selection_test

import (
	"context"
	"fmt"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
)

// A search over two families and a grid of C, ranked by ROC-AUC over stratified folds;
// preprocessing (median imputation, standardisation, one-hot) is fitted on each training fold.
func ExampleSearch() {
	spend := []float64{10, 250, 40, 300, 5, 120, 400, 35, 220, 15, 500, 60}
	channel := []string{"web", "app", "web", "app", "mail", "app", "app", "web", "", "mail", "app", "web"}
	bought := []float64{0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0}
	t := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("spend", spend),
		ml.CategoricalColumn("channel", channel),
	}}
	fams := selection.Families(selection.FamilyOptions{Seed: 1})
	var cs []selection.Candidate
	cs = append(cs, selection.Grid(fams["logistic_l2"], map[string][]float64{"C": {0.1, 1}})...)
	cs = append(cs, selection.Grid(fams["linear_svm"], map[string][]float64{"C": {1}})...)
	s := &selection.Search{
		Candidates: cs,
		Preprocess: preprocess.Spec{},
		Splitter:   selection.StratifiedKFold{K: 3, Labels: bought, Seed: 1},
		Metric:     "roc_auc",
	}
	res, err := s.Run(context.Background(), t, bought)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(res.Leaderboard), "candidates; best mean ROC-AUC", res.Best.Mean)
	fmt.Println("refitted on", res.Model.Preprocess.Features)
	// Output:
	// 3 candidates; best mean ROC-AUC 1
	// refitted on [spend channel=app channel=mail channel=web channel=<other> channel_missing]
}
