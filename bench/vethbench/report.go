package vethbench

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Result is one DUT's measurement.
type Result struct {
	Name      string  `json:"name"`
	Round     int     `json:"round"`
	What      string  `json:"what"`
	Seconds   float64 `json:"seconds"`    // length of the measured window
	TxPackets uint64  `json:"tx_packets"` // frames the generator handed to the kernel in the window
	RxPackets uint64  `json:"rx_packets"` // frames returned to the generator veth in the window
	TxMpps    float64 `json:"tx_mpps"`
	RxMpps    float64 `json:"rx_mpps"`
	// Ratios of RxMpps to the same round's xdp-tx and afxdp-reflector
	// (nil when that baseline did not run or returned nothing).
	RatioXDPTX     *float64 `json:"ratio_to_xdp_tx,omitempty"`
	RatioReflector *float64 `json:"ratio_to_afxdp_reflector,omitempty"`
	// GenBound: the DUT returned ≥ 99% of the offered frames, so the
	// generator's CPU set the rate (see GeneratorBound).
	GenBound bool `json:"generator_bound"`
	// CPU is how busy the CPUs were during the window, and how much other
	// processes used.
	CPU    *CPULoad `json:"cpu,omitempty"`
	Detail string   `json:"detail,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// GeneratorBound reports that the DUT returned at least 99% of what it was
// offered: the generator, not the DUT, was the limit.
func (r *Result) GeneratorBound() bool {
	return r.TxPackets > 0 && float64(r.RxPackets) >= 0.99*float64(r.TxPackets)
}

// OK reports whether the DUT ran and returned traffic.
func (r *Result) OK() bool { return r.Error == "" && r.RxPackets > 0 }

// Report is the outcome of one run.
type Report struct {
	Bench           string   `json:"bench"`
	Kernel          string   `json:"kernel,omitempty"`
	CPUs            int      `json:"cpus"`
	GenCPU          int      `json:"generator_cpu"`
	DUTCPU          int      `json:"dut_cpu"`
	LoadBefore      string   `json:"loadavg_before,omitempty"`
	LoadAfter       string   `json:"loadavg_after,omitempty"`
	Generator       string   `json:"generator"`
	GeneratorDetail string   `json:"generator_detail,omitempty"`
	FrameSize       int      `json:"frame_size"`
	Flows           int      `json:"flows"`
	WarmupSeconds   float64  `json:"warmup_seconds"`
	DurationSeconds float64  `json:"duration_seconds"`
	Rounds          int      `json:"rounds"`
	Notes           []string `json:"notes,omitempty"`
	Results         []Result `json:"results"` // every run, in run order
	// Summary has one line per DUT: the median of its rounds.
	Summary []Summary `json:"summary"`
}

// Summary is one DUT over all rounds.
type Summary struct {
	Name       string    `json:"name"`
	What       string    `json:"what"`
	Samples    []float64 `json:"rx_mpps_samples"` // RxMpps of the rounds that worked
	Failed     int       `json:"failed_rounds"`
	MedianMpps float64   `json:"median_rx_mpps"`
	// Ratios of the medians.
	RatioXDPTX     *float64 `json:"ratio_to_xdp_tx,omitempty"`
	RatioReflector *float64 `json:"ratio_to_afxdp_reflector,omitempty"`
	RatioNftables  *float64 `json:"ratio_to_nft_numgen,omitempty"`
	GenBound       bool     `json:"generator_bound"` // in most rounds
}

// selfPaced DUTs set the generator's pace themselves: the kernel forwards
// the generator's own skbs, and AF_XDP completes a frame only when its skb
// is freed, after the DUT forwarded it. All offered frames coming back says
// nothing lost, not that the generator was the limit.
var selfPaced = map[string]bool{DUTNftNumgen: true, DUTNftJhash: true}

// Median returns the median of xs (0 for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// Find returns the summary of the named DUT (nil if it did not run).
func (r *Report) Find(name string) *Summary {
	for i := range r.Summary {
		if r.Summary[i].Name == name {
			return &r.Summary[i]
		}
	}
	return nil
}

func ratio(a, b float64) *float64 {
	if a <= 0 || b <= 0 {
		return nil
	}
	v := a / b
	return &v
}

// ComputeRatios fills in every result's ratios to the xdp-tx and
// afxdp-reflector results of the same round, and the summary: per DUT the
// median of its rounds and the ratios of the medians.
func (r *Report) ComputeRatios() {
	base := func(name string, round int) float64 {
		for i := range r.Results {
			if x := &r.Results[i]; x.Name == name && x.Round == round && x.OK() && x.RxMpps > 0 {
				return x.RxMpps
			}
		}
		return 0
	}
	r.Summary = nil
	index := map[string]int{}
	bound := map[string]int{}
	for i := range r.Results {
		x := &r.Results[i]
		x.GenBound = x.OK() && x.GeneratorBound() && !selfPaced[x.Name]
		x.RatioXDPTX = ratio(x.RxMpps, base(DUTXDPTX, x.Round))
		x.RatioReflector = ratio(x.RxMpps, base(DUTReflector, x.Round))
		if !x.OK() {
			x.RatioXDPTX, x.RatioReflector = nil, nil
		}
		j, ok := index[x.Name]
		if !ok {
			j = len(r.Summary)
			index[x.Name] = j
			r.Summary = append(r.Summary, Summary{Name: x.Name, What: x.What})
		}
		sm := &r.Summary[j]
		if x.OK() {
			sm.Samples = append(sm.Samples, x.RxMpps)
		} else {
			sm.Failed++
		}
		if x.GenBound {
			bound[x.Name]++
		}
	}
	for i := range r.Summary {
		sm := &r.Summary[i]
		sm.MedianMpps = Median(sm.Samples)
		sm.GenBound = 2*bound[sm.Name] > len(sm.Samples)
	}
	med := func(name string) float64 {
		if sm := r.Find(name); sm != nil {
			return sm.MedianMpps
		}
		return 0
	}
	xdp, refl, nft := med(DUTXDPTX), med(DUTReflector), med(DUTNftNumgen)
	for i := range r.Summary {
		sm := &r.Summary[i]
		sm.RatioXDPTX, sm.RatioReflector, sm.RatioNftables = ratio(sm.MedianMpps, xdp), ratio(sm.MedianMpps, refl), ratio(sm.MedianMpps, nft)
	}
}

// Failed lists the DUTs that failed or returned nothing in some round.
func (r *Report) Failed() []string {
	var out []string
	seen := map[string]bool{}
	for i := range r.Results {
		if x := &r.Results[i]; !x.OK() && !seen[x.Name] {
			seen[x.Name] = true
			out = append(out, x.Name)
		}
	}
	return out
}

func fmtRatio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *v)
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "gvs-bench %s: %d-byte UDP frames (incl. FCS), %d flows, %.1f s warm-up + %.1f s measured per DUT, %d round(s) alternated\n",
		r.Bench, r.FrameSize, r.Flows, r.WarmupSeconds, r.DurationSeconds, r.Rounds)
	fmt.Fprintf(&b, "generator: %s, on CPU %d; DUT worker on CPU %d", r.Generator, r.GenCPU, r.DUTCPU)
	if r.Kernel != "" {
		fmt.Fprintf(&b, "; kernel %s", r.Kernel)
	}
	b.WriteString("\n")
	if r.LoadBefore != "" {
		fmt.Fprintf(&b, "load average before: %s; after: %s\n", r.LoadBefore, r.LoadAfter)
	}
	fmt.Fprintf(&b, "NOTE: this machine has %d CPU(s): absolute numbers are noisy; the ratios, measured in the same run, are what matter.\n\n", r.CPUs)
	starred := false
	fmt.Fprintf(&b, "every run:\n%5s %-16s %9s %9s %8s %10s %19s\n", "round", "DUT", "TX Mpps", "RX Mpps", "RX/TX", "vs xdp-tx", "vs afxdp-reflector")
	for i := range r.Results {
		x := &r.Results[i]
		if x.Error != "" {
			fmt.Fprintf(&b, "%5d %-16s %9s %9s %8s %10s %19s   error: %s\n", x.Round, x.Name, "-", "-", "-", "-", "-", x.Error)
			continue
		}
		rxtx := "-"
		if x.TxPackets > 0 {
			rxtx = fmt.Sprintf("%.1f%%", 100*float64(x.RxPackets)/float64(x.TxPackets))
			if x.GenBound {
				rxtx += "*"
				starred = true
			}
		}
		fmt.Fprintf(&b, "%5d %-16s %9.3f %9.3f %8s %10s %19s\n", x.Round, x.Name, x.TxMpps, x.RxMpps, rxtx, fmtRatio(x.RatioXDPTX), fmtRatio(x.RatioReflector))
	}
	fmt.Fprintf(&b, "\nmedian of the rounds (ratios of the medians):\n%-16s %11s %10s %19s %14s  %s\n", "DUT", "RX Mpps", "vs xdp-tx", "vs afxdp-reflector", "vs nft-numgen", "samples")
	for i := range r.Summary {
		sm := &r.Summary[i]
		var samples []string
		for _, v := range sm.Samples {
			samples = append(samples, fmt.Sprintf("%.3f", v))
		}
		if sm.Failed > 0 {
			samples = append(samples, fmt.Sprintf("(%d failed)", sm.Failed))
		}
		mark := ""
		if sm.GenBound {
			mark = "*"
		}
		fmt.Fprintf(&b, "%-16s %10.3f%1s %10s %19s %14s  %s\n", sm.Name, sm.MedianMpps, mark, fmtRatio(sm.RatioXDPTX), fmtRatio(sm.RatioReflector), fmtRatio(sm.RatioNftables), strings.Join(samples, " "))
	}
	if starred {
		b.WriteString("* the DUT returned (almost) all it was offered: the generator's CPU, not the DUT, set this rate.\n")
	}
	for i := range r.Summary {
		if selfPaced[r.Summary[i].Name] {
			b.WriteString("nft-*: the kernel forwards the generator's own skbs and AF_XDP reuses a frame only once its skb is freed, so these DUTs pace the generator: their rate is the DUT's.\n")
			break
		}
	}
	b.WriteString("\n")
	for i := range r.Results {
		x := &r.Results[i]
		if x.Round != r.Rounds { // details of the last round only
			continue
		}
		fmt.Fprintf(&b, "  %-16s %s\n", x.Name+":", x.What)
		if x.Detail != "" {
			fmt.Fprintf(&b, "  %-16s %s\n", "", x.Detail)
		}
		if x.CPU != nil {
			fmt.Fprintf(&b, "  %-16s %s\n", "", x.CPU)
		}
	}
	for i := range r.Results {
		if x := &r.Results[i]; x.CPU != nil && x.CPU.Disturbed() {
			fmt.Fprintf(&b, "WARNING: %s (round %d) was disturbed (%s).\n", x.Name, x.Round, x.CPU)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// String summarises the load: "CPU busy: cpu0 100% cpu1 87%; other
// processes 2% of a CPU".
func (l *CPULoad) String() string {
	cpus := make([]int, 0, len(l.BusyPercent))
	for c := range l.BusyPercent {
		cpus = append(cpus, c)
	}
	sort.Ints(cpus)
	var b strings.Builder
	b.WriteString("CPU busy:")
	for _, c := range cpus {
		fmt.Fprintf(&b, " cpu%d %.0f%%", c, l.BusyPercent[c])
		if st := l.StealPercent[c]; st >= 1 {
			fmt.Fprintf(&b, " (steal %.0f%%)", st)
		}
	}
	fmt.Fprintf(&b, "; other processes %.0f%% of a CPU", l.OthersPercent)
	return b.String()
}

// Disturbed reports that other processes or the hypervisor took a
// noticeable share of the CPUs during the window.
func (l *CPULoad) Disturbed() bool {
	if l.OthersPercent >= 10 {
		return true
	}
	for _, st := range l.StealPercent {
		if st >= 5 {
			return true
		}
	}
	return false
}
