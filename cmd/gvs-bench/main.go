// Command gvs-bench runs gvs's benchmarks that need a kernel: `gvs-bench
// all` (make bench) runs every phase of package gvs/bench/suite and writes
// one report; `gvs-bench veth` is the packet-rate phase alone, forwarded
// Mpps over a veth pair for gvs, nftables and bare XDP/AF_XDP baselines,
// printed as ratios measured in the same run (package gvs/bench/vethbench).
// It needs root.
//
//	gvs-bench veth [--duration 3s] [--warmup 1s] [--rounds 3] [--flows 1024] [--size 64]
//	               [--only xdp-tx,afxdp-reflector,gvs-afxdp,gvs-afpacket,gvs-dpdk,nft-numgen,nft-jhash]
//	               [--generator afxdp|afpacket] [--json]
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
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"gvs/bench/httpbench"
	"gvs/bench/vethbench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: gvs-bench all|veth|http [flags]

Subcommands:
  all    make bench: packet rate, TCP/HTTP with wrk, latency, hot path;
         one report of ratios (report.txt, report.json, SVG plots)
  veth   forwarded Mpps over one veth pair: %s
         (needs root; creates and removes its own network namespaces)
  http   new TCP connections/s and keep-alive requests/s with p99 (wrk,
         nginx): direct, gvs, nftables DNAT, HAProxy (needs root)

Run "gvs-bench SUBCOMMAND --help" for the flags.
`, strings.Join(vethbench.DUTNames, ", "))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "veth":
		return runVeth(args[1:], stdout, stderr)
	case "all":
		return runAll(args[1:], stdout, stderr)
	case "http":
		return runHTTP(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "gvs-bench: unknown subcommand %q\n\n", args[0])
	usage(stderr)
	return 2
}

func runVeth(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gvs-bench veth", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 3*time.Second, "measured window per DUT")
	warmup := fs.Duration("warmup", time.Second, "warm-up per DUT before measuring")
	flows := fs.Int("flows", 1024, "flows (UDP source ports) the generator cycles through")
	size := fs.Int("size", vethbench.MinFrameSize, "frame size in bytes including the FCS (64..1518)")
	rounds := fs.Int("rounds", 3, "runs of every DUT, alternated (A B C A B C …); the summary is their median")
	only := fs.String("only", "", "comma-separated DUTs to run (default all): "+strings.Join(vethbench.DUTNames, ","))
	gen := fs.String("generator", vethbench.GenAFXDP, "generator: afxdp (AF_XDP TX) or afpacket (TX ring)")
	genCPU := fs.Int("gen-cpu", -1, "CPU of the generator thread (-1: first allowed CPU; set with --dut-cpu)")
	dutCPU := fs.Int("dut-cpu", -1, "CPU of the DUT worker (-1: second allowed CPU; set with --gen-cpu)")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout (progress stays on stderr)")
	quiet := fs.Bool("quiet", false, "no per-second progress lines")
	verbose := fs.Bool("verbose", false, "driver logs at info level")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gvs-bench veth [flags]\n\n%s", fs.FlagUsages())
	}
	if rc, ok := parseFlags(fs, args, stderr); !ok {
		return rc
	}
	duts, err := vethbench.ParseOnly(*only)
	if err != nil {
		fmt.Fprintf(stderr, "gvs-bench veth: --only: %v\n", err)
		return 2
	}
	if *rounds < 1 || *rounds > 20 {
		fmt.Fprintf(stderr, "gvs-bench veth: --rounds %d: want 1..20\n", *rounds)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "gvs-bench: %v\n", vethbench.ErrNotRoot)
		return 1
	}
	lvl := slog.LevelWarn
	if *verbose {
		lvl = slog.LevelInfo
	}
	o := vethbench.Options{
		Warmup: *warmup, Duration: *duration, Flows: *flows, Size: *size, DUTs: duts, Rounds: *rounds,
		Generator: *gen, GenCPU: *genCPU, DUTCPU: *dutCPU,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})),
	}
	if !*quiet {
		o.Progress = stderr
	}
	// The generator and the DUT worker each keep a P busy: leave Ps for
	// the progress ticker, signal handling and the garbage collector.
	if runtime.GOMAXPROCS(0) < runtime.NumCPU()+2 {
		runtime.GOMAXPROCS(runtime.NumCPU() + 2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep, err := vethbench.Run(ctx, o)
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
	return exitCode(stderr, err, "no traffic back from", failed)
}

// parseFlags parses a subcommand's flags. When ok is false the caller
// returns rc: 0 after --help, 2 (with the usage) for a bad flag or an
// argument no subcommand takes.
func parseFlags(fs *pflag.FlagSet, args []string, stderr io.Writer) (rc int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0, false
		}
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		fs.Usage()
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// exitCode is a run's exit status, after it checked that no namespace of
// the benchmarks is left: 130 when interrupted, 1 when the run failed or
// named contenders or phases that failed (what says how), 0 otherwise.
func exitCode(stderr io.Writer, err error, what string, failed []string) int {
	if left := append(vethbench.ListNetns(), httpbench.ListNetns()...); len(left) > 0 {
		fmt.Fprintf(stderr, "gvs-bench: namespaces left behind: %s\n", strings.Join(left, " "))
		return 1
	}
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "gvs-bench: interrupted; namespaces removed")
		return 130
	case err != nil:
		fmt.Fprintf(stderr, "gvs-bench: %v\n", err)
		return 1
	case len(failed) > 0:
		fmt.Fprintf(stderr, "gvs-bench: %s: %s\n", what, strings.Join(failed, ", "))
		return 1
	}
	return 0
}
