package suite

import (
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// writePlots writes the report's bar charts: rate.svg (median Mpps per
// contender) and http.svg (median req/s per contender and mode), and
// lists them in r.Files.
func (r *Report) writePlots(dir string) error {
	if r.Rate != nil && len(r.Rate.Summary) > 0 {
		var names []string
		var vals plotter.Values
		for _, sm := range r.Rate.Summary {
			names = append(names, sm.Name)
			vals = append(vals, sm.MedianMpps)
		}
		p, err := barChart("packet rate through the LB, 64-byte UDP (median of rounds)", "Mpps", names, []string{""}, []plotter.Values{vals})
		if err != nil {
			return err
		}
		if err := r.save(p, filepath.Join(dir, "rate.svg"), len(names)); err != nil {
			return err
		}
	}
	if names, groups, series := r.httpBars(); len(names) > 0 {
		vals := make([]plotter.Values, len(series))
		for i := range series {
			vals[i] = series[i]
		}
		p, err := barChart("HTTP through the LB, wrk (median of rounds)", "requests/s", names, groups, vals)
		if err != nil {
			return err
		}
		if err := r.save(p, filepath.Join(dir, "http.svg"), len(names)); err != nil {
			return err
		}
	}
	return r.latencyPlot(dir)
}

// barChart draws one group of bars per series (groups[i] names series i)
// over the nominal x axis names.
func barChart(title, ylabel string, names, groups []string, series []plotter.Values) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	w := vg.Points(14)
	for i, vals := range series {
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", title, err)
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(series)-1)/2)
		p.Add(bars)
		if groups[i] != "" {
			p.Legend.Add(groups[i], bars)
		}
	}
	p.Legend.Top = true
	p.NominalX(names...)
	// Room for the outer labels and, above the highest bar, the legend.
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	top := 0.0
	for _, vals := range series {
		for _, v := range vals {
			top = max(top, v)
		}
	}
	p.Y.Max = 1.2 * top
	return p, nil
}

func (r *Report) save(p *plot.Plot, path string, bars int) error {
	c := vgsvg.New(vg.Length(max(6, 1.1*float64(bars)))*vg.Inch, 4*vg.Inch)
	p.Draw(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	r.Files = append(r.Files, path)
	return nil
}
