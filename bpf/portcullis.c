//go:build ignore

/* portcullis: drop banned and over-rate traffic to the mail ports before the
 * TCP handshake.
 *
 * Verdict order (see README "How the datapath decides"):
 *   1. allowlisted source            -> pass (the allowlist always wins)
 *   2. unexpired ban covering packet -> drop
 *   3. geo policy of the source's country -> drop
 *   4. SYN to a protected port over its class's rate -> drop
 *   5. pass
 * The allowlist only matters when something would drop, so it is consulted
 * last, only on that path; maps that userspace marks empty are not looked up.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "portcullis.h"

char __license[] SEC("license") = "Dual MIT/GPL";

#define MAX_VLAN 2
#define MAX_EXT 6
#define MAX_NEST 8 /* nested prefix bans looked through when the narrowest is inactive */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1000000);
	__type(key, struct pc_addr);
	__type(value, struct pc_ban);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bans SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct pc_lpm4_key);
	__type(value, struct pc_ban);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} prefix_bans4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct pc_lpm6_key);
	__type(value, struct pc_ban);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} prefix_bans6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct pc_lpm_key);
	__type(value, struct pc_ban);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} prefix_bans6l SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct pc_lpm_key);
	__type(value, __u64); /* when it was added, unix seconds (informational) */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} allowlist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32); /* enum pc_class */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PC_CFG_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PC_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1000000);
	__type(key, struct pc_addr);
	__type(value, struct pc_source);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sources SEC(".maps");

/* Geo tries, two sets (see portcullis.h): _0 and _1. */
#define GEO_TRIE(name, keytype)                                 \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);            \
		__uint(map_flags, BPF_F_NO_PREALLOC);           \
		__uint(max_entries, 1048576);                   \
		__type(key, keytype);                           \
		__type(value, struct pc_geo);                   \
		__uint(pinning, LIBBPF_PIN_BY_NAME);            \
	} name SEC(".maps")

GEO_TRIE(geo4_0, struct pc_lpm4_key);
GEO_TRIE(geo4_1, struct pc_lpm4_key);
GEO_TRIE(geo6_0, struct pc_lpm_key);
GEO_TRIE(geo6_1, struct pc_lpm_key);

/* Packets dropped by geo policy, per country index. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PC_GEO_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} geo_drops SEC(".maps");

/* What parsing found out about a packet. */
struct pkt {
	struct pc_addr src;
	__u16 dport;
	__u8 have_src;  /* the network header was complete enough to read the source */
	__u8 have_l4;   /* a complete TCP header was read */
	__u8 syn;       /* SYN set, ACK clear */
	__u8 malformed; /* truncated or inconsistent */
	__u8 ipv6;
};

static __always_inline __u64 cfg(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&config, &idx);
	return v ? *v : 0;
}

