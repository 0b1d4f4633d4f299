// Package config is gvsd's configuration file: the TOML schema, loading with
// strict key checking, and validation whose errors name the file, the line
// and the key. It turns a file into an lb.Config plus the daemon's global and
// port settings. Every other part of gvs that reads the configuration goes
// through this package, so the schema grows in one place.
//
// Imports: gvs/lb, gvs/health, gvs/ctl/vrrp.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"gvs/ctl/bgp"
	"gvs/ctl/vrrp"
	"gvs/health"
	"gvs/lb"
)

// File is the configuration file as written. Field names are the TOML keys.
type File struct {
	Global  Global    `toml:"global" json:"global,omitempty"`
	Ports   []Port    `toml:"port" json:"port,omitempty"`
	Service []Service `toml:"service" json:"service,omitempty"`
	// VRRP is the [[vrrp]] tables: the instances of the node's
	// active/standby pair (see vrrp.go).
	VRRP []VRRPInstance `toml:"vrrp" json:"vrrp,omitempty"`
	// SessionSync is [session_sync]: the sessions follow the VRRP master.
	SessionSync *SessionSync `toml:"session_sync" json:"session_sync,omitempty"`
	// BGP is [bgp]: VIPs announced to routers for ECMP (see bgp.go).
	BGP *BGP `toml:"bgp" json:"bgp,omitempty"`
}

// Global holds the daemon-wide settings.
type Global struct {
	Workers  int      `toml:"workers" json:"workers,omitempty"`     // poll-mode workers (default 1)
	CPUs     []int    `toml:"cpus" json:"cpus,omitempty"`           // worker i pinned to cpus[i % len]; empty: not pinned
	Sessions int      `toml:"sessions" json:"sessions,omitempty"`   // session table entries per worker (default 1048576; a nat/fullnat session takes two)
	MaxReals int      `toml:"max_reals" json:"max_reals,omitempty"` // real servers, configured plus draining (default 4096)
	Timeouts Timeouts `toml:"timeouts" json:"timeouts,omitempty"`
	Idle     Idle     `toml:"idle" json:"idle,omitempty"`
	DPDK     *DPDK    `toml:"dpdk,omitempty" json:"dpdk,omitempty"`
}

// DPDK holds the EAL options of ports with driver = "dpdk". They are
// process-wide: EAL starts once, with the first DPDK port.
type DPDK struct {
	Lcores     string   `toml:"lcores,omitempty" json:"lcores,omitempty"`           // EAL -l (default: the first CPU gvsd may use)
	Memory     string   `toml:"memory,omitempty" json:"memory,omitempty"`           // no-huge (default: --no-huge -m memory_mb), hugepages, in-memory
	MemoryMB   int      `toml:"memory_mb,omitempty" json:"memory_mb,omitempty"`     // -m (default 256 with no-huge)
	FilePrefix string   `toml:"file_prefix,omitempty" json:"file_prefix,omitempty"` // --file-prefix (default gvs-<pid>)
	Allow      []string `toml:"allow,omitempty" json:"allow,omitempty"`             // PCI allow list (-a); the ports' PCI devices are added; none: --no-pci
	Vdevs      []string `toml:"vdevs,omitempty" json:"vdevs,omitempty"`             // extra --vdev devices
	Mbufs      int      `toml:"mbufs,omitempty" json:"mbufs,omitempty"`             // mbufs per NUMA socket pool (default: from queues and rings)
	LogLevel   string   `toml:"log_level,omitempty" json:"log_level,omitempty"`     // EAL --log-level
	Args       []string `toml:"args,omitempty" json:"args,omitempty"`               // more EAL arguments, verbatim
}

// Timeouts are the session timeouts (durations such as "900s", "15m").
type Timeouts struct {
	TCP    Duration `toml:"tcp" json:"tcp,omitempty"`         // established (default 900s)
	TCPSyn Duration `toml:"tcp_syn" json:"tcp_syn,omitempty"` // handshake (default 60s)
	TCPFin Duration `toml:"tcp_fin" json:"tcp_fin,omitempty"` // closing (default 120s)
	Close  Duration `toml:"close" json:"close,omitempty"`     // after RST (default 10s)
	UDP    Duration `toml:"udp" json:"udp,omitempty"`         // (default 300s)
	ICMP   Duration `toml:"icmp" json:"icmp,omitempty"`       // (default 60s)
}

