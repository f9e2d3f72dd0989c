//! In-process measurements for `bench/`: the gateway's own time on one answer, without
//! the network (`resellgate bench-rewrite`, a hidden subcommand `bench/rewrite.sh` calls).
//!
//! A temporary store holds one reseller with `plans` local plans, each over its own
//! upstream plan (markup and one add-on each, as a real catalogue has); the upstream's
//! documents are made here: a `pricelist.export` of those plans (each with `name_ru`, a
//! description, two labelled periods and an add-on — ~620 bytes a plan in xml, the shape
//! `bench/large_export.sh` serves) and a certificate list of `rows` rows, twice: rows that
//! name their plan by id and by name, and rows that name it by name only (the columns
//! PROTOCOL.md lists), each of whose certificates the gateway recorded as a service, so
//! that each row is priced by its service read from the store. Each iteration
//! does what the call path does between the upstream's last byte and the reseller's
//! first: [`rewrite::reseller_list_document`] (the answer read once: checked, rewritten
//! by the catalogue, and the light document it is judged by) — tried without reading the
//! store, then again reading it when a row needs its service, as the call path does (less
//! the hop to the blocking pool) — then secrets redacted. `--store-url` puts the store on
//! PostgreSQL, where the rows' services are read in one query.
//! Timings are per iteration, reported at p50/p99/max.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::billmgr::{Format, Params};
use crate::catalog::{Catalog, UpstreamNames};
use crate::proxy::answer::{list_answer, reading_store, without_reads};
use crate::proxy::rewrite;
use crate::secret::PasswordSource;
use crate::store::model::{Addon, Markup, Plan, Reseller, UpstreamAccount};
use crate::store::services::{Service, ServiceSource};
use crate::store::{Batch, Location, Store, StoreError};

/// The upstream account's password in the made-up documents' calls (redacted if echoed).
const SECRET: &str = "bench-upstream-password";

/// One measured case: per answer, wall-clock and this thread's CPU time (the latter is
/// what the gateway spends; the former also counts waiting for a core on a shared
/// machine), and the CPU time of the check alone.
#[derive(Debug, Clone)]
pub struct Timing {
    pub case: String,
    pub format: Format,
    pub bytes: usize,
    pub wall: Percentiles,
    pub cpu: Percentiles,
}

/// p50, p99 and the maximum of a set of durations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    fn of(mut times: Vec<Duration>) -> Percentiles {
        times.sort();
        Percentiles {
            p50: percentile(&times, 0.50),
            p99: percentile(&times, 0.99),
            max: times.last().copied().unwrap_or_default(),
        }
    }
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// A store with reseller `bench` over `plans` plans: local id `1000 + i` over upstream
/// plan `50_000 + i`, add-on `2000 + i` over upstream add-on `60_000 + i`; and `rows`
/// services, certificate `9000 + i` over upstream plan `50_000 + i % plans` (the rows of
/// [`list_doc`]), each with `history` events. A temporary sled store, or the (empty) one
/// at `at`.
pub fn seeded_store(
    plans: usize,
    rows: usize,
    history: usize,
    at: Option<&Location>,
) -> Result<Store, StoreError> {
    let store = match at {
        Some(at) => Store::open_at(at)?,
        None => Store::open_temporary()?,
    };
    let markup = Markup {
        percent: 20.into(),
        fixed: rust_decimal::Decimal::new(50, 2),
        round_to: Markup::default_round_to(),
    };
    let mut batch = Batch::default();
    batch.upstream_accounts.push(UpstreamAccount {
        name: "bench-up".into(),
        login: "bench@upstream".into(),
        password: PasswordSource::Env("RESELLGATE_BENCH_UNUSED".into()),
    });
    for i in 0..plans as u64 {
        batch.plans.push(Plan {
            id: 1000 + i,
            upstream_id: 50_000 + i,
            name: Some(format!("Local plan {i}")),
            markup: Some(markup),
            addons: vec![Addon {
                id: 2000 + i,
                upstream_id: 60_000 + i,
            }],
        });
    }
    batch.resellers.push(Reseller {
        login: "bench".into(),
        password_hash: String::new(),
        upstream_account: "bench-up".into(),
        plans: (0..plans as u64).map(|i| 1000 + i).collect(),
        markup: None,
    });
    store.apply_batch(batch, |_| Ok::<(), StoreError>(()))?;
    store.record_services((0..rows).map(|i| {
        Service {
            upstream_id: 9000 + i as u64,
            reseller: "bench".into(),
            remoteid: Some(format!("r{}", 9000 + i)),
            plan: Some((50_000 + i % plans.max(1)).to_string()),
            period: Some("12".into()),
            recorded_at: 0,
            source: ServiceSource::Order,
            deleted: false,
            history: (0..history)
                .map(|e| crate::store::services::ServiceEvent {
                    at: 1_700_000_000 + e as u64,
                    func: ["certificate.edit", "certificate.reissue", "service.prolong"][e % 3]
                        .into(),
                    outcome: crate::store::services::Outcome::Ok,
                })
                .collect(),
        }
    }))?;
    Ok(store)
}

