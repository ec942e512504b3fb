package artifact

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
)

// The named outputs of a customer lifetime value model (BG_NBD_GAMMA_GAMMA).
const (
	// OutputExpectedPurchases is the expected number of purchases over the model's horizon.
	OutputExpectedPurchases = "expected_purchases"
	// OutputPAlive is the probability that the customer is still active.
	OutputPAlive = "p_alive"
	// OutputExpectedOrderValue is the customer's expected value per purchase (Gamma-Gamma).
	OutputExpectedOrderValue = "expected_order_value"
	// OutputCLV is the discounted value of the customer's purchases over the horizon.
	OutputCLV = "clv"
)

// CLVInputs names the four raw inputs of a CLV model: columns of a feature set's
// RFM_STYLE_BTYD group.
type CLVInputs struct {
	// Frequency is the number of repeat purchases (an INT input).
	Frequency string
	// RecencyDays is the days from the first purchase day to the last.
	RecencyDays string
	// AgeDays is the days from the first purchase day to the scoring time.
	AgeDays string
	// Monetary is the mean value of the repeat purchase days, 0 without any.
	Monetary string
}

// BTYDInputs returns the inputs of a CLV model on the BTYD group with the given prefix, as
// the feature service names its columns.
func BTYDInputs(prefix string) CLVInputs {
	return CLVInputs{
		Frequency:   prefix + "frequency",
		RecencyDays: prefix + "recency_days",
		AgeDays:     prefix + "age_days",
		Monetary:    prefix + "monetary_mean_repeat",
	}
}

func (in CLVInputs) names() [4]string {
	return [4]string{in.Frequency, in.RecencyDays, in.AgeDays, in.Monetary}
}

// CLVModel is a fitted customer lifetime value model: the pkg/ml/clv side of a
// BG_NBD_GAMMA_GAMMA artifact. EncodeCLV turns it into an artifact and DecodeCLV back.
type CLVModel struct {
	// BGNBD is the fitted model of repeat purchases, in the time unit TimeUnitDays.
	BGNBD *clv.BGNBD
	// GammaGamma is the fitted model of spend; nil when it was not fitted.
	GammaGamma *clv.GammaGamma
	// Inputs names the raw inputs.
	Inputs CLVInputs
	// TimeUnitDays is the model's time unit in days (7 for weeks): raw recency and age in
	// days are divided by it.
	TimeUnitDays float64
	// Horizon is the horizon of expected purchases and CLV; its UnitsPerMonth is in the
	// model's time unit.
	Horizon clv.Horizon
}

// Customer converts one customer's raw BTYD values (times in days) to the model's time unit.
func (m *CLVModel) Customer(id string, frequency, recencyDays, ageDays, monetary float64) clv.Customer {
	return clv.Customer{ID: id, Frequency: frequency, Recency: recencyDays / m.TimeUnitDays, T: ageDays / m.TimeUnitDays, Monetary: monetary}
}

