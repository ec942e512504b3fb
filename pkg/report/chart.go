package report

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"strings"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// dpi is the plots' resolution: 96 dots per inch, so a 640 × 480 pixel image is 480 × 360
// points and text sizes in points look as they do on a screen.
const dpi = 96

// The palette: the model in blue, a second series in orange, baselines in grey and green.
var (
	colModel   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colSecond  = color.RGBA{R: 230, G: 110, B: 10, A: 255}
	colRandom  = color.RGBA{R: 120, G: 120, B: 120, A: 255}
	colPerfect = color.RGBA{R: 44, G: 150, B: 44, A: 255}
	colGrid    = color.RGBA{R: 226, G: 226, B: 226, A: 255}
	colAxis    = color.RGBA{R: 34, G: 34, B: 34, A: 255}
	colText    = color.RGBA{R: 34, G: 34, B: 34, A: 255}
	colPoints  = color.NRGBA{R: 31, G: 119, B: 180, A: 115}
)

func sans(size float64, bold bool) font.Font {
	f := font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Points(size)}
	if bold {
		f.Weight = xfont.WeightBold
	}
	return f
}

// chart is a plot with the report's styling and a legend drawn on a backdrop over the data
// area (gonum draws its legend without one, over the data).
type chart struct {
	p           *plot.Plot
	leg         plot.Legend
	legendNames []string
	legTop      bool
	legRight    bool
}

func newChart(title, xLabel, yLabel string) *chart {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(13, true)
	p.Title.TextStyle.Color = colText
	p.Title.Padding = vg.Points(10)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(11, false)
		a.Label.TextStyle.Color = colText
		a.Label.Padding = vg.Points(5)
		a.Tick.Label.Font = sans(9.5, false)
		a.Tick.Label.Color = colText
		a.LineStyle = draw.LineStyle{Color: colAxis, Width: vg.Points(1.2)}
		a.Tick.LineStyle = draw.LineStyle{Color: colAxis, Width: vg.Points(0.8)}
		a.Padding = vg.Points(4)
	}
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	g := plotter.NewGrid()
	g.Vertical = draw.LineStyle{Color: colGrid, Width: vg.Points(0.75)}
	g.Horizontal = g.Vertical
	p.Add(g)
	leg := plot.NewLegend()
	leg.TextStyle.Font = sans(10, false)
	leg.TextStyle.Color = colText
	leg.ThumbnailWidth = vg.Points(24)
	leg.Padding = vg.Points(2)
	return &chart{p: p, leg: leg}
}

// legendAt places the legend in a corner of the data area.
func (c *chart) legendAt(top, left bool) {
	c.legTop, c.legRight = top, !left
}

// xRange and yRange fix an axis's range and ticks.
func (c *chart) xRange(lo, hi float64, t plot.Ticker) {
	c.p.X.Min, c.p.X.Max, c.p.X.Tick.Marker = lo, hi, t
}

func (c *chart) yRange(lo, hi float64, t plot.Ticker) {
	c.p.Y.Min, c.p.Y.Max, c.p.Y.Tick.Marker = lo, hi, t
}

// render draws the chart to a PNG of w × h pixels.
func (c *chart) render(w, h int) ([]byte, error) {
	width := vg.Length(w) * vg.Inch / dpi
	height := vg.Length(h) * vg.Inch / dpi
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi))
	dc := draw.Crop(draw.New(img), vg.Points(6), -vg.Points(14), vg.Points(6), -vg.Points(8))
	// Axis labels fit along the data area, which is the canvas less ~60 points of ticks,
	// title and margins.
	fitLabel(&c.p.X, dc.Max.X-dc.Min.X-vg.Points(60))
	fitLabel(&c.p.Y, dc.Max.Y-dc.Min.Y-vg.Points(60))
	c.p.Draw(dc)
	c.drawLegend(c.p.DataCanvas(dc))
	var buf bytes.Buffer
	if err := png.Encode(&buf, img.Image()); err != nil {
		return nil, fmt.Errorf("report: encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// drawLegend draws the legend in its corner of the data area da, over a white, outlined
// backdrop, thumbnails on the left and text after them. gonum's Legend.Rectangle ignores
// the legend's offsets, so the extent is computed here the way Legend.Draw lays it out.
func (c *chart) drawLegend(da draw.Canvas) {
	if len(c.legendNames) == 0 {
		return
	}
	const inset, margin = 10, 5
	l := &c.leg
	sty := l.TextStyle
	var textW, entryH vg.Length
	for _, n := range c.legendNames {
		textW = max(textW, sty.Rectangle(" "+n).Size().X)
		entryH = max(entryH, sty.Rectangle(n).Max.Y)
	}
	n := vg.Length(len(c.legendNames))
	w := l.ThumbnailWidth + textW
	h := n*entryH + (n-1)*l.Padding
	descent := sty.FontExtents().Descent
	l.Left, l.Top = true, c.legTop
	l.XOffs = vg.Points(inset)
	if c.legRight {
		l.XOffs = da.Max.X - da.Min.X - w - vg.Points(inset)
	}
	var r vg.Rectangle
	r.Min.X = da.Min.X + l.XOffs
	r.Max.X = r.Min.X + w
	if l.Top {
		l.YOffs = -vg.Points(inset)
		r.Max.Y = da.Max.Y + l.YOffs - descent
		r.Min.Y = r.Max.Y - h
	} else {
		l.YOffs = vg.Points(inset)
		r.Min.Y = da.Min.Y + l.YOffs
		r.Max.Y = r.Min.Y + h
	}
	r.Min.X, r.Min.Y, r.Max.X, r.Max.Y = r.Min.X-margin, r.Min.Y-margin+1, r.Max.X+margin, r.Max.Y+margin-1
	corners := []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}}
	da.FillPolygon(color.NRGBA{R: 255, G: 255, B: 255, A: 235}, corners)
	da.StrokeLines(draw.LineStyle{Color: color.RGBA{R: 190, G: 190, B: 190, A: 255}, Width: vg.Points(0.75)},
		append(corners, r.Min))
	l.Draw(da)
}

