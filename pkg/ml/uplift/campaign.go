package uplift

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"gonum.org/v1/gonum/mat"
)

// CampaignConfig describes a generated randomised campaign. Each customer has covariates
// x1…x5 ~ N(0, 1) and a category c, uniform over 0…3; a fair coin (or one of TreatedShare)
// treats them; and they respond with probability sigmoid(logit) where
//
//	logit = −2 + 0.5·x1 − 0.3·x2 + 0.2·[c = 1] + t·s·τ(x),  τ(x) = 0.8·[x3 > 0] − 0.4·[x4 > 1],
//
// t = 1 when treated and s = Strength. The effect depends on x3 and x4 only, which do not
// move the response without treatment; x5 is noise. A customer's true uplift is
// sigmoid(logit with t = 1) − sigmoid(logit with t = 0): with s = 1 about 0.12 for the 42 %
// of customers with x3 > 0 and x4 ≤ 1, about 0.05 for the 8 % with x3 > 0 and x4 > 1, 0 for
// the 42 % with neither, and about −0.04 for the rest; about 14 % respond without
// treatment.
type CampaignConfig struct {
	// Customers is the number of rows, at least 1.
	Customers int
	// Seed drives every draw. One seed gives the same customers, treatments and uniform
	// draws behind the outcomes whatever the Strength, so campaigns of different strengths
	// differ only by the effect.
	Seed uint64
	// Strength is s, the multiple of τ(x) in the logit of a treated customer; 0 means no
	// effect at all.
	Strength float64
	// TreatedShare is the probability that a customer is treated, in (0, 1); 0 means ½.
	TreatedShare float64
}

// Campaign is a generated randomised campaign with its oracle.
type Campaign struct {
	// X has one row a customer and the columns named by Columns: x1…x5, then c as a
	// category code (0 to 3).
	X *mat.Dense
	// Treatment is 1 for a treated customer and 0 for a control; Y is 1 when the customer
	// responded.
	Treatment, Y []float64
	// TreatedProb and ControlProb are each customer's true probability of a response if
	// treated and if not; Oracle is their difference, the true uplift.
	TreatedProb, ControlProb, Oracle []float64
}

// campaignStream separates the campaign's random stream from others of the same seed.
const campaignStream = 0x63616d706169676e // "campaign"

// GenerateCampaign draws a campaign.
func GenerateCampaign(cfg CampaignConfig) (*Campaign, error) {
	share := cfg.TreatedShare
	if share == 0 {
		share = 0.5
	}
	var errs []error
	if cfg.Customers < 1 {
		errs = append(errs, fmt.Errorf("customers: %d is not at least 1", cfg.Customers))
	}
	if math.IsNaN(cfg.Strength) || math.IsInf(cfg.Strength, 0) {
		errs = append(errs, fmt.Errorf("strength: %g is not finite", cfg.Strength))
	}
	if !(share > 0 && share < 1) {
		errs = append(errs, fmt.Errorf("treated_share: %g is not in (0, 1)", cfg.TreatedShare))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	n := cfg.Customers
	rng := rand.New(rand.NewPCG(cfg.Seed, campaignStream))
	c := &Campaign{
		X:           mat.NewDense(n, 6, nil),
		Treatment:   make([]float64, n),
		Y:           make([]float64, n),
		TreatedProb: make([]float64, n),
		ControlProb: make([]float64, n),
		Oracle:      make([]float64, n),
	}
	for i := range n {
		row := c.X.RawRowView(i)
		for j := range 5 {
			row[j] = rng.NormFloat64()
		}
		row[5] = float64(rng.IntN(4))
		if rng.Float64() < share {
			c.Treatment[i] = 1
		}
		u := rng.Float64()
		base := -2 + 0.5*row[0] - 0.3*row[1]
		if row[5] == 1 {
			base += 0.2
		}
		var tau float64
		if row[2] > 0 {
			tau += 0.8
		}
		if row[3] > 1 {
			tau -= 0.4
		}
		c.ControlProb[i] = logistic.Sigmoid(base)
		c.TreatedProb[i] = logistic.Sigmoid(base + cfg.Strength*tau)
		c.Oracle[i] = c.TreatedProb[i] - c.ControlProb[i]
		p := c.ControlProb[i]
		if c.Treatment[i] == 1 {
			p = c.TreatedProb[i]
		}
		if u < p {
			c.Y[i] = 1
		}
	}
	return c, nil
}

// Columns returns the names of the columns of X.
func (c *Campaign) Columns() []string { return []string{"x1", "x2", "x3", "x4", "x5", "c"} }

// Categorical marks the columns of X that hold category codes (c), as
// gbt.Params.Categorical takes them.
func (c *Campaign) Categorical() []bool { return []bool{false, false, false, false, false, true} }

// OneHot returns X with c replaced by indicators of c = 1, 2 and 3 (c = 0 the reference):
// eight numeric columns, for linear models.
func (c *Campaign) OneHot() *mat.Dense {
	n, _ := c.X.Dims()
	out := mat.NewDense(n, 8, nil)
	for i := range n {
		src, dst := c.X.RawRowView(i), out.RawRowView(i)
		copy(dst, src[:5])
		if k := int(src[5]); k > 0 {
			dst[4+k] = 1
		}
	}
	return out
}

// Rows returns the customers lo to hi − 1; X is a view of the receiver's, the slices share
// their storage.
func (c *Campaign) Rows(lo, hi int) *Campaign {
	_, cols := c.X.Dims()
	return &Campaign{
		X:           c.X.Slice(lo, hi, 0, cols).(*mat.Dense),
		Treatment:   c.Treatment[lo:hi:hi],
		Y:           c.Y[lo:hi:hi],
		TreatedProb: c.TreatedProb[lo:hi:hi],
		ControlProb: c.ControlProb[lo:hi:hi],
		Oracle:      c.Oracle[lo:hi:hi],
	}
}
