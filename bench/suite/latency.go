package suite

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"

	"gvs/bench/trafficgen"
	"gvs/bench/vethbench"
)

// LatencyDUTs are the contenders of the latency phase, in run order;
// xdp-tx is the reference.
var LatencyDUTs = []string{vethbench.DUTXDPTX, vethbench.DUTReflector, vethbench.DUTGvsAFXDP, vethbench.DUTGvsAFPkt, vethbench.DUTNftNumgen}

// LatencyRate is the fixed rate of the latency phase: well below what
// every contender forwards on the project's machines, so what is measured
// is the time through the contender, not a queue building up.
const LatencyRate = 100_000

// LatencyResult is one contender's latency at the fixed rate.
type LatencyResult struct {
	Contender string             `json:"contender"`
	RatePPS   float64            `json:"rate_pps"`
	Sent      uint64             `json:"sent"`
	Received  uint64             `json:"received"`
	LossPct   float64            `json:"loss_pct"`
	Reordered uint64             `json:"reordered"`
	Latency   trafficgen.Latency `json:"latency"`
	// Ratios of p50 and p99 to xdp-tx's in the same run.
	RatioP50 *float64 `json:"ratio_p50_to_xdp_tx,omitempty"`
	RatioP99 *float64 `json:"ratio_p99_to_xdp_tx,omitempty"`
	Error    string   `json:"error,omitempty"`

	cdf []trafficgen.CDFPoint
}

