package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// PrefixState is one VIP's announcement state.
type PrefixState struct {
	Prefix      netip.Prefix
	Announced   bool
	Reason      string
	Since       time.Time
	Transitions uint64
}

// SessionState is one neighbour's session.
type SessionState struct {
	Addr  netip.Addr
	AS    uint32
	State string // idle, connect, active, opensent, openconfirm, established
	Since time.Time
	Ups   uint64 // times the session became established
}

// Status is the speaker's state.
type Status struct {
	LocalAS  uint32
	RouterID netip.Addr
	Drained  bool
	Sessions []SessionState
	Prefixes []PrefixState
}

// Speaker is gvsd's BGP speaker.
type Speaker struct {
	cfg Config
	log *slog.Logger
	srv *server.BgpServer

	mu       sync.Mutex
	drained  bool
	stopped  bool
	prefixes map[netip.Prefix]*PrefixState
	order    []netip.Prefix
	sessions map[netip.Addr]*SessionState
	cancel   context.CancelFunc
}

// New returns a speaker for cfg (not started).
func New(cfg Config, log *slog.Logger) *Speaker {
	if log == nil {
		log = slog.Default()
	}
	s := &Speaker{cfg: cfg, log: log, prefixes: map[netip.Prefix]*PrefixState{}, sessions: map[netip.Addr]*SessionState{}}
	now := time.Now()
	for _, n := range cfg.Neighbors {
		s.sessions[n.Addr] = &SessionState{Addr: n.Addr, AS: n.AS, State: "idle", Since: now}
	}
	return s
}

// Config returns the configuration the speaker runs.
func (s *Speaker) Config() Config { return s.cfg }

// Start starts the BGP server and dials (or accepts) the neighbours.
func (s *Speaker) Start() error {
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	glog := slog.New(minLevel{s.log.Handler(), slog.LevelWarn}).With("subsystem", "gobgp")
	s.srv = server.NewBgpServer(server.LoggerOption(glog, lvl))
	go s.srv.Serve()
	port := int32(s.cfg.ListenPort)
	if port == 0 {
		port = -1
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: s.cfg.LocalAS, RouterId: s.cfg.RouterID.String(), ListenPort: port,
	}}); err != nil {
		cancel()
		s.srv.Stop()
		s.srv = nil
		return fmt.Errorf("bgp: start: %w", err)
	}
	if err := s.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: s.onPeer,
	}, server.WatchPeer()); err != nil {
		s.log.Warn("bgp: session states not followed", "error", err)
	}
	for _, n := range s.cfg.Neighbors {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer(n)}); err != nil {
			s.Stop()
			return fmt.Errorf("bgp: neighbor %v: %w", n.Addr, err)
		}
	}
	s.log.Info("bgp: speaker started", "as", s.cfg.LocalAS, "router_id", s.cfg.RouterID, "neighbors", len(s.cfg.Neighbors), "listen_port", s.cfg.ListenPort)
	return nil
}

func peer(n Neighbor) *api.Peer {
	p := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: n.Addr.String(), PeerAsn: n.AS, AuthPassword: n.Password},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
		},
		Timers: &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, IdleHoldTimeAfterReset: 1}},
	}
	if n.Hold > 0 {
		p.Timers.Config.HoldTime = uint64(n.Hold / time.Second)
		ka := n.Keepalive
		if ka == 0 {
			ka = n.Hold / 3
		}
		p.Timers.Config.KeepaliveInterval = uint64(max(ka/time.Second, 1))
	} else if n.Keepalive > 0 {
		p.Timers.Config.KeepaliveInterval = uint64(max(n.Keepalive/time.Second, 1))
	}
	if n.Multihop > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.Multihop)}
	}
	if n.LocalAddr.IsValid() || n.Port != 0 {
		p.Transport = &api.Transport{RemotePort: uint32(n.Port)}
		if n.LocalAddr.IsValid() {
			p.Transport.LocalAddress = n.LocalAddr.String()
		}
	}
	return p
}

