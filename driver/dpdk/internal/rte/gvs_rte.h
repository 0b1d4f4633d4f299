//go:build dpdk

// gvs_rte.h: the C half of gvs's thin DPDK binding. DPDK's fast-path
// functions (rx/tx burst, mbuf alloc, mtod, headroom) are static inline in
// its headers and cannot be called from Go; these wrappers can. Every
// wrapper works on a whole burst: one cgo call per burst, never per packet.
// Burst arrays live in C memory (struct gvs_burst), so no Go pointer crosses
// the boundary on the fast path and cgo has nothing to check.

#ifndef GVS_RTE_H
#define GVS_RTE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_bus_vdev.h>
#include <rte_version.h>

// GVS_BURST is driver.BurstSize (checked at init from Go).
#define GVS_BURST 32

#define GVS_M(b) ((struct rte_mbuf **)(b)->m)

// gvs_burst is one burst of mbufs and, after rx or alloc, the fields of each
// mbuf the Go side needs to build its frame view (so Go never reads the
// mbuf header itself). Before tx, Go writes off/len; gvs_tx copies them
// into the mbufs.
struct gvs_burst {
	// m holds struct rte_mbuf pointers as integers: Go stores the handles
	// it got back (driver.Frame.Handle) without converting integers to
	// pointers on its side.
	uintptr_t m[GVS_BURST];
	void *addr[GVS_BURST]; // buf_addr: start of the buffer (headroom included)
	uint16_t off[GVS_BURST];   // data_off
	uint16_t len[GVS_BURST];   // data_len (single-segment mbufs only)
	uint16_t cap[GVS_BURST];   // buf_len
	uint64_t segdrops;         // multi-segment mbufs dropped by gvs_rx
	uint64_t regfail;          // threads that could not register as lcores
};

static inline struct gvs_burst *gvs_burst_new(void) {
	return (struct gvs_burst *)calloc(1, sizeof(struct gvs_burst));
}

static inline void gvs_burst_free(struct gvs_burst *b) { free(b); }

// gvs_lcore makes sure the calling thread has an lcore id: Go threads that
// poll queues are registered with EAL on their first burst (so mempool
// per-lcore caches work for them); registration fails quietly when EAL has
// no free lcore id left, and the thread then goes to the pool's ring
// directly (slower, still correct).
static inline void gvs_lcore(struct gvs_burst *b) {
	if (unlikely(rte_lcore_id() == LCORE_ID_ANY)) {
		if (rte_thread_register() != 0)
			b->regfail++;
	}
}

static inline void gvs_fill(struct gvs_burst *b, uint16_t i, struct rte_mbuf *m) {
	b->m[i] = (uintptr_t)m;
	b->addr[i] = m->buf_addr;
	b->off[i] = m->data_off;
	b->len[i] = m->data_len;
	b->cap[i] = m->buf_len;
}

// gvs_rx receives up to n packets and describes them. Chained
// (multi-segment) mbufs cannot be a single frame view: they are freed and
// counted.
static inline uint16_t gvs_rx(uint16_t port, uint16_t q, struct gvs_burst *b, uint16_t n) {
	gvs_lcore(b);
	if (n > GVS_BURST)
		n = GVS_BURST;
	uint16_t got = rte_eth_rx_burst(port, q, GVS_M(b), n);
	uint16_t k = 0;
	for (uint16_t i = 0; i < got; i++) {
		struct rte_mbuf *m = GVS_M(b)[i];
		if (unlikely(m->nb_segs != 1)) {
			rte_pktmbuf_free(m);
			b->segdrops++;
			continue;
		}
		gvs_fill(b, k++, m);
	}
	return k;
}

// gvs_set writes off/len of b[0:n] into the mbufs (after the Go side
// rewrote, prepended or trimmed).
static inline void gvs_set(struct gvs_burst *b, uint16_t n) {
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = GVS_M(b)[i];
		m->data_off = b->off[i];
		m->data_len = b->len[i];
		m->pkt_len = b->len[i];
	}
}

// gvs_tx sends b[0:n] and returns how many the device took (a prefix).
static inline uint16_t gvs_tx(uint16_t port, uint16_t q, struct gvs_burst *b, uint16_t n) {
	gvs_lcore(b);
	if (n > GVS_BURST)
		n = GVS_BURST;
	gvs_set(b, n);
	return rte_eth_tx_burst(port, q, GVS_M(b), n);
}

