package sandbox

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Colours of the schedulers in the charts, in the order of the reports,
// and of the interruption marks.
var (
	schedulerColors = []color.RGBA{
		{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // blue: muster
		{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // orange: the default scheduler
		{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	}
	markColor = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	dashed    = []vg.Length{vg.Points(5), vg.Points(3)}
	dotted    = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
)

const (
	chartWidth  = 7.5 * vg.Inch
	chartHeight = 3.2 * vg.Inch
)

// WriteHTML writes the reports of one trace (one, or muster's and the
// default scheduler's) as one self-contained HTML page: the side-by-side
// table, charts of the replay (inline SVG drawn by gonum/plot) and the
// timeline. Opening it needs no network.
func WriteHTML(w io.Writer, rs []Report) error {
	if len(rs) == 0 {
		return fmt.Errorf("no report to write")
	}
	page := htmlPage{Trace: rs[0].Trace, TimeScale: rs[0].TimeScale, Length: fmtTrace(time.Duration(rs[0].TraceSeconds * float64(time.Second)))}
	for i, r := range rs {
		page.Schedulers = append(page.Schedulers, htmlScheduler{Name: r.Scheduler, Color: hexColor(schedulerColors[i%len(schedulerColors)])})
		page.Timelines = append(page.Timelines, htmlTimeline{Scheduler: r.Scheduler, Lines: r.Timeline})
	}
	page.Head, page.Rows = reportRows(rs)

	var charts []chart
	for _, q := range leafQueues(rs) {
		charts = append(charts, queueShareChart(rs, q))
	}
	charts = append(charts, waitingChart(rs), capacityChart(rs), gangWaitChart(rs))
	for _, c := range charts {
		if c.plot == nil {
			continue
		}
		svg, err := renderSVG(c.plot)
		if err != nil {
			return fmt.Errorf("drawing the chart %q: %w", c.plot.Title.Text, err)
		}
		page.Charts = append(page.Charts, htmlChart{Title: c.plot.Title.Text, Note: c.note, SVG: svg})
	}
	return htmlTemplate.Execute(w, page)
}

type htmlPage struct {
	Trace      string
	TimeScale  float64
	Length     string
	Schedulers []htmlScheduler
	Head       []string
	Rows       [][]string
	Charts     []htmlChart
	Timelines  []htmlTimeline
}

type htmlScheduler struct{ Name, Color string }

type htmlChart struct {
	Title, Note string
	SVG         template.HTML
}

type htmlTimeline struct {
	Scheduler string
	Lines     []string
}

// chart is a plot and a sentence on how to read it.
type chart struct {
	plot *plot.Plot
	note string
}

// leafQueues are the queues of the first report, in its order.
func leafQueues(rs []Report) []string {
	var out []string
	for _, q := range rs[0].Queues {
		out = append(out, q.Queue)
	}
	return out
}

func newTimePlot(title, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "trace time (minutes)"
	p.Y.Label.Text = yLabel
	p.X.Min, p.Y.Min = 0, 0
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds a line of (minutes, value) points. The page says what the
// colours and dashes are (a legend inside the plot would hide the lines).
func addLine(p *plot.Plot, pts plotter.XYs, c color.Color, dashes []vg.Length) {
	if len(pts) == 0 {
		return
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return // NaN or infinite values: nothing to draw
	}
	l.LineStyle.Color, l.LineStyle.Width, l.LineStyle.Dashes = c, vg.Points(1.5), dashes
	p.Add(l)
}

// series turns the points of a report into (minutes, f(point)).
func series(r Report, f func(SeriesPoint) float64) plotter.XYs {
	out := make(plotter.XYs, 0, len(r.Series.Points))
	for _, pt := range r.Series.Points {
		out = append(out, plotter.XY{X: pt.At.Minutes(), Y: f(pt)})
	}
	return out
}

// finishTimePlot leaves room above the data and draws the interruption
// marks of the first report (the trace's, the same in every run) as
// vertical lines: solid for a notice, dotted for capacity gone or back.
func finishTimePlot(p *plot.Plot, rs []Report) {
	p.Y.Max = math.Max(p.Y.Max*1.1, 1)
	for _, m := range rs[0].Series.Marks {
		x := m.At.Minutes()
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: p.Y.Max}})
		if err != nil {
			continue
		}
		l.LineStyle.Color, l.LineStyle.Width = markColor, vg.Points(1)
		if m.Label != "interruption notice" {
			l.LineStyle.Dashes = dotted
		}
		p.Add(l)
	}
}

// queueShareChart: a queue's CPU held against its fair share, per scheduler.
func queueShareChart(rs []Report, queue string) chart {
	p := newTimePlot("CPU held and fair share: "+queue, "CPU cores")
	for i, r := range rs {
		c := schedulerColors[i%len(schedulerColors)]
		addLine(p, series(r, func(pt SeriesPoint) float64 { return pt.HeldCPU[queue] }), c, nil)
		addLine(p, series(r, func(pt SeriesPoint) float64 { return pt.FairCPU[queue] }), c, dashed)
	}
	finishTimePlot(p, rs)
	return chart{plot: p, note: "Solid: the CPU the queue's pods held; dashed: its weighted dominant-resource fair share of the cluster " +
		"(what it would get were every queue served fairly), computed the same way for every scheduler."}
}

// waitingChart: pods and gangs waiting, per scheduler.
func waitingChart(rs []Report) chart {
	p := newTimePlot("Pods and gangs waiting", "count")
	for i, r := range rs {
		c := schedulerColors[i%len(schedulerColors)]
		addLine(p, series(r, func(pt SeriesPoint) float64 { return float64(pt.Pending) }), c, nil)
		addLine(p, series(r, func(pt SeriesPoint) float64 { return float64(pt.GangsWaiting) }), c, dashed)
	}
	finishTimePlot(p, rs)
	return chart{plot: p, note: "Solid: pods submitted and not bound yet; dashed: gangs (training jobs, Spark apps with a reservation) none of whose members is bound."}
}

// capacityChart: pods running on spot and on on-demand nodes, per scheduler.
func capacityChart(rs []Report) chart {
	p := newTimePlot("Pods running on spot and on-demand nodes", "pods")
	for i, r := range rs {
		c := schedulerColors[i%len(schedulerColors)]
		addLine(p, series(r, func(pt SeriesPoint) float64 { return float64(pt.Spot) }), c, nil)
		addLine(p, series(r, func(pt SeriesPoint) float64 { return float64(pt.OnDemand) }), c, dashed)
	}
	finishTimePlot(p, rs)
	return chart{plot: p, note: "Running pods by the capacity type of their node; solid: spot, dashed: on-demand. " +
		"At a spot interruption notice the pool's nodes are tainted; when the capacity goes, so do their pods."}
}

// gangWaitChart: each gang's wait for admission, a bar per scheduler.
func gangWaitChart(rs []Report) chart {
	var names []string
	index := map[string]int{}
	for _, r := range rs {
		for _, g := range r.Series.Gangs {
			if _, ok := index[g.Gang]; !ok {
				index[g.Gang] = len(names)
				names = append(names, g.Gang)
			}
		}
	}
	if len(names) == 0 {
		return chart{}
	}
	p := plot.New()
	p.Title.Text = "Gang waits: first pod to quorum bound"
	p.Y.Label.Text = "minutes (trace time)"
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	width := vg.Points(math.Max(4, math.Min(18, 360/float64(len(names)*len(rs)))))
	never := false
	for i, r := range rs {
		vals := make(plotter.Values, len(names))
		for _, g := range r.Series.Gangs {
			vals[index[g.Gang]] = g.Wait.Minutes()
			never = never || !g.Admitted
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			continue
		}
		bars.Color = schedulerColors[i%len(schedulerColors)]
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(len(rs)-1)/2)
		p.Add(bars)
	}
	labels := make([]string, len(names))
	for i, n := range names {
		labels[i] = n[strings.Index(n, "/")+1:]
	}
	p.NominalX(labels...)
	if len(names) > 8 {
		p.X.Tick.Label.Rotation = math.Pi / 4
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	}
	p.Y.Max = math.Max(p.Y.Max*1.1, 1)
	note := "How long each training job and Spark app with a reservation waited, from its first pod's submission until its quorum was bound."
	if never {
		note += " A gang that never reached its quorum is drawn to the end of the run."
	}
	return chart{plot: p, note: note}
}

