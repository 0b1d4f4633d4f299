package ipvsadm

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"gvs/ctl/api"
)

// ListOptions are the options of the -L tables.
type ListOptions struct {
	Stats  bool // --stats: FormatStats
	Rate   bool // --rate: FormatRate
	Exact  bool // --exact: numbers without K/M/G/T
	NoSort bool // --nosort: services and reals in the daemon's order
	// Single is set when one service was asked for (-L -t VIP:PORT):
	// ipvsadm then prints no "IP Virtual Server version" line.
	Single bool
	// Size is the "(size=N)" of the version line; 0: 4096, IPVS's default
	// connection table size (gvs's session tables are per worker and sized
	// in the configuration; the line is kept for scripts that expect it).
	Size int
}

// IPVSVersion is the IPVS version gvsctl reports in -L's first line, the
// one current kernels report, so that scripts parsing it keep working.
const IPVSVersion = "1.2.1"

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// FormatList prints services as `ipvsadm -Ln` does.
func FormatList(w io.Writer, svcs []api.ServiceStats, o ListOptions) error {
	e := &errWriter{w: w}
	header(e, o)
	e.printf("Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	for _, s := range sortServices(svcs, o) {
		e.printf("%s %s", svcName(s.ServiceID), s.Scheduler)
		if f := schedFlags(s); f != "" {
			e.printf(" (%s)", f)
		}
		if s.Persistence > 0 {
			e.printf(" persistent %d", s.Persistence)
			if m := maskText(s); m != "" {
				e.printf(" mask %s", m)
			}
		}
		if slices.Contains(s.Flags, "one-packet") {
			e.printf(" ops")
		}
		e.printf("\n")
		for _, r := range s.Reals {
			e.printf("  -> %-28s %-7s %-6d %-10d %-10d\n", realAddr(s, r),
				ForwardName(cmp.Or(r.Method, s.Method)), r.Weight, r.ActiveConns, r.InactiveConns)
		}
	}
	return e.err
}

// FormatStats prints services as `ipvsadm -Ln --stats` does.
func FormatStats(w io.Writer, svcs []api.ServiceStats, o ListOptions) error {
	return formatCounters(w, svcs, o, [5]string{"Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"},
		func(c api.Counters) [5]uint64 { return [5]uint64{c.Conns, c.InPkts, c.OutPkts, c.InBytes, c.OutBytes} })
}

// FormatRate prints services as `ipvsadm -Ln --rate` does; rates are
// rounded to integers, as IPVS's estimators give them.
func FormatRate(w io.Writer, svcs []api.ServiceStats, o ListOptions) error {
	return formatCounters(w, svcs, o, [5]string{"CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"},
		func(c api.Counters) [5]uint64 {
			return [5]uint64{rate(c.CPS), rate(c.InPPS), rate(c.OutPPS), rate(c.InBPS), rate(c.OutBPS)}
		})
}

func rate(f float64) uint64 {
	if f <= 0 || math.IsNaN(f) {
		return 0
	}
	if f >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(math.Round(f))
}

func formatCounters(w io.Writer, svcs []api.ServiceStats, o ListOptions, titles [5]string, get func(api.Counters) [5]uint64) error {
	e := &errWriter{w: w}
	header(e, o)
	e.printf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port",
		titles[0], titles[1], titles[2], titles[3], titles[4])
	for _, s := range sortServices(svcs, o) {
		e.printf("%-33s", svcName(s.ServiceID))
		for _, v := range get(s.Counters) {
			e.printf("%s", largeNum(v, o.Exact))
		}
		e.printf("\n")
		for _, r := range s.Reals {
			e.printf("  -> %-28s", realAddr(s, r))
			for _, v := range get(r.Counters) {
				e.printf("%s", largeNum(v, o.Exact))
			}
			e.printf("\n")
		}
	}
	return e.err
}

func header(e *errWriter, o ListOptions) {
	if o.Single {
		return
	}
	size := o.Size
	if size == 0 {
		size = 4096
	}
	e.printf("IP Virtual Server version %s (size=%d)\n", IPVSVersion, size)
}

// largeNum is ipvsadm's print_largenum: 9 columns, K/M/G/T (powers of
// 1000) from 100 million on, unless exact.
func largeNum(n uint64, exact bool) string {
	if exact {
		s := strconv.FormatUint(n, 10)
		width := 9
		if len(s) > 8 {
			width = len(s) + 1
		}
		return fmt.Sprintf("%*s", width, s)
	}
	switch {
	case n < 100_000_000:
		return fmt.Sprintf("%9d", n)
	case n < 1_000_000_000:
		return fmt.Sprintf("%8dK", n/1_000)
	case n < 100_000_000_000:
		return fmt.Sprintf("%8dM", n/1_000_000)
	case n < 100_000_000_000_000:
		return fmt.Sprintf("%8dG", n/1_000_000_000)
	}
	return fmt.Sprintf("%8dT", n/1_000_000_000_000)
}