// gvs_tx_from sends b[from:from+n] (the rest of a burst the device did not
// take at once).
static inline uint16_t gvs_tx_from(uint16_t port, uint16_t q, struct gvs_burst *b, uint16_t from, uint16_t n) {
	if (from >= GVS_BURST)
		return 0;
	if (n > GVS_BURST - from)
		n = GVS_BURST - from;
	return rte_eth_tx_burst(port, q, GVS_M(b) + from, n);
}

// gvs_free_bulk frees b->m[0:n] (rte_pktmbuf_free_bulk).
static inline void gvs_free_bulk(struct gvs_burst *b, uint16_t n) {
	gvs_lcore(b);
	if (n > GVS_BURST)
		n = GVS_BURST;
	rte_pktmbuf_free_bulk(GVS_M(b), n);
}

// gvs_alloc allocates up to n empty mbufs (data at the headroom, length 0).
// It tries the whole burst at once and halves on failure.
static inline uint16_t gvs_alloc(struct rte_mempool *mp, struct gvs_burst *b, uint16_t n) {
	gvs_lcore(b);
	if (n > GVS_BURST)
		n = GVS_BURST;
	while (n > 0 && rte_pktmbuf_alloc_bulk(mp, GVS_M(b), n) != 0)
		n /= 2;
	for (uint16_t i = 0; i < n; i++)
		gvs_fill(b, i, GVS_M(b)[i]);
	return n;
}

// gvs_ring_enqueue / gvs_ring_dequeue move bursts of mbufs in and out of an
// rte_ring (tests feed net_ring ports this way). Enqueue writes off/len
// first, as tx does.
static inline unsigned gvs_ring_enqueue(struct rte_ring *r, struct gvs_burst *b, unsigned n) {
	if (n > GVS_BURST)
		n = GVS_BURST;
	gvs_set(b, n);
	return rte_ring_enqueue_burst(r, (void *const *)GVS_M(b), n, NULL);
}

static inline unsigned gvs_ring_dequeue(struct rte_ring *r, struct gvs_burst *b, unsigned n) {
	if (n > GVS_BURST)
		n = GVS_BURST;
	unsigned got = rte_ring_dequeue_burst(r, (void **)GVS_M(b), n, NULL);
	for (unsigned i = 0; i < got; i++)
		gvs_fill(b, i, GVS_M(b)[i]);
	return got;
}

// gvs_fwd is the bare poll loop of the benchmark, in C for reference:
// rx burst from (rp, rq), tx burst to (tp, tq), free what was not taken;
// iters rounds; returns packets forwarded.
static inline uint64_t gvs_fwd_c(uint16_t rp, uint16_t rq, uint16_t tp, uint16_t tq, struct gvs_burst *b, uint64_t iters) {
	uint64_t fwd = 0;
	gvs_lcore(b);
	for (uint64_t it = 0; it < iters; it++) {
		uint16_t n = rte_eth_rx_burst(rp, rq, GVS_M(b), GVS_BURST);
		if (n == 0)
			continue;
		uint16_t s = rte_eth_tx_burst(tp, tq, GVS_M(b), n);
		fwd += s;
		if (s < n)
			rte_pktmbuf_free_bulk(GVS_M(b) + s, n - s);
	}
	return fwd;
}

// gvs_fwd_desc is gvs_fwd_c through gvs_rx and gvs_tx (descriptor arrays
// filled and applied), still in C: it separates their per-packet cost from
// the cost of crossing into Go.
static inline uint64_t gvs_fwd_desc(uint16_t rp, uint16_t rq, uint16_t tp, uint16_t tq, struct gvs_burst *b, uint64_t iters) {
	uint64_t fwd = 0;
	for (uint64_t it = 0; it < iters; it++) {
		uint16_t n = gvs_rx(rp, rq, b, GVS_BURST);
		if (n == 0)
			continue;
		uint16_t s = gvs_tx(tp, tq, b, n);
		fwd += s;
		if (s < n)
			rte_pktmbuf_free_bulk(GVS_M(b) + s, n - s);
	}
	return fwd;
}

