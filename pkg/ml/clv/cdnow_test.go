package clv

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
)

var (
	cdnowCutoff = time.Date(1997, 10, 1, 0, 0, 0, 0, time.UTC)
	cdnowEnd    = time.Date(1998, 7, 1, 0, 0, 0, 0, time.UTC)
)

// readCDNOW reads CDNOW_master.txt: customer id, date (YYYYMMDD), number of CDs and
// dollar value, whitespace-separated under a header.
func readCDNOW(tb testing.TB) (path string, purchases []Purchase) {
	tb.Helper()
	path = datasets.Require(tb, "CDNOW_master.txt")
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if line == 0 {
			if strings.Join(fields, " ") != "customer_id date number_of_cds dollar_value" {
				tb.Fatalf("CDNOW header %q", sc.Text())
			}
			continue
		}
		if len(fields) != 4 {
			tb.Fatalf("CDNOW line %d: %q", line+1, sc.Text())
		}
		at, err := time.Parse("20060102", fields[1])
		if err != nil {
			tb.Fatalf("CDNOW line %d: %v", line+1, err)
		}
		v, err := strconv.ParseFloat(fields[3], 64)
		if err != nil {
			tb.Fatalf("CDNOW line %d: %v", line+1, err)
		}
		purchases = append(purchases, Purchase{Customer: fields[0], At: at, Value: v})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return path, purchases
}

func cdnowCalibration(tb testing.TB) (path string, purchases []Purchase, customers []Customer) {
	tb.Helper()
	path, purchases = readCDNOW(tb)
	customers, err := Summarize(purchases, cdnowCutoff, Week)
	if err != nil {
		tb.Fatal(err)
	}
	return path, purchases, customers
}

// cdnowReference is the output of testdata/clv_reference.py.
type cdnowReference struct {
	Summary struct {
		Customers        int     `json:"customers"`
		Frequency        float64 `json:"frequency"`
		Recency          float64 `json:"recency"`
		T                float64 `json:"T"`
		Monetary         float64 `json:"monetary"`
		HoldoutCustomers int     `json:"holdout_customers"`
		HoldoutPurchases int     `json:"holdout_purchases"`
	} `json:"summary"`
	BGNBD struct {
		R       float64 `json:"r"`
		Alpha   float64 `json:"alpha"`
		A       float64 `json:"a"`
		B       float64 `json:"b"`
		LogLik  float64 `json:"loglik"`
		Seconds float64 `json:"seconds"`
	} `json:"bgnbd"`
	GammaGamma struct {
		P         float64 `json:"p"`
		Q         float64 `json:"q"`
		Gamma     float64 `json:"gamma"`
		LogLik    float64 `json:"loglik"`
		Customers int     `json:"customers"`
		Seconds   float64 `json:"seconds"`
	} `json:"gammagamma"`
	Timed struct {
		Seconds    float64 `json:"seconds"`
		CPUSeconds float64 `json:"cpu_seconds"`
		Method     string  `json:"method"`
	} `json:"timed"`
	Predictions []struct {
		ID         string  `json:"id"`
		Expected39 float64 `json:"expected_39"`
		PAlive     float64 `json:"p_alive"`
		AOV        float64 `json:"aov"`
		CLV12      float64 `json:"clv_12"`
	} `json:"predictions"`
	ExpectedRepeat map[string]float64 `json:"expected_repeat"`
}

func runReference(t *testing.T, path string) *cdnowReference {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatalf("the scipy reference needs /usr/bin/python3 with Debian's python3-scipy and python3-pandas (scripts/apt.sh python3-scipy python3-pandas): %v", err)
	}
	cmd := exec.Command("/usr/bin/python3", "testdata/clv_reference.py", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testdata/clv_reference.py (needs python3-scipy, python3-pandas; scripts/apt.sh installs them): %v\n%s", err, stderr.String())
	}
	var ref cdnowReference
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatalf("reading the reference's output: %v\n%s", err, out)
	}
	return &ref
}

// agreement returns the relative difference of got and want and the number of
// significant digits in which they agree.
func agreement(got, want float64) (rel, digits float64) {
	rel = math.Abs(got-want) / math.Abs(want)
	return rel, -math.Log10(rel)
}

