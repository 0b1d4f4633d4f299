package pipeline

import (
	"time"

	"gvs/lb"
)

// This file is the pipeline's side of session sync (ctl/sessync): the
// master's workers export their new sessions, TCP state changes and early
// removals as lb.SyncRecords into an SPSC ring (Config.Export) that the
// sync sender drains; the backup's workers import the records the sync
// receiver queues for them (Import, called by pmd between bursts), so that
// after a failover the new master knows the established flows: the same
// real, the same fullnat local port, nat and fullnat replies mapped back.
//
// Export costs a nil check where a session is created or changes state,
// and a 72-byte copy into the ring when sync is on; a full ring drops the
// record and counts it (the periodic full resync repairs the backup).

// syncOut exports one record about the forward entry e (of real r; r may
// be nil for SyncClosed, which needs only the key).
func (w *Pipeline) syncOut(kind uint8, e *lb.Entry, r *lb.RealEntry) {
	if w.exp == nil || e.Flags&(lb.EntryPersist|lb.EntryReverse) != 0 {
		return
	}
	rec := lb.SyncRecord{Key: e.Key, LPort: e.LPort, LAddr: e.LAddr, State: e.State, Kind: kind, MAC: e.MAC}
	if r != nil {
		rec.Real, rec.RealPort = r.Addr, realPort(r, e.Key.DPort)
	}
	w.exp.Push(&rec)
}

// RecordOf describes a forward session entry (as DumpSessions returns
// them) as a SyncRecord of kind SyncNew, for a full resync. It reports
// false for persistence templates, reverse entries and sessions whose real
// is no longer in snap.
func RecordOf(snap *lb.Snapshot, e *lb.Entry) (lb.SyncRecord, bool) {
	if e.Flags&(lb.EntryPersist|lb.EntryReverse) != 0 || e.Key.Family == 0 {
		return lb.SyncRecord{}, false
	}
	r := snap.Real(e.RealID)
	if r == nil {
		return lb.SyncRecord{}, false
	}
	return lb.SyncRecord{Key: e.Key, Real: r.Addr, RealPort: realPort(r, e.Key.DPort), LPort: e.LPort, LAddr: e.LAddr,
		State: e.State, Kind: lb.SyncNew, MAC: e.MAC}, true
}

// SyncOwner returns the worker (of workers) whose table must hold the
// session rec: the owner the pipeline computes for the flow's packets
// (nat, fullnat and persistent services: from the client address and
// port), else a hash of the client (dr-like flows go wherever the NIC's
// RSS puts them; a miss there is picked up statelessly). A fullnat
// session's local port was chosen on the master so that the reply reaches
// that same worker only if both nodes run the same number of workers.
func SyncOwner(snap *lb.Snapshot, rec *lb.SyncRecord, workers int) int {
	if workers <= 1 {
		return 0
	}
	n := addrLen(rec.Key.Family)
	client := rec.Key.Src[:n]
	if si := snap.Classify(rec.Key.Family, rec.Key.Proto, rec.Key.Dst[:n], rec.Key.DPort); si >= 0 {
		svc := &snap.Services[si]
		if svc.Owned && svc.PersistTimeout > 0 {
			var m [16]byte
			for i := range client {
				m[i] = client[i] & svc.PersistMask[i]
			}
			return int(clientHash(m[:n], 0) % uint32(workers))
		}
	}
	return int(clientHash(client, rec.Key.SPort) % uint32(workers))
}

// ImportStats count what Import did with the records it was given.
type ImportStats struct {
	New, Updated, Closed uint64
	// Skipped: no such service or real here (configurations differ),
	// a reverse-tuple collision, or a fullnat local address index this
	// node does not have. Full: the table had no room.
	Skipped, Full uint64
}

// Import installs session records in the worker's table. It runs on the
// worker's goroutine, between bursts (pmd calls it with what the sync
// receiver queued); now is the clock of the current loop iteration.
func (w *Pipeline) Import(now int64, recs []lb.SyncRecord) ImportStats {
	w.refresh()
	w.now = now
	w.sec = uint32(now / int64(time.Second))
	var st ImportStats
	for i := range recs {
		w.importOne(&recs[i], &st)
	}
	w.inserted = true // burst lookups done before this must not be trusted
	return st
}

