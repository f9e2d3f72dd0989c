//! The command line as an operator uses it: exit codes, messages, files.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::harness::*;

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The shipped config.toml and mappings/ validate.
#[test]
fn check_config_accepts_the_shipped_files() {
    let o = run_cli(&[&"check-config", &"--config", &repo_path("config.toml")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("ok"), "{out}");
}

/// A bad config names file, key and value and exits 64.
#[test]
fn check_config_names_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[upstream]\nurl = \"ftp://billing.example.com\"\n").unwrap();
    let o = run_cli(&[&"check-config", &"--config", &cfg]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains("bad.toml")
            && err.contains("upstream.url")
            && err.contains("ftp://billing.example.com"),
        "{err}"
    );

    std::fs::write(
        &cfg,
        "[upstream]\nurl = \"http://x/billmgr\"\nbogus_key = 1\n",
    )
    .unwrap();
    let o = run_cli(&[&"check-config", &"--config", &cfg]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("bogus_key"),
        "{err}"
    );
}

/// hash-password prints exactly one line, an argon2id hash of the line read.
#[test]
fn hash_password() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_resellgate"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret:pw\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert_eq!(out.lines().count(), 1);
    let hash = out.trim_end();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(resellgate::secret::verify_password(hash, "s3cret:pw"));
    assert!(!resellgate::secret::verify_password(hash, "s3cret:pw\n"));
}

/// mappings apply prints what changed, then nothing on a second run; export reads back.
#[test]
fn mappings_apply_is_idempotent_and_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[upstream]\nurl = \"http://127.0.0.1:1/billmgr\"\n[store]\npath = \"store\"\n",
    )
    .unwrap();
    let maps = write_mappings(dir.path());
    let o = run_cli(&[&"mappings", &"apply", &"--config", &cfg, &maps]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("reseller acme"), "{out}");
    assert!(!out.contains("$argon2"), "a hash was printed: {out}");
    let o = run_cli(&[&"mappings", &"apply", &"--config", &cfg, &maps]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert_eq!(out.trim(), "no changes");

    let o = run_cli(&[&"mappings", &"export", &"--config", &cfg]);
    let (exported, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(!exported.contains("upstream-pw"), "a password was exported");
    let again = dir.path().join("exported.toml");
    std::fs::write(&again, &exported).unwrap();
    let o = run_cli(&[&"mappings", &"apply", &"--config", &cfg, &again]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.trim(), "no changes");
}

/// A mapping file with a dangling reference is refused, naming file and entry.
#[test]
fn mappings_apply_refuses_unknown_references() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[upstream]\nurl = \"http://127.0.0.1:1/billmgr\"\n[store]\npath = \"store\"\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    let hash = resellgate::secret::hash_password("x").unwrap();
    std::fs::write(&bad, format!("[[reseller]]\nlogin = \"r1\"\npassword_hash = \"{hash}\"\nupstream_account = \"missing-up\"\nplans = []\n")).unwrap();
    let o = run_cli(&[&"mappings", &"apply", &"--config", &cfg, &bad]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("r1") && err.contains("missing-up"),
        "{err}"
    );
}