// TestCDNOW fits both models to the CDNOW calibration period (purchases before
// 1997-10-01, in weeks) and compares them with an independent scipy maximum-likelihood
// fit of the same data (testdata/clv_reference.py): the summary, the parameters to 4
// significant digits, the log-likelihoods, and the predictions at scipy's parameters.
func TestCDNOW(t *testing.T) {
	path, purchases, customers := cdnowCalibration(t)
	ref := runReference(t, path)

	var sumX, sumTx, sumT, sumM float64
	for _, c := range customers {
		sumX += c.Frequency
		sumTx += c.Recency
		sumT += c.T
		sumM += c.Monetary
	}
	if len(customers) != ref.Summary.Customers || len(customers) != 23570 {
		t.Fatalf("%d customers, reference %d, want 23570", len(customers), ref.Summary.Customers)
	}
	for _, s := range []struct {
		name      string
		got, want float64
	}{{"Frequency", sumX, ref.Summary.Frequency}, {"Recency", sumTx, ref.Summary.Recency},
		{"T", sumT, ref.Summary.T}, {"Monetary", sumM, ref.Summary.Monetary}} {
		if rel, _ := agreement(s.got, s.want); rel > 1e-12 {
			t.Errorf("sum of %s = %.12g, reference %.12g", s.name, s.got, s.want)
		}
	}
	holdout, err := HoldoutPurchases(purchases, cdnowCutoff, cdnowEnd)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range holdout {
		total += n
	}
	if len(holdout) != ref.Summary.HoldoutCustomers || total != ref.Summary.HoldoutPurchases {
		t.Errorf("holdout: %d purchases by %d customers, reference %d by %d",
			total, len(holdout), ref.Summary.HoldoutPurchases, ref.Summary.HoldoutCustomers)
	}

	bg, err := FitBGNBD(customers)
	if err != nil {
		t.Fatal(err)
	}
	gg, err := FitGammaGamma(customers)
	if err != nil {
		t.Fatal(err)
	}
	if gg.Customers != ref.GammaGamma.Customers {
		t.Errorf("Gamma-Gamma fitted %d customers, reference %d", gg.Customers, ref.GammaGamma.Customers)
	}
	for _, p := range []struct {
		name      string
		got, want float64
		se        float64
	}{
		{"BG/NBD r", bg.R, ref.BGNBD.R, bg.StdErr.R},
		{"BG/NBD α", bg.Alpha, ref.BGNBD.Alpha, bg.StdErr.Alpha},
		{"BG/NBD a", bg.A, ref.BGNBD.A, bg.StdErr.A},
		{"BG/NBD b", bg.B, ref.BGNBD.B, bg.StdErr.B},
		{"Gamma-Gamma p", gg.P, ref.GammaGamma.P, gg.StdErr.P},
		{"Gamma-Gamma q", gg.Q, ref.GammaGamma.Q, gg.StdErr.Q},
		{"Gamma-Gamma γ", gg.Gamma, ref.GammaGamma.Gamma, gg.StdErr.Gamma},
	} {
		rel, digits := agreement(p.got, p.want)
		t.Logf("%-14s Go %.8g (SE %.3g)  scipy %.8g  agree to %.1f digits", p.name, p.got, p.se, p.want, digits)
		if rel > 5e-5 || !(p.se > 0) {
			t.Errorf("%s = %.8g (SE %v), scipy %.8g: want 4 significant digits", p.name, p.got, p.se, p.want)
		}
	}
	for _, l := range []struct {
		name      string
		got, want float64
	}{{"BG/NBD", bg.LogLik, ref.BGNBD.LogLik}, {"Gamma-Gamma", gg.LogLik, ref.GammaGamma.LogLik}} {
		rel, digits := agreement(l.got, l.want)
		t.Logf("%-11s log-likelihood Go %.10g  scipy %.10g  agree to %.1f digits", l.name, l.got, l.want, digits)
		if rel > 1e-9 {
			t.Errorf("%s log-likelihood %.10g, scipy %.10g", l.name, l.got, l.want)
		}
	}
	t.Logf("scipy reference fits %.2f s + %.2f s; %s: %.3f s (%.3f s CPU)",
		ref.BGNBD.Seconds, ref.GammaGamma.Seconds, ref.Timed.Method, ref.Timed.Seconds, ref.Timed.CPUSeconds)

	// Predictions at scipy's estimates, against lifetimes' formulas in scipy.
	rb := BGNBDParams{R: ref.BGNBD.R, Alpha: ref.BGNBD.Alpha, A: ref.BGNBD.A, B: ref.BGNBD.B}
	rg := GammaGammaParams{P: ref.GammaGamma.P, Q: ref.GammaGamma.Q, Gamma: ref.GammaGamma.Gamma}
	byID := map[string]Customer{}
	for _, c := range customers {
		byID[c.ID] = c
	}
	close := func(what string, got, want float64) {
		t.Helper()
		if rel, _ := agreement(got, want); !(rel < 1e-9) {
			t.Errorf("%s = %.12g, scipy %.12g", what, got, want)
		}
	}
	for _, p := range ref.Predictions {
		c, ok := byID[p.ID]
		if !ok {
			t.Fatalf("customer %s missing from the summary", p.ID)
		}
		close("ExpectedPurchases("+p.ID+", 39)", rb.ExpectedPurchases(c, 39), p.Expected39)
		close("ProbAlive("+p.ID+")", rb.ProbAlive(c), p.PAlive)
		close("ExpectedAverageValue("+p.ID+")", rg.ExpectedAverageValue(c), p.AOV)
		v, err := CLV(rb, rg, c, Horizon{Months: 12, MonthlyDiscount: 0.01, UnitsPerMonth: WeeksPerMonth})
		if err != nil {
			t.Fatal(err)
		}
		close("CLV("+p.ID+")", v, p.CLV12)
	}
	for _, w := range []float64{39, 78} {
		close("ExpectedRepeatPurchases", rb.ExpectedRepeatPurchases(w), ref.ExpectedRepeat[strconv.Itoa(int(w))])
	}

	// How the fitted model does on the holdout weeks, for the log.
	weeks := float64(cdnowEnd.Sub(cdnowCutoff)) / float64(Week)
	predicted := 0.0
	for _, c := range customers {
		predicted += bg.ExpectedPurchases(c, weeks)
	}
	t.Logf("holdout %.0f weeks: %d purchase days, BG/NBD expects %.0f", weeks, total, predicted)
}

// BenchmarkCLVCDNOW fits BG/NBD and Gamma-Gamma, with their standard errors, to the
// CDNOW calibration summary (23,570 customers, weeks).
func BenchmarkCLVCDNOW(b *testing.B) {
	_, _, customers := cdnowCalibration(b)
	for b.Loop() {
		if _, err := FitBGNBD(customers); err != nil {
			b.Fatal(err)
		}
		if _, err := FitGammaGamma(customers); err != nil {
			b.Fatal(err)
		}
	}
}
