// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// gvs steering program: redirect gvs's packets to the AF_XDP socket of the
// receive queue (XSKMAP index = rx_queue_index), XDP_PASS everything else so
// the kernel keeps handling ARP, NDP, ICMP echo, SSH, BGP, VRRP.
//
// Which packets are gvs's is decided by hash lookups in `rules`, kept in sync
// from Go (Port.SetSteering). A key is (kind, proto, port, family, addr):
//
//   KIND_SERVICE       dst (proto, addr, port) of TCP/UDP; port 0 = any port
//   KIND_REPLY_FROM    src (proto, addr, port) of TCP/UDP; port 0 = any port
//   KIND_REPLY_TO      dst addr, any protocol (proto 0, port 0)
//   KIND_SERVICE_ADDR  dst addr of ICMP errors and non-first fragments
//   KIND_REPLY_FROM_ADDR src addr of ICMP errors and non-first fragments
//   KIND_LOCAL         dst addr is the host's own: never a nat reply (the
//                      host's connections to a real, e.g. health checks)
//
// The program is bounded: one optional 802.1Q/802.1ad tag, at most
// MAX_EXTHDRS IPv6 extension headers (hop-by-hop, routing, fragment,
// destination options, AH), no loops over packet data otherwise.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define PROTO_HOPOPTS 0
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ROUTING 43
#define PROTO_FRAGMENT 44
#define PROTO_AH 51
#define PROTO_ICMPV6 58
#define PROTO_DSTOPTS 60

#define KIND_SERVICE 1
#define KIND_REPLY_FROM 2
#define KIND_REPLY_TO 3
#define KIND_SERVICE_ADDR 4
#define KIND_REPLY_FROM_ADDR 5
#define KIND_LOCAL 6

#define MAX_EXTHDRS 6

enum counter {
	COUNTER_PASS = 0,     // not gvs's: XDP_PASS
	COUNTER_MATCH = 1,    // matched a rule: redirected (or passed if no socket)
	COUNTER_MAX = 2,
};

struct steer_key {
	__u8 kind;
	__u8 proto;
	__be16 port;
	__u8 family; // 4 or 6
	__u8 pad[3];
	__u8 addr[16]; // IPv4: first 4 bytes, rest zero
};

