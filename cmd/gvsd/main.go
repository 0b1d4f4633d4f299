// Command gvsd is the gvs daemon: it drives the configured interfaces with
// poll-mode workers and balances the configured virtual services.
//
//	gvsd --config /etc/gvs/gvsd.toml [--socket /run/gvs/gvsd.sock] [--socket-group gvs]
//
// The control socket (--socket, default /run/gvs/gvsd.sock; "" disables it)
// serves gvsctl. It is created 0660 with the group --socket-group (a name or
// a gid) and accepts root, gvsd's own user and members of that group; by
// default the group is "gvs" when such a group exists, otherwise the socket
// is 0600 and root only (--socket-group "" forces that).
//
// SIGHUP reloads the configuration file, as gvsctl reload does (an invalid
// file is reported and the running configuration stays), SIGUSR1 prints the
// counters, SIGTERM and SIGINT close the control socket (removing it), stop
// the workers, detach the XDP programs, close the drivers and print the
// final counters.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/ctl/daemon"
	"gvs/ctl/metrics"
	"gvs/ctl/server"
)

// defaultSocketGroup is the control socket's group when --socket-group is
// not given and a group of that name exists.
const defaultSocketGroup = "gvs"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gvsd", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/gvs/gvsd.toml", "configuration file (TOML)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	statsJSON := fs.Bool("stats-json", false, "print counters as JSON (SIGUSR1 and at exit)")
	socketPath := fs.String("socket", api.DefaultSocket, `control socket path ("" disables the socket)`)
	socketGroup := fs.String("socket-group", "", `group allowed on the control socket besides root (name or gid; default "`+defaultSocketGroup+`" if it exists, else root only)`)
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on ADDR (host:port)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gvsd [flags]\n\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gvsd: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "gvsd: --log-level: %v\n", err)
		return 2
	}
	var h slog.Handler
	switch *format {
	case "text":
		h = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})
	case "json":
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl})
	default:
		fmt.Fprintf(stderr, "gvsd: --log-format must be text or json, not %q\n", *format)
		return 2
	}
	log := slog.New(h)

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "gvsd: %v\n", err)
		return 1
	}
	if err := checkBuild(cfg); err != nil {
		fmt.Fprintf(stderr, "gvsd: %s: %v\n", *cfgPath, err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (%d services)\n", *cfgPath, len(cfg.LB.Services))
		return 0
	}
	group := *socketGroup
	if !fs.Changed("socket-group") {
		if _, err := user.LookupGroup(defaultSocketGroup); err == nil {
			group = defaultSocketGroup
		}
	}
	open, hops := opener(cfg)
	defer shutdownDrivers() // after the ports are closed
	d, err := daemon.New(daemon.Options{Config: cfg, Open: open, Hops: hops, Log: log})
	if err != nil {
		log.Error("start failed", "error", err)
		return 1
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	d.Start()
	var srv *server.Server
	if *socketPath != "" {
		srv, err = server.Listen(*socketPath, group, d, log)
		if err != nil {
			log.Error("start failed", "error", err)
			if err := d.Close(); err != nil {
				log.Error("close", "error", err)
			}
			return 1
		}
	}
	if *metricsAddr != "" {
		mctx, stopMetrics := context.WithCancel(context.Background())
		defer stopMetrics()
		merr := make(chan error, 1)
		go func() { merr <- metrics.Serve(mctx, *metricsAddr, metricsSource{d}, log) }()
		select {
		case err := <-merr:
			if err != nil {
				log.Error("metrics", "error", err)
				d.Close()
				return 1
			}
		case <-time.After(100 * time.Millisecond): // listening (Serve returns listen errors at once)
		}
	}
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			// The same path as gvsctl reload.
			if err := d.ReloadFile(); err != nil {
				log.Error("reload refused; the running configuration stays", "error", err)
			}
		case syscall.SIGUSR1:
			printSummary(stdout, d.Stats(nil), *statsJSON)
		default:
			log.Info("stopping", "signal", sig.String())
			// BGP and VRRP first, while the dataplane still forwards: the
			// routers move the flows to the other nodes, the backup takes
			// over after its skew time.
			d.StopBGP()
			d.StopVRRP()
			if srv != nil {
				if err := srv.Close(); err != nil {
					log.Error("close control socket", "error", err)
				}
			}
			d.Engine().Stop()
			sum := d.Stats(nil)
			if err := d.Close(); err != nil {
				log.Error("close", "error", err)
			}
			printSummary(stdout, sum, *statsJSON)
			return 0
		}
	}
	return 0
}

func printSummary(w io.Writer, s api.Stats, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tREAL\tMETHOD\tWEIGHT\tSTATE\tCONNS\tINPKTS\tOUTPKTS\tACTIVE\tINACTIVE")
	for _, sv := range s.Services {
		for _, r := range sv.Reals {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\n", sv.ServiceID,
				netip.AddrPortFrom(netip.MustParseAddr(r.Addr), uint16(r.Port)), r.Method, r.Weight, r.State,
				r.Conns, r.InPkts, r.OutPkts, r.ActiveConns, r.InactiveConns)
		}
	}
	tw.Flush()
	for _, wk := range s.Workers {
		c := wk.Counters
		fmt.Fprintf(w, "worker %d: rx %d tx %d new sessions %d hits %d slow path %d hand-overs %d\n", wk.Worker,
			c["rx_packets"], c["tx_packets"], c["sessions_new"], c["session_hits"], c["slow_path"], c["handover_out"])
		if len(wk.Drops) > 0 {
			fmt.Fprintf(w, "worker %d drops: %v\n", wk.Worker, wk.Drops)
		}
	}
	for _, p := range s.Ports {
		fmt.Fprintf(w, "port %s (%s): rx %d tx %d rx-dropped %d tx-dropped %d\n", p.Name, p.Driver, p.RxPackets, p.TxPackets, p.RxDropped, p.TxDropped)
	}
}

// metricsSource adapts the daemon to what ctl/metrics reads.
type metricsSource struct{ d *daemon.Daemon }

func (s metricsSource) Stats() api.Stats             { return s.d.Stats(nil) }
func (s metricsSource) Health() []api.HealthStatus   { return s.d.Health() }
func (s metricsSource) VRRP() []api.VRRPStatus       { return s.d.VRRP() }
func (s metricsSource) BGP() api.BGPStatus           { return s.d.BGP() }
func (s metricsSource) VersionInfo() api.VersionInfo { return daemon.VersionInfo() }
