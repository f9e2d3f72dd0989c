//! The sandbox's logic, called directly (no sockets).

use std::net::{IpAddr, Ipv4Addr};

use rust_decimal::Decimal;
use time::{Date, Month};

use super::*;
use crate::billmgr::{render, BmError, ErrorType, Format, Limits};

const ACME: &str = "acme@sandbox:acme-upstream-pw";
const GLOBEX: &str = "globex@sandbox:globex-upstream-pw";

fn ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn date(y: i32, m: u8, d: u8) -> Date {
    Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn q(sb: &Sandbox, query: &str) -> Element {
    sb.handle(
        &Params::parse(Some(query), b"", &Limits::default()).unwrap(),
        ip(),
    )
}

fn call(sb: &Sandbox, pairs: &[(&str, &str)]) -> Element {
    sb.handle(&Params::from_pairs(pairs.iter().copied()), ip())
}

fn err_of(doc: &Element) -> (ErrorType, String) {
    let e = BmError::from_doc(doc).unwrap_or_else(|| panic!("not an error: {doc:?}"));
    (e.kind, e.object.unwrap_or_default())
}

fn is_ok(doc: &Element) -> bool {
    doc.find("ok").is_some() && doc.find("error").is_none()
}

fn xml(doc: &Element) -> String {
    String::from_utf8(render(doc, Format::Xml)).unwrap()
}

fn order_pairs(auth: &str) -> Vec<(String, String)> {
    [
        ("func", "certificate.order.param"),
        ("sok", "ok"),
        ("skipbasket", "on"),
        ("authinfo", auth),
        ("pricelist", "3033"),
        ("period", "12"),
        ("CN", "shop.example.com"),
        ("adm_fname", "Ann"),
        ("adm_lname", "Admin"),
        ("adm_email", "ann@example.com"),
        ("adm_phone", "+1 555 0100"),
        ("like_admin", "on"),
        ("approver_email_1", "admin@example.com"),
        ("remoteid", "l1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Field changes to the base order: `Some(v)` sets a field, `None` removes it.
type Changes<'a> = &'a [(&'a str, Option<&'a str>)];

/// The base order with `changes` applied: `Some(v)` sets a field, `None` removes it.
fn order_with(auth: &str, changes: &[(&str, Option<&str>)]) -> Params {
    let mut p = Params::from_pairs(order_pairs(auth));
    for (k, v) in changes {
        match v {
            Some(v) => p.set(k, *v),
            None => {
                p.remove(k);
            }
        }
    }
    p
}

fn order(sb: &Sandbox, auth: &str, changes: &[(&str, Option<&str>)]) -> Element {
    sb.handle(&order_with(auth, changes), ip())
}

fn order_id(doc: &Element) -> u64 {
    assert!(is_ok(doc), "{}", xml(doc));
    doc.child_text("id").unwrap().parse().unwrap()
}

/// An order charges the period price, creates certificate 5001 with status 3, stores
/// remoteid, contacts and dates, and answers `<ok/><id>`.
#[test]
fn order_happy_path() {
    let sb = Sandbox::demo();
    sb.set_today(date(2025, 1, 15));
    let doc = order(&sb, ACME, &[]);
    assert_eq!(
        xml(&doc),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><ok/><id>5001</id></doc>\n"
    );
    assert_eq!(sb.balance("acme@sandbox"), Some(dec("991.00")));
    assert_eq!(sb.order_count(), 1);
    let c = &sb.certificates()[0];
    assert_eq!(
        (c.id, c.account.as_str(), c.pricelist, c.period),
        (5001, "acme@sandbox", 3033, 12)
    );
    assert_eq!(
        (c.cn.as_str(), c.remoteid.as_deref(), c.status),
        ("shop.example.com", Some("l1"), 3)
    );
    assert_eq!(
        (c.createdate, c.expiredate),
        (date(2025, 1, 15), date(2026, 1, 15))
    );
    assert_eq!(c.approver_email, "admin@example.com");
    assert_eq!(
        c.contacts.get("tech_email").map(String::as_str),
        Some("ann@example.com")
    );
    assert!(!c.deleted);

    // Ids count up; add-on domains are charged per domain scaled by the period.
    let doc = order(
        &sb,
        ACME,
        &[
            ("period", Some("24")),
            ("addon_3034", Some("2")),
            ("altname", Some("a.example.com b.example.com")),
            ("altname_input", Some("a.example.com  b.example.com")),
        ],
    );
    assert_eq!(order_id(&doc), 5002);
    assert_eq!(sb.balance("acme@sandbox"), Some(dec("955.00"))); // 991 - (16 + 2 × 10)
    assert_eq!(
        sb.certificates()[1].altnames,
        vec!["a.example.com", "b.example.com"]
    );
    assert_eq!(sb.certificates()[1].domainlimit, 2);
}

/// Every order validation answers its error type and object, and nothing is charged.
#[test]
fn order_validation_errors() {
    let sb = Sandbox::demo();
    let cases: &[(Changes, ErrorType, &str)] = &[
        (&[("pricelist", None)], ErrorType::Missed, "pricelist"),
        (
            &[("pricelist", Some("3034"))],
            ErrorType::Value,
            "pricelist",
        ),
        (&[("pricelist", Some("abc"))], ErrorType::Value, "pricelist"),
        (&[("period", None)], ErrorType::Missed, "period"),
        (&[("period", Some("6"))], ErrorType::Value, "period"),
        (&[("adm_fname", None)], ErrorType::Missed, "adm_fname"),
        (&[("adm_lname", Some(""))], ErrorType::Missed, "adm_lname"),
        (&[("adm_phone", None)], ErrorType::Missed, "adm_phone"),
        (&[("adm_email", None)], ErrorType::Missed, "adm_email"),
        (
            &[("adm_email", Some("not-an-email"))],
            ErrorType::Value,
            "adm_email",
        ),
        (&[("like_admin", None)], ErrorType::Missed, "tech_fname"),
        (
            &[
                ("like_admin", None),
                ("tech_fname", Some("T")),
                ("tech_lname", Some("L")),
                ("tech_phone", Some("1")),
                ("tech_email", Some("x@@y")),
            ],
            ErrorType::Value,
            "tech_email",
        ),
        (&[("CN", None)], ErrorType::Missed, "CN"),
        (&[("CN", Some("not a domain"))], ErrorType::Value, "CN"),
        (&[("CN", Some("*.example.com"))], ErrorType::Value, "CN"),
        (&[("pricelist", Some("3040"))], ErrorType::Value, "CN"),
        (&[("csr", Some("hello"))], ErrorType::Value, "csr"),
        (
            &[("approver_email_1", None)],
            ErrorType::Missed,
            "approver_email_1",
        ),
        (
            &[("approver_email_1", Some("info@example.com"))],
            ErrorType::Value,
            "approver_email_1",
        ),
        (
            &[("approver_email_1", Some("admin@other.com"))],
            ErrorType::Value,
            "approver_email_1",
        ),
        (
            &[("approver_email_1", Some("admin@com"))],
            ErrorType::Value,
            "approver_email_1",
        ),
        (
            &[("altname", Some("a.example.com"))],
            ErrorType::Value,
            "altname",
        ),
        (
            &[
                ("altname", Some("a.example.com b.example.com")),
                ("addon_3034", Some("1")),
            ],
            ErrorType::Value,
            "altname",
        ),
        (
            &[
                ("altname", Some("a.example.com")),
                ("altname_input", Some("b.example.com")),
                ("addon_3034", Some("1")),
            ],
            ErrorType::Value,
            "altname",
        ),
        (
            &[("altname", Some("bad_domain")), ("addon_3034", Some("1"))],
            ErrorType::Value,
            "altname",
        ),
        (
            &[("addon_3034", Some("many"))],
            ErrorType::Value,
            "addon_3034",
        ),
        (
            &[
                ("pricelist", Some("3040")),
                ("CN", Some("*.example.com")),
                ("altname", Some("x.example.com")),
            ],
            ErrorType::Value,
            "altname",
        ),
    ];
    for (changes, kind, object) in cases {
        let doc = order(&sb, ACME, changes);
        assert_eq!(
            err_of(&doc),
            (*kind, object.to_string()),
            "{changes:?}: {}",
            xml(&doc)
        );
    }
    // Not enough money: globex has 500, EV with 20 extra domains costs 199 + 20 × 25.
    let doc = order(
        &sb,
        GLOBEX,
        &[
            ("pricelist", Some("3050")),
            ("addon_3051", Some("20")),
            ("altname", Some("a.example.com")),
        ],
    );
    assert_eq!(
        err_of(&doc),
        (ErrorType::Balance, "balance".into()),
        "{}",
        xml(&doc)
    );
    assert_eq!(sb.order_count(), 0);
    assert!(sb.certificates().is_empty());
    assert_eq!(sb.balance("acme@sandbox"), Some(dec("1000.00")));
    assert_eq!(sb.balance("globex@sandbox"), Some(dec("500.00")));
}

/// Approvers may use a parent domain; wildcards validate against their base domain.
#[test]
fn approver_parent_domains_and_wildcards() {
    let sb = Sandbox::demo();
    let doc = order(
        &sb,
        ACME,
        &[
            ("CN", Some("www.shop.example.com")),
            ("approver_email_1", Some("hostmaster@example.com")),
        ],
    );
    assert!(is_ok(&doc), "{}", xml(&doc));
    let doc = order(
        &sb,
        ACME,
        &[
            ("pricelist", Some("3040")),
            ("CN", Some("*.example.org")),
            ("approver_email_1", Some("webmaster@example.org")),
        ],
    );
    assert!(is_ok(&doc), "{}", xml(&doc));
    assert_eq!(sb.balance("acme@sandbox"), Some(dec("912.00")));
}

/// `certificate.order.csr` answers a PEM CSR and key; ordering with that CSR and no CN
/// takes the CN from the CSR.
#[test]
fn generated_csr_orders_with_its_cn() {
    let sb = Sandbox::demo();
    let doc = q(
        &sb,
        &format!("func=certificate.order.csr&sok=ok&authinfo={ACME}&CN=csr.example.net&period=12&pricelist=3033"),
    );
    let model = doc.find("model").unwrap_or_else(|| panic!("{}", xml(&doc)));
    let csr = model.child_text("csr").unwrap().to_string();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    assert!(model
        .child_text("key")
        .unwrap()
        .contains("BEGIN PRIVATE KEY"));
    assert!(doc.find("ok").is_some());
    let doc = order(
        &sb,
        ACME,
        &[
            ("CN", None),
            ("csr", Some(&csr)),
            ("approver_email_1", Some("admin@example.net")),
        ],
    );
    assert!(is_ok(&doc), "{}", xml(&doc));
    assert_eq!(sb.certificates()[0].cn, "csr.example.net");
    assert_eq!(sb.certificates()[0].csr.as_deref(), Some(csr.as_str()));
}

fn reissue(sb: &Sandbox, extra: &[(&str, &str)]) -> Element {
    let mut pairs = vec![
        ("func", "certificate.reissue.step2"),
        ("authinfo", ACME),
        ("elid", "5001"),
        ("sok", "ok"),
        ("approver_method", "auth_email"),
    ];
    pairs.extend_from_slice(extra);
    call(sb, &pairs)
}

/// Reissue in its three modes, with their missing and invalid fields.
#[test]
fn reissue_modes() {
    let sb = Sandbox::demo();
    order_id(&order(&sb, ACME, &[("addon_3034", Some("1"))]));

    assert!(is_ok(&reissue(
        &sb,
        &[
            ("crt_type", "oldrequest"),
            ("approver_email_1", "postmaster@example.com")
        ]
    )));
    assert_eq!(
        sb.certificates()[0].approver_email,
        "postmaster@example.com"
    );

    let csr = csr::fake_csr("shop.example.com");
    assert!(is_ok(&reissue(
        &sb,
        &[("crt_type", "manual"), ("csr", &csr)]
    )));
    assert_eq!(sb.certificates()[0].csr.as_deref(), Some(csr.as_str()));

    assert!(is_ok(&reissue(
        &sb,
        &[("crt_type", "altname"), ("altname", "new.example.com")]
    )));
    assert_eq!(sb.certificates()[0].altnames, vec!["new.example.com"]);
    assert_eq!(sb.certificates()[0].status, 3);

    for (extra, kind, object) in [
        (vec![], ErrorType::Missed, "crt_type"),
        (vec![("crt_type", "other")], ErrorType::Value, "crt_type"),
        (vec![("crt_type", "manual")], ErrorType::Missed, "csr"),
        (
            vec![("crt_type", "manual"), ("csr", "garbage")],
            ErrorType::Value,
            "csr",
        ),
        (vec![("crt_type", "altname")], ErrorType::Missed, "altname"),
        (
            vec![
                ("crt_type", "altname"),
                ("altname", "a.example.com b.example.com"),
            ],
            ErrorType::Value,
            "altname",
        ),
        (
            vec![
                ("crt_type", "oldrequest"),
                ("approver_email_1", "admin@evil.com"),
            ],
            ErrorType::Value,
            "approver_email_1",
        ),
    ] {
        assert_eq!(
            err_of(&reissue(&sb, &extra)),
            (kind, object.to_string()),
            "{extra:?}"
        );
    }
    // The form (no step) describes the certificate.
    let form = q(
        &sb,
        &format!("func=certificate.reissue&elid=5001&authinfo={ACME}"),
    );
    assert_eq!(form.child_text("CN"), Some("shop.example.com"));
}

/// Renewal continues from the old expiry date, not from today, and charges the period.
#[test]
fn prolong_extends_from_old_expiry() {
    let sb = Sandbox::demo();
    sb.set_today(date(2025, 1, 15));
    order_id(&order(&sb, ACME, &[]));
    sb.set_today(date(2025, 12, 1)); // renewing early
    let form = q(
        &sb,
        &format!("func=service.prolong&elid=5001&authinfo={ACME}"),
    );
    let periods: Vec<_> = form
        .find("slist")
        .unwrap()
        .find_all("val")
        .map(|v| (v.get_attr("key").unwrap(), v.get_attr("cost").unwrap()))
        .collect();
    assert_eq!(
        periods,
        vec![("12", "9.0000"), ("24", "16.0000"), ("36", "22.5000")]
    );
    let doc = q(
        &sb,
        &format!("func=service.prolong&elid=5001&period=24&sok=ok&authinfo={ACME}"),
    );
    assert_eq!(
        xml(&doc),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><ok/><doc><newexpiredate>2028-01-15</newexpiredate></doc></doc>\n"
    );
    assert_eq!(sb.certificates()[0].expiredate, date(2028, 1, 15));
    assert_eq!(sb.balance("acme@sandbox"), Some(dec("975.00")));
    let doc = q(
        &sb,
        &format!("func=service.prolong&elid=5001&period=5&sok=ok&authinfo={ACME}"),
    );
    assert_eq!(err_of(&doc), (ErrorType::Value, "period".into()));
    let doc = q(
        &sb,
        &format!("func=service.prolong&elid=5001&sok=ok&authinfo={ACME}"),
    );
    assert_eq!(err_of(&doc), (ErrorType::Missed, "period".into()));
}

/// Deleting a list with one foreign id deletes nothing; a list of own ids deletes them all.
#[test]
fn delete_lists_and_foreign_ids() {
    let sb = Sandbox::demo();
    assert_eq!(order_id(&order(&sb, ACME, &[])), 5001);
    assert_eq!(order_id(&order(&sb, GLOBEX, &[])), 5002);
    assert_eq!(
        order_id(&order(&sb, ACME, &[("remoteid", Some("l3"))])),
        5003
    );
    let doc = q(
        &sb,
        &format!("func=certificate.delete&elid=5001,+5002&authinfo={ACME}"),
    );
    assert_eq!(err_of(&doc), (ErrorType::Access, "elid".into()));
    assert_eq!(
        BmError::from_doc(&doc).unwrap().value.as_deref(),
        Some("5002")
    );
    assert!(sb.certificates().iter().all(|c| !c.deleted));
    assert!(is_ok(&q(
        &sb,
        &format!("func=certificate.delete&elid=5001,+5003&authinfo={ACME}")
    )));
    let deleted: Vec<_> = sb.certificates().iter().map(|c| c.deleted).collect();
    assert_eq!(deleted, vec![true, false, true]);
    // Deleted certificates are gone from the list and can't be deleted twice.
    let list = q(&sb, &format!("func=certificate&authinfo={ACME}"));
    assert_eq!(list.find_all("elem").count(), 0);
    assert_eq!(list.child_text("p_elems"), Some("0"));
    assert_eq!(
        err_of(&q(
            &sb,
            &format!("func=certificate.delete&elid=5001&authinfo={ACME}")
        ))
        .0,
        ErrorType::Access
    );
    assert_eq!(
        err_of(&q(&sb, &format!("func=certificate.delete&authinfo={ACME}"))),
        (ErrorType::Missed, "elid".into())
    );
}

fn status_of(sb: &Sandbox, id: u64) -> u8 {
    sb.certificates()
        .iter()
        .find(|c| c.id == id)
        .unwrap()
        .status
}

/// The message of an error document.
fn msg_of(doc: &Element) -> String {
    BmError::from_doc(doc).unwrap().msg
}

/// A failed issuance shows in the list. The admin-level functions (`certificate.retry`,
/// `resume`, `open`, `setfilter`, `su`) are refused to a customer account with
/// `access`/`func` naming the function and change nothing; `certificate.suspend` does not
/// exist (BILLmanager 6 has none).
#[test]
fn admin_functions_refused_and_no_suspend() {
    let sb = Sandbox::demo();
    assert_eq!(order_id(&order(&sb, ACME, &[])), 5001);
    assert!(sb.fail_issuance(5001));
    assert!(!sb.fail_issuance(9999));
    let list = q(&sb, &format!("func=certificate&authinfo={ACME}"));
    let first = list.find("elem").unwrap();
    assert_eq!(
        (
            first.child_text("status_msg"),
            first.child_text("item_status")
        ),
        (Some("Failed"), Some("6"))
    );
    for f in [
        "certificate.retry",
        "certificate.resume",
        "certificate.open",
        "certificate.setfilter",
        "certificate.su",
    ] {
        let doc = q(&sb, &format!("func={f}&elid=5001&authinfo={ACME}"));
        assert_eq!(err_of(&doc), (ErrorType::Access, "func".into()), "{f}");
        assert!(msg_of(&doc).contains(f), "{}", xml(&doc));
    }
    assert_eq!(status_of(&sb, 5001), 6);
    let doc = q(
        &sb,
        &format!("func=certificate.suspend&elid=5001&authinfo={ACME}"),
    );
    assert_eq!(err_of(&doc), (ErrorType::Missed, "func".into()));
}

/// The certificate's files and key, `certificate.sync`, `certificate.filter`, and the v2
/// order API with `order_period`.
#[test]
fn files_keys_sync_filter_and_v2_orders() {
    let sb = Sandbox::demo();
    order_id(&order(&sb, ACME, &[]));
    order_id(&order(&sb, ACME, &[("remoteid", Some("l2"))]));
    assert!(is_ok(&q(
        &sb,
        &format!("func=certificate.sync&elid=5001,+5002&authinfo={ACME}")
    )));
    let files = q(
        &sb,
        &format!("func=certificate.file&elid=5001&authinfo={ACME}"),
    );
    assert_eq!(files.find_all("elem").count(), 2);
    let file = q(
        &sb,
        &format!("func=certificate.file.edit&elid=5001&file=crt&authinfo={ACME}"),
    );
    assert!(file
        .child_text("content")
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let key = q(
        &sb,
        &format!("func=sslkey.download&elid=5001&authinfo={ACME}"),
    );
    assert!(key
        .child_text("sslkey")
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(is_ok(&q(
        &sb,
        &format!("func=sslkey.delete&elid=5001&authinfo={ACME}")
    )));
    let doc = q(
        &sb,
        &format!("func=sslkey.download&elid=5001&authinfo={ACME}"),
    );
    assert_eq!(err_of(&doc), (ErrorType::Missed, "sslkey".into()));
    assert!(is_ok(&q(
        &sb,
        &format!("func=certificate.filter&CN=x&sok=ok&authinfo={ACME}")
    )));

    let form = format!(
        "func=v2.certificate.order.param&sok=ok&skipbasket=on&remoteid=v2&pricelist=3033&order_period=24&CN=v.example.com&approver_email_1=admin%40v.example.com&adm_fname=A&adm_lname=B&adm_email=a%40example.com&adm_phone=1&like_admin=on&authinfo={ACME}"
    );
    let id = order_id(&q(&sb, &form));
    let c = sb.certificates().into_iter().find(|c| c.id == id).unwrap();
    assert_eq!((c.period, c.remoteid.as_deref()), (24, Some("v2")));

    // without skipbasket=on the order waits in the cart: no id, nothing charged
    let balance = sb.balance("acme@sandbox");
    let doc = q(
        &sb,
        &form
            .replace("&skipbasket=on", "")
            .replace("remoteid=v2", "remoteid=v3"),
    );
    assert!(
        is_ok(&doc) && doc.child_text("id").is_none(),
        "{}",
        xml(&doc)
    );
    assert_eq!(sb.basket_count(), 1);
    assert_eq!(sb.balance("acme@sandbox"), balance);
    assert_eq!(sb.certificates().len(), 3);
}

/// Another account's certificate is refused with access/elid by every function.
#[test]
fn foreign_elid_refused_everywhere() {
    let sb = Sandbox::demo();
    order_id(&order(&sb, GLOBEX, &[]));
    for f in [
        "func=certificate.edit&elid=5001",
        "func=certificate.edit&elid=5001&sok=ok&remoteid=x",
        "func=service.prolong&elid=5001&period=12&sok=ok",
        "func=certificate.reissue.step2&elid=5001&crt_type=oldrequest&sok=ok",
        "func=certificate.reissue&elid=5001",
        "func=certificate.delete&elid=5001",
        "func=certificate.sync&elid=5001",
        "func=certificate.file&elid=5001",
        "func=certificate.file.edit&elid=5001",
        "func=sslkey.download&elid=5001",
        "func=sslkey.edit&elid=5001",
        "func=sslkey.delete&elid=5001",
        "func=certificate.edit&elid=9999",
        "func=certificate.edit&elid=abc",
    ] {
        let doc = q(&sb, &format!("{f}&authinfo={ACME}"));
        assert_eq!(err_of(&doc), (ErrorType::Access, "elid".into()), "{f}");
    }
    assert_eq!(sb.certificates()[0].remoteid.as_deref(), Some("l1"));
    assert_eq!(sb.balance("acme@sandbox"), Some(dec("1000.00")));
}

/// `certificate` lists only the account's certificates, filters by remoteid, and
/// `certificate.edit` reads and updates fields.
#[test]
fn list_and_edit() {
    let sb = Sandbox::demo();
    sb.set_today(date(2025, 3, 1));
    order_id(&order(&sb, ACME, &[]));
    order_id(&order(
        &sb,
        ACME,
        &[
            ("remoteid", Some("l2")),
            ("CN", Some("two.example.com")),
            ("approver_email_1", Some("admin@two.example.com")),
        ],
    ));
    order_id(&order(&sb, GLOBEX, &[]));
    let list = q(
        &sb,
        &format!("func=certificate&authinfo={ACME}&remoteid=l2"),
    );
    assert_eq!(
        xml(&list),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><elem><id>5002</id><CN>two.example.com</CN><altname/><account>acme@sandbox</account><pricelist>PositiveSSL</pricelist><pricelist_id>3033</pricelist_id><period>12</period><remoteid>l2</remoteid><createdate>2025-03-01</createdate><expiredate>2026-03-01</expiredate><status_msg>Requested</status_msg><item_status>3</item_status><cost>9.0000</cost></elem><p_num>1</p_num><p_cnt>1</p_cnt><p_elems>1</p_elems></doc>\n"
    );
    let all = q(&sb, &format!("func=certificate&authinfo={ACME}"));
    assert_eq!(all.find_all("elem").count(), 2);
    assert_eq!(all.child_text("p_cnt"), Some("2"));

    let form = q(
        &sb,
        &format!("func=certificate.edit&elid=5001&authinfo={ACME}"),
    );
    assert_eq!(form.child_text("remoteid"), Some("l1"));
    assert_eq!(form.child_text("adm_email"), Some("ann@example.com"));
    let doc = q(&sb, &format!("func=certificate.edit&elid=5001&sok=ok&authinfo={ACME}&remoteid=l9&approver_email=webmaster@example.com&org_name=ACME+Ltd"));
    assert!(is_ok(&doc), "{}", xml(&doc));
    let c = &sb.certificates()[0];
    assert_eq!(
        (c.remoteid.as_deref(), c.approver_email.as_str()),
        (Some("l9"), "webmaster@example.com")
    );
    assert_eq!(
        c.contacts.get("org_name").map(String::as_str),
        Some("ACME Ltd")
    );
    let doc = q(
        &sb,
        &format!(
            "func=certificate.edit&elid=5001&sok=ok&authinfo={ACME}&approver_email=admin@evil.com"
        ),
    );
    assert_eq!(err_of(&doc), (ErrorType::Value, "approver_email".into()));
    let doc = q(
        &sb,
        &format!("func=certificate.edit&elid=5001&sok=ok&authinfo={ACME}&adm_email=bad"),
    );
    assert_eq!(err_of(&doc), (ErrorType::Value, "adm_email".into()));
}

/// The list filtered by `remoteid` (read through the sandbox's remoteid index) follows
/// edits of a certificate's `remoteid`, lists every certificate with that `remoteid` in id
/// order, only the caller's and only live ones.
#[test]
fn list_by_remoteid_follows_edits() {
    let sb = Sandbox::demo();
    let ids = |remoteid: &str, auth: &str| -> Vec<String> {
        q(
            &sb,
            &format!("func=certificate&authinfo={auth}&remoteid={remoteid}"),
        )
        .find_all("elem")
        .map(|e| e.child_text("id").unwrap_or_default().to_string())
        .collect()
    };
    let a = order_id(&order(&sb, ACME, &[("remoteid", Some("r1"))]));
    let b = order_id(&order(&sb, ACME, &[("remoteid", Some("r2"))]));
    let g = order_id(&order(&sb, GLOBEX, &[("remoteid", Some("r1"))]));
    assert_eq!(ids("r1", ACME), [a.to_string()]);
    assert_eq!(ids("r1", GLOBEX), [g.to_string()]);
    // b takes r1 too: both, in id order; r2 names nothing any more
    let doc = q(
        &sb,
        &format!("func=certificate.edit&elid={b}&sok=ok&authinfo={ACME}&remoteid=r1"),
    );
    assert!(is_ok(&doc), "{}", xml(&doc));
    assert_eq!(ids("r1", ACME), [a.to_string(), b.to_string()]);
    assert!(ids("r2", ACME).is_empty());
    // edited back and forth: listed once
    for r in ["r2", "r1"] {
        let doc = q(
            &sb,
            &format!("func=certificate.edit&elid={b}&sok=ok&authinfo={ACME}&remoteid={r}"),
        );
        assert!(is_ok(&doc), "{}", xml(&doc));
    }
    assert_eq!(ids("r1", ACME), [a.to_string(), b.to_string()]);
    // deleted: gone from the list
    let doc = q(
        &sb,
        &format!("func=certificate.delete&elid={a}&authinfo={ACME}"),
    );
    assert!(is_ok(&doc), "{}", xml(&doc));
    assert_eq!(ids("r1", ACME), [b.to_string()]);
    assert!(ids("nothing", ACME).is_empty());
}

/// `pricelist.export` needs no login and has the documented shape and prices.
#[test]
fn pricelist_export_shape() {
    let sb = Sandbox::demo();
    let doc = q(
        &sb,
        "func=pricelist.export&itemtype=certificate&onlyavailable=on&pricelist=3033",
    );
    assert_eq!(
        xml(&doc),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><pricelist><id>3033</id><name>PositiveSSL</name><name_ru>PositiveSSL</name_ru><description>PositiveSSL SSL certificate</description><itemtype>27</itemtype><datacenter>1</datacenter>\
<price currency=\"EUR\"><period cost=\"9.0000\" type=\"month\" length=\"12\">1 year</period><period cost=\"16.0000\" type=\"month\" length=\"24\">2 years</period><period cost=\"22.5000\" type=\"month\" length=\"36\">3 years</period></price>\
<addon><id>3034</id><name>Additional domains</name><intname>domainlimit</intname><itemtype>28</itemtype><addonlimit>250</addonlimit><measure>pcs.</measure>\
<price currency=\"EUR\"><period cost=\"5.0000\" type=\"month\" length=\"12\">1 year</period><period cost=\"10.0000\" type=\"month\" length=\"24\">2 years</period><period cost=\"15.0000\" type=\"month\" length=\"36\">3 years</period></price></addon></pricelist></doc>\n"
    );
    let all = q(&sb, "func=pricelist.export&itemtype=certificate");
    let ids: Vec<_> = all
        .find_all("pricelist")
        .map(|p| p.child_text("id").unwrap())
        .collect();
    assert_eq!(ids, vec!["3033", "3040", "3050"]);
    assert!(all
        .find_all("pricelist")
        .nth(1)
        .unwrap()
        .find("addon")
        .is_none());
    assert_eq!(
        q(&sb, "func=pricelist.export&itemtype=vds").children.len(),
        0
    );
    // The same document in bjson is plain keys.
    let bjson: serde_json::Value = serde_json::from_slice(&render(&all, Format::Bjson)).unwrap();
    assert_eq!(bjson["pricelist"][2]["addon"]["id"], "3051");
}

/// `func=auth` answers a session id usable as `auth=` or cookie from the same address only;
/// wrong credentials answer `auth`; passwords may contain colons.
#[test]
fn auth_sessions_and_credentials() {
    let sb = Sandbox::new(SandboxConfig {
        accounts: vec![AccountSeed {
            login: "u@x".into(),
            password: "p:a:ss".into(),
            balance: dec("10"),
        }],
        currency: "USD".into(),
    });
    let doc = q(&sb, "func=auth&username=u@x&password=p:a:ss");
    let auth = doc.find("auth").unwrap_or_else(|| panic!("{}", xml(&doc)));
    let sid = auth.get_attr("id").unwrap().to_string();
    assert_eq!(auth.get_attr("level"), Some("16"));
    assert_eq!(auth.text.as_deref(), Some(sid.as_str()));
    assert_eq!(sid.len(), 32);

    let who = q(&sb, &format!("func=whoami&auth={sid}"));
    assert_eq!(
        xml(&who),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><user><name>u@x</name><balance>10.00</balance><currency>USD</currency><level>16</level></user></doc>\n"
    );
    let p = Params::parse(Some("func=whoami"), b"", &Limits::default()).unwrap();
    assert!(sb
        .handle_request(&p, ip(), Some(&sid))
        .find("user")
        .is_some());
    let other_ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(
        err_of(&sb.handle(
            &Params::from_pairs([("func", "whoami"), ("auth", sid.as_str())]),
            other_ip
        ))
        .0,
        ErrorType::Auth
    );

    assert!(q(&sb, "func=whoami&authinfo=u@x:p:a:ss")
        .find("user")
        .is_some());
    for bad in [
        "func=whoami&authinfo=u@x:p",
        "func=whoami&authinfo=u@x",
        "func=whoami&auth=nope",
        "func=whoami",
        "func=auth&username=u@x&password=p",
    ] {
        assert_eq!(err_of(&q(&sb, bad)).0, ErrorType::Auth, "{bad}");
    }
}

/// `su` is refused even with valid credentials; a missing or unknown func is `missed`/`func`.
#[test]
fn su_and_func_errors() {
    let sb = Sandbox::demo();
    assert_eq!(
        err_of(&q(
            &sb,
            &format!("func=whoami&su=globex@sandbox&authinfo={ACME}")
        )),
        (ErrorType::Access, "su".into())
    );
    assert_eq!(
        err_of(&q(&sb, &format!("authinfo={ACME}"))),
        (ErrorType::Missed, "func".into())
    );
    let doc = q(&sb, &format!("func=vds.order&authinfo={ACME}"));
    assert_eq!(err_of(&doc), (ErrorType::Missed, "func".into()));
    assert!(BmError::from_doc(&doc).unwrap().msg.contains("vds.order"));
    // Errors follow `lang`.
    let doc = q(&sb, &format!("func=nope&authinfo={ACME}&lang=ru"));
    assert_eq!(doc.find("error").unwrap().get_attr("lang"), Some("ru"));
}

/// Every call is recorded as received, credentials included, until cleared; the newest
/// `RECEIVED_LIMIT` are kept.
#[test]
fn received_records_calls() {
    let sb = Sandbox::demo();
    q(&sb, &format!("func=whoami&authinfo={ACME}"));
    q(&sb, "func=pricelist.export");
    let got = sb.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].get("authinfo"), Some(ACME));
    assert_eq!(got[1].func(), Some("pricelist.export"));
    sb.clear_received();
    assert!(sb.received().is_empty());
    // The newest are kept, up to the limit.
    for i in 0..logic::RECEIVED_LIMIT + 3 {
        let n = i.to_string();
        sb.record(&Params::from_pairs([("func", "whoami"), ("n", n.as_str())]));
    }
    let got = sb.received();
    assert_eq!(got.len(), logic::RECEIVED_LIMIT);
    assert_eq!(got[0].get("n"), Some("3"));
    assert_eq!(
        got.last().unwrap().get("n"),
        Some((logic::RECEIVED_LIMIT + 2).to_string().as_str())
    );
}

/// The order form lists plans and periods; injected faults queue in order, shared by clones.
#[test]
fn forms_and_knobs() {
    let sb = Sandbox::demo();
    let form = q(
        &sb,
        &format!("func=certificate.order.param&pricelist=3050&authinfo={ACME}"),
    );
    assert_eq!(form.child_text("addon_3051"), Some("0"));
    assert_eq!(sb.order_count(), 0);
    let clone = sb.clone();
    clone.inject(Fault::Hang, FaultPhase::BeforeHandling);
    clone.inject(Fault::Empty, FaultPhase::AfterHandling);
    assert_eq!(
        sb.knobs().next_fault(),
        Some((Fault::Hang, FaultPhase::BeforeHandling))
    );
    assert_eq!(
        sb.knobs().next_fault(),
        Some((Fault::Empty, FaultPhase::AfterHandling))
    );
    assert_eq!(sb.knobs().next_fault(), None);
    sb.knobs().set_fail_rate(1.0);
    assert!(clone.knobs().next_fault().is_some());
    sb.knobs().set_fail_rate(7.0);
    assert_eq!(sb.knobs().fail_rate(), 1.0);
}