struct ethhdr_ {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct vlanhdr_ {
	__be16 tci;
	__be16 proto;
};

struct iphdr_ {
	__u8 vihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct ipv6hdr_ {
	__be32 vtcfl;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct exthdr_ {
	__u8 nexthdr;
	__u8 len;
	__u8 rest[6];
};

struct fraghdr_ {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

struct ports_ {
	__be16 src;
	__be16 dst;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64); // resized at load time
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192); // resized at load time
	__type(key, struct steer_key);
	__type(value, __u8);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int has(struct steer_key *k)
{
	return bpf_map_lookup_elem(&rules, k) != NULL;
}

static __always_inline void set_addr4(struct steer_key *k, const __u8 *a)
{
	__builtin_memcpy(k->addr, a, 4);
}

static __always_inline void set_addr6(struct steer_key *k, const __u8 *a)
{
	__builtin_memcpy(k->addr, a, 16);
}

// match_l4 looks up the TCP/UDP rules; k has family and zeroed addr space.
// dst and src are the packet's addresses (alen bytes each).
static __always_inline int match_ports(struct steer_key *k, __u8 proto, struct ports_ *pp,
				       const __u8 *dst, const __u8 *src, int v6)
{
	k->proto = proto;
	k->kind = KIND_SERVICE;
	if (v6)
		set_addr6(k, dst);
	else
		set_addr4(k, dst);
	k->port = pp->dst;
	if (has(k))
		return 1;
	k->port = 0;
	if (has(k))
		return 1;

	// A packet from a nat real to one of the host's own addresses answers
	// the host (a health check), not a client: leave it to the kernel.
	k->kind = KIND_LOCAL;
	k->proto = 0;
	if (has(k))
		return 0;
	k->proto = proto;
	k->kind = KIND_REPLY_FROM;
	if (v6)
		set_addr6(k, src);
	else
		set_addr4(k, src);
	k->port = pp->src;
	if (has(k))
		return 1;
	k->port = 0;
	return has(k);
}

// match_addrs looks up the address-only rules for ICMP errors and non-first
// fragments: destination is a service address, or source a nat real.
static __always_inline int match_addrs(struct steer_key *k, const __u8 *dst, const __u8 *src,
				       int v6)
{
	k->proto = 0;
	k->port = 0;
	k->kind = KIND_SERVICE_ADDR;
	if (v6)
		set_addr6(k, dst);
	else
		set_addr4(k, dst);
	if (has(k))
		return 1;
	k->kind = KIND_LOCAL;
	if (has(k))
		return 0;
	k->kind = KIND_REPLY_FROM_ADDR;
	if (v6)
		set_addr6(k, src);
	else
		set_addr4(k, src);
	return has(k);
}

static __always_inline int match_ip4(void *l3, void *end)
{
	struct iphdr_ *ip = l3;
	struct steer_key k;

	if ((void *)(ip + 1) > end)
		return 0;
	if ((ip->vihl >> 4) != 4)
		return 0;
	__u32 ihl = (ip->vihl & 0xf) * 4;
	if (ihl < sizeof(*ip))
		return 0;

	__builtin_memset(&k, 0, sizeof(k));
	k.family = 4;
	k.kind = KIND_REPLY_TO;
	set_addr4(&k, ip->daddr);
	if (has(&k))
		return 1;

	if (bpf_ntohs(ip->frag_off) & 0x1fff)
		return match_addrs(&k, ip->daddr, ip->saddr, 0);

	void *l4 = l3 + ihl;
	switch (ip->protocol) {
	case PROTO_TCP:
	case PROTO_UDP: {
		struct ports_ *pp = l4;
		if ((void *)(pp + 1) > end)
			return 0;
		return match_ports(&k, ip->protocol, pp, ip->daddr, ip->saddr, 0);
	}
	case PROTO_ICMP: {
		__u8 *type = l4;
		if ((void *)(type + 1) > end)
			return 0;
		// destination unreachable, time exceeded, parameter problem
		if (*type == 3 || *type == 11 || *type == 12)
			return match_addrs(&k, ip->daddr, ip->saddr, 0);
		return 0;
	}
	}
	return 0;
}

static __always_inline int match_ip6(void *l3, void *end)
{
	struct ipv6hdr_ *ip6 = l3;
	struct steer_key k;

	if ((void *)(ip6 + 1) > end)
		return 0;
	if ((bpf_ntohl(ip6->vtcfl) >> 28) != 6)
		return 0;

	__builtin_memset(&k, 0, sizeof(k));
	k.family = 6;
	k.kind = KIND_REPLY_TO;
	set_addr6(&k, ip6->daddr);
	if (has(&k))
		return 1;

	__u8 nh = ip6->nexthdr;
	void *p = ip6 + 1;
#pragma unroll
	for (int i = 0; i < MAX_EXTHDRS; i++) {
		if (nh == PROTO_HOPOPTS || nh == PROTO_ROUTING || nh == PROTO_DSTOPTS) {
			struct exthdr_ *e = p;
			if ((void *)(e + 1) > end)
				return 0;
			nh = e->nexthdr;
			p += ((__u32)e->len + 1) * 8;
		} else if (nh == PROTO_AH) {
			struct exthdr_ *e = p;
			if ((void *)(e + 1) > end)
				return 0;
			nh = e->nexthdr;
			p += ((__u32)e->len + 2) * 4;
		} else if (nh == PROTO_FRAGMENT) {
			struct fraghdr_ *f = p;
			if ((void *)(f + 1) > end)
				return 0;
			if (bpf_ntohs(f->frag_off) & 0xfff8)
				return match_addrs(&k, ip6->daddr, ip6->saddr, 1);
			nh = f->nexthdr;
			p += sizeof(*f);
		} else {
			break;
		}
	}

	switch (nh) {
	case PROTO_TCP:
	case PROTO_UDP: {
		struct ports_ *pp = p;
		if ((void *)(pp + 1) > end)
			return 0;
		return match_ports(&k, nh, pp, ip6->daddr, ip6->saddr, 1);
	}
	case PROTO_ICMPV6: {
		__u8 *type = p;
		if ((void *)(type + 1) > end)
			return 0;
		// destination unreachable, packet too big, time exceeded,
		// parameter problem
		if (*type >= 1 && *type <= 4)
			return match_addrs(&k, ip6->daddr, ip6->saddr, 1);
		return 0;
	}
	}
	return 0;
}

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);
	if (c)
		*c += 1;
}

SEC("xdp")
int gvs_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr_ *eth = data;
	int match = 0;

	if ((void *)(eth + 1) > end)
		goto pass;
	__be16 proto = eth->proto;
	void *l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlanhdr_ *vh = l3;
		if ((void *)(vh + 1) > end)
			goto pass;
		proto = vh->proto;
		l3 = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_IP))
		match = match_ip4(l3, end);
	else if (proto == bpf_htons(ETH_P_IPV6))
		match = match_ip6(l3, end);
	if (match) {
		count(COUNTER_MATCH);
		// No socket on this queue: the kernel gets the packet.
		return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	}
pass:
	count(COUNTER_PASS);
	return XDP_PASS;
}

char __license[] SEC("license") = "Dual BSD/GPL";
