package realserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernel tunnel devices made by the kernel path (local RealAddr, any
// remote): one per family.
const (
	tunDev4 = "gvsrs-ip4"
	tunDev6 = "gvsrs-ip6"
)

// The BPF path: a cls_bpf filter per family on the clsact ingress hook of
// Config.Interface, told apart from other filters by priority and name.
//
// Why a classic netlink filter and not tcx (which 6.6+ kernels have, and
// which would be cleaned up with its bpf_link): the decapsulation must
// outlive the gvs-realserver process, and a tcx link lives only as long as
// its file descriptor unless pinned in a bpffs — not mounted by default
// here, and private to a mount namespace (ip netns exec remounts /sys). The
// netlink filter belongs to the interface and stays until deleted.
const (
	decapPrio4 = 0xc004
	decapPrio6 = 0xc006
	decapName4 = "gvsrs-decap4"
	decapName6 = "gvsrs-decap6"
)

func tunDev(is4 bool) string {
	if is4 {
		return tunDev4
	}
	return tunDev6
}

func decapFilterID(is4 bool) (uint16, string) {
	if is4 {
		return decapPrio4, decapName4
	}
	return decapPrio6, decapName6
}

// setupTunnel sets up decapsulation of tunnel packets to cfg.RealAddr, with
// a kernel tunnel device if cfg.Decap allows and the kernel has the device
// type, otherwise with the BPF program.
func (s *system) setupTunnel(cfg *Config, st *state) error {
	is4 := cfg.RealAddr.Is4()
	if cfg.Decap != DecapBPF {
		err := s.setupKernelTunnel(cfg, st)
		if err == nil {
			// A BPF filter of an earlier Setup would decapsulate first.
			if _, derr := s.delDecapFilter(cfg.Interface, is4); derr != nil {
				return derr
			}
			cfg.logf("tunnel: decapsulating with the kernel %s device %s (local %v)", map[bool]string{true: "ipip", false: "ip6tnl"}[is4], tunDev(is4), cfg.RealAddr)
			return nil
		}
		if cfg.Decap == DecapKernel || !errors.Is(err, errNoTunnelDevice) {
			return err
		}
		cfg.logf("tunnel: %v; using the tc-BPF decapsulation instead", err)
	}
	if err := s.setupDecapFilter(cfg, st); err != nil {
		return err
	}
	// A kernel device of an earlier Setup (Decap kernel) would now be unused.
	if err := s.delTunnelDevice(is4, st); err != nil {
		return err
	}
	cfg.logf("tunnel: decapsulating with tc cls_bpf %s (direct-action, clsact ingress of %s) for packets to %v", decapNameFor(is4), cfg.Interface, cfg.RealAddr)
	return nil
}

func decapNameFor(is4 bool) string { _, n := decapFilterID(is4); return n }

// teardownTunnel removes the tunnel device and the BPF filter of
// RealAddr's family, and the clsact qdisc if Setup created it and nothing
// else uses it.
func (s *system) teardownTunnel(cfg *Config, st *state) error {
	is4 := cfg.RealAddr.Is4()
	var errs []error
	if err := s.delTunnelDevice(is4, st); err != nil {
		errs = append(errs, err)
	}
	removed, err := s.delDecapFilter(cfg.Interface, is4)
	if err != nil {
		errs = append(errs, err)
	} else if removed {
		cfg.logf("tunnel: removed the tc filter %s from %s", decapNameFor(is4), cfg.Interface)
	}
	if err := s.delQdiscIfOurs(cfg, st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var errNoTunnelDevice = errors.New("the kernel has no tunnel device type")

// setupKernelTunnel creates (or keeps) the ipip / ip6tnl device with local
// RealAddr, up. It returns an error wrapping errNoTunnelDevice if the
// kernel does not know the device type (no ipip / ip6_tunnel module).
func (s *system) setupKernelTunnel(cfg *Config, st *state) error {
	is4 := cfg.RealAddr.Is4()
	name := tunDev(is4)
	local := cfg.RealAddr.AsSlice()
	var link netlink.Link
	if is4 {
		link = &netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: name}, Local: local}
	} else {
		// Proto 0: any inner protocol (IPv6 and IPv4 in IPv6).
		link = &netlink.Ip6tnl{LinkAttrs: netlink.LinkAttrs{Name: name}, Local: local}
	}
	if old, err := s.nl.LinkByName(name); err == nil {
		// Replace it: its local address may be another one.
		if err := s.nl.LinkDel(old); err != nil {
			return fmt.Errorf("replace %s: %w", name, err)
		}
	}
	if err := s.nl.LinkAdd(link); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EAFNOSUPPORT) {
			return fmt.Errorf("%w (%s: %v)", errNoTunnelDevice, link.Type(), err)
		}
		return fmt.Errorf("create %s device %s: %w", link.Type(), name, err)
	}
	st.recordString(&st.Links, name)
	l, err := s.nl.LinkByName(name)
	if err == nil {
		err = s.nl.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	if is4 {
		// The inner source (the client) is not routed via the tunnel
		// device: strict reverse-path filtering would drop it. Loose mode
		// on the device (the effective mode is the max of all and dev).
		// The device is ours, so its sysctl goes with it: not recorded.
		if err := writeSysctl("net/ipv4/conf/"+name+"/rp_filter", "2"); err != nil {
			return err
		}
	}
	return nil
}

