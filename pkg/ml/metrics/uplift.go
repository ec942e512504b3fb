package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// The uplift metrics score a ranking of the rows of a randomised campaign by predicted
// uplift (the effect of treating a customer on the chance that they respond). Each takes
// the observed outcomes y (0 or 1), the predicted uplift of each row and the treatment of
// each row (1 treated, 0 control), and follows the definition of scikit-uplift
// (sklift.metrics, version 0.5.1): rows are sorted by decreasing predicted uplift, and rows of
// equal predicted uplift are taken in reverse row order, as sklift's
// argsort(uplift, kind="mergesort")[::-1] does. The curves keep one point per distinct
// predicted uplift, so the order of tied rows matters only to UpliftAtK.
//
// Unlike the classification metrics, these require y and treatment to hold only 0 and 1,
// as sklift does, and both arms to be present.

// UpliftStrategy says how UpliftAtK chooses the rows it compares.
type UpliftStrategy int

const (
	// UpliftOverall takes the first k of all rows by predicted uplift and compares the
	// response rates of the treated and control rows among them (sklift strategy="overall").
	UpliftOverall UpliftStrategy = iota
	// UpliftByGroup ranks the treated rows and the control rows separately, takes the
	// first k of each and compares their response rates (sklift strategy="by_group").
	UpliftByGroup
)

// String names the strategy as sklift does.
func (s UpliftStrategy) String() string {
	switch s {
	case UpliftOverall:
		return "overall"
	case UpliftByGroup:
		return "by_group"
	}
	return fmt.Sprintf("UpliftStrategy(%d)", int(s))
}

// UpliftPoint is one point of an uplift or a Qini curve: the value of the curve when the
// first Targeted rows by predicted uplift are targeted.
// Targeted is a number of rows, except at the corner of PerfectQiniCurve without negative
// effects, which sklift places at a number of responders.
type UpliftPoint struct {
	Targeted float64 `json:"targeted"`
	Value    float64 `json:"value"`
}

// checkUplift checks the inputs of an uplift metric and returns the number of treated
// rows. uplift may be nil when the metric needs none.
func checkUplift(y, uplift, treatment []float64) (int, error) {
	if len(y) == 0 {
		return 0, errors.New("no rows")
	}
	if uplift != nil && len(uplift) != len(y) {
		return 0, fmt.Errorf("uplift: %d values for %d labels", len(uplift), len(y))
	}
	if len(treatment) != len(y) {
		return 0, fmt.Errorf("treatment: %d values for %d labels", len(treatment), len(y))
	}
	treated := 0
	for i := range y {
		if y[i] != 0 && y[i] != 1 {
			return 0, fmt.Errorf("y[%d] = %g is not 0 or 1", i, y[i])
		}
		switch treatment[i] {
		case 0:
		case 1:
			treated++
		default:
			return 0, fmt.Errorf("treatment[%d] = %g is not 0 or 1", i, treatment[i])
		}
		if uplift != nil && (math.IsNaN(uplift[i]) || math.IsInf(uplift[i], 0)) {
			return 0, fmt.Errorf("uplift[%d] = %g is not finite", i, uplift[i])
		}
	}
	switch treated {
	case 0:
		return 0, errors.New("treatment: no treated rows")
	case len(y):
		return 0, errors.New("treatment: no control rows")
	}
	return treated, nil
}

// upliftOrder returns the row indices by decreasing uplift, tied rows in reverse row order
// (the reverse of a stable ascending sort, as sklift).
func upliftOrder(uplift []float64) []int {
	idx := make([]int, len(uplift))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case uplift[a] > uplift[b]:
			return -1
		case uplift[a] < uplift[b]:
			return 1
		}
		return b - a
	})
	return idx
}

// UpliftAtK returns the uplift among the first fraction k (0 < k < 1) of the rows by
// predicted uplift: the response rate of the treated rows there minus that of the control
// rows, as sklift's uplift_at_k. With UpliftOverall the first ⌊k·n⌋ of all n rows are taken;
// with UpliftByGroup the first ⌊k·n_t⌋ treated rows and the first ⌊k·n_c⌋ control rows. It
// fails when either arm has no row among those taken (where sklift returns NaN).
func UpliftAtK(y, uplift, treatment []float64, k float64, strategy UpliftStrategy) (float64, error) {
	treated, err := checkUplift(y, uplift, treatment)
	if err != nil {
		return 0, fmt.Errorf("uplift at k: %w", err)
	}
	if !(k > 0 && k < 1) {
		return 0, fmt.Errorf("uplift at k: k = %g is not in (0, 1)", k)
	}
	idx := upliftOrder(uplift)
	n := len(y)
	var sumT, sumC float64
	var nT, nC int
	switch strategy {
	case UpliftOverall:
		for _, i := range idx[:int(float64(n)*k)] {
			if treatment[i] == 1 {
				sumT += y[i]
				nT++
			} else {
				sumC += y[i]
				nC++
			}
		}
	case UpliftByGroup:
		wantT, wantC := int(float64(treated)*k), int(float64(n-treated)*k)
		for _, i := range idx {
			if treatment[i] == 1 && nT < wantT {
				sumT += y[i]
				nT++
			} else if treatment[i] == 0 && nC < wantC {
				sumC += y[i]
				nC++
			}
		}
	default:
		return 0, fmt.Errorf("uplift at k: unknown strategy %d", int(strategy))
	}
	if nT == 0 {
		return 0, fmt.Errorf("uplift at k: no treated row among the first %g (%s)", k, strategy)
	}
	if nC == 0 {
		return 0, fmt.Errorf("uplift at k: no control row among the first %g (%s)", k, strategy)
	}
	return sumT/float64(nT) - sumC/float64(nC), nil
}