// FormatConns prints sessions as `ipvsadm -Lnc` does. Sessions carry no
// order; they are printed as given.
func FormatConns(w io.Writer, sessions []api.Session, _ ListOptions) error {
	e := &errWriter{w: w}
	e.printf("IPVS connection entries\n")
	e.printf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
	for _, s := range sessions {
		e.printf("%-3s %-6s %-11s %-18s %-18s %s\n", strings.ToUpper(s.Proto), expire(s.Expires),
			strings.ToUpper(s.State), s.Client, s.VIP, s.Real)
	}
	return e.err
}

func expire(sec int) string {
	sec = max(sec, 0)
	return fmt.Sprintf("%02d:%02d", sec/60, sec%60)
}

// ForwardName is the Forward column of a method: ipvsadm's Masq, Route and
// Tunnel, and gvs's FullNAT and L3DSR.
func ForwardName(method string) string {
	switch method {
	case "nat":
		return "Masq"
	case "dr":
		return "Route"
	case "tunnel":
		return "Tunnel"
	case "fullnat":
		return "FullNAT"
	case "l3dsr":
		return "L3DSR"
	}
	return method
}

// svcName is ipvsadm's "TCP  10.0.0.1:80" (ANY for gvs's proto-any).
func svcName(id api.ServiceID) string {
	return strings.ToUpper(id.Proto) + "  " + addrPort(id.VIP, id.Port)
}

// addrPort joins an address and a port, IPv6 in brackets.
func addrPort(addr string, port int) string {
	if a, err := netip.ParseAddr(addr); err == nil && port >= 0 && port <= 65535 {
		return netip.AddrPortFrom(a, uint16(port)).String()
	}
	return addr + ":" + strconv.Itoa(port)
}

// realAddr is a real's address and port; port 0 (the service's port, as
// the configuration writes it) shows as the service's port, as in ipvsadm.
func realAddr(s api.ServiceStats, r api.RealStats) string {
	return addrPort(r.Addr, cmp.Or(r.Port, s.Port))
}

// schedFlags is ipvsadm's list of scheduler flags: sh-fallback,sh-port for
// sh, mh-... for mh, flag-1,flag-2 for the others.
func schedFlags(s api.ServiceStats) string {
	prefix := "flag-"
	fallback, port := "1", "2"
	if s.Scheduler == "sh" || s.Scheduler == "mh" {
		prefix, fallback, port = s.Scheduler+"-", "fallback", "port"
	}
	var out []string
	if slices.Contains(s.Flags, "fallback") {
		out = append(out, prefix+fallback)
	}
	if slices.Contains(s.Flags, "hash-port") {
		out = append(out, prefix+port)
	}
	return strings.Join(out, ",")
}

