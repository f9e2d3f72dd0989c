//! The catalogue through real HTTP against the sandbox: plan import (pricelist.export)
//! under local ids and marked-up prices in every format, orders by local ids, refusals
//! of foreign or unmapped plans, certificate lists, and mappings changed while running.

use resellgate::billmgr::{Element, Format};
use resellgate::store::model::{Markup, Plan};
use rust_decimal::Decimal;

use crate::harness::*;

/// (id, name, [(length, cost attribute, text)], [(addon id, [(length, cost, text)])]).
type PlanView = (
    String,
    String,
    Vec<(String, String, String)>,
    Vec<(String, Vec<(String, String, String)>)>,
);

fn periods(price_parent: &Element) -> Vec<(String, String, String)> {
    price_parent
        .find("price")
        .map(|pr| {
            pr.find_all("period")
                .map(|p| {
                    (
                        p.child_text("length").unwrap_or("").to_string(),
                        p.child_text("cost").unwrap_or("").to_string(),
                        p.text.clone().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn plans(d: &Element) -> Vec<PlanView> {
    d.find_all("pricelist")
        .map(|p| {
            (
                p.child_text("id").unwrap_or("").to_string(),
                p.child_text("name").unwrap_or("").to_string(),
                periods(p),
                p.find_all("addon")
                    .map(|a| (a.child_text("id").unwrap_or("").to_string(), periods(a)))
                    .collect(),
            )
        })
        .collect()
}

/// (length, marked-up cost, text): the sandbox labels its periods (`1 year`, `2 years`)
/// as real billings do, and labels are kept as written.
fn per(items: &[(&str, &str)]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(l, c)| {
            let label = match *l {
                "12" => "1 year".to_string(),
                m => format!("{} years", m.parse::<u32>().unwrap() / 12),
            };
            (l.to_string(), c.to_string(), label)
        })
        .collect()
}

/// acme's view of the demo catalogue: its three plans, under local ids, at its prices.
fn acme_expected() -> Vec<PlanView> {
    vec![
        (
            "101".into(),
            "PositiveSSL".into(),
            // 9.00 × 1.20 + 0.50 = 11.30; 16 → 19.70; 22.50 → 27.50
            per(&[("12", "11.30"), ("24", "19.70"), ("36", "27.50")]),
            // add-on 5.00 → 6.50; 10.00 → 12.50; 15.00 → 18.50
            vec![(
                "201".into(),
                per(&[("12", "6.50"), ("24", "12.50"), ("36", "18.50")]),
            )],
        ),
        (
            "102".into(),
            "PositiveSSL Wildcard".into(),
            // 79.00 × 1.15 = 90.85; 150 × 1.15 = 172.50
            per(&[("12", "90.85"), ("24", "172.50")]),
            vec![],
        ),
        (
            "103".into(),
            "EV Multi-Domain".into(),
            // 199 × 1.10 = 218.9 → 219 (round_to 1); add-on 25 × 1.1 = 27.5 → 28
            per(&[("12", "219")]),
            vec![("203".into(), per(&[("12", "28")]))],
        ),
    ]
}

#[test]
fn acme_imports_its_plans_in_every_format() {
    let env = TestEnv::start();
    for (out, f) in [
        ("xml", Format::Xml),
        ("json", Format::Json),
        ("sjson", Format::Sjson),
        ("bjson", Format::Bjson),
    ] {
        let resp = env.acme(&format!(
            "func=pricelist.export&itemtype=certificate&onlyavailable=on&out={out}"
        ));
        let d = doc(&resp, f);
        assert_eq!(plans(&d), acme_expected(), "{out}: {}", resp.text());
        let body = resp.text();
        for upstream in ["3033", "3034", "3040", "3050", "3051", "9.0000"] {
            assert!(!body.contains(upstream), "{out}: {upstream} leaked: {body}");
        }
        // Currency stays the upstream's.
        let price = d.find("pricelist").unwrap().find("price").unwrap();
        assert_eq!(price.child_text("currency"), Some("EUR"), "{out}");
    }
    let resp = env.acme("func=pricelist.export&itemtype=certificate&out=text");
    let text = resp.text();
    assert!(text.contains("id=101 name=PositiveSSL"), "{text}");
    assert!(text.contains("id=103 name=EV Multi-Domain"), "{text}");
    for upstream in ["3033", "3040", "3050"] {
        assert!(!text.contains(upstream), "{upstream} leaked: {text}");
    }
}

#[test]
fn globex_sees_only_its_plan_at_its_own_markup() {
    let env = TestEnv::start();
    for (out, f) in [("xml", Format::Xml), ("bjson", Format::Bjson)] {
        let resp = env.globex(&format!("func=pricelist.export&out={out}"));
        let d = doc(&resp, f);
        assert_eq!(
            plans(&d),
            vec![(
                "101".to_string(),
                "PositiveSSL".to_string(),
                // percent 10 replaces the plan's 20 % + 0.50 as a whole
                per(&[("12", "9.90"), ("24", "17.60"), ("36", "24.75")]),
                vec![(
                    "201".to_string(),
                    per(&[("12", "5.50"), ("24", "11.00"), ("36", "16.50")])
                )],
            )],
            "{out}: {}",
            resp.text()
        );
    }
}

#[test]
fn export_filter_by_local_id() {
    let env = TestEnv::start();
    let resp = env.acme("func=pricelist.export&pricelist=102");
    assert_eq!(env.last_upstream().get("pricelist"), Some("3040"));
    let d = doc(&resp, Format::Xml);
    let got = plans(&d);
    assert_eq!(got.len(), 1, "{}", resp.text());
    assert_eq!(got[0].0, "102");
    let before = env.sandbox.sandbox.received().len();
    let resp = env.globex("func=pricelist.export&pricelist=102");
    assert_error(&resp, Format::Xml, "value", "pricelist");
    assert_eq!(env.sandbox.sandbox.received().len(), before);
}

const ORDER: &str = "func=certificate.order.param&sok=ok&skipbasket=on&period=12&CN=shop.example.com&approver_email_1=admin%40shop.example.com&adm_fname=A&adm_lname=B&adm_email=a%40example.com&adm_phone=1&like_admin=on";

#[test]
fn order_by_local_id_reaches_the_upstream_with_upstream_ids() {
    let env = TestEnv::start();
    let resp = env.acme(&format!(
        "{ORDER}&remoteid=c1&pricelist=101&addon_201=2&altname=www.shop.example.com&altname_input=www.shop.example.com"
    ));
    let d = doc(&resp, Format::Xml);
    assert!(d.child_text("id").is_some(), "{}", resp.text());
    let up = env
        .sandbox
        .sandbox
        .received()
        .into_iter()
        .find(|p| p.func() == Some("certificate.order.param"))
        .expect("the order reached the upstream");
    assert_eq!(up.get("pricelist"), Some("3033"));
    assert_eq!(up.get("addon_3034"), Some("2"));
    assert!(!up.contains("addon_201"));
    for (_, v) in up.iter() {
        assert_ne!(v, "101");
    }
    // The certificate list shows the local plan id and the marked-up cost:
    // 9.00 + 2 × 5.00 = 19.00 → 19.00 × 1.20 + 0.50 = 23.30.
    for (out, f) in [
        ("xml", Format::Xml),
        ("json", Format::Json),
        ("bjson", Format::Bjson),
    ] {
        let resp = env.acme(&format!("func=certificate&out={out}"));
        let d = doc(&resp, f);
        let e = d.find("elem").unwrap_or_else(|| panic!("{}", resp.text()));
        assert_eq!(e.child_text("pricelist_id"), Some("101"), "{out}");
        assert_eq!(e.child_text("pricelist"), Some("PositiveSSL"), "{out}");
        assert_eq!(
            e.child_text("cost"),
            Some("23.30"),
            "{out}: {}",
            resp.text()
        );
        assert!(!resp.text().contains("3033"), "{}", resp.text());
    }
    // globex's markup applies to its own certificates: 9.00 × 1.10 = 9.90.
    let resp = env.globex(&format!("{ORDER}&remoteid=g1&pricelist=101"));
    assert!(
        doc(&resp, Format::Xml).child_text("id").is_some(),
        "{}",
        resp.text()
    );
    let d = doc(&env.globex("func=certificate"), Format::Xml);
    let e = d.find("elem").unwrap();
    assert_eq!(e.child_text("cost"), Some("9.90"));
}

#[test]
fn foreign_unknown_and_unmapped_plans_are_refused_and_not_forwarded() {
    let env = TestEnv::start();
    let cases: &[(&str, (&str, &str), &str)] = &[
        ("pricelist=3033", ACME, "pricelist"), // an upstream id directly
        ("pricelist=999", ACME, "pricelist"),  // unknown
        ("pricelist=102", GLOBEX, "pricelist"), // outside globex's set
        ("pricelist=101&addon_3034=1", ACME, "addon_3034"), // upstream add-on id
        ("pricelist=101&addon_203=1", ACME, "addon_203"), // another plan's add-on
        ("pricelist=101&addon_999=1", ACME, "addon_999"), // unmapped
    ];
    for (extra, who, object) in cases {
        for (out, f) in [
            ("xml", Format::Xml),
            ("json", Format::Json),
            ("bjson", Format::Bjson),
        ] {
            let resp = env.post(&format!(
                "{ORDER}&remoteid=x&{extra}&out={out}&authinfo={}:{}",
                who.0, who.1
            ));
            assert_error(&resp, f, "value", object);
        }
    }
    // Form reads too.
    let resp = env.acme("func=certificate.order.param&pricelist=3040");
    assert_error(&resp, Format::Xml, "value", "pricelist");
    let resp = env.acme("func=certificate.order.param&pricelist=101&out=text");
    assert!(!resp.text().starts_with("ERROR"), "{}", resp.text());
    let n = env.sandbox.sandbox.received().len();
    assert_eq!(n, 1, "only the valid form read was forwarded");
    let resp = env.acme("func=certificate.order.param&pricelist=abc&out=text");
    assert!(
        resp.text().starts_with("ERROR value(pricelist)"),
        "{}",
        resp.text()
    );
    assert_eq!(env.sandbox.sandbox.received().len(), n);
}

#[test]
fn order_form_shows_local_ids_and_marked_up_prices() {
    let env = TestEnv::start();
    let resp = env.acme("func=certificate.order.param&pricelist=101");
    assert_eq!(env.last_upstream().get("pricelist"), Some("3033"));
    let d = doc(&resp, Format::Xml);
    assert_eq!(d.child_text("pricelist"), Some("101"), "{}", resp.text());
    assert!(d.find("addon_201").is_some(), "{}", resp.text());
    assert!(d.find("addon_3034").is_none(), "{}", resp.text());
    let slist = |name: &str| {
        d.find_all("slist")
            .find(|s| s.get_attr("name") == Some(name))
            .unwrap()
            .clone()
    };
    let keys: Vec<_> = slist("pricelist")
        .find_all("val")
        .map(|v| v.get_attr("key").unwrap().to_string())
        .collect();
    assert_eq!(keys, ["101", "102", "103"]);
    let periods: Vec<_> = slist("period")
        .find_all("val")
        .map(|v| {
            (
                v.get_attr("pricelist").unwrap().to_string(),
                v.get_attr("key").unwrap().to_string(),
                v.get_attr("cost").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        periods,
        [
            ("101".to_string(), "12".to_string(), "11.30".to_string()),
            ("101".into(), "24".into(), "19.70".into()),
            ("101".into(), "36".into(), "27.50".into()),
        ]
    );
    // globex's form lists only its plan.
    let d = doc(&env.globex("func=certificate.order.param"), Format::Xml);
    let keys: Vec<_> = d
        .find_all("slist")
        .flat_map(|s| s.find_all("val"))
        .filter_map(|v| v.get_attr("pricelist").or(v.get_attr("key")))
        .collect();
    assert!(keys.iter().all(|k| !k.starts_with("30")), "{keys:?}");
    assert!(keys.contains(&"101"));
    assert!(!keys.contains(&"102"));
}

#[test]
fn renew_form_never_shows_upstream_prices() {
    let env = TestEnv::start();
    let resp = env.globex(&format!("{ORDER}&remoteid=g1&pricelist=101"));
    let d = doc(&resp, Format::Xml);
    let id = d.child_text("id").unwrap().to_string();
    // globex has its own markup, which applies whatever the plan: 9.00 → 9.90.
    let resp = env.globex(&format!("func=service.prolong&elid={id}"));
    let text = resp.text();
    assert!(text.contains("cost=\"9.90\""), "{text}");
    assert!(!text.contains("9.0000"), "{text}");
    // acme's plans carry different markups and the form does not say which plan it is:
    // the service map does. Plan 101: 9.00 + 20% + 0.50 = 11.30, also in json.
    let resp = env.acme(&format!("{ORDER}&remoteid=a1&pricelist=101"));
    let id = doc(&resp, Format::Xml)
        .child_text("id")
        .unwrap()
        .to_string();
    let resp = env.acme(&format!("func=service.prolong&elid={id}"));
    let text = resp.text();
    assert!(text.contains("cost=\"11.30\""), "{text}");
    assert!(text.contains("12 months - 11.30 EUR"), "{text}");
    assert!(!text.contains("9.0000"), "{text}");
    let resp = env.acme(&format!("func=service.prolong&elid={id}&out=json"));
    assert!(resp.text().contains("11.30"), "{}", resp.text());
    assert!(!resp.text().contains("9.0000"), "{}", resp.text());
    // A certificate bought upstream before the gateway: its plan comes from the upstream
    // list when the elid is first seen. Plan 102 (3040): 79.00 + 15% = 90.85.
    let direct = crate::client::post_form(
        env.sandbox.addr,
        "/billmgr",
        &format!(
            "{}&remoteid=a2&pricelist=3040&authinfo={}:{}",
            ORDER
                .replace("CN=shop", "CN=*.wild")
                .replace("%40shop", "%40wild"),
            ACME_UP.0,
            ACME_UP.1
        ),
    )
    .unwrap();
    let up = doc(&direct, Format::Xml)
        .child_text("id")
        .unwrap_or_else(|| panic!("{}", direct.text()))
        .to_string();
    let resp = env.acme(&format!("func=service.prolong&elid={up}"));
    let text = resp.text();
    assert!(text.contains("cost=\"90.85\""), "{text}");
    assert!(!text.contains("79.0000"), "{text}");
}

#[test]
fn mapping_changes_take_effect_on_the_next_request() {
    let env = TestEnv::start();
    let d = doc(&env.acme("func=pricelist.export"), Format::Xml);
    assert_eq!(plans(&d)[0].2[0].1, "11.30");
    // The operator renames plan 101 and changes its markup while the gateway runs.
    let mut plan: Plan = (*env.store.plan(101).unwrap()).clone();
    plan.name = Some("Positive Basic".into());
    plan.markup = Some(Markup {
        percent: Decimal::from(50),
        fixed: Decimal::ZERO,
        round_to: Decimal::ONE,
    });
    env.store.put_plan(plan).unwrap();
    let d = doc(&env.acme("func=pricelist.export"), Format::Xml);
    let got = plans(&d);
    assert_eq!(got[0].0, "101");
    assert_eq!(got[0].1, "Positive Basic");
    // 9 × 1.5 = 13.5 → 14 (half-up to whole units)
    assert_eq!(got[0].2[0].1, "14");
    // A mapping file applied while running: globex gets plan 102 and no markup override.
    let path = env.dir.path().join("mappings.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "plans = [101]\nmarkup = { percent = \"10\" }",
        "plans = [101, 102]",
    );
    assert!(
        text.contains("plans = [101, 102]"),
        "demo.toml changed shape"
    );
    std::fs::write(&path, text).unwrap();
    let changed = resellgate::config::load_mappings(std::slice::from_ref(&path))
        .unwrap()
        .apply_to(&env.store)
        .unwrap();
    assert!(!changed.is_empty());
    assert_eq!(
        env.store.reseller("globex").unwrap().plans,
        [101, 102],
        "{changed:?}"
    );
    let d = doc(&env.globex("func=pricelist.export"), Format::Xml);
    let got = plans(&d);
    let ids: Vec<_> = got.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(ids, ["101", "102"]);
    // The file still has plan 101 at 20 % + 0.50: applying it restored that.
    assert_eq!(got[0].2[0].1, "11.30");
    assert_eq!(got[1].2[0].1, "90.85");
    // Ordering plan 102 works for globex now.
    let resp = env.globex("func=certificate.order.param&pricelist=102");
    assert!(!resp.text().contains("<error"), "{}", resp.text());
    assert_eq!(env.last_upstream().get("pricelist"), Some("3040"));
}

#[test]
fn a_plan_the_upstream_does_not_sell_is_absent() {
    let env = TestEnv::start();
    // Plan 104 maps to an upstream plan that does not exist: nothing to show, no error.
    env.store
        .put_plan(Plan {
            id: 104,
            upstream_id: 9999,
            name: Some("Ghost".into()),
            markup: None,
            addons: vec![],
        })
        .unwrap();
    let mut r = (*env.store.reseller("acme").unwrap()).clone();
    r.plans.push(104);
    env.store.put_reseller(r).unwrap();
    let d = doc(&env.acme("func=pricelist.export"), Format::Xml);
    let ids: Vec<_> = plans(&d).into_iter().map(|p| p.0).collect();
    assert_eq!(ids, ["101", "102", "103"]);
}

/// Mapping files that refer to an undefined plan are refused naming file and entry.
#[test]
fn unknown_plan_reference_names_file_and_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_mappings(dir.path());
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("plans = [101]\n", "plans = [101, 777]\n");
    std::fs::write(&path, text).unwrap();
    let set = resellgate::config::load_mappings(&[path]);
    let e = match set {
        Err(e) => e.to_string(),
        Ok(set) => set
            .apply_to(&resellgate::store::Store::open_temporary().unwrap())
            .unwrap_err()
            .to_string(),
    };
    assert!(
        e.contains("mappings.toml") && e.contains("reseller 'globex'") && e.contains("777"),
        "{e}"
    );
}
