// Package httpbench measures what a load balancer costs an HTTP service:
// new TCP connections per second and keep-alive requests per second, with
// their latency (p50/p99), for gvs and its peers on the same network, in
// the same run, as ratios to a direct path without a load balancer.
//
// # Topology
//
// Run builds named network namespaces "gvshttp-<pid>-<role>" (removed at
// the end, also on error or when ctx is cancelled; namespaces of a dead
// bench process are swept first), only with 198.18.0.0/15 addresses:
//
//	cl  (wrk)    198.18.20.2/24 ── 198.18.20.1 rt (router, forwarding)
//	rt  198.18.21.254/24 ── br0 in its own namespace "sw" ─┬── lb  198.18.21.1 (gvsd / nftables / HAProxy)
//	                                                       └── beI 198.18.21.11+I (nginx)
//	VIP 198.18.22.10:80, routed by rt to 198.18.21.1
//
// Every veth end has TX checksum offload off (veth otherwise hands partial
// checksums to a userspace dataplane). The bridge lives in its own
// namespace, as in tests/topology_test.go, so the router's forwarding and
// the bridging do not mix. IPv6 is off everywhere. The client and the lb
// use the whole ephemeral port range, the lb and the backends have accept
// queues of 65535. Each contender's runs of a round leave the client from
// their own source address (198.18.20.10 and up, ClientSource): wrk opens
// tens of thousands of connections per second and the backend keeps them
// in TIME_WAIT, so without this a contender's SYNs would meet another
// contender's TIME_WAIT sockets (or conntrack entries) for the same
// 4-tuple, with TCP timestamps from another offset (Linux derives it from
// the address pair, and direct and the VIP are different destinations),
// and stall — seen as 100× slower newconn runs before the change.
//
// # Contenders
//
// Each round measures every contender in order (A B C D A B C D …); a
// contender's stack is set up before its runs and torn down after them,
// every round, and it must answer an HTTP GET through its target address
// before it is measured (polled, bounded at 20 s).
//
//   - direct: wrk → backend 0 at 198.18.21.11:80 through the router, no
//     load balancer. The reference of the ratios.
//   - nftables: kernel forwarding on in the lb, one nat rule at prerouting
//     `ip daddr VIP tcp dport 80 dnat to numgen inc mod N map {…}` loaded
//     with nft -f; the backends' default route via the lb, so replies pass
//     conntrack and are un-DNATed.
//   - haproxy: HAProxy in the lb, mode tcp, balance roundrobin, bound to
//     VIP:80 (VIP on the lb's lo), nbthread 1 by default (Options.HAProxyThreads)
//     — one thread as gvs has one worker, on a 2-core machine where wrk
//     (2 threads) and nginx also run — maxconn 8000 (the descriptor hard
//     limit here is 20000 and cannot be raised). HAProxy terminates both
//     TCP connections, the other contenders forward packets.
//   - gvs: gvsd (built once with `go build gvs/cmd/gvsd` unless
//     Options.GvsdPath is set) in the lb with the afxdp driver on eth0, one
//     worker by default (Options.GvsWorkers), service VIP:80 tcp, scheduler
//     rr, method dr. The backends are L2 DSR reals (VIP on lo,
//     arp_ignore=1 / arp_announce=2 on all and eth0) with their default
//     route via the router, so replies bypass gvs. GRO is turned on on the
//     lb's bridge-side veth peer while gvs runs (frames pushed into a veth
//     by XDP are dropped unless the peer has XDP or GRO; gvs's copy-mode
//     AF_XDP transmissions do not need it, but it costs nothing).
//   - gvs-nat (opt-in): as gvs with method nat; the backends' default
//     route via the lb, so replies return through gvs.
//
// # Measurement
//
// wrk from the client namespace: `wrk -tT -cC -dD --latency http://TARGET/`
// for keep-alive, the same with `-H 'Connection: close'` for a new
// connection per request (newconn). Each measured run follows an
// unmeasured warm-up run of Options.Warmup (whole seconds; 0: none). From
// wrk's report (ParseWrk) come Requests/sec, the latency distribution, the
// socket errors and the non-2xx/3xx responses; a run where these errors
// exceed 1 % of the requests is flagged. Per contender and mode the report
// has every sample, the median req/s, the median p99 and the ratio of the
// median to direct's median in the same mode. The versions of nginx,
// HAProxy, nft, wrk, Go and the kernel are recorded.
//
// # Why one backend
//
// The machine this was written for has 2 cores, shared by wrk, the load
// balancer and the backends: more nginx processes are slower than one
// (ENVIRONMENT.md), so the load balancer's overhead is judged against one
// nginx (worker_processes 1, master_process off, access_log off, `return
// 200 "ok\n"`, keepalive_requests 1000000, listen backlog 65535).
// Options.Backends adds more; direct still drives backend 0 only.
//
// Every number shares the CPUs with the others of the run (and with
// anything else on the machine): gvs's worker polls while traffic flows,
// taking a core from wrk and nginx, as HAProxy's thread and the kernel's
// softirq work do for the other contenders. Read ratios, not absolutes,
// and expect ±20–30 % between runs on a shared machine.
package httpbench
