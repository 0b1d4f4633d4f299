package pipeline

import (
	"encoding/binary"

	"gvs/driver"
	"gvs/lb"
)

// This file is the rewrite stage: each forwarding method changes the frame in
// place and fixes checksums incrementally. Offsets come from the Packet the
// parser filled; after a rewrite they are stale, so each packet is rewritten
// once and then sent.

const (
	ipv4SrcOff  = 12
	ipv4DstOff  = 16
	ipv4CsumOff = 10
	ipv6SrcOff  = 8
	ipv6DstOff  = 24
)

func addrOffsets(family uint8) (src, dst, n int) {
	if family == lb.FamilyV4 {
		return ipv4SrcOff, ipv4DstOff, 4
	}
	return ipv6SrcOff, ipv6DstOff, 16
}

// l4CsumOff returns the offset of the L4 checksum that covers the
// pseudo-header, or -1 (ICMPv4, non-first fragments, other protocols).
func l4CsumOff(p *Packet) (off int, udp bool) {
	if p.Frag == FragMore {
		return -1, false
	}
	switch p.Proto {
	case protoTCP:
		return p.L4Off + 16, false
	case protoUDP:
		return p.L4Off + 6, true
	case protoICMPv6:
		return p.L4Off + 2, false
	}
	return -1, false
}

// hasPorts reports whether the packet's L4 header carries ports at L4Off.
func hasPorts(p *Packet) bool {
	return p.Frag != FragMore && (p.Proto == protoTCP || p.Proto == protoUDP)
}

// setAddr replaces the address at data[l3+aoff:] with addr and fixes the
// IPv4 header checksum and the L4 pseudo-header checksum.
func setAddr(data []byte, p *Packet, aoff int, addr []byte) {
	at := data[p.L3Off+aoff : p.L3Off+aoff+len(addr)]
	if string(at) == string(addr) {
		return
	}
	if off, udp := l4CsumOff(p); off >= 0 {
		updateL4Csum(data, off, at, addr, udp)
	}
	if p.Family == lb.FamilyV4 {
		hc := binary.BigEndian.Uint16(data[p.L3Off+ipv4CsumOff:])
		binary.BigEndian.PutUint16(data[p.L3Off+ipv4CsumOff:], csumReplaceBytes(hc, at, addr))
	}
	copy(at, addr)
}

// setPort replaces the 16-bit port at data[L4Off+poff] and fixes the L4
// checksum. Packets without ports are left alone.
func setPort(data []byte, p *Packet, poff int, port uint16) {
	if !hasPorts(p) {
		return
	}
	at := p.L4Off + poff
	old := binary.BigEndian.Uint16(data[at:])
	if old == port {
		return
	}
	if off, udp := l4CsumOff(p); off >= 0 {
		updateL4Port(data, off, old, port, udp)
	}
	binary.BigEndian.PutUint16(data[at:], port)
}

// setDst rewrites the destination address and, if port != 0, port.
func setDst(data []byte, p *Packet, addr []byte, port uint16) {
	_, dst, n := addrOffsets(p.Family)
	setAddr(data, p, dst, addr[:n])
	if port != 0 {
		setPort(data, p, 2, port)
	}
}

// setSrc rewrites the source address and, if port != 0, port.
func setSrc(data []byte, p *Packet, addr []byte, port uint16) {
	src, _, n := addrOffsets(p.Family)
	setAddr(data, p, src, addr[:n])
	if port != 0 {
		setPort(data, p, 0, port)
	}
}

// setDSCP sets the DSCP bits of the IPv4 TOS / IPv6 traffic class, keeping
// ECN, and fixes the IPv4 header checksum.
func setDSCP(data []byte, p *Packet, dscp uint8) {
	l3 := p.L3Off
	if p.Family == lb.FamilyV4 {
		oldWord := binary.BigEndian.Uint16(data[l3:])
		data[l3+1] = dscp<<2 | data[l3+1]&0x03
		newWord := binary.BigEndian.Uint16(data[l3:])
		hc := binary.BigEndian.Uint16(data[l3+ipv4CsumOff:])
		binary.BigEndian.PutUint16(data[l3+ipv4CsumOff:], csumReplace16(hc, oldWord, newWord))
		return
	}
	// Traffic class is bits 4..11 of the first word: 0xV TT Fl...
	tc := (data[l3]&0x0f)<<4 | data[l3+1]>>4
	tc = dscp<<2 | tc&0x03
	data[l3] = data[l3]&0xf0 | tc>>4
	data[l3+1] = data[l3+1]&0x0f | tc<<4
}

