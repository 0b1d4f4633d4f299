package trafficgen

import (
	"fmt"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// WriteSVG writes PREFIX-throughput.svg (tx and rx Mpps per second) and
// PREFIX-latency.svg (latency CDF per class on a log time axis).
func (r *Result) WriteSVG(prefix string) error {
	tp := plot.New()
	tp.Title.Text = "trafficgen throughput"
	tp.X.Label.Text = "time (s)"
	tp.Y.Label.Text = "Mpps"
	tp.Y.Min = 0
	var txs, rxs plotter.XYs
	for _, s := range r.Series {
		txs = append(txs, plotter.XY{X: s.T, Y: s.TxMpps})
		rxs = append(rxs, plotter.XY{X: s.T, Y: s.RxMpps})
	}
	if err := addLines(tp, "tx", txs, "rx", rxs); err != nil {
		return err
	}
	if err := saveSVG(tp, prefix+"-throughput.svg"); err != nil {
		return err
	}

	lp := plot.New()
	lp.Title.Text = "trafficgen latency CDF"
	lp.X.Label.Text = "latency (µs)"
	lp.Y.Label.Text = "fraction of packets"
	lp.X.Scale = plot.LogScale{}
	lp.X.Tick.Marker = plot.LogTicks{Prec: -1}
	lp.Y.Min, lp.Y.Max = 0, 1
	var lines []any
	for i := range r.Classes {
		c := &r.Classes[i]
		if c.hist == nil || c.hist.N == 0 {
			continue
		}
		var xys plotter.XYs
		for _, p := range c.hist.CDF() {
			// A log axis cannot show 0: the exact buckets below
			// 1 ns are drawn at 1 ns.
			xys = append(xys, plotter.XY{X: max(float64(p.Nanos), 1) / 1e3, Y: p.Fraction})
		}
		lines = append(lines, c.Class, xys)
	}
	if len(lines) == 0 {
		// Nothing received: an empty frame says so more plainly than no file.
		lp.X.Scale, lp.X.Tick.Marker = plot.LinearScale{}, plot.DefaultTicks{}
		lp.Title.Text += " (no packets received)"
	} else if err := addLines(lp, lines...); err != nil {
		return err
	}
	return saveSVG(lp, prefix+"-latency.svg")
}

func addLines(p *plot.Plot, nameXYs ...any) error {
	if err := plotutil.AddLines(p, nameXYs...); err != nil {
		return fmt.Errorf("plot %s: %w", p.Title.Text, err)
	}
	return nil
}

func saveSVG(p *plot.Plot, path string) error {
	c := vgsvg.New(8*vg.Inch, 4.5*vg.Inch)
	p.Draw(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