// gvs_alloc_free_loop allocates and frees a burst iters times without
// registering the thread (benchmarks: mempool cost with and without an
// lcore cache).
static inline uint64_t gvs_alloc_free_loop(struct rte_mempool *mp, struct gvs_burst *b, uint64_t iters) {
	uint64_t n = 0;
	for (uint64_t it = 0; it < iters; it++) {
		if (rte_pktmbuf_alloc_bulk(mp, GVS_M(b), GVS_BURST) != 0)
			continue;
		rte_pktmbuf_free_bulk(GVS_M(b), GVS_BURST);
		n += GVS_BURST;
	}
	return n;
}

// --- control path (not per burst) ---

static inline int gvs_errno(void) { return rte_errno; }

static inline unsigned gvs_lcore_id(void) { return rte_lcore_id(); }

static inline unsigned gvs_lcore_any(void) { return LCORE_ID_ANY; }

static inline int gvs_socket_id(void) { return (int)rte_socket_id(); }

static inline int gvs_headroom(void) { return RTE_PKTMBUF_HEADROOM; }

static inline int gvs_default_buf_size(void) { return RTE_MBUF_DEFAULT_BUF_SIZE; }

static inline int gvs_cache_max(void) { return RTE_MEMPOOL_CACHE_MAX_SIZE; }

static inline const char *gvs_version(void) { return rte_version(); }

static inline struct rte_mempool *gvs_pool_create(const char *name, unsigned n, unsigned cache, uint16_t room, int socket) {
	return rte_pktmbuf_pool_create(name, n, cache, 0, room, socket);
}

// gvs_dev_info is what gvs reads of rte_eth_dev_info.
struct gvs_dev_info {
	char driver[64];
	uint16_t max_rxq, max_txq;
	uint16_t min_mtu, max_mtu;
	uint16_t reta_size;
	uint8_t hash_key_size;
	uint16_t rx_desc_max, tx_desc_max;
	uint64_t rx_offload_capa, tx_offload_capa;
	uint64_t flow_type_rss_offloads;
	int socket;
};

static inline int gvs_dev_info(uint16_t port, struct gvs_dev_info *out) {
	struct rte_eth_dev_info di;
	int rc = rte_eth_dev_info_get(port, &di);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	if (di.driver_name)
		strncpy(out->driver, di.driver_name, sizeof(out->driver) - 1);
	out->max_rxq = di.max_rx_queues;
	out->max_txq = di.max_tx_queues;
	out->min_mtu = di.min_mtu;
	out->max_mtu = di.max_mtu;
	out->reta_size = di.reta_size;
	out->hash_key_size = di.hash_key_size;
	out->rx_desc_max = di.rx_desc_lim.nb_max;
	out->tx_desc_max = di.tx_desc_lim.nb_max;
	out->rx_offload_capa = di.rx_offload_capa;
	out->tx_offload_capa = di.tx_offload_capa;
	out->flow_type_rss_offloads = di.flow_type_rss_offloads;
	out->socket = rte_eth_dev_socket_id(port);
	return 0;
}

static inline uint64_t gvs_rss_ip_tcp_udp(void) {
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

static inline uint64_t gvs_tx_fast_free(void) { return RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE; }

// gvs_configure configures port with nrx/ntx queues; rss_hf != 0 turns on
// RSS with the given key.
static inline int gvs_configure(uint16_t port, uint16_t nrx, uint16_t ntx, uint8_t *key, uint8_t key_len,
				uint64_t rss_hf, uint64_t rx_offloads, uint64_t tx_offloads, uint32_t mtu) {
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	if (rss_hf != 0) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = key;
		conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
		conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
	}
	conf.rxmode.mtu = mtu;
	conf.rxmode.offloads = rx_offloads;
	conf.txmode.offloads = tx_offloads;
	return rte_eth_dev_configure(port, nrx, ntx, &conf);
}

static inline int gvs_adjust_desc(uint16_t port, uint16_t *rxd, uint16_t *txd) {
	return rte_eth_dev_adjust_nb_rx_tx_desc(port, rxd, txd);
}

static inline int gvs_rxq_setup(uint16_t port, uint16_t q, uint16_t nd, int socket, struct rte_mempool *mp) {
	return rte_eth_rx_queue_setup(port, q, nd, socket == -1 ? SOCKET_ID_ANY : (unsigned)socket, NULL, mp);
}