static __always_inline void count(__u32 idx, struct pc_explain *ex)
{
	if (ex)
		return;
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline int parse_tcp(void *l4, void *end, struct pkt *p)
{
	struct tcphdr *th = l4;
	if ((void *)(th + 1) > end || th->doff < 5) {
		p->malformed = 1;
		return 0;
	}
	p->dport = bpf_ntohs(th->dest);
	p->syn = th->syn && !th->ack;
	p->have_l4 = 1;
	return 0;
}

static __always_inline void parse_ipv4(void *nh, void *end, struct pkt *p)
{
	struct iphdr *ip = nh;
	if ((void *)(ip + 1) > end || ip->version != 4) {
		p->malformed = 1;
		return;
	}
	p->src.a[2] = bpf_htonl(0xffff);
	p->src.a[3] = ip->saddr;
	p->have_src = 1;

	__u32 hlen = ip->ihl * 4;
	if (hlen < sizeof(*ip) || nh + hlen > end || bpf_ntohs(ip->tot_len) < hlen) {
		p->malformed = 1;
		return;
	}
	/* A later fragment carries no TCP header; only the first has ports. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return;
	if (ip->protocol == IPPROTO_TCP)
		parse_tcp(nh + hlen, end, p);
}

/* ipv6_opt_hdr is not in every uapi header set, so define the two bytes used. */
struct ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

static __always_inline void parse_ipv6(void *nh, void *end, struct pkt *p)
{
	struct ipv6hdr *ip6 = nh;
	if ((void *)(ip6 + 1) > end || ip6->version != 6) {
		p->malformed = 1;
		return;
	}
	__builtin_memcpy(&p->src, &ip6->saddr, sizeof(p->src));
	p->have_src = 1;
	p->ipv6 = 1;

	__u8 next = ip6->nexthdr;
	void *cur = ip6 + 1;
	/* One pass per extension header, plus one to reach the TCP header
	 * after the last of them. */
#pragma unroll
	for (int i = 0; i < MAX_EXT + 1; i++) {
		switch (next) {
		case IPPROTO_TCP:
			parse_tcp(cur, end, p);
			return;
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS: {
			struct ext_hdr *h = cur;
			if ((void *)(h + 1) > end) {
				p->malformed = 1;
				return;
			}
			next = h->nexthdr;
			cur += (h->hdrlen + 1) * 8;
			break;
		}
		case IPPROTO_AH: {
			struct ext_hdr *h = cur;
			if ((void *)(h + 1) > end) {
				p->malformed = 1;
				return;
			}
			next = h->nexthdr;
			cur += (h->hdrlen + 2) * 4;
			break;
		}
		case IPPROTO_FRAGMENT: {
			struct frag_hdr *h = cur;
			if ((void *)(h + 1) > end) {
				p->malformed = 1;
				return;
			}
			if (h->frag_off & bpf_htons(0xfff8))
				return; /* a later fragment: no TCP header */
			next = h->nexthdr;
			cur += sizeof(*h);
			break;
		}
		default:
			return; /* UDP, ICMPv6, ESP, no next header, ...: no ports for us */
		}
	}
	/* More extension headers than we follow: the source is known, the port
	 * is not. Such a chain is not what a mail client sends. */
	p->malformed = 1;
}

/* parse returns 0 for IP traffic (p->have_src says whether the source is
 * known) and -1 for non-IP frames. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end) {
		p->malformed = 1;
		return 0;
	}
	__u16 proto = eth->h_proto;
	void *nh = eth + 1;
#pragma unroll
	for (int i = 0; i < MAX_VLAN; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		/* struct vlan_hdr: TCI, then the encapsulated protocol. */
		__be16 *vh = nh;
		if ((void *)(vh + 2) > end) {
			p->malformed = 1;
			return 0;
		}
		proto = vh[1];
		nh = vh + 2;
	}
	if (proto == bpf_htons(ETH_P_IP))
		parse_ipv4(nh, end, p);
	else if (proto == bpf_htons(ETH_P_IPV6))
		parse_ipv6(nh, end, p);
	else if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		p->malformed = 1; /* more tags than we follow */
	else
		return -1;
	return 0;
}

/* ban_clock is the boot clock as bans are checked against it, read once per
 * packet and only for packets that meet a ban with a start or an expiry.
 * It is the coarse monotonic clock (a few ns, where reading the boot clock
 * costs ~40 ns here, more than the rest of an ACK's path) plus the offset of
 * the boot clock that userspace keeps current: within a tick (1-4 ms) of the
 * boot clock. After a suspend while no userspace runs, the offset is stale
 * and bans end late by the time suspended, never early. */
static __always_inline __u64 ban_clock(__u64 *now)
{
	if (!*now)
		*now = bpf_ktime_get_coarse_ns() + cfg(PC_CFG_BOOT_OFFSET);
	return *now;
}

static __always_inline int ban_covers(struct pc_ban *b, __u64 *now, __u32 class)
{
	if (b->scope != PC_SCOPE_ALL && !(b->scope == PC_SCOPE_MAIL && class != PC_CLASS_NONE))
		return 0;
	if (b->starts && ban_clock(now) < b->starts)
		return 0;
	if (b->expires && ban_clock(now) >= b->expires)
		return 0;
	return 1;
}

/* find_prefix_ban returns the narrowest prefix ban that covers the packet.
 * An inactive narrower ban (expired, not yet started or of another scope)
 * must not hide a wider active one, so the lookup continues above it. The
 * same loop serves both tries; only the key differs. */
#define FIND_PREFIX_BAN(trie, k, maxlen, now, class)                        \
	({                                                                  \
		struct pc_ban *found = 0;                                   \
		_Pragma("unroll") for (int i = 0; i < MAX_NEST; i++)        \
		{                                                           \
			struct pc_ban *b = bpf_map_lookup_elem(&trie, &k);  \
			if (!b)                                             \
				break;                                      \
			if (ban_covers(b, now, class)) {                    \
				found = b;                                  \
				break;                                      \
			}                                                   \
			if (b->plen == 0 || b->plen > maxlen)               \
				break;                                      \
			k.prefixlen = b->plen - 1;                          \
		}                                                           \
		found;                                                      \
	})

