package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// This file keeps the nftables table through which the host itself stays
// away from the virtual addresses a master owns:
//
//   - Accept_Mode False (RFC 5798 §6.4.3: a master that is not the owner
//     "MUST NOT accept packets addressed to the IPvX address(es)"): every
//     packet to the address is dropped, except IPv6 neighbour
//     solicitations and advertisements (the address must still resolve).
//   - Guard (the daemon's ports are AF_PACKET, whose kernel also sees
//     every packet gvs forwards): the kernel keeps only ICMP to the
//     addresses; TCP, UDP and the rest are gvs's, and the kernel, which
//     has the address but no socket behind it, would otherwise answer
//     them with resets and port unreachables.
//
// Both are stateless drops in a prerouting chain at raw priority, in one
// inet table, written when the Manager starts and when its configuration
// changes (replaced atomically), removed when it stops. They stand in
// every state: a backup does not have the addresses, so they change nothing
// there (a host that forwards packets to its backup's VIPs is not a
// supported setup), and a takeover never waits for netfilter. gvs's
// dataplane is not affected: AF_XDP takes its packets before the kernel,
// AF_PACKET receives its copy before netfilter.

// NftTable is the name of gvs's VRRP table (family inet).
const NftTable = "gvsvrrp"

// guardRule is one virtual address and how the host treats it.
type guardRule struct {
	addr   netip.Addr
	accept bool // the host may accept it (Accept_Mode, or the owner)
}

func ruleDaddr(a netip.Addr) []expr.Any {
	nf, off, l := byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
	if a.Is6() {
		nf, off, l = unix.NFPROTO_IPV6, 24, 16
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nf}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
	}
}

func l4proto(op expr.CmpOp, p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{p}},
	}
}

var (
	drop   = &expr.Verdict{Kind: expr.VerdictDrop}
	accept = &expr.Verdict{Kind: expr.VerdictAccept}
)

// guardExprs returns the rules of one address.
func guardExprs(r guardRule, guard bool) [][]expr.Any {
	icmp := byte(unix.IPPROTO_ICMP)
	if r.addr.Is6() {
		icmp = unix.IPPROTO_ICMPV6
	}
	cat := func(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }
	switch {
	case !r.accept && r.addr.Is6():
		var out [][]expr.Any
		for _, typ := range []byte{135, 136} { // neighbour solicitation, advertisement
			out = append(out, cat(ruleDaddr(r.addr), l4proto(expr.CmpOpEq, icmp), []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
				accept,
			}))
		}
		return append(out, cat(ruleDaddr(r.addr), []expr.Any{drop}))
	case !r.accept:
		return [][]expr.Any{cat(ruleDaddr(r.addr), []expr.Any{drop})}
	case guard:
		return [][]expr.Any{cat(ruleDaddr(r.addr), l4proto(expr.CmpOpNeq, icmp), []expr.Any{drop})}
	}
	return nil
}

// setGuard replaces the table's rules with those for rules (no rules: the
// table is deleted).
func setGuard(rules []guardRule, guard bool) error {
	var exprs [][]expr.Any
	for _, r := range rules {
		exprs = append(exprs, guardExprs(r, guard)...)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: NftTable, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	if len(exprs) > 0 {
		t = c.AddTable(&nftables.Table{Name: NftTable, Family: nftables.TableFamilyINet})
		policy := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{
			Name: "vips", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &policy,
		})
		for _, e := range exprs {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table inet %s: %w", NftTable, err)
	}
	return nil
}

// delGuard deletes the table if it exists (start-up clean-up of a gvsd that
// died without it).
func delGuard() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("nftables: list tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == NftTable }) {
		return nil
	}
	c.DelTable(&nftables.Table{Name: NftTable, Family: nftables.TableFamilyINet})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: delete table inet %s: %w", NftTable, err)
	}
	return nil
}
