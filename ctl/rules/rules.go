// Package rules reads and writes ipvsadm rules: the text of `ipvsadm -S`
// (Format) and what `ipvsadm -R` accepts (Parse), plus the gvs extensions
// that carry what ipvsadm cannot say. gvsd saves and restores its running
// configuration with it; gvsctl may parse its own -A/-E/-D/-a/-e/-d command
// lines with ParseArgs so that both read the same language.
//
// The rules, one per line (blank lines and lines starting with # are
// skipped; options may also be written --name=value):
//
//	-A|-E  SERVICE [-s SCHED] [-p [TIMEOUT]] [-M NETMASK] [-b FLAGS] [-o]
//	       [-g|-m|-i|--fullnat|--l3dsr DSCP] [--laddr ADDR]... [gvs service options]
//	-D     SERVICE
//	-a|-e  SERVICE -r RIP[:PORT] [-g|-m|-i|--fullnat|--l3dsr [DSCP]] [-w WEIGHT] [--state STATE]
//	-d     SERVICE -r RIP[:PORT]
//	-C
//
// SERVICE is -t VIP[:PORT] (tcp, --tcp-service), -u VIP[:PORT] (udp,
// --udp-service) or the gvs extension --any VIP[:PORT] (a service of every
// protocol, lb proto "any"; ipvsadm's fwmark services, -f, have no gvs
// equivalent and are refused). A missing port is port 0 (all ports); IPv6
// addresses are written in brackets, [2001:db8::1]:80. Addresses are
// numeric (no DNS); ports may be names from /etc/services, as plain
// `ipvsadm -S` writes them.
//
// -p without a timeout is 300 s, as in ipvsadm; -M takes a dotted netmask
// (IPv4) or a prefix length. -b takes the scheduler flags (hash-port,
// fallback, one-packet, or ipvsadm's sh-port, sh-fallback, mh-port,
// mh-fallback), -o is one-packet scheduling.
//
// Forwarding methods are -g (dr), -m (nat), -i (tunnel), as in ipvsadm, and
// the gvs methods --fullnat and --l3dsr. On -A/-E they set the service's
// method (gvs has one per service, which its reals inherit; default dr,
// ipvsadm's -g), and --l3dsr takes the service's DSCP value there. On -a/-e
// they set the real's own method; --l3dsr may repeat the service's DSCP
// (which it sets when the service has none). A real line without a method
// uses the service's (ipvsadm would use -g; Format always writes one, so
// saved rules mean the same to both). This is the grammar of gvsctl's
// command line too (ctl/ipvsadm).
//
// Other gvs options of -A/-E: --laddr ADDR (repeatable: fullnat sources and
// the tunnel outer source), --slow-start DURATION, --on-remove drain|drop,
// --maglev-size N, --client-port NAME. Of -a/-e: --state up|drain|down.
package rules

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gvs/ctl/config"
)

// Command is an ipvsadm command letter.
type Command byte

// The commands rules know.
const (
	AddService    Command = 'A'
	EditService   Command = 'E'
	DeleteService Command = 'D'
	AddReal       Command = 'a'
	EditReal      Command = 'e'
	DeleteReal    Command = 'd'
	Clear         Command = 'C'
)

// String returns the command as its option, e.g. "-A".
func (c Command) String() string { return "-" + string(rune(c)) }

// DefaultPersistence is the timeout of -p given without one (ipvsadm's).
const DefaultPersistence = 300 * time.Second

// Rule is one parsed rule.
type Rule struct {
	Line int // 1-based line of the text (Parse), 0 for ParseArgs
	Cmd  Command
	// Service names the service (Proto, VIP, Port; the VIP in canonical
	// form); for -A and -E it also carries the settings given. Its Reals
	// are always empty.
	Service config.Service
	// Real is the real server of -a, -e and -d: Addr, Port (0 when not
	// written), Weight (nil when -w is absent), Method ("" when no method
	// option is given) and State.
	Real config.Real
	// DSCP is the value of --l3dsr on a real line (0: none).
	DSCP int
}

// Error is a rule that cannot be parsed.
type Error struct {
	Line int // 0: not from text
	Msg  string
}

