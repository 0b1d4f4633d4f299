package httpbench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ErrorThreshold is the share of failed requests (socket errors plus
// non-2xx/3xx responses over completed requests) above which a sample is
// flagged.
const ErrorThreshold = 0.01

// Sample is one measured wrk run.
type Sample struct {
	Round int `json:"round"`
	*WrkOutput
	ErrorRatio float64 `json:"error_ratio"`
	Flagged    bool    `json:"flagged,omitempty"` // ErrorRatio > ErrorThreshold
	Error      string  `json:"error,omitempty"`   // the run (or the contender's setup) failed
}

// Result is one contender in one mode over all rounds.
type Result struct {
	Contender   string   `json:"contender"`
	Mode        string   `json:"mode"` // KeepAlive or NewConn
	Samples     []Sample `json:"samples"`
	MedianRPS   float64  `json:"median_rps"`
	MedianP99ms float64  `json:"median_p99_ms"`
	// RatioToDirect is MedianRPS over direct's in the same mode (nil
	// without a direct result).
	RatioToDirect *float64 `json:"ratio_to_direct,omitempty"`
	Flagged       bool     `json:"flagged,omitempty"` // some sample had > 1 % errors
	Error         string   `json:"error,omitempty"`   // first failure, if any sample failed
}

// ReportOptions are the options a report was made with.
type ReportOptions struct {
	Rounds         int      `json:"rounds"`
	DurationSec    float64  `json:"duration_s"`
	WarmupSec      float64  `json:"warmup_s"`
	Connections    int      `json:"connections"`
	Threads        int      `json:"threads"`
	Backends       int      `json:"backends"`
	Contenders     []string `json:"contenders"`
	GvsWorkers     int      `json:"gvs_workers"`
	HAProxyThreads int      `json:"haproxy_threads"`
}

// Report is the outcome of Run.
type Report struct {
	Started  time.Time         `json:"started"`
	Elapsed  float64           `json:"elapsed_s"`
	Versions map[string]string `json:"versions"`
	Options  ReportOptions     `json:"options"`
	Results  []Result          `json:"results"`
	Notes    []string          `json:"notes,omitempty"`
}

func reportOptions(o Options) ReportOptions {
	return ReportOptions{
		Rounds: o.Rounds, DurationSec: o.Duration.Seconds(), WarmupSec: o.Warmup.Seconds(),
		Connections: o.Connections, Threads: o.Threads, Backends: o.Backends,
		Contenders: slices.Clone(o.Contenders), GvsWorkers: o.GvsWorkers, HAProxyThreads: o.HAProxyThreads,
	}
}

// median of xs (0 for none); xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summarize fills the medians, flags and errors of every result from its
// samples, then the ratios to direct.
func (r *Report) summarize() {
	for i := range r.Results {
		res := &r.Results[i]
		var rps, p99 []float64
		res.Flagged, res.Error = false, ""
		for _, s := range res.Samples {
			if s.Error != "" {
				if res.Error == "" {
					res.Error = fmt.Sprintf("round %d: %s", s.Round, s.Error)
				}
				continue
			}
			if s.WrkOutput == nil {
				continue
			}
			rps = append(rps, s.RequestsPerSec)
			p99 = append(p99, s.P99ms)
			res.Flagged = res.Flagged || s.Flagged
		}
		res.MedianRPS, res.MedianP99ms = median(rps), median(p99)
	}
	for i := range r.Results {
		res := &r.Results[i]
		res.RatioToDirect = nil
		d := r.find(Direct, res.Mode)
		if d == nil || d.MedianRPS <= 0 || res.MedianRPS <= 0 {
			continue
		}
		v := res.MedianRPS / d.MedianRPS
		res.RatioToDirect = &v
	}
}

// find returns the result of contender in mode, or nil.
func (r *Report) find(contender, mode string) *Result {
	for i := range r.Results {
		if r.Results[i].Contender == contender && r.Results[i].Mode == mode {
			return &r.Results[i]
		}
	}
	return nil
}

// WriteTable writes a plain-text table: contender, mode, median req/s,
// ratio to direct, median p99, every sample's req/s, flags; then the
// versions and the notes.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "contender\tmode\treq/s (median)\tvs direct\tp99 ms (median)\tsamples req/s\tflags")
	for _, res := range r.Results {
		ratio := "-"
		if res.RatioToDirect != nil {
			ratio = fmt.Sprintf("%.2fx", *res.RatioToDirect)
		}
		var samples []string
		for _, s := range res.Samples {
			switch {
			case s.Error != "":
				samples = append(samples, "failed")
			case s.WrkOutput != nil:
				samples = append(samples, fmt.Sprintf("%.0f", s.RequestsPerSec))
			}
		}
		var flags []string
		if res.Flagged {
			flags = append(flags, ">1% errors")
		}
		if res.Error != "" {
			flags = append(flags, "error: "+res.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%.2f\t%s\t%s\n", res.Contender, res.Mode, res.MedianRPS, ratio,
			res.MedianP99ms, strings.Join(samples, " "), strings.Join(flags, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	o := r.Options
	fmt.Fprintf(w, "\nwrk -t%d -c%d -d%gs --latency (warm-up %gs), %d round(s), %d nginx backend(s), gvs workers %d, haproxy nbthread %d\n",
		o.Threads, o.Connections, o.DurationSec, o.WarmupSec, o.Rounds, o.Backends, o.GvsWorkers, o.HAProxyThreads)
	keys := make([]string, 0, len(r.Versions))
	for k := range r.Versions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %s\n", k, r.Versions[k])
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	_, err := fmt.Fprintf(w, "elapsed %.0fs\n", r.Elapsed)
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Failed lists "contender/mode" of the results with an error or no
// requests at all.
func (r *Report) Failed() []string {
	var out []string
	for _, res := range r.Results {
		if res.Error != "" || res.MedianRPS <= 0 {
			out = append(out, res.Contender+"/"+res.Mode)
		}
	}
	return out
}