// Predict returns customer c's outputs: expected purchases over the horizon, the probability
// of being active and, with a Gamma-Gamma model, the expected order value and the CLV (NaN
// without). c must pass clv.CheckCustomers.
func (m *CLVModel) Predict(c clv.Customer) (purchases, alive, orderValue, value float64, err error) {
	purchases = m.BGNBD.ExpectedPurchases(c, float64(m.Horizon.Months)*m.Horizon.UnitsPerMonth)
	alive = m.BGNBD.ProbAlive(c)
	orderValue, value = math.NaN(), math.NaN()
	if m.GammaGamma != nil {
		orderValue = m.GammaGamma.ExpectedAverageValue(c)
		if value, err = clv.CLV(m.BGNBD.BGNBDParams, m.GammaGamma.GammaGammaParams, c, m.Horizon); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	return purchases, alive, orderValue, value, nil
}

func (m *CLVModel) check() error {
	switch {
	case m.BGNBD == nil:
		return errors.New("no BG/NBD model")
	case !(m.TimeUnitDays > 0) || math.IsInf(m.TimeUnitDays, 0):
		return fmt.Errorf("time unit of %v days, want > 0", m.TimeUnitDays)
	case m.Horizon.Months < 1:
		return fmt.Errorf("horizon of %d months, want ≥ 1", m.Horizon.Months)
	case !(m.Horizon.MonthlyDiscount >= 0) || math.IsInf(m.Horizon.MonthlyDiscount, 0):
		return fmt.Errorf("monthly discount %v, want ≥ 0", m.Horizon.MonthlyDiscount)
	case !(m.Horizon.UnitsPerMonth > 0) || math.IsInf(m.Horizon.UnitsPerMonth, 0):
		return fmt.Errorf("%v time units a month, want > 0", m.Horizon.UnitsPerMonth)
	}
	p := m.BGNBD.BGNBDParams
	for _, v := range [...]struct {
		name string
		x    float64
	}{{"r", p.R}, {"alpha", p.Alpha}, {"a", p.A}, {"b", p.B}} {
		if !(v.x > 0) || math.IsInf(v.x, 0) {
			return fmt.Errorf("BG/NBD %s is %v, want > 0", v.name, v.x)
		}
	}
	if g := m.GammaGamma; g != nil {
		for _, v := range [...]struct {
			name string
			x    float64
		}{{"p", g.P}, {"q", g.Q}, {"gamma", g.Gamma}} {
			if !(v.x > 0) || math.IsInf(v.x, 0) {
				return fmt.Errorf("Gamma-Gamma %s is %v, want > 0", v.name, v.x)
			}
		}
	}
	seen := map[string]bool{}
	for _, n := range m.Inputs.names() {
		if n == "" {
			return errors.New("an input has no name")
		}
		if seen[n] {
			return fmt.Errorf("input %q named twice", n)
		}
		seen[n] = true
	}
	return nil
}

// CLVSignature returns the output signature of a CLV model, with the Gamma-Gamma outputs
// when gammaGamma.
func CLVSignature(gammaGamma bool) *modelv1.OutputSignature {
	number := func(name, description string) *modelv1.OutputSpec {
		return &modelv1.OutputSpec{Name: name, Kind: modelv1.OutputKind_OUTPUT_KIND_NUMBER, Description: description}
	}
	sig := &modelv1.OutputSignature{}
	if gammaGamma {
		sig.Outputs = append(sig.Outputs, number(OutputScore, "the customer lifetime value over the horizon"))
	} else {
		sig.Outputs = append(sig.Outputs, number(OutputScore, "the expected number of purchases over the horizon"))
	}
	sig.Outputs = append(sig.Outputs,
		number(OutputExpectedPurchases, "the expected number of purchases over the horizon"),
		number(OutputPAlive, "the probability that the customer is still active"))
	if gammaGamma {
		sig.Outputs = append(sig.Outputs,
			number(OutputExpectedOrderValue, "the expected value of a purchase"),
			number(OutputCLV, "the discounted value of the purchases over the horizon"))
	}
	return sig
}

// EncodeCLV converts a fitted CLV model into a BG_NBD_GAMMA_GAMMA artifact of task
// CUSTOMER_LIFETIME_VALUE: its inputs (frequency INT, the others NUMBER, all required), its
// parameters and output signature. The caller sets the rest, as for Encode.
func EncodeCLV(m *CLVModel) (*modelv1.ModelArtifact, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("encode CLV artifact: %w: %w", ErrInvalid, err)
	}
	bg := m.BGNBD
	p := &modelv1.ClvParameters{
		TimeUnitDays: m.TimeUnitDays,
		BgNbd: &modelv1.BgNbdParameters{
			R: bg.R, Alpha: bg.Alpha, A: bg.A, B: bg.B,
			RStdErr: bg.StdErr.R, AlphaStdErr: bg.StdErr.Alpha, AStdErr: bg.StdErr.A, BStdErr: bg.StdErr.B,
			LogLikelihood: bg.LogLik, Customers: int64(bg.Customers),
		},
		Inputs: &modelv1.ClvInputs{
			Frequency: m.Inputs.Frequency, RecencyDays: m.Inputs.RecencyDays,
			AgeDays: m.Inputs.AgeDays, Monetary: m.Inputs.Monetary,
		},
		HorizonMonths:   int32(m.Horizon.Months),
		MonthlyDiscount: m.Horizon.MonthlyDiscount,
		UnitsPerMonth:   m.Horizon.UnitsPerMonth,
	}
	if g := m.GammaGamma; g != nil {
		p.GammaGamma = &modelv1.GammaGammaParameters{
			P: g.P, Q: g.Q, Gamma: g.Gamma,
			PStdErr: g.StdErr.P, QStdErr: g.StdErr.Q, GammaStdErr: g.StdErr.Gamma,
			LogLikelihood: g.LogLik, Customers: int64(g.Customers),
		}
	}
	a := &modelv1.ModelArtifact{
		FormatVersion: FormatVersion,
		Family:        modelv1.ModelFamily_MODEL_FAMILY_BG_NBD_GAMMA_GAMMA,
		Task:          modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE,
		Parameters:    &modelv1.ModelArtifact_Clv{Clv: p},
		Outputs:       CLVSignature(m.GammaGamma != nil),
		Solver:        &modelv1.SolverReport{Converged: true, Iterations: int32(bg.Iterations)},
	}
	for k, n := range m.Inputs.names() {
		typ := commonv1.ValueType_VALUE_TYPE_NUMBER
		if k == 0 {
			typ = commonv1.ValueType_VALUE_TYPE_INT
		}
		a.Inputs = append(a.Inputs, &modelv1.InputColumn{Name: n, Type: typ, Missing: modelv1.MissingPolicy_MISSING_POLICY_REQUIRED})
	}
	return a, nil
}

