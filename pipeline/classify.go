package pipeline

import (
	"encoding/binary"

	"gvs/driver"
	"gvs/lb"
)

// This file is the classify stage: a packet either belongs to a session of
// this worker (forward or reply direction), or to a service (a new flow), or
// to a flow another worker owns, or to nobody (slow path).
//
// Flow ownership (DESIGN.md, "Multi-core without locks"): dr, l3dsr and
// tunnel flows are handled by whichever worker the NIC's RSS chose, since
// only the client-to-VIP direction passes gvs. nat replies carry the client
// endpoint as destination, so the owner of a nat flow is
// hash(client address, client port) mod workers, computable in both
// directions. fullnat replies carry gvs's local port, which the owner picks
// congruent to its worker number. Persistent services need all of a
// client's connections on one worker (the template lives in its table), so
// their owner is hash(masked client address).

// clientHash is the ownership hash of a client endpoint.
func clientHash(addr []byte, port uint16) uint32 {
	var a [16]byte
	copy(a[:], addr)
	h := binary.LittleEndian.Uint64(a[0:8]) ^ binary.LittleEndian.Uint64(a[8:16])*0x9E3779B97F4A7C15
	h ^= uint64(port) * 0xC2B2AE3D27D4EB4F
	h ^= h >> 33
	h *= 0xFF51AFD7ED558CCD
	h ^= h >> 33
	return uint32(h)
}

// ownerOf returns the worker that owns a flow of svc from client:port.
func (w *Pipeline) ownerOf(svc *lb.SvcEntry, client []byte, port uint16) int {
	if !svc.Owned || w.workers == 1 {
		return w.worker
	}
	if svc.PersistTimeout > 0 {
		var m [16]byte
		for i := range client {
			m[i] = client[i] & svc.PersistMask[i]
		}
		return int(clientHash(m[:len(client)], 0) % uint32(w.workers))
	}
	return int(clientHash(client, port) % uint32(w.workers))
}

// flow handles a TCP/UDP packet whose session lookup gave idx.
func (w *Pipeline) flow(f *driver.Frame, p *Packet, k *lb.Key, h uint64, idx int32, out *Output) {
	data := f.Data()
	if idx >= 0 {
		e := w.table.Entry(idx)
		if e.Flags&lb.EntryReverse != 0 {
			w.reply(f, p, idx, e, out)
			return
		}
		if w.established(f, p, idx, e, out) {
			return
		}
		// The session's real is gone: schedule the packet anew.
	}
	snap := w.snap
	if si := snap.Classify(p.Family, p.Proto, p.Dst(data), p.DPort); si >= 0 {
		w.newFlow(f, p, k, h, si, out)
		return
	}
	if ri := snap.NATReal(p.Family, p.Proto, p.Src(data), p.SPort); ri >= 0 {
		// A reply from a nat real: its session is the owner's.
		svc := &snap.Services[snap.Reals[ri].Svc]
		if o := w.ownerOf(svc, p.Dst(data), p.DPort); o != w.worker {
			w.handover(f, o, out)
			return
		}
	} else if snap.LocalAddr(p.Family, p.Dst(data)) >= 0 && w.workers > 1 {
		if o := int(p.DPort) % w.workers; o != w.worker {
			w.handover(f, o, out)
			return
		}
	}
	// Not ours (also: replies without a session, such as health-check
	// answers to gvs's own addresses): the kernel or exception path decides.
	w.slow(f, out)
}

// gone reports whether a session's real can no longer carry it: removed
// with the drop policy (not in the snapshot), or down on a service that
// drops the sessions of failed reals.
func (w *Pipeline) gone(r *lb.RealEntry) bool {
	return r == nil || (r.State == lb.RealDown && w.snap.Services[r.Svc].OnRemove == lb.RemoveDrop)
}

// forgetSession deletes a forward session whose real is gone.
func (w *Pipeline) forgetSession(idx int32, e *lb.Entry) {
	w.ctr.c[CtrRealGone]++
	w.connsGone(e.RealID, e.State)
	w.syncOut(lb.SyncClosed, e, nil)
	w.table.Delete(idx)
}

