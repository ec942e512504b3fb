package report

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"slices"
	"strings"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// page is what the template renders.
type page struct {
	Name        string
	Version     int64
	Description string
	Summary     []kv
	Lineage     []kv
	Artifact    []kv
	Inputs      []string
	Metrics     metricTable
	Hyper       []kv
	Board       board
	Figures     []figView
	Notes       []string
	Lift        []liftRow
	Calibration []calRow
	CurvesFrom  string
	BinWord     string
	BinTitle    string
	Generated   string
	ImgWidth    int
}

type kv struct {
	K, V string
	Mono bool
}

type metricTable struct {
	HasTest, HasCV, HasEval bool
	EvalHeader              string
	Rows                    []metricRow
}

type metricRow struct {
	Name, Code, Test, CV, Eval string
	Selection                  bool
}

type board struct {
	Metric string
	Rows   []boardRow
	Folds  []foldRow
}

type boardRow struct {
	Rank, Candidate, Family, Params, Score, Converged, FitTime, Note string
	Selected, Failed, NotConverged                                   bool
}

type foldRow struct {
	Rank, Candidate, Fold, Score, TrainRows, ValRows, Converged, Iterations, FitTime string
}

type figView struct {
	ID, Title, Caption string
	// Src is the whole src attribute: as a URL, html/template would escape every "+"
	// of the base64 data as an entity.
	Src           template.HTMLAttr
	Width, Height int
}

type liftRow struct {
	Bin, Rows, Positives, Rate, Lift, Gain, CumLift, Scores string
}

type calRow struct {
	Range, Rows, Predicted, Observed, Gap string
}

func buildPage(mv *modelv1.ModelVersion, o *options, figs []Figure, notes []string) *page {
	pg := &page{Name: mv.GetModelName(), Version: mv.GetVersion(), Description: mv.GetDescription(), Notes: notes, ImgWidth: o.width}
	if !o.generated.IsZero() {
		pg.Generated = formatGoTime(o.generated)
	}
	pg.Summary = summary(mv)
	pg.Lineage, pg.Artifact = lineage(mv)
	for _, in := range mv.GetInputs() {
		pg.Inputs = append(pg.Inputs, fmt.Sprintf("%s (%s)", in.GetName(), strings.ToLower(strings.TrimPrefix(in.GetType().String(), "VALUE_TYPE_"))))
	}
	pg.Metrics = metricsTable(mv, o)
	keys := make([]string, 0, len(mv.GetHyperparameters()))
	for k := range mv.GetHyperparameters() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		pg.Hyper = append(pg.Hyper, kv{K: k, V: formatValue(mv.GetHyperparameters()[k]), Mono: true})
	}
	pg.Board = leaderboard(mv)
	for _, f := range figs {
		pg.Figures = append(pg.Figures, figView{
			ID: f.Name, Title: f.Title, Caption: f.Caption, Width: f.Width, Height: f.Height,
			Src: template.HTMLAttr(`src="data:image/png;base64,` + base64.StdEncoding.EncodeToString(f.PNG) + `"`),
		})
	}
	if mv.GetTask() == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION {
		if curves, src := classificationCurves(mv, o); curves != nil {
			pg.CurvesFrom = src
			pg.BinWord = binWord(len(curves.GetLift()))
			pg.BinTitle = strings.ToUpper(pg.BinWord[:1]) + pg.BinWord[1:]
			pg.Lift = liftRows(curves.GetLift())
			pg.Calibration = calRows(curves.GetCalibration())
		}
	}
	return pg
}

func summary(mv *modelv1.ModelVersion) []kv {
	out := []kv{
		{K: "Family", V: familyName(mv.GetFamily())},
		{K: "Task", V: taskName(mv.GetTask())},
	}
	if m := mv.GetSelectionMetric(); m != "" {
		out = append(out, kv{K: "Selection metric", V: fmt.Sprintf("%s (%s, %s)", metricName(m), m, directionText(mv))})
		if v, ok := metricValue(mv.GetCvMetrics(), m); ok {
			sd := 0.0
			for _, x := range mv.GetCvMetrics() {
				if x.GetName() == m {
					sd = x.GetStdDev()
				}
			}
			out = append(out, kv{K: "Cross-validation " + metricName(m), V: formatMeanSD(v, sd)})
		}
		if v, ok := metricValue(mv.GetTestMetrics(), m); ok {
			out = append(out, kv{K: "Test " + metricName(m), V: formatMetric(v)})
		}
	}
	conv := "yes"
	if !mv.GetConverged() {
		conv = "no (the solver hit its iteration cap)"
	}
	out = append(out, kv{K: "Final fit converged", V: conv})
	if f := fallbackName(mv.GetKernelFallback()); f != "" {
		out = append(out, kv{K: "Kernel fallback", V: f})
	}
	if t := formatTime(mv.GetCreateTime()); t != "" {
		out = append(out, kv{K: "Registered", V: t})
	}
	if labels := mv.GetLabels(); len(labels) > 0 {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + labels[k]
		}
		out = append(out, kv{K: "Labels", V: strings.Join(parts, ", "), Mono: true})
	}
	return out
}

