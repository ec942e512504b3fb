package report_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/html"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var generated = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

// write renders a report and returns the HTML.
func write(t *testing.T, mv *modelv1.ModelVersion, opts ...report.Option) string {
	t.Helper()
	var buf bytes.Buffer
	opts = append([]report.Option{report.WithGeneratedAt(generated)}, opts...)
	if err := report.Write(&buf, mv, opts...); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.String()
}

// embedded is one <img> of a report.
type embedded struct {
	figureID, alt, caption string
	width, height          string
	png                    []byte
}

// parse parses the HTML strictly enough to walk it and returns every embedded image and the
// document.
func parse(t *testing.T, doc string) (*html.Node, []embedded) {
	t.Helper()
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("parse html: %v", err)
	}
	var imgs []embedded
	for n := range root.Descendants() {
		if n.Type != html.ElementNode || n.Data != "img" {
			continue
		}
		e := embedded{alt: attr(n, "alt"), width: attr(n, "width"), height: attr(n, "height")}
		if p := n.Parent; p != nil && p.Data == "figure" {
			e.figureID = attr(p, "id")
			for c := range p.Descendants() {
				if c.Type == html.ElementNode && c.Data == "figcaption" {
					e.caption = textOf(c)
				}
			}
		}
		src := attr(n, "src")
		data, ok := strings.CutPrefix(src, "data:image/png;base64,")
		if !ok {
			t.Fatalf("image %q is not an embedded PNG: src starts %.40q", e.alt, src)
		}
		e.png, err = base64.StdEncoding.DecodeString(data)
		if err != nil {
			t.Fatalf("image %q: base64: %v", e.alt, err)
		}
		imgs = append(imgs, e)
	}
	return root, imgs
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// byID returns the element with an id.
func byID(root *html.Node, id string) *html.Node {
	for n := range root.Descendants() {
		if n.Type == html.ElementNode && attr(n, "id") == id {
			return n
		}
	}
	return nil
}

// tables returns the rows of each table under n, as cell texts.
func tables(n *html.Node) [][][]string {
	var out [][][]string
	for t := range n.Descendants() {
		if t.Type != html.ElementNode || t.Data != "table" {
			continue
		}
		var rows [][]string
		for r := range t.Descendants() {
			if r.Type != html.ElementNode || r.Data != "tr" {
				continue
			}
			var cells []string
			for c := r.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
					cells = append(cells, textOf(c))
				}
			}
			rows = append(rows, cells)
		}
		out = append(out, rows)
	}
	return out
}

// The pixel classes the plot checks use: the plot background is white, axes and text are
// near black, grid lines light grey, and data (curves, bars, points) is coloured.
func lum(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 257
}

func dark(c color.Color) bool { return lum(c) < 100 }

func coloured(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	hi, lo := max(r, g, b)>>8, min(r, g, b)>>8
	return hi-lo >= 40
}

func isBackground(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 >= 250 && g>>8 >= 250 && b>>8 >= 250
}

// plotArea finds the axes of a plot: the y axis is the leftmost long vertical run of dark
// pixels, the x axis the lowest long horizontal one. It returns the data area they bound.
func plotArea(t *testing.T, name string, img image.Image) image.Rectangle {
	t.Helper()
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	axisX, top := -1, 0
	for x := range w / 2 {
		run, best, bestEnd := 0, 0, 0
		for y := range h {
			if dark(img.At(x, y)) {
				run++
				if run > best {
					best, bestEnd = run, y
				}
			} else {
				run = 0
			}
		}
		if float64(best) >= 0.45*float64(h) {
			axisX, top = x, bestEnd-best+1
			break
		}
	}
	axisY, right := -1, 0
	for y := h - 1; y >= h/2; y-- {
		run, best, bestEnd := 0, 0, 0
		for x := range w {
			if dark(img.At(x, y)) {
				run++
				if run > best {
					best, bestEnd = run, x
				}
			} else {
				run = 0
			}
		}
		if float64(best) >= 0.45*float64(w) {
			axisY, right = y, bestEnd
			break
		}
	}
	if axisX < 0 || axisY < 0 {
		t.Fatalf("%s: no axis lines found (y axis at x=%d, x axis at y=%d)", name, axisX, axisY)
	}
	return image.Rect(axisX+4, top, right, axisY-3)
}

