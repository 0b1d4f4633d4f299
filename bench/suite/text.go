package suite

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"gvs/bench/vethbench"
)

// WriteJSON writes the whole report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func fmtRatio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f×", *v)
}

// WriteText writes the report for people: the machine and peers, then
// per phase a table of medians and ratios measured in the same run.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "gvs benchmark report — %s (%.0f s)\n", r.Started.Format("2006-01-02 15:04 MST"), r.Seconds)
	fmt.Fprintf(&b, "machine: %d CPU(s) %s, %s kB RAM, kernel %s, %s; load average before: %s\n", m.CPUs, m.CPUModel, m.MemoryKB, m.Kernel, m.Go, m.LoadAvg)
	var names []string
	for k := range r.Versions {
		names = append(names, k)
	}
	sort.Strings(names)
	b.WriteString("peers:")
	for _, k := range names {
		fmt.Fprintf(&b, " %s: %s;", k, r.Versions[k])
	}
	b.WriteString("\nOn a shared 2-CPU machine absolute numbers move ±20–30 % between runs: read the ratios, measured in the same run.\n")

	if r.Rate != nil {
		b.WriteString("\n== Packet rate: 64-byte UDP frames through the LB to two backends (median of the rounds)\n")
		r.writeRate(&b)
	}
	r.writeHTTP(&b)
	r.writeLatency(&b)
	if len(r.Hot) > 0 {
		b.WriteString("\n== Hot path (go test -bench, mem driver, median of 3 runs)\n")
		writeHot(&b, r.Hot)
	}
	if len(r.Errors) > 0 {
		b.WriteString("\n== Phases that failed\n")
		var ph []string
		for k := range r.Errors {
			ph = append(ph, k)
		}
		sort.Strings(ph)
		for _, k := range ph {
			fmt.Fprintf(&b, "%s: %s\n", k, r.Errors[k])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeRate(b *strings.Builder) {
	rt := r.Rate
	fmt.Fprintf(b, "%d flows, %.1f s measured per run, %d rounds, generator %s on CPU %d, DUT on CPU %d\n", rt.Flows, rt.DurationSeconds, rt.Rounds, rt.Generator, rt.GenCPU, rt.DUTCPU)
	fmt.Fprintf(b, "%-16s %10s %10s %12s %12s  %s\n", "contender", "Mpps", "vs xdp-tx", "vs afxdp-refl", "vs nft-numgen", "rounds (Mpps)")
	for _, sm := range rt.Summary {
		var s []string
		for _, v := range sm.Samples {
			s = append(s, fmt.Sprintf("%.3f", v))
		}
		if sm.Failed > 0 {
			s = append(s, fmt.Sprintf("(%d failed)", sm.Failed))
		}
		mark := " "
		if sm.GenBound {
			mark = "*"
		}
		fmt.Fprintf(b, "%-16s %9.3f%s %10s %12s %12s  %s\n", sm.Name, sm.MedianMpps, mark, fmtRatio(sm.RatioXDPTX), fmtRatio(sm.RatioReflector), fmtRatio(sm.RatioNftables), strings.Join(s, " "))
	}
	for _, sm := range rt.Summary {
		if sm.GenBound {
			b.WriteString("* returned all it was offered: the generator's CPU set the rate (a lower bound of the contender's).\n")
			break
		}
	}
	for _, sm := range rt.Summary {
		fmt.Fprintf(b, "  %-15s %s\n", sm.Name+":", sm.What)
	}
	for _, n := range rt.Notes {
		fmt.Fprintf(b, "note: %s\n", n)
	}
	if g, x := rt.Find(vethbench.DUTGvsAFXDP), rt.Find(vethbench.DUTNftNumgen); g != nil && x != nil && g.RatioNftables != nil {
		fmt.Fprintf(b, "gvs-afxdp forwards %s the packet rate of the kernel with nftables DNAT on this machine.\n", fmtRatio(g.RatioNftables))
	}
}

// writeHot prints the pipeline benchmarks as a method × case table and
// the others as they are.
func writeHot(b *strings.Builder, hot []HotResult) {
	cases := []string{"established/ipv4", "established/ipv6", "new/ipv4", "new/ipv6"}
	type row struct{ vals map[string]HotResult }
	rows := map[string]*row{}
	var methods []string
	var other []HotResult
	for _, h := range hot {
		rest, ok := strings.CutPrefix(h.Name, "BenchmarkPipeline/")
		method, c, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 {
			other = append(other, h)
			continue
		}
		if rows[method] == nil {
			rows[method] = &row{vals: map[string]HotResult{}}
			methods = append(methods, method)
		}
		rows[method].vals[c] = h
	}
	if len(methods) > 0 {
		fmt.Fprintf(b, "pipeline ns/pkt (allocs/op) — %-8s", "method")
		for _, c := range cases {
			fmt.Fprintf(b, " %18s", c)
		}
		b.WriteString("\n")
		for _, m := range methods {
			fmt.Fprintf(b, "%-37s", m)
			for _, c := range cases {
				h, ok := rows[m].vals[c]
				if !ok {
					fmt.Fprintf(b, " %18s", "-")
					continue
				}
				fmt.Fprintf(b, " %12.0f (%3.0f)", h.Median["ns/pkt"], h.Median["allocs/op"])
			}
			b.WriteString("\n")
		}
		ns := func(method, c string) float64 {
			if r := rows[method]; r != nil {
				return r.vals[c].Median["ns/pkt"]
			}
			return 0
		}
		if e, n := ns("dr", "established/ipv4"), ns("dr", "new/ipv4"); e > 0 && n > 0 {
			fmt.Fprintf(b, "a new flow costs %.1f× an established one (dr, IPv4)", n/e)
			if nat := ns("nat", "established/ipv4"); nat > 0 {
				fmt.Fprintf(b, "; an established nat packet %.2f× a dr one", nat/e)
			}
			b.WriteString(".\n")
		}
	}
	for _, h := range other {
		keys := make([]string, 0, len(h.Median))
		for k := range h.Median {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%.4g %s", h.Median[k], k))
		}
		fmt.Fprintf(b, "%s: %s\n", h.Name, strings.Join(parts, ", "))
	}
}