/// The upstream's `pricelist.export` of upstream plans `50_000..50_000 + plans`.
pub fn export_doc(plans: usize, format: Format) -> Vec<u8> {
    let mut out = String::new();
    match format {
        Format::Xml => {
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc lang=\"en\" func=\"pricelist.export\">");
            for i in 0..plans {
                let up = 50_000 + i;
                let _ = write!(
                    out,
                    "<pricelist><id>{up}</id><name>Plan {i}</name><name_ru>Тариф {i}</name_ru>\
                     <description>Certificate plan number {i} with a longer description text</description>\
                     <itemtype>27</itemtype><datacenter>1</datacenter><price currency=\"EUR\">\
                     <period cost=\"{c1}.0000\" type=\"month\" length=\"12\">1 year</period>\
                     <period cost=\"{c2}.0000\" type=\"month\" length=\"24\">2 years</period></price>\
                     <addon><id>{addon}</id><intname>domainlimit</intname><addonlimit>250</addonlimit><measure>pcs.</measure>\
                     <price currency=\"EUR\"><period cost=\"5.0000\" type=\"month\" length=\"12\">1 year</period></price></addon>\
                     </pricelist>",
                    c1 = 10 + i % 90,
                    c2 = 18 + i % 90,
                    addon = 60_000 + i,
                );
            }
            out.push_str("</doc>\n");
        }
        _ => {
            out.push_str(
                "{\"doc\":{\"$lang\":\"en\",\"$func\":\"pricelist.export\",\"pricelist\":[",
            );
            for i in 0..plans {
                if i > 0 {
                    out.push(',');
                }
                let up = 50_000 + i;
                let _ = write!(
                    out,
                    "{{\"id\":{{\"$\":\"{up}\"}},\"name\":{{\"$\":\"Plan {i}\"}},\"name_ru\":{{\"$\":\"Тариф {i}\"}},\
                     \"description\":{{\"$\":\"Certificate plan number {i} with a longer description text\"}},\
                     \"itemtype\":{{\"$\":\"27\"}},\"datacenter\":{{\"$\":\"1\"}},\
                     \"price\":{{\"$currency\":\"EUR\",\"period\":[\
                     {{\"$cost\":\"{c1}.0000\",\"$type\":\"month\",\"$length\":\"12\",\"$\":\"1 year\"}},\
                     {{\"$cost\":\"{c2}.0000\",\"$type\":\"month\",\"$length\":\"24\",\"$\":\"2 years\"}}]}},\
                     \"addon\":{{\"id\":{{\"$\":\"{addon}\"}},\"intname\":{{\"$\":\"domainlimit\"}},\"addonlimit\":{{\"$\":\"250\"}},\
                     \"measure\":{{\"$\":\"pcs.\"}},\"price\":{{\"$currency\":\"EUR\",\"period\":\
                     {{\"$cost\":\"5.0000\",\"$type\":\"month\",\"$length\":\"12\",\"$\":\"1 year\"}}}}}}}}",
                    c1 = 10 + i % 90,
                    c2 = 18 + i % 90,
                    addon = 60_000 + i,
                );
            }
            out.push_str("]}}");
        }
    }
    out.into_bytes()
}

