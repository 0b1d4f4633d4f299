package metrics

import (
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gvs/ctl/api"
	"gvs/pipeline"
)

// The metric families. Labels:
//
//	proto, vip, port  a service: tcp|udp|any, its VIP and its port
//	real              a real as addr:port ([addr]:port for IPv6)
//	direction         in|out for services and reals (client→real, real→client),
//	                  rx|tx for workers and driver ports
//	worker            the worker's index
//	reason            why a worker dropped a packet (pipeline drop reasons, plus
//	                  handover_ring_full and tx_ring_full)
//	event             a worker event counter (sessions_new, session_hits, ...)
//	port, driver      a driver port's name and its driver kind (in gvs_port_*)
//	state             a real's state (up|drain|down|removed) or a VRRP state
//	instance          a VRRP instance's name
//
// Series are exposed whether or not they are zero, so rate() sees the first
// increment: every drop reason of every worker, every state of every real
// and of every VRRP instance.
var (
	descs []*prometheus.Desc // all of them, for Describe

	descBuildInfo = newDesc("gvs_build_info",
		"Always 1; the labels name the running gvs version and the Go version it was built with.",
		"version", "go")
	descInterval = newDesc("gvs_stats_interval_seconds",
		"Length of the daemon's last stats interval, which the *_per_second gauges are measured over.")

	descServiceInfo = newDesc("gvs_service_info",
		"Always 1 for a configured service; the labels name its scheduler and forwarding method.",
		"proto", "vip", "port", "scheduler", "method")
	descServiceConns = newDesc("gvs_service_connections_total",
		"Connections (sessions) scheduled to the service's reals since the counters were last zeroed.",
		"proto", "vip", "port")
	descServicePkts = newDesc("gvs_service_packets_total",
		"Packets forwarded for the service, by direction (in: client to real, out: real to client).",
		"proto", "vip", "port", "direction")
	descServiceBytes = newDesc("gvs_service_bytes_total",
		"Bytes forwarded for the service, by direction (in: client to real, out: real to client).",
		"proto", "vip", "port", "direction")
	descServiceCPS = newDesc("gvs_service_new_sessions_per_second",
		"New sessions per second to the service over the daemon's last stats interval.",
		"proto", "vip", "port")
	descServiceActive = newDesc("gvs_service_active_sessions",
		"Active sessions (e.g. TCP established) of the service's reals now.",
		"proto", "vip", "port")
	descServiceInactive = newDesc("gvs_service_inactive_sessions",
		"Inactive sessions (e.g. TCP closing, UDP) of the service's reals now.",
		"proto", "vip", "port")

	descRealConns = newDesc("gvs_real_connections_total",
		"Connections (sessions) scheduled to the real since the counters were last zeroed.",
		"proto", "vip", "port", "real")
	descRealPkts = newDesc("gvs_real_packets_total",
		"Packets forwarded to or from the real, by direction (in: client to real, out: real to client).",
		"proto", "vip", "port", "real", "direction")
	descRealBytes = newDesc("gvs_real_bytes_total",
		"Bytes forwarded to or from the real, by direction (in: client to real, out: real to client).",
		"proto", "vip", "port", "real", "direction")
	descRealCPS = newDesc("gvs_real_new_sessions_per_second",
		"New sessions per second to the real over the daemon's last stats interval.",
		"proto", "vip", "port", "real")
	descRealActive = newDesc("gvs_real_active_sessions",
		"Active sessions (e.g. TCP established) of the real now.",
		"proto", "vip", "port", "real")
	descRealInactive = newDesc("gvs_real_inactive_sessions",
		"Inactive sessions (e.g. TCP closing, UDP) of the real now.",
		"proto", "vip", "port", "real")
	descRealWeight = newDesc("gvs_real_weight",
		"Configured scheduling weight of the real.",
		"proto", "vip", "port", "real")
	descRealUp = newDesc("gvs_real_up",
		"1 if the real is up (takes new sessions), 0 if it is drained, down or removed.",
		"proto", "vip", "port", "real")
	descRealState = newDesc("gvs_real_state",
		"1 for the real's current state, 0 for the others (up, drain, down, removed: draining after removal).",
		"proto", "vip", "port", "real", "state")

	descWorkerPkts = newDesc("gvs_worker_packets_total",
		"Packets the worker received (rx) from or sent (tx) to its queues.",
		"worker", "direction")
	descWorkerBytes = newDesc("gvs_worker_bytes_total",
		"Bytes the worker received (rx) from or sent (tx) to its queues.",
		"worker", "direction")
	descWorkerDrops = newDesc("gvs_worker_drops_total",
		"Packets the worker dropped, by reason.",
		"worker", "reason")
	descWorkerEvents = newDesc("gvs_worker_events_total",
		"Other worker event counters, by event: sessions_new, session_hits, sessions_expired, slow_path, handover_in, handover_out, ...",
		"worker", "event")
	descWorkerSessions = newDesc("gvs_worker_sessions",
		"Entries in the worker's session table as last published.",
		"worker")
	descWorkerIdle = newDesc("gvs_worker_idle_ratio",
		"Share of the worker's poll loops that found no work (0: always busy, 1: always idle).",
		"worker")
	descWorkerHandover = newDesc("gvs_worker_handover_ring_depth",
		"Frames waiting in the worker's incoming hand-over rings now.",
		"worker")

	descPortPkts = newDesc("gvs_port_packets_total",
		"Packets the driver port received (rx) or transmitted (tx).",
		"port", "driver", "direction")
	descPortBytes = newDesc("gvs_port_bytes_total",
		"Bytes the driver port received (rx) or transmitted (tx).",
		"port", "driver", "direction")
	descPortDropped = newDesc("gvs_port_dropped_total",
		"Packets the driver port dropped on receive (rx) or transmit (tx).",
		"port", "driver", "direction")

	descHealthUp = newDesc("gvs_health_up",
		"1 if the real's health check passes, 0 if it fails.",
		"proto", "vip", "port", "real")
	descHealthLatency = newDesc("gvs_health_latency_seconds",
		"Duration of the real's last health check.",
		"proto", "vip", "port", "real")
	descHealthSince = newDesc("gvs_health_last_change_timestamp_seconds",
		"Unix time at which the real's health state last changed.",
		"proto", "vip", "port", "real")

	descVRRPState = newDesc("gvs_vrrp_state",
		"1 for the VRRP instance's current state, 0 for the others (init, backup, master, fault).",
		"instance", "state")
	descVRRPPriority = newDesc("gvs_vrrp_priority",
		"Priority the VRRP instance advertises.",
		"instance")

	descBGPSession = newDesc("gvs_bgp_session_up",
		"1 while the BGP session with the neighbor is established.",
		"neighbor", "as")
	descBGPSessionUps = newDesc("gvs_bgp_session_established_total",
		"Times the BGP session with the neighbor became established.",
		"neighbor", "as")
	descBGPAnnounced = newDesc("gvs_bgp_announced",
		"1 while the VIP's host route is announced, 0 while withdrawn.",
		"prefix")
	descBGPTransitions = newDesc("gvs_bgp_announcement_changes_total",
		"Announcements and withdrawals of the VIP's host route.",
		"prefix")
	descBGPDrained = newDesc("gvs_bgp_drained",
		"1 while the announcements carry the drain attributes (gvsctl bgp drain).")
)

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc(name, help, labels, nil)
	descs = append(descs, d)
	return d
}