func (s *system) delTunnelDevice(is4 bool, st *state) error {
	name := tunDev(is4)
	l, err := s.nl.LinkByName(name)
	if err != nil {
		st.forgetString(&st.Links, name)
		return nil // not there
	}
	if err := s.nl.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	st.forgetString(&st.Links, name)
	return nil
}

// setupDecapFilter loads the decapsulation program for RealAddr and
// attaches (replaces) it as the family's filter on the clsact ingress of the
// interface, creating the clsact qdisc if needed.
func (s *system) setupDecapFilter(cfg *Config, st *state) error {
	link, err := s.nl.LinkByName(cfg.Interface)
	if err != nil {
		return fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	created, err := s.ensureClsact(link)
	if err != nil {
		return err
	}
	if created {
		st.recordString(&st.Qdiscs, cfg.Interface)
		cfg.logf("tunnel: added a clsact qdisc to %s", cfg.Interface)
	}
	prog, err := loadDecapProgram(cfg.RealAddr)
	if err != nil {
		return err
	}
	defer prog.Close() // the filter keeps its own reference
	is4 := cfg.RealAddr.Is4()
	prio, name := decapFilterID(is4)
	proto := uint16(unix.ETH_P_IPV6)
	if is4 {
		proto = unix.ETH_P_IP
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: link.Attrs().Index,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    netlink.MakeHandle(0, 1),
			Priority:  prio,
			Protocol:  proto,
		},
		Fd:           prog.FD(),
		Name:         name,
		DirectAction: true,
	}
	if err := s.nl.FilterReplace(f); err != nil {
		return fmt.Errorf("attach %s to %s ingress: %w", name, cfg.Interface, err)
	}
	return nil
}

func (s *system) ensureClsact(link netlink.Link) (bool, error) {
	qs, err := s.nl.QdiscList(link)
	if err != nil {
		return false, fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			return false, nil
		}
	}
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: link.Attrs().Index,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := s.nl.QdiscAdd(q); err != nil {
		return false, fmt.Errorf("add clsact qdisc: %w", err)
	}
	return true, nil
}

// delDecapFilter removes the family's decapsulation filter from the
// interface's ingress; false if there was none (or no interface).
func (s *system) delDecapFilter(ifname string, is4 bool) (bool, error) {
	link, err := s.nl.LinkByName(ifname)
	if err != nil {
		return false, nil // interface gone: so is the filter
	}
	fs, err := s.nl.FilterList(link, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return false, nil // no clsact qdisc
		}
		return false, fmt.Errorf("list filters of %s: %w", ifname, err)
	}
	prio, name := decapFilterID(is4)
	removed := false
	for _, f := range fs {
		bf, ok := f.(*netlink.BpfFilter)
		if !ok || bf.Priority != prio || !strings.HasPrefix(bf.Name, name) {
			continue
		}
		if err := s.nl.FilterDel(bf); err != nil && !errors.Is(err, unix.ENOENT) {
			return removed, fmt.Errorf("delete filter %s from %s: %w", name, ifname, err)
		}
		removed = true
	}
	return removed, nil
}