// checkPlot checks that a PNG is a real plot: the expected size, not blank, axes with tick
// labels beside them, and data drawn across the plot area.
func checkPlot(t *testing.T, name string, data []byte, wantW, wantH int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: decode png: %v", name, err)
	}
	b := img.Bounds()
	if b.Dx() != wantW || b.Dy() != wantH {
		t.Fatalf("%s: image is %d×%d, want %d×%d", name, b.Dx(), b.Dy(), wantW, wantH)
	}
	colours := map[color.RGBA]bool{}
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			r, g, bl, a := c.RGBA()
			colours[color.RGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(bl >> 8), A: uint8(a >> 8)}] = true
			if !isBackground(c) {
				ink++
			}
		}
	}
	if len(colours) < 64 {
		t.Errorf("%s: only %d distinct colours: blank or nearly so", name, len(colours))
	}
	if share := float64(ink) / float64(b.Dx()*b.Dy()); share < 0.04 {
		t.Errorf("%s: only %.1f%% of the pixels are not background", name, 100*share)
	}
	area := plotArea(t, name, img)
	if area.Dx() < wantW/2 || area.Dy() < wantH/2 {
		t.Fatalf("%s: plot area %v is too small for a %d×%d image", name, area, wantW, wantH)
	}
	// Tick labels: dark text left of the y axis and below the x axis.
	countDark := func(r image.Rectangle) int {
		n := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if dark(img.At(x, y)) {
					n++
				}
			}
		}
		return n
	}
	if n := countDark(image.Rect(0, area.Min.Y, area.Min.X-8, area.Max.Y)); n < 100 {
		t.Errorf("%s: %d dark pixels left of the y axis: no tick labels or axis label", name, n)
	}
	if n := countDark(image.Rect(area.Min.X, area.Max.Y+8, area.Max.X, b.Max.Y)); n < 100 {
		t.Errorf("%s: %d dark pixels below the x axis: no tick labels or axis label", name, n)
	}
	// Data: coloured pixels along most columns and many rows of the plot area.
	cols, rows := 0, map[int]bool{}
	for x := area.Min.X; x < area.Max.X; x++ {
		found := false
		for y := area.Min.Y; y < area.Max.Y; y++ {
			if coloured(img.At(x, y)) {
				found = true
				rows[y] = true
			}
		}
		if found {
			cols++
		}
	}
	if share := float64(cols) / float64(area.Dx()); share < 0.5 {
		t.Errorf("%s: data drawn in only %.0f%% of the plot area's columns", name, 100*share)
	}
	if share := float64(len(rows)) / float64(area.Dy()); share < 0.2 {
		t.Errorf("%s: data drawn in only %.0f%% of the plot area's rows", name, 100*share)
	}
}

func figureIDs(imgs []embedded) []string {
	var ids []string
	for _, e := range imgs {
		ids = append(ids, e.figureID)
	}
	return ids
}

func checkFigures(t *testing.T, imgs []embedded, want []string, w, h int) {
	t.Helper()
	if got := figureIDs(imgs); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("figures %v, want %v", got, want)
	}
	for _, e := range imgs {
		if e.alt == "" || e.caption == "" {
			t.Errorf("%s: alt %q, caption %q: both should be set", e.figureID, e.alt, e.caption)
		}
		if e.width != fmt.Sprint(w) || e.height != fmt.Sprint(h) {
			t.Errorf("%s: img width/height %s×%s, want %d×%d", e.figureID, e.width, e.height, w, h)
		}
		checkPlot(t, e.figureID, e.png, w, h)
	}
}

