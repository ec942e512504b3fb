package metrics_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
)

type pt = metrics.UpliftPoint

func samePoints(t *testing.T, name string, got, want []pt) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %v, want %v", name, got, want)
		return
	}
	for i := range got {
		if got[i].Targeted != want[i].Targeted || !near(got[i].Value, want[i].Value) {
			t.Errorf("%s = %v, want %v", name, got, want)
			return
		}
	}
}

func TestUpliftCurvesByHand(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		y, u, tr                   []float64
		qini, perfectQini, uplift  []pt
		perfectQiniNoNeg, perfectU []pt
		qiniAUC, qiniNoNeg, auuc   float64
	}{
		{
			name: "six distinct predictions",
			y:    []float64{1, 0, 1, 1, 0, 0},
			u:    []float64{0.9, 0.8, 0.7, 0.5, 0.3, 0.1},
			tr:   []float64{1, 0, 1, 0, 1, 0},
			// Rows in order 0..5. After each: (n, N_t, R_t, N_c, R_c) =
			// (1,1,1,0,0) (2,1,1,1,0) (3,2,2,1,0) (4,2,2,2,1) (5,3,2,2,1) (6,3,2,3,1).
			// Qini R_t − R_c·N_t/N_c: 1, 1−0, 2−0, 2−1·2/2 = 1, 2−1·3/2 = ½, 2−1·3/3 = 1.
			qini: []pt{{0, 0}, {1, 1}, {2, 1}, {3, 2}, {4, 1}, {5, 0.5}, {6, 1}},
			// Uplift (R_t/N_t − R_c/N_c)·n: 1·1, 1·2, 1·3, (1 − ½)·4 = 2, (⅔ − ½)·5 = 5/6,
			// (⅔ − ⅓)·6 = 2.
			uplift: []pt{{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 2}, {5, 5.0 / 6}, {6, 2}},
			// Perfect Qini score y·t − y·(1−t) = 1, 0, 1, −1, 0, 0: groups {2, 0}, {5, 4, 1},
			// {3}: (2,2,2,0,0) → 2; (5,3,2,2,0) → 2; (6,3,2,3,1) → 2 − 1 = 1.
			perfectQini: []pt{{0, 0}, {2, 2}, {5, 2}, {6, 1}},
			// G = 2 − 3·1/3 = 1: (0,0), (1,1), (6,1).
			perfectQiniNoNeg: []pt{{0, 0}, {1, 1}, {6, 1}},
			// Control responders (row 3) = treated non-responders (row 4) = 1, so s = t:
			// scores 2·[y = t] + t = 3, 2, 3, 0, 1, 2: groups {2, 0}, {5, 1}, {4}, {3}:
			// (2,2,2,0,0) → 1·2; (4,2,2,2,0) → 1·4; (5,3,2,2,0) → ⅔·5; (6,3,2,3,1) → ⅓·6.
			perfectU: []pt{{0, 0}, {2, 2}, {4, 4}, {5, 10.0 / 3}, {6, 2}},
			// Qini areas: model ½+1+1½+1½+¾+¾ = 6; random line to (6, 1): 3; perfect
			// 2+6+1½ = 9½. (6 − 3) / (9½ − 3) = 6/13. Without negative effects the perfect
			// area is ½ + 5 = 5½: 3 / 2½ = 1.2.
			qiniAUC: 6.0 / 13, qiniNoNeg: 1.2,
			// Uplift areas: model ½+1½+2½+2½+17/12+17/12 = 59/6; random line to (6, 2): 6;
			// perfect 2+6+11/3+8/3 = 43/3. (59/6 − 6) / (43/3 − 6) = (23/6)/(25/3) = 23/50.
			auuc: 23.0 / 50,
		},
		{
			name: "tied predictions share a point",
			y:    []float64{0, 1, 1, 0},
			u:    []float64{0.5, 0.5, 0.5, 0.2},
			tr:   []float64{1, 0, 1, 0},
			// Rows 0–2 tie: one point after all three, (3,2,1,1,1) → Qini 1 − 1·2/1 = −1,
			// uplift (½ − 1)·3 = −1½; then (4,2,1,2,1) → 0 and 0.
			qini:   []pt{{0, 0}, {3, -1}, {4, 0}},
			uplift: []pt{{0, 0}, {3, -1.5}, {4, 0}},
			// Perfect Qini scores 0, −1, 1, 0: groups {2}, {3, 0}, {1}: (1,1,1,0,0) → 1;
			// (3,2,1,1,0) → 1; (4,2,1,2,1) → 0.
			perfectQini: []pt{{0, 0}, {1, 1}, {3, 1}, {4, 0}},
			// G = 1 − 2·1/2 = 0.
			perfectQiniNoNeg: []pt{{0, 0}, {0, 0}, {4, 0}},
			// Control responders 1 (row 1), treated non-responders 1 (row 0): s = t; scores
			// 1, 0, 3, 2: rows 2, 3, 0, 1: (1,1,1,0,0) → 1; (2,1,1,1,0) → 2;
			// (3,2,1,1,0) → ½·3; (4,2,1,2,1) → 0.
			perfectU: []pt{{0, 0}, {1, 1}, {2, 2}, {3, 1.5}, {4, 0}},
			// Random lines end at 0. Qini: model 3·(−1)/2 − ½ = −2; perfect ½+2+½ = 3:
			// −2/3. Without negative effects the perfect area is 0: no score (below).
			qiniAUC: -2.0 / 3, qiniNoNeg: math.NaN(),
			// Uplift: model 3·(−1½)/2 − ¾ = −3; perfect ½+1½+1¾+¾ = 4½: −2/3.
			auuc: -2.0 / 3,
		},
		{
			// scikit-uplift's own test cases (sklift/tests/test_metrics.py): AUUC 0, Qini 1.
			name: "sklift test: control responder first",
			y:    []float64{0, 1}, u: []float64{0.1, 0.3}, tr: []float64{1, 0},
			// Row 1 then row 0: (1,0,0,1,1) → Qini 0, uplift (0 − 1)·1 = −1;
			// (2,1,0,1,1) → −1 and (0 − 1)·2 = −2.
			qini:   []pt{{0, 0}, {1, 0}, {2, -1}},
			uplift: []pt{{0, 0}, {1, -1}, {2, -2}},
			// Perfect Qini scores 0, −1: rows 0, 1: (1,1,0,0,0) → 0; (2,1,0,1,1) → −1.
			perfectQini: []pt{{0, 0}, {1, 0}, {2, -1}},
			// G = 0 − 1·1/1 = −1: the corner (−1, −1) lies left of the start.
			perfectQiniNoNeg: []pt{{0, 0}, {-1, -1}, {2, -1}},
			// Control responders 1 > treated non-responders 1? No: s = t; scores 1, 0:
			// rows 0, 1: (1,1,0,0,0) → 0; (2,1,0,1,1) → −2.
			perfectU: []pt{{0, 0}, {1, 0}, {2, -2}},
			// Qini: model −½, random line to (2, −1): −1, perfect −½: ½ / ½ = 1. Without
			// negative effects the perfect curve goes back along x: no score (sklift's auc
			// fails on it too).
			qiniAUC: 1, qiniNoNeg: math.NaN(),
			// Uplift: model −½ − 1½ = −2, random −2, perfect 0 − 1 = −1: 0 / 1 = 0.
			auuc: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := metrics.QiniCurve(tc.y, tc.u, tc.tr)
			if err != nil {
				t.Fatal(err)
			}
			samePoints(t, "QiniCurve", q, tc.qini)
			u, err := metrics.UpliftCurve(tc.y, tc.u, tc.tr)
			if err != nil {
				t.Fatal(err)
			}
			samePoints(t, "UpliftCurve", u, tc.uplift)
			pq, _ := metrics.PerfectQiniCurve(tc.y, tc.tr, true)
			samePoints(t, "PerfectQiniCurve", pq, tc.perfectQini)
			pqn, _ := metrics.PerfectQiniCurve(tc.y, tc.tr, false)
			samePoints(t, "PerfectQiniCurve without negative effects", pqn, tc.perfectQiniNoNeg)
			pu, _ := metrics.PerfectUpliftCurve(tc.y, tc.tr)
			samePoints(t, "PerfectUpliftCurve", pu, tc.perfectU)

			if got, err := metrics.QiniAUC(tc.y, tc.u, tc.tr, true); err != nil || !near(got, tc.qiniAUC) {
				t.Errorf("QiniAUC = %v, %v; want %v", got, err, tc.qiniAUC)
			}
			got, err := metrics.QiniAUC(tc.y, tc.u, tc.tr, false)
			if math.IsNaN(tc.qiniNoNeg) {
				if err == nil {
					t.Errorf("QiniAUC without negative effects = %v, want an error", got)
				}
			} else if err != nil || !near(got, tc.qiniNoNeg) {
				t.Errorf("QiniAUC without negative effects = %v, %v; want %v", got, err, tc.qiniNoNeg)
			}
			if got, err := metrics.UpliftAUC(tc.y, tc.u, tc.tr); err != nil || !near(got, tc.auuc) {
				t.Errorf("UpliftAUC = %v, %v; want %v", got, err, tc.auuc)
			}
		})
	}
}