// The states given a series each, so a change of state shows as one series
// going to 0 and another to 1. A state outside the list gets a series too.
var (
	realStates = []string{"up", "drain", "down", "removed"}
	vrrpStates = []string{"init", "backup", "master", "fault"}
)

// The worker counters (api.WorkerStats.Counters) exposed in their own
// families; the others are events.
const (
	ctrRxPackets     = "rx_packets"
	ctrRxBytes       = "rx_bytes"
	ctrTxPackets     = "tx_packets"
	ctrTxBytes       = "tx_bytes"
	ctrSessionsLive  = "sessions_live" // a gauge: WorkerStats.Sessions
	ctrHandoverDrops = "handover_drops"
	ctrTxRingDrops   = "tx_ring_drops"
)

// workerCounterDrops maps worker counters that count drops to their reason.
var workerCounterDrops = map[string]string{
	ctrHandoverDrops: "handover_ring_full",
	ctrTxRingDrops:   "tx_ring_full",
}

// Collector is a prometheus.Collector that reads one snapshot of its Source
// on every scrape and turns it into gvs's metric families. It keeps no state
// between scrapes and is safe for concurrent scrapes.
type Collector struct {
	src       Source
	version   string
	goVersion string
}

// NewCollector returns the collector of src. The version in gvs_build_info
// comes from src if it is a Versioner, else from the binary's build
// information.
func NewCollector(src Source) *Collector {
	c := &Collector{src: src, version: "unknown", goVersion: runtime.Version()}
	if v, ok := src.(Versioner); ok {
		vi := v.VersionInfo()
		if vi.Version != "" {
			c.version = vi.Version
		}
		if vi.Go != "" {
			c.goVersion = vi.Go
		}
	} else if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		c.version = bi.Main.Version
	}
	return c
}

