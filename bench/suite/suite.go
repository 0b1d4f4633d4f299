// Package suite is `make bench`: every whole-system benchmark of gvs and
// its peers in one run, written as one report of ratios.
//
// Phases, in order, each bounded in time:
//
//   - packet rate (bench/vethbench): small UDP frames through the load
//     balancer to the same two backends — gvs over afxdp, afpacket and
//     dpdk (in a build with the dpdk tag), the kernel with nftables DNAT
//     (numgen and jhash) — and the ceilings on the same veth, a bare
//     XDP_TX program and a bare AF_XDP reflector; rounds alternated
//     (A B C … A B C …), medians and ratios of medians.
//   - TCP and HTTP (bench/httpbench): wrk against an nginx backend for new
//     connections per second and keep-alive requests per second with p99
//     latency — directly, through gvs, through nftables DNAT and through
//     HAProxy in tcp mode; alternated rounds, medians, ratios to direct.
//   - latency (bench/trafficgen): stamped packets at a fixed rate through
//     gvs and through the bare XDP_TX reflector, latency percentiles and a
//     CDF plot.
//   - hot path: the go test microbenchmarks of the pipeline per forwarding
//     method (ns/pkt, allocs/op) and the Maglev table build.
//
// The report states the machine (cores, CPU, kernel) and the version of
// every peer, and never presents an absolute time alone: every phase
// prints ratios measured in the same run.
package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gvs/bench/httpbench"
	"gvs/bench/vethbench"
)

// Phases of a run, in order.
const (
	PhaseRate    = "rate"
	PhaseHTTP    = "http"
	PhaseLatency = "latency"
	PhaseHot     = "hot"
)

// AllPhases lists every phase in run order.
var AllPhases = []string{PhaseRate, PhaseHTTP, PhaseLatency, PhaseHot}

// Options configure a run.
type Options struct {
	Out      string // directory for report.txt, report.json and the plots
	Phases   []string
	Rounds   int           // rounds of the rate and HTTP phases (default 3)
	Duration time.Duration // measured window per rate run (default 3 s)
	HTTPTime time.Duration // wrk duration per HTTP run (default 5 s)
	ModDir   string        // module root for the hot-path go test runs (default ".")
	Progress io.Writer
	Veth     vethbench.Options // further rate-phase options (DUTs, flows, …)
}

// Report is the outcome of a run.
type Report struct {
	Started  time.Time         `json:"started"`
	Seconds  float64           `json:"seconds"`
	Machine  Machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Rate     *vethbench.Report `json:"rate,omitempty"`
	HTTP     *httpbench.Report `json:"http,omitempty"`
	Latency  []LatencyResult   `json:"latency,omitempty"`
	Hot      []HotResult       `json:"hot,omitempty"`
	Errors   map[string]string `json:"errors,omitempty"` // phase → what went wrong
	Files    []string          `json:"files,omitempty"`
}

func (o *Options) defaults() {
	if o.Out == "" {
		o.Out = "bench-out"
	}
	if len(o.Phases) == 0 {
		o.Phases = AllPhases
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	if o.Duration == 0 {
		o.Duration = 3 * time.Second
	}
	if o.HTTPTime == 0 {
		o.HTTPTime = 5 * time.Second
	}
	if o.ModDir == "" {
		o.ModDir = "."
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

func (o *Options) has(phase string) bool {
	for _, p := range o.Phases {
		if p == phase {
			return true
		}
	}
	return false
}

// Run runs the phases and writes the report into o.Out. A phase that
// fails is recorded in Report.Errors and the next one runs; Run returns
// an error only when it was cancelled or could not write the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now(), Machine: Describe(), Versions: PeerVersions(), Errors: map[string]string{}}
	phaseErr := func(phase string, err error) {
		if err != nil {
			rep.Errors[phase] = err.Error()
			fmt.Fprintf(o.Progress, "%s phase: %v\n", phase, err)
		}
	}
	if o.has(PhaseRate) && ctx.Err() == nil {
		fmt.Fprintf(o.Progress, "== packet rate (%d rounds)\n", o.Rounds)
		vo := o.Veth
		vo.Rounds, vo.Duration, vo.Progress = o.Rounds, o.Duration, o.Progress
		if vo.GenCPU == 0 && vo.DUTCPU == 0 {
			vo.GenCPU, vo.DUTCPU = -1, -1
		}
		r, err := vethbench.Run(ctx, vo)
		rep.Rate = r
		if err == nil && r != nil {
			if f := r.Failed(); len(f) > 0 {
				err = fmt.Errorf("no traffic back in some round from: %v", f)
			}
		}
		phaseErr(PhaseRate, err)
	}
	if o.has(PhaseHTTP) && ctx.Err() == nil {
		phaseErr(PhaseHTTP, runHTTP(ctx, &o, rep))
	}
	if o.has(PhaseLatency) && ctx.Err() == nil {
		phaseErr(PhaseLatency, runLatency(ctx, &o, rep))
	}
	if o.has(PhaseHot) && ctx.Err() == nil {
		fmt.Fprintln(o.Progress, "== hot path (go test -bench, median of 3)")
		h, err := RunHot(ctx, o.ModDir, 3, o.Progress)
		rep.Hot = h
		phaseErr(PhaseHot, err)
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	if err := rep.write(o.Out); err != nil {
		return rep, err
	}
	return rep, ctx.Err()
}

func (r *Report) write(dir string) error {
	var errs []error
	if err := r.writePlots(dir); err != nil {
		errs = append(errs, fmt.Errorf("plots: %w", err))
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{{"report.txt", r.WriteText}, {"report.json", r.WriteJSON}} {
		path := filepath.Join(dir, f.name)
		r.Files = append(r.Files, path)
		fh, err := os.Create(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, f.write(fh), fh.Close())
	}
	return errors.Join(errs...)
}