static __always_inline struct pc_ban *find_prefix_ban(struct pkt *p, __u64 *now, __u32 class)
{
	if (p->ipv6) {
		/* Longer prefixes are narrower: look there first. */
		if (cfg(PC_CFG_HAVE_PREFIX6L)) {
			struct pc_lpm_key kl = {.prefixlen = 128};
			__builtin_memcpy(kl.a, p->src.a, sizeof(kl.a));
			struct pc_ban *b = FIND_PREFIX_BAN(prefix_bans6l, kl, 128, now, class);
			if (b)
				return b;
		}
		if (!cfg(PC_CFG_HAVE_PREFIX6))
			return 0;
		struct pc_lpm6_key k = {.prefixlen = 64, .a = {p->src.a[0], p->src.a[1]}};
		return FIND_PREFIX_BAN(prefix_bans6, k, 64, now, class);
	}
	if (!cfg(PC_CFG_HAVE_PREFIX4))
		return 0;
	struct pc_lpm4_key k = {.prefixlen = 32, .addr = p->src.a[3]};
	return FIND_PREFIX_BAN(prefix_bans4, k, 32, now, class);
}

static __always_inline int allowlisted(struct pc_addr *src)
{
	if (!cfg(PC_CFG_HAVE_ALLOW))
		return 0;
	struct pc_lpm_key k = {.prefixlen = 128};
	__builtin_memcpy(k.a, src->a, sizeof(k.a));
	return bpf_map_lookup_elem(&allowlist, &k) != 0;
}

/* rate_limit takes one token from the source's bucket for the class; it
 * returns 1 when the bucket was empty. The bucket is GCRA: one timestamp per
 * class, advanced with compare-and-swap so that SYNs from one source on
 * several CPUs cannot overspend it. */
static __always_inline int rate_limit(struct pkt *p, __u32 class, struct pc_explain *ex)
{
	/* Tokens refill at up to thousands a minute: they need the precise
	 * clock, which only SYNs to protected ports pay for. */
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 interval = cfg(PC_CFG_INTERVAL + class);
	__u64 tol = cfg(PC_CFG_TOLERANCE + class);
	__u32 ci = class == PC_CLASS_MX ? 0 : 1;

	struct pc_addr key = p->src;
	if (p->ipv6) {
		key.a[2] = 0; /* IPv6 sources share a bucket per /64 */
		key.a[3] = 0;
	}
	struct pc_source *s = bpf_map_lookup_elem(&sources, &key);
	if (!s && !ex) {
		struct pc_source fresh = {};
		bpf_map_update_elem(&sources, &key, &fresh, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&sources, &key);
		if (!s)
			count(PC_CNT_TRACK_FULL, ex);
	}
	if (ex) {
		__u64 used = 0;
		if (s) {
			ex->flags |= PC_EXPLAIN_TRACKED;
			__u64 tat = s->tat[ci];
			used = tat > now ? tat - now : 0;
		}
		ex->tokens = interval && tol >= used ? (tol - used) / interval : (interval ? 0 : 0xffffffff);
		return interval && ex->tokens == 0;
	}
	if (!s)
		return 0; /* cannot track: never drop for our own lack of room */

	__sync_fetch_and_add(&s->syns[ci], 1);
	s->last_seen = now;
	if (!interval)
		return 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u64 tat = s->tat[ci];
		__u64 next = (tat > now ? tat : now) + interval;
		if (next - now > tol) {
			__sync_fetch_and_add(&s->drops[ci], 1);
			return 1;
		}
		if (__sync_val_compare_and_swap(&s->tat[ci], tat, next) == tat)
			return 0;
	}
	return 0; /* lost every race: let this one through */
}

/* geo_entry looks the source up in the live set of geo tries. */
static __always_inline struct pc_geo *geo_entry(struct pkt *p, __u64 g)
{
	if (p->ipv6) {
		struct pc_lpm_key k = {.prefixlen = 128};
		__builtin_memcpy(k.a, p->src.a, sizeof(k.a));
		if (g & PC_GEO_CFG_SET)
			return bpf_map_lookup_elem(&geo6_1, &k);
		return bpf_map_lookup_elem(&geo6_0, &k);
	}
	struct pc_lpm4_key k = {.prefixlen = 32, .addr = p->src.a[3]};
	if (g & PC_GEO_CFG_SET)
		return bpf_map_lookup_elem(&geo4_1, &k);
	return bpf_map_lookup_elem(&geo4_0, &k);
}

/* geo_drop returns the country index to count the drop against when the
 * geo policy drops the packet, or -1 when it does not. A `all` policy sees
 * every packet; a class policy sees SYNs to its ports. */