// Describe sends the descriptors of every family the collector may expose.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

// Collect reads one snapshot of the source and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	e := emitter{ch}
	e.gauge(descBuildInfo, 1, c.version, c.goVersion)
	st := c.src.Stats()
	e.gauge(descInterval, st.IntervalSec)
	for i := range st.Services {
		e.service(&st.Services[i])
	}
	for i := range st.Workers {
		e.worker(&st.Workers[i])
	}
	for i := range st.Ports {
		e.port(&st.Ports[i])
	}
	for _, h := range c.src.Health() {
		e.health(&h)
	}
	for _, v := range c.src.VRRP() {
		e.vrrp(&v)
	}
	if b, ok := c.src.(BGPSource); ok {
		e.bgp(b.BGP())
	}
}

func (e emitter) bgp(s api.BGPStatus) {
	if !s.Enabled {
		return
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	e.gauge(descBGPDrained, b2f(s.Drained))
	for _, n := range s.Sessions {
		as := strconv.FormatUint(uint64(n.AS), 10)
		e.gauge(descBGPSession, b2f(n.State == "established"), n.Neighbor, as)
		e.counter(descBGPSessionUps, n.Ups, n.Neighbor, as)
	}
	for _, p := range s.Prefixes {
		e.gauge(descBGPAnnounced, b2f(p.Announced), p.Prefix)
		e.counter(descBGPTransitions, p.Transitions, p.Prefix)
	}
}

type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) counter(d *prometheus.Desc, v uint64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// oneHot sends 1 for the current state and 0 for the other known ones.
func (e emitter) oneHot(d *prometheus.Desc, known []string, cur string, labels ...string) {
	labels = labels[:len(labels):len(labels)] // appends below never share
	found := false
	for _, s := range known {
		v := 0.0
		if s == cur {
			v, found = 1, true
		}
		e.gauge(d, v, append(labels, s)...)
	}
	if !found && cur != "" {
		e.gauge(d, 1, append(labels, cur)...)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func serviceLabels(id api.ServiceID) []string {
	return []string{id.Proto, id.VIP, strconv.Itoa(id.Port)}
}

// realLabel writes a real as addr:port, the way netip does ([v6]:port), so
// the real label of gvs_real_* and gvs_health_* agree whatever each source
// wrote.
func realLabel(addr string, port int) string {
	if a, err := netip.ParseAddr(addr); err == nil && port >= 0 && port <= 65535 {
		return netip.AddrPortFrom(a, uint16(port)).String()
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

func normalizeReal(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String()
	}
	return s
}

func (e emitter) service(s *api.ServiceStats) {
	l := serviceLabels(s.ServiceID)
	with := func(extra ...string) []string { return append(l[:len(l):len(l)], extra...) }
	e.gauge(descServiceInfo, 1, with(s.Scheduler, s.Method)...)
	e.counter(descServiceConns, s.Conns, l...)
	e.counter(descServicePkts, s.InPkts, with("in")...)
	e.counter(descServicePkts, s.OutPkts, with("out")...)
	e.counter(descServiceBytes, s.InBytes, with("in")...)
	e.counter(descServiceBytes, s.OutBytes, with("out")...)
	e.gauge(descServiceCPS, s.CPS, l...)
	var active, inactive int64
	for i := range s.Reals {
		r := &s.Reals[i]
		active += r.ActiveConns
		inactive += r.InactiveConns
		e.real(l, r)
	}
	e.gauge(descServiceActive, float64(active), l...)
	e.gauge(descServiceInactive, float64(inactive), l...)
}

func (e emitter) real(svc []string, r *api.RealStats) {
	l := append(svc[:len(svc):len(svc)], realLabel(r.Addr, r.Port))
	with := func(extra ...string) []string { return append(l[:len(l):len(l)], extra...) }
	e.counter(descRealConns, r.Conns, l...)
	e.counter(descRealPkts, r.InPkts, with("in")...)
	e.counter(descRealPkts, r.OutPkts, with("out")...)
	e.counter(descRealBytes, r.InBytes, with("in")...)
	e.counter(descRealBytes, r.OutBytes, with("out")...)
	e.gauge(descRealCPS, r.CPS, l...)
	e.gauge(descRealActive, float64(r.ActiveConns), l...)
	e.gauge(descRealInactive, float64(r.InactiveConns), l...)
	e.gauge(descRealWeight, float64(r.Weight), l...)
	e.gauge(descRealUp, b2f(r.State == "up"), l...)
	e.oneHot(descRealState, realStates, r.State, l...)
}

func (e emitter) worker(w *api.WorkerStats) {
	id := strconv.Itoa(w.Worker)
	e.counter(descWorkerPkts, w.Counters[ctrRxPackets], id, "rx")
	e.counter(descWorkerPkts, w.Counters[ctrTxPackets], id, "tx")
	e.counter(descWorkerBytes, w.Counters[ctrRxBytes], id, "rx")
	e.counter(descWorkerBytes, w.Counters[ctrTxBytes], id, "tx")
	// Every reason, zero or not (the daemon omits zero drops); then any
	// reason this build does not know.
	drops := make(map[string]uint64, pipeline.NumDropReasons+len(workerCounterDrops)+len(w.Drops))
	for r := pipeline.DropReason(0); int(r) < pipeline.NumDropReasons; r++ {
		drops[r.String()] = 0
	}
	for _, reason := range workerCounterDrops {
		drops[reason] = 0
	}
	for reason, n := range w.Drops {
		drops[reason] += n
	}
	for name, n := range w.Counters {
		switch name {
		case ctrRxPackets, ctrTxPackets, ctrRxBytes, ctrTxBytes, ctrSessionsLive:
			continue
		}
		if reason, ok := workerCounterDrops[name]; ok {
			drops[reason] += n
			continue
		}
		e.counter(descWorkerEvents, n, id, name)
	}
	for reason, n := range drops {
		e.counter(descWorkerDrops, n, id, reason)
	}
	e.gauge(descWorkerSessions, float64(w.Sessions), id)
	e.gauge(descWorkerIdle, w.IdleRatio, id)
	e.gauge(descWorkerHandover, float64(w.HandoverDepth), id)
}

func (e emitter) port(p *api.PortStats) {
	e.counter(descPortPkts, p.RxPackets, p.Name, p.Driver, "rx")
	e.counter(descPortPkts, p.TxPackets, p.Name, p.Driver, "tx")
	e.counter(descPortBytes, p.RxBytes, p.Name, p.Driver, "rx")
	e.counter(descPortBytes, p.TxBytes, p.Name, p.Driver, "tx")
	e.counter(descPortDropped, p.RxDropped, p.Name, p.Driver, "rx")
	e.counter(descPortDropped, p.TxDropped, p.Name, p.Driver, "tx")
}

func (e emitter) health(h *api.HealthStatus) {
	l := append(serviceLabels(h.Service), normalizeReal(h.Real))
	e.gauge(descHealthUp, b2f(h.Up), l...)
	e.gauge(descHealthLatency, h.LatencyMS/1000, l...)
	if t, err := time.Parse(time.RFC3339Nano, h.Since); err == nil {
		e.gauge(descHealthSince, float64(t.UnixNano())/1e9, l...)
	}
}

func (e emitter) vrrp(v *api.VRRPStatus) {
	e.oneHot(descVRRPState, vrrpStates, strings.ToLower(v.State), v.Name)
	e.gauge(descVRRPPriority, float64(v.Priority), v.Name)
}
