//! Unit tests of `selector`: behaviour checked beside the code it tests.
use std::collections::BTreeMap;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sel(text: &str) -> Selector {
    parse_calico_selector(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn calico_operators_match_as_documented() {
    let web = labels(&[("app", "web"), ("tier", "frontend-v2")]);
    let cases = [
        ("all()", true),
        ("", true),
        ("app == 'web'", true),
        ("app == \"db\"", false),
        ("app != 'db'", true),
        ("missing != 'x'", true),
        ("has(app)", true),
        ("!has(app)", false),
        ("has(missing)", false),
        ("app in {'web', 'api'}", true),
        ("app in {}", false),
        ("app not in {'db'}", true),
        ("missing not in {'db'}", true),
        ("missing in {'db'}", false),
        ("tier contains 'end'", true),
        ("tier starts with 'front'", true),
        ("tier ends with 'v2'", true),
        ("missing contains ''", false),
        ("app == 'web' && tier == 'x'", false),
        ("app == 'web' || tier == 'x'", true),
        ("!(app == 'web' || tier == 'x')", false),
        ("(app == 'db' || app == 'web') && has(tier)", true),
        ("global()", false),
    ];
    for (text, expected) in cases {
        assert_eq!(sel(text).matches(&web), expected, "{text}");
    }
}

#[test]
fn and_binds_tighter_than_or() {
    let s = sel("a == '1' || b == '1' && c == '1'");
    assert!(s.matches(&labels(&[("a", "1")])));
    assert!(!s.matches(&labels(&[("b", "1")])));
}

#[test]
fn errors_name_the_column_and_what_was_expected() {
    let e = parse_calico_selector("app = 'web'").unwrap_err();
    assert_eq!(e.column, 5);
    assert!(e.message.contains("=="), "{e}");

    let e = parse_calico_selector("app == web").unwrap_err();
    assert_eq!(e.column, 8);
    assert!(e.message.contains("quoted string"), "{e}");

    let e = parse_calico_selector("app == 'web").unwrap_err();
    assert!(e.message.contains("unterminated"), "{e}");

    let e = parse_calico_selector("(app == 'web'").unwrap_err();
    assert!(e.message.contains("closing parenthesis"), "{e}");

    let e = parse_calico_selector("app == 'a' app == 'b'").unwrap_err();
    assert_eq!(e.column, 12);

    let e = parse_calico_selector("foo()").unwrap_err();
    assert!(e.message.contains("unknown function"), "{e}");
}

#[test]
fn display_round_trips() {
    for text in [
        "app == 'web' && (tier in {'a', 'b'} || !has(x))",
        "a not in {'x'} || b starts with 'p' || c ends with 'q' || d contains 'r' || e != 'f'",
        "all()",
    ] {
        let parsed = sel(text);
        assert_eq!(sel(&parsed.to_string()), parsed, "{text} -> {parsed}");
    }
}

#[test]
fn kubernetes_requirements() {
    let l = labels(&[("env", "prod")]);
    let vals = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        Selector::requirement("env", "In", &vals(&["prod"]))
            .unwrap()
            .matches(&l)
    );
    assert!(
        !Selector::requirement("env", "NotIn", &vals(&["prod"]))
            .unwrap()
            .matches(&l)
    );
    assert!(
        Selector::requirement("x", "NotIn", &vals(&["prod"]))
            .unwrap()
            .matches(&l)
    );
    assert!(
        Selector::requirement("env", "Exists", &[])
            .unwrap()
            .matches(&l)
    );
    assert!(
        Selector::requirement("x", "DoesNotExist", &[])
            .unwrap()
            .matches(&l)
    );
    assert!(Selector::requirement("env", "In", &[]).is_err());
    assert!(Selector::requirement("env", "Exists", &vals(&["a"])).is_err());
    assert!(Selector::requirement("env", "Equals", &[]).is_err());
}

#[test]
fn mentions_key_looks_through_operators() {
    let s = sel("!(a == 'x') && (b in {'y'} || has(c))");
    assert!(s.mentions_key("a") && s.mentions_key("b") && s.mentions_key("c"));
    assert!(!s.mentions_key("d"));
}
