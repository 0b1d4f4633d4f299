// Command gvs-realserver prepares a Linux real server for a gvs forwarding
// method (dr, l3dsr, tunnel), and undoes it. It acts on the network
// namespace it runs in (use `ip netns exec NS gvs-realserver ...` for
// another one); what it configures stays after it exits. See package
// gvs/ctl/realserver for what each method sets up.
//
//	gvs-realserver setup|teardown --method dr|l3dsr|tunnel --vip ADDR [--vip ADDR ...]
//	    --dev IFACE [--dscp N=VIP ...] [--addr REALADDR] [--decap auto|kernel|bpf]
//	    [--state-dir DIR] [--quiet]
//
// Exit status: 0 on success, 1 if setting up or tearing down failed, 2 on
// bad usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"gvs/ctl/realserver"

	"github.com/spf13/pflag"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageHead = `usage: gvs-realserver setup|teardown --method dr|l3dsr|tunnel --vip ADDR [--vip ADDR ...]
         --dev IFACE [--dscp N=VIP ...] [--addr REALADDR] [--decap auto|kernel|bpf]

Prepares this host (its current network namespace) as a real server of gvs,
or undoes that:
  dr      VIPs on lo, arp_ignore=1 / arp_announce=2
  l3dsr   as dr, plus an nftables table mapping DSCP N on packets to REALADDR
          back to the VIP (--dscp, --addr)
  tunnel  as dr, plus decapsulation of IPIP / IPv6-in-IPv6 packets to
          REALADDR (kernel tunnel device, or a tc-BPF program where the
          kernel has none) on IFACE (--addr)

flags:
`

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gvs-realserver", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	method := fs.StringP("method", "m", "", "forwarding method: dr, l3dsr or tunnel")
	vips := fs.StringSlice("vip", nil, "virtual IP (repeatable, or comma-separated)")
	dev := fs.StringP("dev", "d", "", "interface towards gvs")
	dscps := fs.StringSlice("dscp", nil, "l3dsr: DSCP=VIP mapping, e.g. 10=198.18.100.1 (repeatable)")
	addr := fs.String("addr", "", "l3dsr, tunnel: this real's own address that gvs sends to")
	decap := fs.String("decap", realserver.DecapAuto, "tunnel: decapsulation: auto, kernel or bpf")
	stateDir := fs.String("state-dir", realserver.DefaultStateDir, "where setup records what it changed, for teardown")
	quiet := fs.BoolP("quiet", "q", false, "do not print the changes made")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "gvs-realserver: %v\n", err)
		fs.Usage()
		return 2
	}
	verb, cfg, err := buildConfig(fs.Args(), *method, *vips, *dev, *dscps, *addr, *decap)
	if err != nil {
		fmt.Fprintf(stderr, "gvs-realserver: %v\n\n", err)
		fs.Usage()
		return 2
	}
	cfg.StateDir = *stateDir
	if !*quiet {
		cfg.Logf = func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	}
	if verb == "setup" {
		err = realserver.Setup(cfg)
	} else {
		err = realserver.Teardown(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gvs-realserver: %s %s: %v\n", verb, cfg.Method, err)
		return 1
	}
	return 0
}

// buildConfig checks the command line and turns it into the verb and a
// Config; its errors are usage errors.
func buildConfig(pos []string, method string, vips []string, dev string, dscps []string, addr, decap string) (string, realserver.Config, error) {
	var cfg realserver.Config
	if len(pos) != 1 || (pos[0] != "setup" && pos[0] != "teardown") {
		return "", cfg, fmt.Errorf("want exactly one of setup or teardown, got %q", pos)
	}
	if method == "" {
		return "", cfg, errors.New("--method is required")
	}
	if dev == "" {
		return "", cfg, errors.New("--dev is required")
	}
	cfg.Method, cfg.Interface, cfg.Decap = strings.ToLower(method), dev, decap
	for _, v := range vips {
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			return "", cfg, fmt.Errorf("--vip: %w", err)
		}
		cfg.VIPs = append(cfg.VIPs, a)
	}
	for _, d := range dscps {
		n, v, ok := strings.Cut(d, "=")
		if !ok {
			return "", cfg, fmt.Errorf("--dscp %q: want N=VIP", d)
		}
		dscp, err := strconv.ParseUint(strings.TrimSpace(n), 10, 8)
		if err != nil || dscp == 0 || dscp > 63 {
			return "", cfg, fmt.Errorf("--dscp %q: DSCP must be 1..63", d)
		}
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			return "", cfg, fmt.Errorf("--dscp %q: %w", d, err)
		}
		if cfg.DSCP == nil {
			cfg.DSCP = map[uint8]netip.Addr{}
		}
		if old, dup := cfg.DSCP[uint8(dscp)]; dup && old != a {
			return "", cfg, fmt.Errorf("--dscp %d given twice", dscp)
		}
		cfg.DSCP[uint8(dscp)] = a
	}
	if addr != "" {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return "", cfg, fmt.Errorf("--addr: %w", err)
		}
		cfg.RealAddr = a
	}
	switch cfg.Method {
	case realserver.MethodDR, realserver.MethodL3DSR, realserver.MethodTunnel:
	default:
		return "", cfg, fmt.Errorf("--method %q: want dr, l3dsr or tunnel", method)
	}
	if cfg.Method != realserver.MethodDR && !cfg.RealAddr.IsValid() {
		return "", cfg, fmt.Errorf("--addr is required for %s", cfg.Method)
	}
	if cfg.Method == realserver.MethodL3DSR && len(cfg.DSCP) == 0 {
		return "", cfg, errors.New("--dscp is required for l3dsr")
	}
	if cfg.Method != realserver.MethodL3DSR && len(cfg.DSCP) != 0 {
		return "", cfg, errors.New("--dscp is for l3dsr only")
	}
	if len(cfg.VIPs) == 0 && cfg.Method != realserver.MethodL3DSR {
		return "", cfg, errors.New("--vip is required")
	}
	return pos[0], cfg, nil
}
