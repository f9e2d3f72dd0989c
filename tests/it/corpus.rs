//! Real-shaped documents (`tests/corpus/`, see its README) pass through the gateway with
//! their shape intact: a rewritten document differs from the upstream's only in the
//! values the catalogue rewrites — arrays stay arrays, objects objects, order and unknown
//! fields and attributes survive — in xml, json, sjson and bjson. Price lists whose
//! periods carry labels are imported whole, at marked-up prices.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use resellgate::billmgr::{self, Element, Format, Params};
use resellgate::catalog::{self, Catalog, UpstreamNames};
use resellgate::store::model::{Addon, Plan, Reseller};
use resellgate::store::Store;
use serde_json::{json, Map, Value};

use crate::harness::*;

/// Every fixture of the corpus: (file name, function it answers, format).
fn corpus() -> Vec<(String, String, Format, Vec<u8>)> {
    let dir = repo_path("tests/corpus");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (stem, ext) = name.rsplit_once('.').unwrap();
        let format = match ext {
            "xml" => Format::Xml,
            "json" | "json-arrays" => Format::Json,
            "sjson" => Format::Sjson,
            "bjson" => Format::Bjson,
            _ => continue,
        };
        let func = fixture_func(stem);
        out.push((name.clone(), func, format, std::fs::read(&path).unwrap()));
    }
    assert!(out.len() >= 40, "the corpus is missing: {}", dir.display());
    out
}

/// `pricelist.export.labels` → `pricelist.export`; `certificate.order.param.form` →
/// `certificate.order.param`.
fn fixture_func(stem: &str) -> String {
    let parts: Vec<&str> = stem.split('.').collect();
    parts[..parts.len() - 1].join(".")
}

/// A store where every upstream plan of the corpus is a local plan of the same id, with
/// no markup and no display name, and a reseller who has them all.
fn identity_catalogue() -> (Store, Reseller) {
    let store = Store::open_temporary().unwrap();
    for (id, addons) in [(3033, vec![3034]), (3040, vec![]), (3099, vec![])] {
        store
            .put_plan(Plan {
                id,
                upstream_id: id,
                name: None,
                markup: None,
                addons: addons
                    .into_iter()
                    .map(|a| Addon {
                        id: a,
                        upstream_id: a,
                    })
                    .collect(),
            })
            .unwrap();
    }
    let r = Reseller {
        login: "r".into(),
        password_hash: String::new(),
        upstream_account: "up".into(),
        plans: vec![3033, 3040, 3099],
        markup: None,
    };
    (store, r)
}

/// Two documents are the same structure: for json, the same values in the same order
/// with the same types; for xml, the same elements, attributes (in order) and texts.
fn assert_same_structure(name: &str, format: Format, a: &[u8], b: &[u8]) {
    match format {
        Format::Xml => {
            let x = billmgr::parse(a, Format::Xml).unwrap();
            let y = billmgr::parse(b, Format::Xml)
                .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(b)));
            assert_eq!(x, y, "{name}");
        }
        _ => {
            let x: Value = serde_json::from_slice(a).unwrap();
            let y: Value = serde_json::from_slice(b)
                .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(b)));
            // Serialised, so key order counts too.
            assert_eq!(x.to_string(), y.to_string(), "{name}");
        }
    }
}

fn identity_rewrite(
    store: &Store,
    r: &Reseller,
    func: &str,
    format: Format,
    body: &[u8],
) -> Vec<u8> {
    let names = UpstreamNames::default();
    let cat = Catalog::new(store, &names);
    let params = Params::from_pairs([("func", func)]);
    catalog::rewrite_response(cat, r, func, &params, None, body, format)
        .unwrap_or_else(|e| panic!("{func}: {e}"))
        .unwrap_or_else(|| body.to_vec())
}

/// Rewriting every corpus document with an identity catalogue gives it back unchanged
/// in structure.
#[test]
fn identity_catalogue_keeps_every_corpus_document() {
    let (store, r) = identity_catalogue();
    for (name, func, format, body) in corpus() {
        let out = identity_rewrite(&store, &r, &func, format, &body);
        assert_same_structure(&name, format, &body, &out);
    }
}

// ---------- generated documents ----------

