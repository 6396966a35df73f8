//! Unit tests of the crate root: literal quoting in both dialects.

use crate::Dialect;

#[test]
fn sqlite_literals_double_quotes_and_hex_encode_control_characters() {
    assert_eq!(Dialect::Sqlite.quote("web"), "'web'");
    assert_eq!(Dialect::Sqlite.quote(""), "''");
    assert_eq!(Dialect::Sqlite.quote("o'clock"), "'o''clock'");
    assert_eq!(
        Dialect::Sqlite.quote("x'; DROP TABLE flows; --"),
        "'x''; DROP TABLE flows; --'"
    );
    assert_eq!(Dialect::Sqlite.quote("a\\b"), "'a\\b'");
    assert_eq!(Dialect::Sqlite.quote("a\0b"), "CAST(X'610062' AS TEXT)");
}

#[test]
fn clickhouse_literals_escape_backslash_quote_and_nul() {
    assert_eq!(Dialect::ClickHouse.quote("web"), "'web'");
    assert_eq!(Dialect::ClickHouse.quote("o'clock"), "'o\\'clock'");
    assert_eq!(Dialect::ClickHouse.quote("a\\'b"), "'a\\\\\\'b'");
    assert_eq!(Dialect::ClickHouse.quote("a\0b"), "'a\\0b'");
    assert_eq!(Dialect::ClickHouse.quote("ü?"), "'ü?'");
}
