// Package api is the protocol of gvsd's control socket: requests and replies
// as JSON, one per line, over a Unix stream socket, with a protocol version,
// a request id and typed errors; and a client for it. Services and reals are
// carried in the configuration file's own schema (ctl/config), so the socket
// and the file never disagree on what a field means.
//
// Imports: ctl/config.
package api

import (
	"encoding/json"
	"fmt"

	"gvs/ctl/config"
)

// Version is the protocol version this package speaks.
const Version = 1

// MaxRequest is the largest request line the daemon reads, in bytes; longer
// requests get a too_large error and the connection is closed.
const MaxRequest = 1 << 20

// DefaultSocket is where gvsd listens unless told otherwise.
const DefaultSocket = "/run/gvs/gvsd.sock"

// Request is one request line.
type Request struct {
	Version int             `json:"version"`
	ID      uint64          `json:"id"`
	Op      string          `json:"op"`
	Args    json.RawMessage `json:"args,omitempty"`
}

// Response is one reply line: Result on success, Error otherwise.
type Response struct {
	Version int             `json:"version"`
	ID      uint64          `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Error is a typed error of the daemon.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeBadRequest  = "bad_request" // malformed JSON or arguments
	CodeVersion     = "version"     // protocol version not spoken
	CodeUnknownOp   = "unknown_op"
	CodeTooLarge    = "too_large"
	CodePermission  = "permission" // peer not root nor in the allowed group
	CodeNotFound    = "not_found"  // no such service or real
	CodeExists      = "exists"     // service or real already there
	CodeInvalid     = "invalid"    // the change would make an invalid configuration
	CodeUnsupported = "unsupported"
	CodeInternal    = "internal"
)

// Errorf makes a typed error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Operations and their arguments and results.
const (
	OpVersion       = "version"        // → VersionInfo
	OpServices      = "services"       // ServiceFilter → []config.Service (running configuration)
	OpAddService    = "add_service"    // config.Service (reals optional)
	OpEditService   = "edit_service"   // config.Service (reals ignored; see daemon.EditService for what an absent field means)
	OpDeleteService = "delete_service" // ServiceID
	OpAddReal       = "add_real"       // RealArgs
	OpEditReal      = "edit_real"      // RealArgs (absent weight, method, state: kept)
	OpDeleteReal    = "delete_real"    // RealArgs (Real.Addr, Real.Port)
	OpClear         = "clear"          // delete every service (ipvsadm -C)
	OpZero          = "zero"           // ServiceFilter: zero counters (ipvsadm -Z)
	OpSave          = "save"           // SaveArgs → SaveResult
	OpRestore       = "restore"        // RestoreArgs: ipvsadm -R rules, added to the running configuration
	OpReload        = "reload"         // re-read the configuration file (runtime changes are discarded)
	OpStats         = "stats"          // ServiceFilter → Stats
	OpSessions      = "sessions"       // SessionFilter → SessionPage
	OpHealth        = "health"         // → []HealthStatus
	OpVRRP          = "vrrp"           // → []VRRPStatus
	OpBGP           = "bgp"            // → BGPStatus
	OpBGPDrain      = "bgp_drain"      // BGPDrainArgs → BGPStatus
)

// VersionInfo answers OpVersion.
type VersionInfo struct {
	Version  string `json:"version"`  // gvs version
	Protocol int    `json:"protocol"` // Version
	Go       string `json:"go"`
}

// ServiceID names a service: proto (tcp, udp, any), VIP and port.
type ServiceID struct {
	Proto string `json:"proto"`
	VIP   string `json:"vip"`
	Port  int    `json:"port"`
}

func (s ServiceID) String() string { return fmt.Sprintf("%s %s:%d", s.Proto, s.VIP, s.Port) }

// ServiceFilter selects one service, or all when nil.
type ServiceFilter struct {
	Service *ServiceID `json:"service,omitempty"`
}

// RealArgs names a service and one of its reals.
type RealArgs struct {
	Service ServiceID   `json:"service"`
	Real    config.Real `json:"real"`
}

// SaveArgs chooses the format of OpSave: "toml" (the configuration file
// schema, global and ports included; the default) or "ipvsadm" (ipvsadm -S
// rules with gvs's extensions, as ctl/rules writes them).
type SaveArgs struct {
	Format string `json:"format"`
}

// SaveResult is the saved text.
type SaveResult struct {
	Text string `json:"text"`
}

// RestoreArgs carries ipvsadm rules to apply (-A/-E/-D/-a/-e/-d/-C lines,
// ctl/rules), all or nothing: an error names the first failing line.
type RestoreArgs struct {
	Text string `json:"text"`
}

// Counters are the traffic counters of a service or real, and their rates
// per second over the daemon's last stats interval.
type Counters struct {
	Conns    uint64  `json:"conns"`
	InPkts   uint64  `json:"in_pkts"`
	OutPkts  uint64  `json:"out_pkts"`
	InBytes  uint64  `json:"in_bytes"`
	OutBytes uint64  `json:"out_bytes"`
	CPS      float64 `json:"cps"`
	InPPS    float64 `json:"in_pps"`
	OutPPS   float64 `json:"out_pps"`
	InBPS    float64 `json:"in_bps"`
	OutBPS   float64 `json:"out_bps"`
}

// RealStats are one real's state and counters.
type RealStats struct {
	Addr          string `json:"addr"`
	Port          int    `json:"port"`
	Method        string `json:"method"`
	Weight        int    `json:"weight"`
	State         string `json:"state"` // up, drain, down, removed (draining after removal)
	ActiveConns   int64  `json:"active_conns"`
	InactiveConns int64  `json:"inactive_conns"`
	Counters
}

// ServiceStats are one service's settings, counters and reals.
type ServiceStats struct {
	ServiceID
	Scheduler   string      `json:"scheduler"`
	Method      string      `json:"method"`
	Flags       []string    `json:"flags,omitempty"`
	Persistence int         `json:"persistence,omitempty"` // seconds
	PersistMask int         `json:"persistence_mask,omitempty"`
	Counters                // sum of the reals'
	Reals       []RealStats `json:"reals"`
}

// WorkerStats are one worker's counters.
type WorkerStats struct {
	Worker        int               `json:"worker"`
	Counters      map[string]uint64 `json:"counters"` // rx_packets, tx_packets, sessions_new, ...
	Drops         map[string]uint64 `json:"drops"`    // by reason
	Sessions      int               `json:"sessions"` // live session table entries (published)
	IdleRatio     float64           `json:"idle_ratio"`
	HandoverDepth int               `json:"handover_depth"`
}

// PortStats are one driver port's counters.
type PortStats struct {
	Name      string `json:"name"`
	Driver    string `json:"driver"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxDropped uint64 `json:"rx_dropped"`
	TxDropped uint64 `json:"tx_dropped"`
}