const KEYS: &[&str] = &[
    "CN",
    "account",
    "status",
    "name_ru",
    "description",
    "datacenter",
    "intname",
    "addonlimit",
    "measure",
    "itemtype",
    "note",
    "x-y",
    "Ünïcode",
    "p_num",
    "doc",
];

fn gen_text(rng: &mut StdRng) -> String {
    const PARTS: &[&str] = &[
        "a", "1 year", "1 год", "<&>\"'", "é", "🙂", " ", "\\n", "913.93", "",
    ];
    (0..rng.gen_range(0..4))
        .map(|_| PARTS[rng.gen_range(0..PARTS.len())])
        .collect()
}

/// A json element in the json/sjson convention (`bjson`: plain keys), random shape.
fn gen_json(rng: &mut StdRng, depth: usize, bjson: bool) -> Value {
    if depth > 3 || rng.gen_bool(0.3) {
        return match rng.gen_range(0..6) {
            0 => json!(rng.gen_range(0..1000)),
            1 if bjson => json!(true),
            2 if bjson => Value::Null,
            _ if bjson => json!(gen_text(rng)),
            _ => json!({ "$": gen_text(rng) }),
        };
    }
    let mut m = Map::new();
    for _ in 0..rng.gen_range(0..5) {
        let k = KEYS[rng.gen_range(0..KEYS.len())];
        if rng.gen_bool(0.3) && !bjson {
            m.insert(format!("${k}"), json!(gen_text(rng)));
            continue;
        }
        let v = match rng.gen_range(0..4) {
            0 => Value::Array(
                (0..rng.gen_range(0..3))
                    .map(|_| gen_json(rng, depth + 1, bjson))
                    .collect(),
            ),
            _ => gen_json(rng, depth + 1, bjson),
        };
        m.insert(k.to_string(), v);
    }
    if !bjson && rng.gen_bool(0.3) {
        m.insert("$".into(), json!(gen_text(rng)));
    }
    Value::Object(m)
}

/// A plan the identity catalogue knows, with random extra fields and labelled periods.
fn gen_plan(rng: &mut StdRng, bjson: bool) -> Value {
    let mut p = match gen_json(rng, 2, bjson) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let id = ["3033", "3040", "3099"][rng.gen_range(0..3)];
    let t = |s: &str| if bjson { json!(s) } else { json!({ "$": s }) };
    p.insert("id".into(), t(id));
    let period = |cost: &str, label: &str| {
        if bjson {
            json!({ "cost": cost, "length": "12", "$": label })
        } else {
            json!({ "$cost": cost, "$length": "12", "$": label })
        }
    };
    let periods: Vec<Value> = (0..rng.gen_range(0..3))
        .map(|i| {
            period(
                ["10.0000", "913.9286", "0"][i % 3],
                ["1 year", "1 год", "12"][i % 3],
            )
        })
        .collect();
    let periods = if periods.len() == 1 && rng.gen_bool(0.5) {
        periods.into_iter().next().unwrap()
    } else {
        Value::Array(periods)
    };
    let currency = if bjson { "currency" } else { "$currency" };
    p.insert(
        "price".into(),
        json!({ currency: "EUR", "period": periods }),
    );
    Value::Object(p)
}

/// A list as upstreams write it: an empty array, a one-element array, a single object,
/// or an array of several.
fn gen_list(rng: &mut StdRng, item: impl Fn(&mut StdRng) -> Value) -> Value {
    match rng.gen_range(0..4) {
        0 => Value::Array(vec![]),
        1 => Value::Array(vec![item(rng)]),
        2 => item(rng),
        _ => Value::Array((0..rng.gen_range(2..5)).map(|_| item(rng)).collect()),
    }
}

/// An xml element tree with random names, attributes and texts.
fn gen_xml(rng: &mut StdRng, name: &str, depth: usize) -> Element {
    let mut e = Element::new(name);
    for _ in 0..rng.gen_range(0..3) {
        let k = KEYS[rng.gen_range(0..KEYS.len() - 3)]
            .replace('Ü', "U")
            .replace('ï', "i");
        if e.get_attr(&k).is_none() {
            e.attrs.push((k, gen_text(rng)));
        }
    }
    if depth < 3 && rng.gen_bool(0.6) {
        for _ in 0..rng.gen_range(0..4) {
            let k = KEYS[rng.gen_range(0..KEYS.len() - 3)];
            e.children.push(gen_xml(rng, k, depth + 1));
        }
    } else {
        let t = gen_text(rng);
        if !t.trim().is_empty() {
            e.text = Some(t);
        }
    }
    e
}