func TestUpliftAtKByHand(t *testing.T) {
	six := [3][]float64{
		{1, 0, 1, 1, 0, 0},             // y
		{0.9, 0.8, 0.7, 0.5, 0.3, 0.1}, // uplift
		{1, 0, 1, 0, 1, 0},             // treatment
	}
	ties := [3][]float64{{0, 1, 1, 0}, {0.5, 0.5, 0.5, 0.2}, {1, 0, 1, 0}}
	for _, tc := range []struct {
		name     string
		data     [3][]float64
		k        float64
		strategy metrics.UpliftStrategy
		want     float64
	}{
		// ⌊6·0.5⌋ = 3 rows 0, 1, 2: treated 0, 2 respond (1); control 1 does not (0).
		{"overall top half", six, 0.5, metrics.UpliftOverall, 1},
		// ⌊6·0.7⌋ = ⌊4.2⌋ = 4 rows 0–3: treated 2/2; control rows 1, 3: ½.
		{"overall top 70%", six, 0.7, metrics.UpliftOverall, 0.5},
		// ⌊6·0.9⌋ = 5 rows 0–4: treated 0, 2, 4: ⅔; control 1, 3: ½.
		{"overall top 90%", six, 0.9, metrics.UpliftOverall, 2.0/3 - 0.5},
		// ⌊3·0.7⌋ = 2 of each arm: treated 0, 2: 1; control 1, 3: ½.
		{"by group 70%", six, 0.7, metrics.UpliftByGroup, 0.5},
		// ⌊3·0.99⌋ = 2 of each arm again.
		{"by group 99%", six, 0.99, metrics.UpliftByGroup, 0.5},
		// Tied rows 0–2 are taken in reverse row order, as sklift: ⌊4·0.5⌋ = 2 rows 2, 1:
		// treated row 2 responds (1), control row 1 responds (1): 0. (Row order would
		// take rows 0, 1: 0 − 1 = −1.)
		{"overall ties in reverse row order", ties, 0.5, metrics.UpliftOverall, 0},
		// ⌊2·0.5⌋ = 1 of each arm: treated row 2 (y 1) before row 0; control row 1 (y 1): 0.
		{"by group ties in reverse row order", ties, 0.5, metrics.UpliftByGroup, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := metrics.UpliftAtK(tc.data[0], tc.data[1], tc.data[2], tc.k, tc.strategy)
			if err != nil || !near(got, tc.want) {
				t.Errorf("UpliftAtK(k = %v, %v) = %v, %v; want %v", tc.k, tc.strategy, got, err, tc.want)
			}
		})
	}
}

