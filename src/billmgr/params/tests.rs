//! Unit tests of parameter parsing: merging, strict decoding, bounds, ambiguity refusals.

use super::*;

fn parse(q: Option<&str>, body: &[u8]) -> Result<Params, ParamError> {
    Params::parse(q, body, &Limits::default())
}

#[test]
fn merges_query_then_body_keeping_order_and_repeats() {
    let p = parse(
        Some("func=certificate&elid=1"),
        b"elid=2&out=json&altname=a.com+b.com",
    )
    .unwrap();
    let pairs: Vec<_> = p.iter().collect();
    assert_eq!(
        pairs,
        vec![
            ("func", "certificate"),
            ("elid", "1"),
            ("elid", "2"),
            ("out", "json"),
            ("altname", "a.com b.com")
        ]
    );
    assert_eq!(p.get("elid"), Some("1"));
    assert_eq!(p.count("elid"), 2);
    assert_eq!(p.format(), crate::billmgr::Format::Json);
}

#[test]
fn decodes_percent_and_utf8() {
    let p = parse(
        Some("authinfo=user%3Ap%3Ass%26w&cn=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82.%D1%80%D1%84"),
        b"",
    )
    .unwrap();
    assert_eq!(p.get("authinfo"), Some("user:p:ss&w"));
    assert_eq!(p.get("cn"), Some("привет.рф"));
}

#[test]
fn broken_percent_encoding_is_an_error() {
    assert_eq!(
        parse(Some("a=%zz"), b""),
        Err(ParamError::BadEncoding {
            part: "query string",
            offset: 2
        })
    );
    assert_eq!(
        parse(None, b"a=1&b=%4"),
        Err(ParamError::BadEncoding {
            part: "request body",
            offset: 6
        })
    );
    assert_eq!(
        parse(None, b"a=%ff%fe"),
        Err(ParamError::NotUtf8 {
            part: "request body"
        })
    );
}

#[test]
fn bounds_are_enforced() {
    let limits = Limits {
        max_body_bytes: 10,
        max_params: 2,
        max_value_bytes: 3,
    };
    assert_eq!(
        Params::parse(None, b"a=12345678901", &limits),
        Err(ParamError::BodyTooLarge { limit: 10 })
    );
    assert_eq!(
        Params::parse(Some("a=1&b=2&c=3"), b"", &limits),
        Err(ParamError::TooManyParams { limit: 2 })
    );
    assert_eq!(
        Params::parse(Some("abc=1234"), b"", &limits),
        Err(ParamError::ValueTooLong {
            key: "abc".into(),
            limit: 3
        })
    );
}

#[test]
fn a_real_replacement_character_is_not_bad_utf8() {
    let p = parse(Some("cn=%EF%BF%BD&x=a+%2B+b"), "y=\u{FFFD}".as_bytes()).unwrap();
    assert_eq!(p.get("cn"), Some("\u{FFFD}"));
    assert_eq!(p.get("x"), Some("a + b"));
    assert_eq!(p.get("y"), Some("\u{FFFD}"));
    assert_eq!(
        parse(None, b"y=\xff"),
        Err(ParamError::NotUtf8 {
            part: "request body"
        })
    );
    assert_eq!(parse(Some("k=a=b"), b"").unwrap().get("k"), Some("a=b"));
}

#[test]
fn form_encoding_keeps_unreserved_bytes_only() {
    let all: String = (0x20u8..0x7f).map(char::from).chain(['é', '\n']).collect();
    let mut want = String::from("v=");
    for &b in all.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                want.push(b as char)
            }
            b' ' => want.push('+'),
            _ => want.push_str(&format!("%{b:02X}")),
        }
    }
    let p = Params::from_pairs([("v", all.as_str())]);
    assert_eq!(p.to_form(), want);
    assert_eq!(parse(Some(&want), b"").unwrap(), p);
}

#[test]
fn empty_pieces_and_bare_keys() {
    let p = parse(Some("&&a&b=&=c"), b"").unwrap();
    let pairs: Vec<_> = p.iter().collect();
    assert_eq!(pairs, vec![("a", ""), ("b", ""), ("", "c")]);
}

#[test]
fn set_replaces_all_at_first_position_and_form_round_trips() {
    let mut p = parse(Some("func=x&authinfo=a%3Ab&elid=1&authinfo=c%3Ad"), b"").unwrap();
    p.set("authinfo", "up:s3cr&t =");
    assert_eq!(p.count("authinfo"), 1);
    assert_eq!(p.to_form(), "func=x&authinfo=up%3As3cr%26t+%3D&elid=1");
    let back = parse(Some(&p.to_form()), b"").unwrap();
    assert_eq!(back, p);
}

