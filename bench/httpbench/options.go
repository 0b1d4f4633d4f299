package httpbench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Contender names.
const (
	Direct   = "direct"   // wrk → backend, no load balancer: the reference
	Nftables = "nftables" // kernel DNAT (numgen inc) in the lb namespace
	HAProxy  = "haproxy"  // HAProxy mode tcp, roundrobin, in the lb namespace
	Gvs      = "gvs"      // gvsd, afxdp driver, method dr (L2 DSR reals)
	GvsNAT   = "gvs-nat"  // gvsd, afxdp driver, method nat (reals route back via gvs)
)

// ContenderNames lists every contender Run knows, in the default order.
var ContenderNames = []string{Direct, Nftables, HAProxy, Gvs, GvsNAT}

// DefaultContenders is the set Run measures when Options.Contenders is
// empty (gvs-nat is opt-in).
var DefaultContenders = []string{Direct, Nftables, HAProxy, Gvs}

// Modes: keep-alive connections, or a new connection per request (wrk
// with "Connection: close").
const (
	KeepAlive = "keepalive"
	NewConn   = "newconn"
)

// Modes is the order in which each contender's runs are made.
var Modes = []string{KeepAlive, NewConn}

// ErrNotRoot is returned by Run when the process is not root (namespaces,
// XDP and nftables need it).
var ErrNotRoot = errors.New("httpbench: needs root (network namespaces, XDP, nftables)")

// Options configures Run. Zero fields take the defaults of DefaultOptions,
// except Warmup (zero: no warm-up), Progress (nil: none) and Log (nil:
// discard).
type Options struct {
	Rounds         int           // rounds of all contenders × modes (default 3)
	Duration       time.Duration // measured wrk run, whole seconds (default 5s)
	Warmup         time.Duration // unmeasured wrk run before each measured one, whole seconds; 0: none
	Connections    int           // wrk -c (default 64)
	Threads        int           // wrk -t (default 2)
	Backends       int           // nginx backends (default 1)
	Contenders     []string      // subset of ContenderNames, in run order (default DefaultContenders)
	GvsdPath       string        // gvsd binary; empty: `go build gvs/cmd/gvsd` once (needs the module as working directory)
	GvsWorkers     int           // gvsd poll-mode workers (default 1)
	HAProxyThreads int           // HAProxy nbthread (default 1)
	Progress       io.Writer     // one line per measured run
	Log            *slog.Logger
}

// DefaultOptions returns the defaults: 3 rounds of 5 s runs after 1 s of
// warm-up, wrk -t2 -c64, one backend, DefaultContenders, one gvs worker,
// one HAProxy thread.
func DefaultOptions() Options {
	return Options{
		Rounds: 3, Duration: 5 * time.Second, Warmup: time.Second,
		Connections: 64, Threads: 2, Backends: 1,
		Contenders: slices.Clone(DefaultContenders),
		GvsWorkers: 1, HAProxyThreads: 1,
	}
}

// Validate reports what is wrong with o once its defaults are filled in.
func (o Options) Validate() error {
	_, err := o.withDefaults()
	return err
}

// withDefaults fills the zero fields and validates the result.
func (o Options) withDefaults() (Options, error) {
	d := DefaultOptions()
	if o.Rounds == 0 {
		o.Rounds = d.Rounds
	}
	if o.Duration == 0 {
		o.Duration = d.Duration
	}
	if o.Connections == 0 {
		o.Connections = d.Connections
	}
	if o.Threads == 0 {
		o.Threads = d.Threads
	}
	if o.Backends == 0 {
		o.Backends = d.Backends
	}
	if len(o.Contenders) == 0 {
		o.Contenders = d.Contenders
	}
	if o.GvsWorkers == 0 {
		o.GvsWorkers = d.GvsWorkers
	}
	if o.HAProxyThreads == 0 {
		o.HAProxyThreads = d.HAProxyThreads
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o, o.validate()
}

// validate checks filled-in options.
func (o Options) validate() error {
	var errs []error
	if o.Rounds < 1 || o.Rounds > 100 {
		errs = append(errs, fmt.Errorf("rounds %d: must be 1..100", o.Rounds))
	}
	if o.Duration < time.Second || o.Duration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("duration %v: must be a whole number of seconds, at least 1s (wrk -d has second granularity)", o.Duration))
	}
	if o.Warmup < 0 || o.Warmup%time.Second != 0 {
		errs = append(errs, fmt.Errorf("warmup %v: must be 0 (none) or a whole number of seconds (wrk -d has second granularity)", o.Warmup))
	}
	if o.Threads < 1 || o.Threads > 64 {
		errs = append(errs, fmt.Errorf("threads %d: must be 1..64", o.Threads))
	}
	if o.Connections < o.Threads || o.Connections > 5000 {
		errs = append(errs, fmt.Errorf("connections %d: must be at least threads (%d) and at most 5000", o.Connections, o.Threads))
	}
	if o.Backends < 1 || o.Backends > maxBackends {
		errs = append(errs, fmt.Errorf("backends %d: must be 1..%d", o.Backends, maxBackends))
	}
	if o.GvsWorkers < 1 || o.GvsWorkers > 16 {
		errs = append(errs, fmt.Errorf("gvs workers %d: must be 1..16", o.GvsWorkers))
	}
	if o.HAProxyThreads < 1 || o.HAProxyThreads > 64 {
		errs = append(errs, fmt.Errorf("haproxy threads %d: must be 1..64", o.HAProxyThreads))
	}
	seen := map[string]bool{}
	for _, c := range o.Contenders {
		switch {
		case !slices.Contains(ContenderNames, c):
			errs = append(errs, fmt.Errorf("unknown contender %q (known: %s)", c, strings.Join(ContenderNames, ", ")))
		case seen[c]:
			errs = append(errs, fmt.Errorf("contender %q given twice", c))
		}
		seen[c] = true
	}
	return errors.Join(errs...)
}

// ParseContenders splits a comma-separated list ("direct,gvs") and checks
// the names; empty gives DefaultContenders.
func ParseContenders(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(DefaultContenders), nil
	}
	var out []string
	for _, c := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(c))
	}
	o := DefaultOptions()
	o.Contenders = out
	if err := o.validate(); err != nil {
		return nil, err
	}
	return out, nil
}

func (o Options) needs(c string) bool { return slices.Contains(o.Contenders, c) }

func (o Options) needsGvs() bool { return o.needs(Gvs) || o.needs(GvsNAT) }
