/* Key and value layouts shared by the XDP program and its Go bindings.
 *
 * Every layout here is part of the pinned-map contract: a pinned map whose
 * key or value differs from these is refused by the loader. Grow by using a
 * reserved field or a new config/counter index, never by reshaping a struct.
 */
#ifndef PORTCULLIS_H
#define PORTCULLIS_H

#include <linux/types.h>

/* Port classes. */
enum pc_class {
	PC_CLASS_NONE = 0, /* unprotected port */
	PC_CLASS_MX = 1,   /* 25 */
	PC_CLASS_AUTH = 2, /* 465, 587, 110, 995, 143, 993, 4190 */
	PC_CLASS_MAX = 3,
};

/* Ban scopes. */
enum pc_scope {
	PC_SCOPE_ALL = 1,  /* every packet from the source */
	PC_SCOPE_MAIL = 2, /* packets to protected ports only */
};

/* Indexes into the config array (one __u64 each, so that every setting is
 * written atomically on its own). */
enum pc_config {
	PC_CFG_HAVE_EXACT = 0,  /* nonzero: the exact ban map may hold entries */
	PC_CFG_HAVE_PREFIX4 = 1, /* nonzero: the IPv4 prefix ban trie may hold entries */
	PC_CFG_HAVE_ALLOW = 2,  /* nonzero: the allowlist may hold entries */
	PC_CFG_HAVE_GEO = 3,    /* geo policy, 0 = none; see PC_GEO_CFG_* */
	PC_CFG_HAVE_PREFIX6 = 4, /* nonzero: the IPv6 prefix ban trie (/0 to /64) may hold entries */
	PC_CFG_BOOT_OFFSET = 5,  /* CLOCK_BOOTTIME - CLOCK_MONOTONIC in ns, kept current by userspace */
	PC_CFG_HAVE_PREFIX6L = 6, /* nonzero: the long IPv6 prefix ban trie (/65 to /127) may hold entries */
	PC_CFG_INTERVAL = 8,    /* + class: ns per token, 0 = no rate limit */
	PC_CFG_TOLERANCE = 12,  /* + class: burst * interval in ns */
	PC_CFG_MAX = 64,
};

/* Per-CPU counters: each packet lands in exactly one of the verdict
 * counters (passed, allowlisted, dropped_*); the others are extra facts. */
enum pc_counter {
	PC_CNT_PASSED = 0,
	PC_CNT_ALLOWLISTED = 1, /* would have been dropped, the allowlist passed it */
	PC_CNT_DROPPED_BAN = 2,
	PC_CNT_DROPPED_RATE = 3,
	PC_CNT_DROPPED_GEO = 4, /* dropped by a country policy */
	PC_CNT_SYN_MX = 5,
	PC_CNT_SYN_AUTH = 6,
	PC_CNT_MALFORMED = 7,
	PC_CNT_NON_IP = 8,
	PC_CNT_TRACK_FULL = 9, /* a SYN whose source could not be tracked */
	PC_CNT_MAX = 32,
};

/* An address as the maps key it: IPv6, with IPv4 mapped (::ffff:a.b.c.d). */
struct pc_addr {
	__u32 a[4];
};

/* Key of the allowlist and the IPv6 prefix ban trie; prefixlen counts bits
 * of the mapped form (an IPv4 /24 in the allowlist is 120). */
struct pc_lpm_key {
	__u32 prefixlen;
	__u32 a[4];
};

/* Key of the IPv6 prefix ban trie for /0 to /64, the common case (a /64 is
 * one host's network, a /48 one site's): half the key of the full form. */
struct pc_lpm6_key {
	__u32 prefixlen;
	__u32 a[2];
};

/* Key of the IPv4 prefix ban trie. IPv4 prefix bans have a trie of their
 * own: a 4-byte key is compared in one step where the mapped 16-byte form
 * takes two, at every level of the trie, on the path of every drop. */
struct pc_lpm4_key {
	__u32 prefixlen;
	__u32 addr;
};

#define PC_REASON_LEN 48

struct pc_ban {
	__u64 starts;  /* boot clock ns the ban starts at; 0: at once */
	__u64 expires; /* boot clock ns the ban ends at; 0: never */
	__u64 hits;    /* packets dropped by this ban */
	__u8 scope;    /* enum pc_scope */
	__u8 plen;     /* prefix length of the ban in its family: 32 or 128 for one address */
	__u8 origin;   /* who made the ban: manual, log, subnet, ... (userspace's enum) */
	__u8 _pad[5];
	char reason[PC_REASON_LEN];
};

