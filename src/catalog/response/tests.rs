//! Unit tests of the answer rewriting: plans, prices, labels and lists in every format.
use std::str::FromStr;

use rust_decimal::Decimal;

use super::*;
use crate::billmgr::{parse, render, Element, Format};
use crate::store::model::Addon;

/// Rewrite `d` as the gateway would, in format `f`; answers whether it changed.
fn map_in(
    store: &Store,
    r: &Reseller,
    func: &str,
    params: &Params,
    sp: Option<u64>,
    d: &mut Element,
    f: Format,
) -> bool {
    let names = UpstreamNames::default();
    let cat = Catalog::new(store, &names);
    let body = render(d, f);
    match rewrite(cat, r, func, params, sp, &body, f).unwrap() {
        Some(out) => {
            let new = parse(&out, f).unwrap();
            let changed = new != *d;
            *d = new;
            changed
        }
        None => false,
    }
}

fn map(
    store: &Store,
    r: &Reseller,
    func: &str,
    params: &Params,
    sp: Option<u64>,
    d: &mut Element,
) -> bool {
    map_in(store, r, func, params, sp, d, Format::Xml)
}

fn store() -> Store {
    let s = Store::open_temporary().unwrap();
    let pct = |p: &str| {
        Some(Markup {
            percent: Decimal::from_str(p).unwrap(),
            ..Markup::default()
        })
    };
    for (id, up, name, markup, addons) in [
        (
            101,
            3033,
            Some("Basic"),
            pct("20"),
            vec![Addon {
                id: 201,
                upstream_id: 3034,
            }],
        ),
        (105, 3033, Some("Basic cheap"), pct("0"), vec![]),
        (102, 3040, None, None, vec![]),
    ] {
        s.put_plan(Plan {
            id,
            upstream_id: up,
            name: name.map(str::to_string),
            markup,
            addons,
        })
        .unwrap();
    }
    s
}

fn reseller(plans: &[u64]) -> Reseller {
    Reseller {
        login: "r".into(),
        password_hash: String::new(),
        upstream_account: "up".into(),
        plans: plans.to_vec(),
        markup: None,
    }
}

const EXPORT: &str = r#"<doc><pricelist><id>3033</id><name>PositiveSSL</name><price currency="EUR"><period cost="10.0000" type="month" length="12">10.0000</period></price><addon><id>3034</id><name>domainlimit</name><price currency="EUR"><period cost="5.0000" length="12">5.0000</period></price></addon><addon><id>3035</id><price><period cost="1.00" length="12"/></price></addon></pricelist><pricelist><id>3040</id><name>Wildcard</name><price currency="EUR"><period cost="1 234,50" length="12">1 234,50</period></price></pricelist><pricelist><id>3099</id><name>Other</name></pricelist></doc>"#;

fn export(plans: &[u64], f: Format, q: &str) -> Element {
    let mut d = parse(EXPORT.as_bytes(), Format::Xml).unwrap();
    // Through the caller's format, as the gateway would have parsed it.
    d = parse(&render(&d, f), f).unwrap();
    let params = Params::parse(Some(q), b"", &Default::default()).unwrap();
    assert!(map_in(
        &store(),
        &reseller(plans),
        "pricelist.export",
        &params,
        None,
        &mut d,
        f
    ));
    // Back to xml to compare one shape.
    d
}

fn summary(d: &Element) -> Vec<String> {
    d.find_all("pricelist")
        .map(|p| {
            let mut s = format!(
                "{} {}",
                p.child_text("id").unwrap_or(""),
                p.child_text("name").unwrap_or("")
            );
            for pr in p
                .find_all("price")
                .chain(p.find_all("addon").filter_map(|a| a.find("price")))
            {
                for per in pr.find_all("period") {
                    s.push_str(&format!(
                        " {}/{}",
                        per.child_text("cost").unwrap_or(""),
                        per.text.as_deref().unwrap_or("")
                    ));
                }
            }
            for a in p.find_all("addon") {
                s.push_str(&format!(" addon {}", a.child_text("id").unwrap_or("")));
            }
            s
        })
        .collect()
}