// fitLabel shrinks an axis label's font (down to 8 points) until the label fits in avail,
// then shortens it with an ellipsis if it still does not.
func fitLabel(a *plot.Axis, avail vg.Length) {
	sty := &a.Label.TextStyle
	for sty.Font.Size > vg.Points(8) && sty.Rectangle(a.Label.Text).Size().X > avail {
		sty.Font.Size -= vg.Points(0.5)
	}
	for r := []rune(a.Label.Text); len(r) > 4 && sty.Rectangle(a.Label.Text).Size().X > avail; {
		r = r[:len(r)-1]
		a.Label.Text = strings.TrimSpace(string(r)) + "…"
	}
}

// add adds plotters to the chart.
func (c *chart) add(ps ...plot.Plotter) { c.p.Add(ps...) }

// legend adds a legend entry.
func (c *chart) legend(name string, thumbs ...plot.Thumbnailer) {
	c.leg.Add(name, thumbs...)
	c.legendNames = append(c.legendNames, name)
}

// line returns a line through pts in a colour, width (points) and dash pattern.
func line(pts plotter.XYs, col color.Color, width float64, dashes ...float64) *plotter.Line {
	l := &plotter.Line{XYs: pts}
	l.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(width)}
	for _, d := range dashes {
		l.Dashes = append(l.Dashes, vg.Points(d))
	}
	return l
}

// scatter returns solid circles at pts.
func scatter(pts plotter.XYs, col color.Color, radius float64) *plotter.Scatter {
	return &plotter.Scatter{XYs: pts, GlyphStyle: draw.GlyphStyle{Color: col, Radius: vg.Points(radius), Shape: draw.CircleGlyph{}}}
}

// labels returns text labels centred above pts.
func labels(pts plotter.XYs, texts []string, size float64) *plotter.Labels {
	l := &plotter.Labels{XYs: pts, Labels: texts, Offset: vg.Point{Y: vg.Points(4)}}
	for range texts {
		l.TextStyle = append(l.TextStyle, textStyle(size))
	}
	return l
}

func textStyle(size float64) text.Style {
	return text.Style{Color: colText, Font: sans(size, false), XAlign: draw.XCenter, YAlign: draw.YBottom, Handler: plot.DefaultTextHandler}
}

// niceStep returns a step of 1, 2, 2.5 or 5 times a power of ten that cuts span into
// about target intervals.
func niceStep(span float64, target int) float64 {
	if !(span > 0) || math.IsInf(span, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(span/float64(target))))
	best, bestErr := mag, math.Inf(1)
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if e := math.Abs(span/(m*mag) - float64(target)); e < bestErr {
			best, bestErr = m*mag, e
		}
	}
	return best
}

// decimals returns the decimals needed to print multiples of step exactly.
func decimals(step float64) int {
	for d := range 7 {
		v := step * math.Pow(10, float64(d))
		if math.Abs(v-math.Round(v)) < 1e-6*math.Max(1, math.Abs(v)) {
			return d
		}
	}
	return 6
}

// ticks returns major ticks every step on [lo, hi], labelled by label (or as numbers with
// the step's decimals), and unlabelled minor ticks halfway between.
func ticks(lo, hi, step float64, label func(float64) string) plot.ConstantTicks {
	if label == nil {
		d := decimals(step)
		label = func(v float64) string { return formatNumber(v, d) }
	}
	var out plot.ConstantTicks
	first := math.Ceil(lo/step - 1e-9)
	for k := first; k*step <= hi+step*1e-9; k++ {
		v := k * step
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		out = append(out, plot.Tick{Value: v, Label: label(v)})
		if mid := v + step/2; mid <= hi {
			out = append(out, plot.Tick{Value: mid})
		}
	}
	if mid := first*step - step/2; mid >= lo {
		out = append(out, plot.Tick{Value: mid})
	}
	return out
}

// autoTicks returns about target labelled ticks on [lo, hi].
func autoTicks(lo, hi float64, target int) plot.ConstantTicks {
	return ticks(lo, hi, niceStep(hi-lo, target), nil)
}

// formatNumber prints v with d decimals and thousands separators.
func formatNumber(v float64, d int) string {
	s := fmt.Sprintf("%.*f", d, v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	if len(intPart) > 4 {
		var b strings.Builder
		for i, r := range intPart {
			if i > 0 && (len(intPart)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(r)
		}
		intPart = b.String()
	}
	if frac != "" {
		intPart += "." + frac
	}
	if neg && strings.Trim(intPart, "0.,") != "" {
		intPart = "-" + intPart
	}
	return intPart
}