static __always_inline int geo_drop(struct pkt *p, __u32 class, __u64 g, struct pc_explain *ex)
{
	__u32 applies = PC_GEO_BIT_ALL;
	if (p->syn && class != PC_CLASS_NONE)
		applies |= 1 << class;
	applies &= g >> PC_GEO_CFG_CLASSES_SHIFT;
	if (!applies && !ex)
		return -1;
	struct pc_geo *v = geo_entry(p, g);
	__u32 country = PC_GEO_UNKNOWN;
	__u32 drop = (g >> PC_GEO_CFG_UNKNOWN_SHIFT) & 0xff;
	if (v) {
		country = v->country;
		drop = v->drop;
	}
	if (ex) {
		ex->flags |= PC_EXPLAIN_GEO;
		ex->geo_country = country;
		ex->geo_drop = drop;
	}
	if (!(drop & applies))
		return -1;
	return country;
}

static __always_inline int finish(struct pc_explain *ex, __u32 rule, __u32 counter, int action)
{
	count(counter, ex);
	if (ex) {
		ex->rule = rule;
		ex->action = action;
	}
	return action;
}

SEC("xdp")
int portcullis(struct xdp_md *ctx)
{
	struct pc_explain *ex = 0;
	void *meta = (void *)(long)ctx->data_meta;
	if (meta + sizeof(*ex) <= (void *)(long)ctx->data && ((struct pc_explain *)meta)->magic == PC_EXPLAIN_MAGIC)
		ex = meta;

	struct pkt p = {};
	if (parse(ctx, &p) < 0) {
		count(PC_CNT_NON_IP, ex);
		return finish(ex, PC_RULE_NON_IP, PC_CNT_PASSED, XDP_PASS);
	}
	if (p.malformed)
		count(PC_CNT_MALFORMED, ex);
	if (!p.have_src)
		return finish(ex, PC_RULE_MALFORMED, PC_CNT_PASSED, XDP_PASS);

	__u32 class = PC_CLASS_NONE;
	if (p.have_l4) {
		__u32 port = p.dport;
		__u32 *c = bpf_map_lookup_elem(&ports, &port);
		if (c && *c < PC_CLASS_MAX)
			class = *c;
	}
	if (ex) {
		ex->class = class;
		if (class != PC_CLASS_NONE && p.syn)
			ex->flags |= PC_EXPLAIN_SYN;
		if (allowlisted(&p.src))
			ex->flags |= PC_EXPLAIN_ALLOWLISTED;
	}

	/* Look first where the ban most likely is: IPv4 sources are banned one
	 * address at a time, IPv6 sources one /64 at a time. Either order
	 * drops the same packets; it only decides which of two covering bans
	 * counts the hit. */
	__u64 now = 0;
	__u32 rule = 0;
	struct pc_ban *b = 0;
	if (p.ipv6) {
		b = find_prefix_ban(&p, &now, class);
		rule = PC_RULE_BAN_PREFIX;
	}
	if (!b && cfg(PC_CFG_HAVE_EXACT)) {
		b = bpf_map_lookup_elem(&bans, &p.src);
		if (b && !ban_covers(b, &now, class))
			b = 0;
		rule = PC_RULE_BAN_EXACT;
	}
	if (!b && !p.ipv6) {
		b = find_prefix_ban(&p, &now, class);
		rule = PC_RULE_BAN_PREFIX;
	}
	if (b) {
		if (allowlisted(&p.src))
			return finish(ex, PC_RULE_ALLOW, PC_CNT_ALLOWLISTED, XDP_PASS);
		if (ex) {
			ex->ban_plen = b->plen;
		} else {
			__sync_fetch_and_add(&b->hits, 1);
		}
		return finish(ex, rule, PC_CNT_DROPPED_BAN, XDP_DROP);
	}

	__u64 g = cfg(PC_CFG_HAVE_GEO);
	if (g) {
		int country = geo_drop(&p, class, g, ex);
		if (country >= 0) {
			if (allowlisted(&p.src))
				return finish(ex, PC_RULE_ALLOW, PC_CNT_ALLOWLISTED, XDP_PASS);
			if (!ex) {
				__u32 idx = country;
				__u64 *n = bpf_map_lookup_elem(&geo_drops, &idx);
				if (n)
					*n += 1;
			}
			return finish(ex, PC_RULE_GEO, PC_CNT_DROPPED_GEO, XDP_DROP);
		}
	}

	if (class == PC_CLASS_NONE || !p.syn)
		return finish(ex, PC_RULE_PASS, PC_CNT_PASSED, XDP_PASS);

	count(class == PC_CLASS_MX ? PC_CNT_SYN_MX : PC_CNT_SYN_AUTH, ex);
	if (rate_limit(&p, class, ex)) {
		if (allowlisted(&p.src))
			return finish(ex, PC_RULE_ALLOW, PC_CNT_ALLOWLISTED, XDP_PASS);
		return finish(ex, PC_RULE_RATE, PC_CNT_DROPPED_RATE, XDP_DROP);
	}
	return finish(ex, PC_RULE_PASS, PC_CNT_PASSED, XDP_PASS);
}
