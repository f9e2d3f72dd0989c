//! Unit tests of config.toml loading: the shipped file, defaults, and every validation naming file, key and value.

use super::*;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml")
}

const MIN: &str = "[upstream]\nurl = \"https://billing.example.com/billmgr\"\n";

fn parse_err(text: &str) -> String {
    Config::parse(text, Path::new("/etc/rg/config.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn shipped_config_loads() {
    let c = Config::load(&shipped()).unwrap();
    assert_eq!(c.upstream_url().port, 1600);
    assert!(!c.upstream_url().tls);
    assert_eq!(c.server.listen, "127.0.0.1:1500");
    assert_eq!(
        c.store.path,
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/resellgate")
    );
    assert_eq!(c.limits(), crate::billmgr::Limits::default());
    // Every key is written out, and with its default value.
    let d = Config::parse(MIN, &shipped()).unwrap();
    assert_eq!(c.server, d.server);
    assert_eq!(c.limits, d.limits);
    assert_eq!(c.auth, d.auth);
    assert_eq!(c.admin, d.admin);
    assert_eq!(c.orders, d.orders);
    assert_eq!(
        (
            c.store.password_env.as_str(),
            c.store.timeout_ms,
            c.store.connections
        ),
        (
            d.store.password_env.as_str(),
            d.store.timeout_ms,
            d.store.connections
        )
    );
    assert_eq!(
        (c.upstream.connect_timeout_ms, c.upstream.retries),
        (3000, 1)
    );
}

#[test]
fn defaults_apply() {
    let c = Config::parse(MIN, Path::new("/etc/rg/config.toml")).unwrap();
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.store.path, Path::new("/etc/rg/data/resellgate"));
    assert_eq!(c.upstream_url().path, "/billmgr");
    assert_eq!(c.auth.max_failures, 10);
    assert_eq!(c.limits.max_response_bytes, 83_886_080);
    assert_eq!(c.reconcile_interval(), std::time::Duration::from_secs(60));
    assert_eq!(c.order_settle(), std::time::Duration::from_millis(33_000));
}

#[test]
fn order_settle_and_interval() {
    let c = Config::parse(
        &format!("{MIN}[orders]\nreconcile_interval_s = 2\nsettle_ms = 0\n"),
        Path::new("/etc/rg/config.toml"),
    )
    .unwrap();
    assert_eq!(c.reconcile_interval(), std::time::Duration::from_secs(2));
    assert_eq!(c.order_settle(), std::time::Duration::ZERO);
    let e = parse_err(&format!("{MIN}[orders]\nreconcile_interval_s = 0\n"));
    assert!(
        e.contains("key 'orders.reconcile_interval_s': value '0': must be greater than 0"),
        "{e}"
    );
}

#[test]
fn trusted_proxies_and_paths_checked() {
    let c = Config::parse(MIN, Path::new("/etc/rg/config.toml")).unwrap();
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.server.paths, ["/billmgr", "/manager/billmgr", "/"]);
    let c = Config::parse(
        &format!("{MIN}[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\npaths = [\"/api/billmgr\"]\n"),
        Path::new("/etc/rg/config.toml"),
    )
    .unwrap();
    assert_eq!(c.server.paths, ["/api/billmgr"]);
    let e = parse_err(&format!(
        "{MIN}[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n"
    ));
    assert!(
        e.contains("key 'server.trusted_proxies': value '10.0.0.0/33'"),
        "{e}"
    );
    let e = parse_err(&format!("{MIN}[server]\npaths = [\"api\"]\n"));
    assert!(e.contains("key 'server.paths': value 'api'"), "{e}");
    let e = parse_err(&format!("{MIN}[server]\npaths = []\n"));
    assert!(e.contains("key 'server.paths'"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let e = parse_err(&format!(
        "{MIN}[server]\nlisten = \"127.0.0.1:1\"\nlistne = 1\n"
    ));
    assert!(e.starts_with("/etc/rg/config.toml: "), "{e}");
    assert!(e.contains("listne"), "{e}");
    let e = parse_err(&format!("{MIN}[srever]\n"));
    assert!(e.contains("srever"), "{e}");
}

#[test]
fn bad_url_named_with_file_key_value() {
    let e = parse_err("[upstream]\nurl = \"ftp://x\"\n");
    assert_eq!(
        e,
        "/etc/rg/config.toml: key 'upstream.url': value 'ftp://x': the scheme must be http or https"
    );
    let e = parse_err("[server]\nlisten = \"127.0.0.1:1\"\n");
    assert!(
        e.contains("key 'upstream.url'") && e.contains("required"),
        "{e}"
    );
}

#[test]
fn bad_listen_named() {
    let e = parse_err(&format!("{MIN}[server]\nlisten = \"localhost:99999\"\n"));
    assert!(
        e.contains("/etc/rg/config.toml: key 'server.listen': value 'localhost:99999'"),
        "{e}"
    );
    let e = parse_err(&format!("{MIN}[admin]\nlisten = \"nope\"\n"));
    assert!(e.contains("key 'admin.listen': value 'nope'"), "{e}");
}

#[test]
fn tls_pair_and_files_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(dir.path().join("cert.pem"), "x").unwrap();
    let e = Config::parse(&format!("{MIN}[server]\ntls_cert = \"cert.pem\"\n"), &file)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("{}: key 'server.tls_key'", file.display())),
        "{e}"
    );
    assert!(e.contains("cert.pem"), "{e}");
    let e = Config::parse(
        &format!("{MIN}[server]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"),
        &file,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("key 'server.tls_key'") && e.contains("key.pem"),
        "{e}"
    );
    std::fs::write(dir.path().join("key.pem"), "x").unwrap();
    let c = Config::parse(
        &format!("{MIN}[server]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"),
        &file,
    )
    .unwrap();
    assert!(c.server.tls());
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("etc");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("ca.pem"), "x").unwrap();
    let file = sub.join("config.toml");
    let text =
        "[upstream]\nurl = \"https://h\"\nca_file = \"ca.pem\"\n[store]\npath = \"../state\"\n";
    std::fs::write(&file, text).unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(
        c.upstream.ca_file.as_deref(),
        Some(sub.join("ca.pem").as_path())
    );
    assert_eq!(c.store.path, sub.join("../state"));
    let abs = Config::parse(
        "[upstream]\nurl = \"https://h\"\n[store]\npath = \"/var/lib/rg\"\n",
        &file,
    )
    .unwrap();
    assert_eq!(abs.store.path, Path::new("/var/lib/rg"));
    let e = Config::parse(
        "[upstream]\nurl = \"https://h\"\nca_file = \"missing.pem\"\n",
        &file,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("key 'upstream.ca_file'") && e.contains("missing.pem"),
        "{e}"
    );
}