#[test]
fn export_in_every_parsed_shape() {
    for f in [Format::Xml, Format::Json, Format::Bjson] {
        let d = export(&[101, 105, 102], f, "func=pricelist.export");
        assert_eq!(
            summary(&d),
            [
                "101 Basic 12.00/12.00 6.00/6.00 addon 201",
                "105 Basic cheap 10.00/10.00",
                // no markup: the upstream's (readable) price as written
                "102 Wildcard 1 234,50/1 234,50",
            ],
            "{f:?}"
        );
    }
}

#[test]
fn export_filters_by_set_and_by_asked_id() {
    let d = export(&[105], Format::Xml, "func=pricelist.export");
    assert_eq!(summary(&d), ["105 Basic cheap 10.00/10.00"]);
    let d = export(
        &[101, 105],
        Format::Xml,
        "func=pricelist.export&pricelist=101",
    );
    assert_eq!(summary(&d), ["101 Basic 12.00/12.00 6.00/6.00 addon 201"]);
    let d = export(&[], Format::Xml, "func=pricelist.export");
    assert!(summary(&d).is_empty());
}

#[test]
fn unreadable_prices_withhold_the_plan() {
    for bad in ["garbage", "", "-1.00", "99999999999999999999999999999"] {
        let xml = EXPORT.replace("cost=\"10.0000\"", &format!("cost=\"{bad}\""));
        let mut d = parse(xml.as_bytes(), Format::Xml).unwrap();
        let params =
            Params::parse(Some("func=pricelist.export"), b"", &Default::default()).unwrap();
        map(
            &store(),
            &reseller(&[101, 102]),
            "pricelist.export",
            &params,
            None,
            &mut d,
        );
        let ids: Vec<_> = summary(&d);
        assert_eq!(ids.len(), 1, "{bad:?}: {ids:?}");
        assert!(ids[0].starts_with("102"), "{bad:?}: {ids:?}");
        let out = String::from_utf8(render(&d, Format::Xml)).unwrap();
        assert!(!out.contains("3033") && !out.contains("10.0000"), "{out}");
    }
    // An unreadable add-on price withholds the plan too.
    let xml = EXPORT.replace("cost=\"5.0000\"", "cost=\"n/a\"");
    let mut d = parse(xml.as_bytes(), Format::Xml).unwrap();
    let params = Params::parse(Some("func=pricelist.export"), b"", &Default::default()).unwrap();
    map(
        &store(),
        &reseller(&[101]),
        "pricelist.export",
        &params,
        None,
        &mut d,
    );
    assert!(summary(&d).is_empty());
}

#[test]
fn reseller_markup_replaces_the_plans() {
    let mut r = reseller(&[101]);
    r.markup = Some(Markup {
        percent: Decimal::ZERO,
        fixed: Decimal::ONE,
        round_to: Decimal::ONE,
    });
    let mut d = parse(EXPORT.as_bytes(), Format::Xml).unwrap();
    let params = Params::parse(Some("func=pricelist.export"), b"", &Default::default()).unwrap();
    map(&store(), &r, "pricelist.export", &params, None, &mut d);
    assert_eq!(summary(&d), ["101 Basic 11/11 6/6 addon 201"]);
}