func (s *Speaker) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.Conf.NeighborAddress
	if !addr.IsValid() {
		addr = ev.Peer.State.NeighborAddress
	}
	st := strings.ToLower(strings.TrimPrefix(ev.Peer.State.SessionState.String(), "BGP_FSM_"))
	s.mu.Lock()
	ss, ok := s.sessions[addr.Unmap()]
	if !ok {
		ss = &SessionState{Addr: addr.Unmap(), AS: ev.Peer.Conf.PeerASN}
		s.sessions[addr.Unmap()] = ss
	}
	changed := ss.State != st
	if changed {
		ss.State, ss.Since = st, time.Now()
		if st == "established" {
			ss.Ups++
		}
	}
	s.mu.Unlock()
	if changed {
		s.log.Info("bgp: session", "neighbor", addr, "state", st)
	}
}

// Apply announces and withdraws according to ds. A VIP no longer in ds is
// withdrawn and forgotten.
func (s *Speaker) Apply(ds []Decision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	seen := map[netip.Prefix]bool{}
	order := make([]netip.Prefix, 0, len(ds))
	for _, d := range ds {
		seen[d.Prefix] = true
		order = append(order, d.Prefix)
		st, ok := s.prefixes[d.Prefix]
		if !ok {
			st = &PrefixState{Prefix: d.Prefix, Reason: "not yet decided", Since: time.Now()}
			s.prefixes[d.Prefix] = st
		}
		if st.Announced == d.Announce {
			st.Reason = d.Reason
			continue
		}
		var err error
		if d.Announce {
			err = s.announce(d.Prefix)
		} else {
			err = s.withdraw(d.Prefix)
		}
		if err != nil {
			s.log.Error("bgp: update not sent", "prefix", d.Prefix, "announce", d.Announce, "error", err)
			st.Reason = d.Reason + " (update failed: " + err.Error() + ")"
			continue
		}
		st.Announced, st.Reason, st.Since = d.Announce, d.Reason, time.Now()
		st.Transitions++
		verb := "withdrawn"
		if d.Announce {
			verb = "announced"
		}
		s.log.Info("bgp: prefix "+verb, "prefix", d.Prefix, "reason", d.Reason, "drained", s.drained)
	}
	for p, st := range s.prefixes {
		if seen[p] {
			continue
		}
		if st.Announced {
			if err := s.withdraw(p); err != nil {
				s.log.Error("bgp: withdraw failed", "prefix", p, "error", err)
			} else {
				s.log.Info("bgp: prefix withdrawn", "prefix", p, "reason", "no longer announced by the configuration")
			}
		}
		delete(s.prefixes, p)
	}
	s.order = order
}

// SetDrain adds (or removes) the drain attributes on every announcement
// and re-announces what is announced.
func (s *Speaker) SetDrain(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drained == on {
		return nil
	}
	s.drained = on
	var errs []string
	for _, p := range s.order {
		if st := s.prefixes[p]; st != nil && st.Announced {
			if err := s.announce(p); err != nil {
				errs = append(errs, fmt.Sprintf("%v: %v", p, err))
			}
		}
	}
	s.log.Info("bgp: drain", "on", on)
	if len(errs) > 0 {
		return fmt.Errorf("bgp: re-announce: %s", strings.Join(errs, "; "))
	}
	return nil
}