#[test]
fn numbers_and_names_checked() {
    let e = parse_err(&format!("{MIN}[server]\nthreads = 0\n"));
    assert!(e.contains("key 'server.threads': value '0'"), "{e}");
    let e = parse_err(&format!("{MIN}[limits]\nmax_params = 0\n"));
    assert!(e.contains("key 'limits.max_params'"), "{e}");
    let e = parse_err("[upstream]\nurl = \"https://h\"\nread_timeout_ms = 0\n");
    assert!(e.contains("key 'upstream.read_timeout_ms'"), "{e}");
    let e = parse_err(&format!(
        "{MIN}[policy]\npassthrough = [\"checkevent\", \"su\"]\n"
    ));
    assert!(e.contains("key 'policy.passthrough[1]': value 'su'"), "{e}");
    let e = parse_err(&format!("{MIN}[server]\nthreads = \"two\"\n"));
    assert!(e.contains("threads"), "{e}");
}

#[test]
fn missing_file_is_named() {
    let e = Config::load(Path::new("/nonexistent/rg.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/rg.toml: cannot read"), "{e}");
}

#[test]
fn check_summarises_shipped_files() {
    let s = check(&shipped(), &[]).unwrap();
    assert!(
        s.ends_with("ok; 1 mapping file: 2 upstream accounts, 2 resellers, 3 plans"),
        "{s}"
    );
}

#[test]
fn check_given_paths_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[plan]]\nid = 1\nupstream_id = 2\nmarkup = { round_to = \"-1\" }\n",
    )
    .unwrap();
    let e = check(&shipped(), std::slice::from_ref(&bad))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "{}: plan 1: key 'markup.round_to': value '-1'",
            bad.display()
        )),
        "{e}"
    );
    let demo = shipped().with_file_name("mappings").join("demo.toml");
    let s = check(&shipped(), &[demo]).unwrap();
    assert!(s.contains("1 mapping file:"), "{s}");
}

#[test]
fn check_without_mappings_dir() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, MIN).unwrap();
    let s = check(&file, &[]).unwrap();
    assert!(
        s.ends_with("ok; 0 mapping files: 0 upstream accounts, 0 resellers, 0 plans"),
        "{s}"
    );
}