#[test]
fn debug_never_shows_values() {
    let p = parse(Some("authinfo=joe:hunter2"), b"").unwrap();
    assert!(!format!("{p:?}").contains("hunter2"));
}

fn ambiguity(q: &str, body: &[u8]) -> Result<(), ParamError> {
    parse(Some(q), body).unwrap().check_unambiguous()
}

#[test]
fn any_non_empty_sok_is_a_submit() {
    for sok in ["ok", "yes", "1", "x"] {
        assert!(parse(Some(&format!("sok={sok}")), b"").unwrap().is_submit());
    }
    assert!(!parse(Some("sok="), b"").unwrap().is_submit());
    assert!(!parse(Some("func=x"), b"").unwrap().is_submit());
}

#[test]
fn repeated_control_parameters_are_refused() {
    for q in [
        "func=whoami&func=user.edit",
        "sok=&sok=ok",
        "remoteid=A&remoteid=B",
        "elid=1&elid=2",
        "pricelist=101&pricelist=102",
        "out=json&out=xml",
        "su=a&su=b",
        "auth=S&auth=T",
    ] {
        let key = q.split('=').next().unwrap();
        assert_eq!(
            ambiguity(q, b""),
            Err(ParamError::Repeated { key: key.into() }),
            "{q}"
        );
    }
    // query and body together
    assert_eq!(
        ambiguity("func=certificate.order.param&sok=", b"sok=ok"),
        Err(ParamError::Repeated { key: "sok".into() })
    );
    // other keys may repeat
    ambiguity("func=x&altname=a&altname=b&addon_1=1", b"lang=en").unwrap();
}

#[test]
fn padded_or_blank_control_values_are_refused() {
    for (q, key) in [
        ("sok=%20", "sok"),
        ("sok=ok%20", "sok"),
        ("func=%20whoami", "func"),
        ("remoteid=l1%20", "remoteid"),
        ("elid=%201", "elid"),
        ("pricelist=101%C2%A0", "pricelist"),
        ("func=certificate%2Fdelete", "func"),
        ("func=who%3Bami", "func"),
    ] {
        match ambiguity(q, b"") {
            Err(ParamError::Ambiguous { key: k, .. }) => assert_eq!(k, key, "{q}"),
            other => panic!("{q}: {other:?}"),
        }
    }
    // a tab is a control character in a control parameter
    for q in ["sok=%09", "sok=o%09k", "sok=ok%0D%0A"] {
        assert_eq!(
            ambiguity(q, b""),
            Err(ParamError::ControlChar { key: "sok".into() }),
            "{q}"
        );
    }
    // an empty sok is neither documented reading
    assert!(matches!(
        ambiguity("func=certificate&sok=", b""),
        Err(ParamError::Ambiguous { .. })
    ));
    // other empty values and lists with inner spaces are fine
    ambiguity(
        "func=certificate&pricelist=&elid=1,%202&remoteid=l%201",
        b"",
    )
    .unwrap();
}

#[test]
fn control_characters_are_refused_in_keys_and_values() {
    for (q, key) in [
        ("su%00=1", "su\\u{0}"),
        ("elid%00=1", "elid\\u{0}"),
        ("func=certificate.delete%00", "func"),
        ("CN=a%00.evil", "CN"),
        ("x=%1b%5B31m", "x"),
        ("x=%7F", "x"),
        ("x=%C2%85", "x"),
        ("a%0Ab=1", "a\\nb"),
        ("remoteid=l1%0Aforged", "remoteid"),
    ] {
        assert_eq!(
            ambiguity(q, b""),
            Err(ParamError::ControlChar { key: key.into() }),
            "{q}"
        );
    }
    let e: BmError = ParamError::ControlChar {
        key: "su\\u{0}".into(),
    }
    .into();
    assert_eq!(
        (e.kind, e.object.as_deref()),
        (ErrorType::Value, Some("su\\u{0}"))
    );
}

#[test]
fn multi_line_values_of_ordinary_fields_pass() {
    let csr =
        "-----BEGIN CERTIFICATE REQUEST-----\r\nMIIB\tx\r\n-----END CERTIFICATE REQUEST-----\n";
    let body = format!(
        "func=certificate.order.param&{}",
        serde_urlencoded::to_string([("csr", csr)]).unwrap()
    );
    let p = parse(None, body.as_bytes()).unwrap();
    p.check_unambiguous().unwrap();
    assert_eq!(p.get("csr"), Some(csr));
}
