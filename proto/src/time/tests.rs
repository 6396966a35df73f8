//! Unit tests of `time`: round trips, offsets, leap days and what is refused.
use super::*;

#[test]
fn rfc3339_round_trips_with_nanoseconds_and_leap_days() {
    for ns in [
        0i128,
        1_795_692_125_123_456_789,
        951_782_400_000_000_001, // 2000-02-29
        -1,
    ] {
        assert_eq!(parse_rfc3339(&rfc3339(ns)), Some(ns), "{ns}");
    }
    assert_eq!(
        rfc3339(951_782_400_000_000_001),
        "2000-02-29T00:00:00.000000001Z"
    );
    assert_eq!(
        parse_rfc3339("2026-11-26T12:22:05.5+01:00"),
        parse_rfc3339("2026-11-26T11:22:05.500Z")
    );
    for day in [-1_000_000, -1, 0, 59, 20_000, 3_000_000] {
        let (y, m, d) = civil_from_days(day);
        assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), day);
    }
}

#[test]
fn durations_and_bad_times_are_told_apart() {
    assert_eq!(parse_duration_ns("1h30m"), Some(5_400_000_000_000));
    assert_eq!(parse_duration_ns("500ms"), Some(500_000_000));
    assert_eq!(parse_time("90s", 100_000_000_000), Some(10_000_000_000));
    for bad in [
        "",
        "5",
        "5x",
        "m5",
        "2026-13-01T00:00:00Z",
        "2026-11-26T11:22:05",
        "2026-11-26T11:22:05+0100",
    ] {
        assert_eq!(parse_time(bad, 0), None, "{bad:?}");
    }
}

#[test]
fn timestamps_round_trip_before_and_after_the_epoch() {
    for ns in [0i128, 1, -1, 1_795_692_125_123_456_789, -1_500_000_000] {
        let t = timestamp(ns);
        assert!((0..1_000_000_000).contains(&t.nanos));
        assert_eq!(unix_ns(&t), ns);
    }
}
