package uplift_test

import (
	"context"
	"fmt"

	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/uplift"
)

// A two-model uplift model on a generated campaign: fitted on the first 14,000 customers,
// it scores the other 6,000 (both arms' response probabilities and the uplift), and its
// ranking is scored on their observed outcomes.
func Example() {
	c, err := uplift.GenerateCampaign(uplift.CampaignConfig{Customers: 20000, Seed: 1, Strength: 2})
	if err != nil {
		panic(err)
	}
	train, test := c.Rows(0, 14000), c.Rows(14000, 20000)
	m, err := uplift.TwoModels{Base: logistic.Regression{}}.Fit(context.Background(), train.OneHot(), train.Treatment, train.Y)
	if err != nil {
		panic(err)
	}
	s := m.Scores(test.OneHot())
	fmt.Printf("first customer: treated %.3f, control %.3f, uplift %.3f (true %.3f)\n",
		s.Treated[0], s.Control[0], s.Uplift[0], test.Oracle[0])
	top, _ := metrics.UpliftAtK(test.Y, s.Uplift, test.Treatment, 0.3, metrics.UpliftOverall)
	q, _ := metrics.QiniAUC(test.Y, s.Uplift, test.Treatment, true)
	fmt.Printf("uplift at 30%% %.3f, Qini coefficient %.3f\n", top, q)
	// Output:
	// first customer: treated 0.152, control 0.099, uplift 0.053 (true 0.000)
	// uplift at 30% 0.321, Qini coefficient 0.210
}