// setMACs writes the Ethernet destination and source.
func setMACs(data []byte, dst, src *[6]byte) {
	copy(data[0:6], dst[:])
	copy(data[6:12], src[:])
}

// encapsulate prepends an outer IPv4 (IPIP, protocol 4) or IPv6 (protocol
// 41) header from src to dst in front of the IP packet, keeping the L2
// header in front. It reports false if the headroom is short.
func encapsulate(f *driver.Frame, p *Packet, src, dst []byte) bool {
	hl := encapLen(p.Family)
	f.Len = p.L3Off + p.L3Len // drop Ethernet padding: the outer length covers only the inner packet
	if f.Prepend(hl) == nil {
		return false
	}
	data := f.Data()
	copy(data[:p.L3Off], data[hl:hl+p.L3Off]) // move the L2 header to the front
	o := data[p.L3Off : p.L3Off+hl]
	if p.Family == lb.FamilyV4 {
		inner := data[p.L3Off+hl:]
		o[0] = 0x45
		o[1] = inner[1] // keep the inner TOS (DSCP and ECN) visible to the network
		binary.BigEndian.PutUint16(o[2:], uint16(p.L3Len+hl))
		binary.BigEndian.PutUint16(o[4:], 0)
		binary.BigEndian.PutUint16(o[6:], binary.BigEndian.Uint16(inner[6:])&0x4000) // copy DF
		o[8] = 64
		o[9] = 4
		o[10], o[11] = 0, 0
		copy(o[12:16], src[:4])
		copy(o[16:20], dst[:4])
		binary.BigEndian.PutUint16(o[10:], csumFull(o))
		return true
	}
	inner := data[p.L3Off+hl:]
	o[0] = 0x60 | inner[0]&0x0f // keep the traffic class
	o[1] = inner[1] & 0xf0
	o[2], o[3] = 0, 0
	binary.BigEndian.PutUint16(o[4:], uint16(p.L3Len))
	o[6] = 41
	o[7] = 64
	copy(o[8:24], src[:16])
	copy(o[24:40], dst[:16])
	return true
}

// forward rewrites a client-to-VIP packet (or an ICMP error about such a
// flow) for its real, by method, and queues it on the real's port. laddr and
// lport are the fullnat source. A packet that no longer fits the MTU after
// encapsulation turns into an ICMP "fragmentation needed" / "packet too
// big" for its sender, as IPVS does, so path MTU discovery works.
func (w *Pipeline) forward(f *driver.Frame, p *Packet, r *lb.RealEntry, svc *lb.SvcEntry, dport uint16, laddr []byte, lport uint16, out *Output) {
	w.countIn(r.ID, f.Len)
	data := f.Data()
	switch r.Method {
	case lb.MethodDR:
		// MAC rewrite only: the real owns the VIP on a loopback.
	case lb.MethodNAT:
		setDst(data, p, r.Addr[:], realPort(r, dport))
	case lb.MethodFullNAT:
		setDst(data, p, r.Addr[:], realPort(r, dport))
		setSrc(data, p, laddr, lport)
	case lb.MethodL3DSR:
		setDst(data, p, r.Addr[:], 0)
		setDSCP(data, p, svc.DSCP)
	case lb.MethodTunnel:
		mtu := w.mtu[r.NextHop.Port]
		if p.L3Len+encapLen(p.Family) > mtu {
			if w.tooBig(f, p, mtu-encapLen(p.Family)) {
				w.ctr.drop[DropTooBig]++ // the packet itself is not forwarded
				w.send(f, f.Port, out)
				return
			}
			w.drop(f, DropTooBig, out)
			return
		}
		if len(svc.LocalAddrs) == 0 || !encapsulate(f, p, svc.LocalAddrs[0][:], r.Addr[:]) {
			w.drop(f, DropTooBig, out)
			return
		}
		data = f.Data()
	}
	setMACs(data, &r.NextHop.MAC, &w.macs[r.NextHop.Port])
	w.send(f, r.NextHop.Port, out)
}

func encapLen(family uint8) int {
	if family == lb.FamilyV4 {
		return ipv4MinHeaderLen
	}
	return ipv6HeaderLen
}

// realPort is the destination port towards a real: its own, or the
// packet's (port-0 services, reals without a port).
func realPort(r *lb.RealEntry, dport uint16) uint16 {
	if r.Port != 0 {
		return r.Port
	}
	return dport
}