// PathAttrs returns the path attributes of an announcement of p.
func (c *Config) PathAttrs(p netip.Prefix, drained bool) ([]bgppkt.PathAttributeInterface, bgppkt.NLRI, bgppkt.Family, error) {
	nlri, err := bgppkt.NewIPAddrPrefix(p)
	if err != nil {
		return nil, nil, 0, err
	}
	attrs := []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(0)}
	fam := bgppkt.RF_IPv4_UC
	nh := c.NextHop
	if p.Addr().Is4() {
		if !nh.IsValid() || !nh.Is4() {
			nh = netip.IPv4Unspecified()
		}
		a, err := bgppkt.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, nil, 0, err
		}
		attrs = append(attrs, a)
	} else {
		fam = bgppkt.RF_IPv6_UC
		if !nh.IsValid() || !nh.Is6() {
			nh = netip.IPv6Unspecified()
		}
		a, err := bgppkt.NewPathAttributeMpReachNLRI(fam, []bgppkt.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, nil, 0, err
		}
		attrs = append(attrs, a)
	}
	comms := append([]uint32(nil), c.Attrs.Communities...)
	med, prepend := c.Attrs.MED, c.Attrs.Prepend
	if drained {
		comms = append(comms, c.Drain.Communities...)
		if c.Drain.MED != nil {
			med = c.Drain.MED
		}
		prepend += c.Drain.Prepend
	}
	if len(comms) > 0 {
		attrs = append(attrs, bgppkt.NewPathAttributeCommunities(comms))
	}
	if med != nil {
		attrs = append(attrs, bgppkt.NewPathAttributeMultiExitDisc(*med))
	}
	if prepend > 0 {
		as := make([]uint32, prepend)
		for i := range as {
			as[i] = c.LocalAS
		}
		attrs = append(attrs, bgppkt.NewPathAttributeAsPath([]bgppkt.AsPathParamInterface{
			bgppkt.NewAs4PathParam(bgppkt.BGP_ASPATH_ATTR_TYPE_SEQ, as)}))
	}
	return attrs, nlri, fam, nil
}

func (s *Speaker) path(p netip.Prefix) (*apiutil.Path, error) {
	attrs, nlri, fam, err := s.cfg.PathAttrs(p, s.drained)
	if err != nil {
		return nil, err
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs}, nil
}

func (s *Speaker) announce(p netip.Prefix) error {
	if s.srv == nil {
		return nil
	}
	path, err := s.path(p)
	if err != nil {
		return err
	}
	_, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
	return err
}

func (s *Speaker) withdraw(p netip.Prefix) error {
	if s.srv == nil {
		return nil
	}
	path, err := s.path(p)
	if err != nil {
		return err
	}
	return s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
}

// WithdrawAll withdraws every announced prefix with reason; the speaker
// then announces nothing more (gvsd is stopping). It returns how many
// prefixes were withdrawn.
func (s *Speaker) WithdrawAll(reason string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.order {
		st := s.prefixes[p]
		if st == nil || !st.Announced {
			continue
		}
		if err := s.withdraw(p); err != nil {
			s.log.Error("bgp: withdraw failed", "prefix", p, "error", err)
			continue
		}
		st.Announced, st.Reason, st.Since = false, reason, time.Now()
		st.Transitions++
		n++
		s.log.Info("bgp: prefix withdrawn", "prefix", p, "reason", reason)
	}
	s.stopped = true
	return n
}

// Stop withdraws everything and closes the sessions.
func (s *Speaker) Stop() {
	s.WithdrawAll("gvsd is stopping")
	if s.srv == nil {
		return
	}
	s.srv.Stop() // closes the sessions (cease notification)
	if s.cancel != nil {
		s.cancel()
	}
	s.srv = nil
}

// minLevel keeps gobgp's own log to warnings and errors (gvsd logs the
// session and prefix transitions itself).
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(as), m.min}
}

func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{m.Handler.WithGroup(g), m.min} }

// Status returns the speaker's state.
func (s *Speaker) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{LocalAS: s.cfg.LocalAS, RouterID: s.cfg.RouterID, Drained: s.drained}
	for _, n := range s.cfg.Neighbors {
		if ss := s.sessions[n.Addr]; ss != nil {
			st.Sessions = append(st.Sessions, *ss)
		}
	}
	for _, p := range s.order {
		if ps := s.prefixes[p]; ps != nil {
			st.Prefixes = append(st.Prefixes, *ps)
		}
	}
	return st
}
