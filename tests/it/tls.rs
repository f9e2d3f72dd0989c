//! HTTPS: the proxy listener with rustls, and verified TLS to the upstream. Two
//! gateways are chained: B's upstream is A's HTTPS listener (A forwards to the sandbox).

use std::path::Path;

use resellgate::billmgr::Format;

use crate::harness::*;

struct Pki {
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

/// A test CA and a server certificate for 127.0.0.1 / localhost signed by it.
fn pki(dir: &Path) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "resellgate test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

/// B's mappings: reseller `acme` (same password as the demo) forwarded under A's
/// reseller `acme`.
fn chained_mappings(dir: &Path) -> String {
    std::fs::write(dir.join("via-a.pw"), "acme-demo-pw\n").unwrap();
    let demo = std::fs::read_to_string(repo_path("mappings/demo.toml")).unwrap();
    let hash = demo
        .lines()
        .find(|l| l.trim_start().starts_with("password_hash"))
        .and_then(|l| l.split('"').nth(1))
        .unwrap()
        .to_string();
    format!(
        "[[upstream_account]]\nname = \"via-a\"\nlogin = \"acme\"\npassword_file = \"{}\"\n\n[[reseller]]\nlogin = \"acme\"\npassword_hash = \"{hash}\"\nupstream_account = \"via-a\"\nplans = []\n",
        dir.join("via-a.pw").display()
    )
}

#[test]
fn https_listener_and_verified_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let a = TestEnv::builder()
        .config(&format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            pki.cert.display(),
            pki.key.display()
        ))
        .start();
    let a_url = format!("https://127.0.0.1:{}/billmgr", a.addr().port());

    // B trusts the test CA: the call goes B → A (HTTPS, verified) → sandbox.
    let b = TestEnv::builder()
        .upstream_url(&a_url)
        .config(&format!("[upstream]\nca_file = \"{}\"", pki.ca.display()))
        .mappings(&chained_mappings(dir.path()))
        .start();
    let resp = b.acme("func=whoami");
    let d = doc(&resp, Format::Xml);
    assert_eq!(
        d.find("user").and_then(|u| u.child_text("name")),
        Some(ACME_UP.0),
        "{}",
        resp.text()
    );
    assert_eq!(
        a.last_upstream().get("authinfo"),
        Some("acme@sandbox:acme-upstream-pw")
    );

    // C does not trust it: verification fails and the reseller gets an upstream error.
    let c = TestEnv::builder()
        .upstream_url(&a_url)
        .mappings(&chained_mappings(dir.path()))
        .start();
    a.sandbox.sandbox.clear_received();
    assert_error(
        &c.acme("func=whoami&out=json"),
        Format::Json,
        "upstream",
        "upstream",
    );
    assert!(
        a.sandbox.sandbox.received().is_empty(),
        "an unverified upstream received the call"
    );
}
