// Package health checks the real servers of gvs: it probes them, keeps
// their up/down state with rise/fall and flap damping, applies the
// passive-check rule to the dataplane's counters, and reports every change
// through a callback. It owns the probe sockets and the goroutines of a
// Manager; it knows nothing of the dataplane, the configuration file or the
// daemon, which turns changes into effective weights (down → 0, drained or
// dropped by policy; up → the configured weight, with slow start).
// health imports lb (for lb.RealKey) and nothing else of gvs.
//
// # Checkers
//
// One file per kind, each a Checker whose Result says what happened:
//
//	arp           arp.go          ARP request (IPv4, AF_PACKET) / neighbour solicitation (IPv6, raw ICMPv6)
//	icmp          icmp.go         echo request/reply, id + sequence + payload matched, v4 and v6
//	tcp           tcp.go          connect; optional Send, and the answer must start with Expect; FIN
//	tcp-halfopen  tcphalfopen.go  raw-socket SYN → SYN/ACK → our RST; RST or silence fails
//	              vipprobe.go     the same through the VIP for DSR reals (Target.VIP set)
//	http, https   http.go         GET Path with Host; status in Status (default 200–399);
//	http-content  http.go         …and the first MaxBody bytes contain Contains / match Regexp
//
// Every probe opens its own sockets on the calling goroutine's thread (so
// in that thread's network namespace) and is done with them when it
// returns (AF_PACKET sockets finish closing in the background): HTTP probes use a new connection each time (Connection: close), with no
// keep-alive between probes, so each one proves that the real still
// accepts connections. Reasons read "connect to 198.18.1.11:80: connection
// refused", "GET http://198.18.1.11:80/: status 503 (want [200-399])",
// "...: content missing: \"OK\" not in the first 1234 bytes of the body",
// "... timeout after 1s".
//
// A tcp-halfopen check leaves nothing on the real: the SYN comes from a
// raw socket, and its SYN/ACK is answered at once with gvs's own RST (the
// kernel also resets it: the local port is held by a bound, unconnected
// socket). With Target.VIP set, the check proves that a DSR real answers
// on the VIP: the SYN to VIP:port is sent in a hand-built Ethernet frame
// to the real's MAC (from the neighbour table, else by our own ARP/NDP),
// as the dr method forwards a client's SYN, and only a SYN/ACK from
// VIP:port counts. Other kinds ignore Target.VIP and probe the real's own
// address (a full connection to the VIP through the real's MAC would need
// policy routing or a TCP stack of our own).
//
// # Chains, rise and fall
//
// A Target's Chain is checked lowest layer first (seed 001: L2/L3 → L4 →
// L7). Each check has its own Interval (± Jitter), Timeout, Rise and Fall
// and its own up/down state:
//
//   - check i runs only while checks 0..i-1 are up; when one goes down, the
//     checks above it stop and forget their state, and when it comes back
//     up they run at once;
//   - the first result of a check that (re)starts decides its state at
//     once; afterwards Fall consecutive failures take it down and Rise
//     consecutive successes bring it up;
//   - the target is up when every check of its chain is up, down when one
//     is down, and keeps its state while a check has no result yet (so a
//     new target is "not checked" until its first verdict, and a changed
//     chain does not flap it). Status.Layer names the deciding check.
//
// Identical checks run once (Maglev paper): check i of two targets is one
// probe when their checks 0..i are identical and aimed at the same
// address and port (and VIP for tcp-halfopen) — the same real in several
// services, or the L2/L3 checks of one host under several ports.
//
// State changes of targets, the first verdict included, are logged (slog,
// "real up" / "real down" with the reason), counted (Status.Transitions,
// Stats) and passed to Options.OnChange, in order, outside the lock.
//
// # Flap damping
//
// A target with at least FlapDamping.Threshold changes (default 4) in the
// last Window (60s) is flapping: its next recovery waits Hold × 2^(changes
// − Threshold) (10s, doubling, at most MaxHold 5m) with the chain passing
// throughout; a failure cancels it. Going down is never delayed.
//
// # Passive checks
//
// The dataplane counts, per real, SYNs scheduled to it, handshakes
// completed and resets; the daemon sums them over the workers and calls
// Manager.ReportPassive periodically. A PassiveRule trips when, over its
// Window, at least MinSYNs SYNs were sent and a FailRatio of them did not
// complete: the real goes down for a back-off that doubles on each trip
// (Backoff … MaxBackoff, back to Backoff after MaxBackoff up), then the
// last check of its chain runs at once and the active checks bring it
// back. See ReportPassive for the exact semantics.
//
// # Scheduling and cost
//
// One scheduler goroutine keeps a heap of due probes and hands them to a
// bounded pool of Options.Workers goroutines (default 256); a probe holds
// its worker for at most its Timeout. Probes due while the pool is busy
// wait and are counted as late. New probes start at a random point of
// their first jitter span. Measured on the project's 2-vCPU machines
// (bench_test.go, CPU time of the probing process per second of wall
// clock, 10,000 targets at a 1 s interval):
//
//	Manager alone (a checker that returns at once)   0.08 s/s   ~8 µs per probe
//	tcp connect over a veth to a server namespace     0.41 s/s   ~41 µs per probe
//	tcp-halfopen, same                                0.41 s/s   ~41 µs per probe
//	http GET, same                                    0.58 s/s   ~62 µs per probe
//
// The real probes include the kernel's TCP work for both ends, which veth
// runs in the sender's context. Reproduce (as root) with
// go test -run '^$' -bench BenchmarkManager ./health -health.kind=tcp
// (or tcp-halfopen, http; -health.netns for the Netns mode).
//
// Options.Netns makes the workers run in another network namespace by
// locking their threads; every hand-over to a locked thread is an OS
// context switch, so that mode costs about twice as much per probe.
package health