func TestClassifierReportPlots(t *testing.T) {
	mv := classifierVersion(t)
	root, imgs := parse(t, write(t, mv))
	checkFigures(t, imgs, []string{"fig-roc", "fig-gains", "fig-lift", "fig-calibration"}, 640, 480)
	auc := fmt.Sprintf("%.4f", mv.GetTestMetrics()[0].GetValue())
	for _, e := range imgs {
		if !strings.Contains(e.alt, "test set, n = 8,238") {
			t.Errorf("%s: title %q does not name the test set and its size", e.figureID, e.alt)
		}
	}
	if c := imgs[1].caption; !strings.Contains(c, "top 10%") {
		t.Errorf("gains caption %q does not read out the top decile", c)
	}
	// The lift and calibration tables follow the plots.
	for _, id := range []string{"lift-table", "calibration-table"} {
		if byID(root, id) == nil {
			t.Errorf("no #%s", id)
		}
	}
	plots := tables(byID(root, "plots"))
	if len(plots) != 2 || len(plots[0]) != 11 || len(plots[1]) != 11 {
		t.Fatalf("plot tables: %d tables, want the lift table (header + 10 deciles) and the calibration table (header + 10 bins)", len(plots))
	}
	lift1 := mv.GetTestCurves().GetLift()[0]
	if got, want := plots[0][1][4], fmt.Sprintf("%.2f", lift1.GetLift()); got != want {
		t.Errorf("top decile lift cell %q, want %q", got, want)
	}
	if !strings.Contains(textOf(byID(root, "summary")), auc) {
		t.Errorf("header does not show the test AUC %s", auc)
	}
}

func TestRegressionReportPlots(t *testing.T) {
	mv, ev := regressionVersion(t)
	root, imgs := parse(t, write(t, mv, report.WithEvaluation(ev)))
	checkFigures(t, imgs, []string{"fig-predicted-vs-actual", "fig-residuals"}, 640, 480)
	for _, e := range imgs {
		if !strings.Contains(e.caption, "a random 3,000 of 5,917 rows") {
			t.Errorf("%s: caption %q does not say the plot shows a 3,000-row subsample of the 5,917 labelled rows", e.figureID, e.caption)
		}
		if !strings.Contains(e.alt, "evaluation, n = 5,917") {
			t.Errorf("%s: title %q", e.figureID, e.alt)
		}
	}
	// The evaluation's metrics form their own column.
	m := tables(byID(root, "metrics"))[0]
	if got := strings.Join(m[0], " | "); got != "Metric | Test | Cross-validation (mean ± sd) | Evaluation (5,917 rows)" {
		t.Errorf("metrics header %q", got)
	}
	if byID(root, "lift-table") != nil {
		t.Error("a regression report has a lift table")
	}
}

func TestRegressionWithPredictions(t *testing.T) {
	mv, _ := regressionVersion(t)
	pred, act, _ := spendSample(20000, 5)
	_, imgs := parse(t, write(t, mv, report.WithPredictions(pred, act), report.WithMaxPoints(800),
		report.WithImageSize(800, 600), report.WithTarget("spend in the next 39 weeks", "USD")))
	checkFigures(t, imgs, []string{"fig-predicted-vs-actual", "fig-residuals"}, 800, 600)
	if c := imgs[0].caption; !strings.Contains(c, "a random 800 of 20,000 rows") {
		t.Errorf("caption %q", c)
	}
}

func TestRegressionWithoutRows(t *testing.T) {
	mv, _ := regressionVersion(t)
	root, imgs := parse(t, write(t, mv))
	if len(imgs) != 0 {
		t.Fatalf("%d images without evaluation rows", len(imgs))
	}
	if txt := textOf(byID(root, "plots")); !strings.Contains(txt, "report.WithEvaluation") {
		t.Errorf("the plots section does not say how to get the plots: %q", txt)
	}
}

func TestClassifierWithoutTestSplitUsesEvaluation(t *testing.T) {
	mv := classifierVersion(t)
	y, p := scoredSample(3000, 11)
	ms, curves := binaryEvaluation(t, y, p)
	mv.TestMetrics, mv.TestCurves = nil, nil
	mv.Lineage.TestRows = 0
	root, imgs := parse(t, write(t, mv, report.WithEvaluation(&trainingv1.EvaluateResponse{Metrics: ms, Curves: curves, RowsLabelled: 3000})))
	checkFigures(t, imgs, []string{"fig-roc", "fig-gains", "fig-lift", "fig-calibration"}, 640, 480)
	if !strings.Contains(imgs[0].alt, "evaluation, n = 3,000") {
		t.Errorf("ROC title %q does not say the curves come from the evaluation", imgs[0].alt)
	}
	if txt := textOf(byID(root, "metrics")); !strings.Contains(txt, "No test split") {
		t.Errorf("metrics section does not say there is no test split: %q", txt)
	}
}

