package vrrp

import (
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Host is what an Instance does to the world. The Manager implements it
// with sockets and netlink; tests implement it with a simulated LAN.
// Methods are called from the goroutine that drives the instance; errors
// are counted and logged by the caller and never change the protocol state
// (a router that cannot add an address still advertises, as keepalived
// does, so that the pair keeps one master).
type Host interface {
	// Send transmits an advertisement of the instance.
	Send(in *Instance, adv *Advert) error
	// TakeOver makes the node own the instance's addresses: the
	// dataplane's steering first, then the addresses (RFC 5798 §6.4.1
	// "transition to Master").
	TakeOver(in *Instance) error
	// Release undoes TakeOver: the addresses first, then the rest.
	Release(in *Instance) error
	// Announce sends one gratuitous ARP (IPv4) or unsolicited neighbour
	// advertisement (IPv6) per virtual address and returns how many left.
	Announce(in *Instance) (int, error)
	// Renew is called every RenewInterval while master (the addresses'
	// lifetime is extended).
	Renew(in *Instance) error
}

// RenewInterval is how often a master renews its addresses' lifetime.
const RenewInterval = time.Second

// Instance is one virtual router: the state machine of RFC 5798 §6 with
// the parameters of §6.1 and the timers of §6.2. It is not safe for
// concurrent use: one goroutine (the Router's owner) drives it through
// Start, Receive, Tick, SetFaults and Shutdown, passing the current time.
type Instance struct {
	cfg  Config
	host Host
	log  *slog.Logger
	// onChange is called after every transition (the Router's sync
	// groups).
	onChange func(now time.Time, in *Instance, from State, cause string)

	// primary is the primary IPvX address (RFC 5798 §6.1): the source of
	// our advertisements and our side of the equal-priority tie-break.
	primary netip.Addr

	state   State
	since   time.Time
	reason  string
	started bool

	base, priority uint8 // configured, effective (after tracking)
	faults         []string
	fault          bool // faults force the Fault state (TrackWeight 0, or the interface)

	masterAdverInt  time.Duration // §6.1 Master_Adver_Interval
	adverTimer      time.Time     // §6.2 Adver_Timer; zero: stopped
	masterDownTimer time.Time     // §6.2 Master_Down_Timer; zero: stopped
	master          netip.Addr
	masterPrio      uint8
	preemptAt       time.Time // preempt_delay: lower-priority masters accepted until then

	garpAt    time.Time // next announcement round; zero: none
	garpRound int       // rounds left (the immediate one and the delayed one)
	renewAt   time.Time

	transitions uint64
	counters    map[string]uint64
	discards    map[string]uint64
}

// NewInstance returns an instance in Initialize. primary is its primary
// address (the source of its advertisements). log may be nil.
func NewInstance(cfg Config, primary netip.Addr, host Host, log *slog.Logger) *Instance {
	if log == nil {
		log = slog.Default()
	}
	in := &Instance{
		cfg: cfg, host: host, primary: primary,
		log:      log.With("vrrp", cfg.Name),
		base:     cfg.Priority,
		priority: cfg.Priority,
		counters: map[string]uint64{},
		discards: map[string]uint64{},
		reason:   "not started",
	}
	in.masterAdverInt = cfg.AdvertInt
	return in
}

// Config returns the instance's configuration.
func (in *Instance) Config() *Config { return &in.cfg }

// State returns the current state.
func (in *Instance) State() State { return in.state }

// Primary returns the instance's primary address.
func (in *Instance) Primary() netip.Addr { return in.primary }

// Priority returns the advertised (effective) priority.
func (in *Instance) Priority() uint8 { return in.priority }

// owner reports whether the instance owns the addresses (priority 255).
func (in *Instance) owner() bool { return in.priority == PriorityOwner }

// skewTime is RFC 5798 §6.1 Skew_Time: ((256 - Priority) *
// Master_Adver_Interval) / 256; for VRRPv2 (RFC 3768 §6.1) (256 -
// Priority) / 256 seconds.
func (in *Instance) skewTime() time.Duration {
	if in.cfg.Version == 2 {
		return time.Duration(256-int(in.priority)) * time.Second / 256
	}
	return time.Duration(256-int(in.priority)) * in.masterAdverInt / 256
}

// masterDownInterval is RFC 5798 §6.1 Master_Down_Interval: (3 *
// Master_Adver_Interval) + Skew_Time.
func (in *Instance) masterDownInterval() time.Duration {
	return 3*in.masterAdverInt + in.skewTime()
}

// Start is the Startup event (RFC 5798 §6.4.1). An instance with faults
// goes to Fault instead.
func (in *Instance) Start(now time.Time) {
	in.started = true
	if in.fault {
		in.enterFault(now, "started with "+in.faultText())
		return
	}
	in.initialize(now, "startup")
}

// initialize runs the Initialize state's startup branch (RFC 5798 §6.4.1).
func (in *Instance) initialize(now time.Time, cause string) {
	in.transition(now, Initialize, cause)
	if in.owner() {
		// §6.4.1: the address owner sends an ADVERTISEMENT, broadcasts
		// gratuitous ARP / unsolicited NA and becomes Master at once.
		in.becomeMaster(now, cause+"; priority 255: address owner")
		return
	}
	// §6.4.1: Master_Adver_Interval := Advertisement_Interval;
	// Master_Down_Timer := Master_Down_Interval; transition to Backup.
	in.masterAdverInt = in.cfg.AdvertInt
	in.enterBackup(now, cause)
}

// enterBackup sets the Backup state's timers and transitions.
func (in *Instance) enterBackup(now time.Time, cause string) {
	in.adverTimer = time.Time{}
	in.masterDownTimer = now.Add(in.masterDownInterval())
	in.preemptAt = time.Time{}
	in.garpAt, in.garpRound, in.renewAt = time.Time{}, 0, time.Time{}
	from := in.state
	in.transition(now, Backup, cause)
	if from == Master {
		// §6.4.2: a backup MUST NOT respond to ARP for the addresses nor
		// accept packets for them: give them up.
		in.hostErr("release", in.host.Release(in))
	}
}

// becomeMaster is the "transition to Master" action list of RFC 5798
// §6.4.1 and §6.4.2: send an ADVERTISEMENT, announce the addresses, start
// the Adver_Timer.
func (in *Instance) becomeMaster(now time.Time, cause string) {
	in.masterDownTimer = time.Time{}
	in.transition(now, Master, cause)
	in.counters[CountBecameMaster]++
	in.master, in.masterPrio = in.primary, in.priority
	// Own the addresses before advertising: the backup we displace stops
	// answering for them as soon as it hears us.
	in.hostErr("take over", in.host.TakeOver(in))
	in.sendAdvert(in.priority)
	in.adverTimer = now.Add(in.cfg.AdvertInt)
	in.announce()
	in.garpRound = 0
	in.garpAt = time.Time{}
	if in.cfg.GARPDelay > 0 {
		in.garpRound = 1
		in.garpAt = now.Add(in.cfg.GARPDelay)
	} else if in.cfg.GARPRefresh > 0 {
		in.garpAt = now.Add(in.cfg.GARPRefresh)
	}
	in.renewAt = now.Add(RenewInterval)
}

// Shutdown is the Shutdown event (RFC 5798 §6.4.2, §6.4.3): a master stops
// its Adver_Timer, sends an ADVERTISEMENT with Priority 0 so a backup takes
// over after its Skew_Time, and releases the addresses; every state ends in
// Initialize.
func (in *Instance) Shutdown(now time.Time, cause string) {
	in.leave(now, cause)
	in.transition(now, Initialize, cause)
	in.started = false
}

// leave stops the current state: Master → priority 0 and release.
func (in *Instance) leave(now time.Time, cause string) {
	if in.state == Master {
		in.adverTimer = time.Time{}
		in.sendAdvert(PriorityStop)
		in.hostErr("release", in.host.Release(in))
	}
	in.adverTimer, in.masterDownTimer = time.Time{}, time.Time{}
	in.garpAt, in.garpRound, in.renewAt = time.Time{}, 0, time.Time{}
	in.master, in.masterPrio = netip.Addr{}, 0
}

// Receive handles an ADVERTISEMENT from src that passed the checks of RFC
// 5798 §7.1 (Router.Receive makes them).
func (in *Instance) Receive(now time.Time, adv *Advert, src netip.Addr) {
	in.counters[CountAdvertsRcvd]++
	if adv.Priority == PriorityStop {
		in.counters[CountPrio0Rcvd]++
	}
	switch in.state {
	case Backup:
		in.receiveBackup(now, adv, src)
	case Master:
		in.receiveMaster(now, adv, src)
	}
	// Initialize and Fault ignore advertisements.
}

// receiveBackup is RFC 5798 §6.4.2 "If an ADVERTISEMENT is received".
func (in *Instance) receiveBackup(now time.Time, adv *Advert, src netip.Addr) {
	if adv.Priority == PriorityStop {
		// The master is stopping: take over after Skew_Time only.
		in.masterDownTimer = now.Add(in.skewTime())
		in.master, in.masterPrio = src, 0
		return
	}
	lower := adv.Priority < in.priority
	if lower && in.cfg.Preempt && in.cfg.PreemptDelay > 0 {
		// keepalived's preempt_delay: a lower-priority master is still
		// followed until the delay, counted from the first one seen in
		// this Backup period, has passed.
		if in.preemptAt.IsZero() {
			in.preemptAt = now.Add(in.cfg.PreemptDelay)
			in.log.Info("vrrp: lower-priority master seen; preempting after the delay",
				"master", src, "master_priority", adv.Priority, "priority", in.priority, "preempt_delay", in.cfg.PreemptDelay)
		}
		if now.Before(in.preemptAt) {
			lower = false
		}
	}
	if !in.cfg.Preempt || !lower {
		// Not preempting: follow this master. Master_Adver_Interval :=
		// its Max Adver Interval; recompute Skew_Time and
		// Master_Down_Interval; reset Master_Down_Timer.
		in.masterAdverInt = adv.Interval
		if in.masterAdverInt <= 0 {
			in.masterAdverInt = in.cfg.AdvertInt
		}
		in.masterDownTimer = now.Add(in.masterDownInterval())
		in.master, in.masterPrio = src, adv.Priority
		return
	}
	// Preempt_Mode and a lower priority: discard; the Master_Down_Timer
	// runs out and we take over.
	in.master, in.masterPrio = src, adv.Priority
	in.counters[CountLowerPriority]++
}

// receiveMaster is RFC 5798 §6.4.3 "If an ADVERTISEMENT is received".
func (in *Instance) receiveMaster(now time.Time, adv *Advert, src netip.Addr) {
	if adv.Priority == PriorityStop {
		// Another master stopping: make sure the backups hear us.
		in.sendAdvert(in.priority)
		in.adverTimer = now.Add(in.cfg.AdvertInt)
		return
	}
	if adv.Priority > in.priority || (adv.Priority == in.priority && addrGreater(src, in.primary)) {
		// A better master: the higher priority, or the same priority and
		// the greater primary address (the tie-break).
		in.adverTimer = time.Time{}
		in.masterAdverInt = adv.Interval
		if in.masterAdverInt <= 0 {
			in.masterAdverInt = in.cfg.AdvertInt
		}
		in.master, in.masterPrio = src, adv.Priority
		cause := "higher priority master " + src.String()
		if adv.Priority == in.priority {
			cause = "equal priority, greater primary address " + src.String()
		}
		in.enterBackup(now, cause)
		in.master, in.masterPrio = src, adv.Priority
		return
	}
	in.counters[CountLowerPriority]++
}

// addrGreater compares primary addresses as unsigned integers in network
// byte order (RFC 5798 §6.4.3).
func addrGreater(a, b netip.Addr) bool { return a.Unmap().Compare(b.Unmap()) > 0 }

// Tick fires the timers that are due at now.
func (in *Instance) Tick(now time.Time) {
	switch in.state {
	case Backup:
		if !in.masterDownTimer.IsZero() && !now.Before(in.masterDownTimer) {
			// §6.4.2: Master_Down_Timer fired.
			cause := "no advertisement for the master down interval"
			if in.masterPrio == 0 && in.master.IsValid() {
				cause = "master " + in.master.String() + " stopped (priority 0)"
			} else if in.master.IsValid() {
				cause = "master " + in.master.String() + " silent for " + in.masterDownInterval().String()
				if in.masterPrio < in.priority && in.cfg.Preempt {
					cause = "preempting lower-priority master " + in.master.String()
				}
			}
			in.becomeMaster(now, cause)
		}
	case Master:
		if !in.adverTimer.IsZero() && !now.Before(in.adverTimer) {
			// §6.4.3: Adver_Timer fired.
			in.sendAdvert(in.priority)
			in.adverTimer = now.Add(in.cfg.AdvertInt)
		}
		if !in.garpAt.IsZero() && !now.Before(in.garpAt) {
			in.announce()
			switch {
			case in.garpRound > 0:
				in.garpRound = 0
				in.garpAt = time.Time{}
				if in.cfg.GARPRefresh > 0 {
					in.garpAt = now.Add(in.cfg.GARPRefresh)
				}
			case in.cfg.GARPRefresh > 0:
				in.garpAt = now.Add(in.cfg.GARPRefresh)
			default:
				in.garpAt = time.Time{}
			}
		}
		if !in.renewAt.IsZero() && !now.Before(in.renewAt) {
			in.hostErr("renew addresses", in.host.Renew(in))
			in.renewAt = now.Add(RenewInterval)
		}
	}
}

// Next returns when Tick must next be called (zero: no timer runs).
func (in *Instance) Next() time.Time {
	var next time.Time
	for _, t := range []time.Time{in.adverTimer, in.masterDownTimer, in.garpAt, in.renewAt} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// SetFaults updates the failing trackers. With fault set the instance goes
// to Fault (a master first sends priority 0, so the backup takes over
// after its Skew_Time); when the faults clear it starts again from
// Initialize. Without fault, weight lowers the advertised priority by
// that amount (never below 1; the owner's 255 is lowered too).
func (in *Instance) SetFaults(now time.Time, faults []string, fault bool, weight int) {
	prio := int(in.base)
	if !fault && weight > 0 {
		prio -= weight
		if prio < 1 {
			prio = 1
		}
		if prio > 254 {
			prio = 254
		}
	}
	changed := !slices.Equal(faults, in.faults) || fault != in.fault
	in.faults = slices.Clone(faults)
	wasFault := in.fault
	in.fault = fault
	if uint8(prio) != in.priority {
		in.log.Info("vrrp: priority changed by tracking", "from", in.priority, "to", prio, "failing", in.faultText())
		in.priority = uint8(prio)
	}
	if !in.started || !changed {
		return
	}
	switch {
	case fault && in.state != Fault:
		in.enterFault(now, in.faultText())
	case !fault && wasFault && in.state == Fault:
		in.initialize(now, "tracking recovered")
	}
}

// enterFault leaves the current state for Fault.
func (in *Instance) enterFault(now time.Time, cause string) {
	in.leave(now, cause)
	in.transition(now, Fault, cause)
}

func (in *Instance) faultText() string {
	if len(in.faults) == 0 {
		return "no failing tracker"
	}
	return "failing: " + strings.Join(in.faults, ", ")
}

// reconfigure takes a new configuration that identifies the instance on
// the wire as the old one did (the Manager restarts it otherwise). The
// effective priority follows at the next SetFaults.
func (in *Instance) reconfigure(cfg Config) {
	if cfg.Priority != in.base {
		in.log.Info("vrrp: priority reconfigured", "from", in.base, "to", cfg.Priority)
	}
	in.cfg = cfg
	in.base = cfg.Priority
	if !in.fault && len(in.faults) == 0 {
		in.priority = cfg.Priority
	}
}

// force moves the instance to state on behalf of its sync group.
func (in *Instance) force(now time.Time, to State, cause string) {
	if in.state == to || !in.started {
		return
	}
	switch to {
	case Master:
		if in.state == Backup {
			in.becomeMaster(now, cause)
		}
	case Backup:
		if in.state == Master {
			in.adverTimer = time.Time{}
			in.masterAdverInt = in.cfg.AdvertInt
			in.enterBackup(now, cause)
		}
	case Fault:
		in.enterFault(now, cause)
	case Initialize:
		in.initialize(now, cause)
	}
}

// transition records a state change and logs it with its cause.
func (in *Instance) transition(now time.Time, to State, cause string) {
	from := in.state
	in.state, in.since, in.reason = to, now, cause
	if from == to {
		return
	}
	in.transitions++
	in.log.Info("vrrp transition", "from", from.String(), "to", to.String(), "cause", cause,
		"priority", in.priority, "vrid", in.cfg.VRID, "interface", in.cfg.Interface)
	if in.onChange != nil {
		in.onChange(now, in, from, cause)
	}
}

// sendAdvert sends an ADVERTISEMENT with the given priority.
func (in *Instance) sendAdvert(prio uint8) {
	adv := Advert{Version: uint8(in.cfg.Version), VRID: in.cfg.VRID, Priority: prio, Interval: in.cfg.AdvertInt, Addrs: in.cfg.Addrs()}
	if in.cfg.Version == 2 && in.cfg.AuthPass != "" {
		adv.AuthType, adv.AuthData = AuthSimple, authData(in.cfg.AuthPass)
	}
	if err := in.host.Send(in, &adv); err != nil {
		in.counters[CountSendErrors]++
		in.log.Warn("vrrp: send advertisement", "error", err)
		return
	}
	in.counters[CountAdvertsSent]++
	if prio == PriorityStop {
		in.counters[CountPrio0Sent]++
	}
}

// announce sends GARPCount gratuitous ARPs / unsolicited NAs per address.
func (in *Instance) announce() {
	for i := 0; i < in.cfg.GARPCount; i++ {
		n, err := in.host.Announce(in)
		in.counters[CountAnnounceSent] += uint64(n)
		if err != nil {
			in.hostErr("announce", err)
			return
		}
	}
}

func (in *Instance) hostErr(what string, err error) {
	if err == nil {
		return
	}
	in.counters[CountHostErrors]++
	in.log.Error("vrrp: "+what, "error", err)
}

// discard counts a packet dropped for reason.
func (in *Instance) discard(reason string) { in.discards[reason]++ }

// Status returns the instance's state and counters.
func (in *Instance) Status() Status {
	s := Status{
		Name: in.cfg.Name, Interface: in.cfg.Interface, VRID: in.cfg.VRID, Version: in.cfg.Version,
		State: in.state, Since: in.since, Reason: in.reason,
		Priority: in.priority, BasePriority: in.base,
		Master: in.master, MasterPriority: in.masterPrio,
		AdvertInt: in.cfg.AdvertInt, MasterAdvertInt: in.masterAdverInt, MasterDownInterval: in.masterDownInterval(),
		VIPs: slices.Clone(in.cfg.VIPs), SyncGroup: in.cfg.SyncGroup, Faults: slices.Clone(in.faults),
		Transitions: in.transitions, Counters: maps.Clone(in.counters), Discards: maps.Clone(in.discards),
	}
	return s
}