// renderSVG draws a plot as an inline SVG element.
func renderSVG(p *plot.Plot) (template.HTML, error) {
	c := vgsvg.New(chartWidth, chartHeight)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", err
	}
	svg := buf.String()
	if i := strings.Index(svg, "<svg"); i > 0 {
		svg = svg[i:] // drop the XML prolog: the SVG is inlined in HTML
	}
	return template.HTML(svg), nil //nolint:gosec // drawn here, from numbers and escaped text
}

func hexColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

var htmlTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>muster sandbox: {{.Trace}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 2rem auto; max-width: 64rem; padding: 0 1rem; color: #222; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.sub { color: #555; margin-top: 0; }
.key span { display: inline-block; margin-right: 1.2rem; }
.swatch { display: inline-block; width: .9rem; height: .9rem; border-radius: 2px; vertical-align: -.1rem; margin-right: .3rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .8rem; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f6f6f6; }
figure { margin: 1.2rem 0 2rem; }
figure svg { width: 100%; height: auto; }
figcaption { color: #555; font-size: .9rem; }
pre { background: #f8f8f8; padding: .8rem; overflow-x: auto; font-size: .85rem; }
</style>
</head>
<body>
<h1>muster sandbox: {{.Trace}}</h1>
<p class="sub">The same trace replayed with {{range $i, $s := .Schedulers}}{{if $i}} and {{end}}{{$s.Name}}{{end}}, at {{.TimeScale}}x speed, {{.Length}} of trace time. Times are trace time.</p>
<p class="key">{{range .Schedulers}}<span><span class="swatch" style="background: {{.Color}}"></span>{{.Name}}</span>{{end}}<span><span class="swatch" style="background: #d62728"></span>spot interruptions (solid: notice; dotted: capacity gone or back)</span></p>

<h2>Side by side</h2>
<table>
<tr><th></th>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range $i, $c := .}}{{if $i}}<td>{{$c}}</td>{{else}}<th>{{$c}}</th>{{end}}{{end}}</tr>
{{end}}</table>

<h2>Over the replay</h2>
<p class="key">{{range .Schedulers}}<span><span class="swatch" style="background: {{.Color}}"></span>{{.Name}}</span>{{end}}<span><span class="swatch" style="background: #d62728"></span>spot interruptions</span></p>
{{range .Charts}}<figure>
{{.SVG}}
<figcaption>{{.Note}}</figcaption>
</figure>
{{end}}
<h2>Timeline</h2>
{{range .Timelines}}<details{{if eq .Scheduler "muster"}} open{{end}}>
<summary>{{.Scheduler}}</summary>
<pre>{{range .Lines}}{{.}}
{{end}}</pre>
</details>
{{end}}
</body>
</html>
`))
