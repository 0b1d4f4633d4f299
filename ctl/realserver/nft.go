package realserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nftTable is the name of the l3dsr table (family ip and/or ip6).
const nftTable = "gvsrs"

func nftFamily(is4 bool) nftables.TableFamily {
	if is4 {
		return nftables.TableFamilyIPv4
	}
	return nftables.TableFamilyIPv6
}

func nftFamilyName(a netip.Addr) string {
	if a.Is4() {
		return "ip"
	}
	return "ip6"
}

func (s *system) nft() (*nftables.Conn, error) {
	return nftables.New(nftables.WithNetNSFd(int(s.nsFd.Fd())))
}

// Header offsets and masks of the DSCP bits.
//
// IPv4: DSCP is the top 6 bits of byte 1 (TOS). The map is keyed by the
// TOS byte masked with 0xfc, i.e. DSCP<<2 (nft's bitwise expression of this
// library cannot shift). Clearing it is a 2-byte write at offset 0 (an
// aligned 16-bit word, so that the incremental IP header checksum update is
// right), as nft itself does for `ip dscp set`.
//
// IPv6: DSCP is bits 4..9 of the first 16-bit word (version 4 bits, traffic
// class 8 bits = DSCP 6 + ECN 2, flow label). The map is keyed by the word
// masked with 0x0fc0, i.e. DSCP<<6, big endian.
const (
	v4DaddrOff = 16
	v4CsumOff  = 10
	v6DaddrOff = 24
)

func nftDSCPKey(is4 bool, dscp uint8) []byte {
	if is4 {
		return []byte{dscp << 2}
	}
	return binary.BigEndian.AppendUint16(nil, uint16(dscp)<<6)
}

// nftRuleExprs builds, for family ip:
//
//	ip daddr RIP ip dscp != cs0 ip daddr set ip dscp map @dscp2vip ip dscp set cs0
//
// and the same for ip6. The daddr write fixes the IPv4 header checksum
// (csum_type inet at offset 10) and the L4 checksum (the pseudo-header flag:
// the kernel finds the TCP/UDP/ICMPv6 checksum itself, after any IPv6
// extension headers; it leaves UDPv4 packets without a checksum alone); the
// DSCP write fixes the IPv4 header checksum only.
//
// IPv6 has no header checksum, so nft emits the daddr write with csum_type
// none and only the pseudo-header flag — which this library cannot marshal
// (it drops the flags when the type is none). The same effect is had with
// csum_type inet and the checksum offset pointing into the daddr field
// itself: the kernel (nft_payload_set_eval) first patches that word, then
// updates the L4 checksum, then stores the whole new address over the
// patched word, so only the L4 update remains.
func nftRuleExprs(is4 bool, real netip.Addr, set *nftables.Set) []expr.Any {
	nh := expr.PayloadBaseNetworkHeader
	daddrOff, alen := uint32(v6DaddrOff), uint32(16)
	keyLen, keyOff := uint32(2), uint32(0)
	keyMask, clearMask := []byte{0x0f, 0xc0}, []byte{0xf0, 0x3f}
	// Checksum of the daddr write; of the DSCP write (v4 only).
	daddrCsumOff := uint32(v6DaddrOff)
	dscpCsumType, dscpCsumOff := expr.CsumTypeNone, uint32(0)
	if is4 {
		daddrOff, alen = v4DaddrOff, 4
		keyLen, keyOff = 1, 1
		keyMask = []byte{0xfc}
		clearMask = []byte{0xff, 0x03}
		daddrCsumOff = v4CsumOff
		dscpCsumType, dscpCsumOff = expr.CsumTypeInet, v4CsumOff
	}
	return []expr.Any{
		// ip daddr == RealAddr
		&expr.Payload{DestRegister: 1, Base: nh, Offset: daddrOff, Len: alen},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: real.AsSlice()},
		// DSCP != 0 (as a masked key)
		&expr.Payload{DestRegister: 1, Base: nh, Offset: keyOff, Len: keyLen},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: keyLen, Mask: keyMask, Xor: make([]byte, keyLen)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, keyLen)},
		// VIP = map[DSCP]; no entry: the rule does not match
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: set.Name, SetID: set.ID},
		// daddr = VIP, fixing checksums
		&expr.Payload{
			OperationType: expr.PayloadWrite, SourceRegister: 1, Base: nh, Offset: daddrOff, Len: alen,
			CsumType: expr.CsumTypeInet, CsumOffset: daddrCsumOff, CsumFlags: unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR,
		},
		// DSCP = 0 (ECN kept)
		&expr.Payload{DestRegister: 1, Base: nh, Offset: 0, Len: 2},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: clearMask, Xor: []byte{0, 0}},
		&expr.Payload{
			OperationType: expr.PayloadWrite, SourceRegister: 1, Base: nh, Offset: 0, Len: 2,
			CsumType: dscpCsumType, CsumOffset: dscpCsumOff,
		},
	}
}

// setupNft (re)creates the table of RealAddr's family atomically: one
// transaction adds the table (so that deleting it cannot fail), deletes it
// and adds it anew with the chain, the map and the rule.
func (s *system) setupNft(cfg *Config) error {
	is4 := cfg.RealAddr.Is4()
	c, err := s.nft()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: nftTable, Family: nftFamily(is4)}
	c.AddTable(t)
	c.DelTable(t)
	t = c.AddTable(&nftables.Table{Name: nftTable, Family: nftFamily(is4)})
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name:     "pre",
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRaw,
		Policy:   &policy,
	})
	keyType := nftables.TypeInteger // "integer" of the key's length
	keyType.Bytes = 1
	dataType := nftables.TypeIPAddr
	if !is4 {
		keyType.Bytes = 2
		dataType = nftables.TypeIP6Addr
	}
	set := &nftables.Set{
		Table:        t,
		Name:         "dscp2vip",
		Constant:     true,
		IsMap:        true,
		KeyType:      keyType,
		DataType:     dataType,
		KeyByteOrder: binaryutil.BigEndian,
	}
	var elems []nftables.SetElement
	for _, d := range slices.Sorted(mapKeys(cfg.DSCP)) {
		elems = append(elems, nftables.SetElement{Key: nftDSCPKey(is4, d), Val: cfg.DSCP[d].Unmap().AsSlice()})
	}
	if err := c.AddSet(set, elems); err != nil {
		return err
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: nftRuleExprs(is4, cfg.RealAddr, set)})
	if err := c.Flush(); err != nil {
		return err
	}
	return nil
}

// teardownNft deletes the table of the family if it exists.
func (s *system) teardownNft(is4 bool) (bool, error) {
	c, err := s.nft()
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftFamily(is4))
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("list tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == nftTable }) {
		return false, nil
	}
	c.DelTable(&nftables.Table{Name: nftTable, Family: nftFamily(is4)})
	if err := c.Flush(); err != nil {
		return false, err
	}
	return true, nil
}
