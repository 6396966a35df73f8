//! Layout test: the Rust mirror against the BTF of the object the build script compiled.

use super::*;
use std::collections::HashMap;
use std::mem::offset_of;

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vigil.bpf.o"));

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// The `.BTF` section of a little-endian ELF64 object.
fn btf_section(elf: &[u8]) -> &[u8] {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF object");
    let shoff = u64_at(elf, 0x28) as usize;
    let shentsize = u16_at(elf, 0x3a) as usize;
    let shnum = u16_at(elf, 0x3c) as usize;
    let shstrndx = u16_at(elf, 0x3e) as usize;
    let section = |i: usize| {
        let h = shoff + i * shentsize;
        (
            u32_at(elf, h) as usize,
            u64_at(elf, h + 24) as usize,
            u64_at(elf, h + 32) as usize,
        )
    };
    let (_, strtab_off, _) = section(shstrndx);
    for i in 0..shnum {
        let (name, off, size) = section(i);
        let name_bytes = &elf[strtab_off + name..];
        let end = name_bytes.iter().position(|&c| c == 0).unwrap();
        if &name_bytes[..end] == b".BTF" {
            return &elf[off..off + size];
        }
    }
    panic!("object has no .BTF section");
}

/// Struct name -> (size, member name -> byte offset), read from raw BTF.
fn btf_structs(btf: &[u8]) -> HashMap<String, (u32, HashMap<String, u32>)> {
    assert_eq!(u16_at(btf, 0), 0xeb9f, "bad BTF magic");
    let hdr_len = u32_at(btf, 4) as usize;
    let type_off = hdr_len + u32_at(btf, 8) as usize;
    let type_len = u32_at(btf, 12) as usize;
    let str_off = hdr_len + u32_at(btf, 16) as usize;
    let name = |off: u32| {
        let s = &btf[str_off + off as usize..];
        String::from_utf8_lossy(&s[..s.iter().position(|&c| c == 0).unwrap()]).into_owned()
    };
    let mut out = HashMap::new();
    let mut p = type_off;
    while p < type_off + type_len {
        let (name_off, info, size) = (u32_at(btf, p), u32_at(btf, p + 4), u32_at(btf, p + 8));
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let kind_flag = info >> 31 == 1;
        p += 12;
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => vlen * 12, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => vlen * 8,           // ENUM, FUNC_PROTO
            _ => 0,
        };
        if kind == 4 {
            let mut members = HashMap::new();
            for m in 0..vlen {
                let mp = p + m * 12;
                let bits = u32_at(btf, mp + 8);
                let bit_offset = if kind_flag { bits & 0xff_ffff } else { bits };
                members.insert(name(u32_at(btf, mp)), bit_offset / 8);
            }
            out.insert(name(name_off), (size, members));
        }
        p += extra;
    }
    out
}

/// Asserts that a C struct has the given size and field offsets (`shift` is subtracted from the
/// C offsets, for LPM keys mirrored without `prefixlen`).
fn check(c_name: &str, rust_size: usize, shift: u32, fields: &[(&str, usize)]) {
    let structs = btf_structs(btf_section(OBJECT));
    let (size, members) = structs
        .get(c_name)
        .unwrap_or_else(|| panic!("struct {c_name} is not in the object's BTF"));
    assert_eq!(*size - shift, rust_size as u32, "size of struct {c_name}");
    assert_eq!(
        members.len() - usize::from(shift > 0),
        fields.len(),
        "field count of struct {c_name}"
    );
    for (field, rust_offset) in fields {
        let c_offset = members
            .get(*field)
            .unwrap_or_else(|| panic!("struct {c_name} has no field {field}"));
        assert_eq!(
            c_offset - shift,
            *rust_offset as u32,
            "offset of {c_name}.{field}"
        );
    }
}

macro_rules! fields {
    ($t:ty: $($f:ident),* $(,)?) => {
        &[$((stringify!($f), offset_of!($t, $f))),*]
    };
}

#[test]
fn mirrors_match_the_compiled_object() {
    check(
        "policy_key",
        size_of::<PolicyKeyData>(),
        4,
        fields!(PolicyKeyData: slot, direction, proto, family, context_be, peer_id_be, port_be, pad1),
    );
    check(
        "policy_value",
        size_of::<PolicyValue>(),
        0,
        fields!(PolicyValue: action, staged_action, flags, pad0, proxy_port, pad1, rule_id, staged_rule_id, trace_id),
    );
    check(
        "ipcache_key",
        size_of::<IpcacheKeyData>(),
        4,
        fields!(IpcacheKeyData: slot, family, pad0, addr),
    );
    check(
        "ipcache_value",
        size_of::<IpcacheValue>(),
        0,
        fields!(IpcacheValue: identity, flags),
    );
    check(
        "endpoint_key",
        size_of::<EndpointKey>(),
        0,
        fields!(EndpointKey: ifindex, slot),
    );
    check(
        "endpoint_value",
        size_of::<EndpointValue>(),
        0,
        fields!(EndpointValue: endpoint_id, identity, context, flags),
    );
    check(
        "vigil_config",
        size_of::<Config>(),
        0,
        fields!(Config: slot, generation, aggregation, pad0),
    );
    check(
        "ct_key",
        size_of::<CtKey>(),
        0,
        fields!(CtKey: saddr, daddr, sport, dport, proto, direction, family, pad0, ifindex),
    );
    check(
        "ct_value",
        size_of::<CtValue>(),
        0,
        fields!(CtValue: created_ns, last_seen_ns, generation, rule_id, staged_rule_id, trace_id, peer_identity, flags, staged_action, value_flags, pad0, pad1),
    );
    let mut event_fields: Vec<(&str, usize)> = fields!(Event: version, direction, verdict, drop_reason, ct_state, proto, family,
        tcp_flags, action, staged_action, value_flags, ifindex, ts_ns, endpoint_id, local_identity, peer_identity,
        rule_id, staged_rule_id, trace_id, generation, pkt_len, saddr, daddr, sport, dport, pad0).to_vec();
    event_fields.push(("type", offset_of!(Event, r#type)));
    check("vigil_event", size_of::<Event>(), 0, &event_fields);
}

#[test]
fn a_changed_layout_would_be_caught() {
    // The checker itself must be able to fail: a wrong offset panics.
    let result = std::panic::catch_unwind(|| {
        check(
            "endpoint_key",
            size_of::<EndpointKey>(),
            0,
            &[("ifindex", 0), ("slot", 0)],
        );
    });
    assert!(result.is_err(), "a wrong field offset was not detected");
}

#[test]
fn decode_checks_type_version_and_length() {
    let mut bytes = [0u8; 96];
    assert_eq!(
        Event::decode(&bytes[..10]),
        Err(DecodeError::Short { len: 10 })
    );
    assert_eq!(
        Event::decode(&bytes),
        Err(DecodeError::Unknown {
            kind: 0,
            version: 0
        })
    );
    bytes[0] = EVENT_VERDICT;
    bytes[1] = EVENT_VERSION;
    bytes[3] = VERDICT_DROPPED;
    let at = offset_of!(Event, sport);
    bytes[at..at + 2].copy_from_slice(&22u16.to_ne_bytes());
    let event = Event::decode(&bytes).unwrap();
    assert_eq!(event.verdict, VERDICT_DROPPED);
    assert_eq!(event.sport, 22);
}