// Error returns the message, prefixed with its line when known.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Parse reads rules as `ipvsadm -R` does: one command per line.
func Parse(text string) ([]Rule, error) {
	var out []Rule
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := ParseArgs(strings.Fields(line))
		if err != nil {
			e := err.(*Error)
			e.Line = i + 1
			return nil, e
		}
		r.Line = i + 1
		out = append(out, r)
	}
	return out, nil
}

// option names, long and short, to the canonical short form (or the long
// name for gvs options without a short one).
var optNames = map[string]string{
	"-A": "-A", "--add-service": "-A",
	"-E": "-E", "--edit-service": "-E",
	"-D": "-D", "--delete-service": "-D",
	"-a": "-a", "--add-server": "-a",
	"-e": "-e", "--edit-server": "-e",
	"-d": "-d", "--delete-server": "-d",
	"-C": "-C", "--clear": "-C",
	"-t": "-t", "--tcp-service": "-t",
	"-u": "-u", "--udp-service": "-u",
	"--any": "--any", "--any-service": "--any",
	"-f": "-f", "--fwmark-service": "-f",
	"-s": "-s", "--scheduler": "-s",
	"-p": "-p", "--persistent": "-p",
	"-M": "-M", "--netmask": "-M",
	"-b": "-b", "--sched-flags": "-b",
	"-o": "-o", "--ops": "-o",
	"-r": "-r", "--real-server": "-r",
	"-g": "-g", "--gatewaying": "-g",
	"-m": "-m", "--masquerading": "-m",
	"-i": "-i", "--ipip": "-i", "--tunnel": "-i",
	"--fullnat": "--fullnat",
	"--l3dsr":   "--l3dsr",
	"-w":        "-w", "--weight": "-w",
	"--state":       "--state",
	"--laddr":       "--laddr",
	"--slow-start":  "--slow-start",
	"--on-remove":   "--on-remove",
	"--maglev-size": "--maglev-size",
	"--client-port": "--client-port",
}

// serviceOpts are the options only -A and -E take.
var serviceOpts = map[string]bool{
	"-s": true, "-p": true, "-M": true, "-b": true, "-o": true,
	"--laddr": true, "--slow-start": true, "--on-remove": true, "--maglev-size": true, "--client-port": true,
}

// realOpts are the options only -a and -e take (-r also -d).
var realOpts = map[string]bool{"-w": true, "--state": true}

// methodOpts are the forwarding methods (-A, -E, -a, -e).
var methodOpts = map[string]string{"-g": "dr", "-m": "nat", "-i": "tunnel", "--fullnat": "fullnat", "--l3dsr": "l3dsr"}