func TestClassifierWithoutProbabilities(t *testing.T) {
	mv := classifierVersion(t)
	mv.Family = modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM
	mv.TestCurves.Calibration = nil
	root, imgs := parse(t, write(t, mv))
	checkFigures(t, imgs, []string{"fig-roc", "fig-gains", "fig-lift"}, 640, 480)
	if txt := textOf(byID(root, "plots")); !strings.Contains(txt, "No calibration plot") {
		t.Errorf("no note about the missing calibration plot: %q", txt)
	}
}

func TestClassifierWithoutCurves(t *testing.T) {
	mv := classifierVersion(t)
	mv.TestCurves = nil
	root, imgs := parse(t, write(t, mv))
	if len(imgs) != 0 {
		t.Fatalf("%d images without curves", len(imgs))
	}
	if txt := textOf(byID(root, "plots")); !strings.Contains(txt, "No curves") {
		t.Errorf("plots section %q", txt)
	}
}

func TestRecommenderReport(t *testing.T) {
	root, imgs := parse(t, write(t, recommenderVersion()))
	if len(imgs) != 0 {
		t.Fatalf("%d images for a recommender", len(imgs))
	}
	m := tables(byID(root, "metrics"))[0]
	if got := strings.Join(m[1], " | "); got != "NDCG@10 ndcg_at_10selection | 0.1841" {
		t.Errorf("first metric row %q", got)
	}
	lin := textOf(byID(root, "lineage"))
	for _, want := range []string{`"Order Completed" × 5, "Product Viewed" × 1`, "each user's latest 2 interactions", "5,000 users, 800 items"} {
		if !strings.Contains(lin, want) {
			t.Errorf("lineage lacks %q: %s", want, lin)
		}
	}
}

var (
	fourDecimals = regexp.MustCompile(`^-?\d+\.\d{4}$`)
	meanSD       = regexp.MustCompile(`^-?\d+\.\d{4} ± \d+\.\d{4}$`)
)

