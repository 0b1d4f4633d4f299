package vethbench

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// XDP action codes.
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

// struct xdp_md offsets.
const (
	xdpMDData    = 0
	xdpMDDataEnd = 4
)

// etherTypeIPv4 is 0x0800 as a 16-bit load from packet memory reads it on
// this host.
var etherTypeIPv4 = int32(binary.NativeEndian.Uint16([]byte{0x08, 0x00}))

// swapTXInstructions is a bare reflector: swap the Ethernet addresses,
// XDP_TX. Frames shorter than an Ethernet header are passed.
func swapTXInstructions() asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, ethHdrLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R4, asm.R2, 0, asm.Word), // dst[0:4]
		asm.LoadMem(asm.R5, asm.R2, 4, asm.Half), // dst[4:6]
		asm.LoadMem(asm.R6, asm.R2, 6, asm.Word), // src[0:4]
		asm.LoadMem(asm.R7, asm.R2, 10, asm.Half),
		asm.StoreMem(asm.R2, 0, asm.R6, asm.Word),
		asm.StoreMem(asm.R2, 4, asm.R7, asm.Half),
		asm.StoreMem(asm.R2, 6, asm.R4, asm.Word),
		asm.StoreMem(asm.R2, 10, asm.R5, asm.Half),
		asm.Mov.Imm(asm.R0, xdpTX),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
}

// countDropInstructions counts IPv4/UDP frames in slot 0 of the per-CPU
// array whose fd is given, and drops them; everything else is passed.
func countDropInstructions(mapFD int) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, ethHdrLen+ipv4HdrLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, etherTypeIPv4, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethHdrLen+9, asm.Byte),
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
}

// xdpAttachment is a loaded XDP program attached through a bpf_link (so it
// goes away with the process even after SIGKILL).
type xdpAttachment struct {
	prog *ebpf.Program
	m    *ebpf.Map // counter map, or nil
	l    link.Link
}

func (a *xdpAttachment) Close() error {
	var errs []error
	if a.l != nil {
		errs = append(errs, a.l.Close())
		a.l = nil
	}
	if a.prog != nil {
		errs = append(errs, a.prog.Close())
		a.prog = nil
	}
	if a.m != nil {
		errs = append(errs, a.m.Close())
		a.m = nil
	}
	return errors.Join(errs...)
}

// attachXDP loads insns and attaches them in native mode to ifindex in ns.
func attachXDP(ns *Netns, ifindex int, name string, insns asm.Instructions, m *ebpf.Map) (*xdpAttachment, error) {
	a := &xdpAttachment{m: m}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("load XDP program %s: %w", name, err)
	}
	a.prog = prog
	err = ns.Do(func() error {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		a.l = l
		return err
	})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("attach XDP program %s (native mode) in %s: %w", name, ns.Name, err)
	}
	return a, nil
}

// attachSwapTX attaches the MAC-swapping XDP_TX reflector.
func attachSwapTX(ns *Netns, ifindex int) (*xdpAttachment, error) {
	return attachXDP(ns, ifindex, "gvsb_swap_tx", swapTXInstructions(), nil)
}

// attachCounter attaches the count-and-drop program; read it with count.
func attachCounter(ns *Netns, ifindex int) (*xdpAttachment, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "gvsb_rx", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("create counter map: %w", err)
	}
	return attachXDP(ns, ifindex, "gvsb_count", countDropInstructions(m.FD()), m)
}

// count sums the counter map over CPUs.
func (a *xdpAttachment) count() (uint64, error) {
	var per []uint64
	if err := a.m.Lookup(uint32(0), &per); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}
