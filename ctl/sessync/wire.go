package sessync

import (
	"encoding/binary"
	"errors"

	"gvs/lb"
)

// The wire format: UDP datagrams of a 24-byte header and fixed-size
// records, big endian.
//
//	header:  magic "GVSY" | version 1 | type | count u16 | boot u64 | seq u64
//	record:  family | proto | sport u16 | dport u16 | real port u16 |
//	         local port u16 | local addr index | state | kind | 0 |
//	         mac [6] | client [16] | vip [16] | real [16]          (68 bytes)
//
// boot is a random number a sender picks when it starts: a new boot
// restarts the sequence. seq numbers the record datagrams of a boot (live
// and resync ones alike); a receiver that sees one missing asks for a full
// resync, and so does one that hears a boot for the first time, unless
// what it hears is already a resync.

const (
	magic      = "GVSY"
	version    = 1
	headerLen  = 24
	recordLen  = 68
	maxPayload = 1452 // fits the MTU of 1500 over IPv6 and IPv4
	// MaxRecords is how many records one datagram carries.
	MaxRecords = (maxPayload - headerLen) / recordLen
)

// Datagram types.
const (
	typeRecords = 1 // records as they happen
	typeResync  = 2 // please send a full resync
	typeDump    = 3 // records of a full resync (same stream, same sequence)
)

type header struct {
	typ   uint8
	count int
	boot  uint64
	seq   uint64
}

var errBadDatagram = errors.New("not a session sync datagram")

func putHeader(b []byte, h header) {
	copy(b[0:4], magic)
	b[4] = version
	b[5] = h.typ
	binary.BigEndian.PutUint16(b[6:], uint16(h.count))
	binary.BigEndian.PutUint64(b[8:], h.boot)
	binary.BigEndian.PutUint64(b[16:], h.seq)
}

func parseHeader(b []byte) (header, error) {
	if len(b) < headerLen || string(b[0:4]) != magic || b[4] != version {
		return header{}, errBadDatagram
	}
	h := header{typ: b[5], count: int(binary.BigEndian.Uint16(b[6:])), boot: binary.BigEndian.Uint64(b[8:]), seq: binary.BigEndian.Uint64(b[16:])}
	if (h.typ == typeRecords || h.typ == typeDump) && (h.count > MaxRecords || len(b) < headerLen+h.count*recordLen) {
		return header{}, errBadDatagram
	}
	return h, nil
}

func putRecord(b []byte, r *lb.SyncRecord) {
	b[0], b[1] = r.Key.Family, r.Key.Proto
	binary.BigEndian.PutUint16(b[2:], r.Key.SPort)
	binary.BigEndian.PutUint16(b[4:], r.Key.DPort)
	binary.BigEndian.PutUint16(b[6:], r.RealPort)
	binary.BigEndian.PutUint16(b[8:], r.LPort)
	b[10], b[11], b[12], b[13] = r.LAddr, r.State, r.Kind, 0
	copy(b[14:20], r.MAC[:])
	copy(b[20:36], r.Key.Src[:])
	copy(b[36:52], r.Key.Dst[:])
	copy(b[52:68], r.Real[:])
}

// parseRecord decodes a record; it reports false for values no gvs sends.
func parseRecord(b []byte, r *lb.SyncRecord) bool {
	*r = lb.SyncRecord{}
	r.Key.Family, r.Key.Proto = b[0], b[1]
	r.Key.SPort = binary.BigEndian.Uint16(b[2:])
	r.Key.DPort = binary.BigEndian.Uint16(b[4:])
	r.RealPort = binary.BigEndian.Uint16(b[6:])
	r.LPort = binary.BigEndian.Uint16(b[8:])
	r.LAddr, r.State, r.Kind = b[10], b[11], b[12]
	copy(r.MAC[:], b[14:20])
	copy(r.Key.Src[:], b[20:36])
	copy(r.Key.Dst[:], b[36:52])
	copy(r.Real[:], b[52:68])
	if r.Key.Family != lb.FamilyV4 && r.Key.Family != lb.FamilyV6 {
		return false
	}
	if r.Kind < lb.SyncNew || r.Kind > lb.SyncClosed || r.State > lb.StateICMP {
		return false
	}
	if r.Key.Family == lb.FamilyV4 {
		// IPv4 lives in the first four bytes; the rest must be zero for
		// the key to match the table's.
		for _, a := range [][]byte{r.Key.Src[4:], r.Key.Dst[4:], r.Real[4:]} {
			for _, x := range a {
				if x != 0 {
					return false
				}
			}
		}
	}
	return true
}
