package pipeline

import (
	"encoding/binary"

	"gvs/driver"
	"gvs/lb"
)

// This file sends ICMP errors (destination unreachable, fragmentation
// needed, packet too big, time exceeded) to the flow they are about. The
// key of an error is its embedded packet reversed: an error about a reply
// VIP:port → client:port finds the forward session client → VIP and goes to
// that real; an error about a nat/fullnat packet gvs sent to a real finds
// the reply session and goes to the client. Embedded addresses and ports
// are rewritten like the flow's packets; the ICMP checksum is computed anew
// over the message (errors are rare and small).

func (w *Pipeline) icmpError(f *driver.Frame, p *Packet, k *lb.Key, idx int32, out *Output) {
	data := f.Data()
	if idx >= 0 {
		e := w.table.Entry(idx)
		if e.Flags&lb.EntryReverse != 0 {
			w.icmpToClient(f, p, e, out)
			return
		}
		r := w.snap.Real(e.RealID)
		if !w.gone(r) {
			w.icmpToReal(f, p, e, r, out)
			return
		}
	}
	snap := w.snap
	// About a VIP flow? The embedded packet went VIP:port -> client.
	if si := snap.Classify(p.Family, p.InnerProto, p.InnerSrc(data), p.InnerSPort); si >= 0 {
		svc := &snap.Services[si]
		if svc.Owned {
			if o := w.ownerOf(svc, p.InnerDst(data), p.InnerDPort); o != w.worker {
				w.handover(f, o, out)
				return
			}
		} else if w.circulate(f, out) {
			// dr/l3dsr/tunnel: RSS put the error on some worker; ask
			// the others.
			return
		}
		w.drop(f, DropICMPNoSession, out)
		return
	}
	// About a packet gvs sent to a nat real (client -> real)?
	if ri := snap.NATReal(p.Family, p.InnerProto, p.InnerDst(data), p.InnerDPort); ri >= 0 {
		svc := &snap.Services[snap.Reals[ri].Svc]
		if o := w.ownerOf(svc, p.InnerSrc(data), p.InnerSPort); o != w.worker {
			w.handover(f, o, out)
			return
		}
	}
	w.slow(f, out)
}

// icmpToReal forwards an error about the reply direction of session e to
// its real.
func (w *Pipeline) icmpToReal(f *driver.Frame, p *Packet, e *lb.Entry, r *lb.RealEntry, out *Output) {
	svc := &w.snap.Services[r.Svc]
	data := f.Data()
	n := addrLen(p.Family)
	w.ctr.c[CtrICMPErrors]++
	switch r.Method {
	case lb.MethodNAT, lb.MethodFullNAT:
		// Outer: to the real (and from our local address for fullnat).
		// Inner: the packet as the real sent it, before gvs rewrote it.
		rport := realPort(r, e.Key.DPort)
		_, dstOff, _ := addrOffsets(p.Family)
		copy(data[p.L3Off+dstOff:], r.Addr[:n])
		innerSet(data, p, true, r.Addr[:n], rport)
		if r.Method == lb.MethodFullNAT {
			if int(e.LAddr) >= len(svc.LocalAddrs) {
				w.drop(f, DropICMPNoSession, out)
				return
			}
			la := svc.LocalAddrs[e.LAddr][:n]
			srcOff, _, _ := addrOffsets(p.Family)
			copy(data[p.L3Off+srcOff:], la)
			innerSet(data, p, false, la, e.LPort)
		}
		icmpFinish(data, p)
		setMACs(data, &r.NextHop.MAC, &w.macs[r.NextHop.Port])
	default:
		w.forward(f, p, r, svc, e.Key.DPort, nil, 0, out)
		return
	}
	w.countIn(r.ID, f.Len)
	w.send(f, r.NextHop.Port, out)
}

// icmpToClient forwards an error about a packet gvs sent to a nat/fullnat
// real to the client, as if it were about the client's packet to the VIP.
func (w *Pipeline) icmpToClient(f *driver.Frame, p *Packet, rev *lb.Entry, out *Output) {
	fwd := w.table.Entry(rev.Peer)
	r := w.snap.Real(fwd.RealID)
	if w.gone(r) {
		w.slow(f, out)
		return
	}
	svc := &w.snap.Services[r.Svc]
	data := f.Data()
	n := addrLen(p.Family)
	w.ctr.c[CtrICMPErrors]++
	srcOff, dstOff, _ := addrOffsets(p.Family)
	if string(data[p.L3Off+srcOff:p.L3Off+srcOff+n]) == string(r.Addr[:n]) {
		copy(data[p.L3Off+srcOff:], fwd.Key.Dst[:n]) // the real itself complained: speak as the VIP
	}
	copy(data[p.L3Off+dstOff:], fwd.Key.Src[:n])
	innerSet(data, p, false, fwd.Key.Dst[:n], fwd.Key.DPort) // inner dst: real -> VIP
	innerSet(data, p, true, fwd.Key.Src[:n], fwd.Key.SPort)  // inner src: (local ->) client
	icmpFinish(data, p)
	setMACs(data, &fwd.MAC, &w.macs[svc.ClientPort])
	w.countOut(r.ID, f.Len)
	w.send(f, svc.ClientPort, out)
}

