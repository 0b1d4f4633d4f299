package pipeline

import (
	"gvs/driver"
	"gvs/lb"
)

// This file is the schedule stage: a packet to a VIP without a session gets
// a real (persistence template, scheduler, or a stateless Maglev pick) and,
// where the table has room, a session — two entries for nat and fullnat, so
// replies find it.

// persistProto marks persistence templates in the session table (IANA
// protocol 255 is reserved, so no packet carries it).
const persistProto = 255

// fullnatPortTries bounds the search for a free local port per new flow.
const fullnatPortTries = 64

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

func (w *Pipeline) newFlow(f *driver.Frame, p *Packet, k *lb.Key, h uint64, si int32, out *Output) {
	data := f.Data()
	snap := w.snap
	svc := &snap.Services[si]
	if o := w.ownerOf(svc, p.Src(data), p.SPort); o != w.worker {
		w.handover(f, o, out)
		return
	}
	fl := lb.Flow{Src: k.Src, Dst: k.Dst, SPort: k.SPort, DPort: k.DPort, Family: k.Family, Hash: h}
	if p.Proto == protoTCP && (p.TCPFlags&(tcpSYN|tcpACK) != tcpSYN) {
		// Mid-flow packet without a session (gvs restarted, the flow came
		// from another node after an ECMP change, the table was full):
		// a stateless pick keeps it on the same real as long as the set
		// of reals is the same, which for mh is what every node picks.
		if p.TCPFlags&tcpRST != 0 {
			w.drop(f, DropTCPNoSession, out)
			return
		}
		w.statelessFlow(f, p, k, h, svc, &fl, true, out)
		return
	}

	// Persistence: the client's template decides while its real can serve.
	var tmplKey lb.Key
	var tmplHash uint64
	if svc.PersistTimeout > 0 {
		tmplKey = lb.Key{DPort: svc.Port, Proto: persistProto, Family: p.Family, Dst: svc.VIP}
		src := p.Src(data)
		for i := range src {
			tmplKey.Src[i] = src[i] & svc.PersistMask[i]
		}
		tmplHash = tmplKey.Hash()
		if ti := w.table.Lookup(&tmplKey, tmplHash); ti >= 0 {
			te := w.table.Entry(ti)
			if r := snap.Real(te.RealID); r != nil && int(r.Svc) == int(si) && !r.Removed && r.State != lb.RealDown && r.NextHop.OK {
				// IPVS keeps persistent clients on a quiescent
				// (weight 0) real; so does gvs.
				te.Expire = w.sec + svc.PersistTimeout
				w.ctr.c[CtrPersistHit]++
				w.admit(f, p, k, h, svc, r, out)
				return
			}
			w.table.Delete(ti)
		}
	}
	ri := w.sched.Pick(int(si), svc.Sched, &fl, w.now)
	if ri < 0 {
		w.drop(f, DropNoReal, out)
		return
	}
	r := &snap.Reals[svc.RealIdx[ri]]
	if svc.PersistTimeout > 0 {
		if ti := w.table.Insert(&tmplKey, tmplHash); ti >= 0 {
			te := w.table.Entry(ti)
			te.RealID, te.Flags, te.Expire, te.Worker = r.ID, lb.EntryPersist, w.sec+svc.PersistTimeout, uint8(w.worker)
			w.inserted = true
		}
	}
	w.admit(f, p, k, h, svc, r, out)
}

