package daemon

import (
	"runtime"
	"time"

	"gvs/ctl/api"
	"gvs/lb"
	"gvs/pipeline"
)

// This file turns the workers' published counters into the statistics of
// the control socket and the metrics: per real and service (with rates over
// the last interval), per worker and per port. Counters are read with
// atomic loads of what each worker published; nothing here slows a worker.
// "Zeroing" (ipvsadm -Z) records a baseline that is subtracted; a real id
// reused by a new real gets a baseline too, so it starts from zero.

// StatsInterval is how often rates are sampled.
const StatsInterval = 2 * time.Second

type rawReal [pipeline.NumRealCounters]uint64

func (r rawReal) minus(b rawReal) rawReal {
	for i := range r {
		if r[i] >= b[i] {
			r[i] -= b[i]
		} else {
			r[i] = 0
		}
	}
	return r
}

type realRates struct{ cps, inPPS, outPPS, inBPS, outBPS float64 }

type statsState struct {
	base     map[lb.RealKey]rawReal // subtracted (zero, id reuse)
	ids      map[lb.RealKey]uint32  // id the baseline belongs to
	prev     map[lb.RealKey]rawReal // last sample (after baseline)
	prevAt   time.Time
	rates    map[lb.RealKey]realRates
	interval float64
}

// rawOf sums the published per-real counters of every worker.
func (d *Daemon) rawOf(id uint32) rawReal {
	var r rawReal
	for _, w := range d.engine.Workers() {
		st := w.Pipeline().Stats()
		for i := range r {
			r[i] += st.Real(id, i)
		}
	}
	return r
}

// current returns a real's counters since its baseline, giving new reals
// (and reused ids) a baseline first. Called with d.smu held.
func (d *Daemon) current(r *lb.RealEntry) rawReal {
	raw := d.rawOf(r.ID)
	if id, ok := d.st.ids[r.Key]; !ok || id != r.ID {
		d.st.ids[r.Key] = r.ID
		d.st.base[r.Key] = raw
	}
	return raw.minus(d.st.base[r.Key])
}

// sampleStats computes the rates over the time since the last sample.
func (d *Daemon) sampleStats() {
	if d.engine == nil {
		return
	}
	d.smu.Lock()
	defer d.smu.Unlock()
	now := time.Now()
	snap := d.bal.Load()
	dt := now.Sub(d.st.prevAt).Seconds()
	cur := map[lb.RealKey]rawReal{}
	rates := map[lb.RealKey]realRates{}
	for i := range snap.Reals {
		r := &snap.Reals[i]
		c := d.current(r)
		cur[r.Key] = c
		if p, ok := d.st.prev[r.Key]; ok && dt > 0 {
			rate := func(j int) float64 {
				if c[j] < p[j] {
					return 0
				}
				return float64(c[j]-p[j]) / dt
			}
			rates[r.Key] = realRates{rate(pipeline.RealConns), rate(pipeline.RealInPkts), rate(pipeline.RealOutPkts),
				rate(pipeline.RealInBytes) * 8, rate(pipeline.RealOutBytes) * 8}
		}
	}
	for k := range d.st.ids {
		if _, ok := cur[k]; !ok {
			delete(d.st.ids, k)
			delete(d.st.base, k)
		}
	}
	d.st.prev, d.st.prevAt, d.st.rates = cur, now, rates
	if dt > 0 {
		d.st.interval = dt
	}
}

// Zero zeroes the counters of one service (or all, svc nil).
func (d *Daemon) Zero(svc *lb.ServiceKey) {
	d.smu.Lock()
	defer d.smu.Unlock()
	snap := d.bal.Load()
	for i := range snap.Reals {
		r := &snap.Reals[i]
		if svc != nil && r.Key.Service != *svc {
			continue
		}
		d.st.ids[r.Key] = r.ID
		d.st.base[r.Key] = d.rawOf(r.ID)
		delete(d.st.prev, r.Key)
	}
}

// ServiceID converts a service key for the API.
func ServiceID(k lb.ServiceKey) api.ServiceID {
	return api.ServiceID{Proto: k.Proto.String(), VIP: k.VIP.String(), Port: int(k.Port)}
}

