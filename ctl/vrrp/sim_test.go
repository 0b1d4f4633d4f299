package vrrp

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"testing"
	"time"
)

// A simulated LAN: nodes (each a Router with a fake Host) exchange encoded
// advertisements with a fixed latency; time is simulated and advances from
// event to event, so RFC timings can be checked to the microsecond.

const simLatency = 100 * time.Microsecond

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type delivery struct {
	at   time.Time
	to   *simNode
	pkt  Packet
	seq  int
	from *simNode
}

type simNet struct {
	t      *testing.T
	now    time.Time
	nodes  []*simNode
	queue  []delivery
	seq    int
	cut    map[[2]*simNode]bool // partitioned pairs
	events []string
	// ttl, when set, overrides the TTL of sent packets (negative tests).
	ttl int
	// drop, when set, loses the packets it returns true for.
	drop func(d *delivery) bool
}

type simNode struct {
	net       *simNet
	name      string
	addr      netip.Addr
	r         *Router
	down      bool
	owned     map[string]bool
	announced map[string]int
	renewed   int
	sent      []Advert
	// becameMaster records when each instance last became master.
	becameMaster map[string]time.Time
}

func newSim(t *testing.T) *simNet {
	return &simNet{t: t, now: t0, cut: map[[2]*simNode]bool{}}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (s *simNet) node(name, addr string) *simNode {
	n := &simNode{net: s, name: name, addr: netip.MustParseAddr(addr), r: NewRouter(quietLog()),
		owned: map[string]bool{}, announced: map[string]int{}, becameMaster: map[string]time.Time{}}
	s.nodes = append(s.nodes, n)
	return n
}

// add adds an instance to n with cfg filled from defaults.
func (n *simNode) add(cfg Config) *Instance {
	if cfg.Name == "" {
		cfg.Name = "vi"
	}
	if cfg.Interface == "" {
		cfg.Interface = "eth0"
	}
	if cfg.VRID == 0 {
		cfg.VRID = 51
	}
	if cfg.Priority == 0 {
		cfg.Priority = DefaultPriority
	}
	if cfg.AdvertInt == 0 {
		cfg.AdvertInt = time.Second
	}
	if cfg.Version == 0 {
		cfg.Version = 3
	}
	if len(cfg.VIPs) == 0 {
		if n.addr.Is6() {
			cfg.VIPs = []netip.Prefix{netip.MustParsePrefix("2001:db8:1::10/128")}
		} else {
			cfg.VIPs = []netip.Prefix{netip.MustParsePrefix("198.18.1.10/32")}
		}
	}
	if err := cfg.Validate(); err != nil {
		n.net.t.Fatal(err)
	}
	in := NewInstance(cfg, n.addr, n, quietLog())
	n.r.Add(in)
	return in
}

func (n *simNode) inst(name string) *Instance { return n.r.Instance(name) }

// Host implementation.

func (n *simNode) Send(in *Instance, adv *Advert) error {
	if n.down {
		return fmt.Errorf("link down")
	}
	n.sent = append(n.sent, *adv)
	dsts := []netip.Addr{in.cfg.Group()}
	if in.cfg.Unicast() {
		dsts = in.cfg.UnicastPeers
	}
	for _, dst := range dsts {
		b := adv.Marshal(nil, in.primary, dst)
		for _, o := range n.net.nodes {
			if o == n || o.down || n.net.cut[[2]*simNode{n, o}] {
				continue
			}
			if !dst.IsMulticast() && dst != o.addr {
				continue
			}
			ttl := TTL
			if n.net.ttl != 0 {
				ttl = n.net.ttl
			}
			n.net.seq++
			n.net.queue = append(n.net.queue, delivery{at: n.net.now.Add(simLatency), to: o, from: n, seq: n.net.seq,
				pkt: Packet{Interface: in.cfg.Interface, Src: in.primary, Dst: dst, TTL: ttl, Data: b}})
		}
	}
	return nil
}

func (n *simNode) TakeOver(in *Instance) error {
	n.owned[in.cfg.Name] = true
	n.becameMaster[in.cfg.Name] = n.net.now
	n.net.events = append(n.net.events, fmt.Sprintf("%v %s/%s master", n.net.now.Sub(t0), n.name, in.cfg.Name))
	return nil
}

func (n *simNode) Release(in *Instance) error {
	n.owned[in.cfg.Name] = false
	n.net.events = append(n.net.events, fmt.Sprintf("%v %s/%s release", n.net.now.Sub(t0), n.name, in.cfg.Name))
	return nil
}

func (n *simNode) Announce(in *Instance) (int, error) {
	n.announced[in.cfg.Name] += len(in.cfg.VIPs)
	return len(in.cfg.VIPs), nil
}

func (n *simNode) Renew(in *Instance) error { n.renewed++; return nil }

// run advances the simulation to until, delivering packets and firing
// timers in time order.
func (s *simNet) run(until time.Time) {
	for i := 0; i < 1_000_000; i++ {
		next := until
		for _, n := range s.nodes {
			if t := n.r.Next(); !t.IsZero() && t.Before(next) {
				next = t
			}
		}
		sort.Slice(s.queue, func(i, j int) bool {
			if s.queue[i].at.Equal(s.queue[j].at) {
				return s.queue[i].seq < s.queue[j].seq
			}
			return s.queue[i].at.Before(s.queue[j].at)
		})
		if len(s.queue) > 0 && !s.queue[0].at.After(next) {
			d := s.queue[0]
			s.queue = s.queue[1:]
			s.now = d.at
			if !d.to.down && !s.cut[[2]*simNode{d.from, d.to}] && (s.drop == nil || !s.drop(&d)) {
				d.to.r.Receive(s.now, &d.pkt)
			}
			continue
		}
		if next.Equal(until) {
			s.now = until
			for _, n := range s.nodes {
				n.r.Tick(s.now)
			}
			return
		}
		s.now = next
		for _, n := range s.nodes {
			n.r.Tick(s.now)
		}
	}
	s.t.Fatal("simulation did not converge")
}

func (s *simNet) runFor(d time.Duration) { s.run(s.now.Add(d)) }

// partition cuts (or heals) the link between a and b in both directions.
func (s *simNet) partition(a, b *simNode, cut bool) {
	s.cut[[2]*simNode{a, b}] = cut
	s.cut[[2]*simNode{b, a}] = cut
}

func wantState(t *testing.T, in *Instance, st State) {
	t.Helper()
	if in.State() != st {
		t.Fatalf("%s at %s: state %s, want %s (reason %q)", in.cfg.Name, in.primary, in.State(), st, in.reason)
	}
}

// masters counts the nodes whose instance name is master.
func (s *simNet) masters(name string) (n int) {
	for _, nd := range s.nodes {
		if in := nd.inst(name); in != nil && in.State() == Master {
			n++
		}
	}
	return n
}

func near(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if d := got - want; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}