// admit creates the session of a new flow on real r and forwards the packet.
// If the table is full, dr/l3dsr/tunnel flows continue statelessly; nat and
// fullnat flows are dropped (their replies could not be mapped back).
func (w *Pipeline) admit(f *driver.Frame, p *Packet, k *lb.Key, h uint64, svc *lb.SvcEntry, r *lb.RealEntry, out *Output) bool {
	if !r.NextHop.OK {
		w.drop(f, DropNoNextHop, out)
		return false
	}
	idx := w.table.Insert(k, h)
	if idx < 0 {
		if r.Method == lb.MethodNAT || r.Method == lb.MethodFullNAT {
			w.drop(f, DropSessionFull, out)
			return false
		}
		fl := lb.Flow{Src: k.Src, Dst: k.Dst, SPort: k.SPort, DPort: k.DPort, Family: k.Family, Hash: h}
		w.statelessFlow(f, p, k, h, svc, &fl, false, out)
		return false
	}
	w.inserted = true
	data := f.Data()
	e := w.table.Entry(idx)
	e.RealID = r.ID
	e.Worker = uint8(w.worker)
	copy(e.MAC[:], data[6:12])
	if p.Proto == protoUDP {
		e.State = lb.StateUDP
	}
	var laddr []byte
	switch r.Method {
	case lb.MethodNAT:
		var rk lb.Key
		setKey(&rk, p.Family, p.Proto, r.Addr[:addrLen(p.Family)], p.Src(data), realPort(r, p.DPort), p.SPort)
		ri := w.table.Insert(&rk, rk.Hash())
		if ri < 0 {
			w.table.Delete(idx)
			if w.table.Lookup(&rk, rk.Hash()) >= 0 {
				w.drop(f, DropNATCollision, out)
			} else {
				w.drop(f, DropSessionFull, out)
			}
			return false
		}
		w.table.Link(idx, ri)
	case lb.MethodFullNAT:
		la := int(uint32(h>>32) % uint32(len(svc.LocalAddrs)))
		laddr = svc.LocalAddrs[la][:addrLen(p.Family)]
		ri := w.allocLocalPort(p, r, laddr)
		if ri < 0 {
			w.table.Delete(idx)
			w.drop(f, DropNoLocalPort, out)
			return false
		}
		w.table.Link(idx, ri)
		e.LAddr = uint8(la)
		e.LPort = w.table.Entry(ri).Key.DPort
	}
	w.table.Advance(e, p.TCPFlags, true, w.sec)
	if lb.Active(e.State) {
		w.cw.Add(r.ID, 1, 0)
	} else {
		w.cw.Add(r.ID, 0, 1)
	}
	w.ctr.c[CtrSessionNew]++
	w.ctr.real[r.ID][RealConns]++
	w.syncOut(lb.SyncNew, e, r)
	if p.Frag == FragFirst {
		fk := makeFragKey(p, data)
		w.frags.put(&fk, idx, r.ID, w.sec)
	}
	w.forward(f, p, r, svc, p.DPort, laddr, e.LPort, out)
	return true
}

// allocLocalPort finds a fullnat local port this worker owns (port mod
// workers = worker) whose reply tuple is free, inserts the reverse entry and
// returns its index, or -1.
func (w *Pipeline) allocLocalPort(p *Packet, r *lb.RealEntry, laddr []byte) int32 {
	var rk lb.Key
	rport := realPort(r, p.DPort)
	step := uint32(w.workers)
	for try := 0; try < fullnatPortTries; try++ {
		port := w.lport
		w.lport += step
		if w.lport > 65535 {
			w.lport = 1024 + (w.lport-1024)%step
			for w.lport%step != uint32(w.worker) {
				w.lport++
			}
		}
		setKey(&rk, p.Family, p.Proto, r.Addr[:addrLen(p.Family)], laddr, rport, uint16(port))
		h := rk.Hash()
		if w.table.Lookup(&rk, h) >= 0 {
			continue
		}
		return w.table.Insert(&rk, h)
	}
	return -1
}

// statelessFlow forwards a packet with the service's Maglev pick and, when
// midflow (a TCP packet without a session), records a session so the
// following packets hit it.
func (w *Pipeline) statelessFlow(f *driver.Frame, p *Packet, k *lb.Key, h uint64, svc *lb.SvcEntry, fl *lb.Flow, midflow bool, out *Output) {
	ri := svc.Sched.Stateless(fl)
	if ri < 0 {
		w.drop(f, DropNoReal, out)
		return
	}
	r := &w.snap.Reals[svc.RealIdx[ri]]
	if midflow {
		w.ctr.c[CtrStateless]++
		if r.Method == lb.MethodNAT || r.Method == lb.MethodFullNAT {
			// A nat/fullnat flow the owner does not know: its replies
			// have no mapping. Starting one mid-flow would only make the
			// real answer with a reset; drop like IPVS does.
			w.drop(f, DropTCPNoSession, out)
			return
		}
		w.admitMidflow(f, p, k, h, svc, r, out)
		return
	}
	w.ctr.c[CtrStateless]++
	w.forward(f, p, r, svc, p.DPort, nil, 0, out)
}

// admitMidflow records an established session for a mid-flow packet if the
// table has room, then forwards it.
func (w *Pipeline) admitMidflow(f *driver.Frame, p *Packet, k *lb.Key, h uint64, svc *lb.SvcEntry, r *lb.RealEntry, out *Output) {
	if !r.NextHop.OK {
		w.drop(f, DropNoNextHop, out)
		return
	}
	if idx := w.table.Insert(k, h); idx >= 0 {
		w.inserted = true
		e := w.table.Entry(idx)
		e.RealID, e.Worker = r.ID, uint8(w.worker)
		copy(e.MAC[:], f.Data()[6:12])
		e.State = lb.StateSynRecv // the ACK below moves it to established
		w.table.Advance(e, p.TCPFlags|tcpACK, true, w.sec)
		if lb.Active(e.State) {
			w.cw.Add(r.ID, 1, 0)
		} else {
			w.cw.Add(r.ID, 0, 1)
		}
		w.ctr.c[CtrSessionNew]++
		w.ctr.real[r.ID][RealConns]++
		w.syncOut(lb.SyncNew, e, r)
	}
	w.forward(f, p, r, svc, p.DPort, nil, 0, out)
}