// established forwards a packet of a known forward session. It returns
// false (after deleting the session) if the session's real is gone.
func (w *Pipeline) established(f *driver.Frame, p *Packet, idx int32, e *lb.Entry, out *Output) bool {
	r := w.snap.Real(e.RealID)
	if w.gone(r) {
		w.forgetSession(idx, e)
		return false
	}
	if p.Proto == protoTCP && p.TCPFlags&(tcpSYN|tcpACK|tcpRST) == tcpSYN &&
		(e.State == lb.StateFinWait || e.State == lb.StateClose) {
		// A new connection on the 5-tuple of a closed one (the client
		// reused its port): schedule it anew rather than sending it to
		// the old real, which may be draining (IPVS conn_reuse_mode=1).
		w.ctr.c[CtrSessionReuse]++
		w.connsGone(e.RealID, e.State)
		w.syncOut(lb.SyncClosed, e, nil)
		w.table.Delete(idx)
		return false
	}
	w.ctr.c[CtrSessionHit]++
	if p.Frag != FragMore {
		prev := w.table.Advance(e, p.TCPFlags, true, w.sec)
		w.connsMoved(e.RealID, prev, e.State)
		if prev != e.State {
			w.syncOut(lb.SyncUpdate, e, r)
		}
	}
	svc := &w.snap.Services[r.Svc]
	var laddr []byte
	if r.Method == lb.MethodFullNAT {
		if int(e.LAddr) >= len(svc.LocalAddrs) {
			// The local address went away with a reload: the reply
			// could not come back; start over.
			w.forgetSession(idx, e)
			return false
		}
		laddr = svc.LocalAddrs[e.LAddr][:]
	}
	if p.Frag == FragFirst {
		fk := makeFragKey(p, f.Data())
		w.frags.put(&fk, idx, e.RealID, w.sec)
	}
	w.forward(f, p, r, svc, p.DPort, laddr, e.LPort, out)
	return true
}

// reply rewrites a nat/fullnat reply (real to client) back to the VIP.
func (w *Pipeline) reply(f *driver.Frame, p *Packet, idx int32, e *lb.Entry, out *Output) {
	fwd := w.table.Entry(e.Peer)
	r := w.snap.Real(fwd.RealID)
	if w.gone(r) {
		w.forgetSession(e.Peer, fwd)
		w.slow(f, out)
		return
	}
	w.ctr.c[CtrReplies]++
	if p.Frag != FragMore {
		prev := w.table.Advance(fwd, p.TCPFlags, false, w.sec)
		w.connsMoved(fwd.RealID, prev, fwd.State)
		if prev != fwd.State {
			w.syncOut(lb.SyncUpdate, fwd, r)
		}
	}
	if p.Frag == FragFirst {
		fk := makeFragKey(p, f.Data())
		w.frags.put(&fk, idx, fwd.RealID, w.sec)
	}
	data := f.Data()
	n := addrLen(p.Family)
	setSrc(data, p, fwd.Key.Dst[:n], fwd.Key.DPort)
	if r.Method == lb.MethodFullNAT {
		setDst(data, p, fwd.Key.Src[:n], fwd.Key.SPort)
	}
	svc := &w.snap.Services[r.Svc]
	setMACs(data, &fwd.MAC, &w.macs[svc.ClientPort])
	w.countOut(r.ID, f.Len)
	w.send(f, svc.ClientPort, out)
}

func addrLen(family uint8) int {
	if family == lb.FamilyV4 {
		return 4
	}
	return 16
}

func (w *Pipeline) countIn(id uint32, n int) {
	c := &w.ctr.real[id]
	c[RealInPkts]++
	c[RealInBytes] += uint64(n)
}

func (w *Pipeline) countOut(id uint32, n int) {
	c := &w.ctr.real[id]
	c[RealOutPkts]++
	c[RealOutBytes] += uint64(n)
}
