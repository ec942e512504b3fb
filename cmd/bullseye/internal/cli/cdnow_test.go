package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/dev"
	"github.com/bullseye-ml/bullseye/pkg/datasets"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	inferencev1 "github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
	"github.com/bullseye-ml/bullseye/pkg/report"
)

// readCDNOWPurchases reads CDNOW_master.txt (customer id, date YYYYMMDD, CDs, dollars under a
// header) as purchases.
func readCDNOWPurchases(t *testing.T, path string) []clv.Purchase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []clv.Purchase
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if line == 0 {
			continue
		}
		if len(fields) != 4 {
			t.Fatalf("CDNOW line %d: %q", line+1, sc.Text())
		}
		at, err := time.Parse("20060102", fields[1])
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(fields[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, clv.Purchase{Customer: fields[0], At: at, Value: v})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTo reports whether got and want agree to a relative 1e-4 (4 significant digits).
func sameTo(got, want float64) bool { return math.Abs(got-want) <= 1e-4*math.Abs(want) }

// TestCDNOWLifetimeValueThroughTheMesh runs examples/cdnow/train-clv.yaml end to end with the
// CLI against a real mesh: the CDNOW import through ingest, the feature set's BTYD summary at
// 1997-10-01, the training job, the registry, Evaluate on the 39-week holdout and Predict for
// three customers. The BG/NBD and Gamma-Gamma parameters and log-likelihoods must equal to 4
// significant digits those of pkg/ml/clv fitted directly on the summary of the file (in
// weeks), whose own test checks them against an independent scipy fit; the holdout totals
// must be the file's.
func TestCDNOWLifetimeValueThroughTheMesh(t *testing.T) {
	file := datasets.Require(t, "CDNOW_master.txt")
	examples := filepath.Join(repoRoot(t), "examples", "cdnow")
	m := startMesh(t)

	code, out, errOut := bullseye(t, m, "import", "--timeout", "5m", "--mapping", filepath.Join(examples, "mapping.yaml"), file)
	if code != 0 || !strings.Contains(out, "0 rejected") {
		t.Fatalf("import exited %d: %s %s", code, out, errOut)
	}
	if code, _, errOut := bullseye(t, m, "featureset", "apply", filepath.Join(examples, "features.yaml")); code != 0 {
		t.Fatalf("featureset apply exited %d: %s", code, errOut)
	}
	spec := filepath.Join(examples, "train-clv.yaml")
	start := time.Now()
	if code, out, errOut := bullseye(t, m, "train", "--timeout", "10m", spec); code != 0 {
		t.Fatalf("train exited %d:\n%s\n%s", code, out, errOut)
	}
	jobSecs := time.Since(start).Seconds()

	// The reference: pkg/ml/clv on the file's own summary.
	purchases := readCDNOWPurchases(t, file)
	cutoff := time.Date(1997, 10, 1, 0, 0, 0, 0, time.UTC)
	customers, err := clv.Summarize(purchases, cutoff, clv.Week)
	if err != nil {
		t.Fatal(err)
	}
	fitStart := time.Now()
	bg, err := clv.FitBGNBD(customers)
	if err != nil {
		t.Fatal(err)
	}
	gg, err := clv.FitGammaGamma(customers)
	if err != nil {
		t.Fatal(err)
	}
	fitSecs := time.Since(fitStart).Seconds()
	holdout, err := clv.HoldoutPurchases(purchases, cutoff, cutoff.Add(273*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var actual, predicted float64
	for _, c := range customers {
		actual += float64(holdout[c.ID])
		predicted += bg.ExpectedPurchases(c, 39)
	}

	code, out, errOut = bullseye(t, m, "models", "--output", "json", "get", "cdnow-clv")
	if code != 0 {
		t.Fatalf("models get exited %d: %s", code, errOut)
	}
	var got struct {
		ModelVersion struct {
			Task        string `json:"task"`
			TestMetrics []struct {
				Name  string  `json:"name"`
				Value float64 `json:"value"`
			} `json:"testMetrics"`
			ClvParameters struct {
				TimeUnitDays float64 `json:"timeUnitDays"`
				BgNbd        struct {
					R             float64 `json:"r"`
					Alpha         float64 `json:"alpha"`
					A             float64 `json:"a"`
					B             float64 `json:"b"`
					LogLikelihood float64 `json:"logLikelihood"`
					Customers     string  `json:"customers"`
				} `json:"bgNbd"`
				GammaGamma struct {
					P             float64 `json:"p"`
					Q             float64 `json:"q"`
					Gamma         float64 `json:"gamma"`
					LogLikelihood float64 `json:"logLikelihood"`
					Customers     string  `json:"customers"`
				} `json:"gammaGamma"`
			} `json:"clvParameters"`
		} `json:"modelVersion"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("models get printed %q: %v", out, err)
	}
	p := got.ModelVersion.ClvParameters
	t.Logf("BG/NBD through the mesh: r %.6g alpha %.6g a %.6g b %.6g LL %.4f on %s customers", p.BgNbd.R, p.BgNbd.Alpha, p.BgNbd.A, p.BgNbd.B, p.BgNbd.LogLikelihood, p.BgNbd.Customers)
	t.Logf("BG/NBD pkg/ml/clv:        r %.6g alpha %.6g a %.6g b %.6g LL %.4f on %d customers", bg.R, bg.Alpha, bg.A, bg.B, bg.LogLik, bg.Customers)
	t.Logf("Gamma-Gamma through the mesh: p %.6g q %.6g gamma %.6g LL %.4f on %s customers", p.GammaGamma.P, p.GammaGamma.Q, p.GammaGamma.Gamma, p.GammaGamma.LogLikelihood, p.GammaGamma.Customers)
	t.Logf("Gamma-Gamma pkg/ml/clv:        p %.6g q %.6g gamma %.6g LL %.4f on %d customers", gg.P, gg.Q, gg.Gamma, gg.LogLik, gg.Customers)
	// One line for make bench-train: the training job through the mesh (training set, fits,
	// registration) and the two fits alone in this process, with the mesh's parameters.
	t.Logf("cdnow-clv job_seconds=%.3f fit_seconds=%.3f r=%.10g alpha=%.10g a=%.10g b=%.10g ll=%.6f p=%.10g q=%.10g gamma=%.10g gll=%.6f",
		jobSecs, fitSecs, p.BgNbd.R, p.BgNbd.Alpha, p.BgNbd.A, p.BgNbd.B, p.BgNbd.LogLikelihood,
		p.GammaGamma.P, p.GammaGamma.Q, p.GammaGamma.Gamma, p.GammaGamma.LogLikelihood)
	if got.ModelVersion.Task != "TASK_KIND_CUSTOMER_LIFETIME_VALUE" || p.TimeUnitDays != 7 {
		t.Errorf("task %s, time unit %v days", got.ModelVersion.Task, p.TimeUnitDays)
	}
	if p.BgNbd.Customers != strconv.Itoa(len(customers)) || len(customers) != 23570 {
		t.Errorf("BG/NBD fitted %s customers; the file has %d (want 23,570)", p.BgNbd.Customers, len(customers))
	}
	if p.GammaGamma.Customers != strconv.Itoa(gg.Customers) {
		t.Errorf("Gamma-Gamma fitted %s customers, want %d", p.GammaGamma.Customers, gg.Customers)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"r", p.BgNbd.R, bg.R}, {"alpha", p.BgNbd.Alpha, bg.Alpha}, {"a", p.BgNbd.A, bg.A}, {"b", p.BgNbd.B, bg.B},
		{"BG/NBD log-likelihood", p.BgNbd.LogLikelihood, bg.LogLik},
		{"p", p.GammaGamma.P, gg.P}, {"q", p.GammaGamma.Q, gg.Q}, {"gamma", p.GammaGamma.Gamma, gg.Gamma},
		{"Gamma-Gamma log-likelihood", p.GammaGamma.LogLikelihood, gg.LogLik},
	} {
		if !sameTo(c.got, c.want) {
			t.Errorf("%s through the mesh %.6g, pkg/ml/clv %.6g: not the same to 4 significant digits", c.name, c.got, c.want)
		}
	}
	metrics := map[string]float64{}
	for _, mt := range got.ModelVersion.TestMetrics {
		metrics[mt.Name] = mt.Value
	}
	t.Logf("holdout (39 weeks): actual %v purchases, predicted %.2f (pkg/ml/clv %.2f), MAE %.4f", metrics["holdout_purchases_actual"],
		metrics["holdout_purchases_predicted"], predicted, metrics["mae"])
	if metrics["holdout_purchases_actual"] != actual || !sameTo(metrics["holdout_purchases_predicted"], predicted) || !(metrics["mae"] > 0) {
		t.Errorf("holdout metrics %v, want %v actual and %.2f predicted purchases", metrics, actual, predicted)
	}
	if code, out, _ := bullseye(t, m, "models", "get", "cdnow-clv"); code != 0 || !strings.Contains(out, "BG/NBD in units of 7 days (23570 customers") ||
		!strings.Contains(out, "Gamma-Gamma (") {
		t.Errorf("models get printed:\n%s", out)
	}

	// The report draws the holdout purchases by calibration frequency.
	reports := t.TempDir()
	if code, stdout, errOut := bullseye(t, m, "report", "--out", reports, "cdnow-clv"); code != 0 {
		t.Errorf("report: exit %d, %q %s", code, stdout, errOut)
	} else if html, err := os.ReadFile(filepath.Join(reports, "cdnow-clv-v1.html")); err != nil ||
		strings.Count(string(html), "data:image/png;base64,") != 2 || !strings.Contains(string(html), "Holdout purchases by calibration frequency (n = 23,570)") ||
		!strings.Contains(string(html), "Cumulative repeat purchases (n = 23,570 customers)") {
		t.Errorf("the report lacks the repeat-purchase curve or the holdout purchases by calibration frequency (err %v)", err)
	}
	checkRepeatCurve(t, m, purchases, customers, bg.BGNBDParams)

	// Evaluate on the holdout: the metrics training recorded.
	code, out, errOut = bullseye(t, m, "evaluate", "--output", "json", "cdnow-clv@1", "--test", spec)
	if code != 0 {
		t.Fatalf("evaluate exited %d: %s %s", code, out, errOut)
	}
	var ev struct {
		Metrics []struct {
			Name  string  `json:"name"`
			Value float64 `json:"value"`
		} `json:"metrics"`
		RowsLabelled string `json:"rowsLabelled"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("evaluate printed %q: %v", out, err)
	}
	if ev.RowsLabelled != "23570" || len(ev.Metrics) < 4 {
		t.Errorf("evaluate: %s", out)
	}
	for _, mt := range ev.Metrics {
		if want, ok := metrics[mt.Name]; !ok || mt.Value != want {
			t.Errorf("evaluate %s %v, training recorded %v", mt.Name, mt.Value, want)
		}
	}

	// A label that does not count holdout purchases cannot evaluate it.
	if code, out, errOut := bullseye(t, m, "evaluate", "cdnow-clv@1", "--test", filepath.Join(examples, "train-repurchase.yaml")); code == 0 ||
		!strings.Contains(errOut, "OUTCOME_AGGREGATION_DISTINCT_DAYS") {
		t.Errorf("evaluate on a yes/no label: exit %d, %s %s", code, out, errOut)
	}

	// Predict: three customers by id, their BTYD summary read online (as of now), and one
	// customer's calibration summary given inline.
	if code, out, errOut := bullseye(t, m, "promote", "cdnow-clv", "--version", "1"); code != 0 {
		t.Fatalf("promote exited %d: %s %s", code, out, errOut)
	}
	ids := []string{"00001", "00002", "00003"}
	args := []string{"predict", "--output", "json", "cdnow-clv"}
	for _, id := range ids {
		args = append(args, "--user", id)
	}
	now := time.Now()
	code, out, errOut = bullseye(t, m, args...)
	if code != 0 {
		t.Fatalf("predict exited %d: %s %s", code, out, errOut)
	}
	type number struct {
		Number *float64 `json:"number"`
	}
	var reply struct {
		Predictions []struct {
			Status  string            `json:"status"`
			Score   float64           `json:"score"`
			Outputs map[string]number `json:"outputs"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal([]byte(out), &reply); err != nil || len(reply.Predictions) != 3 {
		t.Fatalf("predict printed %q: %v", out, err)
	}
	current, err := clv.Summarize(purchases, now, clv.Week)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]clv.Customer{}
	for _, c := range current {
		byID[c.ID] = c
	}
	horizon := clv.Horizon{Months: 12, MonthlyDiscount: 0.01, UnitsPerMonth: clv.WeeksPerMonth}
	check := func(who string, o map[string]number, score float64, c clv.Customer, tol float64) {
		t.Helper()
		value, err := clv.CLV(bg.BGNBDParams, gg.GammaGammaParams, c, horizon)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]float64{
			"expected_purchases":   bg.ExpectedPurchases(c, 12*clv.WeeksPerMonth),
			"p_alive":              bg.ProbAlive(c),
			"expected_order_value": gg.ExpectedAverageValue(c),
			"clv":                  value,
		}
		line := who + ":"
		for _, name := range []string{"expected_purchases", "p_alive", "expected_order_value", "clv"} {
			v := o[name].Number
			if v == nil {
				t.Errorf("%s: no output %s in %v", who, name, o)
				continue
			}
			line += fmt.Sprintf(" %s %.6g", name, *v)
			if math.Abs(*v-want[name]) > tol*math.Max(1e-3, math.Abs(want[name])) {
				t.Errorf("%s: %s %v, want %v", who, name, *v, want[name])
			}
		}
		if score != *o["clv"].Number {
			t.Errorf("%s: score %v, clv %v", who, score, *o["clv"].Number)
		}
		t.Log(line)
	}
	for i, pr := range reply.Predictions {
		if pr.Status != "PREDICTION_STATUS_OK" {
			t.Fatalf("customer %s: %s", ids[i], out)
		}
		// The parameters agree to ~1e-6 or better; the age runs on while the test does.
		check("customer "+ids[i]+" now", pr.Outputs, pr.Score, byID[ids[i]], 1e-3)
	}

	var c clv.Customer
	for _, x := range customers {
		if x.Frequency >= 2 {
			c = x
			break
		}
	}
	code, out, errOut = bullseye(t, m, "predict", "--output", "json", "cdnow-clv",
		"--set", fmt.Sprintf("rfm_frequency=%d", int(c.Frequency)), "--set", fmt.Sprintf("rfm_recency_days=%v", math.Round(c.Recency*7)),
		"--set", fmt.Sprintf("rfm_age_days=%v", math.Round(c.T*7)), "--set", fmt.Sprintf("rfm_monetary_mean_repeat=%v", c.Monetary))
	if code != 0 {
		t.Fatalf("predict inline exited %d: %s %s", code, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), &reply); err != nil || len(reply.Predictions) != 1 || reply.Predictions[0].Status != "PREDICTION_STATUS_OK" {
		t.Fatalf("predict inline printed %q: %v", out, err)
	}
	check("customer "+c.ID+" at the cutoff (inline)", reply.Predictions[0].Outputs, reply.Predictions[0].Score, c, 1e-4)

	// The same customer through the Open Inference Protocol: one FP64 tensor per input, the
	// named outputs as tensors.
	inline := reply.Predictions[0].Outputs
	conn, err := mesh.DialAddr(context.Background(), m.Addr("serving"), mesh.TLSConfig{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tensor := func(name string, v float64) *inferencev1.ModelInferRequest_InferInputTensor {
		return &inferencev1.ModelInferRequest_InferInputTensor{Name: name, Datatype: "FP64", Shape: []int64{1},
			Contents: &inferencev1.InferTensorContents{Fp64Contents: []float64{v}}}
	}
	ictx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ir, err := inferencev1.NewGRPCInferenceServiceClient(conn).ModelInfer(ictx, &inferencev1.ModelInferRequest{ModelName: "cdnow-clv",
		Inputs: []*inferencev1.ModelInferRequest_InferInputTensor{tensor("rfm_frequency", c.Frequency), tensor("rfm_recency_days", math.Round(c.Recency*7)),
			tensor("rfm_age_days", math.Round(c.T*7)), tensor("rfm_monetary_mean_repeat", c.Monetary)}})
	if err != nil {
		t.Fatalf("ModelInfer: %v", err)
	}
	seen := map[string]bool{}
	for _, o := range ir.GetOutputs() {
		seen[o.GetName()] = true
		want := reply.Predictions[0].Score
		if o.GetName() != "score" {
			want = *inline[o.GetName()].Number
		}
		if got := o.GetContents().GetFp64Contents(); len(got) != 1 || got[0] != want {
			t.Errorf("ModelInfer output %s = %v, Predict gave %v", o.GetName(), got, want)
		}
	}
	for _, name := range []string{"score", "expected_purchases", "p_alive", "expected_order_value", "clv"} {
		if !seen[name] {
			t.Errorf("ModelInfer gave no output %s: %v", name, ir.GetOutputs())
		}
	}

	// ScoreAudience ranks every customer by CLV: the top ten, best first, are the ten highest
	// values of the model applied to every customer's summary now.
	audience := filepath.Join(t.TempDir(), "top.csv")
	if code, out, errOut := bullseye(t, m, "audience", "cdnow-clv", "--top", "10", "--out", audience); code != 0 {
		t.Fatalf("audience exited %d: %s %s", code, out, errOut)
	}
	raw, err := os.ReadFile(audience)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var values []float64
	for _, c := range current {
		v, err := clv.CLV(bg.BGNBDParams, gg.GammaGammaParams, c, horizon)
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, v)
	}
	slices.Sort(values)
	slices.Reverse(values)
	if len(rows) != 11 {
		t.Fatalf("the audience file has %d lines, want a header and 10 customers:\n%s", len(rows), raw)
	}
	for i, row := range rows[1:] {
		f := strings.Split(row, ",")
		score, err := strconv.ParseFloat(f[1], 64)
		if err != nil || math.Abs(score-values[i]) > 1e-3*values[i] {
			t.Errorf("audience row %d %q: score %v, want the %d-th highest CLV %v", i+1, row, score, i+1, values[i])
		}
	}
	t.Logf("top CLV over 12 months: %s (%.2f)", strings.Split(rows[1], ",")[0], values[0])

	// A customer whose summary no model can take is refused, naming the feature.
	code, out, _ = bullseye(t, m, "predict", "--output", "json", "--allow-unscored", "cdnow-clv",
		"--set", "rfm_frequency=1", "--set", "rfm_recency_days=10", "--set", "rfm_age_days=0", "--set", "rfm_monetary_mean_repeat=5")
	if code != 0 || !strings.Contains(out, "PREDICTION_STATUS_INVALID") || !strings.Contains(out, "rfm_") {
		t.Errorf("predict with a zero age: exit %d, %s", code, out)
	}
}

// checkRepeatCurve compares the report's cumulative repeat-purchase curve, built from the
// feature service, with one computed from the file: at each week from 1997-01-01 to
// 1998-07-01 the cohort's repeat purchases so far, and the sum of BG/NBD's E[X(t)] over the
// weeks each customer has been one.
func checkRepeatCurve(t *testing.T, m *dev.Mesh, purchases []clv.Purchase, calibration []clv.Customer, bg clv.BGNBDParams) {
	t.Helper()
	env := &Env{etcd: strings.Join(m.EtcdEndpoints, ","), tls: mesh.TLSConfig{Insecure: true}, timeout: time.Minute}
	defer func() {
		if env.etcdClient != nil {
			env.etcdClient.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := env.dial(ctx, "training")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := trainingv1.NewTrainingServiceClient(conn).GetModel(ctx, &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: "cdnow-clv",
		Selector: &commonv1.ModelRef_Version{Version: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	mv := got.GetModelVersion()
	c, err := repeatCurve(ctx, env, mv, report.TrainingData(mv).GetTrainingSet())
	if err != nil || c == nil {
		t.Fatalf("repeat curve: %v, %v", c, err)
	}
	if len(c.Times) != 78 || c.Calibration != 39 || c.Customers != len(calibration) || c.Unit != "weeks" {
		t.Fatalf("repeat curve of %d points, calibration to week %v, %d customers in %s", len(c.Times), c.Calibration, c.Customers, c.Unit)
	}
	start := time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoff := time.Date(1997, 10, 1, 0, 0, 0, 0, time.UTC)
	for k := range 78 {
		at := start.Add(time.Duration(k+1) * clv.Week)
		sofar, err := clv.Summarize(purchases, at, clv.Week)
		if err != nil {
			t.Fatal(err)
		}
		var actual, expected float64
		for _, x := range sofar {
			actual += x.Frequency
		}
		for _, x := range calibration {
			if since := at.Sub(cutoff).Hours()/24/7 + x.T; since > 0 {
				expected += bg.ExpectedRepeatPurchases(since)
			}
		}
		if c.Actual[k] != actual || math.Abs(c.Expected[k]-expected) > 1e-6*math.Max(1, expected) {
			t.Errorf("week %d: actual %v expected %v, from the file %v and %v", k+1, c.Actual[k], c.Expected[k], actual, expected)
		}
	}
	t.Logf("cumulative repeat purchases: week 39 actual %.0f expected %.1f; week 78 actual %.0f expected %.1f",
		c.Actual[38], c.Expected[38], c.Actual[77], c.Expected[77])
}