#[test]
fn certificate_list() {
    let xml = r#"<doc><elem><id>7</id><pricelist>PositiveSSL</pricelist><pricelist_id>3033</pricelist_id><cost>10.0000</cost></elem><elem><id>8</id><pricelist>3040</pricelist><cost>bad</cost></elem><elem><id>9</id><pricelist_id>4000</pricelist_id><cost>3.00</cost></elem><p_num>1</p_num></doc>"#;
    let mut d = parse(xml.as_bytes(), Format::Xml).unwrap();
    let params = Params::new();
    assert!(map(
        &store(),
        &reseller(&[101, 102]),
        "certificate",
        &params,
        None,
        &mut d
    ));
    let rows: Vec<_> = d
        .find_all("elem")
        .map(|e| {
            format!(
                "{}|{}|{}",
                e.child_text("pricelist").unwrap_or("-"),
                e.child_text("pricelist_id").unwrap_or("-"),
                e.child_text("cost").unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(rows, ["Basic|101|12.00", "102|-|", "-||"]);
}

#[test]
fn errors_show_local_plan_ids() {
    let st = store();
    for f in [Format::Xml, Format::Json, Format::Bjson] {
        let e = crate::billmgr::BmError::invalid("period", "7").to_doc("en");
        let mut d = parse(&render(&e, f), f).unwrap();
        let before = d.clone();
        assert!(!map_in(
            &st,
            &reseller(&[101]),
            "certificate.order.param",
            &Params::new(),
            None,
            &mut d,
            f
        ));
        assert_eq!(d, before);
        let e = crate::billmgr::BmError::invalid("pricelist", "3033").to_doc("en");
        let mut d = parse(&render(&e, f), f).unwrap();
        assert!(
            map_in(
                &st,
                &reseller(&[101]),
                "certificate.order.param",
                &Params::new(),
                None,
                &mut d,
                f
            ),
            "{f:?}"
        );
        let back = crate::billmgr::BmError::from_doc(&d).unwrap();
        assert_eq!(back.value.as_deref(), Some("101"), "{f:?}");
    }
}

/// Every way a list row can find its recorded service gives the same answer as reading the
/// store row by row; `Stop` halts at the first row that needs one, `Collect` notes every
/// such row (and only those).
#[test]
fn list_rows_read_their_services_alike_every_way() {
    let st = store();
    let svc = |id: u64, reseller: &str, plan: &str| crate::store::services::Service {
        upstream_id: id,
        reseller: reseller.into(),
        remoteid: None,
        plan: Some(plan.into()),
        period: None,
        recorded_at: 0,
        source: crate::store::services::ServiceSource::Order,
        deleted: false,
        history: vec![],
    };
    st.record_service(svc(7, "r", "3033")).unwrap();
    st.record_service(svc(9, "other", "3040")).unwrap();
    // 7: by a name nothing knows, recorded as 3033; 8: by id; 9: by name, another reseller's service;
    // 10: by name, nothing recorded.
    let xml = r#"<doc><elem><id>7</id><pricelist>Wildcard</pricelist><cost>10.00</cost></elem><elem><id>8</id><pricelist_id>3033</pricelist_id><cost>10.00</cost></elem><elem><id>9</id><pricelist>Basic</pricelist><cost>10.00</cost></elem><elem><id>10</id><pricelist>Nothing</pricelist><cost>10.00</cost></elem></doc>"#;
    let r = reseller(&[101, 102]);
    let names = UpstreamNames::default();
    let rewritten = |rows: RowServices, body: &str| {
        let cat = Catalog::new(&st, &names).with_rows(rows);
        rewrite(
            cat,
            &r,
            "certificate",
            &Params::new(),
            None,
            body.as_bytes(),
            Format::Xml,
        )
        .map(|out| String::from_utf8(out.unwrap()).unwrap())
    };
    let run = |rows: RowServices| rewritten(rows, xml).unwrap();
    let by_store = run(RowServices::Store);
    assert!(
        by_store.contains("<id>7</id><pricelist>Basic</pricelist><cost>12.00</cost>"),
        "{by_store}"
    );
    assert!(
        by_store.contains("<id>9</id><pricelist>Basic</pricelist><cost>12.00</cost>"),
        "{by_store}"
    );

    let plans = st.service_plans("r", &[7, 9, 10, 11]).unwrap();
    assert_eq!(
        plans,
        HashMap::from([(7, 3033)]),
        "another reseller's and unknown left out"
    );
    assert_eq!(run(RowServices::Known(&plans)), by_store);

    let ids = RefCell::new(Vec::new());
    run(RowServices::Collect(&ids));
    assert_eq!(ids.into_inner(), [7, 9, 10]);

    // Stopped at row 7, the first that needs a read.
    let stopped = Cell::new(false);
    let halted = rewritten(RowServices::Stop(&stopped), xml);
    assert!(stopped.get());
    assert!(matches!(halted, Err(DocError::Stopped)), "{halted:?}");
    // A list whose rows all name their plan by id needs no read: it does not stop.
    let stopped = Cell::new(false);
    let by_id =
        r#"<doc><elem><id>8</id><pricelist_id>3033</pricelist_id><cost>10.00</cost></elem></doc>"#;
    let out = rewritten(RowServices::Stop(&stopped), by_id).unwrap();
    assert!(!stopped.get());
    assert!(
        out.contains("<pricelist_id>101</pricelist_id><cost>12.00</cost>"),
        "{out}"
    );
}