// Stats answers OpStats.
type Stats struct {
	IntervalSec float64        `json:"interval_sec"` // what rates are measured over
	Services    []ServiceStats `json:"services"`
	Workers     []WorkerStats  `json:"workers"`
	Ports       []PortStats    `json:"ports"`
	// SessionSync are the session sync counters (records sent and
	// received, lost datagrams, resyncs, imports, ring overflows; "master"
	// is 1 while this node sends); absent without [session_sync].
	SessionSync map[string]uint64 `json:"session_sync,omitempty"`
}

// SessionFilter selects sessions: by service, real ("addr:port") and client
// address; Limit is bounded by the daemon (MaxSessions); Cursor continues a
// previous page.
type SessionFilter struct {
	Service *ServiceID `json:"service,omitempty"`
	Real    string     `json:"real,omitempty"`
	Client  string     `json:"client,omitempty"`
	Limit   int        `json:"limit,omitempty"`
	Cursor  string     `json:"cursor,omitempty"`
}

// MaxSessions bounds a page of sessions.
const MaxSessions = 1000

// Session is one connection as gvsctl conns shows it.
type Session struct {
	Worker  int    `json:"worker"`
	Proto   string `json:"proto"`
	Client  string `json:"client"` // addr:port
	VIP     string `json:"vip"`    // addr:port
	Real    string `json:"real"`   // addr:port
	Local   string `json:"local,omitempty"`
	State   string `json:"state"`
	Expires int    `json:"expires_sec"`
}