/// Rewriting generated documents of every shape (lists of 0, 1 and many as arrays or a
/// single object, nested objects, attributes, numbers and booleans, unicode) with an
/// identity catalogue gives them back structurally equal, in every format and for the
/// list functions and forms alike.
#[test]
fn identity_catalogue_keeps_generated_documents() {
    let (store, r) = identity_catalogue();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for round in 0..300 {
        for format in [Format::Json, Format::Sjson, Format::Bjson] {
            let bjson = format == Format::Bjson;
            let mut doc = match gen_json(&mut rng, 1, bjson) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            let (func, key) = match round % 3 {
                0 => ("pricelist.export", "pricelist"),
                1 => ("certificate", "elem"),
                _ => ("certificate.edit", "model"),
            };
            let list = gen_list(&mut rng, |rng| {
                if func == "pricelist.export" {
                    gen_plan(rng, bjson)
                } else {
                    gen_json(rng, 2, bjson)
                }
            });
            doc.insert(key.into(), list);
            let body = if bjson {
                serde_json::to_vec(&Value::Object(doc)).unwrap()
            } else {
                serde_json::to_vec(&json!({ "doc": Value::Object(doc) })).unwrap()
            };
            let out = identity_rewrite(&store, &r, func, format, &body);
            assert_same_structure(
                &format!("round {round} {format:?} {func}"),
                format,
                &body,
                &out,
            );
        }
        let mut doc = gen_xml(&mut rng, "doc", 0);
        doc.children.retain(|c| c.name != "doc");
        let func = ["pricelist.export", "certificate", "certificate.edit"][round % 3];
        let body = billmgr::render(&doc, Format::Xml);
        let out = identity_rewrite(&store, &r, func, Format::Xml, &body);
        assert_same_structure(
            &format!("round {round} xml {func}"),
            Format::Xml,
            &body,
            &out,
        );
    }
}

// ---------- through the gateway, against a recording upstream ----------

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo_path(&format!("tests/corpus/{name}"))).unwrap()
}

/// A gateway over an upstream that answers every call with the fixture `stem.<ext>`,
/// where `ext` is chosen from the format the gateway asks for (`json_ext` for json).
fn gateway_over(stem: &'static str, json_ext: &'static str) -> (TestEnv, RecordingUpstream) {
    let up = RecordingUpstream::start(move |p| {
        let ext = match p.get("out").unwrap_or("xml") {
            "json" => json_ext,
            "sjson" => "sjson",
            "bjson" => "bjson",
            _ => "xml",
        };
        fixture(&format!("{stem}.{ext}"))
    });
    let env = TestEnv::builder().upstream_url(&up.url()).start();
    (env, up)
}

/// Prices of the marked-up export, per plan: (id, name, [(cost, text)], [addon id]).
/// (id, name, [(cost, text)], [add-on id]).
type PlanSummary = (String, String, Vec<(String, String)>, Vec<String>);

fn plans_of(d: &Element) -> Vec<PlanSummary> {
    d.find_all("pricelist")
        .map(|p| {
            let periods = p
                .find_all("price")
                .flat_map(|pr| pr.find_all("period"))
                .chain(
                    p.find_all("addon")
                        .flat_map(|a| a.find_all("price"))
                        .flat_map(|pr| pr.find_all("period")),
                )
                .map(|per| {
                    (
                        per.child_text("cost").unwrap_or("").to_string(),
                        per.text.clone().unwrap_or_default(),
                    )
                })
                .collect();
            (
                p.child_text("id").unwrap_or("").to_string(),
                p.child_text("name").unwrap_or("").to_string(),
                periods,
                p.find_all("addon")
                    .map(|a| a.child_text("id").unwrap_or("").to_string())
                    .collect(),
            )
        })
        .collect()
}

