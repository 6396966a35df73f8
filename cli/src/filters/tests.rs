//! Unit tests of `filters`: behaviour checked beside the code it tests.
use super::*;

fn occ(flag: &'static str, value: &str, negated: bool) -> Occurrence {
    Occurrence {
        flag,
        value: value.into(),
        negated,
    }
}

#[test]
fn either_side_flags_make_two_filters_and_neutral_flags_go_into_both() {
    let (white, black) = build(&[
        occ("pod", "shop/web", false),
        occ("verdict", "dropped", false),
    ])
    .unwrap();
    assert!(black.is_empty());
    assert_eq!(white.len(), 2);
    assert_eq!(white[0].source_pod, ["shop/web"]);
    assert!(white[0].destination_pod.is_empty());
    assert_eq!(white[1].destination_pod, ["shop/web"]);
    assert_eq!(white[0].verdict, [flow::Verdict::Dropped as i32]);
    assert_eq!(white[1].verdict, [flow::Verdict::Dropped as i32]);
}

#[test]
fn directional_flags_make_one_filter_anded() {
    let (white, _) = build(&[
        occ("from-pod", "web", false),
        occ("to-port", "80", false),
        occ("namespace", "shop", false),
    ])
    .unwrap();
    assert_eq!(white.len(), 1);
    assert_eq!(white[0].source_pod, ["shop/web"]);
    assert_eq!(white[0].destination_port, ["80"]);
}

#[test]
fn not_sends_the_next_filter_to_the_blacklist() {
    let (white, black) = build(&[
        occ("namespace", "shop", false),
        occ("verdict", "forwarded", true),
    ])
    .unwrap();
    assert_eq!(white.len(), 2);
    assert_eq!(white[0].source_pod, ["shop/"]);
    assert_eq!(black.len(), 1);
    assert_eq!(black[0].verdict, [flow::Verdict::Forwarded as i32]);
}

#[test]
fn bad_values_name_the_flag() {
    let e = build(&[occ("verdict", "maybe", false)]).unwrap_err();
    assert!(e.0.contains("--verdict maybe"), "{e}");
}

#[test]
fn times_parse_as_durations_ago_or_rfc3339() {
    let now = 1_700_000_000_000_000_000;
    assert_eq!(parse_time("5m", now).unwrap(), now - 300_000_000_000);
    assert_eq!(parse_time("1h30m", now).unwrap(), now - 5_400_000_000_000);
    assert_eq!(
        parse_time("1970-01-01T00:00:01Z", now).unwrap(),
        1_000_000_000
    );
    assert_eq!(
        parse_time("2023-11-14T22:13:20.5+00:00", now).unwrap(),
        1_700_000_000_500_000_000
    );
    assert_eq!(parse_time("1970-01-01T01:00:00+01:00", now).unwrap(), 0);
    assert!(parse_time("5 minutes", now).is_err());
    assert!(parse_time("m", now).is_err());
}

#[test]
fn drop_reason_type_identity_tcp_flags_and_uuid_become_hubble_filter_fields() {
    let (white, black) = build(&[
        occ("drop-reason-desc", "policy_denied", false),
        occ("type", "trace:to-endpoint", false),
        occ("type", "drop", false),
        occ("from-identity", "1000", false),
        occ("tcp-flags", "syn,ack", false),
        occ("uuid", "u-1", false),
        occ("identity", "2", true),
    ])
    .unwrap();
    assert_eq!(white.len(), 1);
    let w = &white[0];
    assert_eq!(w.drop_reason_desc, [flow::DropReason::PolicyDenied as i32]);
    assert_eq!(
        w.event_type,
        [
            flow::EventTypeFilter {
                r#type: 4,
                match_sub_type: true,
                sub_type: 0
            },
            flow::EventTypeFilter {
                r#type: 1,
                match_sub_type: false,
                sub_type: 0
            }
        ]
    );
    assert_eq!(w.source_identity, [1000]);
    assert!(w.destination_identity.is_empty());
    let flags = &w.tcp_flags[0];
    assert!(flags.syn && flags.ack && !flags.fin);
    assert_eq!(w.uuid, ["u-1"]);
    // --not --identity 2: neither side may be identity 2.
    assert_eq!(black.len(), 2);
    assert_eq!(black[0].source_identity, [2]);
    assert_eq!(black[1].destination_identity, [2]);
}

#[test]
fn bad_drop_reasons_types_identities_and_flags_name_the_flag() {
    for (flag, value, want) in [
        ("drop-reason-desc", "NOPE", "--drop-reason-desc NOPE"),
        ("type", "trace:sideways", "unknown sub-type \"sideways\""),
        ("type", "teleport", "--type teleport"),
        ("identity", "web", "--identity web"),
        ("tcp-flags", "syn,bogus", "unknown flag \"bogus\""),
        ("tcp-flags", ",", "name at least one flag"),
    ] {
        let e = build(&[occ(flag, value, false)]).unwrap_err();
        assert!(e.0.contains(want), "{flag} {value}: {e}");
    }
}
