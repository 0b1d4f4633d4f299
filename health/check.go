package health

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gvs/lb"
)

// Kinds of checks, as written in configurations.
const (
	KindARP         = "arp"          // ARP request (IPv4) or neighbour solicitation (IPv6): L2
	KindICMP        = "icmp"         // echo request / reply: L3
	KindTCP         = "tcp"          // full connect, optional send / expect: L4
	KindTCPHalfOpen = "tcp-halfopen" // SYN → SYN/ACK → RST from a raw socket: L4
	KindHTTP        = "http"         // GET, status in a set (and content, if asked): L7
	KindHTTPS       = "https"        // as http, over TLS
	KindHTTPContent = "http-content" // as http, and the body must contain a string or match a regexp
)

// Defaults of a Check's zero fields.
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = time.Second
	DefaultRise     = 2
	DefaultFall     = 3
	DefaultMaxBody  = 64 << 10
	// DefaultJitterDiv: the default jitter is Interval / DefaultJitterDiv (10%).
	DefaultJitterDiv = 10
)

// NoJitter as a Check's Jitter turns jitter off: the check runs exactly
// every Interval, and a new check runs at once instead of at a random point
// of its first jitter span.
const NoJitter time.Duration = -1

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// String formats the range as configured: "200-399", or "200".
func (r StatusRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// DefaultStatus is the accepted status set of http checks when none is
// given: 200–399.
var DefaultStatus = []StatusRange{{200, 399}}

// ParseStatus parses a status set such as "200", "200-299,301" or
// "200-399".
func ParseStatus(s string) ([]StatusRange, error) {
	var out []StatusRange
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err != nil || a < 100 || b > 599 || a > b {
			return nil, fmt.Errorf("bad HTTP status range %q in %q (want e.g. 200-399,404)", f, s)
		}
		out = append(out, StatusRange{a, b})
	}
	return out, nil
}

// Check is one check of a chain. Zero fields take the defaults above; a
// field that does not apply to the Kind is ignored (and does not make two
// checks differ when they are shared).
type Check struct {
	Kind string // one of the Kind constants

	// Port is the port of tcp, tcp-halfopen and http* checks; 0: the
	// target's port.
	Port uint16

	// Path and Host are the request path (default "/") and Host header
	// (default: the address and port probed) of http* checks.
	Path, Host string
	// Status is the set of accepted status codes of http* checks
	// (default DefaultStatus).
	Status []StatusRange
	// Contains or Regexp (exactly one of them for http-content, at most
	// one for http and https) is what the first MaxBody bytes of the body
	// must contain or match.
	Contains, Regexp string
	// MaxBody bounds how much of the body is read (default DefaultMaxBody).
	MaxBody int

	// Send is written after a tcp check connects; Expect is what the
	// answer must start with (read until len(Expect) bytes arrived).
	Send, Expect []byte

	// TLSVerify makes https checks verify the real's certificate against
	// TLSRootCAs (nil: the system roots) for TLSServerName (default: Host
	// without its port, else the real's address). Without it any
	// certificate is accepted.
	TLSVerify     bool
	TLSServerName string
	TLSRootCAs    *x509.CertPool

	// Interval is the time between two probes of this check (default
	// DefaultInterval), Jitter the maximum random deviation of each
	// interval (default Interval/10; NoJitter: none), Timeout the limit of
	// one probe (default DefaultTimeout).
	Interval, Timeout, Jitter time.Duration
	// Rise is how many consecutive successes bring a down check up,
	// Fall how many consecutive failures take an up check down (defaults
	// DefaultRise, DefaultFall).
	Rise, Fall int

	// Source binds the probe to this local address (optional).
	Source netip.Addr
	// Interface is the interface arp checks and VIP-bound tcp-halfopen
	// checks send on; empty: the one the route to the real leaves by.
	Interface string
}

// Target is a real server to check: its key, the address and port to
// probe, and the chain of checks, lowest layer first.
type Target struct {
	Key  lb.RealKey
	Addr netip.Addr // zero: Key.Addr
	Port uint16     // zero: Key.Port, else Key.Service.Port
	// VIP makes tcp-halfopen checks prove that the real answers on the VIP
	// (DSR reals): the SYN goes to VIP:port in a frame addressed to the
	// real's MAC. Other kinds ignore it.
	VIP netip.Addr
	// Chain is checked in order: check i runs only while checks 0..i-1 are
	// up, and the target is up only when all of them are. An empty chain
	// is always up (only passive checks can take it down).
	Chain []Check
	// Passive is the passive-check rule of the target; nil: none.
	Passive *PassiveRule
}