/* Per-source state for SYNs to protected ports. IPv4 sources are keyed per
 * address, IPv6 sources per /64. Index 0 is mx, 1 is auth. */
struct pc_source {
	__u64 tat[2];    /* GCRA theoretical arrival time, boot clock ns */
	__u64 last_seen; /* boot clock ns of the last SYN */
	__u32 syns[2];
	__u32 drops[2];
};

/* BPF_PROG_TEST_RUN may pass this as XDP metadata to ask what the program
 * would do with a packet. Real traffic never carries it (the program is the
 * first to see the frame), and an explained packet changes no state: no
 * tokens, counters, hits or tracked sources. */
#define PC_EXPLAIN_MAGIC 0x70637821 /* "pcx!" */

enum pc_rule {
	PC_RULE_PASS = 0,      /* nothing matched */
	PC_RULE_NON_IP = 1,
	PC_RULE_MALFORMED = 2, /* could not read the source: passed */
	PC_RULE_ALLOW = 3,     /* would drop, allowlisted */
	PC_RULE_BAN_EXACT = 4,
	PC_RULE_BAN_PREFIX = 5,
	PC_RULE_GEO = 6,       /* dropped by a country policy */
	PC_RULE_RATE = 7,
};

#define PC_EXPLAIN_ALLOWLISTED 1 /* the source is in the allowlist */
#define PC_EXPLAIN_SYN 2         /* the packet is a SYN to a protected port */
#define PC_EXPLAIN_TRACKED 4     /* the source has a rate-limit entry */
#define PC_EXPLAIN_GEO 8         /* geo was looked up: geo_country is set */

struct pc_explain {
	__u32 magic;
	__u8 rule;  /* enum pc_rule */
	__u8 class; /* enum pc_class of the destination port */
	__u8 flags; /* PC_EXPLAIN_* */
	__u8 ban_plen;
	__u32 tokens; /* tokens in the source's bucket before this SYN */
	__u32 action; /* the XDP action */
	__u16 geo_country; /* PC_GEO_* index of the source, with PC_EXPLAIN_GEO */
	__u8 geo_drop;     /* the classes (PC_GEO_BIT_*) its geo entry drops */
	__u8 _pad;
	__u32 _reserved0;
	__u64 _reserved1;
};

/* Geo policy.
 *
 * Countries are indexed by their ISO 3166 code: (c0-'A')*26 + (c1-'A').
 * The tries hold only the prefixes of countries some policy names, each with
 * the classes it drops; when a policy must tell "another country" from "not
 * in the database" (an allow-list, or unknown = drop on a deny-list), they
 * also hold the rest of the database's coverage as PC_GEO_OTHER, merged into
 * large ranges. An address in no trie entry is PC_GEO_UNKNOWN and takes the
 * drop mask in the config word.
 *
 * There are two sets of tries; the config word names the live one, so a new
 * database or policy is built completely in the other set and switched to
 * with one 8-byte write, which also carries the masks of that policy. */
#define PC_GEO_OTHER 676   /* in the database, a country no policy names */
#define PC_GEO_UNKNOWN 677 /* not in the database */
#define PC_GEO_MAX 678

/* Bits of a drop or policy mask: one per port class, bit 0 for `all`. */
#define PC_GEO_BIT_ALL 1
/* (1 << PC_CLASS_MX) = 2, (1 << PC_CLASS_AUTH) = 4 */

/* The PC_CFG_HAVE_GEO word. */
#define PC_GEO_CFG_ON 1                /* a policy exists */
#define PC_GEO_CFG_SET 2               /* the live set: 0 or 1 */
#define PC_GEO_CFG_UNKNOWN_SHIFT 8     /* drop mask of addresses not in the tries */
#define PC_GEO_CFG_CLASSES_SHIFT 16    /* mask of classes that have a policy */

struct pc_geo {
	__u16 country; /* country index, or PC_GEO_OTHER */
	__u8 drop;     /* classes this prefix is dropped for (PC_GEO_BIT_*) */
	__u8 _pad;
};

#endif
