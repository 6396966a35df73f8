// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * vigil.bpf.c: the policy datapath, attached at tc on each endpoint's host-side veth.
 *
 * tc ingress on the host veth sees what the pod sends (the pod's EGRESS), tc egress sees what the
 * pod receives (its INGRESS). Per packet the cost is a fixed number of map probes whatever the
 * number of policies: endpoint lookup, at most two conntrack probes, then for a new connection one
 * ipcache LPM probe and at most four decision-table LPM probes. Ordered semantics (tiers, order,
 * Pass, Log, deny precedence, staged view) are resolved by the compiler in user space; this
 * program never loops over rules.
 *
 * It must not: allocate per-connection state for denied packets, block on anything, or emit an
 * event silently lost (a full ring buffer increments VIGIL_STAT_EVENTS_LOST).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "vigil.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define NS_PER_SEC 1000000000ULL
#define CT_TIMEOUT_TCP_EST (21600ULL * NS_PER_SEC)
#define CT_TIMEOUT_TCP_SYN (60ULL * NS_PER_SEC)
#define CT_TIMEOUT_TCP_CLOSE (10ULL * NS_PER_SEC)
#define CT_TIMEOUT_OTHER (60ULL * NS_PER_SEC)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4194304);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIGIL_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_stats SEC(".maps");

/*
 * The event only travels through the ring buffer, which has no value type, so nothing else would
 * keep it in the object's BTF; node-agent's layout test reads it from there.
 */
struct vigil_event vigil_event_layout __attribute__((unused));

struct pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* ports in host order; ICMP: echo id in both for conntrack */
	__u16 dport;
	__u16 policy_port; /* destination port, or (type << 8) | code for ICMP */
	__u8 proto;
	__u8 family;
	__u8 tcp_flags;
	__u8 ct_ok; /* the tuple identifies a connection (ports known, or ICMP echo) */
	__u8 is_icmp_echo_reply;
	__u8 pad;
	__u32 len;
};

static __always_inline void stat_inc(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&vigil_stats, &slot);
	if (v)
		*v += 1;
}

static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, __u32 off, int first_frag)
{
	p->ct_ok = 0;
	if (!first_frag)
		return 0;
	switch (p->proto) {
	case IPPROTO_TCP: {
		__u8 hdr[14];
		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0)
			return 0;
		p->sport = ((__u16)hdr[0] << 8) | hdr[1];
		p->dport = ((__u16)hdr[2] << 8) | hdr[3];
		p->tcp_flags = hdr[13];
		p->policy_port = p->dport;
		p->ct_ok = 1;
		break;
	}
	case IPPROTO_UDP:
	case IPPROTO_SCTP: {
		__u8 hdr[4];
		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0)
			return 0;
		p->sport = ((__u16)hdr[0] << 8) | hdr[1];
		p->dport = ((__u16)hdr[2] << 8) | hdr[3];
		p->policy_port = p->dport;
		p->ct_ok = 1;
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 hdr[8];
		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0)
			return 0;
		__u8 type = hdr[0], code = hdr[1];
		__u16 id = ((__u16)hdr[4] << 8) | hdr[5];
		p->policy_port = ((__u16)type << 8) | code;
		int echo_req = p->proto == IPPROTO_ICMP ? type == 8 : type == 128;
		int echo_rep = p->proto == IPPROTO_ICMP ? type == 0 : type == 129;
		if (echo_req || echo_rep) {
			p->sport = id;
			p->dport = id;
			p->ct_ok = 1;
			p->is_icmp_echo_reply = echo_rep;
		}
		break;
	}
	default:
		break;
	}
	return 0;
}

/* Returns 1 for a parsed IP packet, 0 for anything else (which passes untouched). */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return 0;
	p->len = skb->len;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return 0;
		p->family = 4;
		p->proto = ip->protocol;
		__builtin_memcpy(p->saddr, &ip->saddr, 4);
		__builtin_memcpy(p->daddr, &ip->daddr, 4);
		__u32 ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return 0;
		int first_frag = (ip->frag_off & bpf_htons(0x1fff)) == 0;
		return parse_l4(skb, p, sizeof(*eth) + ihl, first_frag) == 0;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		p->family = 6;
		__builtin_memcpy(p->saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->daddr, &ip6->daddr, 16);
		__u8 nexthdr = ip6->nexthdr;
		__u32 off = sizeof(*eth) + sizeof(*ip6);
		int first_frag = 1;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u8 ext[8];
			if (nexthdr != NEXTHDR_HOP && nexthdr != NEXTHDR_ROUTING &&
			    nexthdr != NEXTHDR_FRAGMENT && nexthdr != NEXTHDR_AUTH &&
			    nexthdr != NEXTHDR_DEST)
				break;
			if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
				return 0;
			if (nexthdr == NEXTHDR_FRAGMENT) {
				__u16 frag = ((__u16)ext[2] << 8) | ext[3];
				first_frag = (frag & 0xfff8) == 0;
				off += 8;
			} else if (nexthdr == NEXTHDR_AUTH) {
				off += ((__u32)ext[1] + 2) * 4;
			} else {
				off += ((__u32)ext[1] + 1) * 8;
			}
			nexthdr = ext[0];
		}
		p->proto = nexthdr;
		return parse_l4(skb, p, off, first_frag) == 0;
	}
	return 0;
}

