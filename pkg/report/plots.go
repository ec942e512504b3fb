package report

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

func percentLabel(v float64) string { return fmt.Sprintf("%.0f%%", v) }

// classifierFigures draws the ROC curve, cumulative gains, lift and calibration plots of a
// binary classifier's curves; src names where the curves come from ("test set" or
// "evaluation").
func classifierFigures(mv *modelv1.ModelVersion, curves *modelv1.ClassificationCurves, src string, o *options) ([]Figure, []string, error) {
	where := src
	var rows, positives int64
	for _, b := range curves.GetLift() {
		rows += b.GetRows()
		positives += b.GetPositives()
	}
	if rows > 0 {
		where = fmt.Sprintf("%s, n = %s", src, formatInt(rows))
	}
	metrics := mv.GetTestMetrics()
	if src != "test set" {
		metrics = o.eval.GetMetrics()
	}
	var figs []Figure
	var notes []string
	add := func(name string, c *chart, caption string) error {
		png, err := c.render(o.width, o.height)
		if err != nil {
			return err
		}
		figs = append(figs, Figure{Name: name, Title: c.p.Title.Text, Caption: caption, PNG: png, Width: o.width, Height: o.height})
		return nil
	}
	if len(curves.GetRoc()) >= 2 {
		c, caption := rocChart(curves.GetRoc(), metrics, where)
		if err := add("roc", c, caption); err != nil {
			return nil, nil, err
		}
	} else {
		notes = append(notes, "No ROC curve: the curves carry no ROC points.")
	}
	if rows > 0 && positives > 0 {
		c, caption := gainsChart(curves.GetLift(), rows, positives, where)
		if err := add("gains", c, caption); err != nil {
			return nil, nil, err
		}
		c, caption = liftChart(curves.GetLift(), rows, positives, where, o.width)
		if err := add("lift", c, caption); err != nil {
			return nil, nil, err
		}
	} else {
		notes = append(notes, "No gains or lift plot: the curves carry no lift table (or no positives).")
	}
	if slices.ContainsFunc(curves.GetCalibration(), func(b *modelv1.CalibrationBin) bool { return b.GetRows() > 0 }) {
		c, caption := calibrationChart(curves.GetCalibration(), metrics, where)
		if err := add("calibration", c, caption); err != nil {
			return nil, nil, err
		}
	} else {
		notes = append(notes, "No calibration plot: the model gives no probabilities (an SVM without Platt scaling), so the curves carry no calibration table.")
	}
	return figs, notes, nil
}

func metricValue(ms []*commonv1.Metric, name string) (float64, bool) {
	for _, m := range ms {
		if m.GetName() == name {
			return m.GetValue(), true
		}
	}
	return 0, false
}

func rocChart(roc []*modelv1.RocPoint, metrics []*commonv1.Metric, where string) (*chart, string) {
	pts := make(plotter.XYs, 0, len(roc)+2)
	for _, p := range roc {
		pts = append(pts, plotter.XY{X: clamp01(p.GetFalsePositiveRate()), Y: clamp01(p.GetTruePositiveRate())})
	}
	slices.SortStableFunc(pts, func(a, b plotter.XY) int { return cmp.Or(cmp.Compare(a.X, b.X), cmp.Compare(a.Y, b.Y)) })
	if pts[0] != (plotter.XY{}) {
		pts = slices.Insert(pts, 0, plotter.XY{})
	}
	if pts[len(pts)-1] != (plotter.XY{X: 1, Y: 1}) {
		pts = append(pts, plotter.XY{X: 1, Y: 1})
	}
	auc, ok := metricValue(metrics, "roc_auc")
	if !ok {
		for i := 1; i < len(pts); i++ {
			auc += (pts[i].X - pts[i-1].X) * (pts[i].Y + pts[i-1].Y) / 2
		}
	}
	c := newChart("ROC curve ("+where+")",
		"False positive rate (fraction of negatives flagged)",
		"True positive rate (fraction of positives caught)")
	model := line(pts, colModel, 2.2)
	model.FillColor = color.NRGBA{R: 31, G: 119, B: 180, A: 26}
	diag := line(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, colRandom, 1.2, 6, 4)
	c.add(diag, model)
	c.legend(fmt.Sprintf("Model (AUC = %.4f)", auc), model)
	c.legend("Random ranking (AUC = 0.5000)", diag)
	c.legendAt(false, false)
	c.xRange(0, 1, ticks(0, 1, 0.1, nil))
	c.yRange(0, 1, ticks(0, 1, 0.1, nil))
	return c, "Each point of the curve is a score threshold: the share of positives scored above it " +
		"against the share of negatives wrongly flagged. The more the curve bows towards the top left, " +
		"the better the ranking; the dashed diagonal is a random ranking."
}

