//! Unit tests of `src`: behaviour checked beside the code it tests.
use super::*;
use std::time::Duration;

#[test]
fn durations_have_units() {
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
    assert!(
        parse_duration("3w")
            .unwrap_err()
            .contains("\"3w\": expected a number with a unit")
    );
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert!(parse_duration("x").is_err());
}