static __always_inline int icmpv6_is_link_plumbing(__u16 type)
{
	return (type >= 130 && type <= 137) || type == 143;
}

static __always_inline __u32 ipcache_identity(__u8 slot, __u8 family, const __u8 *addr)
{
	struct ipcache_key k = {};
	k.slot = slot;
	k.family = family;
	k.prefixlen = 32 + (family == 4 ? 32 : 128);
	__builtin_memcpy(k.addr, addr, 16);
	struct ipcache_value *v = bpf_map_lookup_elem(&vigil_ipcache, &k);
	return v ? v->identity : 2 /* world */;
}

static __always_inline struct policy_value *policy_probe(__u8 slot, __u8 dir, __u8 proto,
							 __u8 family, __u32 ctx, __u32 peer,
							 __u16 port)
{
	struct policy_key k = {};
	k.prefixlen = VIGIL_POLICY_FIXED_BITS + 16;
	k.slot = slot;
	k.direction = dir;
	k.proto = proto;
	k.family = family;
	k.context_be = bpf_htonl(ctx);
	k.peer_id_be = bpf_htonl(peer);
	k.port_be = bpf_htons(port);
	return bpf_map_lookup_elem(&vigil_policy, &k);
}

static __always_inline struct policy_value *policy_lookup(__u8 slot, __u8 dir, __u8 proto,
							  __u8 family, __u32 ctx, __u32 peer,
							  __u16 port)
{
	struct policy_value *v = policy_probe(slot, dir, proto, family, ctx, peer, port);
	if (v)
		return v;
	v = policy_probe(slot, dir, proto, family, ctx, 0, port);
	if (v)
		return v;
	v = policy_probe(slot, dir, 0, family, ctx, peer, 0);
	if (v)
		return v;
	return policy_probe(slot, dir, 0, family, ctx, 0, 0);
}

static __always_inline void emit(struct __sk_buff *skb, const struct pkt *p, __u8 dir,
				 const struct endpoint_value *ep, const struct vigil_config *cfg,
				 __u8 verdict, __u8 drop_reason, __u8 ct_state, __u32 peer,
				 __u8 action, __u8 staged_action, __u8 value_flags, __u32 rule_id,
				 __u32 staged_rule_id, __u32 trace_id, __u32 generation)
{
	struct vigil_event *e = bpf_ringbuf_reserve(&vigil_events, sizeof(*e), 0);
	if (!e) {
		stat_inc(VIGIL_STAT_EVENTS_LOST);
		return;
	}
	e->type = VIGIL_EVENT_VERDICT;
	e->version = VIGIL_EVENT_VERSION;
	e->direction = dir;
	e->verdict = verdict;
	e->drop_reason = drop_reason;
	e->ct_state = ct_state;
	e->proto = p->proto;
	e->family = p->family;
	e->tcp_flags = p->tcp_flags;
	e->action = action;
	e->staged_action = staged_action;
	e->value_flags = value_flags;
	e->ifindex = skb->ifindex;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->endpoint_id = ep->endpoint_id;
	e->local_identity = ep->identity;
	e->peer_identity = peer;
	e->rule_id = rule_id;
	e->staged_rule_id = staged_rule_id;
	e->trace_id = trace_id;
	e->generation = generation;
	e->pkt_len = p->len;
	__builtin_memcpy(e->saddr, p->saddr, 16);
	__builtin_memcpy(e->daddr, p->daddr, 16);
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		e->sport = p->policy_port >> 8;
		e->dport = p->policy_port & 0xff;
	} else {
		e->sport = p->sport;
		e->dport = p->dport;
	}
	e->pad0 = 0;
	bpf_ringbuf_submit(e, 0);
	stat_inc(VIGIL_STAT_EVENTS);
}