// runLatency sends stamped 64-byte UDP packets at LatencyRate with
// trafficgen through each contender, on the packet-rate topology: sent by
// AF_PACKET on the generator veth, received back on the same veth by an
// AF_XDP sink, which takes what comes back to the VIP (gvs, the
// reflectors) or to the backends (nftables; their addresses are put on the
// generator veth for that).
func runLatency(ctx context.Context, o *Options, rep *Report) (err error) {
	fmt.Fprintf(o.Progress, "== latency at %d packets/s with trafficgen\n", LatencyRate)
	topo, err := vethbench.NewTopology()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := topo.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	err = topo.Gen.Do(func() error {
		l, err := netlink.LinkByName(topo.GenIf)
		if err != nil {
			return err
		}
		for _, b := range vethbench.Backends {
			a := &netlink.Addr{IPNet: &net.IPNet{IP: b.AsSlice(), Mask: net.CIDRMask(32, 32)}}
			if err := netlink.AddrAdd(l, a); err != nil {
				return fmt.Errorf("address %s on %s: %w", b, topo.GenIf, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	genCPU, dutCPU, _ := vethbench.PickCPUs()
	log := o.Veth.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	const flows = 1024
	dur := max(o.Duration, time.Second)
	for _, name := range LatencyDUTs {
		if ctx.Err() != nil {
			break
		}
		lr := LatencyResult{Contender: name, RatePPS: LatencyRate}
		func() {
			d, err := vethbench.NewDUT(name, flows, log)
			if err != nil {
				lr.Error = err.Error()
				return
			}
			if err := d.Start(topo, dutCPU); err != nil {
				d.Stop()
				lr.Error = "start: " + err.Error()
				return
			}
			defer d.Stop()
			res, err := trafficgen.Run(ctx, trafficgen.Options{
				Driver: trafficgen.DriverAFPacket, Netns: topo.Gen.Name, Iface: topo.GenIf,
				Sinks:  []trafficgen.Sink{{Netns: topo.Gen.Name, Iface: topo.GenIf, Driver: trafficgen.DriverAFXDP}},
				Family: "4", Proto: "udp", Flows: flows, Size: vethbench.MinFrameSize,
				Src: []netip.Addr{vethbench.GenAddr}, Dst: []netip.Addr{vethbench.VIP}, DstPort: vethbench.VIPPort,
				DstMAC: trafficgen.MAC(vethbench.DUTMAC), Rate: LatencyRate, Duration: dur, CPU: genCPU,
			}, nil)
			if err != nil {
				lr.Error = err.Error()
				return
			}
			t := &res.Total
			lr.Sent, lr.Received, lr.LossPct, lr.Reordered, lr.Latency = t.Sent, t.Received, t.LossPct, t.Reordered, t.Latency
			if h := t.Histogram(); h != nil {
				lr.cdf = h.CDF()
			}
			if lr.Received == 0 {
				lr.Error = "nothing came back"
			}
		}()
		fmt.Fprintf(o.Progress, "  %-16s sent %d received %d p50 %s p99 %s %s\n", name, lr.Sent, lr.Received,
			time.Duration(lr.Latency.P50Ns), time.Duration(lr.Latency.P99Ns), lr.Error)
		rep.Latency = append(rep.Latency, lr)
	}
	var ref *LatencyResult
	for i := range rep.Latency {
		if rep.Latency[i].Contender == vethbench.DUTXDPTX && rep.Latency[i].Error == "" {
			ref = &rep.Latency[i]
		}
	}
	var failed []string
	for i := range rep.Latency {
		x := &rep.Latency[i]
		if x.Error != "" {
			failed = append(failed, x.Contender)
			continue
		}
		if ref != nil {
			x.RatioP50 = ratio(float64(x.Latency.P50Ns), float64(ref.Latency.P50Ns))
			x.RatioP99 = ratio(float64(x.Latency.P99Ns), float64(ref.Latency.P99Ns))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return ctx.Err()
}

func ratio(a, b float64) *float64 {
	if a <= 0 || b <= 0 {
		return nil
	}
	v := a / b
	return &v
}

func us(ns uint64) float64 { return float64(ns) / 1e3 }

func (r *Report) writeLatency(b *strings.Builder) {
	if len(r.Latency) == 0 {
		return
	}
	fmt.Fprintf(b, "\n== Latency: 64-byte UDP at %d packets/s, 1024 flows, trafficgen (AF_PACKET out, AF_XDP sink); ratios to xdp-tx\n", LatencyRate)
	fmt.Fprintf(b, "%-16s %9s %9s %7s %9s %9s %9s %9s %9s\n", "contender", "sent", "received", "loss%", "p50 µs", "p99 µs", "p99.9 µs", "p50 ×", "p99 ×")
	for _, x := range r.Latency {
		if x.Error != "" {
			fmt.Fprintf(b, "%-16s error: %s\n", x.Contender, x.Error)
			continue
		}
		fmt.Fprintf(b, "%-16s %9d %9d %7.2f %9.1f %9.1f %9.1f %9s %9s\n", x.Contender, x.Sent, x.Received, x.LossPct,
			us(x.Latency.P50Ns), us(x.Latency.P99Ns), us(x.Latency.P999Ns), fmtRatio(x.RatioP50), fmtRatio(x.RatioP99))
	}
	b.WriteString("Latency is send-to-receive on one host (CLOCK_MONOTONIC), through the generator's own kernel path twice: compare the rows, not the absolutes.\n")
}

// latencyPlot is the latency CDF of every contender on a log time axis.
func (r *Report) latencyPlot(dir string) error {
	if len(r.Latency) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("latency CDF at %d packets/s (64-byte UDP)", LatencyRate)
	p.X.Label.Text = "latency (µs)"
	p.Y.Label.Text = "fraction of packets"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	var lines []any
	for _, x := range r.Latency {
		if len(x.cdf) == 0 {
			continue
		}
		var xys plotter.XYs
		for _, c := range x.cdf {
			xys = append(xys, plotter.XY{X: max(float64(c.Nanos), 1) / 1e3, Y: c.Fraction})
		}
		lines = append(lines, x.Contender, xys)
	}
	if len(lines) == 0 {
		return nil
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return err
	}
	p.Legend.Top, p.Legend.Left = true, true
	return r.save(p, filepath.Join(dir, "latency.svg"), 6)
}