// cumulative is the state of an uplift curve after the first Targeted rows.
type cumulative struct {
	targeted, treated        int
	treatedResp, controlResp float64
}

// cutoffs walks the rows by decreasing uplift and calls f after each group of tied
// predictions, with the counts of the rows taken so far.
func cutoffs(y, uplift, treatment []float64, f func(c cumulative)) {
	idx := upliftOrder(uplift)
	var c cumulative
	for j, i := range idx {
		c.targeted++
		if treatment[i] == 1 {
			c.treated++
			c.treatedResp += y[i]
		} else {
			c.controlResp += y[i]
		}
		if j+1 == len(idx) || uplift[idx[j+1]] != uplift[i] {
			f(c)
		}
	}
}

// QiniCurve returns the Qini curve (Radcliffe 2007), as sklift's qini_curve: from (0, 0),
// one point for each distinct predicted uplift from the highest, at which Targeted is the
// number of rows predicted at least that uplift and Value is
//
//	R_t − R_c · N_t / N_c
//
// with R_t and R_c the responders and N_t and N_c the rows of the treated and control arms
// among them (R_c · N_t / N_c read as 0 while N_c = 0): the extra responders the campaign
// won among the targeted rows, the control arm scaled to the size of the treated.
func QiniCurve(y, uplift, treatment []float64) ([]UpliftPoint, error) {
	if _, err := checkUplift(y, uplift, treatment); err != nil {
		return nil, fmt.Errorf("qini curve: %w", err)
	}
	return qiniCurve(y, uplift, treatment), nil
}

func qiniCurve(y, uplift, treatment []float64) []UpliftPoint {
	pts := []UpliftPoint{{}}
	cutoffs(y, uplift, treatment, func(c cumulative) {
		v := c.treatedResp
		if nc := c.targeted - c.treated; nc != 0 {
			v -= c.controlResp * (float64(c.treated) / float64(nc))
		}
		pts = append(pts, UpliftPoint{Targeted: float64(c.targeted), Value: v})
	})
	return pts
}

// UpliftCurve returns the uplift curve (Devriendt, Guns and Verbeke 2020), as sklift's
// uplift_curve: the points of QiniCurve with Value
//
//	(R_t / N_t − R_c / N_c) · (N_t + N_c)
//
// each rate read as 0 while its arm has no row: the uplift among the targeted rows times
// their number.
func UpliftCurve(y, uplift, treatment []float64) ([]UpliftPoint, error) {
	if _, err := checkUplift(y, uplift, treatment); err != nil {
		return nil, fmt.Errorf("uplift curve: %w", err)
	}
	return upliftCurve(y, uplift, treatment), nil
}

func upliftCurve(y, uplift, treatment []float64) []UpliftPoint {
	pts := []UpliftPoint{{}}
	cutoffs(y, uplift, treatment, func(c cumulative) {
		var rt, rc float64
		if c.treated != 0 {
			rt = c.treatedResp / float64(c.treated)
		}
		if nc := c.targeted - c.treated; nc != 0 {
			rc = c.controlResp / float64(nc)
		}
		pts = append(pts, UpliftPoint{Targeted: float64(c.targeted), Value: (rt - rc) * float64(c.targeted)})
	})
	return pts
}

// PerfectQiniCurve returns the Qini curve of the best ranking of the observed rows, as
// sklift's perfect_qini_curve. With negativeEffect (sklift's default) it is the Qini curve
// of the score y·t − y·(1 − t): treated responders first, control responders last. Without,
// it is the three points (0, 0), (G, G), (n, G) with G = R_t − R_c · N_t / N_c over all n rows:
// a ranking that wins every net responder first and loses none.
func PerfectQiniCurve(y, treatment []float64, negativeEffect bool) ([]UpliftPoint, error) {
	if _, err := checkUplift(y, nil, treatment); err != nil {
		return nil, fmt.Errorf("perfect qini curve: %w", err)
	}
	return perfectQini(y, treatment, negativeEffect), nil
}