func errf(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// ParseArgs parses one rule given as arguments (a line split at blanks, or
// a command line without the program name).
func ParseArgs(args []string) (Rule, error) {
	var r Rule
	// Split --name=value.
	var toks []string
	for _, a := range args {
		if strings.HasPrefix(a, "--") {
			if k, v, ok := strings.Cut(a, "="); ok {
				toks = append(toks, k, v)
				continue
			}
		}
		toks = append(toks, a)
	}
	var svcGiven, methodGiven bool
	realArg := ""
	seen := map[string]bool{}
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		opt, ok := optNames[tok]
		if !ok {
			if strings.HasPrefix(tok, "-") {
				return r, errf("unknown or unsupported option %s", tok)
			}
			return r, errf("unexpected argument %q", tok)
		}
		value := func() (string, error) {
			if i+1 >= len(toks) {
				return "", errf("%s needs a value", tok)
			}
			i++
			return toks[i], nil
		}
		if seen[opt] && opt != "--laddr" {
			return r, errf("%s given twice", tok)
		}
		seen[opt] = true
		switch opt {
		case "-A", "-E", "-D", "-a", "-e", "-d", "-C":
			if r.Cmd != 0 {
				return r, errf("two commands: %s and %s", r.Cmd, opt)
			}
			r.Cmd = Command(opt[1])
			continue
		case "-f":
			return r, errf("fwmark services are not supported by gvs (use --any VIP:PORT for a service of every protocol)")
		}
		v := ""
		switch opt {
		case "-o", "-g", "-m", "-i", "--fullnat":
		case "-p", "--l3dsr":
			// Optional value: a number that follows.
			if i+1 < len(toks) && !strings.HasPrefix(toks[i+1], "-") {
				i++
				v = toks[i]
			}
		default:
			var err error
			if v, err = value(); err != nil {
				return r, err
			}
		}
		switch opt {
		case "-t", "-u", "--any":
			if svcGiven {
				return r, errf("more than one service address")
			}
			svcGiven = true
			r.Service.Proto = map[string]string{"-t": "tcp", "-u": "udp", "--any": "any"}[opt]
			addr, port, err := parseAddrPort(v, r.Service.Proto)
			if err != nil {
				return r, errf("%s %s: %v", tok, v, err)
			}
			r.Service.VIP, r.Service.Port = addr.String(), port
		case "-s":
			r.Service.Scheduler = v
		case "-p":
			d := DefaultPersistence
			if v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return r, errf("-p %s: want a timeout in seconds", v)
				}
				d = time.Duration(n) * time.Second
			}
			r.Service.Persistence = config.Duration{Duration: d}
		case "-M":
			bits, err := parseMask(v)
			if err != nil {
				return r, errf("-M %s: %v", v, err)
			}
			r.Service.PersistMask = bits
		case "-b":
			for _, f := range strings.Split(v, ",") {
				if f = strings.TrimSpace(f); f != "" {
					r.Service.Flags = appendFlag(r.Service.Flags, f)
				}
			}
		case "-o":
			r.Service.Flags = appendFlag(r.Service.Flags, "one-packet")
		case "--laddr":
			a, err := netip.ParseAddr(v)
			if err != nil {
				return r, errf("--laddr %s: not an address", v)
			}
			r.Service.LocalAddrs = append(r.Service.LocalAddrs, a.String())
		case "--slow-start":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return r, errf("--slow-start %s: want a duration such as 10s", v)
			}
			r.Service.SlowStart = config.Duration{Duration: d}
		case "--on-remove":
			r.Service.OnRemove = v
		case "--maglev-size":
			n, err := strconv.Atoi(v)
			if err != nil {
				return r, errf("--maglev-size %s: not a number", v)
			}
			r.Service.MaglevSize = n
		case "--client-port":
			r.Service.ClientPort = v
		case "-r":
			realArg = v // parsed below, with the service's protocol
		case "-g", "-m", "-i", "--fullnat", "--l3dsr":
			if methodGiven {
				return r, errf("more than one forwarding method")
			}
			methodGiven = true
			r.Real.Method = methodOpts[opt]
			if opt == "--l3dsr" && v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 63 {
					return r, errf("--l3dsr %s: want a DSCP value 1..63", v)
				}
				r.DSCP = n
			}
		case "-w":
			n, err := strconv.Atoi(v)
			if err != nil {
				return r, errf("-w %s: not a number", v)
			}
			r.Real.Weight = &n
		case "--state":
			r.Real.State = v
		}
	}
	switch r.Cmd {
	case 0:
		return r, errf("no command (-A, -E, -D, -a, -e, -d or -C)")
	case Clear:
		if len(seen) > 1 {
			return r, errf("-C takes no options")
		}
		return r, nil
	}
	if !svcGiven {
		return r, errf("%s needs a service: -t, -u or --any VIP:PORT", r.Cmd)
	}
	for opt := range seen {
		switch {
		case serviceOpts[opt] && r.Cmd != AddService && r.Cmd != EditService:
			return r, errf("%s is an option of -A and -E, not %s", opt, r.Cmd)
		case realOpts[opt] && r.Cmd != AddReal && r.Cmd != EditReal:
			return r, errf("%s is an option of -a and -e, not %s", opt, r.Cmd)
		case methodOpts[opt] != "" && (r.Cmd == DeleteService || r.Cmd == DeleteReal):
			return r, errf("%s is an option of -A, -E, -a and -e, not %s", opt, r.Cmd)
		case opt == "-r" && (r.Cmd == AddService || r.Cmd == EditService || r.Cmd == DeleteService):
			return r, errf("-r is an option of -a, -e and -d, not %s", r.Cmd)
		}
	}
	if (r.Cmd == AddReal || r.Cmd == EditReal || r.Cmd == DeleteReal) && realArg == "" {
		return r, errf("%s needs a real server: -r RIP[:PORT]", r.Cmd)
	}
	if realArg != "" {
		addr, port, err := parseAddrPort(realArg, r.Service.Proto)
		if err != nil {
			return r, errf("-r %s: %v", realArg, err)
		}
		r.Real.Addr, r.Real.Port = addr.String(), port
	}
	if r.Cmd == AddService || r.Cmd == EditService {
		// The method belongs to the service: move it (and the DSCP).
		r.Service.Method, r.Real.Method = r.Real.Method, ""
		if r.Service.Method == "l3dsr" && r.DSCP == 0 {
			return r, errf("--l3dsr needs the DSCP value (1..63) with %s", r.Cmd)
		}
		r.Service.DSCP, r.DSCP = r.DSCP, 0
	}
	if r.Cmd == AddService && r.Service.Scheduler == "" {
		r.Service.Scheduler = "wlc" // ipvsadm's default
	}
	return r, nil
}

