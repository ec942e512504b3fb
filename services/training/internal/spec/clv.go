package spec

import (
	"time"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
)

// CLVMetrics are the metrics a customer lifetime value model is evaluated by on the holdout:
// per customer, the mean absolute and root mean squared error of the expected against the
// actual holdout purchases; over all customers, the actual and the expected holdout
// purchases; and the fit's BG/NBD and Gamma-Gamma log-likelihoods.
var CLVMetrics = []string{"mae", "rmse", "holdout_purchases_actual", "holdout_purchases_predicted",
	"bg_nbd_log_likelihood", "gamma_gamma_log_likelihood"}

// CLV is a BG_NBD_GAMMA_GAMMA candidate's hyperparameters, resolved.
type CLV struct {
	// Inputs are the BTYD columns the model reads.
	Inputs artifact.CLVInputs
	// UnitDays is the model's time unit in days (7 for weeks).
	UnitDays float64
	// Horizon is the horizon of expected purchases and CLV.
	Horizon clv.Horizon
	// GammaGamma says whether to fit the Gamma-Gamma model of spend.
	GammaGamma bool
}

// CLVCandidate resolves a BG_NBD_GAMMA_GAMMA candidate's hyperparameters.
func CLVCandidate(c Candidate) CLV {
	p := values(c.Params)
	out := CLV{
		Inputs:     artifact.BTYDInputs(p.str("rfm_prefix")),
		UnitDays:   7,
		GammaGamma: p.boolean("gamma_gamma"),
		Horizon: clv.Horizon{Months: int(p.num("horizon_months")), MonthlyDiscount: p.num("monthly_discount"),
			UnitsPerMonth: clv.WeeksPerMonth},
	}
	if p.str("time_unit") == "days" {
		out.UnitDays, out.Horizon.UnitsPerMonth = 1, clv.DaysPerMonth
	}
	return out
}

// HoldoutDays returns the length in days of a CLV spec's holdout period: its outcome label's
// horizon.
func HoldoutDays(s *trainingv1.TrainingSpec) float64 {
	return s.GetData().GetTrainingSet().GetLabel().GetOutcome().GetHorizon().AsDuration().Hours() / 24
}

// validateCLV checks what a customer lifetime value spec adds: a training set whose label
// counts the holdout purchases, one candidate, and no cross-validation, feature selection or
// preprocessing (the model reads its four BTYD columns as they are).
func validateCLV(v *fault.Violations, s *trainingv1.TrainingSpec, field func(string) string) {
	d := s.GetData()
	if d.GetInteractions() != nil {
		v.Add(field("data.interactions"), "a CLV model trains on a training set with an RFM_STYLE_BTYD group")
	}
	if d.GetImportSplit() != nil {
		v.Add(field("data.import_split"), "a CLV model is evaluated on the holdout period after the cutoff, not on imports")
	}
	if ts := d.GetTrainingSet(); ts != nil {
		switch src := ts.GetLabel().GetSource().(type) {
		case *featurev1.LabelSpec_Outcome:
			switch src.Outcome.GetAggregation() {
			case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_COUNT, featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_DISTINCT_DAYS:
			default:
				v.Add(field("data.training_set.label.outcome.aggregation"),
					"a CLV model is evaluated on the purchases in the holdout period: use OUTCOME_AGGREGATION_DISTINCT_DAYS (purchase days, as the model counts them) or COUNT")
			}
			if h := src.Outcome.GetHorizon(); h != nil && h.CheckValid() == nil && h.AsDuration() < time.Hour {
				v.Add(field("data.training_set.label.outcome.horizon"), "the holdout period must be at least an hour")
			}
		case *featurev1.LabelSpec_Trait:
			v.Add(field("data.training_set.label"), "a CLV model's label is an outcome: the purchases in the holdout period after the cutoff")
		}
	}
	if len(s.GetCandidates()) > 1 {
		v.Add(field("candidates"), "a CLV model has one candidate (BG_NBD_GAMMA_GAMMA); %d given", len(s.GetCandidates()))
	}
	if s.GetCrossValidation() != nil {
		v.Add(field("cross_validation"), "a CLV model is fitted once by maximum likelihood and evaluated on the holdout: leave cross_validation unset")
	}
	if s.GetFeatureSelection().GetEnabled() {
		v.Add(field("feature_selection"), "a CLV model reads its four BTYD columns: leave feature_selection unset")
	}
	if s.GetPreprocessing() != nil {
		v.Add(field("preprocessing"), "a CLV model reads its four BTYD columns as they are: leave preprocessing unset")
	}
}
