// Package pipeline is the per-packet work of a gvs worker, one stage per
// file, over a burst of frames:
//
//	parse.go     zero-allocation header view (Ethernet, VLAN, IPv4/IPv6, L4)
//	classify.go  session hit, or (proto, VIP, port) → service; flow ownership
//	schedule.go  new flows: persistence, scheduler pick, session insert
//	rewrite.go   per forwarding method, in place, incremental checksums
//	icmp.go      ICMP errors follow the flow of their embedded packet
//	frag.go      non-first fragments follow their first fragment
//	pipeline.go  the burst loop that ties the stages together
//
// A Pipeline belongs to one pmd worker and is used by its goroutine only:
// no locks, no allocations, no Go maps, one snapshot load and one clock
// value per burst. Its output is a set of per-destination frame arrays
// (transmit per port, slow path, drop, hand-over per worker) that pmd moves.
//
// Imports: gvs/lb and gvs/driver.
package pipeline
