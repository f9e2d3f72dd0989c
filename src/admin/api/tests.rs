//! Unit tests of the JSON resources: times, bodies, hashes, and the OpenAPI document
//! against the route table.

use super::*;

#[test]
fn times_and_months() {
    assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
    assert_eq!(parse_time("1970-01-01T00:00:10Z"), Some(10_000));
    for bad in [
        "1970-1-01",
        "1970-01-01T00:00:10",
        "x",
        "1970-13-01",
        "1970-01-01T25:00:00Z",
    ] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
    assert!(valid_month("2026-11"));
    assert!(!valid_month("2026-13") && !valid_month("2026-1") && !valid_month("26-11-"));
}

#[test]
fn a_body_error_names_the_field() {
    let e = plan_from_body(br#"{"upstream_id": "x"}"#, Some("1")).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("upstream_id"), "{e:?}");
    let e = plan_from_body(
        br#"{"upstream_id": 5, "markup": {"percent": "abc"}}"#,
        Some("1"),
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("markup.percent"), "{e:?}");
    assert_eq!(e.value.as_deref(), Some("abc"));
    let e = plan_from_body(br#"{"id": 2, "upstream_id": 5}"#, Some("1")).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("id"));
    let e = plan_from_body(br#"{"upstream_id": 5, "colour": 1}"#, Some("1")).unwrap_err();
    assert!(e.error.contains("colour"), "{e:?}");
    let p = plan_from_body(
        br#"{"upstream_id": 5, "addons": [{"id": 7, "upstream_id": 8}]}"#,
        Some("1"),
    )
    .unwrap();
    assert_eq!((p.id, p.upstream_id, p.addons.len()), (1, 5, 1));
}

#[test]
fn a_hash_is_never_echoed() {
    let store = Store::open_temporary().unwrap();
    let e = reseller_from_body(
        &store,
        br#"{"login": "r", "password_hash": "plain-secret", "upstream_account": "up"}"#,
        None,
    )
    .err()
    .unwrap();
    let text = serde_json::to_string(&e).unwrap();
    assert!(!text.contains("plain-secret"), "{text}");
    assert_eq!(e.field.as_deref(), Some("password_hash"));
    let e = reseller_from_body(
        &store,
        br#"{"login": "r", "password_hash": 5, "upstream_account": "up"}"#,
        None,
    )
    .err()
    .unwrap();
    assert_eq!(e.field.as_deref(), Some("password_hash"));
}

/// Every route in the table is in the OpenAPI document with its methods, and nothing
/// else is.
#[test]
fn openapi_matches_the_routes() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in paths {
        for m in ops.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&m.as_str()) {
                documented.push((path.clone(), m.to_uppercase()));
            }
        }
    }
    let mut routed: Vec<(String, String)> = super::super::routes::ROUTES
        .iter()
        .flat_map(|(p, ms)| ms.iter().map(move |m| (p.to_string(), m.to_string())))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
}