static __always_inline __u64 ct_timeout(const struct pkt *p, const struct ct_value *v)
{
	if (p->proto != IPPROTO_TCP)
		return CT_TIMEOUT_OTHER;
	if (v->flags & VIGIL_CT_F_RST)
		return CT_TIMEOUT_TCP_CLOSE;
	if ((v->flags & VIGIL_CT_F_FIN_ORIG) && (v->flags & VIGIL_CT_F_FIN_REPLY))
		return CT_TIMEOUT_TCP_CLOSE;
	if (!(v->flags & VIGIL_CT_F_REPLY_SEEN))
		return CT_TIMEOUT_TCP_SYN;
	return CT_TIMEOUT_TCP_EST;
}

static __always_inline void fill_ct_key(struct ct_key *k, const struct pkt *p, int reverse,
					__u8 dir, __u32 ifindex)
{
	if (reverse) {
		__builtin_memcpy(k->saddr, p->daddr, 16);
		__builtin_memcpy(k->daddr, p->saddr, 16);
		k->sport = p->dport;
		k->dport = p->sport;
	} else {
		__builtin_memcpy(k->saddr, p->saddr, 16);
		__builtin_memcpy(k->daddr, p->daddr, 16);
		k->sport = p->sport;
		k->dport = p->dport;
	}
	k->proto = p->proto;
	k->direction = dir;
	k->family = p->family;
	k->pad0 = 0;
	k->ifindex = ifindex;
}

/*
 * Conntrack: returns VIGIL_CT_ESTABLISHED or VIGIL_CT_REPLY when the packet belongs to a live
 * connection (and updates it), 0 when it must be evaluated as new.
 */
