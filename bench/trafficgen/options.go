package trafficgen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"gvs/driver"
)

// Limits of the options.
const (
	MaxFlows     = 1 << 20 // flow ids are 24 bits in the stamp
	MinFrameSize = 64      // bytes on the wire including the FCS
	MaxFrameSize = 9018    // a 9000-byte MTU plus Ethernet header and FCS
	MaxDuration  = time.Hour
	// DefaultDrain is how long the sinks keep receiving after the sender
	// stopped, unless everything sent has arrived earlier.
	DefaultDrain = 200 * time.Millisecond
	maxDrain     = 10 * time.Second
)

// Defaults of the addresses and ports.
const (
	DefaultDstPort   = 9    // discard
	DefaultSportBase = 1024 // flows count source ports up from here
)

// Driver names.
const (
	DriverAFXDP    = "afxdp"
	DriverAFPacket = "afpacket"
	DriverMem      = "mem"
	DriverDPDK     = "dpdk"
)

// DefaultAllow are the prefixes traffic may use when Options.Allow is empty:
// the benchmarking range of RFC 2544 and the IPv6 documentation prefix.
var DefaultAllow = []netip.Prefix{
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// AllowCeiling are the only prefixes Options.Allow may name (or name parts
// of): ranges that are never routed on the Internet — benchmarking (RFC 2544,
// RFC 5180) and documentation (RFC 5737, RFC 3849). A generator that can
// flood at line rate must not be pointed at real hosts by a typo.
var AllowCeiling = []netip.Prefix{
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2001:2::/48"),
}

// MAC is an Ethernet address that reads and writes itself as text (JSON).
type MAC net.HardwareAddr

func (m MAC) String() string { return net.HardwareAddr(m).String() }

// MarshalText implements encoding.TextMarshaler.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *MAC) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*m = nil
		return nil
	}
	hw, err := ParseMAC(string(b))
	*m = hw
	return err
}

// ParseMAC parses a 6-byte Ethernet address.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("MAC %q malformed (want 6 bytes like 02:00:c6:12:00:02)", s)
	}
	return MAC(hw), nil
}

// Sink is where traffic is received: an interface in a named network
// namespace, driven by afxdp or afpacket.
type Sink struct {
	Netns  string `json:"netns"`
	Iface  string `json:"iface"`
	Driver string `json:"driver"`
}

func (s Sink) String() string { return s.Netns + ":" + s.Iface + ":" + s.Driver }

// ParseSink parses NETNS:IFACE[:DRIVER] (driver default afpacket).
func ParseSink(s string) (Sink, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[1] == "" {
		return Sink{}, fmt.Errorf("sink %q malformed (want NETNS:IFACE[:DRIVER], NETNS may be empty only with allow-root-ns)", s)
	}
	k := Sink{Netns: parts[0], Iface: parts[1], Driver: DriverAFPacket}
	if len(parts) == 3 && parts[2] != "" {
		k.Driver = parts[2]
	}
	if k.Driver != DriverAFPacket && k.Driver != DriverAFXDP {
		return Sink{}, fmt.Errorf("sink %q: driver %q not usable for a sink (want afpacket or afxdp)", s, k.Driver)
	}
	return k, nil
}