static inline int gvs_txq_setup(uint16_t port, uint16_t q, uint16_t nd, int socket, uint64_t offloads) {
	struct rte_eth_dev_info di;
	int rc = rte_eth_dev_info_get(port, &di);
	if (rc != 0)
		return rc;
	struct rte_eth_txconf tc = di.default_txconf;
	tc.offloads = offloads;
	return rte_eth_tx_queue_setup(port, q, nd, socket == -1 ? SOCKET_ID_ANY : (unsigned)socket, &tc);
}

// gvs_reta points every RSS redirection entry at queues 0..nq-1 round
// robin (keeping extra queues out of RSS).
static inline int gvs_reta(uint16_t port, uint16_t reta_size, uint16_t nq) {
	struct rte_eth_rss_reta_entry64 conf[512 / RTE_ETH_RETA_GROUP_SIZE];
	if (reta_size == 0 || reta_size > 512 || nq == 0)
		return -EINVAL;
	memset(conf, 0, sizeof(conf));
	for (uint16_t i = 0; i < reta_size; i++) {
		uint16_t g = i / RTE_ETH_RETA_GROUP_SIZE, s = i % RTE_ETH_RETA_GROUP_SIZE;
		conf[g].mask |= 1ULL << s;
		conf[g].reta[s] = i % nq;
	}
	return rte_eth_dev_rss_reta_update(port, conf, reta_size);
}

// gvs_rss_update sets the RSS key and hash types of a configured port
// (some PMDs ignore the ones given to rte_eth_dev_configure).
static inline int gvs_rss_update(uint16_t port, uint8_t *key, uint8_t key_len, uint64_t hf) {
	struct rte_eth_rss_conf rc;
	memset(&rc, 0, sizeof(rc));
	rc.rss_key = key;
	rc.rss_key_len = key_len;
	rc.rss_hf = hf;
	return rte_eth_dev_rss_hash_update(port, &rc);
}

// gvs_rss_key reads the key the device uses; returns its length or < 0.
static inline int gvs_rss_key(uint16_t port, uint8_t *key, uint8_t cap, uint64_t *hf) {
	struct rte_eth_rss_conf rc;
	memset(&rc, 0, sizeof(rc));
	rc.rss_key = key;
	rc.rss_key_len = cap;
	int r = rte_eth_dev_rss_hash_conf_get(port, &rc);
	if (r != 0)
		return r;
	*hf = rc.rss_hf;
	return rc.rss_key_len;
}

struct gvs_stats {
	uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};

static inline int gvs_stats(uint16_t port, struct gvs_stats *out) {
	struct rte_eth_stats s;
	int rc = rte_eth_stats_get(port, &s);
	if (rc != 0)
		return rc;
	out->ipackets = s.ipackets;
	out->opackets = s.opackets;
	out->ibytes = s.ibytes;
	out->obytes = s.obytes;
	out->imissed = s.imissed;
	out->ierrors = s.ierrors;
	out->oerrors = s.oerrors;
	out->rx_nombuf = s.rx_nombuf;
	return 0;
}

static inline int gvs_link(uint16_t port, uint32_t *speed, int *up, int *duplex) {
	struct rte_eth_link l;
	memset(&l, 0, sizeof(l));
	int rc = rte_eth_link_get_nowait(port, &l);
	if (rc != 0)
		return rc;
	*speed = l.link_speed;
	*up = l.link_status;
	*duplex = l.link_duplex;
	return 0;
}

static inline int gvs_mac(uint16_t port, uint8_t *mac) {
	struct rte_ether_addr a;
	int rc = rte_eth_macaddr_get(port, &a);
	if (rc != 0)
		return rc;
	memcpy(mac, a.addr_bytes, 6);
	return 0;
}

static inline int gvs_set_mac(uint16_t port, uint8_t *mac) {
	struct rte_ether_addr a;
	memcpy(a.addr_bytes, mac, 6);
	return rte_eth_dev_default_mac_addr_set(port, &a);
}

static inline struct rte_ring *gvs_ring_create(const char *name, unsigned count, int socket) {
	return rte_ring_create(name, count, socket == -1 ? SOCKET_ID_ANY : socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
}

static inline int gvs_eth_from_rings(const char *name, struct rte_ring **rx, unsigned nrx, struct rte_ring **tx, unsigned ntx, int socket) {
	return rte_eth_from_rings(name, rx, nrx, tx, ntx, socket == -1 ? (unsigned)SOCKET_ID_ANY : (unsigned)socket);
}

#endif
