package lb

import (
	"encoding/binary"
	"math/bits"
)

// This file holds the hash of a session Key. The hash picks the two candidate
// buckets and the signature of a key in a SessionTable, so it runs once per
// packet: it must be fast, allocation-free and spread structured inputs (one
// VIP, sequential client addresses and ports) evenly.

// Hash seeds: fixed, so that every worker of a process (and every test run)
// agrees on a key's hash; the table needs nothing more than a good spread.
// They are wyhash's default secrets: odd, with mixed bit patterns.
const (
	hashS0 = 0xa0761d6478bd642f
	hashS1 = 0xe7037ed1a0b428db
	hashS2 = 0x8ebc6af09c88c6e3
	hashS3 = 0x589965cc75374cc3
	hashS4 = 0x1d8e4e27c47d124f
)

// mum multiplies a and b to 128 bits and folds the halves together: every
// output bit depends on every input bit of both (wyhash's mixer).
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// tail packs the last 8 bytes of a Key (ports, protocol, family) into one word,
// the same way on every platform; the padding bytes never take part.
func (k *Key) tail() uint64 {
	return uint64(k.SPort) | uint64(k.DPort)<<16 | uint64(k.Proto)<<32 | uint64(k.Family)<<40
}

// Hash returns a 64-bit hash of the key: wyhash-style, five 64-bit words
// mixed pairwise by 64×64→128-bit multiplies with a fixed seed. It allocates
// nothing and costs a few nanoseconds.
func (k *Key) Hash() uint64 {
	w0 := binary.LittleEndian.Uint64(k.Src[0:8])
	w1 := binary.LittleEndian.Uint64(k.Src[8:16])
	w2 := binary.LittleEndian.Uint64(k.Dst[0:8])
	w3 := binary.LittleEndian.Uint64(k.Dst[8:16])
	a := mum(w0^hashS0, w1^hashS1)
	b := mum(w2^hashS2, w3^hashS3)
	c := mum(k.tail()^hashS4, a^hashS1)
	return mum(b^hashS0, c^hashS2)
}

// Equal reports whether k and o are the same 5-tuple (padding ignored). It
// compares five whole words and branches once, for the lookup path.
func (k *Key) Equal(o *Key) bool {
	d := binary.LittleEndian.Uint64(k.Src[0:8]) ^ binary.LittleEndian.Uint64(o.Src[0:8])
	d |= binary.LittleEndian.Uint64(k.Src[8:16]) ^ binary.LittleEndian.Uint64(o.Src[8:16])
	d |= binary.LittleEndian.Uint64(k.Dst[0:8]) ^ binary.LittleEndian.Uint64(o.Dst[0:8])
	d |= binary.LittleEndian.Uint64(k.Dst[8:16]) ^ binary.LittleEndian.Uint64(o.Dst[8:16])
	d |= k.tail() ^ o.tail()
	return d == 0
}