func clamp01(v float64) float64 { return math.Min(1, math.Max(0, v)) }

// cumulative returns, for each lift bin, the percentage of all rows in bins 1 to it.
func cumulative(lift []*modelv1.LiftBin, rows int64) []float64 {
	out := make([]float64, len(lift))
	var cum int64
	for i, b := range lift {
		cum += b.GetRows()
		out[i] = 100 * float64(cum) / float64(rows)
	}
	return out
}

// binWord names the bins: "decile" for 10, else "bin".
func binWord(n int) string {
	if n == 10 {
		return "decile"
	}
	return "bin"
}

func gainsChart(lift []*modelv1.LiftBin, rows, positives int64, where string) (*chart, string) {
	cum := cumulative(lift, rows)
	pts := plotter.XYs{{}}
	var texts []string
	for i, b := range lift {
		pts = append(pts, plotter.XY{X: cum[i], Y: 100 * b.GetCumulativeGain()})
		texts = append(texts, fmt.Sprintf("%.0f%%", 100*b.GetCumulativeGain()))
	}
	base := float64(positives) / float64(rows)
	word := binWord(len(lift))
	c := newChart(fmt.Sprintf("Cumulative gains by %s (%s)", word, where),
		"Customers targeted (% of all, highest scores first)",
		"Positives reached (% of all positives)")
	random := line(plotter.XYs{{X: 0, Y: 0}, {X: 100, Y: 100}}, colRandom, 1.2, 6, 4)
	perfect := line(plotter.XYs{{X: 0, Y: 0}, {X: 100 * base, Y: 100}, {X: 100, Y: 100}}, colPerfect, 1.4, 2, 3)
	model := line(pts, colModel, 2.2)
	marks := scatter(pts[1:], colModel, 3.2)
	// Values below and right of their points, in the space between the curve and the
	// random diagonal.
	lbl := labels(pts[1:len(pts)-1], texts[:len(texts)-1], 8.5)
	lbl.Offset = vg.Point{X: vg.Points(4), Y: -vg.Points(4)}
	for i := range lbl.TextStyle {
		lbl.TextStyle[i].XAlign, lbl.TextStyle[i].YAlign = draw.XLeft, draw.YTop
	}
	c.add(random, perfect, model, marks, lbl)
	c.legend("Model", model, marks)
	c.legend("Random targeting", random)
	c.legend(fmt.Sprintf("Perfect model (positive rate %.1f%%)", 100*base), perfect)
	c.legendAt(false, false)
	c.xRange(0, 100, ticks(0, 100, 10, percentLabel))
	c.yRange(0, 100, ticks(0, 100, 10, percentLabel))
	first := lift[0]
	return c, fmt.Sprintf("Customers ranked by score, best first: targeting the top %.0f%% reaches %.1f%% of all "+
		"positives (%.2f times random). The dashed diagonal is random targeting; the dotted line is a "+
		"perfect model that ranks every positive first.",
		cum[0], 100*first.GetCumulativeGain(), first.GetCumulativeLift())
}