// Options describe one run. The zero value is not valid: at least Dst, Src
// and Duration or Count are needed; Validate says what is missing.
type Options struct {
	// Driver of the transmitting port: afxdp, afpacket, mem, or dpdk (in
	// builds with the dpdk tag).
	Driver string `json:"driver"`
	// Netns is the named network namespace of Iface (tx side).
	Netns string `json:"netns"`
	// Iface is the transmitting interface (the DPDK device spec for dpdk).
	Iface string `json:"iface"`
	// AllowRootNS permits an empty Netns, i.e. opening interfaces of the
	// root namespace (tx and sinks).
	AllowRootNS bool `json:"allow_root_ns"`
	// Sinks receive and account the traffic. With Driver mem and no
	// SinkPorts, Run makes an in-memory pair and receives on its far end.
	Sinks []Sink `json:"sinks"`

	// Family is "4", "6" or "both" (flows alternate between families).
	Family string `json:"family"`
	// Proto is udp, syn, ack, mix (= udp:1,syn:1,ack:1) or a weighted list
	// such as "udp:3,ack:1"; weights apply to flows.
	Proto string `json:"proto"`
	// Flows is the number of flows, 1..MaxFlows (no default).
	Flows int `json:"flows"`
	// Size is the frame size on the wire including the FCS; 0 with IMIX.
	Size int `json:"size"`
	// IMIX sends simple IMIX: 7:4:1 frames of 64, 594 and 1518 bytes.
	IMIX bool `json:"imix"`

	// Src holds the first source address of each family in use; Dst the
	// destination (the VIP) of each family.
	Src []netip.Addr `json:"src"`
	Dst []netip.Addr `json:"dst"`
	// DstPort is the destination port (default 9); SportBase the first
	// source port (default 1024).
	DstPort   uint16 `json:"dport"`
	SportBase uint16 `json:"sport_base"`
	// SrcMAC defaults to the transmitting interface's; DstMAC (the next
	// hop, e.g. the load balancer) is required except for mem.
	SrcMAC MAC `json:"src_mac"`
	DstMAC MAC `json:"dst_mac"`
	// Allow narrows the prefixes source and destination addresses must be
	// in (default DefaultAllow); each must lie inside AllowCeiling.
	Allow []netip.Prefix `json:"allow"`

	// Rate is packets per second (0: as fast as possible).
	Rate float64 `json:"rate_pps"`
	// Duration and Count bound the run; at least one is needed, and the
	// run ends at whichever comes first.
	Duration time.Duration `json:"duration_ns"`
	Count    uint64        `json:"count"`
	// Drain is how long sinks wait for stragglers (default 200 ms).
	Drain time.Duration `json:"drain_ns"`
	// CPU pins the sending thread (-1: not pinned).
	CPU int `json:"cpu"`

	// TxPort and SinkPorts are ports opened by the caller (tests, other
	// benchmarks); Run uses them instead of opening Iface and Sinks, and
	// does not close them.
	TxPort    driver.Port   `json:"-"`
	SinkPorts []driver.Port `json:"-"`
}

// Defaults fills the zero values that have defaults.
func (o *Options) Defaults() {
	if o.Driver == "" {
		o.Driver = DriverAFPacket
	}
	if o.Family == "" {
		o.Family = "4"
	}
	if o.Proto == "" {
		o.Proto = "udp"
	}
	if o.Size == 0 && !o.IMIX {
		o.Size = MinFrameSize
	}
	if o.DstPort == 0 {
		o.DstPort = DefaultDstPort
	}
	if o.SportBase == 0 {
		o.SportBase = DefaultSportBase
	}
	if o.Drain == 0 {
		o.Drain = DefaultDrain
	}
	if len(o.Allow) == 0 {
		o.Allow = DefaultAllow
	}
}

// families returns the address families in use (4, 6).
func (o *Options) families() ([]int, error) {
	switch o.Family {
	case "4":
		return []int{4}, nil
	case "6":
		return []int{6}, nil
	case "both", "46":
		return []int{4, 6}, nil
	}
	return nil, fmt.Errorf("family %q unknown (want 4, 6 or both)", o.Family)
}

// ParseProto parses a proto option into weights per protocol class.
func ParseProto(s string) ([numProtos]int, error) {
	var w [numProtos]int
	switch s {
	case "mix":
		s = "udp:1,syn:1,ack:1"
	case "":
		s = "udp"
	}
	for _, item := range strings.Split(s, ",") {
		name, ws, hasW := strings.Cut(strings.TrimSpace(item), ":")
		p, ok := protoByName(name)
		if !ok {
			return w, fmt.Errorf("proto %q: unknown protocol %q (want udp, syn, ack, mix, or weights like udp:3,ack:1)", s, name)
		}
		n := 1
		if hasW {
			v, err := strconv.Atoi(ws)
			if err != nil || v < 0 || v > 1000 {
				return w, fmt.Errorf("proto %q: weight %q of %s not an integer in 0..1000", s, ws, name)
			}
			n = v
		}
		w[p] += n
	}
	if w[0]+w[1]+w[2] == 0 {
		return w, fmt.Errorf("proto %q: all weights are zero", s)
	}
	return w, nil
}