func TestUpliftMetricErrors(t *testing.T) {
	y := []float64{1, 0, 1, 0}
	u := []float64{0.4, 0.3, 0.2, 0.1}
	tr := []float64{1, 0, 1, 0}
	for _, tc := range []struct {
		name string
		f    func() error
		want string
	}{
		{"no rows", func() error { _, err := metrics.QiniCurve(nil, nil, nil); return err }, "no rows"},
		{"length", func() error { _, err := metrics.QiniAUC(y, u[:3], tr, true); return err }, "uplift: 3 values for 4 labels"},
		{"treatment length", func() error { _, err := metrics.UpliftAUC(y, u, tr[:2]); return err }, "treatment: 2 values for 4 labels"},
		{"non-binary treatment", func() error {
			_, err := metrics.UpliftCurve(y, u, []float64{1, 0.3, 1, 0})
			return err
		}, "treatment[1] = 0.3 is not 0 or 1"},
		{"non-binary outcome", func() error {
			_, err := metrics.UpliftAtK([]float64{2, 0, 1, 0}, u, tr, 0.5, metrics.UpliftOverall)
			return err
		}, "y[0] = 2 is not 0 or 1"},
		{"NaN uplift", func() error {
			_, err := metrics.QiniCurve(y, []float64{0, math.NaN(), 0, 0}, tr)
			return err
		}, "uplift[1] = NaN is not finite"},
		{"no control", func() error { _, err := metrics.QiniAUC(y, u, []float64{1, 1, 1, 1}, true); return err }, "treatment: no control rows"},
		{"no treated", func() error { _, err := metrics.PerfectUpliftCurve(y, []float64{0, 0, 0, 0}); return err }, "treatment: no treated rows"},
		{"k", func() error { _, err := metrics.UpliftAtK(y, u, tr, 1, metrics.UpliftOverall); return err }, "k = 1 is not in (0, 1)"},
		{"strategy", func() error { _, err := metrics.UpliftAtK(y, u, tr, 0.5, 7); return err }, "unknown strategy 7"},
		// ⌊4·0.25⌋ = 1 row, the treated row 0.
		{"no control in the top", func() error { _, err := metrics.UpliftAtK(y, u, tr, 0.25, metrics.UpliftOverall); return err }, "no control row among the first 0.25 (overall)"},
		// ⌊2·0.4⌋ = 0 rows of each arm.
		{"no rows of an arm by group", func() error { _, err := metrics.UpliftAtK(y, u, tr, 0.4, metrics.UpliftByGroup); return err }, "no treated row among the first 0.4 (by_group)"},
		// No responder: every curve is flat, and the perfect one has no area.
		{"flat outcomes", func() error { _, err := metrics.QiniAUC([]float64{0, 0, 0, 0}, u, tr, true); return err }, "no area above the random line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestUpliftMetricsMatchSklift compares the metrics on random data with a numpy restatement
// of scikit-uplift's definitions, testdata/sklift_uplift.py, run by Debian's python3.
func TestUpliftMetricsMatchSklift(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := exec.LookPath(python); err != nil {
		t.Fatalf("this test runs %s with numpy and scikit-learn to restate sklift's metrics: %v", python, err)
	}
	type input struct {
		Y         []float64 `json:"y"`
		Uplift    []float64 `json:"uplift"`
		Treatment []float64 `json:"treatment"`
		K         []float64 `json:"k"`
	}
	type output struct {
		QiniX   []float64 `json:"qini_x"`
		QiniY   []float64 `json:"qini_y"`
		UpliftX []float64 `json:"uplift_x"`
		UpliftY []float64 `json:"uplift_y"`
		// The scores are null where sklift fails or divides by zero.
		QiniAUC           *float64  `json:"qini_auc"`
		QiniAUCNoNegative *float64  `json:"qini_auc_no_negative"`
		UpliftAUC         *float64  `json:"uplift_auc"`
		Overall           []float64 `json:"overall"`
		ByGroup           []float64 `json:"by_group"`
	}
	rng := rand.New(rand.NewPCG(11, 12))
	ks := []float64{0.1, 0.2, 0.3, 0.5}
	var cases []input
	for c, n := range []int{50, 200, 1000, 5000, 5000} {
		in := input{K: ks}
		for range n {
			x := rng.NormFloat64()
			tr := float64(rng.IntN(2))
			p := 0.2 + 0.1*tr*math.Tanh(x)
			u := x + 0.5*rng.NormFloat64()
			if c%2 == 1 {
				u = math.Round(u * 4) // many ties
			}
			in.Y = append(in.Y, float64(b2i(rng.Float64() < p)))
			in.Uplift = append(in.Uplift, u)
			in.Treatment = append(in.Treatment, tr)
		}
		cases = append(cases, in)
	}
	body, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/sklift_uplift.py")
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s testdata/sklift_uplift.py: %v\n%s", python, err, stderr.String())
	}
	var want []output
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	agree := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	for c, in := range cases {
		w := want[c]
		q, err := metrics.QiniCurve(in.Y, in.Uplift, in.Treatment)
		if err != nil {
			t.Fatal(err)
		}
		u, err := metrics.UpliftCurve(in.Y, in.Uplift, in.Treatment)
		if err != nil {
			t.Fatal(err)
		}
		for _, curve := range []struct {
			name string
			got  []pt
			x, y []float64
		}{{"qini", q, w.QiniX, w.QiniY}, {"uplift", u, w.UpliftX, w.UpliftY}} {
			if len(curve.got) != len(curve.x) {
				t.Fatalf("case %d: %s curve has %d points, sklift %d", c, curve.name, len(curve.got), len(curve.x))
			}
			for i, p := range curve.got {
				if p.Targeted != curve.x[i] || !agree(p.Value, curve.y[i]) {
					t.Fatalf("case %d: %s curve point %d = %v, sklift (%v, %v)", c, curve.name, i, p, curve.x[i], curve.y[i])
				}
			}
		}
		qa, qaErr := metrics.QiniAUC(in.Y, in.Uplift, in.Treatment, true)
		qn, qnErr := metrics.QiniAUC(in.Y, in.Uplift, in.Treatment, false)
		ua, uaErr := metrics.UpliftAUC(in.Y, in.Uplift, in.Treatment)
		for _, s := range []struct {
			name string
			got  float64
			err  error
			want *float64
		}{
			{"qini_auc_score", qa, qaErr, w.QiniAUC},
			{"qini_auc_score(negative_effect=False)", qn, qnErr, w.QiniAUCNoNegative},
			{"uplift_auc_score", ua, uaErr, w.UpliftAUC},
		} {
			switch {
			case s.want == nil && s.err == nil:
				t.Errorf("case %d (%d rows): %s = %v; sklift fails", c, len(in.Y), s.name, s.got)
			case s.want != nil && (s.err != nil || !agree(s.got, *s.want)):
				t.Errorf("case %d (%d rows): %s = %v, %v; sklift %v", c, len(in.Y), s.name, s.got, s.err, *s.want)
			}
		}
		for i, k := range ks {
			for _, st := range []struct {
				strategy metrics.UpliftStrategy
				want     float64
			}{{metrics.UpliftOverall, w.Overall[i]}, {metrics.UpliftByGroup, w.ByGroup[i]}} {
				got, err := metrics.UpliftAtK(in.Y, in.Uplift, in.Treatment, k, st.strategy)
				if err != nil || !agree(got, st.want) {
					t.Errorf("case %d: uplift_at_k(k=%v, %v) = %v, %v; sklift %v", c, k, st.strategy, got, err, st.want)
				}
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