// Idle is the back-off of a worker that receives nothing.
type Idle struct {
	Spin  int      `toml:"spin" json:"spin,omitempty"`
	Yield int      `toml:"yield" json:"yield,omitempty"`
	Sleep Duration `toml:"sleep" json:"sleep,omitempty"`
}

// Port is one interface gvs drives.
type Port struct {
	Name     string `toml:"name" json:"name,omitempty"`         // interface name
	Driver   string `toml:"driver" json:"driver,omitempty"`     // auto (default: afxdp, else afpacket), afxdp, afpacket, dpdk
	Mode     string `toml:"mode" json:"mode,omitempty"`         // afxdp: auto, native, generic
	ZeroCopy string `toml:"zerocopy" json:"zerocopy,omitempty"` // afxdp: auto, on, off
	Frames   int    `toml:"frames" json:"frames,omitempty"`     // afxdp: UMEM chunks; afpacket: buffer pool
	FrameSz  int    `toml:"frame_size" json:"frame_size,omitempty"`
	RingSize int    `toml:"ring_size" json:"ring_size,omitempty"` // dpdk: rx and tx descriptors

	// dpdk only. Device is the DPDK device: a PCI address (bound to
	// vfio-pci; added to the EAL allow list) or a vdev spec such as
	// "net_af_packet0,iface=eth0" (default: net_af_packet on the
	// interface called name).
	Device      string   `toml:"device,omitempty" json:"device,omitempty"`
	MAC         string   `toml:"mac,omitempty" json:"mac,omitempty"` // override the device's address
	MTU         int      `toml:"mtu,omitempty" json:"mtu,omitempty"`
	Promiscuous bool     `toml:"promiscuous,omitempty" json:"promiscuous,omitempty"`
	Addresses   []string `toml:"addresses,omitempty" json:"addresses,omitempty"` // the port's own addresses with prefix length: ARP/ND answered by gvs, source of its solicitations, on-link prefixes of next hops
	Gateways    []string `toml:"gateways,omitempty" json:"gateways,omitempty"`   // next hops of reals that are not on-link (one per family)
	Exception   string   `toml:"exception,omitempty" json:"exception,omitempty"` // tap (default): a TAP carries what is not gvs's to the kernel; none: dropped
	Tap         string   `toml:"tap,omitempty" json:"tap,omitempty"`             // the TAP's name (default gvs-<name>)
}

// Service is one virtual service.
type Service struct {
	Proto       string   `toml:"proto" json:"proto,omitempty"` // tcp, udp, any
	VIP         string   `toml:"vip" json:"vip,omitempty"`
	Port        int      `toml:"port" json:"port,omitempty"` // 0: all ports
	Scheduler   string   `toml:"scheduler" json:"scheduler,omitempty"`
	Method      string   `toml:"method" json:"method,omitempty"` // nat, fullnat, dr, l3dsr, tunnel
	Flags       []string `toml:"flags" json:"flags,omitempty"`   // hash-port, fallback, one-packet
	Persistence Duration `toml:"persistence" json:"persistence,omitempty"`
	PersistMask int      `toml:"persistence_mask" json:"persistence_mask,omitempty"`
	DSCP        int      `toml:"dscp" json:"dscp,omitempty"`
	LocalAddrs  []string `toml:"local_addrs" json:"local_addrs,omitempty"`
	MaglevSize  int      `toml:"maglev_size" json:"maglev_size,omitempty"`
	SlowStart   Duration `toml:"slow_start" json:"slow_start,omitempty"`
	OnRemove    string   `toml:"on_remove" json:"on_remove,omitempty"` // drain (default), drop
	ClientPort  string   `toml:"client_port" json:"client_port,omitempty"`
	// Announce: the VIP is announced over BGP ([bgp]) while at least
	// MinHealthy (default 1) reals of the service are healthy.
	Announce   bool `toml:"announce" json:"announce,omitempty"`
	MinHealthy int  `toml:"min_healthy" json:"min_healthy,omitempty"`
	// Checks is the health-check chain of every real of the service (a
	// real's own chain replaces it); Passive the passive-check rule.
	Checks  []Check  `toml:"check" json:"check,omitempty"`
	Passive *Passive `toml:"passive" json:"passive,omitempty"`
	Reals   []Real   `toml:"real" json:"real,omitempty"`
}