// innerSet rewrites the embedded packet's source (src true) or destination
// address and port, fixing the embedded IPv4 header checksum. The embedded
// L4 checksum is left alone: an error carries only the first 8 bytes of
// the L4 header, which for TCP do not include it (as Linux IPVS).
func innerSet(data []byte, p *Packet, src bool, addr []byte, port uint16) {
	srcOff, dstOff, n := addrOffsets(p.Family)
	aoff, poff := dstOff, 2
	if src {
		aoff, poff = srcOff, 0
	}
	l3 := p.InnerL3Off
	at := data[l3+aoff : l3+aoff+n]
	if p.Family == lb.FamilyV4 {
		hc := binary.BigEndian.Uint16(data[l3+ipv4CsumOff:])
		binary.BigEndian.PutUint16(data[l3+ipv4CsumOff:], csumReplaceBytes(hc, at, addr))
	}
	copy(at, addr)
	if port != 0 && p.InnerL4Off+4 <= len(data) {
		binary.BigEndian.PutUint16(data[p.InnerL4Off+poff:], port)
	}
}

// icmpFinish recomputes the outer IPv4 header checksum and the ICMP
// checksum (with the IPv6 pseudo-header for ICMPv6).
func icmpFinish(data []byte, p *Packet) {
	end := p.L3Off + p.L3Len
	if end > len(data) {
		end = len(data)
	}
	msg := data[p.L4Off:end]
	msg[2], msg[3] = 0, 0
	if p.Family == lb.FamilyV4 {
		l3 := p.L3Off
		data[l3+ipv4CsumOff], data[l3+ipv4CsumOff+1] = 0, 0
		ihl := int(data[l3]&0x0f) * 4
		binary.BigEndian.PutUint16(data[l3+ipv4CsumOff:], csumFull(data[l3:l3+ihl]))
		binary.BigEndian.PutUint16(msg[2:], csumFull(msg))
		return
	}
	s := csumSum(0, data[p.L3Off+ipv6SrcOff:p.L3Off+ipv6SrcOff+32])
	s += uint32(len(msg)>>16) + uint32(len(msg)&0xffff) + protoICMPv6
	binary.BigEndian.PutUint16(msg[2:], ^csumFold(csumSum(s, msg)))
}

// fragment handles a non-first fragment.
func (w *Pipeline) fragment(f *driver.Frame, p *Packet, out *Output) {
	data := f.Data()
	fk := makeFragKey(p, data)
	if fe := w.frags.get(&fk, w.sec); fe != nil {
		e := w.table.Entry(fe.sess)
		if e.Flags&lb.EntryReverse != 0 {
			if fwd := w.table.Entry(e.Peer); fwd.RealID == fe.realID {
				w.ctr.c[CtrFragFollowed]++
				w.reply(f, p, fe.sess, e, out)
				return
			}
		} else if e.RealID == fe.realID && w.established(f, p, fe.sess, e, out) {
			w.ctr.c[CtrFragFollowed]++
			return
		}
	}
	if w.circulate(f, out) {
		return
	}
	// Nobody saw the first fragment: schedule on (src, dst, proto).
	snap := w.snap
	dst := p.Dst(data)
	for si := range snap.Services {
		svc := &snap.Services[si]
		if svc.Family != p.Family || string(svc.VIP[:len(dst)]) != string(dst) ||
			(svc.Proto != 0 && svc.Proto != p.Proto) {
			continue
		}
		var fl lb.Flow
		copy(fl.Src[:], p.Src(data))
		copy(fl.Dst[:], dst)
		fl.Family = p.Family
		fl.Hash = uint64(clientHash(fl.Src[:], uint16(p.Proto)))<<32 | uint64(clientHash(fl.Dst[:], 0))
		ri := svc.Sched.Stateless(&fl)
		if ri < 0 {
			break
		}
		r := &snap.Reals[svc.RealIdx[ri]]
		if r.Method == lb.MethodNAT || r.Method == lb.MethodFullNAT || !r.NextHop.OK {
			break
		}
		w.ctr.c[CtrFrag3Tuple]++
		w.forward(f, p, r, svc, 0, nil, 0, out)
		return
	}
	if snap.IsVIP(p.Family, dst) {
		w.drop(f, DropFragNoSession, out)
		return
	}
	w.slow(f, out)
}
