/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * vigil.h: every struct shared between the eBPF datapath (vigil.bpf.c) and user space.
 *
 * This header is the single source of truth. The Rust mirror lives in
 * node-agent/src/abi.rs (#[repr(C)], same field names, explicit padding) and a test there
 * compares sizes and offsets against the BTF of the compiled object, so drift fails a test.
 *
 * Readers:
 *   - struct vigil_event          : node-agent ring buffer reader (decode, enrich).
 *   - policy/ipcache/endpoint keys: written by node-agent from the compiler's tables
 *                                   (policy/src/compile.rs), read only by the datapath.
 *   - struct vigil_config         : written by node-agent on every generation switch.
 *   - struct ct_key / ct_value    : datapath only; node-agent reads them for /metrics and GC.
 *
 * Multi-byte integers are host byte order unless the field name ends in _be.
 */
#ifndef VIGIL_H
#define VIGIL_H

#ifndef __VIGIL_TYPES
#include <linux/types.h>
#endif

#define VIGIL_EVENT_VERDICT 1
#define VIGIL_EVENT_VERSION 1

/* Traffic direction from the endpoint's point of view (the numbers of Hubble's TrafficDirection). */
#define VIGIL_DIR_INGRESS 1
#define VIGIL_DIR_EGRESS 2

/* Actions in a decision-table value. */
#define VIGIL_ACT_NONE 0 /* staged_action only: no staged policy differs */
#define VIGIL_ACT_ALLOW 1
#define VIGIL_ACT_DENY 2
#define VIGIL_ACT_REDIRECT 3 /* to a user-space proxy at proxy_port (reserved for L7) */

/* Decision-table value flags. */
#define VIGIL_F_LOG 0x01           /* a Log rule matched on the way: always emit an event */
#define VIGIL_F_EXPLICIT_DENY 0x02 /* denied by a Deny rule (not by end-of-tier isolation) */
#define VIGIL_F_STAGED_DIFFERS 0x04 /* staged view decides differently: always emit an event */

/* Verdicts in events (Hubble's Verdict numbers). */
#define VIGIL_VERDICT_FORWARDED 1
#define VIGIL_VERDICT_DROPPED 2

/* Drop reasons (Hubble's DropReason numbers). */
#define VIGIL_DROP_NONE 0
#define VIGIL_DROP_POLICY_DENIED 133 /* isolated, no rule allowed it (end-of-tier) */
#define VIGIL_DROP_POLICY_DENY 181   /* an explicit Deny rule */

/* Conntrack state carried in events. */
#define VIGIL_CT_NEW 1
#define VIGIL_CT_ESTABLISHED 2
#define VIGIL_CT_REPLY 3

/* Event aggregation modes (vigil_config.aggregation). */
#define VIGIL_AGG_CONNECTION 0
#define VIGIL_AGG_NONE 1

/* Per-CPU statistics slots (map vigil_stats). */
#define VIGIL_STAT_EVENTS 0      /* events written to the ring buffer */
#define VIGIL_STAT_EVENTS_LOST 1 /* events not written: ring buffer full */
#define VIGIL_STAT_PACKETS 2     /* packets seen on endpoint interfaces */
#define VIGIL_STAT_DROPS 3       /* packets dropped by policy */
#define VIGIL_STAT_CT_NEW 4      /* connections created */
#define VIGIL_STAT_MAX 8

/* Port prefix bits in a policy key: the fixed part (slot .. peer_id_be) is 12 bytes. */
#define VIGIL_POLICY_FIXED_BITS 96

/*
 * Decision table: LPM trie. Data part: slot, direction, proto, family, context, peer identity,
 * port. The compiler covers the whole port space of each (context, direction, proto, peer)
 * it emits, so the datapath probes at most (peer, proto), (0, proto), (peer, 0), (0, 0):
 * peer 0 stands for "any identity not named by a rule", proto 0 for "any protocol not named".
 * For ICMP/ICMPv6 the port is (type << 8) | code.
 */
struct policy_key {
	__u32 prefixlen;
	__u8 slot; /* generation slot (0/1), see vigil_config */
	__u8 direction;
	__u8 proto;
	__u8 family; /* 0 = any family; 4 or 6 for endpoints with VIGIL_EP_F_FAMILY_KEYED */
	__u32 context_be;
	__u32 peer_id_be;
	__u16 port_be;
	__u16 pad1;
};

struct policy_value {
	__u8 action;        /* VIGIL_ACT_* of the enforced view */
	__u8 staged_action; /* VIGIL_ACT_* of the staged view */
	__u8 flags;         /* VIGIL_F_* */
	__u8 pad0;
	__u16 proxy_port; /* with VIGIL_ACT_REDIRECT (reserved) */
	__u16 pad1;
	__u32 rule_id;        /* rule that decided the enforced view (compiler's rule table) */
	__u32 staged_rule_id; /* rule that decided the staged view */
	__u32 trace_id;       /* full trace (log hits, both views) in the compiler's trace table */
};

/* IP -> identity: LPM trie over (slot, family, address). */
struct ipcache_key {
	__u32 prefixlen; /* 32 fixed bits + address bits */
	__u8 slot;
	__u8 family; /* 4 or 6 */
	__u8 pad0[2];
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
};

struct ipcache_value {
	__u32 identity;
	__u32 flags;
};

/* Host-side interface -> endpoint, per generation slot. */
struct endpoint_key {
	__u32 ifindex;
	__u32 slot;
};

/* endpoint_value.flags */
#define VIGIL_EP_F_FAMILY_KEYED 0x01 /* its decision entries are per IP family (Calico ipVersion) */

struct endpoint_value {
	__u32 endpoint_id;
	__u32 identity; /* the endpoint's own identity */
	__u32 context;  /* decision-table context (endpoints with equal policy share one) */
	__u32 flags;
};

/* Array map with one entry; switching `slot` switches every table in one write. */
struct vigil_config {
	__u32 slot;
	__u32 generation;
	__u32 aggregation; /* VIGIL_AGG_* */
	__u32 pad0;
};

/* Conntrack: the tuple in the initiator's orientation, per interface and policy direction. */
struct ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 direction; /* direction of the policy evaluation that created it */
	__u8 family;
	__u8 pad0;
	__u32 ifindex;
};

