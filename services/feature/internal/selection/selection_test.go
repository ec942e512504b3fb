package selection

import (
	"math"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// table2x2 makes feature and label codes with the counts
// [[10, 20], [30, 40]] (feature code 1..2 by row, label 0..1 by column).
func table2x2() (x, y []int) {
	counts := [2][2]int{{10, 20}, {30, 40}}
	for i := range counts {
		for j, n := range counts[i] {
			for k := 0; k < n; k++ {
				x = append(x, i+1)
				y = append(y, j)
			}
		}
	}
	return x, y
}

func TestChiSquaredByHand(t *testing.T) {
	x, y := table2x2()
	stat, p := chiSquared(x, 3, y, 2)
	want := 4.0/12 + 4.0/18 + 4.0/28 + 4.0/42 // expected counts 12, 18, 28, 42
	if math.Abs(stat-want) > 1e-12 {
		t.Errorf("chi-squared = %v, want %v", stat, want)
	}
	// One degree of freedom: p = erfc(sqrt(stat / 2)).
	if wantP := math.Erfc(math.Sqrt(want / 2)); math.Abs(p-wantP) > 1e-9 {
		t.Errorf("p-value = %v, want %v", p, wantP)
	}
}

func TestMutualInformationByHand(t *testing.T) {
	x, y := table2x2()
	got := mutualInformation(x, 3, y, 2)
	want := 0.1*math.Log(0.1/(0.3*0.4)) + 0.2*math.Log(0.2/(0.3*0.6)) + 0.3*math.Log(0.3/(0.7*0.4)) + 0.4*math.Log(0.4/(0.7*0.6))
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("mutual information = %v, want %v", got, want)
	}
}

func TestDiscretiseEqualFrequency(t *testing.T) {
	x := []float64{5, 1, 2, math.NaN(), 3, 4, 6, 7, 8}
	codes, n := discretise(x, 4)
	want := []int{3, 1, 1, 0, 2, 2, 3, 4, 4}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes = %v (%d codes), want %v", codes, n, want)
		}
	}
}