static __always_inline int ct_track(struct __sk_buff *skb, const struct pkt *p, __u8 dir,
				    const struct endpoint_value *ep,
				    const struct vigil_config *cfg, __u64 now)
{
	struct ct_key k = {};
	__u8 other = dir == VIGIL_DIR_INGRESS ? VIGIL_DIR_EGRESS : VIGIL_DIR_INGRESS;
	int state = VIGIL_CT_ESTABLISHED;

	fill_ct_key(&k, p, 0, dir, skb->ifindex);
	struct ct_value *v = bpf_map_lookup_elem(&vigil_ct, &k);
	if (!v) {
		fill_ct_key(&k, p, 1, other, skb->ifindex);
		v = bpf_map_lookup_elem(&vigil_ct, &k);
		state = VIGIL_CT_REPLY;
	}
	if (!v)
		return 0;

	/* Expired, or a new SYN on a closed tuple: forget it and evaluate again. */
	int new_syn = p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	int closed = (v->flags & VIGIL_CT_F_RST) ||
		     ((v->flags & VIGIL_CT_F_FIN_ORIG) && (v->flags & VIGIL_CT_F_FIN_REPLY));
	if (now - v->last_seen_ns > ct_timeout(p, v) || (state == VIGIL_CT_ESTABLISHED && new_syn && closed)) {
		bpf_map_delete_elem(&vigil_ct, &k);
		return 0;
	}

	int report = cfg->aggregation == VIGIL_AGG_NONE;
	v->last_seen_ns = now;
	if (state == VIGIL_CT_REPLY && !(v->flags & VIGIL_CT_F_REPLY_SEEN)) {
		__sync_fetch_and_or(&v->flags, VIGIL_CT_F_REPLY_SEEN);
		report = 1;
	}
	if (p->proto == IPPROTO_TCP) {
		if (p->tcp_flags & TCP_RST) {
			__sync_fetch_and_or(&v->flags, VIGIL_CT_F_RST);
			report = 1;
		}
		if (p->tcp_flags & TCP_FIN) {
			__sync_fetch_and_or(&v->flags,
					    state == VIGIL_CT_REPLY ? VIGIL_CT_F_FIN_REPLY : VIGIL_CT_F_FIN_ORIG);
			report = 1;
		}
	}
	if (report) {
		__u8 verdict = VIGIL_VERDICT_FORWARDED;
		emit(skb, p, dir, ep, cfg, verdict, VIGIL_DROP_NONE, state, v->peer_identity,
		     VIGIL_ACT_ALLOW, v->staged_action, v->value_flags, v->rule_id, v->staged_rule_id,
		     v->trace_id, v->generation);
	}
	return state;
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	__u32 zero = 0;
	struct vigil_config *cfg = bpf_map_lookup_elem(&vigil_config, &zero);
	if (!cfg)
		return TC_ACT_OK;
	__u8 slot = cfg->slot & 1;
	struct endpoint_key ek = { .ifindex = skb->ifindex, .slot = slot };
	struct endpoint_value *ep = bpf_map_lookup_elem(&vigil_endpoints, &ek);
	if (!ep)
		return TC_ACT_OK;

	struct pkt p = {};
	if (!parse(skb, &p))
		return TC_ACT_OK; /* ARP and other non-IP frames pass */
	stat_inc(VIGIL_STAT_PACKETS);

	/* IPv6 link plumbing, like ARP for IPv4, is never subject to policy: neighbour discovery
	 * (router/neighbour solicitation and advertisement, redirect: types 133-137) and multicast
	 * listener discovery (130-132, 143). */
	if (p.proto == IPPROTO_ICMPV6 && icmpv6_is_link_plumbing(p.policy_port >> 8))
		return TC_ACT_OK;

	__u64 now = bpf_ktime_get_boot_ns();
	if (p.ct_ok && ct_track(skb, &p, dir, ep, cfg, now))
		return TC_ACT_OK;

	/* A new connection (or a packet conntrack cannot follow): evaluate policy. */
	const __u8 *peer_addr = dir == VIGIL_DIR_EGRESS ? p.daddr : p.saddr;
	__u32 peer = ipcache_identity(slot, p.family, peer_addr);
	__u16 port = p.policy_port;
	__u8 key_family = (ep->flags & VIGIL_EP_F_FAMILY_KEYED) ? p.family : 0;
	struct policy_value *pv =
		policy_lookup(slot, dir, p.proto, key_family, ep->context, peer, port);

	__u8 action = VIGIL_ACT_DENY, staged_action = VIGIL_ACT_DENY, flags = 0;
	__u32 rule_id = 0, staged_rule_id = 0, trace_id = 0;
	if (pv) {
		action = pv->action;
		staged_action = pv->staged_action;
		flags = pv->flags;
		rule_id = pv->rule_id;
		staged_rule_id = pv->staged_rule_id;
		trace_id = pv->trace_id;
	}

	if (action == VIGIL_ACT_DENY) {
		stat_inc(VIGIL_STAT_DROPS);
		__u8 reason = (flags & VIGIL_F_EXPLICIT_DENY) ? VIGIL_DROP_POLICY_DENY
							      : VIGIL_DROP_POLICY_DENIED;
		emit(skb, &p, dir, ep, cfg, VIGIL_VERDICT_DROPPED, reason, VIGIL_CT_NEW, peer, action,
		     staged_action, flags, rule_id, staged_rule_id, trace_id, cfg->generation);
		return TC_ACT_SHOT;
	}

	/* Allowed (REDIRECT is reserved for the L7 proxy and is forwarded until then). */
	if (p.ct_ok) {
		struct ct_key k = {};
		fill_ct_key(&k, &p, 0, dir, skb->ifindex);
		struct ct_value v = {
			.created_ns = now,
			.last_seen_ns = now,
			.generation = cfg->generation,
			.rule_id = rule_id,
			.staged_rule_id = staged_rule_id,
			.trace_id = trace_id,
			.peer_identity = peer,
			.flags = (p.proto == IPPROTO_TCP && (p.tcp_flags & TCP_SYN)) ? VIGIL_CT_F_SYN : 0,
			.staged_action = staged_action,
			.value_flags = flags,
		};
		if (bpf_map_update_elem(&vigil_ct, &k, &v, BPF_ANY) == 0)
			stat_inc(VIGIL_STAT_CT_NEW);
	}
	emit(skb, &p, dir, ep, cfg, VIGIL_VERDICT_FORWARDED, VIGIL_DROP_NONE, VIGIL_CT_NEW, peer,
	     action, staged_action, flags, rule_id, staged_rule_id, trace_id, cfg->generation);
	return TC_ACT_OK;
}

/* tc ingress of the host-side veth: traffic the pod sends. */
SEC("classifier")
int vigil_from_endpoint(struct __sk_buff *skb)
{
	return handle(skb, VIGIL_DIR_EGRESS);
}

/* tc egress of the host-side veth: traffic delivered to the pod. */
SEC("classifier")
int vigil_to_endpoint(struct __sk_buff *skb)
{
	return handle(skb, VIGIL_DIR_INGRESS);
}

/* The baseline for benchmarks: the same attach point, no work. */
SEC("classifier")
int vigil_allow_all(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