// maskText is the persistence mask as ipvsadm prints it: dotted for IPv4
// unless /32, a prefix length for IPv6 unless /128.
func maskText(s api.ServiceStats) string {
	a, err := netip.ParseAddr(s.VIP)
	if err != nil || s.PersistMask <= 0 {
		return ""
	}
	if a.Is6() {
		if s.PersistMask >= 128 {
			return ""
		}
		return strconv.Itoa(s.PersistMask)
	}
	if s.PersistMask >= 32 {
		return ""
	}
	m := ^uint32(0) << (32 - s.PersistMask)
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// sortServices orders services as ipvsadm does (family, protocol, address,
// port) and their reals by address and port, on copies.
func sortServices(in []api.ServiceStats, o ListOptions) []api.ServiceStats {
	out := slices.Clone(in)
	if o.NoSort {
		return out
	}
	slices.SortStableFunc(out, func(a, b api.ServiceStats) int {
		aa, _ := netip.ParseAddr(a.VIP)
		ba, _ := netip.ParseAddr(b.VIP)
		return cmp.Or(
			cmp.Compare(family(aa), family(ba)),
			cmp.Compare(protoNum(a.Proto), protoNum(b.Proto)),
			aa.Compare(ba),
			cmp.Compare(a.VIP, b.VIP),
			cmp.Compare(a.Port, b.Port))
	})
	for i := range out {
		reals := slices.Clone(out[i].Reals)
		slices.SortStableFunc(reals, func(a, b api.RealStats) int {
			aa, _ := netip.ParseAddr(a.Addr)
			ba, _ := netip.ParseAddr(b.Addr)
			return cmp.Or(aa.Compare(ba), cmp.Compare(a.Addr, b.Addr), cmp.Compare(a.Port, b.Port))
		})
		out[i].Reals = reals
	}
	return out
}

func family(a netip.Addr) int {
	if a.Is6() {
		return 10 // AF_INET6
	}
	return 2 // AF_INET
}

func protoNum(p string) int {
	switch p {
	case "tcp":
		return 6
	case "udp":
		return 17
	}
	return 0
}

// ---- gvsctl's own tables ----

func newTab(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// FormatReport prints `gvsctl stats`: services, reals, workers and driver
// ports, with exact counters and the rates over the daemon's last interval.
func FormatReport(w io.Writer, st api.Stats) error {
	e := &errWriter{w: w}
	svcs := sortServices(st.Services, ListOptions{})
	e.printf("Services (rates over the last %gs)\n", st.IntervalSec)
	tw := newTab(w)
	te := &errWriter{w: tw}
	te.printf("SERVICE\tSCHED\tMETHOD\tPERSIST\tCONNS\tINPKTS\tOUTPKTS\tINBYTES\tOUTBYTES\tCPS\tINPPS\tOUTPPS\tINBPS\tOUTBPS\n")
	for _, s := range svcs {
		persist := "-"
		if s.Persistence > 0 {
			persist = strconv.Itoa(s.Persistence) + "s"
		}
		te.printf("%s\t%s\t%s\t%s\t%s\n", ServiceText(s.ServiceID), s.Scheduler, s.Method, persist, counterCols(s.Counters))
	}
	flush(e, te, tw)
	e.printf("\nReals\n")
	tw = newTab(w)
	te = &errWriter{w: tw}
	te.printf("SERVICE\tREAL\tMETHOD\tWEIGHT\tSTATE\tACTIVE\tINACTIVE\tCONNS\tINPKTS\tOUTPKTS\tINBYTES\tOUTBYTES\tCPS\tINPPS\tOUTPPS\tINBPS\tOUTBPS\n")
	for _, s := range svcs {
		for _, r := range s.Reals {
			te.printf("%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", ServiceText(s.ServiceID), realAddr(s, r),
				cmp.Or(r.Method, s.Method), r.Weight, r.State, r.ActiveConns, r.InactiveConns, counterCols(r.Counters))
		}
	}
	flush(e, te, tw)
	e.printf("\nWorkers\n")
	tw = newTab(w)
	te = &errWriter{w: tw}
	te.printf("WORKER\tRX_PACKETS\tTX_PACKETS\tSLOW_PATH\tSESSIONS\tNEW_SESSIONS\tIDLE\tHANDOVER_DEPTH\tDROPS\n")
	for _, wk := range st.Workers {
		te.printf("%d\t%d\t%d\t%d\t%d\t%d\t%.0f%%\t%d\t%s\n", wk.Worker, wk.Counters["rx_packets"], wk.Counters["tx_packets"],
			wk.Counters["slow_path"], wk.Sessions, wk.Counters["sessions_new"], wk.IdleRatio*100, wk.HandoverDepth, dropsText(wk.Drops))
	}
	flush(e, te, tw)
	e.printf("\nPorts\n")
	tw = newTab(w)
	te = &errWriter{w: tw}
	te.printf("PORT\tDRIVER\tRX_PACKETS\tRX_BYTES\tTX_PACKETS\tTX_BYTES\tRX_DROPPED\tTX_DROPPED\n")
	for _, p := range st.Ports {
		te.printf("%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", p.Name, p.Driver, p.RxPackets, p.RxBytes, p.TxPackets, p.TxBytes, p.RxDropped, p.TxDropped)
	}
	flush(e, te, tw)
	return e.err
}

func flush(e, te *errWriter, tw *tabwriter.Writer) {
	if e.err == nil {
		e.err = te.err
	}
	if err := tw.Flush(); e.err == nil {
		e.err = err
	}
}

func counterCols(c api.Counters) string {
	return fmt.Sprintf("%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s", c.Conns, c.InPkts, c.OutPkts, c.InBytes, c.OutBytes,
		rateText(c.CPS), rateText(c.InPPS), rateText(c.OutPPS), rateText(c.InBPS), rateText(c.OutBPS))
}

func rateText(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// dropsText lists drops by reason, largest first: "total (reason=n, ...)".
func dropsText(d map[string]uint64) string {
	var total uint64
	type kv struct {
		k string
		v uint64
	}
	var list []kv
	for k, v := range d {
		total += v
		if v > 0 {
			list = append(list, kv{k, v})
		}
	}
	if total == 0 {
		return "0"
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].v != list[j].v {
			return list[i].v > list[j].v
		}
		return list[i].k < list[j].k
	})
	parts := make([]string, len(list))
	for i, x := range list {
		parts[i] = fmt.Sprintf("%s=%d", x.k, x.v)
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// ServiceText is a service as gvsctl's tables show it: "tcp 10.0.0.1:80".
func ServiceText(id api.ServiceID) string { return id.Proto + " " + addrPort(id.VIP, id.Port) }

// FormatSessions prints `gvsctl conns`: every field of a session,
// including the worker that owns it and the fullnat local address.
func FormatSessions(w io.Writer, sessions []api.Session) error {
	tw := newTab(w)
	e := &errWriter{w: tw}
	e.printf("WORKER\tPROTO\tCLIENT\tVIRTUAL\tREAL\tLOCAL\tSTATE\tEXPIRES\n")
	for _, s := range sessions {
		e.printf("%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Worker, s.Proto, s.Client, s.VIP, s.Real, cmp.Or(s.Local, "-"), s.State, expire(s.Expires))
	}
	if err := tw.Flush(); e.err == nil {
		e.err = err
	}
	return e.err
}

// FormatHealth prints `gvsctl health`.
func FormatHealth(w io.Writer, hs []api.HealthStatus) error {
	tw := newTab(w)
	e := &errWriter{w: tw}
	e.printf("SERVICE\tREAL\tSTATE\tSINCE\tLAST\tLATENCY\tREASON\n")
	for _, h := range hs {
		state := "down"
		if h.Up {
			state = "up"
		}
		e.printf("%s\t%s\t%s\t%s\t%s\t%.1fms\t%s\n", ServiceText(h.Service), h.Real, state, cmp.Or(h.Since, "-"),
			cmp.Or(h.LastResult, "-"), h.LatencyMS, cmp.Or(h.Reason, "-"))
	}
	if err := tw.Flush(); e.err == nil {
		e.err = err
	}
	return e.err
}

// FormatVRRP prints `gvsctl vrrp`.
func FormatVRRP(w io.Writer, vs []api.VRRPStatus) error {
	tw := newTab(w)
	e := &errWriter{w: tw}
	e.printf("NAME\tSTATE\tPRIORITY\tMASTER\n")
	for _, v := range vs {
		e.printf("%s\t%s\t%d\t%s\n", v.Name, v.State, v.Priority, cmp.Or(v.Master, "-"))
	}
	if err := tw.Flush(); e.err == nil {
		e.err = err
	}
	return e.err
}

// FormatBGP prints `gvsctl bgp`.
func FormatBGP(w io.Writer, s api.BGPStatus) error {
	if !s.Enabled {
		_, err := io.WriteString(w, "BGP not configured\n")
		return err
	}
	tw := newTab(w)
	e := &errWriter{w: tw}
	drained := ""
	if s.Drained {
		drained = " (drained)"
	}
	e.printf("AS %d router-id %s%s\n", s.LocalAS, s.RouterID, drained)
	e.printf("NEIGHBOR\tAS\tSTATE\tSINCE\tUPS\n")
	for _, n := range s.Sessions {
		e.printf("%s\t%d\t%s\t%s\t%d\n", n.Neighbor, n.AS, n.State, cmp.Or(n.Since, "-"), n.Ups)
	}
	e.printf("PREFIX\tSTATE\tSINCE\tREASON\n")
	for _, p := range s.Prefixes {
		st := "withdrawn"
		if p.Announced {
			st = "announced"
		}
		e.printf("%s\t%s\t%s\t%s\n", p.Prefix, st, cmp.Or(p.Since, "-"), p.Reason)
	}
	if err := tw.Flush(); e.err == nil {
		e.err = err
	}
	return e.err
}

// FormatVersion prints `gvsctl version`: gvsd's version and the protocol
// and Go versions of both ends.
func FormatVersion(w io.Writer, v api.VersionInfo, goVersion string) error {
	_, err := fmt.Fprintf(w, "gvsd %s (protocol %d, %s)\ngvsctl (protocol %d, %s)\n", v.Version, v.Protocol, v.Go, api.Version, goVersion)
	return err
}
