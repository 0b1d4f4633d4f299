package vrrp

import (
	"crypto/subtle"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// Packet is a VRRP message as received: the interface it came in on, the
// IP header's addresses and TTL / hop limit, and the VRRP message.
type Packet struct {
	Interface string
	Src, Dst  netip.Addr
	TTL       int
	Data      []byte
}

// TrackState is the result of an instance's tracking: the failing
// trackers, and whether the failure forces Fault whatever the weight (the
// instance's own interface is down).
type TrackState struct {
	Failing []string
	Down    bool
}

// Router is the set of VRRP instances of a node. It checks every received
// packet (RFC 5798 §7.1), counts the discarded ones by reason on their
// instance, hands the rest to their instance, moves sync groups together
// and applies tracking. Like Instance it is driven by one goroutine and
// takes the time as a parameter.
type Router struct {
	log     *slog.Logger
	insts   []*Instance
	byName  map[string]*Instance
	syncing bool
}

// NewRouter returns an empty Router. log may be nil.
func NewRouter(log *slog.Logger) *Router {
	if log == nil {
		log = slog.Default()
	}
	return &Router{log: log, byName: map[string]*Instance{}}
}

// Add adds an instance (not started).
func (r *Router) Add(in *Instance) {
	in.onChange = r.onChange
	r.insts = append(r.insts, in)
	r.byName[in.cfg.Name] = in
}

// Remove removes the named instance (shut down first by the caller).
func (r *Router) Remove(name string) {
	in := r.byName[name]
	if in == nil {
		return
	}
	delete(r.byName, name)
	r.insts = slices.DeleteFunc(r.insts, func(x *Instance) bool { return x == in })
}

// Instance returns the named instance, or nil.
func (r *Router) Instance(name string) *Instance { return r.byName[name] }

// Instances returns the instances in the order they were added.
func (r *Router) Instances() []*Instance { return r.insts }

// Start starts every instance that is not running.
func (r *Router) Start(now time.Time) {
	for _, in := range r.insts {
		if !in.started {
			in.Start(now)
		}
	}
}

// Shutdown shuts every instance down (masters send priority 0).
func (r *Router) Shutdown(now time.Time, cause string) {
	r.syncing = true // the whole group goes at once
	defer func() { r.syncing = false }()
	for _, in := range r.insts {
		in.Shutdown(now, cause)
	}
}

// Tick fires every instance's due timers.
func (r *Router) Tick(now time.Time) {
	for _, in := range r.insts {
		in.Tick(now)
	}
}

// Next returns the earliest timer of all instances (zero: none).
func (r *Router) Next() time.Time {
	var next time.Time
	for _, in := range r.insts {
		if t := in.Next(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// find returns the instance for VRID on the interface and family.
func (r *Router) find(ifname string, is6 bool, vrid uint8) *Instance {
	for _, in := range r.insts {
		if in.cfg.VRID == vrid && in.cfg.Interface == ifname && in.cfg.Is6() == is6 {
			return in
		}
	}
	return nil
}

// Receive checks p as RFC 5798 §7.1 (and RFC 3768 §7.1 for VRRPv2) says
// and hands it to its instance, or counts why it was discarded.
func (r *Router) Receive(now time.Time, p *Packet) {
	is6 := p.Src.Is6() && !p.Src.Is4In6()
	var vrid uint8
	if len(p.Data) >= 2 {
		vrid = p.Data[1]
	}
	in := r.find(p.Interface, is6, vrid)
	if in == nil {
		// §7.1: "MUST verify that the VRID is configured on the receiving
		// interface". Counted on every instance of that interface and
		// family (another router's VRID on a shared LAN is normal).
		for _, o := range r.insts {
			if o.cfg.Interface == p.Interface && o.cfg.Is6() == is6 {
				o.discard(DiscardVRID)
			}
		}
		return
	}
	if p.Src == in.primary {
		return // our own advertisement, looped back
	}
	// §7.1: TTL / hop limit 255, else discard.
	if p.TTL != TTL {
		in.discard(DiscardTTL)
		return
	}
	// Type, version, length, checksum.
	adv, reason := Parse(p.Data, p.Src, p.Dst)
	if reason != "" {
		in.discard(reason)
		return
	}
	if int(adv.Version) != in.cfg.Version {
		in.discard(DiscardVersion)
		return
	}
	// §7.1: the address owner discards advertisements for its VRID.
	if in.owner() {
		in.discard(DiscardOwner)
		return
	}
	if in.cfg.Unicast() && !slices.Contains(in.cfg.UnicastPeers, p.Src) {
		in.discard(DiscardUnicast)
		return
	}
	same := sameAddrs(adv.Addrs, in.cfg.Addrs())
	if in.cfg.Version == 2 {
		// RFC 3768 §7.1: authentication, then the interval, then the
		// addresses (a mismatch is only accepted from the owner).
		want := uint8(AuthNone)
		if in.cfg.AuthPass != "" {
			want = AuthSimple
		}
		if adv.AuthType != want {
			in.discard(DiscardAuthType)
			return
		}
		if want == AuthSimple {
			d := authData(in.cfg.AuthPass)
			if subtle.ConstantTimeCompare(d[:], adv.AuthData[:]) != 1 {
				in.discard(DiscardAuth)
				return
			}
		}
		if adv.Interval != in.cfg.AdvertInt {
			in.discard(DiscardInterval)
			return
		}
		if !same && adv.Priority != PriorityOwner {
			in.discard(DiscardAddrList)
			return
		}
	} else if !same {
		// RFC 5798 §7.1: MAY verify the addresses; a mismatch SHOULD be
		// logged, the packet is still processed.
		if in.counters[CountAddrMismatch] == 0 {
			in.log.Warn("vrrp: advertisement lists other virtual addresses (misconfiguration?)",
				"from", p.Src, "theirs", adv.Addrs, "ours", in.cfg.Addrs())
		}
		in.counters[CountAddrMismatch]++
	}
	in.Receive(now, &adv, p.Src)
}

// Track applies tracking results (by instance name; missing: nothing
// fails). An instance goes to Fault when its interface is down or, with
// TrackWeight 0, when any tracker fails; otherwise each failure lowers its
// priority by -TrackWeight. A sync group is in Fault while any member is.
func (r *Router) Track(now time.Time, states map[string]TrackState) {
	own := map[*Instance]bool{}
	groupFault := map[string]string{}
	for _, in := range r.insts {
		st := states[in.cfg.Name]
		f := st.Down || (len(st.Failing) > 0 && in.cfg.TrackWeight == 0)
		own[in] = f
		if f && in.cfg.SyncGroup != "" {
			if _, ok := groupFault[in.cfg.SyncGroup]; !ok {
				groupFault[in.cfg.SyncGroup] = in.cfg.Name
			}
		}
	}
	r.syncing = true // tracking moves a whole group itself
	defer func() { r.syncing = false }()
	for _, in := range r.insts {
		st := states[in.cfg.Name]
		failing := slices.Clone(st.Failing)
		fault := own[in]
		if g := in.cfg.SyncGroup; g != "" && groupFault[g] != "" && !fault {
			fault = true
			failing = append(failing, "sync group "+g+": "+groupFault[g]+" in fault")
		}
		lower := 0
		if !fault {
			lower = len(st.Failing) * -in.cfg.TrackWeight
		}
		in.SetFaults(now, failing, fault, lower)
	}
}

// onChange moves the other members of in's sync group along: a member
// that becomes master takes the group to Master, one that leaves Master
// for Backup takes the group to Backup. Fault is handled by Track.
func (r *Router) onChange(now time.Time, in *Instance, from State, cause string) {
	g := in.cfg.SyncGroup
	if r.syncing || g == "" {
		return
	}
	r.syncing = true
	defer func() { r.syncing = false }()
	to := in.state
	for _, m := range r.insts {
		if m == in || m.cfg.SyncGroup != g {
			continue
		}
		switch {
		case to == Master:
			m.force(now, Master, "sync group "+g+": "+in.cfg.Name+" became master ("+cause+")")
		case to == Backup && from == Master:
			m.force(now, Backup, "sync group "+g+": "+in.cfg.Name+" became backup ("+cause+")")
		}
	}
}

// Status returns the state of every instance.
func (r *Router) Status() []Status {
	out := make([]Status, 0, len(r.insts))
	for _, in := range r.insts {
		out = append(out, in.Status())
	}
	return out
}