#define VIGIL_CT_F_REPLY_SEEN 0x01
#define VIGIL_CT_F_SYN 0x02
#define VIGIL_CT_F_FIN_ORIG 0x04
#define VIGIL_CT_F_FIN_REPLY 0x08
#define VIGIL_CT_F_RST 0x10

struct ct_value {
	__u64 created_ns;
	__u64 last_seen_ns;
	__u32 generation;
	__u32 rule_id;
	__u32 staged_rule_id;
	__u32 trace_id;
	__u32 peer_identity;
	__u32 flags; /* VIGIL_CT_F_*, updated atomically */
	__u8 staged_action;
	__u8 value_flags; /* policy_value.flags at creation */
	__u16 pad0;
	__u32 pad1;
};

/* One verdict event in the ring buffer. */
struct vigil_event {
	__u8 type;    /* VIGIL_EVENT_VERDICT */
	__u8 version; /* VIGIL_EVENT_VERSION */
	__u8 direction;
	__u8 verdict; /* VIGIL_VERDICT_* */
	__u8 drop_reason;
	__u8 ct_state; /* VIGIL_CT_* */
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u8 tcp_flags; /* raw TCP flags byte (FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80) */
	__u8 action;    /* VIGIL_ACT_* enforced */
	__u8 staged_action;
	__u8 value_flags; /* VIGIL_F_* */
	__u32 ifindex;
	__u64 ts_ns; /* bpf_ktime_get_boot_ns() */
	__u32 endpoint_id;
	__u32 local_identity;
	__u32 peer_identity;
	__u32 rule_id;
	__u32 staged_rule_id;
	__u32 trace_id;
	__u32 generation;
	__u32 pkt_len;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* ICMP: type */
	__u16 dport; /* ICMP: code */
	__u32 pad0;
};

#endif /* VIGIL_H */