/// The upstream's certificate list of `rows` rows over the first `plans` upstream plans:
/// every row names its plan by name, and by id too when `by_id`.
pub fn list_doc(rows: usize, plans: usize, format: Format, by_id: bool) -> Vec<u8> {
    let plans = plans.max(1);
    let mut out = String::new();
    let row = |i: usize| {
        let up = 50_000 + i % plans;
        (
            9000 + i,
            format!("host{i}.example.com"),
            format!("Plan {}", i % plans),
            up,
            format!("{}.0000", 10 + i % 90),
        )
    };
    let up_id = |up: usize| match (by_id, format) {
        (false, _) => String::new(),
        (true, Format::Xml) => format!("<pricelist_id>{up}</pricelist_id>"),
        (true, _) => format!("\"pricelist_id\":{{\"$\":\"{up}\"}},"),
    };
    match format {
        Format::Xml => {
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc lang=\"en\" func=\"certificate\" binary=\"/billmgr\">");
            for i in 0..rows {
                let (id, cn, name, up, cost) = row(i);
                let _ = write!(
                    out,
                    "<elem><id>{id}</id><CN>{cn}</CN><altname>www.{cn}</altname><account>bench@upstream</account>\
                     <pricelist>{name}</pricelist>{}<period>12</period>\
                     <remoteid>r{id}</remoteid><createdate>2026-01-10</createdate><expiredate>2027-01-10</expiredate>\
                     <status_msg>Active</status_msg><item_status>2</item_status><cost>{cost}</cost></elem>",
                    up_id(up)
                );
            }
            let _ = writeln!(
                out,
                "<p_num>1</p_num><p_cnt>{rows}</p_cnt><p_elems>{rows}</p_elems></doc>"
            );
        }
        _ => {
            out.push_str("{\"doc\":{\"$lang\":\"en\",\"$func\":\"certificate\",\"elem\":[");
            for i in 0..rows {
                if i > 0 {
                    out.push(',');
                }
                let (id, cn, name, up, cost) = row(i);
                let _ = write!(
                    out,
                    "{{\"id\":{{\"$\":\"{id}\"}},\"CN\":{{\"$\":\"{cn}\"}},\"altname\":{{\"$\":\"www.{cn}\"}},\
                     \"account\":{{\"$\":\"bench@upstream\"}},\"pricelist\":{{\"$\":\"{name}\"}},\
                     {}\"period\":{{\"$\":\"12\"}},\"remoteid\":{{\"$\":\"r{id}\"}},\
                     \"createdate\":{{\"$\":\"2026-01-10\"}},\"expiredate\":{{\"$\":\"2027-01-10\"}},\
                     \"status_msg\":{{\"$\":\"Active\"}},\"item_status\":{{\"$\":\"2\"}},\"cost\":{{\"$\":\"{cost}\"}}}}",
                    up_id(up)
                );
            }
            let _ = write!(
                out,
                "],\"p_num\":{{\"$\":\"1\"}},\"p_cnt\":{{\"$\":\"{rows}\"}},\"p_elems\":{{\"$\":\"{rows}\"}}}}}}"
            );
        }
    }
    out.into_bytes()
}

