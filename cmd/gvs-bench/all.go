package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"gvs/bench/suite"
	"gvs/bench/vethbench"
)

// runAll is `gvs-bench all` (make bench): every phase of bench/suite, one
// report of ratios in --out.
func runAll(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gvs-bench all", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bench-out", "directory for report.txt, report.json and the SVG plots")
	phases := fs.String("phases", strings.Join(suite.AllPhases, ","), "comma-separated phases to run: "+strings.Join(suite.AllPhases, ","))
	rounds := fs.Int("rounds", 3, "alternated rounds of the rate and HTTP phases (the report gives medians)")
	duration := fs.Duration("duration", 3*time.Second, "measured window per packet-rate run")
	httpTime := fs.Duration("http-duration", 5*time.Second, "wrk duration per HTTP run")
	only := fs.String("only", "", "packet-rate contenders (default all): "+strings.Join(vethbench.DUTNames, ","))
	quiet := fs.Bool("quiet", false, "no progress lines")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gvs-bench all [flags]\n\nRuns %s and writes one report.\n\n%s", strings.Join(suite.AllPhases, ", "), fs.FlagUsages())
	}
	if rc, ok := parseFlags(fs, args, stderr); !ok {
		return rc
	}
	ph, err := parsePhases(*phases)
	if err != nil {
		fmt.Fprintf(stderr, "gvs-bench all: --phases: %v\n", err)
		return 2
	}
	duts, err := vethbench.ParseOnly(*only)
	if err != nil {
		fmt.Fprintf(stderr, "gvs-bench all: --only: %v\n", err)
		return 2
	}
	if *rounds < 1 || *rounds > 20 {
		fmt.Fprintf(stderr, "gvs-bench all: --rounds %d: want 1..20\n", *rounds)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "gvs-bench: %v\n", vethbench.ErrNotRoot)
		return 1
	}
	o := suite.Options{
		Out: *out, Phases: ph, Rounds: *rounds, Duration: *duration, HTTPTime: *httpTime,
		Veth: vethbench.Options{DUTs: duts, GenCPU: -1, DUTCPU: -1,
			Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))},
	}
	if !*quiet {
		o.Progress = stderr
	}
	if runtime.GOMAXPROCS(0) < runtime.NumCPU()+2 {
		runtime.GOMAXPROCS(runtime.NumCPU() + 2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := suite.Run(ctx, o)
	if rep != nil {
		rep.WriteText(stdout)
		fmt.Fprintf(stderr, "gvs-bench: wrote %s\n", strings.Join(rep.Files, " "))
	}
	var failed []string
	if rep != nil {
		for ph := range rep.Errors {
			failed = append(failed, ph)
		}
		sort.Strings(failed)
	}
	return exitCode(stderr, err, "phases that failed", failed)
}

// parsePhases checks a comma-separated phase list.
func parsePhases(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ok := false
		for _, k := range suite.AllPhases {
			ok = ok || k == p
		}
		if !ok {
			return nil, fmt.Errorf("unknown phase %q (want %s)", p, strings.Join(suite.AllPhases, ", "))
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no phase named")
	}
	return out, nil
}