// Result is the outcome of one probe.
type Result struct {
	OK bool
	// Reason says what happened, for an operator: "connect to
	// 198.18.1.11:80: connection refused", "GET http://198.18.1.11:80/:
	// status 503", "... timeout after 1s".
	Reason  string
	Latency time.Duration // how long the probe took
	At      time.Time     // when it ended (the Manager's clock)
}

// String formats the result for logs: "ok: reason (latency)".
func (r Result) String() string {
	s := "fail"
	if r.OK {
		s = "ok"
	}
	return fmt.Sprintf("%s: %s (%v)", s, r.Reason, r.Latency.Round(time.Microsecond))
}

// Checker runs one check of one target. Check must end by ctx's deadline
// (the check's Timeout), is never called concurrently with itself for one
// Checker, and reports the outcome, including why it failed, in its
// Result (At is set by the caller).
type Checker interface {
	Check(ctx context.Context) Result
	String() string // "http GET http://198.18.1.11:80/health", for logs
}

// ErrBadCheck is wrapped by the errors of invalid checks and targets.
var ErrBadCheck = errors.New("invalid health check")

// withDefaults returns c with its defaults applied and the fields that do
// not apply to its kind cleared, for target t (ports resolved). It returns
// an error if the check cannot run.
func (c Check) withDefaults(t *Target) (Check, error) {
	bad := func(format string, args ...any) (Check, error) {
		return Check{}, fmt.Errorf("%w: %s: %s", ErrBadCheck, c.Kind, fmt.Sprintf(format, args...))
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Jitter == 0 {
		c.Jitter = c.Interval / DefaultJitterDiv
	}
	if c.Jitter < 0 {
		c.Jitter = NoJitter
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.Interval < 0 || c.Timeout < 0 || c.Rise < 0 || c.Fall < 0 || c.MaxBody < 0 {
		return bad("negative interval, timeout, rise, fall or max body")
	}
	if c.Jitter != NoJitter && c.Jitter >= c.Interval {
		return bad("jitter %v must be below the interval %v", c.Jitter, c.Interval)
	}
	if c.Source.IsValid() && c.Source.Is4() != t.Addr.Is4() {
		return bad("source %s and real %s are of different families", c.Source, t.Addr)
	}
	port := c.Port
	if port == 0 {
		port = t.Port
	}
	keep := Check{
		Kind: c.Kind, Interval: c.Interval, Timeout: c.Timeout, Jitter: c.Jitter,
		Rise: c.Rise, Fall: c.Fall, Source: c.Source,
	}
	switch c.Kind {
	case KindARP:
		keep.Interface = c.Interface
	case KindICMP:
	case KindTCP:
		keep.Port, keep.Send, keep.Expect = port, c.Send, c.Expect
	case KindTCPHalfOpen:
		keep.Port = port
		if t.VIP.IsValid() {
			if t.VIP.Is4() != t.Addr.Is4() {
				return bad("VIP %s and real %s are of different families", t.VIP, t.Addr)
			}
			keep.Interface = c.Interface
		}
	case KindHTTP, KindHTTPS, KindHTTPContent:
		keep.Port, keep.Path, keep.Host = port, c.Path, c.Host
		keep.Status, keep.Contains, keep.Regexp, keep.MaxBody = c.Status, c.Contains, c.Regexp, c.MaxBody
		if keep.Path == "" {
			keep.Path = "/"
		}
		if !strings.HasPrefix(keep.Path, "/") {
			return bad("path %q must start with /", keep.Path)
		}
		if len(keep.Status) == 0 {
			keep.Status = DefaultStatus
		}
		for _, r := range keep.Status {
			if r.Lo < 100 || r.Hi > 599 || r.Lo > r.Hi {
				return bad("bad status range %v", r)
			}
		}
		if keep.MaxBody == 0 {
			keep.MaxBody = DefaultMaxBody
		}
		n := 0
		if c.Contains != "" {
			n++
		}
		if c.Regexp != "" {
			n++
			if _, err := regexp.Compile(c.Regexp); err != nil {
				return bad("regexp: %v", err)
			}
		}
		if n > 1 || (c.Kind == KindHTTPContent && n != 1) {
			return bad("needs exactly one of contains and regexp")
		}
		if c.Kind == KindHTTPS {
			keep.TLSVerify, keep.TLSServerName, keep.TLSRootCAs = c.TLSVerify, c.TLSServerName, c.TLSRootCAs
		}
	case "":
		return bad("kind missing (want arp, icmp, tcp, tcp-halfopen, http, https or http-content)")
	default:
		return bad("unknown kind (want arp, icmp, tcp, tcp-halfopen, http, https or http-content)")
	}
	if keep.Port == 0 && c.Kind != KindARP && c.Kind != KindICMP {
		return bad("no port (neither the check nor the real has one)")
	}
	return keep, nil
}

// normalize fills the target's defaults and checks it.
func (t Target) normalize() (Target, error) {
	if !t.Addr.IsValid() {
		t.Addr = t.Key.Addr
	}
	if !t.Addr.IsValid() {
		return t, fmt.Errorf("%w: real %v: no address", ErrBadCheck, t.Key)
	}
	t.Addr = t.Addr.Unmap()
	t.VIP = t.VIP.Unmap()
	if t.Port == 0 {
		t.Port = t.Key.Port
	}
	if t.Port == 0 {
		t.Port = t.Key.Service.Port
	}
	chain := make([]Check, len(t.Chain))
	for i, c := range t.Chain {
		c.Source = c.Source.Unmap()
		d, err := c.withDefaults(&t)
		if err != nil {
			return t, fmt.Errorf("real %v: check %d: %w", t.Key, i, err)
		}
		chain[i] = d
	}
	t.Chain = chain
	if t.Passive != nil {
		p, err := t.Passive.withDefaults()
		if err != nil {
			return t, fmt.Errorf("real %v: %w", t.Key, err)
		}
		t.Passive = &p
	}
	return t, nil
}

// probeKey identifies check i of a normalized target for sharing: two
// targets share a probe when their chains agree up to and including it
// (same checks, same address, port, VIP where it matters).
func probeKey(t *Target, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", t.Addr)
	for _, c := range t.Chain[:i+1] {
		vip := netip.Addr{}
		if c.Kind == KindTCPHalfOpen {
			vip = t.VIP
		}
		fmt.Fprintf(&b, "|%s port=%d path=%q host=%q status=%v contains=%q re=%q max=%d send=%q expect=%q tls=%t sni=%q roots=%p iv=%d to=%d j=%d rise=%d fall=%d src=%s if=%q vip=%s",
			c.Kind, c.Port, c.Path, c.Host, c.Status, c.Contains, c.Regexp, c.MaxBody, c.Send, c.Expect,
			c.TLSVerify, c.TLSServerName, c.TLSRootCAs, c.Interval, c.Timeout, c.Jitter, c.Rise, c.Fall,
			c.Source, c.Interface, vip)
	}
	return b.String()
}

// NewChecker returns the built-in checker for check c of target t (c's
// zero fields take their defaults, as in a Manager). It does no I/O:
// sockets are opened by each Check, in the network namespace of the
// calling thread.
func NewChecker(c Check, t Target) (Checker, error) {
	t.Chain = []Check{c}
	nt, err := t.normalize()
	if err != nil {
		return nil, err
	}
	return newChecker(nt.Chain[0], &nt)
}

func newChecker(c Check, t *Target) (Checker, error) {
	switch c.Kind {
	case KindARP:
		return newARPChecker(c, t), nil
	case KindICMP:
		return newICMPChecker(c, t), nil
	case KindTCP:
		return newTCPChecker(c, t), nil
	case KindTCPHalfOpen:
		if t.VIP.IsValid() {
			return newVIPHalfOpenChecker(c, t), nil
		}
		return newHalfOpenChecker(c, t), nil
	case KindHTTP, KindHTTPS, KindHTTPContent:
		return newHTTPChecker(c, t)
	}
	return nil, fmt.Errorf("%w: unknown kind %q", ErrBadCheck, c.Kind)
}

// Validate checks a target and its chain as Manager.Set would, without
// running anything (configuration loading uses it to report errors with
// their place in the file).
func (t Target) Validate() error {
	_, err := t.normalize()
	return err
}
