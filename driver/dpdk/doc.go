// Package dpdk is gvs's DPDK driver: driver.Port over DPDK ethdevs (PCI
// NICs bound to vfio-pci, or virtual devices: net_af_packet, net_af_xdp,
// net_tap, net_memif, net_pcap, net_ring, net_null), through gvs's own thin
// cgo binding (internal/rte, `#cgo pkg-config: libdpdk`, Debian's libdpdk-dev
// 22.11). Everything but this file needs the build tag dpdk: the default
// build of gvs needs no DPDK, and nothing outside driver/dpdk imports the
// binding (cmd/gvsd opens ports through this package only).
//
// # EAL
//
// Init starts EAL once per process (DPDK cannot start it twice, not even
// after Cleanup) from an EALConfig: lcores (default one: the first CPU the
// process may use), memory mode (--no-huge -m N by default; hugepages;
// --in-memory), --file-prefix (default gvs-<pid>, so parallel processes
// never share runtime files; Cleanup removes them), the PCI allow list
// (-a; --no-pci when empty, so EAL leaves the machine's own NIC alone) and
// vdevs. One mbuf pool per NUMA socket, shared by every port of the socket
// (and the exception TAP), so a frame may be sent by any port of its socket
// and fast free is safe.
//
// # Ports, queues, frames
//
// Open configures a device with one receive queue per worker (more for
// net_af_packet, whose queues are socket pairs in one fanout group; the
// extra ones are polled by the workers in turn and left out of RSS) and
// one transmit queue per worker plus the control queue of the exception
// path. Where the device has RSS and several receive queues, gvs sets the
// symmetric Toeplitz key (0x6d5a…, both directions of a flow hash alike)
// and reports the key the device uses (Port.RSS). Offloads: MBUF_FAST_FREE
// where the device has it; checksums are kept right by the pipeline itself
// (RFC 1624 incremental updates), so no checksum offload is needed; chained
// (multi-segment) mbufs are dropped and counted (frames are single views).
//
// A Frame is a view of an mbuf: Buf is the whole data buffer over C memory
// (unsafe.Slice, no copy, no allocation), Off the mbuf's data offset
// (RTE_PKTMBUF_HEADROOM, 128 bytes of headroom for encapsulation), Handle
// the mbuf's address. Transmit writes Off and Len back into the mbufs.
// Receive, Transmit, Free (rte_pktmbuf_free_bulk) and Alloc
// (rte_pktmbuf_alloc_bulk) make one cgo call per burst of up to 32 frames,
// with the burst arrays in C memory (a Go slice handed to C on every burst
// costs 2–2.5× in cgo pointer checks).
//
// # Workers: pinned goroutine threads registered with EAL
//
// gvs's workers are pmd's goroutines, each locked to an OS thread pinned to
// a CPU; they are not EAL lcores (EAL runs with one lcore and launches
// nothing). The binding registers every thread that makes a burst call
// with EAL on its first call (rte_thread_register, in the C wrapper: a
// thread-local read and a branch per burst afterwards), which gives it an
// lcore id and so a mempool cache: allocs and frees of mbufs do not touch
// the pool's shared ring. The choice, against running the workers as EAL
// lcores (rte_eal_remote_launch): an EAL lcore is a thread DPDK creates,
// which could only run gvs's Go code through a cgo callback into Go — a
// thread foreign to the Go runtime, microseconds per entry and no
// goroutine scheduling — while the pmd package already pins its own
// threads. Costs: lcore ids are finite (RTE_MAX_LCORE = 128 in Debian's
// build) and are never given back (Go threads rarely exit); a goroutine
// that is not locked may register several threads, which is harmless since
// a thread runs one C call at a time (its cache is never shared); mbufs
// parked in the caches of idle threads count as in use (up to 256 per
// thread). What DPDK offers per lcore (service cores, rte_timer) is not
// used. Measured (BenchmarkMbufAllocFree): a bulk alloc and free of 32
// mbufs costs 8.2 ns per mbuf on a registered thread, 13.8 ns on an
// unregistered one going to the shared ring — uncontended; with several
// workers the ring's compare-and-swap contention adds to that.
//
// Measured here (2 vCPU VM, net_null size=64 copy=0, rx→tx on one port,
// one core; make bench-dpdk): dpdk-testpmd io forwarding 72–75 Mpps; the
// same loop in C through the raw ethdev calls 67–71 Mpps, in C through gvs's
// burst descriptors 52–58 Mpps, in Go on the raw binding 43–48 Mpps, in Go
// through driver.Queue (frame views) 39–42 Mpps (0.54–0.58 of testpmd; 0.62
// with copy=1, where the device writes the packets); of the ~10 ns per
// packet the Go loop adds to the C one, 3–4 are the descriptor arrays, 2–3
// the cgo calls and Go's loop, 3 the frame views. gvs's pipeline on the same
// port (dr, 1024 flows, mbufs prefilled with valid frames) 12–14 Mpps,
// 0.28–0.34 of the bare loop: the pipeline's own ~50–57 ns per packet (its
// mem-driver benchmarks agree) is the bottleneck, not the driver.
//
// # No kernel behind the port
//
// EnableException starts the port's exception path: pmd's slow path
// (SlowPath, driver.SlowPather) pushes the frames the pipeline leaves into
// one single-producer ring per worker; one goroutine per port drains them
// through nokernel.Host, which answers ARP and neighbour solicitations for
// VIPs, full-NAT local addresses and the port's own addresses, answers
// echo requests to VIPs, learns the neighbours gvs asked for, and passes
// everything else to a TAP (net_tap, same MAC as the port, the port's
// addresses on its kernel side): health checks, VRRP, BGP, ssh and pings to
// the host work through it in both directions, without copies. The same
// goroutine sends what the kernel sends on the TAP out of the port's control
// queue, and the ARP requests and neighbour solicitations of gvs's own
// next-hop resolution (Host.Neighbour, with timeouts, retries and counters;
// cmd/gvsd turns it into the daemon's HopResolver). SetSteering
// (driver.Steering) tells the port which addresses are VIPs and local
// addresses.
//
// # Limits
//
// Frames of one port are sent by another port only after a copy (pmd's
// rule for ports with their own memory); no VLAN sub-interfaces on the
// exception path; jumbo frames need an MTU and a pool data room to match
// (chained mbufs are dropped); IPv6 neighbour resolution needs an IPv6
// address in the port's addresses; net_tap logs "All rt-signals are in use"
// (its receive interrupts need a free real-time signal and Go's runtime
// holds them all: gvs polls and does not need them).
//
// Imports: gvs/driver, gvs/driver/dpdk/nokernel, the binding internal/rte;
// tests also gvs/pmd, gvs/lb.
package dpdk