func appendFlag(flags []string, f string) []string {
	for _, x := range flags {
		if x == f {
			return flags
		}
	}
	return append(flags, f)
}

// parseAddrPort reads ADDR, ADDR:PORT, [V6ADDR] or [V6ADDR]:PORT. A port
// may be a name from /etc/services (what ipvsadm -S writes without -n),
// looked up for proto; addresses must be numeric (no DNS).
func parseAddrPort(s, proto string) (netip.Addr, int, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), int(ap.Port()), nil
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, 0, fmt.Errorf("missing ']'")
		}
		host, port = s[1:end], s[end+1:]
		if port != "" && port[0] != ':' {
			return netip.Addr{}, 0, fmt.Errorf("want [ADDR]:PORT")
		}
		port = strings.TrimPrefix(port, ":")
	} else if strings.Count(s, ":") == 1 {
		host, port, _ = strings.Cut(s, ":")
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("want ADDR[:PORT] with a numeric address ([ADDR]:PORT for IPv6)")
	}
	if a.Zone() != "" {
		return netip.Addr{}, 0, fmt.Errorf("zoned addresses are not supported")
	}
	n := 0
	if port != "" {
		if n, err = strconv.Atoi(port); err != nil {
			if proto != "udp" {
				proto = "tcp"
			}
			if n, err = net.LookupPort(proto, port); err != nil {
				return netip.Addr{}, 0, fmt.Errorf("bad port %q (a number or a name from /etc/services)", port)
			}
		} else if n < 0 || n > 65535 {
			return netip.Addr{}, 0, fmt.Errorf("port %d out of range 0..65535", n)
		}
	}
	return a.Unmap(), n, nil
}

