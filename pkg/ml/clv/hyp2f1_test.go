package clv

import (
	"math"
	"testing"
)

// TestHyp2F1 checks Hyp2F1 against mpmath 1.2.1 at 40 digits (mp.dps = 40), with
// scipy 1.10.1's special.hyp2f1 beside it for reference; the table is the output of
// "testdata/clv_reference.py --hyp2f1". It covers the direct series, Pfaff's
// transformation (z < 0, also far below −1), the 1−z transformation near z = 1,
// c−a−b near and at whole numbers, z = 1, polynomials, and the arguments of the BG/NBD
// predictions.
func TestHyp2F1(t *testing.T) {
	for _, tc := range []struct{ a, b, c, z, mpmath, scipy float64 }{
		{1.0, 1.0, 2.0, 0.5, 1.3862943611198906, 1.3862943611198901},
		{0.5, 0.5, 1.5, 0.25, 1.0471975511965979, 1.047197551196598},
		{2.3, 1.7, 3.1, 0.8, 6.635377749134301, 6.635377749134305},
		{2.3, 1.7, 3.1, 0.95, 28.182910825647898, 28.182910825647802},
		{2.3, 1.7, 3.1, 0.999, 1100.1843673760202, 1100.18436737602},
		{0.25, 2.2, 2.95, -0.5, 0.9248107409555805, 0.9248107409555809},
		{1.5, 2.5, 3.5, -20.0, 0.022131267499394328, 0.02213126749939433},
		{-3.0, 2.0, 4.0, 0.7, 0.3224, 0.3224},
		{-3.0, 2.0, 4.0, 2.5, -0.25, -0.25},
		{1.979, -0.207, 3.219, 0.4727, 0.9295143093407725, 0.9295143093407723},
		{5.243, 7.426, 8.219, 0.4727, 20.143208427931004, 20.143208427930993},
		{1.2, 0.8, 2.00005, 0.97, 3.471146874836903, 3.471146874836895},
		{1.0, 1.0, 3.0, 0.99, 1.926228544312048, 1.926228544312048},
		{0.5, 0.5, 2.0, 1.0, 1.2732395447351628, 1.273239544735163},
		{10.0, 12.0, 7.0, 0.6, 2511910.0298200315, 2511910.0298200315},
		{0.3, -0.21, 2.2, 0.999999, 0.9635211233690015, 0.9635211233690019},
		{2.0, 1.5, 3.0, 0.93, 9.45413278389979, 9.454132783899782},
		{0.757, -0.21, 12.0, 0.9, 0.9874316936595573, 0.9874316936595579},
		{3.5, 0.25, 1.5, -0.99, 0.7196956429518199, 0.71969564295182},
	} {
		got := Hyp2F1(tc.a, tc.b, tc.c, tc.z)
		if rel := math.Abs(got-tc.mpmath) / math.Abs(tc.mpmath); !(rel <= 1e-13) {
			t.Errorf("Hyp2F1(%v, %v, %v, %v) = %.17g, mpmath %.17g (scipy %.17g): relative error %.2g",
				tc.a, tc.b, tc.c, tc.z, got, tc.mpmath, tc.scipy, rel)
		}
	}
}

func TestHyp2F1Undefined(t *testing.T) {
	for _, tc := range []struct {
		name       string
		a, b, c, z float64
		want       float64
	}{
		{"c a pole", 1, 2, -1, 0.5, math.NaN()},
		{"z > 1", 0.5, 0.5, 1.5, 1.5, math.NaN()},
		{"NaN", math.NaN(), 1, 2, 0.5, math.NaN()},
		{"z = 1, c−a−b ≤ 0", 1, 1, 2, 1, math.Inf(1)},
		{"z = 0", 3, 4, 5, 0, 1},
		{"a = 0", 0, 4, 5, 0.9, 1},
	} {
		got := Hyp2F1(tc.a, tc.b, tc.c, tc.z)
		if !(got == tc.want || math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("%s: Hyp2F1(%v, %v, %v, %v) = %v, want %v", tc.name, tc.a, tc.b, tc.c, tc.z, got, tc.want)
		}
	}
}

// TestHyp2F1Identities checks closed forms along z and the continuity of the switch
// from the direct series to the 1−z transformation at z = 0.9.
func TestHyp2F1Identities(t *testing.T) {
	for _, z := range []float64{-50, -3, -0.9, -0.1, 0.05, 0.5, 0.89, 0.9, 0.91, 0.99, 0.9999} {
		// ₂F₁(1, 1; 2; z) = −ln(1−z)/z.
		if got, want := Hyp2F1(1, 1, 2, z), -math.Log1p(-z)/z; math.Abs(got-want) > 1e-14*math.Abs(want) {
			t.Errorf("2F1(1,1;2;%v) = %.17g, want %.17g", z, got, want)
		}
		// ₂F₁(a, b; b; z) = (1−z)⁻ᵃ.
		if got, want := Hyp2F1(0.37, 2.5, 2.5, z), math.Pow(1-z, -0.37); math.Abs(got-want) > 1e-13*math.Abs(want) {
			t.Errorf("2F1(0.37,2.5;2.5;%v) = %.17g, want %.17g", z, got, want)
		}
	}
	below, above := Hyp2F1(0.6, 1.3, 2.45, math.Nextafter(directBelow, 0)), Hyp2F1(0.6, 1.3, 2.45, math.Nextafter(directBelow, 1))
	if math.Abs(below-above) > 1e-14*math.Abs(below) {
		t.Errorf("2F1 jumps at z = %v: %.17g then %.17g", directBelow, below, above)
	}
}