func lineage(mv *modelv1.ModelVersion) (lin, art []kv) {
	l := mv.GetLineage()
	add := func(k, v string, mono bool) {
		if v != "" {
			lin = append(lin, kv{K: k, V: v, Mono: mono})
		}
	}
	add("Training job", l.GetJobId(), true)
	if fs := l.GetFeatureSet(); fs != "" {
		add("Feature set", fmt.Sprintf("%s v%d", fs, l.GetFeatureSetVersion()), true)
	}
	data := TrainingData(mv)
	if ts := data.GetTrainingSet(); ts != nil {
		add("Label", labelText(ts.GetLabel()), false)
		add("Cutoff", cutoffText(ts.GetCutoff()), false)
		add("Test split", splitText(ts.GetSplit()), false)
		if names := ts.GetFeatureNames(); len(names) > 0 {
			add("Feature columns", strings.Join(names, ", "), true)
		}
	}
	if in := data.GetInteractions(); in != nil {
		add("Interactions", interactionsText(in), false)
		add("Test split", interactionSplitText(in.GetSplit()), false)
	}
	if f := data.GetTrainFilter(); f != nil {
		add("Training rows kept", fmt.Sprintf("import row number mod %d in {%s}", f.GetModulus(), int64List(f.GetRemainders())), false)
	}
	add("Training set id", l.GetTrainingSetId(), true)
	if l.GetDataStartTime() != nil || l.GetDataEndTime() != nil {
		add("Data from", formatTime(l.GetDataStartTime())+" to "+formatTime(l.GetDataEndTime()), false)
	}
	rows := fmt.Sprintf("%s training", formatInt(l.GetTrainRows()))
	if l.GetTestRows() > 0 {
		rows += fmt.Sprintf(", %s test", formatInt(l.GetTestRows()))
	} else {
		rows += ", no test split"
	}
	if p := l.GetPositiveRows(); p > 0 && l.GetTrainRows() > 0 {
		rows += fmt.Sprintf("; %s positive training rows (%.2f%%)", formatInt(p), 100*float64(p)/float64(l.GetTrainRows()))
	}
	add("Rows", rows, false)
	if l.GetUsers() > 0 || l.GetItems() > 0 {
		add("Users and items", fmt.Sprintf("%s users, %s items", formatInt(l.GetUsers()), formatInt(l.GetItems())), false)
	}
	if sel := l.GetSelectedFeatures(); len(sel) > 0 {
		add("Selected features", strings.Join(sel, ", "), true)
	}
	if l.GetStreamSequence() > 0 {
		add("Event stream sequence", fmt.Sprint(l.GetStreamSequence()), true)
	}
	if l.GetSeed() > 0 {
		add("Search seed", fmt.Sprint(l.GetSeed()), true)
	}
	add("Code version", l.GetCodeVersion(), true)
	a := mv.GetArtifact()
	if a.GetUri() != "" {
		art = append(art, kv{K: "Artifact", V: a.GetUri(), Mono: true})
	}
	if a.GetSha256() != "" {
		art = append(art, kv{K: "SHA-256", V: a.GetSha256(), Mono: true})
	}
	if a.GetSizeBytes() > 0 {
		art = append(art, kv{K: "Size", V: formatInt(a.GetSizeBytes()) + " bytes"})
	}
	return lin, art
}