// Stats returns the statistics of one service (or all, svc nil).
func (d *Daemon) Stats(svc *lb.ServiceKey) api.Stats {
	// The configuration may be replaced by a concurrent change: read the
	// ports' settings under d.mu, before d.smu (apply takes d.mu, then
	// d.smu).
	d.mu.Lock()
	portCfg := d.cfg.Ports
	d.mu.Unlock()
	d.smu.Lock()
	defer d.smu.Unlock()
	snap := d.bal.Load()
	out := api.Stats{IntervalSec: d.st.interval}
	byKey := map[lb.ServiceKey]int{}
	for i := range snap.Services {
		s := &snap.Services[i]
		if svc != nil && s.Key != *svc {
			continue
		}
		ss := api.ServiceStats{
			ServiceID: ServiceID(s.Key), Scheduler: s.Sched.Kind().String(), Method: s.Method.String(),
			Flags: flagNames(s.Flags), Persistence: int(s.PersistTimeout), Reals: []api.RealStats{},
		}
		if s.PersistTimeout > 0 {
			ss.PersistMask = maskBits(s.PersistMask, s.Family)
		}
		byKey[s.Key] = len(out.Services)
		out.Services = append(out.Services, ss)
	}
	for i := range snap.Reals {
		r := &snap.Reals[i]
		si, ok := byKey[r.Key.Service]
		if !ok {
			continue
		}
		c := d.current(r)
		rt := d.st.rates[r.Key]
		rs := api.RealStats{
			Addr: r.Key.Addr.String(), Port: int(r.Key.Port), Method: r.Method.String(), Weight: int(r.Weight),
			State: r.State.String(),
			Counters: api.Counters{
				Conns: c[pipeline.RealConns], InPkts: c[pipeline.RealInPkts], OutPkts: c[pipeline.RealOutPkts],
				InBytes: c[pipeline.RealInBytes], OutBytes: c[pipeline.RealOutBytes],
				CPS: rt.cps, InPPS: rt.inPPS, OutPPS: rt.outPPS, InBPS: rt.inBPS, OutBPS: rt.outBPS,
			},
		}
		if r.Removed {
			rs.State = "removed"
		}
		rs.ActiveConns, rs.InactiveConns = d.bal.Conns().Sum(r.ID)
		ss := &out.Services[si]
		ss.Reals = append(ss.Reals, rs)
		ss.Conns += rs.Conns
		ss.InPkts += rs.InPkts
		ss.OutPkts += rs.OutPkts
		ss.InBytes += rs.InBytes
		ss.OutBytes += rs.OutBytes
		ss.CPS += rs.CPS
		ss.InPPS += rs.InPPS
		ss.OutPPS += rs.OutPPS
		ss.InBPS += rs.InBPS
		ss.OutBPS += rs.OutBPS
	}
	for _, w := range d.engine.Workers() {
		st := w.Pipeline().Stats()
		ws := api.WorkerStats{Worker: w.ID(), Counters: map[string]uint64{}, Drops: map[string]uint64{}}
		for c := pipeline.Counter(0); int(c) < pipeline.NumCounters; c++ {
			ws.Counters[c.String()] = st.Counter(c)
		}
		for r := pipeline.DropReason(0); int(r) < pipeline.NumDropReasons; r++ {
			if n := st.Drops(r); n > 0 {
				ws.Drops[r.String()] = n
			}
		}
		wst := w.Stats()
		if wst.Loops > 0 {
			ws.IdleRatio = float64(wst.IdleLoops) / float64(wst.Loops)
		}
		ws.HandoverDepth = wst.HandoverDepth
		ws.Counters["handover_in"] = wst.HandoverIn
		ws.Counters["handover_drops"] = wst.HandoverDrops
		ws.Counters["tx_ring_drops"] = wst.TxDrops
		ws.Counters["slow_path_freed"] = wst.SlowFreed
		ws.Sessions = int(st.Counter(pipeline.CtrSessionsLive))
		out.Workers = append(out.Workers, ws)
	}
	for i, p := range d.ports {
		ps := p.Stats()
		out.Ports = append(out.Ports, api.PortStats{
			Name: p.Name(), Driver: portCfg[i].Driver, RxPackets: ps.RxPackets, RxBytes: ps.RxBytes,
			TxPackets: ps.TxPackets, TxBytes: ps.TxBytes, RxDropped: ps.RxDropped, TxDropped: ps.TxDropped,
		})
	}
	out.SessionSync = d.syncStats()
	return out
}

func flagNames(f lb.ServiceFlags) []string {
	var out []string
	if f&lb.FlagHashPort != 0 {
		out = append(out, "hash-port")
	}
	if f&lb.FlagFallback != 0 {
		out = append(out, "fallback")
	}
	if f&lb.FlagOnePacket != 0 {
		out = append(out, "one-packet")
	}
	return out
}

func maskBits(m [16]byte, family uint8) int {
	n := 0
	l := 4
	if family == lb.FamilyV6 {
		l = 16
	}
	for _, b := range m[:l] {
		for ; b&0x80 != 0; b <<= 1 {
			n++
		}
	}
	return n
}

// Version is gvs's version string.
const Version = "0.1.0"

// VersionInfo answers the version operation.
func VersionInfo() api.VersionInfo {
	return api.VersionInfo{Version: Version, Protocol: api.Version, Go: runtime.Version()}
}
