// Command trafficgen sends stamped test traffic through a gvs driver and
// measures, at one or more sinks, what arrives: rates, loss, reordering
// and latency per class. It is a thin command line over bench/trafficgen.
//
//	trafficgen --netns tg-gen --iface gen0 --driver afxdp --dst-mac 02:00:c6:12:00:02 \
//	    --src 198.18.0.1 --dst 198.18.1.10 --sink tg-sink:sink0 --rate 100k --duration 10s
//
// Exit status: 0 ok, 2 bad options, 1 runtime error, 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"gvs/bench/trafficgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// cli is what the command does besides trafficgen.Options.
type cli struct {
	quiet bool
	json  string
	svg   string
}

// parse turns the arguments into validated options. Its errors are the
// operator's: exit status 2.
func parse(args []string, stderr io.Writer) (trafficgen.Options, cli, error) {
	var o trafficgen.Options
	var c cli
	fs := pflag.NewFlagSet("trafficgen", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Driver, "driver", trafficgen.DriverAFPacket, "transmit driver: afxdp, afpacket, mem (in-memory self test), dpdk (with -tags dpdk)")
	fs.StringVar(&o.Netns, "netns", "", "named network namespace of --iface (required unless --allow-root-ns)")
	fs.StringVar(&o.Iface, "iface", "", "interface to send on (dpdk: the device spec)")
	fs.BoolVar(&o.AllowRootNS, "allow-root-ns", false, "allow interfaces of the root namespace (empty --netns or sink netns)")
	sinks := fs.StringArray("sink", nil, "receive at NETNS:IFACE[:DRIVER] (driver afpacket (default) or afxdp); repeatable")
	fs.StringVar(&o.Family, "family", "4", "address family: 4, 6 or both (flows alternate)")
	fs.StringVar(&o.Proto, "proto", "udp", "udp, syn, ack, mix (udp:1,syn:1,ack:1) or weights like udp:3,ack:1 (per flow)")
	fs.IntVar(&o.Flows, "flows", 1, "number of flows, 1..1048576 (source port counts up, then the source address)")
	size := fs.String("size", "64", "frame size in bytes including the FCS (64..9018), or imix (7:4:1 of 64/594/1518)")
	srcs := fs.StringSlice("src", nil, "first source address per family (e.g. 198.18.0.1,2001:db8::1)")
	dsts := fs.StringSlice("dst", nil, "destination (VIP) per family")
	dport := fs.Uint16("dport", trafficgen.DefaultDstPort, "destination port")
	sport := fs.Uint16("sport-base", trafficgen.DefaultSportBase, "first source port")
	srcMAC := fs.String("src-mac", "", "source MAC (default: the interface's)")
	dstMAC := fs.String("dst-mac", "", "destination MAC: the next hop, e.g. the load balancer (required except for mem)")
	allow := fs.StringSlice("allow", nil, "prefixes addresses must be in (default 198.18.0.0/15,2001:db8::/32; only benchmark/documentation ranges)")
	rate := fs.String("rate", "0", "packets per second, k/M suffixes allowed (0: as fast as possible)")
	fs.DurationVar(&o.Duration, "duration", 0, "send for this long (at most 1h)")
	fs.Uint64Var(&o.Count, "count", 0, "send this many packets")
	fs.DurationVar(&o.Drain, "drain", trafficgen.DefaultDrain, "wait this long after sending for packets in flight")
	fs.IntVar(&o.CPU, "cpu", -1, "pin the sending thread to this CPU (-1: not pinned)")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&c.json, "json", "", "write the result as JSON to this file")
	fs.StringVar(&c.svg, "svg", "", "write PREFIX-throughput.svg and PREFIX-latency.svg")
	usage := func() {
		fmt.Fprintf(stderr, "usage: trafficgen --netns NS --iface IF --dst-mac MAC --src ADDR --dst VIP --sink NS:IF[:DRIVER] (--duration D | --count N) [flags]\n%s", fs.FlagUsages())
	}

	err := func() error {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		for _, s := range *sinks {
			k, err := trafficgen.ParseSink(s)
			if err != nil {
				return err
			}
			o.Sinks = append(o.Sinks, k)
		}
		if *size == "imix" {
			o.IMIX = true
		} else {
			n, err := strconv.Atoi(*size)
			if err != nil {
				return fmt.Errorf("size %q: not a number or imix", *size)
			}
			o.Size = n
		}
		for _, x := range []struct {
			name string
			in   []string
			out  *[]netip.Addr
		}{{"src", *srcs, &o.Src}, {"dst", *dsts, &o.Dst}} {
			for _, s := range x.in {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("%s %q: not an IP address", x.name, s)
				}
				*x.out = append(*x.out, a)
			}
		}
		o.DstPort, o.SportBase = *dport, *sport
		for _, m := range []struct {
			name, in string
			out      *trafficgen.MAC
		}{{"src-mac", *srcMAC, &o.SrcMAC}, {"dst-mac", *dstMAC, &o.DstMAC}} {
			if m.in == "" {
				continue
			}
			hw, err := trafficgen.ParseMAC(m.in)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			*m.out = hw
		}
		for _, s := range *allow {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("allow %q: not a prefix", s)
			}
			o.Allow = append(o.Allow, p.Masked())
		}
		r, err := parseRate(*rate)
		if err != nil {
			return err
		}
		o.Rate = r
		o.Defaults()
		return o.Validate()
	}()
	if err != nil {
		if !errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stderr, "trafficgen: %v\n", err)
		}
		usage()
	}
	return o, c, err
}

// parseRate reads packets per second with an optional k or M suffix.
func parseRate(s string) (float64, error) {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("rate %q: not a number of packets per second", s)
	}
	return v * mult, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, c, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var progress io.Writer
	if !c.quiet {
		progress = stderr
	}
	res, err := trafficgen.Run(ctx, o, progress)
	if res != nil {
		res.WriteTable(stdout)
		if c.json != "" {
			if jerr := res.WriteJSON(c.json); jerr != nil {
				err = errors.Join(err, jerr)
			}
		}
		if c.svg != "" {
			if serr := res.WriteSVG(c.svg); serr != nil {
				err = errors.Join(err, serr)
			}
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "trafficgen: interrupted")
		return 130
	}
	if err != nil {
		fmt.Fprintf(stderr, "trafficgen: %v\n", err)
		return 1
	}
	return 0
}