func metricsTable(mv *modelv1.ModelVersion, o *options) metricTable {
	t := metricTable{HasTest: len(mv.GetTestMetrics()) > 0, HasCV: len(mv.GetCvMetrics()) > 0, HasEval: len(o.eval.GetMetrics()) > 0}
	if t.HasEval {
		t.EvalHeader = "Evaluation"
		if n := o.eval.GetRowsLabelled(); n > 0 {
			t.EvalHeader = fmt.Sprintf("Evaluation (%s rows)", formatInt(n))
		}
	}
	var order []string
	for _, ms := range [][]*commonv1.Metric{mv.GetTestMetrics(), mv.GetCvMetrics(), o.eval.GetMetrics()} {
		for _, m := range ms {
			if !slices.Contains(order, m.GetName()) {
				order = append(order, m.GetName())
			}
		}
	}
	find := func(ms []*commonv1.Metric, name string) *commonv1.Metric {
		for _, m := range ms {
			if m.GetName() == name {
				return m
			}
		}
		return nil
	}
	for _, name := range order {
		r := metricRow{Name: metricName(name), Code: name, Selection: name == mv.GetSelectionMetric(), Test: "—", CV: "—", Eval: "—"}
		if m := find(mv.GetTestMetrics(), name); m != nil {
			r.Test = formatMetric(m.GetValue())
		}
		if m := find(mv.GetCvMetrics(), name); m != nil {
			r.CV = formatMeanSD(m.GetValue(), m.GetStdDev())
		}
		if m := find(o.eval.GetMetrics(), name); m != nil {
			r.Eval = formatMetric(m.GetValue())
		}
		t.Rows = append(t.Rows, r)
	}
	return t
}

func leaderboard(mv *modelv1.ModelVersion) board {
	b := board{Metric: metricName(mv.GetSelectionMetric())}
	if mv.GetSelectionMetric() == "" {
		b.Metric = "Score"
	}
	names := CandidateNames(mv.GetLeaderboard())
	for _, e := range mv.GetLeaderboard() {
		// Unlabelled candidates go by their index, their hyperparameters in their own column;
		// labelled ones by a name that tells apart the candidates sharing a label.
		cand := fmt.Sprintf("candidate %d", e.GetCandidateIndex())
		if e.GetLabel() != "" {
			cand = names[e.GetCandidateIndex()]
		}
		r := boardRow{
			Rank: fmt.Sprint(e.GetRank()), Candidate: cand, Family: familyName(e.GetFamily()),
			Params: formatParams(e.GetHyperparameters()), Score: formatMeanSD(e.GetScore(), e.GetScoreStdDev()),
			Converged: "yes", FitTime: formatFitTime(e.GetMeanFitTime()), Selected: e.GetRank() == 1,
		}
		var notes []string
		if !e.GetConverged() {
			r.Converged, r.NotConverged = "no", true
		}
		if f := fallbackName(e.GetKernelFallback()); f != "" {
			notes = append(notes, "kernel fallback: "+f)
		}
		if p := e.GetError(); p != nil {
			r.Failed, r.Score, r.Converged = true, "failed", "—"
			notes = append(notes, strings.TrimSpace(p.GetReason()+": "+p.GetDescription()))
		}
		r.Note = strings.Join(notes, "; ")
		b.Rows = append(b.Rows, r)
		for _, f := range e.GetFolds() {
			score := "—"
			if v, ok := metricValue(f.GetMetrics(), mv.GetSelectionMetric()); ok {
				score = formatMetric(v)
			}
			conv := "yes"
			if !f.GetConverged() {
				conv = "no"
			}
			b.Folds = append(b.Folds, foldRow{
				Rank: r.Rank, Candidate: cand, Fold: fmt.Sprint(f.GetFold()), Score: score,
				TrainRows: formatInt(f.GetTrainRows()), ValRows: formatInt(f.GetValidationRows()),
				Converged: conv, Iterations: fmt.Sprint(f.GetIterations()), FitTime: formatFitTime(f.GetFitTime()),
			})
		}
	}
	return b
}

func liftRows(lift []*modelv1.LiftBin) []liftRow {
	var rows int64
	for _, b := range lift {
		rows += b.GetRows()
	}
	var out []liftRow
	for _, b := range lift {
		out = append(out, liftRow{
			Bin: fmt.Sprint(b.GetBin()), Rows: formatInt(b.GetRows()), Positives: formatInt(b.GetPositives()),
			Rate: fmt.Sprintf("%.2f%%", 100*b.GetResponseRate()), Lift: fmt.Sprintf("%.2f", b.GetLift()),
			Gain: fmt.Sprintf("%.1f%%", 100*b.GetCumulativeGain()), CumLift: fmt.Sprintf("%.2f", b.GetCumulativeLift()),
			Scores: formatMetric(b.GetMinProbability()) + " – " + formatMetric(b.GetMaxProbability()),
		})
	}
	return out
}

