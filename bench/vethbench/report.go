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
	What      string  `json:"what"`
	Seconds   float64 `json:"seconds"`    // length of the measured window
	TxPackets uint64  `json:"tx_packets"` // frames the generator handed to the kernel in the window
	RxPackets uint64  `json:"rx_packets"` // frames returned to the generator veth in the window
	TxMpps    float64 `json:"tx_mpps"`
	RxMpps    float64 `json:"rx_mpps"`
	// Ratios of RxMpps to the same run's xdp-tx and afxdp-reflector (nil
	// when that baseline did not run or returned nothing).
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
	Notes           []string `json:"notes,omitempty"`
	Results         []Result `json:"results"`
}

// ComputeRatios fills in every result's ratios to the xdp-tx and
// afxdp-reflector results of the same report.
func (r *Report) ComputeRatios() {
	base := func(name string) float64 {
		for i := range r.Results {
			if x := &r.Results[i]; x.Name == name && x.OK() && x.RxMpps > 0 {
				return x.RxMpps
			}
		}
		return 0
	}
	xdp, refl := base(DUTXDPTX), base(DUTReflector)
	for i := range r.Results {
		x := &r.Results[i]
		x.RatioXDPTX, x.RatioReflector = nil, nil
		x.GenBound = x.OK() && x.GeneratorBound()
		if !x.OK() {
			continue
		}
		if xdp > 0 {
			v := x.RxMpps / xdp
			x.RatioXDPTX = &v
		}
		if refl > 0 {
			v := x.RxMpps / refl
			x.RatioReflector = &v
		}
	}
}

// Failed lists the DUTs that failed or returned nothing.
func (r *Report) Failed() []string {
	var out []string
	for i := range r.Results {
		if !r.Results[i].OK() {
			out = append(out, r.Results[i].Name)
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
	fmt.Fprintf(&b, "gvs-bench %s: %d-byte UDP frames (incl. FCS), %d flows, %.1f s warm-up + %.1f s measured per DUT\n",
		r.Bench, r.FrameSize, r.Flows, r.WarmupSeconds, r.DurationSeconds)
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
	fmt.Fprintf(&b, "%-16s %9s %9s %8s %10s %19s\n", "DUT", "TX Mpps", "RX Mpps", "RX/TX", "vs xdp-tx", "vs afxdp-reflector")
	for i := range r.Results {
		x := &r.Results[i]
		if x.Error != "" {
			fmt.Fprintf(&b, "%-16s %9s %9s %8s %10s %19s   error: %s\n", x.Name, "-", "-", "-", "-", "-", x.Error)
			continue
		}
		rxtx := "-"
		if x.TxPackets > 0 {
			rxtx = fmt.Sprintf("%.1f%%", 100*float64(x.RxPackets)/float64(x.TxPackets))
			if x.GeneratorBound() {
				rxtx += "*"
				starred = true
			}
		}
		fmt.Fprintf(&b, "%-16s %9.3f %9.3f %8s %10s %19s\n", x.Name, x.TxMpps, x.RxMpps, rxtx, fmtRatio(x.RatioXDPTX), fmtRatio(x.RatioReflector))
	}
	if starred {
		b.WriteString("* the DUT returned (almost) all it was offered: the generator's CPU, not the DUT, set this rate.\n")
	}
	b.WriteString("\n")
	for i := range r.Results {
		x := &r.Results[i]
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
			fmt.Fprintf(&b, "WARNING: %s was disturbed (%s): rerun it for numbers you can compare.\n", x.Name, x.CPU)
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