// DecodeCLV converts a BG_NBD_GAMMA_GAMMA artifact back into the model it was encoded from.
// It refuses an artifact of another family, or whose parameters or inputs do not fit
// together, with ErrInvalid.
func DecodeCLV(a *modelv1.ModelArtifact) (*CLVModel, error) {
	if a.GetFormatVersion() != FormatVersion {
		return nil, fmt.Errorf("decode CLV artifact: %w: layout version %d, this reader knows %d", ErrInvalid, a.GetFormatVersion(), FormatVersion)
	}
	if a.GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_BG_NBD_GAMMA_GAMMA {
		return nil, fmt.Errorf("decode CLV artifact: %w: family %v", ErrInvalid, a.GetFamily())
	}
	p := a.GetClv()
	if p == nil || p.GetBgNbd() == nil {
		return nil, fmt.Errorf("decode CLV artifact: %w: no CLV parameters", ErrInvalid)
	}
	bg := p.GetBgNbd()
	m := &CLVModel{
		BGNBD: &clv.BGNBD{
			BGNBDParams: clv.BGNBDParams{R: bg.GetR(), Alpha: bg.GetAlpha(), A: bg.GetA(), B: bg.GetB()},
			StdErr:      clv.BGNBDParams{R: bg.GetRStdErr(), Alpha: bg.GetAlphaStdErr(), A: bg.GetAStdErr(), B: bg.GetBStdErr()},
			LogLik:      bg.GetLogLikelihood(),
			Customers:   int(bg.GetCustomers()),
			Iterations:  int(a.GetSolver().GetIterations()),
		},
		Inputs: CLVInputs{
			Frequency: p.GetInputs().GetFrequency(), RecencyDays: p.GetInputs().GetRecencyDays(),
			AgeDays: p.GetInputs().GetAgeDays(), Monetary: p.GetInputs().GetMonetary(),
		},
		TimeUnitDays: p.GetTimeUnitDays(),
		Horizon: clv.Horizon{Months: int(p.GetHorizonMonths()), MonthlyDiscount: p.GetMonthlyDiscount(),
			UnitsPerMonth: p.GetUnitsPerMonth()},
	}
	if g := p.GetGammaGamma(); g != nil {
		m.GammaGamma = &clv.GammaGamma{
			GammaGammaParams: clv.GammaGammaParams{P: g.GetP(), Q: g.GetQ(), Gamma: g.GetGamma()},
			StdErr:           clv.GammaGammaParams{P: g.GetPStdErr(), Q: g.GetQStdErr(), Gamma: g.GetGammaStdErr()},
			LogLik:           g.GetLogLikelihood(),
			Customers:        int(g.GetCustomers()),
		}
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("decode CLV artifact: %w: %w", ErrInvalid, err)
	}
	names := m.Inputs.names()
	if len(a.GetInputs()) != len(names) {
		return nil, fmt.Errorf("decode CLV artifact: %w: %d inputs, a CLV model takes 4", ErrInvalid, len(a.GetInputs()))
	}
	for k, in := range a.GetInputs() {
		if in.GetName() != names[k] {
			return nil, fmt.Errorf("decode CLV artifact: %w: input %d is %q, the parameters name %q", ErrInvalid, k, in.GetName(), names[k])
		}
		if KindOf(in.GetType()) != KindOf(commonv1.ValueType_VALUE_TYPE_NUMBER) || in.GetType() == commonv1.ValueType_VALUE_TYPE_TIME ||
			in.GetType() == commonv1.ValueType_VALUE_TYPE_BOOL {
			return nil, fmt.Errorf("decode CLV artifact: %w: input %q is %v, want a number", ErrInvalid, in.GetName(), in.GetType())
		}
	}
	return m, nil
}