/// The gateway's own work on one list answer, as the call path does it: read once —
/// rewritten, with the light document the call is judged by from the same pass
/// ([`rewrite::reseller_list_document`]) — then judged and redacted.
pub fn answer_once(
    cat: Catalog,
    reseller: &Reseller,
    params: &Params,
    body: &Bytes,
) -> Result<Bytes, String> {
    let call = rewrite::Call {
        reseller,
        func: params.func().unwrap_or_default(),
        params,
        service_plan: None,
        caller: params.format(),
        secrets: &[SECRET],
    };
    let (out, doc) = match without_reads(cat, &call, body.clone(), list_answer) {
        Some(answer) => answer,
        None => reading_store(cat, &call, body.clone(), list_answer),
    }
    .map_err(|e| e.to_string())?;
    std::hint::black_box(crate::billmgr::BmError::from_doc(&doc));
    Ok(rewrite::redacted(&call, out))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Time `iterations` answers of each case in `formats` (`xml`, `json`; after a tenth as
/// many to warm up), over a temporary sled store or the one at `at`, each service with
/// `history` events.
pub fn rewrite_bench(
    plans: usize,
    rows: usize,
    history: usize,
    iterations: usize,
    formats: &[String],
    at: Option<&Location>,
) -> Result<Vec<Timing>, String> {
    let store = seeded_store(plans, rows, history, at).map_err(|e| e.to_string())?;
    let reseller = store.reseller("bench").ok_or("no bench reseller")?;
    let names = UpstreamNames::default();
    let cat = Catalog::new(&store, &names);
    let mut out = Vec::new();
    // (case, func, for a certificate list whether its rows carry pricelist_id)
    let docs = [
        (
            format!("pricelist.export {plans} plans"),
            "pricelist.export",
            None,
        ),
        (
            format!("certificate {rows} rows"),
            "certificate",
            Some(true),
        ),
        (
            format!("certificate {rows} rows by name"),
            "certificate",
            Some(false),
        ),
    ];
    for ((case, func, by_id), format) in docs
        .iter()
        .flat_map(|d| [Format::Xml, Format::Json].map(|f| (d, f)))
    {
        if !formats.iter().any(|f| f == format.as_str()) {
            continue;
        }
        let body = Bytes::from(match by_id {
            Some(by_id) => list_doc(rows, plans, format, *by_id),
            None => export_doc(plans, format),
        });
        let query = format!("func={func}&out={}", format.as_str());
        let params = Params::parse(Some(&query), b"", &crate::billmgr::Limits::default())
            .map_err(|e| e.to_string())?;
        for _ in 0..iterations.div_ceil(10) {
            answer_once(cat, &reseller, &params, &body)?;
        }
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..iterations {
            let (t, c) = (Instant::now(), thread_cpu());
            let answer = answer_once(cat, &reseller, &params, &body)?;
            let done = thread_cpu();
            wall.push(t.elapsed());
            cpu.push(done.saturating_sub(c));
            std::hint::black_box(answer);
        }
        out.push(Timing {
            case: case.clone(),
            format,
            bytes: body.len(),
            wall: Percentiles::of(wall),
            cpu: Percentiles::of(cpu),
        });
    }
    Ok(out)
}

/// Write what `bench/rewrite.sh` serves and applies: the four upstream documents
/// (`pricelist.export.{xml,json}`, `certificate.{xml,json}`) and `mappings.toml`, the
/// same catalogue as [`seeded_store`] for reseller `bench` with `password_hash`, over
/// upstream account `bench-up` (password from `BENCH_UP_PASSWORD`).
pub fn write_files(
    dir: &std::path::Path,
    plans: usize,
    rows: usize,
    password_hash: &str,
) -> std::io::Result<()> {
    for format in [Format::Xml, Format::Json] {
        let ext = format.as_str();
        std::fs::write(
            dir.join(format!("pricelist.export.{ext}")),
            export_doc(plans, format),
        )?;
        std::fs::write(
            dir.join(format!("certificate.{ext}")),
            list_doc(rows, plans, format, true),
        )?;
    }
    let mut m = String::from(
        "[[upstream_account]]\nname = \"bench-up\"\nlogin = \"bench@upstream\"\npassword_env = \"BENCH_UP_PASSWORD\"\n\n",
    );
    let ids: Vec<String> = (0..plans).map(|i| (1000 + i).to_string()).collect();
    let _ = write!(
        m,
        "[[reseller]]\nlogin = \"bench\"\npassword_hash = \"{password_hash}\"\nupstream_account = \"bench-up\"\nplans = [{}]\n\n",
        ids.join(", ")
    );
    for i in 0..plans {
        let _ = write!(
            m,
            "[[plan]]\nid = {}\nupstream_id = {}\nname = \"Local plan {i}\"\nmarkup = {{ percent = \"20\", fixed = \"0.50\" }}\naddons = [{{ id = {}, upstream_id = {} }}]\n\n",
            1000 + i,
            50_000 + i,
            2000 + i,
            60_000 + i
        );
    }
    std::fs::write(dir.join("mappings.toml"), m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The made-up documents are ones the gateway reads and rewrites: every plan of the
    /// export is the reseller's (under its local id), every row's plan is known.
    #[test]
    fn made_up_documents_are_rewritten_whole() {
        let store = seeded_store(5, 7, 3, None).unwrap();
        let reseller = store.reseller("bench").unwrap();
        let names = UpstreamNames::default();
        let cat = Catalog::new(&store, &names);
        for format in [Format::Xml, Format::Json] {
            let p = Params::parse(
                Some(&format!("func=pricelist.export&out={}", format.as_str())),
                b"",
                &Default::default(),
            )
            .unwrap();
            let body = Bytes::from(export_doc(5, format));
            let out = answer_once(cat, &reseller, &p, &body).unwrap();
            let text = String::from_utf8(out.to_vec()).unwrap();
            for i in 0..5 {
                assert!(text.contains(&format!("Local plan {i}")), "{text}");
            }
            assert!(!text.contains("50000"), "{text}");
            let p = Params::parse(
                Some(&format!("func=certificate&out={}", format.as_str())),
                b"",
                &Default::default(),
            )
            .unwrap();
            let body = Bytes::from(list_doc(7, 5, format, true));
            let out = answer_once(cat, &reseller, &p, &body).unwrap();
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert!(text.contains("1004"), "{text}");
            assert!(!text.contains("50004"), "{text}");
            // By name only: each row priced by its recorded service's plan.
            let body = Bytes::from(list_doc(7, 5, format, false));
            assert!(!String::from_utf8_lossy(&body).contains("pricelist_id"));
            let out = answer_once(cat, &reseller, &p, &body).unwrap();
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert!(text.contains("Local plan 4"), "{text}");
            assert!(!text.contains("14.0000"), "{text}");
        }
        let t = rewrite_bench(5, 7, 2, 3, &["xml".into(), "json".into()], None).unwrap();
        assert_eq!(t.len(), 6);
    }
}