func liftChart(lift []*modelv1.LiftBin, rows, positives int64, where string, widthPx int) (*chart, string) {
	n := len(lift)
	word := binWord(n)
	vals := make(plotter.Values, n)
	cumPts := make(plotter.XYs, n)
	top := 1.0
	texts := make([]string, n)
	for i, b := range lift {
		vals[i] = b.GetLift()
		cumPts[i] = plotter.XY{X: float64(i + 1), Y: b.GetCumulativeLift()}
		texts[i] = fmt.Sprintf("%.2f×", b.GetLift())
		top = math.Max(top, math.Max(b.GetLift(), b.GetCumulativeLift()))
	}
	xLabel := "Score decile (1 = top 10% of customers)"
	if n != 10 {
		xLabel = fmt.Sprintf("Score bin of %d (1 = highest scores)", n)
	}
	c := newChart(fmt.Sprintf("Lift by %s (%s)", word, where), xLabel, "Lift (× the overall positive rate)")
	// The data area is roughly the image less ~75 px of axis and margins; bars take 60%
	// of each slot.
	slotPx := float64(widthPx-75) / (float64(n) + 0.2)
	bars := &plotter.BarChart{Values: vals, Width: vg.Length(0.6*slotPx) * vg.Inch / dpi, Color: colModel, XMin: 1}
	bars.LineStyle = draw.LineStyle{Color: colModel, Width: vg.Points(0.5)}
	barPts := make(plotter.XYs, n)
	for i, v := range vals {
		barPts[i] = plotter.XY{X: float64(i + 1), Y: v}
	}
	yTop := top * 1.2
	// Values inside the top of bars tall enough to hold them (white), above the others.
	var inPts, outPts plotter.XYs
	var inTexts, outTexts []string
	for i, v := range vals {
		if v > 0.12*yTop {
			inPts, inTexts = append(inPts, barPts[i]), append(inTexts, texts[i])
		} else {
			outPts, outTexts = append(outPts, barPts[i]), append(outTexts, texts[i])
		}
	}
	inLbl := labels(inPts, inTexts, 8.5)
	inLbl.Offset = vg.Point{Y: -vg.Points(4)}
	for i := range inLbl.TextStyle {
		inLbl.TextStyle[i].Color, inLbl.TextStyle[i].YAlign = color.White, draw.YTop
	}
	outLbl := labels(outPts, outTexts, 8.5)
	random := line(plotter.XYs{{X: 0.4, Y: 1}, {X: float64(n) + 0.6, Y: 1}}, colRandom, 1.2, 6, 4)
	cumLine := line(cumPts, colSecond, 2)
	cumMarks := scatter(cumPts, colSecond, 3)
	c.add(bars, random, cumLine, cumMarks, inLbl, outLbl)
	c.legend(fmt.Sprintf("Lift of the %s", word), bars)
	c.legend(fmt.Sprintf("Cumulative lift (%ss 1 to k)", word), cumLine, cumMarks)
	c.legend("Random targeting (lift = 1)", random)
	c.legendAt(true, false)
	var xt plot.ConstantTicks
	for i := range n {
		xt = append(xt, plot.Tick{Value: float64(i + 1), Label: fmt.Sprint(i + 1)})
	}
	c.xRange(0.4, float64(n)+0.6, xt)
	c.yRange(0, yTop, autoTicks(0, yTop, 6))
	base := float64(positives) / float64(rows)
	return c, fmt.Sprintf("Bars: each %s's positive rate over the overall rate of %.2f%% (%s positives in %s rows). "+
		"Line: the same for %ss 1 to k together. The top %s's lift is %.2f×.",
		word, 100*base, formatInt(positives), formatInt(rows), word, word, lift[0].GetLift())
}

func calibrationChart(cal []*modelv1.CalibrationBin, metrics []*commonv1.Metric, where string) (*chart, string) {
	var pts plotter.XYs
	var sizes []int64
	var maxRows int64
	hi := 0.0
	for _, b := range cal {
		if b.GetRows() == 0 {
			continue
		}
		p := plotter.XY{X: clamp01(b.GetMeanPredicted()), Y: clamp01(b.GetObservedRate())}
		pts = append(pts, p)
		sizes = append(sizes, b.GetRows())
		maxRows = max(maxRows, b.GetRows())
		hi = math.Max(hi, math.Max(p.X, p.Y))
	}
	top := 1.0
	if hi < 0.6 {
		step := niceStep(hi, 5)
		top = math.Min(1, math.Ceil(hi*1.08/step)*step)
	}
	c := newChart("Calibration ("+where+")",
		"Mean predicted probability in the bin",
		"Observed positive rate in the bin")
	perfect := line(plotter.XYs{{X: 0, Y: 0}, {X: top, Y: top}}, colRandom, 1.2, 6, 4)
	model := line(pts, colModel, 1.8)
	marks := scatter(pts, colModel, 3.5)
	marks.GlyphStyleFunc = func(i int) draw.GlyphStyle {
		r := 2.5 + 4.5*math.Sqrt(float64(sizes[i])/float64(maxRows))
		return draw.GlyphStyle{Color: colModel, Radius: vg.Points(r), Shape: draw.CircleGlyph{}}
	}
	c.add(perfect, model, marks)
	name := "Model (larger markers: more rows)"
	if brier, ok := metricValue(metrics, "brier"); ok {
		name = fmt.Sprintf("Model (Brier = %.4f; larger markers: more rows)", brier)
	}
	c.legend(name, model, marks)
	c.legend("Perfectly calibrated", perfect)
	c.legendAt(true, true)
	t := autoTicks(0, top, 5)
	c.xRange(0, top, t)
	c.yRange(0, top, t)
	return c, "Rows binned by predicted probability: where a point lies on the diagonal, the predicted " +
		"probabilities can be read as response rates. Below the diagonal the model over-predicts; above " +
		"it, it under-predicts. The table below gives each bin's rows."
}

