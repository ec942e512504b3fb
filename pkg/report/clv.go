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
	ev := mv.GetClvEvaluation()
	if len(ev.GetFrequencyBins()) == 0 {
		return nil, []string{"No conditional expectations: the version records no evaluation on a holdout period."}, nil
	}
	c, caption := clvFrequencyChart(ev, mv.GetClvParameters().GetTimeUnitDays())
	png, err := c.render(o.width, o.height)
	if err != nil {
		return nil, nil, err
	}
	return []Figure{{Name: "frequency-vs-holdout", Title: c.p.Title.Text, Caption: caption, PNG: png, Width: o.width, Height: o.height}}, nil, nil
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