// parseMask reads a dotted IPv4 netmask or a prefix length.
func parseMask(s string) (int, error) {
	if n, err := strconv.Atoi(strings.TrimPrefix(s, "/")); err == nil {
		if n < 0 || n > 128 {
			return 0, fmt.Errorf("prefix length out of range 0..128")
		}
		return n, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("want a dotted IPv4 netmask or a prefix length")
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for m&0x80000000 != 0 {
		n++
		m <<= 1
	}
	if m != 0 {
		return 0, fmt.Errorf("netmask %s is not contiguous", s)
	}
	return n, nil
}

// Format writes services as `ipvsadm -S -n` would, one -A line per service
// followed by an -a line per real, with the gvs extensions for what ipvsadm
// cannot say. Restoring the text with Parse (after -C) gives back services
// that mean the same: real methods equal to the service's come back as the
// service's default, an omitted weight as -w 1.
func Format(svcs []config.Service) string {
	var b strings.Builder
	for i := range svcs {
		s := &svcs[i]
		id := serviceArg(s)
		fmt.Fprintf(&b, "-A %s", id)
		sched := s.Scheduler
		if sched == "" {
			sched = "wlc"
		}
		fmt.Fprintf(&b, " -s %s", sched)
		if p := s.Persistence.Duration; p > 0 {
			fmt.Fprintf(&b, " -p %d", int64((p+time.Second-1)/time.Second))
		}
		if s.PersistMask != 0 && s.PersistMask != fullBits(s.VIP) {
			if fullBits(s.VIP) == 32 {
				fmt.Fprintf(&b, " -M %s", dotted(s.PersistMask))
			} else {
				fmt.Fprintf(&b, " -M %d", s.PersistMask)
			}
		}
		var flags []string
		ops := false
		for _, f := range s.Flags {
			if f == "one-packet" || f == "ops" {
				ops = true
				continue
			}
			flags = append(flags, f)
		}
		if len(flags) > 0 {
			fmt.Fprintf(&b, " -b %s", strings.Join(flags, ","))
		}
		if ops {
			b.WriteString(" -o")
		}
		if s.Method != "" {
			// The DSCP of l3dsr reals of a service of another method
			// rides on their lines.
			b.WriteString(methodArg(s.Method, s.DSCP))
		}
		for _, la := range s.LocalAddrs {
			fmt.Fprintf(&b, " --laddr %s", la)
		}
		if s.SlowStart.Duration > 0 {
			fmt.Fprintf(&b, " --slow-start %s", s.SlowStart.Duration)
		}
		if s.OnRemove != "" && s.OnRemove != "drain" {
			fmt.Fprintf(&b, " --on-remove %s", s.OnRemove)
		}
		if s.MaglevSize != 0 {
			fmt.Fprintf(&b, " --maglev-size %d", s.MaglevSize)
		}
		if s.ClientPort != "" {
			fmt.Fprintf(&b, " --client-port %s", s.ClientPort)
		}
		b.WriteByte('\n')
		for j := range s.Reals {
			r := &s.Reals[j]
			fmt.Fprintf(&b, "-a %s -r %s", id, realArg(r.Addr, r.Port))
			m := r.Method
			if m == "" {
				m = s.Method
			}
			if canonMethod(m) == "l3dsr" && canonMethod(s.Method) != "l3dsr" {
				fmt.Fprintf(&b, " --l3dsr %d", s.DSCP) // the service line has no DSCP
			} else {
				b.WriteString(methodArg(m, 0))
			}
			w := 1
			if r.Weight != nil {
				w = *r.Weight
			}
			fmt.Fprintf(&b, " -w %d", w)
			if r.State != "" && r.State != "up" {
				fmt.Fprintf(&b, " --state %s", r.State)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// methodArg writes a forwarding method as its option (with the DSCP of
// --l3dsr when dscp is not 0).
func methodArg(m string, dscp int) string {
	switch canonMethod(m) {
	case "nat":
		return " -m"
	case "tunnel":
		return " -i"
	case "fullnat":
		return " --fullnat"
	case "l3dsr":
		if dscp != 0 {
			return fmt.Sprintf(" --l3dsr %d", dscp)
		}
		return " --l3dsr"
	}
	return " -g"
}

// CanonMethod returns the canonical name of a forwarding method as config
// accepts it ("" and the ipvsadm words included: "" and "route" are "dr",
// "masq" is "nat"), or the name unchanged when it is unknown.
func CanonMethod(m string) string { return canonMethod(m) }

func canonMethod(m string) string {
	switch strings.ToLower(m) {
	case "", "dr", "route", "gatewaying", "l2dsr":
		return "dr"
	case "nat", "masq", "masquerading":
		return "nat"
	case "fullnat", "snat":
		return "fullnat"
	case "l3dsr":
		return "l3dsr"
	case "tunnel", "ipip", "tun":
		return "tunnel"
	}
	return m
}

func serviceArg(s *config.Service) string {
	opt := "--any"
	switch strings.ToLower(s.Proto) {
	case "tcp":
		opt = "-t"
	case "udp":
		opt = "-u"
	}
	return opt + " " + hostPort(s.VIP, s.Port)
}

// hostPort writes ADDR:PORT ([ADDR]:PORT for IPv6), port 0 included (a
// service's port 0 is every port).
func hostPort(addr string, port int) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Sprintf("%s:%d", addr, port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
}

// realArg writes a real's address: port 0 (the service's port) is left
// out, which ipvsadm reads the same way (it copies the virtual port).
func realArg(addr string, port int) string {
	if port != 0 {
		return hostPort(addr, port)
	}
	if a, err := netip.ParseAddr(addr); err == nil && a.Unmap().Is6() {
		return "[" + a.String() + "]"
	}
	return addr
}

func fullBits(vip string) int {
	if a, err := netip.ParseAddr(vip); err == nil && a.Unmap().Is6() {
		return 128
	}
	return 32
}

func dotted(bits int) string {
	m := uint32(0)
	if bits > 0 {
		m = ^uint32(0) << (32 - bits)
	}
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}