// regressionFigures draws predicted against actual and the residuals of a regression;
// total is the number of rows the pairs come from.
func regressionFigures(mv *modelv1.ModelVersion, pred, act []float64, total int, o *options) ([]Figure, []string, error) {
	name, unit := targetName(mv, o)
	n := len(pred)
	shown := subsample(n, o.maxPoints, o.seed)
	r2 := rSquared(act, pred)
	where := "evaluation, "
	if o.hasPreds {
		where = ""
	}
	sample := fmt.Sprintf("%s rows", formatInt(int64(n)))
	if len(shown) < n {
		sample = fmt.Sprintf("a random %s of %s rows", formatInt(int64(len(shown))), formatInt(int64(n)))
	}
	if total > n {
		sample += fmt.Sprintf("; %s rows not scored or without a numeric label are left out", formatInt(int64(total-n)))
	}
	var figs []Figure
	add := func(fname string, c *chart, caption string) error {
		png, err := c.render(o.width, o.height)
		if err != nil {
			return err
		}
		figs = append(figs, Figure{Name: fname, Title: c.p.Title.Text, Caption: caption, PNG: png, Width: o.width, Height: o.height})
		return nil
	}

	// Predicted against actual, both axes on the same range so that the identity is the
	// diagonal; the most extreme 0.5% of values at either end are left out of view.
	both := append(slices.Clone(pred), act...)
	lo, hi := viewRange(both, 0.005, 0.995)
	out := 0
	for i := range pred {
		if !inside(act[i], lo, hi) || !inside(pred[i], lo, hi) {
			out++
		}
	}
	var pts plotter.XYs
	for _, i := range shown {
		if inside(act[i], lo, hi) && inside(pred[i], lo, hi) {
			pts = append(pts, plotter.XY{X: act[i], Y: pred[i]})
		}
	}
	c := newChart(fmt.Sprintf("Predicted vs actual (%sn = %s)", where, formatInt(int64(n))),
		axisLabel("Actual", name, unit), axisLabel("Predicted", name, unit))
	ident := line(plotter.XYs{{X: lo, Y: lo}, {X: hi, Y: hi}}, colRandom, 1.4, 6, 4)
	dots := scatter(pts, colPoints, 2.2)
	c.add(dots, ident)
	c.legend(fmt.Sprintf("Rows (R² = %.4f)", r2), scatter(nil, colModel, 3))
	c.legend("Perfect prediction (predicted = actual)", ident)
	c.legendAt(true, true)
	t := autoTicks(lo, hi, 6)
	c.xRange(lo, hi, t)
	c.yRange(lo, hi, t)
	caption := fmt.Sprintf("Each dot is a row (%s), predicted against actual; on the dashed diagonal the "+
		"prediction is exact. Darker areas hold more rows.", sample)
	if out > 0 {
		caption += fmt.Sprintf(" %s rows with a value beyond the view (the most extreme 0.5%% at either end) are not drawn.", formatInt(int64(out)))
	}
	if err := add("predicted-vs-actual", c, caption); err != nil {
		return nil, nil, err
	}

	// Residuals against predictions, with the mean residual in bins of equal counts.
	res := make([]float64, n)
	for i := range pred {
		res[i] = act[i] - pred[i]
	}
	xlo, xhi := viewRange(pred, 0.005, 0.995)
	ylo, yhi := viewRange(append(res, 0), 0.005, 0.995)
	out = 0
	for i := range pred {
		if !inside(pred[i], xlo, xhi) || !inside(res[i], ylo, yhi) {
			out++
		}
	}
	pts = nil
	for _, i := range shown {
		if inside(pred[i], xlo, xhi) && inside(res[i], ylo, yhi) {
			pts = append(pts, plotter.XY{X: pred[i], Y: res[i]})
		}
	}
	c = newChart(fmt.Sprintf("Residuals (%sn = %s)", where, formatInt(int64(n))),
		axisLabel("Predicted", name, unit), axisLabel("Residual: actual − predicted", "", unit))
	zero := line(plotter.XYs{{X: xlo, Y: 0}, {X: xhi, Y: 0}}, colRandom, 1.4, 6, 4)
	dots = scatter(pts, colPoints, 2.2)
	c.add(dots, zero)
	c.legend("Rows", scatter(nil, colModel, 3))
	if means := binnedMeans(pred, res, 20); len(means) > 1 {
		ml := line(means, colSecond, 2.2)
		mm := scatter(means, colSecond, 2.8)
		c.add(ml, mm)
		c.legend("Mean residual per prediction bin", ml, mm)
	}
	c.legend("Zero error", zero)
	c.legendAt(true, true)
	c.xRange(xlo, xhi, autoTicks(xlo, xhi, 6))
	c.yRange(ylo, yhi, autoTicks(ylo, yhi, 6))
	caption = fmt.Sprintf("Each dot is a row (%s): its error against its prediction. Dots above the dashed "+
		"line are under-predicted, below it over-predicted; the orange line is the mean residual over "+
		"20 bins of equal row counts, flat at zero for an unbiased model.", sample)
	if out > 0 {
		caption += fmt.Sprintf(" %s rows beyond the view (the most extreme 0.5%% at either end) are not drawn.", formatInt(int64(out)))
	}
	if err := add("residuals", c, caption); err != nil {
		return nil, nil, err
	}
	return figs, nil, nil
}

