//! Unit tests of `sql`: both dialects, values quoted, never spliced. (The statements are run
//! against both real engines by the crate's integration tests.)

use vigil_storage::Dialect;

use super::*;
use crate::params::{FlowQuery, Params};

fn query(q: &str) -> FlowQuery {
    FlowQuery::parse(&Params::parse(Some(q), &FlowQuery::allowed()).unwrap(), 0).unwrap()
}

#[test]
fn user_values_are_quoted_for_each_dialect() {
    let q = query("pod=shop/o'neil&q=x'%20OR%201=1&node=a\\b");
    let lite = Sql::new(Dialect::Sqlite).flows_page(&q);
    assert!(
        lite.contains("src_namespace = 'shop' AND substr(src_pod, 1, 6) = 'o''neil'"),
        "{lite}"
    );
    assert!(lite.contains("instr(lower(src_pod), 'x''') > 0"), "{lite}");
    assert!(lite.contains("node IN ('a\\b')"), "{lite}");
    let house = Sql::new(Dialect::ClickHouse).flows_page(&q);
    assert!(
        house.contains("substring(src_pod, 1, 6) = 'o\\'neil'"),
        "{house}"
    );
    assert!(
        house.contains("position(lower(src_pod), 'x\\'') > 0"),
        "{house}"
    );
    assert!(house.contains("node IN ('a\\\\b')"), "{house}");
    assert!(house.contains("FROM flows WHERE"), "{house}");
    assert!(
        house.ends_with("uuid DESC LIMIT 1 BY uuid LIMIT 101"),
        "copies folded: {house}"
    );
}

#[test]
fn pages_are_newest_first_after_the_cursor_with_one_row_extra() {
    let mut q = query("limit=10&verdict=DROPPED&since=2026-11-26T11:22:05.5Z");
    q.cursor = Some(crate::params::Cursor {
        time: 1_795_692_200,
        nanos: 7,
        uuid: "u'9".into(),
    });
    let lite = Sql::new(Dialect::Sqlite).flows_page(&q);
    assert!(
        lite.ends_with("ORDER BY time DESC, nanos DESC, uuid DESC LIMIT 11"),
        "{lite}"
    );
    assert!(
        lite.contains("time >= 1795692125 AND (time > 1795692125 OR nanos >= 500000000)"),
        "{lite}"
    );
    assert!(lite.contains("time <= 1795692200 AND (time < 1795692200 OR nanos < 7 OR (nanos = 7 AND uuid < 'u''9'))"), "{lite}");
    let house = Sql::new(Dialect::ClickHouse).flows_page(&q);
    assert!(house.contains("time <= toDateTime(1795692200)"), "{house}");
    assert!(
        house.starts_with("SELECT uuid, toUInt32(time), nanos"),
        "{house}"
    );
}

#[test]
fn the_policy_filter_reads_the_deciding_policies_in_each_dialects_way() {
    let q = query("policy=shop/lockdown&policy=deny-ssh");
    let lite = Sql::new(Dialect::Sqlite).flows_page(&q);
    assert!(
        lite.contains("policy = 'shop/lockdown' OR substr(policy, -14) = '/shop/lockdown'"),
        "{lite}"
    );
    assert!(lite.contains("substr(policy, -9) = '/deny-ssh'"), "{lite}");
    assert!(
        lite.contains("EXISTS (SELECT 1 FROM policy_hits h WHERE h.uuid = flows.uuid AND"),
        "{lite}"
    );
    assert!(
        lite.contains("h.idx = (SELECT max(h2.idx) FROM policy_hits h2 WHERE h2.uuid = h.uuid)"),
        "{lite}"
    );
    let house = Sql::new(Dialect::ClickHouse).flows_page(&q);
    assert!(house.contains("endsWith(policy, '/deny-ssh')"), "{house}");
    assert!(house.contains("GROUP BY uuid HAVING"), "{house}");
    assert!(
        house.contains("argMax(policy_name, idx) = 'lockdown'"),
        "{house}"
    );
}

#[test]
fn aggregates_bucket_and_count_per_dialect() {
    let r = TimeRange {
        since: Some(1_000_000_000_000),
        until: None,
    };
    let lite = Sql::new(Dialect::Sqlite);
    let house = Sql::new(Dialect::ClickHouse);
    assert!(
        lite.hits_series(&r, 60, &[])
            .contains("time / 60 * 60 AS bucket")
    );
    assert!(
        house
            .hits_series(&r, 60, &[])
            .contains("intDiv(toUInt32(time), 60) * 60 AS bucket")
    );
    assert!(
        house
            .policy_hit_counts(&r)
            .contains("FROM policy_hits FINAL WHERE time >= toDateTime(1000)")
    );
    assert!(
        lite.staged(&r)
            .contains("enforcement = 'pending' AND action = 'deny'")
    );
    let f = Filter::default();
    assert!(lite.drops_by_reason(&f, &r).contains("verdict = 'DROPPED'"));
    assert!(house.servicemap(&f, &r).contains("is_reply <> 1"));
    assert_eq!(
        lite.counts(),
        "SELECT (SELECT count(*) FROM flows) AS flows, (SELECT count(*) FROM policy_hits) AS policy_hits"
    );
    let hits = house.hits_of(&["a'b".into()], 10, 20);
    assert!(
        hits.contains("time >= toDateTime(10) AND time <= toDateTime(20) AND uuid IN ('a\\'b')"),
        "{hits}"
    );
}