// CLVScorer is the Scorer of a CLV model, which NewScorer returns for a BG_NBD_GAMMA_GAMMA
// artifact. Besides scoring it gives the model, e.g. to evaluate its expected purchases over
// another period than its horizon.
type CLVScorer interface {
	Scorer
	// Model returns the decoded model; the caller must not change it.
	Model() *CLVModel
}

// clvScorer scores customers' BTYD summaries with a CLV model.
type clvScorer struct {
	info  Info
	model *CLVModel
}

func newCLVScorer(a *modelv1.ModelArtifact) (*clvScorer, error) {
	m, err := DecodeCLV(a)
	if err != nil {
		return nil, err
	}
	return NewCLVScorer(m, a.GetModelName(), a.GetModelVersion(), a.GetInputs()).(*clvScorer), nil
}

// NewCLVScorer returns a scorer of a CLV model that was not encoded, e.g. to evaluate it
// right after fitting; it scores exactly as NewScorer on EncodeCLV(m) would. inputs are the
// artifact's inputs; nil means those EncodeCLV writes.
func NewCLVScorer(m *CLVModel, name string, version int64, inputs []*modelv1.InputColumn) CLVScorer {
	if inputs == nil {
		a, err := EncodeCLV(m)
		if err == nil {
			inputs = a.GetInputs()
		}
	}
	s := &clvScorer{
		info: Info{
			Name: name, Version: version,
			Family:   modelv1.ModelFamily_MODEL_FAMILY_BG_NBD_GAMMA_GAMMA,
			Task:     modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE,
			Inputs:   inputs,
			Features: []string{"frequency", "recency", "t", "monetary"},
			index:    make(map[string]int, len(inputs)),
		},
		model: m,
	}
	for k, in := range inputs {
		s.info.index[in.GetName()] = k
	}
	return s
}

// Info implements Scorer.
func (s *clvScorer) Info() *Info { return &s.info }

// Model implements CLVScorer.
func (s *clvScorer) Model() *CLVModel { return s.model }

// Score implements Scorer. Each row's outputs are in out.Outputs by name and its score is the
// CLV (the expected purchases without Gamma-Gamma). A row with a missing value, a value of
// the wrong type, a negative or non-finite one, a zero age, a recency beyond the age or a
// frequency that is no whole number gets a Problem naming the input ("features.<name>").
func (s *clvScorer) Score(ctx context.Context, b *Batch, out *Result) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.Table == nil && b.info != &s.info {
		return fmt.Errorf("score: the batch was not made by NewBatch with this scorer's Info")
	}
	n := b.Len()
	keep := out.Outputs
	out.reset(n, false, false)
	out.Outputs = keep
	gg := s.model.GammaGamma != nil
	names := []string{OutputExpectedPurchases, OutputPAlive}
	if gg {
		names = append(names, OutputExpectedOrderValue, OutputCLV)
	}
	if out.Outputs == nil {
		out.Outputs = make(map[string][]float64, len(names))
	}
	for name := range out.Outputs {
		if !slices.Contains(names, name) {
			delete(out.Outputs, name)
		}
	}
	cols := make([][]float64, len(names))
	for k, name := range names {
		out.Outputs[name] = grow(out.Outputs[name], n)
		cols[k] = out.Outputs[name]
	}
	var raw [4]float64
	for i := range n {
		if p := s.row(b, i, &raw); p != nil {
			out.Problems[i] = p
		} else {
			c := s.model.Customer("", raw[0], raw[1], raw[2], raw[3])
			if err := s.model.Inputs.Check(raw[0], raw[1], raw[2], raw[3]); err != nil {
				out.Problems[i] = s.problem(err)
			} else if err := clv.CheckCustomers([]clv.Customer{c}); err != nil {
				out.Problems[i] = s.problem(err)
			} else if e, alive, v, value, err := s.model.Predict(c); err != nil {
				out.Problems[i] = s.problem(err)
			} else {
				cols[0][i], cols[1][i] = e, alive
				out.Scores[i] = e
				if gg {
					cols[2][i], cols[3][i] = v, value
					out.Scores[i] = value
				}
			}
		}
		if out.Problems[i] != nil {
			out.Scores[i] = math.NaN()
			for _, col := range cols {
				col[i] = math.NaN()
			}
		}
	}
	return nil
}