// Validate checks the options (after Defaults) and says what is wrong in
// terms of the command line flags.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if !driverKnown(o.Driver) {
		if o.Driver == DriverDPDK {
			bad("driver dpdk: not in this build (rebuild with -tags dpdk)")
		} else {
			bad("driver %q unknown (want %s)", o.Driver, strings.Join(driverNames(), ", "))
		}
	}
	fams, err := o.families()
	if err != nil {
		errs = append(errs, err)
	}
	weights, err := ParseProto(o.Proto)
	if err != nil {
		errs = append(errs, err)
	}
	if o.Flows < 1 || o.Flows > MaxFlows {
		bad("flows %d out of range 1..%d", o.Flows, MaxFlows)
	}
	switch {
	case o.IMIX && o.Size != 0:
		bad("size %d and imix both given: pick one", o.Size)
	case !o.IMIX && (o.Size < MinFrameSize || o.Size > MaxFrameSize):
		bad("size %d out of range %d..%d (bytes on the wire including the 4-byte FCS)", o.Size, MinFrameSize, MaxFrameSize)
	}
	if o.Rate < 0 {
		bad("rate %g is negative (0 means as fast as possible)", o.Rate)
	}
	if o.Duration < 0 {
		bad("duration %v is negative", o.Duration)
	}
	if o.Duration == 0 && o.Count == 0 {
		bad("neither duration nor count given: the run needs a bound")
	}
	if o.Duration > MaxDuration {
		bad("duration %v longer than %v", o.Duration, MaxDuration)
	}
	if o.Drain < 0 || o.Drain > maxDrain {
		bad("drain %v out of range 0..%v", o.Drain, maxDrain)
	}
	if o.SrcMAC != nil && len(o.SrcMAC) != 6 {
		bad("src-mac %v malformed (want 6 bytes)", o.SrcMAC)
	}
	if o.DstMAC != nil && len(o.DstMAC) != 6 {
		bad("dst-mac %v malformed (want 6 bytes)", o.DstMAC)
	}
	if o.DstMAC == nil && o.Driver != DriverMem {
		bad("dst-mac missing: driver %s needs the next hop's MAC (e.g. the load balancer's)", o.Driver)
	}
	if o.Driver != DriverMem && o.TxPort == nil {
		if o.Iface == "" {
			bad("iface missing: the interface to send on")
		}
		if o.Netns == "" && !o.AllowRootNS {
			bad("netns missing: interfaces are opened only inside a named network namespace (allow-root-ns permits the root namespace)")
		}
	}
	if o.SinkPorts == nil {
		for _, s := range o.Sinks {
			if s.Netns == "" && !o.AllowRootNS {
				bad("sink %s: no netns: sinks are opened only inside a named network namespace (allow-root-ns permits the root namespace)", s)
			}
			if s.Iface == "" {
				bad("sink %s: no interface", s)
			}
			if s.Driver != DriverAFPacket && s.Driver != DriverAFXDP {
				bad("sink %s: driver %q not usable for a sink (want afpacket or afxdp)", s, s.Driver)
			}
		}
		if len(o.Sinks) > 0 && o.Driver == DriverMem && o.TxPort == nil {
			bad("sink %s: driver mem sends into an in-memory port, which no interface sink can see: use afxdp or afpacket, or no sink", o.Sinks[0])
		}
		if len(o.Sinks) == 0 && o.Driver != DriverMem {
			bad("no sink: give at least one NETNS:IFACE[:DRIVER] to receive on")
		}
	}
	if err := checkAllow(o.Allow); err != nil {
		errs = append(errs, err)
	}
	if fams != nil {
		errs = append(errs, o.checkAddrs(fams)...)
	}
	if fams != nil && weights[0]+weights[1]+weights[2] > 0 && o.Flows >= 1 && o.Flows <= MaxFlows {
		if n := len(buildSchedule(fams, weights)); o.Flows < n {
			bad("flows %d fewer than the %d that proto %q and family %s need (one flow per class and weight unit)", o.Flows, n, o.Proto, o.Family)
		}
	}
	return errors.Join(errs...)
}

