package lb

// sh and dh: IPVS ip_vs_sh.c / ip_vs_dh.c. A bucket table maps a hash of the
// source (sh) or destination (dh) address to a real.
//
// Following IPVS: the table has 256 buckets (IP_VS_SH_TAB_BITS = 8), a real
// takes buckets in proportion to its weight, and a hashed real that cannot
// take the flow fails the lookup (-1), except sh with FlagFallback, which
// walks on to the next buckets (ip_vs_sh_get_fallback). FlagHashPort adds the
// source port to sh's hash (IPVS sh-port).
//
// Deviations:
//   - The table holds every real with Weight > 0, available or not, so a
//     health flap moves only the flows of the real that flapped. Reals with
//     weight 0 are left out (IPVS gives them one bucket that always fails).
//   - Bucket counts are exactly proportional to weight (largest remainder);
//     IPVS hands out weight-sized runs until 256 buckets are filled, which is
//     only proportional when the weights sum to a divisor of 256. Buckets are
//     laid out in rounds (one per real per round) so that a fallback walk
//     spreads over several reals.
//   - With more than 64 weighted reals the table grows (a power of two, at
//     least 4 buckets per real, at most 2^18) so every real keeps a share.
//   - dh honours weights too (IPVS dh gives every real one bucket per round).
//   - The hash is a 64-bit mix of the full 16-byte address (and port), the
//     same on every node, rather than IPVS's hash_32 of a folded address.

import "encoding/binary"

// Hash seeds of the different uses, so that they are independent.
const (
	seedSH        = 0x5348_5348_9e37_79b9
	seedDH        = 0x4448_4448_7f4a_7c15
	seedMH        = 0x4d48_4d48_c2b2_ae35
	seedLocality  = 0x4c42_4c43_27d4_eb2f
	seedStateless = 0x5354_4154_1656_67b1
)

// schedMix is the splitmix64 finalizer: a bijective 64-bit mix.
func schedMix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// schedHashAddr hashes a 16-byte address (IPv4 in the first 4 bytes, rest
// zero, as in Flow) and a port (0: none) with a seed.
func schedHashAddr(a *[16]byte, port uint16, seed uint64) uint64 {
	h := schedMix(binary.LittleEndian.Uint64(a[0:8]) ^ seed)
	h = schedMix(h ^ binary.LittleEndian.Uint64(a[8:16]))
	if port != 0 {
		h = schedMix(h ^ uint64(port))
	}
	return h
}

// buildHashTable builds the sh/dh bucket table over the reals with Weight >
// 0; nil when there are none.
func buildHashTable(reals []SchedReal) []uint16 {
	var idx []int32
	var w []int64
	for i := range reals {
		if reals[i].Weight > 0 {
			idx = append(idx, int32(i))
			w = append(w, int64(reals[i].Weight))
		}
	}
	if len(idx) == 0 {
		return nil
	}
	size := 256
	for size < 4*len(idx) && size < 1<<18 {
		size *= 2
	}
	rem := apportion(w, size)
	tab := make([]uint16, 0, size)
	live := make([]int, 0, len(idx))
	for j := range idx {
		if rem[j] > 0 {
			live = append(live, j)
		}
	}
	for len(live) > 0 {
		k := 0
		for _, j := range live {
			tab = append(tab, uint16(idx[j]))
			if rem[j]--; rem[j] > 0 {
				live[k] = j
				k++
			}
		}
		live = live[:k]
	}
	return tab
}

// hashLookup maps hash h to a real through the bucket table. Without
// fallback a hashed real that is not available fails; with fallback the walk
// goes on bucket by bucket (IPVS ip_vs_sh_get_fallback).
func (s *Sched) hashLookup(h uint64, fallback bool) int {
	tab := s.hashTab
	if len(tab) == 0 {
		return -1
	}
	mask := uint64(len(tab) - 1)
	b := h & mask
	i := int(tab[b])
	if s.reals[i].Avail {
		return i
	}
	if !fallback {
		return -1
	}
	for off := uint64(1); off <= mask; off++ {
		if i = int(tab[(b+off)&mask]); s.reals[i].Avail {
			return i
		}
	}
	return -1
}

// pickSH is IPVS sh: hash of the source address (and port with
// FlagHashPort).
func (s *Sched) pickSH(f *Flow) int {
	var port uint16
	if s.flags&FlagHashPort != 0 {
		port = f.SPort
	}
	return s.hashLookup(schedHashAddr(&f.Src, port, seedSH), s.flags&FlagFallback != 0)
}

// pickDH is IPVS dh: hash of the destination address, no fallback.
func (s *Sched) pickDH(f *Flow) int {
	return s.hashLookup(schedHashAddr(&f.Dst, 0, seedDH), false)
}