// row reads row i's four raw values into raw, or returns the row's problem.
func (s *clvScorer) row(b *Batch, i int, raw *[4]float64) *commonv1.Problem {
	for k, in := range s.info.Inputs {
		field := "features." + in.GetName()
		if b.Table != nil {
			col, ok := b.Table.Column(in.GetName())
			if !ok || col.Numeric == nil || math.IsNaN(col.Numeric[i]) {
				return &commonv1.Problem{Field: field, Reason: "MISSING_INPUT", Description: fmt.Sprintf("feature %q is missing", in.GetName())}
			}
			raw[k] = col.Numeric[i]
			continue
		}
		v := b.Row(i)[k]
		if v.GetKind() == nil {
			return &commonv1.Problem{Field: field, Reason: "MISSING_INPUT", Description: fmt.Sprintf("feature %q is missing", in.GetName())}
		}
		if x, ok := v.GetKind().(*commonv1.Value_NumberValue); ok && (math.IsNaN(x.NumberValue) || math.IsInf(x.NumberValue, 0)) {
			return &commonv1.Problem{Field: field, Reason: "NOT_FINITE", Description: fmt.Sprintf("feature %q: %v: %v", in.GetName(), ErrNotFinite, x.NumberValue)}
		}
		if err := CheckType(in.GetType(), v); err != nil {
			return &commonv1.Problem{Field: field, Reason: "WRONG_TYPE", Description: fmt.Sprintf("feature %q: %v", in.GetName(), err)}
		}
		x, err := Number(v, time.Time{})
		if err != nil {
			return &commonv1.Problem{Field: field, Reason: "WRONG_TYPE", Description: fmt.Sprintf("feature %q: %v", in.GetName(), err)}
		}
		raw[k] = x
	}
	return nil
}

// problem turns an error about a customer's values into a Problem naming the raw input.
func (s *clvScorer) problem(err error) *commonv1.Problem {
	var ie *InputError
	if errors.As(err, &ie) {
		return &commonv1.Problem{Field: "features." + ie.Input, Reason: "OUT_OF_RANGE", Description: ie.Error()}
	}
	var fe *clv.FieldError
	if errors.As(err, &fe) {
		name := s.model.Inputs.Field(fe.Field)
		return &commonv1.Problem{Field: "features." + name, Reason: "OUT_OF_RANGE",
			Description: fmt.Sprintf("feature %q %s", name, fe.Problem)}
	}
	return &commonv1.Problem{Reason: "INVALID_VALUE", Description: err.Error()}
}

// InputError says which raw input of a CLV model holds a value no model can take.
type InputError struct {
	// Input is the raw input's name.
	Input string
	// Problem states the value and what was wanted, e.g. "is -1, want ≥ 0".
	Problem string
}

// Error names the input and the problem.
func (e *InputError) Error() string { return fmt.Sprintf("feature %q %s", e.Input, e.Problem) }

// Unwrap returns clv.ErrInvalidInput.
func (e *InputError) Unwrap() error { return clv.ErrInvalidInput }

// Check returns an *InputError naming the first raw value, in the inputs' units (days), that
// no CLV model can take: a negative or non-finite value, a frequency that is no whole
// number, a zero age, a recency beyond the age, or a recency without repeat purchases.
func (in CLVInputs) Check(frequency, recencyDays, ageDays, monetary float64) error {
	names := in.names()
	for k, v := range [4]float64{frequency, recencyDays, ageDays, monetary} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &InputError{Input: names[k], Problem: fmt.Sprintf("is %v, want a finite number", v)}
		}
		if v < 0 {
			return &InputError{Input: names[k], Problem: fmt.Sprintf("is %v, want ≥ 0", v)}
		}
	}
	switch {
	case frequency != math.Trunc(frequency):
		return &InputError{Input: in.Frequency, Problem: fmt.Sprintf("is %v, want a whole number of repeat purchases", frequency)}
	case ageDays == 0:
		return &InputError{Input: in.AgeDays, Problem: "is 0, want the customer's age > 0"}
	case recencyDays > ageDays:
		return &InputError{Input: in.RecencyDays, Problem: fmt.Sprintf("is %v, want ≤ the age %s (%v)", recencyDays, in.AgeDays, ageDays)}
	case frequency == 0 && recencyDays != 0:
		return &InputError{Input: in.RecencyDays, Problem: fmt.Sprintf("is %v with %s 0, want 0", recencyDays, in.Frequency)}
	}
	return nil
}

// Field returns the raw input that holds the clv.Customer field of the given Go name
// (Frequency, Recency, T, Monetary), or the name itself for any other.
func (in CLVInputs) Field(goName string) string {
	switch goName {
	case "Frequency":
		return in.Frequency
	case "Recency":
		return in.RecencyDays
	case "T":
		return in.AgeDays
	case "Monetary":
		return in.Monetary
	}
	return goName
}