// delQdiscIfOurs deletes the clsact qdisc of the interface if Setup created
// it and no filter is left on it.
func (s *system) delQdiscIfOurs(cfg *Config, st *state) error {
	if !st.exists || !slices.Contains(st.Qdiscs, cfg.Interface) {
		return nil
	}
	link, err := s.nl.LinkByName(cfg.Interface)
	if err != nil {
		st.forgetString(&st.Qdiscs, cfg.Interface)
		return nil
	}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := s.nl.FilterList(link, parent)
		if err != nil {
			break // no clsact any more
		}
		if len(fs) > 0 {
			cfg.logf("tunnel: clsact qdisc of %s kept: other filters use it", cfg.Interface)
			return nil
		}
	}
	qs, err := s.nl.QdiscList(link)
	if err != nil {
		return fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			if err := s.nl.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("delete clsact qdisc of %s: %w", cfg.Interface, err)
			}
			cfg.logf("tunnel: removed the clsact qdisc of %s", cfg.Interface)
		}
	}
	st.forgetString(&st.Qdiscs, cfg.Interface)
	return nil
}

// BPF constants (linux/bpf.h, linux/pkt_cls.h, linux/if_ether.h).
const (
	skbData          = 76 // offsetof(struct __sk_buff, data)
	skbDataEnd       = 80 // offsetof(struct __sk_buff, data_end)
	ethHdrLen        = 14
	tcActUnspec      = -1
	tcActOK          = 0
	tcActShot        = 2
	adjRoomMAC       = 1
	fAdjRoomFixedGSO = 1 << 0
	fAdjRoomDecapV4  = 1 << 7
	fAdjRoomDecapV6  = 1 << 8
	ipprotoIPIP      = 4
	ipprotoIPv6      = 41
)

// wire16 is the value a BPF 16-bit load gives for the network-order v.
func wire16(v uint16) int32 {
	return int32(binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v)))
}

// wire32 is the value a BPF 32-bit load gives for the 4 bytes b.
func wire32(b []byte) int32 { return int32(binary.NativeEndian.Uint32(b)) }