func TestHTMLStructure(t *testing.T) {
	mv := classifierVersion(t)
	doc := write(t, mv)
	root, _ := parse(t, doc)
	for _, id := range []string{"header", "summary", "lineage", "metrics", "leaderboard", "plots"} {
		if byID(root, id) == nil {
			t.Errorf("no element #%s", id)
		}
	}
	head := textOf(byID(root, "header"))
	for _, want := range []string{"bank-response", "v3", "Logistic regression", "Binary classification",
		"ROC AUC (roc_auc, higher is better)", "2025-03-14 09:26:53 UTC", "campaign=spring-2025"} {
		if !strings.Contains(head, want) {
			t.Errorf("header lacks %q: %s", want, head)
		}
	}
	lin := textOf(byID(root, "lineage"))
	for _, want := range []string{"job-01JP8Y2K6W3", "bank-marketing v2", `subscribed = trait "y", positive when "yes"`,
		"fixed at 2025-01-01 00:00 UTC", "import rows whose number mod 5 is in {4}", "32,950 training, 8,238 test",
		"3,712 positive training rows (11.27%)", "nats-object://bullseye-models/bank-response/3", "age (int), job (string)"} {
		if !strings.Contains(lin, want) {
			t.Errorf("lineage lacks %q: %s", want, lin)
		}
	}

	// Metrics: every test value with four decimals, every cross-validation value as mean ± sd.
	m := tables(byID(root, "metrics"))
	if len(m) != 2 {
		t.Fatalf("%d tables in #metrics, want the metrics and the hyperparameters", len(m))
	}
	if got := strings.Join(m[0][0], " | "); got != "Metric | Test | Cross-validation (mean ± sd)" {
		t.Errorf("metrics header %q", got)
	}
	if len(m[0]) != 1+len(mv.GetTestMetrics()) {
		t.Errorf("%d metric rows, want %d", len(m[0])-1, len(mv.GetTestMetrics()))
	}
	for i, row := range m[0][1:] {
		tm := mv.GetTestMetrics()[i]
		if !strings.Contains(row[0], tm.GetName()) {
			t.Errorf("metric row %d is %q, want %s", i, row[0], tm.GetName())
		}
		if row[1] != fmt.Sprintf("%.4f", tm.GetValue()) || !fourDecimals.MatchString(row[1]) {
			t.Errorf("%s: test cell %q, want %.4f", tm.GetName(), row[1], tm.GetValue())
		}
		if !meanSD.MatchString(row[2]) {
			t.Errorf("%s: cross-validation cell %q is not mean ± sd with four decimals", tm.GetName(), row[2])
		}
	}
	if got := strings.Join(m[0][1], " | "); !strings.HasSuffix(got, "selection | "+fmt.Sprintf("%.4f", mv.GetTestMetrics()[0].GetValue())+" | "+
		fmt.Sprintf("%.4f ± %.4f", mv.GetCvMetrics()[0].GetValue(), mv.GetCvMetrics()[0].GetStdDev())) {
		t.Errorf("selection metric row %q", got)
	}
	if got := m[1]; len(got) != 4 || strings.Join(got[0], "=") != "c=1" || strings.Join(got[3], "=") != "penalty=l2" {
		t.Errorf("hyperparameters %v", got)
	}

	// Leaderboard: rank, candidate, mean ± sd, converged, fit time.
	lb := tables(byID(root, "leaderboard"))
	if len(lb) != 2 {
		t.Fatalf("%d tables in #leaderboard, want the board and the per-fold results", len(lb))
	}
	if got := strings.Join(lb[0][0], " | "); got != "Rank | Candidate | Family | Hyperparameters | ROC AUC (mean ± sd) | Converged | Fit time / fold | Notes" {
		t.Errorf("leaderboard header %q", got)
	}
	want := [][]string{
		{"1", "logreg-l2selected", "Logistic regression", "c=1, class_weight=none, fit_intercept=true, penalty=l2", "", "yes", "412 ms", ""},
		{"2", "candidate 2", "Logistic regression", "c=0.1, penalty=l1", "", "yes", "1.27 s", ""},
		{"3", "linear-svm", "Linear SVM", "c=10, loss=squared_hinge", "", "no", "1.84 s", ""},
		{"4", "rbf-svm", "Nyström SVM", "c=1, components=1000, gamma=scale, kernel=rbf", "", "yes", "1 min 14 s", "kernel fallback: Nyström approximation"},
		{"5", "poly-svm", "Kernel SVM", "degree=5, kernel=poly", "failed", "—", "—", "TIMEOUT: the candidate exceeded its time budget of 2m0s"},
	}
	if len(lb[0]) != 1+len(want) {
		t.Fatalf("%d leaderboard rows, want %d", len(lb[0])-1, len(want))
	}
	for i, w := range want {
		got := lb[0][i+1]
		e := mv.GetLeaderboard()[i]
		if w[4] == "" {
			w[4] = fmt.Sprintf("%.4f ± %.4f", e.GetScore(), e.GetScoreStdDev())
		}
		if strings.Join(got, " | ") != strings.Join(w, " | ") {
			t.Errorf("leaderboard row %d:\n got %q\nwant %q", i+1, got, w)
		}
	}
	if n := len(lb[1]) - 1; n != 20 {
		t.Errorf("%d per-fold rows, want 20 (four candidates × five folds)", n)
	}

	// Self-contained: no external resource, no script.
	for _, bad := range []string{`src="http`, `href="http`, "<link", "<script", "@import", "url("} {
		if strings.Contains(doc, bad) {
			t.Errorf("report contains %q: not self-contained", bad)
		}
	}
}

func TestEscaping(t *testing.T) {
	mv := classifierVersion(t)
	mv.Description = `<script>alert("x")</script> & more`
	mv.Leaderboard[0].Label = "<b>bold</b>"
	doc := write(t, mv)
	if strings.Contains(doc, "<script>") || strings.Contains(doc, "<b>bold") {
		t.Fatal("markup from the model version reached the page unescaped")
	}
	root, _ := parse(t, doc)
	if txt := textOf(byID(root, "header")); !strings.Contains(txt, `<script>alert("x")</script> & more`) {
		t.Errorf("description not shown as text: %q", txt)
	}
}

