//! Mapping files: loading and validation, export as TOML, and applying a set to a store
//! (idempotent, references checked against the store, exported state read back).

use std::path::{Path, PathBuf};

use rust_decimal::Decimal;

use super::*;
use crate::config::load_mappings;
use crate::secret::PasswordSource;
use crate::store::model::{Addon, Markup, Plan, UpstreamAccount};
use crate::store::tests::{lines, plan};
use crate::store::Store;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/demo.toml")
}

/// A valid argon2id hash, made once (hashing is slow in debug builds).
fn hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| crate::secret::hash_password("pw").unwrap())
}

fn one(text: &str) -> Result<MappingSet, ConfigError> {
    let mut set = MappingSet::default();
    set.add(
        MappingFile::parse(text, Path::new("/m/a.toml"))?,
        Path::new("/m/a.toml"),
    )?;
    set.validate_refs(&|_| false, &|_| false)?;
    Ok(set)
}

fn err(text: &str) -> String {
    one(text).unwrap_err().to_string()
}

fn reseller(extra: &str) -> String {
    format!(
        "[[upstream_account]]\nname = \"up\"\nlogin = \"u@x\"\npassword_env = \"UP_PW\"\n\
         [[plan]]\nid = 1\nupstream_id = 10\n\
         [[reseller]]\nlogin = \"acme\"\npassword_hash = \"{}\"\nupstream_account = \"up\"\nplans = [1]\n{extra}",
        hash()
    )
}

#[test]
fn demo_loads_and_validates() {
    let set = load_mappings(&[demo()]).unwrap();
    set.validate_refs(&|_| false, &|_| false).unwrap();
    assert_eq!(set.files, vec![demo()]);
    assert_eq!(set.upstream_accounts.len(), 2);
    assert_eq!(set.resellers.len(), 2);
    assert_eq!(set.plans.len(), 3);
    let acme = &set
        .resellers
        .iter()
        .find(|e| e.item.login == "acme")
        .unwrap()
        .item;
    assert_eq!(acme.plans, vec![101, 102, 103]);
    assert!(crate::secret::verify_password(
        &acme.password_hash,
        "acme-demo-pw"
    ));
    let globex = &set
        .resellers
        .iter()
        .find(|e| e.item.login == "globex")
        .unwrap()
        .item;
    assert!(crate::secret::verify_password(
        &globex.password_hash,
        "globex-demo-pw"
    ));
    assert_eq!(globex.markup.unwrap().percent, Decimal::from(10));
    let p101 = &set.plans.iter().find(|e| e.item.id == 101).unwrap().item;
    assert_eq!(p101.upstream_id, 3033);
    assert_eq!(p101.addon_upstream_id(201), Some(3034));
    let m = p101.markup.unwrap();
    assert_eq!(
        (m.percent, m.fixed, m.round_to),
        (Decimal::from(20), Decimal::new(50, 2), Decimal::new(1, 2))
    );
    let p103 = &set.plans.iter().find(|e| e.item.id == 103).unwrap().item;
    assert_eq!(p103.markup.unwrap().round_to, Decimal::ONE);
    let acc = &set.upstream_accounts[0].item;
    assert_eq!(acc.password, PasswordSource::Env("ACME_UP_PASSWORD".into()));
}

#[test]
fn directory_loads_toml_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        "[[plan]]\nid = 2\nupstream_id = 20\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "[[plan]]\nid = 1\nupstream_id = 10\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not toml").unwrap();
    let set = load_mappings(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(
        set.files,
        vec![dir.path().join("a.toml"), dir.path().join("b.toml")]
    );
    assert_eq!(
        set.plans.iter().map(|e| e.item.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn duplicates_across_files_name_both() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, "[[plan]]\nid = 7\nupstream_id = 10\n").unwrap();
    std::fs::write(&b, "[[plan]]\nid = 7\nupstream_id = 11\n").unwrap();
    let e = load_mappings(&[a.clone(), b.clone()])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("{}: plan 7: key 'id': value '7'", b.display())),
        "{e}"
    );
    assert!(
        e.contains(&format!("already defined in {}", a.display())),
        "{e}"
    );
    let e = err(&format!("{}{}", reseller(""), reseller("")));
    assert!(
        e.contains("upstream_account 'up': key 'name': value 'up': defined twice"),
        "{e}"
    );
}

