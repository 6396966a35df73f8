//! Unit tests of `query`: behaviour checked beside the code it tests.
use super::*;
use serde_json::json;

fn result() -> QueryResult {
    QueryResult {
        columns: vec!["policy".into(), "hits".into()],
        rows: vec![
            vec![json!("deny-ssh"), json!(12)],
            vec![json!("a,\"b\""), serde_json::Value::Null],
        ],
    }
}

#[test]
fn table_aligns_columns_and_counts_rows() {
    let lines = render(&result(), QueryFormat::Table);
    assert_eq!(lines[0], "policy    hits");
    assert_eq!(lines[1], "deny-ssh  12");
    assert_eq!(lines[2], "a,\"b\"     NULL");
    assert_eq!(lines[3], "(2 rows)");
}

#[test]
fn csv_quotes_what_needs_it() {
    let lines = render(&result(), QueryFormat::Csv);
    assert_eq!(lines, ["policy,hits", "deny-ssh,12", "\"a,\"\"b\"\"\","]);
}

#[test]
fn json_is_one_object_per_row() {
    let lines = render(&result(), QueryFormat::Json);
    assert_eq!(lines[0], r#"{"policy":"deny-ssh","hits":12}"#);
    assert_eq!(lines.len(), 2);
}

#[test]
fn examples_list_every_query_in_the_dialect() {
    let lines = examples(Dialect::ClickHouse);
    assert!(lines.iter().any(|l| l.starts_with("-- top-denied")));
    assert!(lines.iter().any(|l| l.contains("FINAL")));
    assert!(
        !examples(Dialect::Sqlite)
            .iter()
            .any(|l| l.contains("FINAL"))
    );
}