/// A reseller importing a price list whose periods carry labels (`1 year`, `1 год`,
/// `trial`) sees every mapped plan at marked-up prices, in every format and shape; the
/// labels are kept, an amount inside a label is the marked-up cost, no upstream amount
/// shows, and the document keeps the upstream's shape around the rewritten values.
#[test]
fn labelled_price_list_is_imported_whole_at_marked_up_prices() {
    let want = vec![
        (
            "101".to_string(),
            "PositiveSSL".to_string(),
            vec![
                ("12.50".to_string(), "1 year".to_string()),
                ("22.10".to_string(), "2 years".to_string()),
                ("6.50".to_string(), "1 year".to_string()),
            ],
            vec!["201".to_string()],
        ),
        (
            "102".to_string(),
            "PositiveSSL Wildcard".to_string(),
            vec![
                ("1051.02".to_string(), "1 год — 1051.02 руб.".to_string()),
                ("0.00".to_string(), "trial".to_string()),
            ],
            vec![],
        ),
    ];
    for (out, format, json_ext) in [
        ("xml", Format::Xml, "json"),
        ("json", Format::Json, "json"),
        ("json", Format::Json, "json-arrays"),
        ("sjson", Format::Sjson, "sjson"),
        ("bjson", Format::Bjson, "bjson"),
    ] {
        let (env, up) = gateway_over("pricelist.export.labels", json_ext);
        let resp = env.acme(&format!(
            "func=pricelist.export&itemtype=certificate&onlyavailable=on&out={out}"
        ));
        let d = doc(&resp, format);
        assert_eq!(plans_of(&d), want, "{out}/{json_ext}: {}", resp.text());
        let text = resp.text();
        for upstream_amount in [
            "913", "10.0000", "18.0000", "5.0000", "99.0000", "3099", "3033",
        ] {
            assert!(
                !text.contains(upstream_amount),
                "{out}/{json_ext} shows {upstream_amount}: {text}"
            );
        }
        assert_eq!(up.last().get("func"), Some("pricelist.export"));
        if format != Format::Xml {
            // Shape: the upstream's arrays stay arrays, its objects objects.
            let v: Value = serde_json::from_slice(&resp.body).unwrap();
            let src: Value =
                serde_json::from_slice(&fixture(&format!("pricelist.export.labels.{json_ext}")))
                    .unwrap();
            let root = |v: &Value| {
                if format == Format::Bjson {
                    v.clone()
                } else {
                    v["doc"].clone()
                }
            };
            let (got, was) = (root(&v), root(&src));
            assert!(got["pricelist"].is_array(), "{out}/{json_ext}: {got}");
            let plan = &got["pricelist"][0];
            let was_plan = &was["pricelist"][0];
            let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(plan), keys(was_plan), "{out}/{json_ext}: key order");
            for k in ["price", "addon", "name_ru", "datacenter", "description"] {
                assert_eq!(
                    plan[k].is_array(),
                    was_plan[k].is_array(),
                    "{out}/{json_ext}: {k} changed shape"
                );
            }
            assert_eq!(plan["name_ru"], was_plan["name_ru"], "{out}/{json_ext}");
            assert_eq!(
                plan["addon"]
                    .pointer("/0/addonlimit")
                    .or(plan["addon"].get("addonlimit")),
                was_plan["addon"]
                    .pointer("/0/addonlimit")
                    .or(was_plan["addon"].get("addonlimit")),
            );
            assert_eq!(keys(&got), keys(&was), "{out}/{json_ext}: top-level keys");
        }
    }
}

/// A one-element list the upstream sent as an array arrives as an array (a client that
/// iterates `doc.elem` or `doc.pricelist` must not crash), and a single object stays one.
#[test]
fn one_element_lists_keep_their_shape() {
    for (stem, func, item) in [
        ("pricelist.export.one", "pricelist.export", "pricelist"),
        ("certificate.one", "certificate", "elem"),
    ] {
        for (json_ext, array) in [("json-arrays", true), ("json", false), ("sjson", true)] {
            let (env, _up) = gateway_over(stem, json_ext);
            let out = if json_ext == "sjson" { "sjson" } else { "json" };
            let resp = env.acme(&format!("func={func}&out={out}"));
            let v: Value = serde_json::from_slice(&resp.body)
                .unwrap_or_else(|e| panic!("{e}: {}", resp.text()));
            assert_eq!(v["doc"][item].is_array(), array, "{stem}.{json_ext}: {v}");
            assert!(v["doc"].get("error").is_none(), "{v}");
        }
    }
}