// SessionPage is a page of sessions; Next is empty on the last page.
type SessionPage struct {
	Sessions []Session `json:"sessions"`
	Next     string    `json:"next,omitempty"`
}

// HealthStatus is the health state of one real.
type HealthStatus struct {
	Service    ServiceID `json:"service"`
	Real       string    `json:"real"`
	Up         bool      `json:"up"`
	Since      string    `json:"since"`
	LastResult string    `json:"last_result"`
	Reason     string    `json:"reason"`
	LatencyMS  float64   `json:"latency_ms"`
}

// VRRPStatus is the state of one VRRP instance.
type VRRPStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`    // init, backup, master, fault
	Priority int    `json:"priority"` // advertised (after tracking)
	Master   string `json:"master,omitempty"`
	// The instance: interface, VRID, VRRP version, configured priority,
	// virtual addresses, sync group.
	Interface    string   `json:"interface,omitempty"`
	VRID         int      `json:"vrid,omitempty"`
	Version      int      `json:"version,omitempty"`
	BasePriority int      `json:"base_priority,omitempty"`
	VIPs         []string `json:"vips,omitempty"`
	SyncGroup    string   `json:"sync_group,omitempty"`
	// The master as last heard, and the timers it sets (RFC 5798 §6.1).
	MasterPriority    int     `json:"master_priority,omitempty"`
	AdvertIntMS       float64 `json:"advert_int_ms,omitempty"`
	MasterAdvertIntMS float64 `json:"master_advert_int_ms,omitempty"`
	MasterDownMS      float64 `json:"master_down_ms,omitempty"`
	// The last transition and its cause; the failing trackers.
	Since       string   `json:"since,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	Faults      []string `json:"faults,omitempty"`
	Transitions uint64   `json:"transitions,omitempty"`
	// Counters (adverts_sent, adverts_received, priority_zero_sent, ...)
	// and discarded packets by reason (ttl, version, checksum, vrid, ...).
	Counters map[string]uint64 `json:"counters,omitempty"`
	Discards map[string]uint64 `json:"discards,omitempty"`
}

// BGPStatus is the state of the BGP speaker (Enabled false: no [bgp]).
type BGPStatus struct {
	Enabled  bool         `json:"enabled"`
	LocalAS  uint32       `json:"local_as,omitempty"`
	RouterID string       `json:"router_id,omitempty"`
	Drained  bool         `json:"drained,omitempty"`
	Sessions []BGPSession `json:"sessions,omitempty"`
	Prefixes []BGPPrefix  `json:"prefixes,omitempty"`
}

// BGPSession is one neighbour's session.
type BGPSession struct {
	Neighbor string `json:"neighbor"`
	AS       uint32 `json:"as"`
	State    string `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Since    string `json:"since,omitempty"`
	Ups      uint64 `json:"ups"`
}

// BGPPrefix is one VIP's announcement and why (not).
type BGPPrefix struct {
	Prefix      string `json:"prefix"`
	Announced   bool   `json:"announced"`
	Reason      string `json:"reason"`
	Since       string `json:"since,omitempty"`
	Transitions uint64 `json:"transitions"`
}

// BGPDrainArgs turns the drain attributes on or off.
type BGPDrainArgs struct {
	Drain bool `json:"drain"`
}
