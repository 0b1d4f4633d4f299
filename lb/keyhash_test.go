package lb

import (
	"math/bits"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// keyV4 builds a TCP IPv4 key.
func keyV4(src, dst [4]byte, sport, dport uint16) Key {
	k := Key{SPort: sport, DPort: dport, Proto: 6, Family: FamilyV4}
	copy(k.Src[:], src[:])
	copy(k.Dst[:], dst[:])
	return k
}

// keyV6 builds a TCP IPv6 key.
func keyV6(src, dst [16]byte, sport, dport uint16) Key {
	return Key{Src: src, Dst: dst, SPort: sport, DPort: dport, Proto: 6, Family: FamilyV6}
}

// randKey returns a random key, v4 or v6.
func randKey(r *rand.Rand) Key {
	var k Key
	if r.IntN(2) == 0 {
		k.Family = FamilyV4
		for i := range 4 {
			k.Src[i], k.Dst[i] = byte(r.Uint32()), byte(r.Uint32())
		}
	} else {
		k.Family = FamilyV6
		for i := range 16 {
			k.Src[i], k.Dst[i] = byte(r.Uint32()), byte(r.Uint32())
		}
	}
	k.SPort, k.DPort = uint16(r.Uint32()), uint16(r.Uint32())
	k.Proto = [...]uint8{6, 17}[r.IntN(2)]
	return k
}

// oneByteVariants returns k with each of its 38 meaningful bytes changed in
// turn (padding excluded), each variant different from k.
func oneByteVariants(k Key) []Key {
	var vs []Key
	for i := range 16 {
		v := k
		v.Src[i] ^= 0x01
		vs = append(vs, v)
		v = k
		v.Dst[i] ^= 0x80
		vs = append(vs, v)
	}
	for _, f := range []func(*Key){
		func(v *Key) { v.SPort ^= 0x0001 },
		func(v *Key) { v.SPort ^= 0x0100 },
		func(v *Key) { v.DPort ^= 0x0001 },
		func(v *Key) { v.DPort ^= 0x8000 },
		func(v *Key) { v.Proto ^= 0x17 }, // 6 <-> 17
		func(v *Key) { v.Family ^= FamilyV4 ^ FamilyV6 },
	} {
		v := k
		f(&v)
		vs = append(vs, v)
	}
	return vs
}

func TestKeyHashOneByteDifferences(t *testing.T) {
	base4 := keyV4([4]byte{198, 18, 0, 1}, [4]byte{198, 19, 0, 1}, 40000, 80)
	base6 := keyV6([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}, [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2}, 40000, 443)
	for _, base := range []Key{base4, base6} {
		seen := map[uint64]Key{base.Hash(): base}
		for _, v := range oneByteVariants(base) {
			if v.Equal(&base) || base.Equal(&v) {
				t.Fatalf("Equal(%v, %v) = true", base, v)
			}
			h := v.Hash()
			if o, dup := seen[h]; dup {
				t.Fatalf("hash collision %#x between %v and %v", h, o, v)
			}
			seen[h] = v
		}
	}
}

func TestKeyHashIgnoresPadding(t *testing.T) {
	a := keyV4([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1, 2)
	b := a
	raw := (*[40]byte)(unsafe.Pointer(&b)) // the padding has no name to set it by
	raw[38], raw[39] = 0xff, 0xee
	if *(*[40]byte)(unsafe.Pointer(&a)) == *raw {
		t.Fatal("padding not set")
	}
	if a.Hash() != b.Hash() || !a.Equal(&b) {
		t.Fatal("padding bytes change Hash or Equal")
	}
	c := a
	if !a.Equal(&c) || a.Hash() != c.Hash() {
		t.Fatal("Hash or Equal not deterministic")
	}
}

// TestKeyHashAvalanche flips every meaningful input bit of random keys and
// checks that each output bit flips about half of the time.
func TestKeyHashAvalanche(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const samples = 1000
	var flips [38 * 8][64]int
	for range samples {
		k := randKey(r)
		h := k.Hash()
		for bit := range 38 * 8 {
			v := k
			flipBit(&v, bit)
			d := h ^ v.Hash()
			for d != 0 {
				flips[bit][bits.TrailingZeros64(d)]++
				d &= d - 1
			}
		}
	}
	for in := range flips {
		for out, n := range flips[in] {
			// 6 standard deviations of a fair coin over 1000 samples is ±95.
			if n < samples/2-95 || n > samples/2+95 {
				t.Fatalf("input bit %d flips output bit %d in %d/%d samples", in, out, n, samples)
			}
		}
	}
}

// flipBit flips bit i of the 38 meaningful bytes of k (Src, Dst, SPort,
// DPort, Proto, Family).
func flipBit(k *Key, i int) {
	by, m := i/8, byte(1)<<(i%8)
	switch {
	case by < 16:
		k.Src[by] ^= m
	case by < 32:
		k.Dst[by-16] ^= m
	case by < 34:
		k.SPort ^= uint16(m) << (8 * (by - 32))
	case by < 36:
		k.DPort ^= uint16(m) << (8 * (by - 34))
	case by == 36:
		k.Proto ^= m
	default:
		k.Family ^= m
	}
}

// TestKeyHashSpread checks that structured keys (one VIP, sequential client
// addresses or ports) spread evenly over the bits SessionTable uses for its
// buckets (low and high 32 bits) and signatures.
func TestKeyHashSpread(t *testing.T) {
	const n, bins = 1 << 17, 1024
	gens := map[string]func(i int) Key{
		"v4-seq-addr": func(i int) Key {
			return keyV4([4]byte{198, byte(i >> 16), byte(i >> 8), byte(i)}, [4]byte{198, 19, 0, 1}, 40000, 80)
		},
		"v4-seq-port": func(i int) Key {
			return keyV4([4]byte{198, 18, 0, byte(i >> 16)}, [4]byte{198, 19, 0, 1}, uint16(i), 80)
		},
		"v6-seq-addr": func(i int) Key {
			return keyV6([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)},
				[16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}, 40000, 443)
		},
	}
	for name, gen := range gens {
		var lo, hi, sig [bins]int
		for i := range n {
			k := gen(i)
			h := k.Hash()
			lo[h%bins]++
			hi[(h>>32)%bins]++
			sig[((h*0x9e3779b97f4a7c15)>>49)%bins]++ // as SessionTable.locate
		}
		for part, c := range map[string]*[bins]int{"low": &lo, "high": &hi, "sig": &sig} {
			// Chi-square with 1023 degrees of freedom: mean 1023, sd 45.
			exp := float64(n) / bins
			chi := 0.0
			for _, o := range c {
				d := float64(o) - exp
				chi += d * d / exp
			}
			if chi > 1023+6*45 {
				t.Errorf("%s: %s bits: chi-square %.0f over %d bins, want about 1023", name, part, chi, bins)
			}
		}
	}
}

func TestKeyHashAllocs(t *testing.T) {
	k := keyV4([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}, 9, 10)
	var sink uint64
	if a := testing.AllocsPerRun(100, func() { sink += k.Hash() }); a != 0 {
		t.Fatalf("Hash allocates %v times", a)
	}
	_ = sink
}

func BenchmarkKeyHash(b *testing.B) {
	k := keyV6([16]byte{0x20, 0x01, 15: 1}, [16]byte{0x20, 0x01, 15: 2}, 40000, 443)
	var sink uint64
	b.ReportAllocs()
	for b.Loop() {
		k.SPort++
		sink += k.Hash()
	}
	_ = sink
}