/// Certificate-list rows that name their plan only by name show the marked-up cost of
/// that plan (found by its name), never the upstream's; rows with an id show the local id.
#[test]
fn list_rows_named_by_plan_name_show_marked_up_costs() {
    for (out, format, json_ext) in [
        ("xml", Format::Xml, "json"),
        ("json", Format::Json, "json-arrays"),
        ("sjson", Format::Sjson, "sjson"),
        ("bjson", Format::Bjson, "bjson"),
    ] {
        let (env, _up) = gateway_over("certificate.many", json_ext);
        let resp = env.acme(&format!("func=certificate&out={out}"));
        let d = doc(&resp, format);
        let rows: Vec<String> = d
            .find_all("elem")
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e.child_text("id").unwrap_or(""),
                    e.child_text("pricelist").unwrap_or(""),
                    e.child_text("pricelist_id").unwrap_or("-"),
                    e.child_text("cost").unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                "5001 PositiveSSL - 12.50",
                "5002 PositiveSSL Wildcard 102 1051.02",
                "5003 PositiveSSL 101 12.50",
            ],
            "{out}/{json_ext}: {}",
            resp.text()
        );
        assert!(!resp.text().contains("913.9286") && !resp.text().contains("10.0000"));
        // Unknown fields and attributes survive.
        assert!(
            resp.text().contains("Waiting for approval")
                && resp.text().contains("processingmodule")
        );
    }
}

/// A row that names its plan only by name is priced by the service the gateway recorded
/// for its certificate (that service's plan, not the name's), whichever store holds it:
/// on sled the list is rewritten again on the blocking pool reading row by row, on
/// PostgreSQL the rows' services are read in one query between two passes. Another
/// reseller's service is not used.
#[test]
fn list_rows_are_priced_by_their_recorded_service_on_either_store() {
    let db = crate::pg::TestDb::create();
    let mut stores = vec![("sled", String::new())];
    stores.extend(db.as_ref().map(|db| ("postgres", db.store_toml())));
    for (store, toml) in stores {
        for (out, format) in [("xml", Format::Xml), ("json", Format::Json)] {
            let up = RecordingUpstream::start(move |p| {
                let ext = if p.get("out") == Some("json") {
                    "json-arrays"
                } else {
                    "xml"
                };
                fixture(&format!("certificate.many.{ext}"))
            });
            let env = TestEnv::builder()
                .upstream_url(&up.url())
                .config(&toml)
                .start();
            let service =
                |id: u64, reseller: &str, plan: &str| resellgate::store::services::Service {
                    upstream_id: id,
                    reseller: reseller.into(),
                    remoteid: None,
                    plan: Some(plan.into()),
                    period: Some("12".into()),
                    recorded_at: 0,
                    source: resellgate::store::services::ServiceSource::Order,
                    deleted: false,
                    history: vec![],
                };
            // 5001 says "PositiveSSL" (3033) but was ordered as the wildcard (3040).
            env.store
                .record_service(service(5001, "acme", "3040"))
                .unwrap();
            let resp = env.acme(&format!("func=certificate&out={out}"));
            let rows = |resp: &crate::client::Response| -> Vec<String> {
                doc(resp, format)
                    .find_all("elem")
                    .map(|e| {
                        format!(
                            "{} {} {}",
                            e.child_text("id").unwrap_or(""),
                            e.child_text("pricelist").unwrap_or(""),
                            e.child_text("cost").unwrap_or("")
                        )
                    })
                    .collect()
            };
            assert_eq!(
                rows(&resp),
                [
                    "5001 PositiveSSL Wildcard 11.50",
                    "5002 PositiveSSL Wildcard 1051.02",
                    "5003 PositiveSSL 12.50",
                ],
                "{store}/{out}: {}",
                resp.text()
            );
            assert!(!resp.text().contains("10.0000"), "{store}/{out}");
        }
    }
    // Another reseller's service for the same certificate: the name prices the row.
    let up = RecordingUpstream::start(|_| fixture("certificate.many.xml"));
    let env = TestEnv::builder().upstream_url(&up.url()).start();
    env.store
        .record_service(resellgate::store::services::Service {
            upstream_id: 5001,
            reseller: "globex".into(),
            remoteid: None,
            plan: Some("3040".into()),
            period: None,
            recorded_at: 0,
            source: resellgate::store::services::ServiceSource::Order,
            deleted: false,
            history: vec![],
        })
        .unwrap();
    let d = doc(&env.acme("func=certificate"), Format::Xml);
    let first = d.find_all("elem").next().unwrap();
    assert_eq!(first.child_text("pricelist"), Some("PositiveSSL"));
    assert_eq!(first.child_text("cost"), Some("12.50"));
}