// Check is one health check of a chain (L2/L3 → L4 → L7: a check runs only
// while the ones before it pass; the real is up only when all pass).
type Check struct {
	Kind          string   `toml:"kind" json:"kind"` // arp, icmp, tcp, tcp-halfopen, http, https, http-content
	Port          int      `toml:"port" json:"port,omitempty"`
	Path          string   `toml:"path" json:"path,omitempty"`
	Host          string   `toml:"host" json:"host,omitempty"`
	Status        string   `toml:"status" json:"status,omitempty"` // accepted codes, e.g. "200-299,404"
	Contains      string   `toml:"contains" json:"contains,omitempty"`
	Regexp        string   `toml:"regexp" json:"regexp,omitempty"`
	MaxBody       int      `toml:"max_body" json:"max_body,omitempty"`
	Send          string   `toml:"send" json:"send,omitempty"`
	Expect        string   `toml:"expect" json:"expect,omitempty"`
	TLSVerify     bool     `toml:"tls_verify" json:"tls_verify,omitempty"`
	TLSServerName string   `toml:"tls_server_name" json:"tls_server_name,omitempty"`
	Interval      Duration `toml:"interval" json:"interval,omitempty"`
	Timeout       Duration `toml:"timeout" json:"timeout,omitempty"`
	Jitter        Duration `toml:"jitter" json:"jitter,omitempty"`
	Rise          int      `toml:"rise" json:"rise,omitempty"`
	Fall          int      `toml:"fall" json:"fall,omitempty"`
	Source        string   `toml:"source" json:"source,omitempty"`
	Interface     string   `toml:"interface" json:"interface,omitempty"`
	// ThroughVIP makes a tcp-halfopen check prove that a DSR real answers
	// on the VIP (the SYN goes to VIP:port, addressed to the real's MAC).
	ThroughVIP bool `toml:"through_vip" json:"through_vip,omitempty"`
}

// Passive is the passive-check rule: a real whose handshakes mostly never
// complete is taken down, with exponential back-off, until its active
// checks bring it back.
type Passive struct {
	MinSYNs    int      `toml:"min_syns" json:"min_syns,omitempty"`
	FailRatio  float64  `toml:"fail_ratio" json:"fail_ratio,omitempty"`
	Window     Duration `toml:"window" json:"window,omitempty"`
	Backoff    Duration `toml:"backoff" json:"backoff,omitempty"`
	MaxBackoff Duration `toml:"max_backoff" json:"max_backoff,omitempty"`
}

// Real is one real server.
type Real struct {
	Addr   string  `toml:"addr" json:"addr,omitempty"`
	Port   int     `toml:"port" json:"port,omitempty"`
	Weight *int    `toml:"weight" json:"weight,omitempty"` // default 1
	Method string  `toml:"method" json:"method,omitempty"`
	State  string  `toml:"state" json:"state,omitempty"` // up (default), drain, down
	Checks []Check `toml:"check" json:"check,omitempty"` // replaces the service's chain
}

// Duration is a time.Duration written as a string ("30s", "5m").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (want e.g. \"30s\", \"5m\")", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is a loaded and validated configuration.
type Config struct {
	Path     string
	File     File      // as written (defaults not filled)
	Global   Global    // with defaults
	Ports    []Port    // with defaults
	LB       lb.Config // services for the Balancer (NextHops filled by the daemon)
	Timeouts lb.Timeouts
	Health   []health.Target // reals with health checks (active or passive)
	VRRP     []vrrp.Config   // VRRP instances
	// SessionSync is the validated [session_sync] (nil: none).
	SessionSync *SyncSettings
	// BGP is the validated [bgp] with the announcement policies (nil: none).
	BGP *bgp.Config
}

// Error is a configuration error at a place in a file.
type Error struct {
	File string
	Line int    // 0 if unknown
	Key  string // e.g. service[1].real[0].weight
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// Load reads and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates a configuration given as bytes; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	var f File
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, decodeError(name, err)
	}
	lines := indexLines(data)
	v := &validator{name: name, lines: lines}
	cfg := v.build(&f)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	cfg.Path = name
	cfg.File = f
	return cfg, nil
}

// Build validates a configuration that did not come from a file (changes
// made through the control socket); errors name the key but no line.
func Build(name string, f File) (*Config, error) {
	v := &validator{name: name, lines: map[string]int{}}
	cfg := v.build(&f)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	cfg.Path = name
	cfg.File = f
	return cfg, nil
}

// Marshal writes f as TOML (gvsctl -S --format toml, save).
func Marshal(f File) ([]byte, error) { return toml.Marshal(f) }