func (w *Pipeline) importOne(rec *lb.SyncRecord, st *ImportStats) {
	k := rec.Key
	h := k.Hash()
	idx := w.table.Lookup(&k, h)
	if idx >= 0 && w.table.Entry(idx).Flags&lb.EntryReverse != 0 {
		st.Skipped++ // the tuple is a reply here: a collision
		return
	}
	if rec.Kind == lb.SyncClosed {
		if idx >= 0 {
			e := w.table.Entry(idx)
			w.connsGone(e.RealID, e.State)
			w.table.Delete(idx)
			st.Closed++
		}
		return
	}
	snap := w.snap
	n := addrLen(k.Family)
	si := snap.Classify(k.Family, k.Proto, k.Dst[:n], k.DPort)
	if si < 0 {
		st.Skipped++
		return
	}
	r := syncReal(snap, si, rec)
	if r == nil {
		st.Skipped++
		return
	}
	svc := &snap.Services[si]
	timeout := w.table.Timeouts().For(rec.State)
	if idx >= 0 {
		e := w.table.Entry(idx)
		if e.RealID == r.ID && e.LPort == rec.LPort && e.LAddr == rec.LAddr {
			prev := e.State
			state := rec.State
			if rec.Kind == lb.SyncNew && prev > state && prev <= lb.StateClose && state >= lb.StateSynSent {
				// A resync's copy read before a change that was sent
				// live: a TCP session only moves forward.
				state = prev
				timeout = w.table.Timeouts().For(state)
			}
			e.State, e.Expire = state, w.sec+timeout
			w.connsMoved(e.RealID, prev, e.State)
			st.Updated++
			return
		}
		// Another real or local port here: the master's view wins.
		w.connsGone(e.RealID, e.State)
		w.table.Delete(idx)
	}
	idx = w.table.Insert(&k, h)
	if idx < 0 {
		st.Full++
		return
	}
	e := w.table.Entry(idx)
	e.RealID, e.Worker, e.MAC, e.State, e.Expire = r.ID, uint8(w.worker), rec.MAC, rec.State, w.sec+timeout
	var rk lb.Key
	switch r.Method {
	case lb.MethodNAT:
		setKey(&rk, k.Family, k.Proto, r.Addr[:n], k.Src[:n], rec.RealPort, k.SPort)
	case lb.MethodFullNAT:
		if int(rec.LAddr) >= len(svc.LocalAddrs) {
			w.table.Delete(idx)
			st.Skipped++
			return
		}
		setKey(&rk, k.Family, k.Proto, r.Addr[:n], svc.LocalAddrs[rec.LAddr][:n], rec.RealPort, rec.LPort)
		e.LAddr, e.LPort = rec.LAddr, rec.LPort
	}
	if r.Method == lb.MethodNAT || r.Method == lb.MethodFullNAT {
		rh := rk.Hash()
		if old := w.table.Lookup(&rk, rh); old >= 0 {
			// The reply tuple is taken: by a stale copy of this session
			// (its forward key changed) or by a session of ours.
			oe := w.table.Entry(old)
			if oe.Flags&lb.EntryReverse == 0 || oe.Peer < 0 {
				w.table.Delete(idx)
				st.Skipped++
				return
			}
			fw := w.table.Entry(oe.Peer)
			w.connsGone(fw.RealID, fw.State)
			w.table.Delete(oe.Peer)
		}
		ri := w.table.Insert(&rk, rh)
		if ri < 0 {
			w.table.Delete(idx)
			st.Full++
			return
		}
		w.table.Link(idx, ri)
	}
	if lb.Active(e.State) {
		w.cw.Add(r.ID, 1, 0)
	} else {
		w.cw.Add(r.ID, 0, 1)
	}
	st.New++
}

// syncReal finds the real of service si that rec names.
func syncReal(snap *lb.Snapshot, si int32, rec *lb.SyncRecord) *lb.RealEntry {
	for i := range snap.Reals {
		r := &snap.Reals[i]
		if r.Svc == si && r.Addr == rec.Real && realPort(r, rec.Key.DPort) == rec.RealPort {
			return r
		}
	}
	return nil
}