func calRows(cal []*modelv1.CalibrationBin) []calRow {
	var out []calRow
	for i, b := range cal {
		closing := ")"
		if i == len(cal)-1 {
			closing = "]"
		}
		r := calRow{Range: fmt.Sprintf("[%.2f, %.2f%s", b.GetLowerBound(), b.GetUpperBound(), closing), Rows: formatInt(b.GetRows()), Predicted: "—", Observed: "—", Gap: "—"}
		if b.GetRows() > 0 {
			r.Predicted, r.Observed = formatMetric(b.GetMeanPredicted()), formatMetric(b.GetObservedRate())
			r.Gap = fmt.Sprintf("%+.4f", b.GetObservedRate()-b.GetMeanPredicted())
		}
		out = append(out, r)
	}
	return out
}

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Name}} v{{.Version}} · Bullseye model report</title>
<style>
body{margin:0;background:#f4f5f7;color:#222;font:15px/1.45 -apple-system,"Segoe UI",Roboto,"Liberation Sans",Arial,sans-serif}
main{max-width:1340px;margin:0 auto;padding:24px 28px 40px}
header{background:#fff;border:1px solid #dde0e4;border-radius:8px;padding:20px 24px;margin-bottom:20px}
h1{margin:0 0 4px;font-size:26px}
h1 .version{color:#1f77b4}
h2{font-size:19px;margin:0 0 12px;border-bottom:2px solid #1f77b4;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 8px}
section{background:#fff;border:1px solid #dde0e4;border-radius:8px;padding:18px 24px;margin-bottom:20px}
.lead{color:#555;margin:0 0 12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0}
dt{color:#666}
dd{margin:0}
.mono,code{font-family:"Liberation Mono",Menlo,Consolas,monospace;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:14px;margin:4px 0}
th,td{padding:5px 10px;border-bottom:1px solid #e6e8eb;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.selected td{background:#eaf3fb}
tr.failed td{color:#a33}
.badge{display:inline-block;font-size:11px;padding:1px 6px;border-radius:9px;background:#1f77b4;color:#fff;margin-left:6px;vertical-align:1px}
.warn{color:#b35c00}
.muted{color:#777}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:20px}
figure{margin:0;border:1px solid #e6e8eb;border-radius:6px;padding:8px;background:#fff}
figure img{display:block;width:100%;max-width:{{.ImgWidth}}px;height:auto;margin:0 auto}
figcaption{font-size:13px;color:#555;padding:6px 4px 0}
.note{background:#fff8e6;border-left:4px solid #e0a100;padding:8px 12px;margin:8px 0}
details summary{cursor:pointer;color:#1f77b4;margin-top:10px}
footer{color:#888;font-size:12px;text-align:center}
</style>
</head>
<body>
<main>
<header id="header">
<h1>{{.Name}} <span class="version">v{{.Version}}</span></h1>
{{with .Description}}<p class="lead">{{.}}</p>{{end}}
<dl id="summary">
{{range .Summary}}<dt>{{.K}}</dt><dd{{if .Mono}} class="mono"{{end}}>{{.V}}</dd>
{{end}}</dl>
</header>

<section id="lineage">
<h2>Data lineage</h2>
<dl>
{{range .Lineage}}<dt>{{.K}}</dt><dd{{if .Mono}} class="mono"{{end}}>{{.V}}</dd>
{{end}}{{range .Artifact}}<dt>{{.K}}</dt><dd{{if .Mono}} class="mono"{{end}}>{{.V}}</dd>
{{end}}</dl>
{{with .Inputs}}<h3>Inputs ({{len .}})</h3>
<p class="mono">{{range $i, $v := .}}{{if $i}}, {{end}}{{$v}}{{end}}</p>{{end}}
</section>

<section id="metrics">
<h2>Metrics</h2>
{{if not .Metrics.HasTest}}<p class="note">No test split: the version's quality comes from cross-validation only.</p>
{{end}}{{with .Metrics.Rows}}<table>
<thead><tr><th>Metric</th>{{if $.Metrics.HasTest}}<th class="num">Test</th>{{end}}{{if $.Metrics.HasCV}}<th class="num">Cross-validation (mean ± sd)</th>{{end}}{{if $.Metrics.HasEval}}<th class="num">{{$.Metrics.EvalHeader}}</th>{{end}}</tr></thead>
<tbody>
{{range .}}<tr{{if .Selection}} class="selected"{{end}}><td>{{.Name}} <code class="muted">{{.Code}}</code>{{if .Selection}}<span class="badge">selection</span>{{end}}</td>{{if $.Metrics.HasTest}}<td class="num">{{.Test}}</td>{{end}}{{if $.Metrics.HasCV}}<td class="num">{{.CV}}</td>{{end}}{{if $.Metrics.HasEval}}<td class="num">{{.Eval}}</td>{{end}}</tr>
{{end}}</tbody>
</table>{{else}}<p class="muted">No metrics recorded.</p>{{end}}
{{with .Hyper}}<h3>Hyperparameters of the selected model</h3>
<table><tbody>
{{range .}}<tr><td class="mono">{{.K}}</td><td class="mono">{{.V}}</td></tr>
{{end}}</tbody></table>{{end}}
</section>

<section id="leaderboard">
<h2>Leaderboard</h2>
{{with .Board.Rows}}<p class="lead">Every candidate of the search, ranked by its cross-validated {{$.Board.Metric}}; rank 1 was selected and refitted on all training rows.</p>
<table>
<thead><tr><th class="num">Rank</th><th>Candidate</th><th>Family</th><th>Hyperparameters</th><th class="num">{{$.Board.Metric}} (mean ± sd)</th><th>Converged</th><th class="num">Fit time / fold</th><th>Notes</th></tr></thead>
<tbody>
{{range .}}<tr{{if .Selected}} class="selected"{{else if .Failed}} class="failed"{{end}}><td class="num">{{.Rank}}</td><td>{{.Candidate}}{{if .Selected}}<span class="badge">selected</span>{{end}}</td><td>{{.Family}}</td><td class="mono">{{.Params}}</td><td class="num">{{.Score}}</td><td{{if .NotConverged}} class="warn"{{end}}>{{.Converged}}</td><td class="num">{{.FitTime}}</td><td>{{.Note}}</td></tr>
{{end}}</tbody>
</table>
{{with $.Board.Folds}}<details>
<summary>Per-fold results ({{len .}} fits)</summary>
<table>
<thead><tr><th class="num">Rank</th><th>Candidate</th><th class="num">Fold</th><th class="num">{{$.Board.Metric}}</th><th class="num">Training rows</th><th class="num">Validation rows</th><th>Converged</th><th class="num">Iterations</th><th class="num">Fit time</th></tr></thead>
<tbody>
{{range .}}<tr><td class="num">{{.Rank}}</td><td>{{.Candidate}}</td><td class="num">{{.Fold}}</td><td class="num">{{.Score}}</td><td class="num">{{.TrainRows}}</td><td class="num">{{.ValRows}}</td><td>{{.Converged}}</td><td class="num">{{.Iterations}}</td><td class="num">{{.FitTime}}</td></tr>
{{end}}</tbody>
</table>
</details>{{end}}{{else}}<p class="muted">No leaderboard recorded.</p>{{end}}
</section>

<section id="plots">
<h2>Plots</h2>
{{range .Notes}}<p class="note">{{.}}</p>
{{end}}{{with .Figures}}<div class="figures">
{{range .}}<figure id="fig-{{.ID}}">
<img {{.Src}} width="{{.Width}}" height="{{.Height}}" alt="{{.Title}}">
<figcaption>{{.Caption}}</figcaption>
</figure>
{{end}}</div>{{else}}{{if not .Notes}}<p class="muted">No plots for this kind of model.</p>{{end}}{{end}}
{{with .Lift}}<h3 id="lift-table">Lift and gains by {{$.BinWord}} ({{$.CurvesFrom}})</h3>
<table>
<thead><tr><th class="num">{{$.BinTitle}}</th><th class="num">Rows</th><th class="num">Positives</th><th class="num">Positive rate</th><th class="num">Lift</th><th class="num">Cumulative gain</th><th class="num">Cumulative lift</th><th class="num">Scores</th></tr></thead>
<tbody>
{{range .}}<tr><td class="num">{{.Bin}}</td><td class="num">{{.Rows}}</td><td class="num">{{.Positives}}</td><td class="num">{{.Rate}}</td><td class="num">{{.Lift}}</td><td class="num">{{.Gain}}</td><td class="num">{{.CumLift}}</td><td class="num">{{.Scores}}</td></tr>
{{end}}</tbody>
</table>{{end}}
{{with .Calibration}}<h3 id="calibration-table">Calibration table ({{$.CurvesFrom}})</h3>
<table>
<thead><tr><th>Predicted probability</th><th class="num">Rows</th><th class="num">Mean predicted</th><th class="num">Observed rate</th><th class="num">Observed − predicted</th></tr></thead>
<tbody>
{{range .}}<tr><td class="mono">{{.Range}}</td><td class="num">{{.Rows}}</td><td class="num">{{.Predicted}}</td><td class="num">{{.Observed}}</td><td class="num">{{.Gap}}</td></tr>
{{end}}</tbody>
</table>{{end}}
</section>

<footer>Bullseye model report · {{.Name}} v{{.Version}}{{with .Generated}} · generated {{.}}{{end}}</footer>
</main>
</body>
</html>
`))