/// An order form's plan list shows local ids and the marked-up price inside each entry's
/// text; the period list's costs and texts are marked up; other lists are untouched.
#[test]
fn order_form_lists_show_marked_up_prices() {
    let (env, up) = gateway_over("certificate.order.param.form", "json");
    let resp = env.acme("func=certificate.order.param&pricelist=101");
    assert_eq!(up.last().get("pricelist"), Some("3033"));
    let d = doc(&resp, Format::Xml);
    let list = |name: &str| -> Vec<String> {
        d.find_all("slist")
            .find(|s| s.get_attr("name") == Some(name))
            .unwrap()
            .find_all("val")
            .map(|v| {
                format!(
                    "{}|{}|{}",
                    v.get_attr("key").unwrap_or(""),
                    v.get_attr("cost").unwrap_or("-"),
                    v.text.as_deref().unwrap_or("")
                )
            })
            .collect()
    };
    assert_eq!(
        list("pricelist"),
        [
            "101|-|PositiveSSL - 12.50 EUR",
            "102|-|PositiveSSL Wildcard"
        ]
    );
    assert_eq!(
        list("period"),
        [
            "12|12.50|1 year - 12.50 EUR",
            "24|22.10|2 years - 22.10 EUR"
        ]
    );
    assert_eq!(
        list("crt_type"),
        ["generate|-|Generate a CSR", "manual|-|Enter a CSR"]
    );
    assert_eq!(d.child_text("pricelist"), Some("101"));
    assert_eq!(d.child_text("addon_201"), Some("2"));
}

/// `service.prolong`'s nested `doc` (ISPsystem's own client reads
/// `/doc/doc/newexpiredate`) reaches the reseller as the upstream sent it.
#[test]
fn nested_doc_passes_through() {
    for (out, json_ext) in [
        ("xml", "json"),
        ("json", "json"),
        ("sjson", "sjson"),
        ("bjson", "bjson"),
    ] {
        let (env, up) = gateway_over("service.prolong", json_ext);
        env.store
            .record_service(resellgate::store::services::Service {
                upstream_id: 5001,
                reseller: "acme".into(),
                remoteid: Some("l17".into()),
                plan: Some("3033".into()),
                period: Some("12".into()),
                recorded_at: 0,
                source: resellgate::store::services::ServiceSource::Order,
                deleted: false,
                history: vec![],
            })
            .unwrap();
        let resp = env.acme(&format!(
            "func=service.prolong&elid=5001&period=12&sok=ok&out={out}"
        ));
        assert_eq!(up.last().get("elid"), Some("5001"));
        let text = resp.text();
        let date = match out {
            "xml" => doc(&resp, Format::Xml)
                .find("doc")
                .and_then(|n| n.child_text("newexpiredate"))
                .map(str::to_string),
            "bjson" => {
                let v: Value = serde_json::from_str(&text).unwrap();
                v["doc"]["newexpiredate"].as_str().map(str::to_string)
            }
            _ => {
                let v: Value = serde_json::from_str(&text).unwrap();
                let first = |v: &Value| {
                    if v.is_array() {
                        v[0].clone()
                    } else {
                        v.clone()
                    }
                };
                first(&first(&v["doc"]["doc"])["newexpiredate"])["$"]
                    .as_str()
                    .map(str::to_string)
            }
        };
        assert_eq!(date.as_deref(), Some("2028-01-10"), "{out}: {text}");
        assert_same_structure(
            out,
            if out == "xml" {
                Format::Xml
            } else {
                Format::Json
            },
            &fixture(&format!(
                "service.prolong.{}",
                if out == "xml" {
                    "xml"
                } else if out == "bjson" {
                    "bjson"
                } else {
                    json_ext
                }
            )),
            &resp.body,
        );
    }
}