// decapInstructions is the tc direct-action program that decapsulates
// tunnel packets to real (an outer IPv4 or IPv6 header — not fragmented,
// IPv6 without extension headers — with protocol 4 (IPIP) or 41 (IPv6)):
//
//	if eth.type != outer family || outer daddr != real: TC_ACT_UNSPEC (next filter)
//	bpf_skb_adjust_room(skb, -outer header length, BPF_ADJ_ROOM_MAC,
//	    FIXED_GSO | DECAP_L3_IPV4/6 when the inner family differs)
//	eth.type = inner family; TC_ACT_OK (up the stack as the inner packet)
//
// A failed adjust_room drops the packet (TC_ACT_SHOT). real is baked into
// the program as immediates: no maps, nothing to pin.
func decapInstructions(real netip.Addr) asm.Instructions {
	is4 := real.Is4()
	ethType, need := uint16(unix.ETH_P_IPV6), int32(ethHdrLen+40)
	if is4 {
		ethType, need = unix.ETH_P_IP, ethHdrLen+20
	}
	a := real.AsSlice()
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // r6 = skb
		asm.LoadMem(asm.R2, asm.R6, skbData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, skbDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, ethHdrLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, wire16(ethType), "pass"),
		// The outer header must be in the linear part; pull it if not.
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, need),
		asm.JLE.Reg(asm.R4, asm.R3, "linear"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, need),
		asm.FnSkbPullData.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R2, asm.R6, skbData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, skbDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, need),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
	}
	if is4 {
		ins = append(ins,
			// version 4, r7 = header length (IHL*4) >= 20
			asm.LoadMem(asm.R5, asm.R2, ethHdrLen, asm.Byte).WithSymbol("linear"),
			asm.Mov.Reg(asm.R7, asm.R5),
			asm.RSh.Imm(asm.R5, 4),
			asm.JNE.Imm(asm.R5, 4, "pass"),
			asm.And.Imm(asm.R7, 0x0f),
			asm.LSh.Imm(asm.R7, 2),
			asm.JLT.Imm(asm.R7, 20, "pass"),
			// not a fragment (MF or fragment offset set): those are
			// left to the stack, which cannot reassemble-and-decap here
			asm.LoadMem(asm.R5, asm.R2, ethHdrLen+6, asm.Half),
			asm.And.Imm(asm.R5, wire16(0x3fff)),
			asm.JNE.Imm(asm.R5, 0, "pass"),
			// daddr == real
			asm.LoadMem(asm.R5, asm.R2, ethHdrLen+16, asm.Word),
			asm.JNE.Imm32(asm.R5, wire32(a), "pass"),
			// r5 = protocol
			asm.LoadMem(asm.R5, asm.R2, ethHdrLen+9, asm.Byte),
		)
	} else {
		ins = append(ins,
			asm.LoadMem(asm.R5, asm.R2, ethHdrLen, asm.Byte).WithSymbol("linear"),
			asm.RSh.Imm(asm.R5, 4),
			asm.JNE.Imm(asm.R5, 6, "pass"),
		)
		for i := 0; i < 16; i += 4 { // daddr == real
			ins = append(ins,
				asm.LoadMem(asm.R5, asm.R2, int16(ethHdrLen+24+i), asm.Word),
				asm.JNE.Imm32(asm.R5, wire32(a[i:i+4]), "pass"),
			)
		}
		ins = append(ins,
			asm.Mov.Imm(asm.R7, 40),
			// r5 = next header (extension headers are not skipped)
			asm.LoadMem(asm.R5, asm.R2, ethHdrLen+6, asm.Byte),
		)
	}
	flags4, flags6 := int32(fAdjRoomFixedGSO), int32(fAdjRoomFixedGSO)
	if is4 {
		flags6 |= fAdjRoomDecapV6
	} else {
		flags4 |= fAdjRoomDecapV4
	}
	ins = append(ins,
		asm.JEq.Imm(asm.R5, ipprotoIPIP, "inner4"),
		asm.JEq.Imm(asm.R5, ipprotoIPv6, "inner6"),
		asm.Ja.Label("pass"),

		asm.Mov.Imm(asm.R8, flags4).WithSymbol("inner4"),
		asm.Mov.Imm(asm.R9, wire16(unix.ETH_P_IP)),
		asm.Ja.Label("decap"),

		asm.Mov.Imm(asm.R8, flags6).WithSymbol("inner6"),
		asm.Mov.Imm(asm.R9, wire16(unix.ETH_P_IPV6)),

		// bpf_skb_adjust_room(skb, -r7, BPF_ADJ_ROOM_MAC, r8)
		asm.Mov.Reg(asm.R1, asm.R6).WithSymbol("decap"),
		asm.Mov.Imm(asm.R2, 0),
		asm.Sub.Reg(asm.R2, asm.R7),
		asm.Mov.Imm(asm.R3, adjRoomMAC),
		asm.Mov.Reg(asm.R4, asm.R8),
		asm.FnSkbAdjustRoom.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		// eth.type = inner family: bpf_skb_store_bytes(skb, 12, &r9, 2, 0)
		asm.StoreMem(asm.RFP, -8, asm.R9, asm.Half),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 12),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -8),
		asm.Mov.Imm(asm.R4, 2),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnSkbStoreBytes.Call(),
		asm.Mov.Imm(asm.R0, tcActOK),
		asm.Return(),

		asm.Mov.Imm(asm.R0, tcActUnspec).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActShot).WithSymbol("drop"),
		asm.Return(),
	)
	return ins
}

// loadDecapProgram loads the decapsulation program for real into the
// kernel.
func loadDecapProgram(real netip.Addr) (*ebpf.Program, error) {
	_, name := decapFilterID(real.Is4())
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         strings.ReplaceAll(name, "-", "_"),
		Type:         ebpf.SchedCLS,
		Instructions: decapInstructions(real),
		License:      "Dual MIT/GPL",
	})
	if err != nil {
		return nil, fmt.Errorf("load the decapsulation program: %w", err)
	}
	return prog, nil
}