func perfectQini(y, treatment []float64, negativeEffect bool) []UpliftPoint {
	if negativeEffect {
		s := make([]float64, len(y))
		for i := range y {
			s[i] = y[i]*treatment[i] - y[i]*(1-treatment[i])
		}
		return qiniCurve(y, s, treatment)
	}
	var rt, rc, nt float64
	for i := range y {
		if treatment[i] == 1 {
			rt += y[i]
			nt++
		} else {
			rc += y[i]
		}
	}
	n := len(y)
	g := rt - nt*rc/(float64(n)-nt)
	return []UpliftPoint{{}, {Targeted: g, Value: g}, {Targeted: float64(n), Value: g}}
}

// PerfectUpliftCurve returns the uplift curve of the best ranking of the observed rows, as
// sklift's perfect_uplift_curve: the uplift curve of the score 2·[y = t] + s, with s = y when
// the control responders outnumber the treated non-responders and s = t otherwise.
func PerfectUpliftCurve(y, treatment []float64) ([]UpliftPoint, error) {
	if _, err := checkUplift(y, nil, treatment); err != nil {
		return nil, fmt.Errorf("perfect uplift curve: %w", err)
	}
	return upliftCurve(y, perfectUpliftScore(y, treatment), treatment), nil
}

func perfectUpliftScore(y, treatment []float64) []float64 {
	var controlResp, treatedNon int
	for i := range y {
		if y[i] == 1 && treatment[i] == 0 {
			controlResp++
		}
		if y[i] == 0 && treatment[i] == 1 {
			treatedNon++
		}
	}
	s := make([]float64, len(y))
	for i := range y {
		if y[i] == treatment[i] {
			s[i] = 2
		}
		if controlResp > treatedNon {
			s[i] += y[i]
		} else {
			s[i] += treatment[i]
		}
	}
	return s
}

// area returns the area under the piecewise linear curve through pts (the trapezoid rule,
// as scikit-learn's auc).
func area(pts []UpliftPoint) float64 {
	var a float64
	for i := 1; i < len(pts); i++ {
		a += (pts[i].Targeted - pts[i-1].Targeted) * (pts[i].Value + pts[i-1].Value) / 2
	}
	return a
}

// normalised returns (A(actual) − A(random)) / (A(perfect) − A(random)), the random line
// joining (0, 0) to the perfect curve's last point, as sklift's normalised scores.
func normalised(actual, perfect []UpliftPoint) (float64, error) {
	for i := 1; i < len(perfect); i++ {
		if perfect[i].Targeted < perfect[i-1].Targeted {
			// Only the perfect Qini curve without negative effects, when the campaign lost
			// responders overall (sklift's auc fails on it too).
			return 0, fmt.Errorf("the perfect curve is not monotonic: its corner is at %g rows", perfect[i-1].Targeted)
		}
	}
	last := perfect[len(perfect)-1]
	random := last.Targeted * last.Value / 2
	den := area(perfect) - random
	if den == 0 {
		return 0, errors.New("the perfect curve has no area above the random line")
	}
	return (area(actual) - random) / den, nil
}

// QiniAUC returns the Qini coefficient, as sklift's qini_auc_score: the area between the
// Qini curve and the random line (the straight line from (0, 0) to the curve's end at
// (n, R_t − R_c · N_t / N_c)), over the same area for PerfectQiniCurve. It is 1 for the
// perfect ranking, about 0 for a random one, and negative for a ranking worse than random.
// Without negativeEffect the perfect curve assumes that the campaign lost no responder, so
// a ranking may score above 1, and there is no score when the campaign lost responders
// overall (G < 0 in PerfectQiniCurve).
func QiniAUC(y, uplift, treatment []float64, negativeEffect bool) (float64, error) {
	if _, err := checkUplift(y, uplift, treatment); err != nil {
		return 0, fmt.Errorf("qini auc: %w", err)
	}
	q, err := normalised(qiniCurve(y, uplift, treatment), perfectQini(y, treatment, negativeEffect))
	if err != nil {
		return 0, fmt.Errorf("qini auc: %w", err)
	}
	return q, nil
}

// UpliftAUC returns the normalised area under the uplift curve (AUUC), as sklift's
// uplift_auc_score: the area between UpliftCurve and the random line (from (0, 0) to the
// curve's end), over the same area for PerfectUpliftCurve.
func UpliftAUC(y, uplift, treatment []float64) (float64, error) {
	if _, err := checkUplift(y, uplift, treatment); err != nil {
		return 0, fmt.Errorf("uplift auc: %w", err)
	}
	perfect := upliftCurve(y, perfectUpliftScore(y, treatment), treatment)
	u, err := normalised(upliftCurve(y, uplift, treatment), perfect)
	if err != nil {
		return 0, fmt.Errorf("uplift auc: %w", err)
	}
	return u, nil
}
