package suite

import (
	"context"
	"fmt"
	"strings"

	"gvs/bench/httpbench"
)

// runHTTP is the TCP/HTTP phase: bench/httpbench with the suite's rounds.
func runHTTP(ctx context.Context, o *Options, rep *Report) error {
	fmt.Fprintf(o.Progress, "== TCP/HTTP with wrk (%d rounds)\n", o.Rounds)
	ho := httpbench.DefaultOptions()
	ho.Rounds, ho.Duration, ho.Progress, ho.Log = o.Rounds, o.HTTPTime, o.Progress, o.Veth.Log
	if err := httpbench.MissingPrograms(ho); err != nil {
		return err
	}
	r, err := httpbench.Run(ctx, ho)
	rep.HTTP = r
	if err == nil && r != nil {
		if f := r.Failed(); len(f) > 0 {
			err = fmt.Errorf("failed: %s", strings.Join(f, ", "))
		}
	}
	return err
}

func (r *Report) writeHTTP(b *strings.Builder) {
	if r.HTTP == nil {
		return
	}
	h := r.HTTP
	fmt.Fprintf(b, "\n== TCP and HTTP: wrk -t%d -c%d, %.0f s per run, %d nginx backend(s), %d rounds (medians; ratio to direct)\n",
		h.Options.Threads, h.Options.Connections, h.Options.DurationSec, h.Options.Backends, h.Options.Rounds)
	fmt.Fprintf(b, "%-12s %-10s %12s %10s %10s  %s\n", "contender", "mode", "req/s", "vs direct", "p99 ms", "rounds (req/s)")
	for _, x := range h.Results {
		var s []string
		for _, sm := range x.Samples {
			if sm.Error != "" || sm.WrkOutput == nil {
				s = append(s, "failed")
				continue
			}
			v := fmt.Sprintf("%.0f", sm.RequestsPerSec)
			if sm.Flagged {
				v += "!"
			}
			s = append(s, v)
		}
		fmt.Fprintf(b, "%-12s %-10s %12.0f %10s %10.2f  %s\n", x.Contender, x.Mode, x.MedianRPS, fmtRatio(x.RatioToDirect), x.MedianP99ms, strings.Join(s, " "))
	}
	for _, x := range h.Results {
		if x.Flagged {
			b.WriteString("! more than 1 % of the run's requests failed (socket errors or non-2xx).\n")
			break
		}
	}
	for _, n := range h.Notes {
		fmt.Fprintf(b, "note: %s\n", n)
	}
}

// httpBars returns the HTTP medians for the bar chart: contenders on the
// x axis, one series per mode.
func (r *Report) httpBars() (names, modes []string, series [][]float64) {
	if r.HTTP == nil {
		return nil, nil, nil
	}
	ci, mi := map[string]int{}, map[string]int{}
	for _, x := range r.HTTP.Results {
		if _, ok := ci[x.Contender]; !ok {
			ci[x.Contender] = len(names)
			names = append(names, x.Contender)
		}
		if _, ok := mi[x.Mode]; !ok {
			mi[x.Mode] = len(modes)
			modes = append(modes, x.Mode)
		}
	}
	series = make([][]float64, len(modes))
	for i := range series {
		series[i] = make([]float64, len(names))
	}
	for _, x := range r.HTTP.Results {
		series[mi[x.Mode]][ci[x.Contender]] = x.MedianRPS
	}
	return names, modes, series
}