// checkAllow makes sure every allowed prefix lies inside AllowCeiling.
func checkAllow(allow []netip.Prefix) error {
	for _, p := range allow {
		ok := false
		for _, c := range AllowCeiling {
			if p.Bits() >= c.Bits() && c.Contains(p.Addr()) {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("allow %v: not inside the non-routable benchmark and documentation ranges %v", p, AllowCeiling)
		}
	}
	return nil
}

func allowed(allow []netip.Prefix, a netip.Addr) bool {
	for _, p := range allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// checkAddrs checks that each family in use has one source and one
// destination and that every address the flows use is allowed.
func (o *Options) checkAddrs(fams []int) []error {
	var errs []error
	for _, f := range fams {
		src, dst := pick(o.Src, f), pick(o.Dst, f)
		if !dst.IsValid() {
			errs = append(errs, fmt.Errorf("dst: no IPv%d destination given (family %s)", f, o.Family))
		} else if !allowed(o.Allow, dst) {
			errs = append(errs, fmt.Errorf("dst %v: outside the allowed prefixes %v", dst, o.Allow))
		}
		if !src.IsValid() {
			errs = append(errs, fmt.Errorf("src: no IPv%d source given (family %s)", f, o.Family))
			continue
		}
		if !allowed(o.Allow, src) {
			errs = append(errs, fmt.Errorf("src %v: outside the allowed prefixes %v", src, o.Allow))
			continue
		}
		if o.Flows >= 1 && o.Flows <= MaxFlows {
			last, ok := flowSrc(src, o.SportBase, o.Flows-1)
			if !ok || !allowed(o.Allow, last) {
				errs = append(errs, fmt.Errorf("src %v: %d flows from source port %d need source addresses up to %v, outside the allowed prefixes %v", src, o.Flows, o.SportBase, last, o.Allow))
			}
		}
	}
	for _, a := range append(append([]netip.Addr(nil), o.Src...), o.Dst...) {
		if a.Is4In6() {
			errs = append(errs, fmt.Errorf("address %v: IPv4-mapped IPv6 addresses are not supported, write %v", a, a.Unmap()))
		}
	}
	return errs
}

// pick returns the first address of family f (4 or 6) in as.
func pick(as []netip.Addr, f int) netip.Addr {
	for _, a := range as {
		if (f == 4) == a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// flowSrc is flow i's source address: flows count source ports up from
// SportBase to 65535, then the source address goes up by one and the ports
// start over. It reports false if the address overflows.
func flowSrc(base netip.Addr, sportBase uint16, i int) (netip.Addr, bool) {
	perAddr := 65536 - int(sportBase)
	a := base
	for n := i / perAddr; n > 0; n-- {
		a = a.Next()
		if !a.IsValid() {
			return a, false
		}
	}
	return a, true
}

func flowSport(sportBase uint16, i int) uint16 {
	perAddr := 65536 - int(sportBase)
	return uint16(int(sportBase) + i%perAddr)
}

// openers holds the drivers this build can open (dpdk registers itself).
var openers = map[string]func(iface string, sink bool) (driver.Port, error){}

func driverKnown(name string) bool {
	if name == DriverMem {
		return true
	}
	_, ok := openers[name]
	return ok
}

func driverNames() []string {
	names := []string{DriverMem}
	for n := range openers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
