package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"gvs/bench/httpbench"
)

// runHTTP is `gvs-bench http` (package bench/httpbench): it runs the
// benchmark with Ctrl-C/SIGTERM cancelling it, prints the table (or JSON
// with --json) on stdout and progress on stderr, and returns the exit
// code: 0, 1 (failure, a contender without results, namespaces left), 2
// (usage), 130 (interrupted).
func runHTTP(args []string, stdout, stderr io.Writer) int {
	d := httpbench.DefaultOptions()
	fs := pflag.NewFlagSet("gvs-bench http", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	rounds := fs.Int("rounds", d.Rounds, "rounds; each measures every contender in both modes (A B C D A B C D ...)")
	duration := fs.Duration("duration", d.Duration, "measured wrk run per contender and mode (whole seconds)")
	warmup := fs.Duration("warmup", d.Warmup, "unmeasured wrk run before each measured one (whole seconds; 0: none)")
	conns := fs.Int("connections", d.Connections, "wrk -c")
	threads := fs.Int("threads", d.Threads, "wrk -t")
	backends := fs.Int("backends", d.Backends, "nginx backends (one process each)")
	only := fs.String("only", "", "comma-separated contenders, in run order (default "+strings.Join(httpbench.DefaultContenders, ",")+"; known: "+strings.Join(httpbench.ContenderNames, ",")+")")
	gvsd := fs.String("gvsd", "", "gvsd binary (default: go build gvs/cmd/gvsd, from the module directory)")
	gvsWorkers := fs.Int("gvs-workers", d.GvsWorkers, "gvsd poll-mode workers")
	haThreads := fs.Int("haproxy-threads", d.HAProxyThreads, "HAProxy nbthread")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout (progress stays on stderr)")
	quiet := fs.Bool("quiet", false, "no per-run progress lines")
	verbose := fs.Bool("verbose", false, "log setup steps and the daemons' output (gvsd counters) on stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gvs-bench http [flags]\n\nHTTP keep-alive req/s and new connections/s with p99 through gvs, nftables and HAProxy,\nas ratios to a direct path (needs root; creates and removes its own network namespaces).\n\n%s", fs.FlagUsages())
	}
	if rc, ok := parseFlags(fs, args, stderr); !ok {
		return rc
	}
	contenders, err := httpbench.ParseContenders(*only)
	if err != nil {
		fmt.Fprintf(stderr, "gvs-bench http: --only: %v\n", err)
		return 2
	}
	o := httpbench.Options{
		Rounds: *rounds, Duration: *duration, Warmup: *warmup, Connections: *conns, Threads: *threads,
		Backends: *backends, Contenders: contenders, GvsdPath: *gvsd, GvsWorkers: *gvsWorkers, HAProxyThreads: *haThreads,
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "gvs-bench http: %v\n", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "gvs-bench: %v\n", httpbench.ErrNotRoot)
		return 1
	}
	lvl := slog.LevelWarn
	if *verbose {
		lvl = slog.LevelInfo
	}
	o.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if !*quiet {
		o.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep, err := httpbench.Run(ctx, o)
	if rep != nil {
		if *asJSON {
			rep.WriteJSON(stdout)
		} else {
			rep.WriteTable(stdout)
		}
	}
	var failed []string
	if rep != nil {
		failed = rep.Failed()
	}
	return exitCode(stderr, err, "failed or without requests", failed)
}
