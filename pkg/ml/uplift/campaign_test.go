package uplift_test

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/uplift"
)

func TestGenerateCampaign(t *testing.T) {
	const n = 50000
	c := campaign(t, uplift.CampaignConfig{Customers: n, Seed: 7, Strength: 1})
	if again := campaign(t, uplift.CampaignConfig{Customers: n, Seed: 7, Strength: 1}); !reflect.DeepEqual(c, again) {
		t.Fatal("the same config gave two campaigns")
	}
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	var treated, cats [4]float64
	var respC, probC, nC float64
	var top, topN float64
	for i := range n {
		r := c.X.RawRowView(i)
		// The logit of the config's doc comment, written out again.
		base := -2 + 0.5*r[0] - 0.3*r[1]
		if r[5] == 1 {
			base += 0.2
		}
		tau := 0.0
		if r[2] > 0 {
			tau = 0.8
		}
		if r[3] > 1 {
			tau -= 0.4
		}
		if d := math.Abs(c.Oracle[i] - (sig(base+tau) - sig(base))); d > 1e-12 {
			t.Fatalf("row %d: oracle %v, want %v", i, c.Oracle[i], sig(base+tau)-sig(base))
		}
		if c.TreatedProb[i]-c.ControlProb[i] != c.Oracle[i] {
			t.Fatalf("row %d: oracle is not treated − control", i)
		}
		k := int(r[5])
		if float64(k) != r[5] || k < 0 || k > 3 {
			t.Fatalf("row %d: category %v", i, r[5])
		}
		cats[k]++
		treated[k] += c.Treatment[i]
		if c.Treatment[i] == 0 {
			respC += c.Y[i]
			probC += c.ControlProb[i]
			nC++
		}
		if tau == 0.8 {
			top += c.Oracle[i]
			topN++
		}
	}
	for k := range 4 {
		if math.Abs(cats[k]/n-0.25) > 0.01 || math.Abs(treated[k]/cats[k]-0.5) > 0.02 {
			t.Errorf("category %d: share %.4f, treated %.4f; want ¼ and ½", k, cats[k]/n, treated[k]/cats[k])
		}
	}
	// Control responses are Bernoulli draws of ControlProb: their mean within 4 standard
	// errors (√(0.14·0.86/25000) ≈ 0.0022) of the mean probability, about 0.14.
	if rate, p := respC/nC, probC/nC; math.Abs(rate-p) > 4*math.Sqrt(p*(1-p)/nC) || math.Abs(p-0.138) > 0.005 {
		t.Errorf("control response rate %.4f, mean probability %.4f; want both about 0.138", rate, p)
	}
	if m := top / topN; math.Abs(m-0.117) > 0.005 || math.Abs(topN/n-0.42) > 0.01 {
		t.Errorf("x3 > 0, x4 ≤ 1: %.3f of the rows, mean uplift %.4f; want 0.42 and 0.117", topN/n, m)
	}
}

func TestCampaignStrengthsShareDraws(t *testing.T) {
	weak := campaign(t, uplift.CampaignConfig{Customers: 5000, Seed: 3, Strength: 0.5})
	strong := campaign(t, uplift.CampaignConfig{Customers: 5000, Seed: 3, Strength: 2})
	none := campaign(t, uplift.CampaignConfig{Customers: 5000, Seed: 3})
	if !reflect.DeepEqual(weak.X, strong.X) || !reflect.DeepEqual(weak.Treatment, strong.Treatment) {
		t.Fatal("strengths changed the customers or the treatments")
	}
	for i := range weak.Y {
		if weak.Treatment[i] == 0 && weak.Y[i] != strong.Y[i] {
			t.Fatalf("row %d: a control row's outcome depends on the strength", i)
		}
		// One uniform draw decides the outcome, so a larger effect never loses a
		// responder where the effect is positive.
		if weak.Treatment[i] == 1 && weak.Oracle[i] > 0 && weak.Y[i] > strong.Y[i] {
			t.Fatalf("row %d: responded at strength ½ but not 2", i)
		}
		if none.Oracle[i] != 0 {
			t.Fatalf("row %d: uplift %v without an effect", i, none.Oracle[i])
		}
	}
}

func TestCampaignShareAndViews(t *testing.T) {
	c := campaign(t, uplift.CampaignConfig{Customers: 20000, Seed: 4, Strength: 1, TreatedShare: 0.2})
	var treated float64
	for _, v := range c.Treatment {
		treated += v
	}
	if share := treated / 20000; math.Abs(share-0.2) > 0.015 {
		t.Errorf("treated share %.4f, want 0.2", share)
	}
	sub := c.Rows(100, 103)
	oh := sub.OneHot()
	for i := range 3 {
		r, o := sub.X.RawRowView(i), oh.RawRowView(i)
		if !reflect.DeepEqual(r, c.X.RawRowView(100+i)) || sub.Y[i] != c.Y[100+i] || sub.Oracle[i] != c.Oracle[100+i] {
			t.Fatalf("Rows(100, 103) row %d is not row %d", i, 100+i)
		}
		for k := 1; k <= 3; k++ {
			if want := float64(b2f(int(r[5]) == k)); o[4+k] != want || !reflect.DeepEqual(o[:5], r[:5]) {
				t.Fatalf("OneHot row %v of %v", o, r)
			}
		}
	}
	if len(c.Columns()) != 6 || !c.Categorical()[5] || c.Categorical()[0] {
		t.Errorf("Columns %v, Categorical %v", c.Columns(), c.Categorical())
	}
}

func b2f(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestCampaignConfigErrors(t *testing.T) {
	_, err := uplift.GenerateCampaign(uplift.CampaignConfig{Customers: 0, Strength: math.Inf(1), TreatedShare: 1})
	for _, want := range []string{"customers: 0 is not at least 1", "strength: +Inf is not finite", "treated_share: 1 is not in (0, 1)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
}