/// `services import` records what `services list` prints (round trip); a bad line or an
/// unknown reseller is refused with 64, naming file and line, and nothing is written.
#[test]
fn services_import_round_trips_with_list_and_refuses_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[upstream]\nurl = \"http://127.0.0.1:1/billmgr\"\n[store]\npath = \"store\"\n",
    )
    .unwrap();
    let maps = write_mappings(dir.path());
    assert!(run_cli(&[&"mappings", &"apply", &"--config", &cfg, &maps])
        .status
        .success());
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "7\tacme\tr7\t3033\t12\nx8\tacme\n").unwrap();
    let o = run_cli(&[&"services", &"import", &"--config", &cfg, &bad]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains("bad.tsv' line 2") && err.contains("x8"),
        "{err}"
    );
    std::fs::write(&bad, "7\tacme\tr7\t3033\t12\n8\tnobody\t-\t-\t-\n").unwrap();
    let o = run_cli(&[&"services", &"import", &"--config", &cfg, &bad]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(err.contains("line 2") && err.contains("nobody"), "{err}");
    let o = run_cli(&[&"services", &"list", &"--config", &cfg]);
    assert_eq!(text(&o).0, "", "a refused import wrote something");

    let good = dir.path().join("services.tsv");
    std::fs::write(
        &good,
        "# id reseller remoteid plan period\n7\tacme\tr7\t3033\t12\n8\tglobex\t-\t-\t-\n",
    )
    .unwrap();
    let o = run_cli(&[&"services", &"import", &"--config", &cfg, &good]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.trim(), "2 services recorded");
    let o = run_cli(&[&"services", &"list", &"--config", &cfg]);
    let (listed, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        listed,
        "7\tacme\tr7\t3033\t12\tsync\t0 events\n8\tglobex\t-\t-\t-\tsync\t0 events\n"
    );
    // what list printed imports again: the same services, nothing new
    let again = dir.path().join("again.tsv");
    std::fs::write(&again, &listed).unwrap();
    let o = run_cli(&[&"services", &"import", &"--config", &cfg, &again]);
    assert!(o.status.success());
    assert_eq!(text(&o).0.trim(), "2 services recorded");
    let o = run_cli(&[&"services", &"list", &"--config", &cfg]);
    assert_eq!(text(&o).0, listed);
}

/// The demo runs its whole script against the sandbox and exits cleanly with --once.
#[test]
fn demo_once() {
    let port = free_port();
    let admin = free_port();
    let o = run_cli(&[
        &"demo",
        &"--once",
        &"--port",
        &port.to_string(),
        &"--admin-port",
        &admin.to_string(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    for step in [
        "ordered: certificate",
        "same certificate 5001 (one order upstream)",
        "reissue requested",
        "new expiry date 20",
        "file shop.example.com-certificate.crt",
        "synced",
        "'certificate.retry' needs administrator rights",
        "error type=access object=func",
        "deleted",
        // The operator changes a markup while the gateway serves: the next import has it.
        "~ plan 101: markup percent 20 -> 30",
        "plan 101 PositiveSSL            12 mo: 12.20",
        "token admin via api: markup percent 20 -> 30",
    ] {
        assert!(out.contains(step), "missing {step:?} in:\n{out}");
    }
    assert!(!out.contains("acme-upstream-pw"), "{out}");
}

/// An upstream account whose password cannot be resolved (its variable unset) is bad
/// configuration: every command that needs the upstream exits 64 and names the account.
#[test]
fn an_unresolvable_upstream_password_exits_64_from_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n[upstream]\nurl = \"http://127.0.0.1:1/billmgr\"\n[store]\npath = \"store\"\n",
            free_port()
        ),
    )
    .unwrap();
    let cli = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_resellgate"))
            .args(args.iter().map(|a| a.as_ref()))
            .env_remove("ACME_UP_PASSWORD")
            .env_remove("GLOBEX_UP_PASSWORD")
            .env_remove("RESELLGATE_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("still running after 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    // demo.toml as shipped: the passwords come from variables, unset here.
    let o = cli(&[
        &"mappings",
        &"apply",
        &"--config",
        &cfg,
        &repo_path("mappings/demo.toml"),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    let runs: [&[&dyn AsRef<std::ffi::OsStr>]; 3] = [
        &[&"serve", &"--config", &cfg],
        &[
            &"services",
            &"sync",
            &"--config",
            &cfg,
            &"--reseller",
            &"acme",
        ],
        &[&"orders", &"reconcile", &"--config", &cfg],
    ];
    for args in runs {
        let o = cli(args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(64), "{err}");
        assert!(err.contains("upstream account 'acme-up'"), "{err}");
    }
}