func TestDeterministic(t *testing.T) {
	mv, ev := regressionVersion(t)
	a := write(t, mv, report.WithEvaluation(ev))
	b := write(t, mv, report.WithEvaluation(ev))
	if a != b {
		t.Error("two reports of the same inputs differ")
	}
}

func TestFiguresMatchReport(t *testing.T) {
	mv := classifierVersion(t)
	figs, err := report.Figures(mv)
	if err != nil {
		t.Fatal(err)
	}
	_, imgs := parse(t, write(t, mv))
	if len(figs) != len(imgs) {
		t.Fatalf("%d figures, %d images in the report", len(figs), len(imgs))
	}
	for i, f := range figs {
		if "fig-"+f.Name != imgs[i].figureID || f.Title != imgs[i].alt || !bytes.Equal(f.PNG, imgs[i].png) {
			t.Errorf("figure %d (%s) differs from the report's image %s", i, f.Name, imgs[i].figureID)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestErrors(t *testing.T) {
	if err := report.Write(&bytes.Buffer{}, nil); err == nil {
		t.Error("Write(nil) succeeded")
	}
	if _, err := report.Figures(nil); err == nil {
		t.Error("Figures(nil) succeeded")
	}
	mv, _ := regressionVersion(t)
	if err := report.Write(&bytes.Buffer{}, mv, report.WithPredictions([]float64{1, 2}, []float64{1})); err == nil {
		t.Error("mismatched predictions accepted")
	}
	if err := report.Write(failingWriter{}, recommenderVersion()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("failing writer: err = %v", err)
	}
}

var base64Data = regexp.MustCompile(`data:image/png;base64,[A-Za-z0-9+/=]+`)

// TestGolden compares the reports' HTML, images left out, with testdata/*.golden.html
// (rewrite them with go test -run TestGolden -update).
func TestGolden(t *testing.T) {
	mv, ev := regressionVersion(t)
	for name, doc := range map[string]string{
		"classifier":  write(t, classifierVersion(t)),
		"regression":  write(t, mv, report.WithEvaluation(ev)),
		"recommender": write(t, recommenderVersion()),
	} {
		t.Run(name, func(t *testing.T) {
			got := base64Data.ReplaceAllString(doc, "data:image/png;base64,…")
			path := filepath.Join("testdata", name+".golden.html")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if got != string(want) {
				gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
				for i := range max(len(gl), len(wl)) {
					var g, w string
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if g != w {
						t.Fatalf("%s differs from the golden file at line %d:\n got %q\nwant %q", name, i+1, g, w)
					}
				}
			}
		})
	}
}

// TestWriteFiles writes a classifier and a regression report with their PNGs to a
// directory — $REPORT_SAMPLE_DIR if set (to look at them), else a temporary one — and
// checks the files read back.
func TestWriteFiles(t *testing.T) {
	dir := os.Getenv("REPORT_SAMPLE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mv, ev := regressionVersion(t)
	for _, c := range []struct {
		mv   *modelv1.ModelVersion
		opts []report.Option
	}{
		{classifierVersion(t), nil},
		{mv, []report.Option{report.WithEvaluation(ev), report.WithTarget("spend", "USD, 39 weeks after the cutoff")}},
	} {
		stem := fmt.Sprintf("%s-v%d", c.mv.GetModelName(), c.mv.GetVersion())
		var buf bytes.Buffer
		if err := report.Write(&buf, c.mv, c.opts...); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, stem+".html"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		figs, err := report.Figures(c.mv, c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range figs {
			path := filepath.Join(dir, stem+"-"+f.Name+".png")
			if err := os.WriteFile(path, f.PNG, 0o644); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkPlot(t, filepath.Base(path), data, f.Width, f.Height)
		}
		doc, err := os.ReadFile(filepath.Join(dir, stem+".html"))
		if err != nil {
			t.Fatal(err)
		}
		if _, imgs := parse(t, string(doc)); len(imgs) != len(figs) {
			t.Errorf("%s: %d images in the file, %d figures", stem, len(imgs), len(figs))
		}
	}
}

// decodeAll decodes every embedded image and checks its size.
func decodeAll(t *testing.T, imgs []embedded, w, h int) {
	t.Helper()
	for _, e := range imgs {
		img, err := png.Decode(bytes.NewReader(e.png))
		if err != nil {
			t.Fatalf("%s: %v", e.figureID, err)
		}
		if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
			t.Errorf("%s: %d×%d, want %d×%d", e.figureID, b.Dx(), b.Dy(), w, h)
		}
	}
}

func TestDegenerateInputs(t *testing.T) {
	mv, _ := regressionVersion(t)
	nan := math.NaN()
	for name, c := range map[string][2][]float64{
		"one row":        {{3}, {4}},
		"constant":       {{5, 5, 5}, {5, 5, 5}},
		"non-finite":     {{1, nan, 2, 3}, {1, 2, nan, 4}},
		"negative spend": {{-3, -1, 0, 2}, {-4, 0, 1, 2}},
	} {
		t.Run(name, func(t *testing.T) {
			_, imgs := parse(t, write(t, mv, report.WithPredictions(c[0], c[1])))
			if len(imgs) != 2 {
				t.Fatalf("%d images, want 2", len(imgs))
			}
			decodeAll(t, imgs, 640, 480)
		})
	}
	t.Run("minimal curves", func(t *testing.T) {
		cl := classifierVersion(t)
		cl.TestCurves = &modelv1.ClassificationCurves{
			Roc:         []*modelv1.RocPoint{{FalsePositiveRate: 0, TruePositiveRate: 0}, {FalsePositiveRate: 1, TruePositiveRate: 1}},
			Lift:        []*modelv1.LiftBin{{Bin: 1, Rows: 100, Positives: 10, ResponseRate: 0.1, Lift: 1, CumulativeGain: 1, CumulativeLift: 1}},
			Calibration: []*modelv1.CalibrationBin{{LowerBound: 0, UpperBound: 1, Rows: 100, MeanPredicted: 0.1, ObservedRate: 0.1}},
		}
		_, imgs := parse(t, write(t, cl))
		if len(imgs) != 4 {
			t.Fatalf("%d images, want 4", len(imgs))
		}
		decodeAll(t, imgs, 640, 480)
	})
}

func TestQuintiles(t *testing.T) {
	cl := classifierVersion(t)
	y, p := scoredSample(2000, 9)
	_, curves := binaryEvaluation(t, y, p)
	curves.Lift = must(metricsGains(y, p, 5))
	cl.TestCurves = curves
	root, imgs := parse(t, write(t, cl))
	checkFigures(t, imgs, []string{"fig-roc", "fig-gains", "fig-lift", "fig-calibration"}, 640, 480)
	if !strings.HasPrefix(imgs[1].alt, "Cumulative gains by bin") || !strings.HasPrefix(imgs[2].alt, "Lift by bin") {
		t.Errorf("titles %q, %q: five bins are not deciles", imgs[1].alt, imgs[2].alt)
	}
	if got := len(tables(byID(root, "plots"))[0]); got != 6 {
		t.Errorf("lift table has %d rows, want a header and 5 bins", got)
	}
}

// TestConcurrentWrites writes reports from several goroutines (gonum's font cache is
// shared) and checks each matches a report written alone.
func TestConcurrentWrites(t *testing.T) {
	cl := classifierVersion(t)
	mv, ev := regressionVersion(t)
	wantCl := write(t, cl)
	wantReg := write(t, mv, report.WithEvaluation(ev))
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			var buf bytes.Buffer
			var err error
			want := wantCl
			if i%2 == 0 {
				err = report.Write(&buf, cl, report.WithGeneratedAt(generated))
			} else {
				err = report.Write(&buf, mv, report.WithGeneratedAt(generated), report.WithEvaluation(ev))
				want = wantReg
			}
			if err == nil && buf.String() != want {
				err = fmt.Errorf("goroutine %d: report differs from one written alone", i)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
