package report

import (
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// clvFigures draws a customer lifetime value model's evaluation: the mean actual and
// expected holdout purchases by calibration frequency.
func clvFigures(mv *modelv1.ModelVersion, o *options) ([]Figure, []string, error) {
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
	if r := o.repeat; r != nil && len(r.Times) > 1 && len(r.Actual) == len(r.Times) && len(r.Expected) == len(r.Times) {
		c, caption := repeatChart(r)
		if err := add("repeat-purchases", c, caption); err != nil {
			return nil, nil, err
		}
	} else {
		notes = append(notes, "No cumulative repeat-purchase curve: none was given (report.WithRepeatCurve).")
	}
	if ev := mv.GetClvEvaluation(); len(ev.GetFrequencyBins()) > 0 {
		c, caption := clvFrequencyChart(ev, mv.GetClvParameters().GetTimeUnitDays())
		if err := add("frequency-vs-holdout", c, caption); err != nil {
			return nil, nil, err
		}
	} else {
		notes = append(notes, "No conditional expectations: the version records no evaluation on a holdout period.")
	}
	return figs, notes, nil
}

// repeatChart is Fader and Hardie's tracking plot: the cohort's cumulative repeat purchases,
// actual and expected, with the end of the calibration period marked.
func repeatChart(r *RepeatCurve) (*chart, string) {
	var actual, expected plotter.XYs
	hi := 0.0
	for i, t := range r.Times {
		actual = append(actual, plotter.XY{X: t, Y: r.Actual[i]})
		expected = append(expected, plotter.XY{X: t, Y: r.Expected[i]})
		hi = math.Max(hi, math.Max(r.Actual[i], r.Expected[i]))
	}
	c := newChart(fmt.Sprintf("Cumulative repeat purchases (n = %s customers)", formatInt(int64(r.Customers))),
		"Time since the cohort's start ("+r.Unit+")", "Cumulative repeat purchases")
	step := niceStep(math.Max(hi, 1e-9), 5)
	ymax := math.Ceil(hi*1.08/step) * step
	end := line(plotter.XYs{{X: r.Calibration, Y: 0}, {X: r.Calibration, Y: ymax}}, colRandom, 1.2, 6, 4)
	act := line(actual, colSecond, 1.8)
	exp := line(expected, colModel, 1.8, 6, 4)
	c.add(end, act, exp)
	c.legend("Actual", act)
	c.legend("Expected (BG/NBD)", exp)
	c.legend("End of the calibration period", end)
	c.legendAt(true, true)
	lo, top := r.Times[0], r.Times[len(r.Times)-1]
	c.xRange(math.Min(0, lo), top, autoTicks(math.Min(0, lo), top, 6))
	c.yRange(0, ymax, autoTicks(0, ymax, 5))
	return c, "The cohort's repeat purchases added up over time, as they happened and as the model expects them " +
		"of customers who joined when these did. Left of the dashed line the model was fitted; right of it, " +
		"in the holdout period, it forecasts."
}

// clvFrequencyChart is Fader and Hardie's conditional expectations: for the customers of
// each calibration frequency, their mean actual and expected purchases in the holdout.
func clvFrequencyChart(ev *modelv1.ClvEvaluation, unitDays float64) (*chart, string) {
	var actual, expected plotter.XYs
	var names []string
	var customers int64
	hi := 0.0
	for _, b := range ev.GetFrequencyBins() {
		x := float64(b.GetFrequency())
		actual = append(actual, plotter.XY{X: x, Y: b.GetMeanActual()})
		expected = append(expected, plotter.XY{X: x, Y: b.GetMeanPredicted()})
		name := strconv.Itoa(int(b.GetFrequency()))
		if b.GetAndMore() {
			name += "+"
		}
		names = append(names, name)
		customers += b.GetCustomers()
		hi = math.Max(hi, math.Max(b.GetMeanActual(), b.GetMeanPredicted()))
	}
	period := fmt.Sprintf("%.4g time units", ev.GetHoldoutUnits())
	switch unitDays {
	case 7:
		period = fmt.Sprintf("%.4g weeks", ev.GetHoldoutUnits())
	case 1:
		period = fmt.Sprintf("%.4g days", ev.GetHoldoutUnits())
	}
	c := newChart(fmt.Sprintf("Holdout purchases by calibration frequency (n = %s)", formatInt(customers)),
		"Repeat purchases in the calibration period",
		"Mean purchases in the holdout ("+period+")")
	act := line(actual, colSecond, 1.8)
	actMarks := scatter(actual, colSecond, 3.5)
	exp := line(expected, colModel, 1.8, 6, 4)
	expMarks := scatter(expected, colModel, 3.5)
	c.add(act, actMarks, exp, expMarks)
	c.legend("Actual", act, actMarks)
	c.legend("Expected (BG/NBD)", exp, expMarks)
	c.legendAt(true, true)
	lo, top := float64(ev.GetFrequencyBins()[0].GetFrequency()), float64(ev.GetFrequencyBins()[len(ev.GetFrequencyBins())-1].GetFrequency())
	c.xRange(lo-0.3, top+0.3, frequencyTicks(ev.GetFrequencyBins(), names))
	step := niceStep(math.Max(hi, 1e-9), 5)
	ymax := math.Ceil(hi*1.08/step) * step
	c.yRange(0, ymax, autoTicks(0, ymax, 5))
	return c, "Customers grouped by how many repeat purchases they made in the calibration period (the last " +
		"group: that many and more): the mean number of purchases they made in the holdout period against " +
		"the mean the model expected of them. Where the lines part, the model misjudges that group."
}

// frequencyTicks labels each bin's frequency, the last with its "+".
func frequencyTicks(bins []*modelv1.ClvFrequencyBin, names []string) plot.ConstantTicks {
	out := make(plot.ConstantTicks, len(bins))
	for i, b := range bins {
		out[i] = plot.Tick{Value: float64(b.GetFrequency()), Label: names[i]}
	}
	return out
}