#[test]
fn store_url_selects_postgres_and_keeps_passwords_out() {
    let c = Config::parse(
        &format!("{MIN}[store]\nurl = \"postgres://gw@db.internal/rg\"\npassword_env = \"RG_TEST_NO_SUCH_VAR\"\n"),
        Path::new("/etc/rg/config.toml"),
    )
    .unwrap();
    match c.store_location() {
        crate::store::Location::Postgres(o) => {
            assert_eq!(o.url, "postgres://gw@db.internal/rg");
            assert!(o.password.is_none());
            assert_eq!(o.timeout, std::time::Duration::from_millis(5000));
            assert_eq!(o.connections, 4);
        }
        other => panic!("{other:?}"),
    }
    // Without url: sled at path.
    let c = Config::parse(MIN, Path::new("/etc/rg/config.toml")).unwrap();
    assert!(matches!(
        c.store_location(),
        crate::store::Location::Sled { .. }
    ));
    // A password in the URL is refused, and not repeated.
    let e = parse_err(&format!(
        "{MIN}[store]\nurl = \"postgres://gw:s3cr3t-pw@db/rg\"\n"
    ));
    assert!(e.contains("store.url") && e.contains("password_env"), "{e}");
    assert!(!e.contains("s3cr3t-pw"), "{e}");
    let e = parse_err(&format!("{MIN}[store]\nurl = \"mysql://gw@db/rg\"\n"));
    assert!(
        e.contains("store.url") && e.contains("mysql://gw@db/rg"),
        "{e}"
    );
}

#[test]
fn store_connection_and_timeout_bounds() {
    let ok = |extra: &str| Config::parse(&format!("{MIN}[store]\n{extra}\n"), Path::new("/c.toml"));
    assert!(ok("connections = 64").is_ok());
    assert!(ok("connections = 1").is_ok());
    let e = parse_err(&format!("{MIN}[store]\nconnections = 65\n"));
    assert!(
        e.contains("store.connections") && e.contains("at most 64"),
        "{e}"
    );
    let e = parse_err(&format!("{MIN}[store]\nconnections = 0\n"));
    assert!(e.contains("store.connections"), "{e}");
    let e = parse_err(&format!("{MIN}[store]\ntimeout_ms = 0\n"));
    assert!(e.contains("store.timeout_ms"), "{e}");
    let e = parse_err(&format!("{MIN}[store]\npassword_env = \"not a name\"\n"));
    assert!(e.contains("store.password_env"), "{e}");
}

/// `[[admin.token]]`: named tokens with roles; names unique (`admin` is token_env's),
/// variables valid; the console's session bounds are greater than 0.
#[test]
fn admin_tokens_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let load = |extra: &str| {
        let p = dir.path().join("config.toml");
        std::fs::write(
            &p,
            format!("[upstream]\nurl = \"http://127.0.0.1:1/billmgr\"\n[admin]\n{extra}\n"),
        )
        .unwrap();
        Config::load(&p)
    };
    let c = load("token = [{ name = \"alice\", env = \"A_TOKEN\", role = \"write\" }, { name = \"bob\", env = \"B_TOKEN\" }]").unwrap();
    let t = c.admin.tokens();
    assert_eq!(t.len(), 3);
    assert_eq!((t[0].0.as_str(), t[0].2), ("admin", AdminRole::Write));
    assert_eq!((t[1].0.as_str(), t[1].2), ("alice", AdminRole::Write));
    assert_eq!(
        (t[2].0.as_str(), t[2].2),
        ("bob", AdminRole::Read),
        "read is the default role"
    );
    for (extra, key, value) in [
        (
            "token = [{ name = \"admin\", env = \"A\" }]",
            "admin.token[0].name",
            "admin",
        ),
        (
            "token = [{ name = \"a b\", env = \"A\" }]",
            "admin.token[0].name",
            "a b",
        ),
        (
            "token = [{ name = \"x\", env = \"A\" }, { name = \"x\", env = \"B\" }]",
            "admin.token[1].name",
            "x",
        ),
        (
            "token = [{ name = \"x\", env = \"NOT-A-VAR\" }]",
            "admin.token[0].env",
            "NOT-A-VAR",
        ),
        (
            "console_session_ttl_s = 0",
            "admin.console_session_ttl_s",
            "0",
        ),
        (
            "max_console_sessions = 0",
            "admin.max_console_sessions",
            "0",
        ),
    ] {
        let e = load(extra).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(value), "{extra}: {e}");
    }
    let e = load("token = [{ name = \"x\", env = \"A\", role = \"admin\" }]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("role") || e.contains("admin"), "{e}");
    let c = load("max_console_sessions = 1\nconsole_session_ttl_s = 1").unwrap();
    assert_eq!(
        (c.admin.max_console_sessions, c.admin.console_session_ttl_s),
        (1, 1)
    );
}