#[test]
fn valid_reseller_entry() {
    let set = one(&reseller("markup = { percent = \"15\" }\n")).unwrap();
    assert_eq!(
        set.resellers[0].item.markup.unwrap().percent,
        Decimal::from(15)
    );
    assert_eq!(
        set.resellers[0].item.markup.unwrap().round_to,
        Decimal::new(1, 2)
    );
}

#[test]
fn reference_errors_name_entry_key_value() {
    let text = reseller("").replace("upstream_account = \"up\"", "upstream_account = \"nope\"");
    assert_eq!(
        err(&text),
        "/m/a.toml: reseller 'acme': key 'upstream_account': value 'nope': no upstream_account has this name"
    );
    let text = reseller("").replace("plans = [1]", "plans = [1, 9]");
    assert_eq!(
        err(&text),
        "/m/a.toml: reseller 'acme': key 'plans': value '9': plan 9 is not defined"
    );
    // Known elsewhere (the store): fine.
    let mut set = MappingSet::default();
    set.add(
        MappingFile::parse(&text, Path::new("/m/a.toml")).unwrap(),
        Path::new("/m/a.toml"),
    )
    .unwrap();
    set.validate_refs(&|_| false, &|id| id == 9).unwrap();
}

#[test]
fn bad_hash_named_without_value() {
    let text = reseller("").replace(hash(), "hunter2");
    let e = err(&text);
    assert!(
        e.starts_with("/m/a.toml: reseller 'acme': key 'password_hash': "),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn markup_errors() {
    let e = err(&reseller("markup = { percent = \"abc\" }\n"));
    assert!(
        e.contains("reseller 'acme': key 'markup.percent': value 'abc': not a decimal"),
        "{e}"
    );
    let e = err(&reseller("markup = { percent = \"-101\" }\n"));
    assert!(
        e.contains("key 'markup.percent': value '-101': must be at least -100"),
        "{e}"
    );
    let e = err(&reseller("markup = { round_to = \"0\" }\n"));
    assert!(e.contains("key 'markup.round_to': value '0'"), "{e}");
    let e =
        err("[[plan]]\nid = 5\nupstream_id = 50\nmarkup = { percent = \"1\", extra = \"2\" }\n");
    assert!(e.starts_with("/m/a.toml: ") && e.contains("extra"), "{e}");
    let e = err("[[plan]]\nid = 5\nupstream_id = 50\nmarkup = { percent = 15 }\n");
    assert!(e.starts_with("/m/a.toml: ") && e.contains("percent"), "{e}");
}

#[test]
fn entry_errors() {
    let e = err("[[plan]]\nid = 5\nupstream_id = 50\naddons = [{ id = 1, upstream_id = 2 }, { id = 1, upstream_id = 3 }]\n");
    assert!(
        e.contains("plan 5: key 'addons[1].id': value '1': listed twice"),
        "{e}"
    );
    let e = err("[[plan]]\nid = 0\nupstream_id = 50\n");
    assert!(e.contains("plan 0: key 'id'"), "{e}");
    let e = err("[[upstream_account]]\nname = \"up\"\nlogin = \"a:b\"\npassword_env = \"X\"\n");
    assert!(
        e.contains("upstream_account 'up': key 'login': value 'a:b'"),
        "{e}"
    );
    let e = err("[[upstream_account]]\nname = \"up\"\nlogin = \"a\"\n");
    assert!(
        e.contains("upstream_account 'up': key 'password_env'") && e.contains("required"),
        "{e}"
    );
    let e = err("[[upstream_account]]\nname = \"up\"\nlogin = \"a\"\npassword_env = \"X\"\npassword_file = \"f\"\n");
    assert!(e.contains("not both"), "{e}");
    let e = err(&reseller("").replace("plans = [1]", "plans = [1, 1]"));
    assert!(
        e.contains("reseller 'acme': key 'plans': value '1': listed twice"),
        "{e}"
    );
    let e = err("[[reseler]]\nlogin = \"x\"\n");
    assert!(e.starts_with("/m/a.toml: ") && e.contains("reseler"), "{e}");
}

#[test]
fn password_file_relative_to_mapping_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("maps");
    std::fs::create_dir(&sub).unwrap();
    let f = sub.join("x.toml");
    std::fs::write(
        &f,
        "[[upstream_account]]\nname = \"up\"\nlogin = \"a\"\npassword_file = \"secrets/up.pw\"\n",
    )
    .unwrap();
    let set = load_mappings(&[f]).unwrap();
    assert_eq!(
        set.upstream_accounts[0].item.password,
        PasswordSource::File(sub.join("secrets/up.pw"))
    );
}

#[test]
fn to_toml_round_trips() {
    let set = load_mappings(&[demo()]).unwrap();
    let mf = MappingFile::from_records(
        set.upstream_accounts.iter().map(|e| &e.item),
        set.resellers.iter().map(|e| &e.item),
        set.plans.iter().map(|e| &e.item),
    );
    let text = mf.to_toml();
    assert!(
        text.contains("markup = { percent = \"20\", fixed = \"0.50\" }"),
        "{text}"
    );
    assert_eq!(MappingFile::parse(&text, Path::new("x.toml")).unwrap(), mf);
    let odd = MappingFile {
        upstream_account: vec![UpstreamAccountSpec {
            name: "we\"ird\\\u{1}".into(),
            login: "l".into(),
            password_env: None,
            password_file: Some("/a b/\"c\"".into()),
        }],
        reseller: vec![],
        plan: vec![PlanSpec {
            id: 1,
            upstream_id: 2,
            name: Some("ü\n".into()),
            markup: Some(MarkupSpec::default()),
            addons: vec![],
        }],
    };
    assert_eq!(
        MappingFile::parse(&odd.to_toml(), Path::new("x.toml")).unwrap(),
        odd
    );
}

/// Applying the demo prints every record once, then nothing the second time.
#[test]
fn apply_is_idempotent() {
    let store = Store::open_temporary().unwrap();
    let set = load_mappings(&[demo()]).unwrap();
    let first = lines(&set.apply_to(&store).unwrap());
    assert_eq!(
        first,
        [
            "+ upstream_account acme-up",
            "+ upstream_account globex-up",
            "+ plan 101",
            "+ plan 102",
            "+ plan 103",
            "+ reseller acme",
            "+ reseller globex",
        ]
    );
    assert_eq!(set.apply_to(&store).unwrap(), vec![]);
    assert_eq!(store.resellers().len(), 2);
    assert_eq!(
        store.plans().iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![101, 102, 103]
    );
}

/// Changed fields each get a line; a hash change never prints the hash.
#[test]
fn apply_reports_field_changes() {
    let store = Store::open_temporary().unwrap();
    let mut set = load_mappings(&[demo()]).unwrap();
    set.apply_to(&store).unwrap();
    let p = set.plans.iter_mut().find(|e| e.item.id == 102).unwrap();
    p.item.markup.as_mut().unwrap().percent = Decimal::from(20);
    p.item.name = None;
    let r = set
        .resellers
        .iter_mut()
        .find(|e| e.item.login == "acme")
        .unwrap();
    let old_hash = r.item.password_hash.clone();
    r.item.password_hash = crate::secret::hash_password("new").unwrap();
    r.item.plans = vec![101];
    let out = lines(&set.apply_to(&store).unwrap());
    assert_eq!(
        out,
        [
            "~ plan 102: name \"PositiveSSL Wildcard\" -> none",
            "~ plan 102: markup percent 15 -> 20",
            "~ reseller acme: password_hash changed",
            "~ reseller acme: plans [101, 102, 103] -> [101]",
        ]
    );
    assert!(!out.concat().contains(&old_hash));
    assert_eq!(
        store.plan(102).unwrap().markup.unwrap().percent,
        Decimal::from(20)
    );
}

/// Apply checks references against the set and what the store already holds.
#[test]
fn apply_checks_references_against_store() {
    let store = Store::open_temporary().unwrap();
    let full = load_mappings(&[demo()]).unwrap();
    let mut resellers_only = full.clone();
    resellers_only.upstream_accounts.clear();
    resellers_only.plans.clear();
    let e = resellers_only.apply_to(&store).unwrap_err().to_string();
    assert!(
        e.contains("reseller 'acme': key 'upstream_account': value 'acme-up'"),
        "{e}"
    );
    assert!(store.resellers().is_empty());
    let mut rest = full.clone();
    rest.resellers.clear();
    rest.apply_to(&store).unwrap();
    assert_eq!(
        lines(&resellers_only.apply_to(&store).unwrap()),
        ["+ reseller acme", "+ reseller globex"]
    );
}

/// export → to_toml → parse → apply into a fresh store reproduces the state exactly.
#[test]
fn export_round_trip() {
    let store = Store::open_temporary().unwrap();
    load_mappings(&[demo()]).unwrap().apply_to(&store).unwrap();
    store
        .put_upstream_account(UpstreamAccount {
            name: "file-up".into(),
            login: "f@x".into(),
            password: PasswordSource::File("/run/secrets/f".into()),
        })
        .unwrap();
    store
        .put_plan(Plan {
            id: 7,
            upstream_id: 70,
            name: Some("Zero \"markup\"".into()),
            markup: Some(Markup::default()),
            addons: vec![Addon {
                id: 1,
                upstream_id: 2,
            }],
        })
        .unwrap();
    let exported = MappingFile::from_store(&store);
    let text = exported.to_toml();
    assert!(!text.contains("demo-pw"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.toml");
    std::fs::write(&file, &text).unwrap();
    let set = load_mappings(&[file]).unwrap();
    let fresh = Store::open_temporary().unwrap();
    set.apply_to(&fresh).unwrap();
    assert_eq!(fresh.resellers(), store.resellers());
    assert_eq!(fresh.plans(), store.plans());
    assert_eq!(fresh.upstream_accounts(), store.upstream_accounts());
    assert_eq!(MappingFile::from_store(&fresh), exported);
    assert_eq!(set.apply_to(&store).unwrap(), vec![]);
}

/// Everything written is there after the store is closed and opened again.
#[test]
fn reopen_sees_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/store");
    {
        let store = Store::open(&path).unwrap();
        load_mappings(&[demo()]).unwrap().apply_to(&store).unwrap();
        store.put_plan(plan(5)).unwrap();
        store.delete_plan(5).unwrap();
        store.put_plan(plan(6)).unwrap();
        let e = Store::open(&path).unwrap_err().to_string();
        assert!(e.contains("in use by a running gateway"), "{e}");
    }
    let store = Store::open_when_free(&path, std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(
        store.plans().iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![6, 101, 102, 103]
    );
    assert_eq!(store.resellers().len(), 2);
    assert_eq!(store.upstream_accounts().len(), 2);
    assert_eq!(
        load_mappings(&[demo()]).unwrap().apply_to(&store).unwrap(),
        vec![]
    );
}

/// The export is laid out as the documented files are: a `[[kind]]` table per record, a
/// blank line between them, markups and add-ons inline, defaults left out.
#[test]
fn to_toml_layout() {
    let mf = MappingFile {
        upstream_account: vec![UpstreamAccountSpec {
            name: "up".into(),
            login: "u@x".into(),
            password_env: Some("UP_PW".into()),
            password_file: None,
        }],
        reseller: vec![ResellerSpec {
            login: "acme".into(),
            password_hash: "$argon2id$h".into(),
            upstream_account: "up".into(),
            plans: vec![1, 2],
            markup: Some(MarkupSpec {
                percent: Some("15".into()),
                ..MarkupSpec::default()
            }),
        }],
        plan: vec![
            PlanSpec {
                id: 1,
                upstream_id: 10,
                name: Some("P".into()),
                markup: Some(MarkupSpec {
                    percent: Some("20".into()),
                    fixed: Some("0.50".into()),
                    round_to: None,
                }),
                addons: vec![AddonSpec {
                    id: 201,
                    upstream_id: 3034,
                }],
            },
            PlanSpec {
                id: 2,
                upstream_id: 20,
                name: None,
                markup: None,
                addons: vec![],
            },
        ],
    };
    assert_eq!(
        mf.to_toml(),
        "[[upstream_account]]\nname = \"up\"\nlogin = \"u@x\"\npassword_env = \"UP_PW\"\n\n\
         [[reseller]]\nlogin = \"acme\"\npassword_hash = \"$argon2id$h\"\nupstream_account = \"up\"\n\
         plans = [1, 2]\nmarkup = { percent = \"15\" }\n\n\
         [[plan]]\nid = 1\nupstream_id = 10\nname = \"P\"\n\
         markup = { percent = \"20\", fixed = \"0.50\" }\n\
         addons = [{ id = 201, upstream_id = 3034 }]\n\n\
         [[plan]]\nid = 2\nupstream_id = 20\n"
    );
    assert_eq!(MappingFile::default().to_toml(), "");
}