func axisLabel(what, name, unit string) string {
	s := what
	if name != "" {
		s += " " + name
	}
	if unit != "" {
		s += " (" + unit + ")"
	}
	return s
}

func inside(v, lo, hi float64) bool { return v >= lo && v <= hi }

// viewRange returns a range that holds the values between quantiles qlo and qhi, padded
// by 4% each side (not below zero for non-negative values).
func viewRange(v []float64, qlo, qhi float64) (float64, float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	lo, hi := quantile(s, qlo), quantile(s, qhi)
	if hi <= lo {
		lo, hi = lo-1, hi+1
	}
	pad := 0.04 * (hi - lo)
	nlo := lo - pad
	if s[0] >= 0 && nlo < 0 {
		nlo = 0
	}
	return nlo, hi + pad
}

// quantile returns the q-quantile of sorted values (linear interpolation).
func quantile(s []float64, q float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	f := pos - float64(i)
	return s[i] + f*(s[i+1]-s[i])
}

// subsample returns up to k of the indices 0..n-1, chosen at random with a fixed seed,
// in increasing order.
func subsample(n, k int, seed uint64) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if n <= k {
		return idx
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i := range k {
		j := i + r.IntN(n-i)
		idx[i], idx[j] = idx[j], idx[i]
	}
	idx = idx[:k]
	slices.Sort(idx)
	return idx
}

// rSquared returns 1 − SS_res / SS_tot (0 when the targets are constant).
func rSquared(y, pred []float64) float64 {
	var mean float64
	for _, v := range y {
		mean += v
	}
	mean /= float64(len(y))
	var ssRes, ssTot float64
	for i, v := range y {
		ssRes += (v - pred[i]) * (v - pred[i])
		ssTot += (v - mean) * (v - mean)
	}
	if ssTot == 0 {
		return 0
	}
	return 1 - ssRes/ssTot
}

// binnedMeans sorts rows by x, cuts them into bins of equal counts and returns each bin's
// mean x and mean y.
func binnedMeans(x, y []float64, bins int) plotter.XYs {
	n := len(x)
	if n < 2*bins {
		bins = n / 2
	}
	if bins < 2 {
		return nil
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(x[a], x[b]) })
	out := make(plotter.XYs, 0, bins)
	for b := range bins {
		lo, hi := b*n/bins, (b+1)*n/bins
		var sx, sy float64
		for _, i := range idx[lo:hi] {
			sx += x[i]
			sy += y[i]
		}
		out = append(out, plotter.XY{X: sx / float64(hi-lo), Y: sy / float64(hi-lo)})
	}
	return out
}