func decodeError(name string, err error) error {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		var errs []error
		for i := range sm.Errors {
			de := &sm.Errors[i]
			row, _ := de.Position()
			errs = append(errs, &Error{File: name, Line: row, Key: strings.Join(de.Key(), "."), Msg: "unknown key"})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return &Error{File: name, Line: row, Key: strings.Join(de.Key(), "."), Msg: strings.TrimPrefix(de.Error(), "toml: ")}
	}
	return &Error{File: name, Msg: err.Error()}
}

type validator struct {
	name  string
	lines map[string]int
	errs  []error
}

// fail records an error at key (a path like service[0].vip); the line is
// that of the key, or of the nearest enclosing table that has one.
func (v *validator) fail(key, format string, args ...any) {
	line := 0
	for k := key; k != ""; k = parentKey(k) {
		if l, ok := v.lines[k]; ok {
			line = l
			break
		}
	}
	v.errs = append(v.errs, &Error{File: v.name, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func parentKey(k string) string {
	i := strings.LastIndexAny(k, ".[")
	if i < 0 {
		return ""
	}
	return k[:i]
}

func (v *validator) build(f *File) *Config {
	cfg := &Config{Global: f.Global}
	g := &cfg.Global
	if g.Workers == 0 {
		g.Workers = 1
	}
	if g.Workers < 1 || g.Workers > 64 {
		v.fail("global.workers", "%d out of range 1..64", g.Workers)
	}
	for i, c := range g.CPUs {
		if c < 0 || c > 4095 {
			v.fail(fmt.Sprintf("global.cpus[%d]", i), "CPU %d out of range", c)
		}
	}
	if g.Sessions == 0 {
		g.Sessions = 1 << 20
	}
	if g.Sessions < 64 || g.Sessions > 1<<28 {
		v.fail("global.sessions", "%d out of range 64..%d", g.Sessions, 1<<28)
	}
	if g.MaxReals == 0 {
		g.MaxReals = 4096
	}
	if g.MaxReals < 1 || g.MaxReals > 1<<20 {
		v.fail("global.max_reals", "%d out of range 1..%d", g.MaxReals, 1<<20)
	}
	cfg.Timeouts = lb.DefaultTimeouts
	setT := func(dst *uint32, d Duration, key string) {
		if d.Duration == 0 {
			return
		}
		if d.Duration < time.Second {
			v.fail("global.timeouts."+key, "%s is below the 1s resolution of session timeouts", d.Duration)
			return
		}
		*dst = uint32(d.Duration / time.Second)
	}
	t := &g.Timeouts
	setT(&cfg.Timeouts.Established, t.TCP, "tcp")
	setT(&cfg.Timeouts.SynSent, t.TCPSyn, "tcp_syn")
	setT(&cfg.Timeouts.Fin, t.TCPFin, "tcp_fin")
	setT(&cfg.Timeouts.Close, t.Close, "close")
	setT(&cfg.Timeouts.UDP, t.UDP, "udp")
	setT(&cfg.Timeouts.ICMP, t.ICMP, "icmp")

	portIdx := map[string]int{}
	for i, p := range f.Ports {
		key := fmt.Sprintf("port[%d]", i)
		if p.Name == "" {
			v.fail(key+".name", "missing interface name")
		} else if _, dup := portIdx[p.Name]; dup {
			v.fail(key+".name", "interface %q listed twice", p.Name)
		}
		portIdx[p.Name] = i
		switch p.Driver {
		case "":
			p.Driver = "auto"
		case "auto", "afxdp", "afpacket", "dpdk":
		default:
			v.fail(key+".driver", "unknown driver %q (want auto, afxdp, afpacket or dpdk)", p.Driver)
		}
		v.dpdkPort(key, &p)
		switch p.Mode {
		case "", "auto", "native", "generic":
		default:
			v.fail(key+".mode", "unknown XDP mode %q (want auto, native or generic)", p.Mode)
		}
		switch p.ZeroCopy {
		case "", "auto", "on", "off":
		default:
			v.fail(key+".zerocopy", "want auto, on or off, not %q", p.ZeroCopy)
		}
		if p.FrameSz != 0 && p.FrameSz != 2048 && p.FrameSz != 4096 {
			v.fail(key+".frame_size", "%d: want 2048 or 4096", p.FrameSz)
		}
		if p.RingSize != 0 && (p.RingSize&(p.RingSize-1) != 0 || p.RingSize < 64) {
			v.fail(key+".ring_size", "%d: want a power of two >= 64", p.RingSize)
		}
		cfg.Ports = append(cfg.Ports, p)
	}
	if len(f.Ports) == 0 {
		v.fail("port", "at least one [[port]] is needed")
	}
	v.dpdkGlobal(cfg)

	seen := map[lb.ServiceKey]string{}
	for i := range f.Service {
		s, ok := v.service(i, &f.Service[i], portIdx)
		if !ok {
			continue
		}
		key := fmt.Sprintf("service[%d]", i)
		if prev, dup := seen[s.Key()]; dup {
			v.fail(key, "service %s already defined at %s", s.Key(), prev)
			continue
		}
		seen[s.Key()] = fmt.Sprintf("%s:%d", v.name, v.lines[key])
		one := lb.Config{Services: []lb.Service{s}}
		if err := lb.Validate(&one); err != nil {
			v.fail(key, "%v", err)
			continue
		}
		cfg.LB.Services = append(cfg.LB.Services, one.Services[0])
		cfg.Health = append(cfg.Health, v.healthTargets(key, &f.Service[i], one.Services[0])...)
	}
	cfg.LB.Timeouts = cfg.Timeouts
	cfg.VRRP = v.vrrpInstances(f.VRRP, cfg.LB.Services)
	cfg.SessionSync = v.sessionSync(f.SessionSync, cfg.VRRP)
	cfg.BGP = v.bgpConfig(f.BGP, f.Service, cfg.LB.Services)
	return cfg
}

func (v *validator) service(i int, in *Service, portIdx map[string]int) (lb.Service, bool) {
	key := fmt.Sprintf("service[%d]", i)
	n := len(v.errs)
	var s lb.Service
	var err error
	if s.Proto, err = lb.ParseProto(in.Proto); err != nil {
		v.fail(key+".proto", "%v", err)
	}
	if s.VIP, err = netip.ParseAddr(in.VIP); err != nil {
		v.fail(key+".vip", "bad address %q", in.VIP)
	}
	if in.Port < 0 || in.Port > 65535 {
		v.fail(key+".port", "%d out of range 0..65535", in.Port)
	}
	s.Port = uint16(in.Port)
	s.Scheduler = in.Scheduler
	if s.Scheduler == "" {
		s.Scheduler = "wlc"
	}
	if _, err := lb.ParseSched(s.Scheduler); err != nil {
		v.fail(key+".scheduler", "%v", err)
	}
	if in.Method != "" {
		if s.Method, err = lb.ParseMethod(in.Method); err != nil {
			v.fail(key+".method", "%v", err)
		}
	}
	for j, fl := range in.Flags {
		switch fl {
		case "hash-port", "sh-port", "mh-port":
			s.Flags |= lb.FlagHashPort
		case "fallback", "sh-fallback", "mh-fallback":
			s.Flags |= lb.FlagFallback
		case "one-packet", "ops":
			s.Flags |= lb.FlagOnePacket
		default:
			v.fail(fmt.Sprintf("%s.flags[%d]", key, j), "unknown flag %q (want hash-port, fallback, one-packet)", fl)
		}
	}
	s.PersistTimeout = in.Persistence.Duration
	s.PersistMask = in.PersistMask
	if in.DSCP < 0 || in.DSCP > 63 {
		v.fail(key+".dscp", "%d out of range 0..63", in.DSCP)
	}
	s.DSCP = uint8(in.DSCP)
	for j, a := range in.LocalAddrs {
		la, err := netip.ParseAddr(a)
		if err != nil {
			v.fail(fmt.Sprintf("%s.local_addrs[%d]", key, j), "bad address %q", a)
			continue
		}
		s.LocalAddrs = append(s.LocalAddrs, la)
	}
	s.MaglevSize = in.MaglevSize
	s.SlowStart = in.SlowStart.Duration
	switch in.OnRemove {
	case "", "drain":
		s.OnRemove = lb.RemoveDrain
	case "drop":
		s.OnRemove = lb.RemoveDrop
	default:
		v.fail(key+".on_remove", "want drain or drop, not %q", in.OnRemove)
	}
	if in.ClientPort != "" {
		pi, ok := portIdx[in.ClientPort]
		if !ok {
			v.fail(key+".client_port", "no [[port]] named %q", in.ClientPort)
		}
		s.ClientPort = uint16(pi)
	}
	for j := range in.Reals {
		r := &in.Reals[j]
		rkey := fmt.Sprintf("%s.real[%d]", key, j)
		var lr lb.Real
		if lr.Addr, err = netip.ParseAddr(r.Addr); err != nil {
			v.fail(rkey+".addr", "bad address %q", r.Addr)
		}
		if r.Port < 0 || r.Port > 65535 {
			v.fail(rkey+".port", "%d out of range 0..65535", r.Port)
		}
		lr.Port = uint16(r.Port)
		lr.Weight = 1
		if r.Weight != nil {
			lr.Weight = *r.Weight
			if lr.Weight < 0 || lr.Weight > lb.MaxWeight {
				v.fail(rkey+".weight", "%d out of range 0..%d", lr.Weight, lb.MaxWeight)
			}
		}
		if r.Method != "" {
			if lr.Method, err = lb.ParseMethod(r.Method); err != nil {
				v.fail(rkey+".method", "%v", err)
			}
		}
		switch r.State {
		case "", "up":
		case "drain":
			lr.State = lb.RealDrain
		case "down":
			lr.State = lb.RealDown
		default:
			v.fail(rkey+".state", "want up, drain or down, not %q", r.State)
		}
		s.Reals = append(s.Reals, lr)
	}
	return s, len(v.errs) == n
}

// healthTargets turns the checks of a validated service into health
// targets, one per real that has a chain or a passive rule.
func (v *validator) healthTargets(key string, in *Service, s lb.Service) []health.Target {
	var passive *health.PassiveRule
	if in.Passive != nil {
		p := in.Passive
		passive = &health.PassiveRule{MinSYNs: p.MinSYNs, FailRatio: p.FailRatio, Window: p.Window.Duration,
			Backoff: p.Backoff.Duration, MaxBackoff: p.MaxBackoff.Duration}
	}
	var out []health.Target
	for j, r := range s.Reals {
		chainKey, chain := key+".check", in.Checks
		if len(in.Reals[j].Checks) > 0 {
			chainKey, chain = fmt.Sprintf("%s.real[%d].check", key, j), in.Reals[j].Checks
		}
		if len(chain) == 0 && passive == nil {
			continue
		}
		t := health.Target{Key: lb.RealKey{Service: s.Key(), Addr: r.Addr, Port: r.Port}, Passive: passive}
		ok := true
		for ci, c := range chain {
			hc, field, err := healthCheck(c)
			place := fmt.Sprintf("%s[%d]", chainKey, ci)
			if field != "" {
				place += "." + field
			}
			if err == nil {
				one := t
				one.Chain = []health.Check{hc}
				if c.ThroughVIP {
					one.VIP = s.VIP
				}
				err = one.Validate()
			}
			if err != nil {
				v.fail(place, "%v", err)
				ok = false
				continue
			}
			if c.ThroughVIP {
				t.VIP = s.VIP
			}
			t.Chain = append(t.Chain, hc)
		}
		if ok {
			out = append(out, t)
		}
	}
	return out
}

// healthCheck converts a check as written into the health package's; on
// error it names the offending field.
func healthCheck(c Check) (health.Check, string, error) {
	if c.Port < 0 || c.Port > 65535 {
		return health.Check{}, "port", fmt.Errorf("port %d out of range", c.Port)
	}
	hc := health.Check{
		Kind: c.Kind, Port: uint16(c.Port), Path: c.Path, Host: c.Host, Contains: c.Contains, Regexp: c.Regexp,
		MaxBody: c.MaxBody, TLSVerify: c.TLSVerify, TLSServerName: c.TLSServerName,
		Interval: c.Interval.Duration, Timeout: c.Timeout.Duration, Jitter: c.Jitter.Duration,
		Rise: c.Rise, Fall: c.Fall, Interface: c.Interface,
	}
	if c.Send != "" {
		hc.Send = []byte(c.Send)
	}
	if c.Expect != "" {
		hc.Expect = []byte(c.Expect)
	}
	if c.Status != "" {
		st, err := health.ParseStatus(c.Status)
		if err != nil {
			return hc, "status", err
		}
		hc.Status = st
	}
	if c.Source != "" {
		a, err := netip.ParseAddr(c.Source)
		if err != nil {
			return hc, "source", fmt.Errorf("bad source address %q", c.Source)
		}
		hc.Source = a
	}
	return hc, "", nil
}
