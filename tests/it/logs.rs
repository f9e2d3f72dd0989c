//! A full run of the real binary, logs captured: every request has an access line and
//! no secret used anywhere in the run appears in them.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::client;
use resellgate::billmgr::{self, Format};
use resellgate::sandbox::{Fault, FaultPhase, Sandbox};

use crate::harness::*;

#[test]
fn no_secret_in_any_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = resellgate::sandbox::spawn("127.0.0.1:0", Sandbox::demo()).unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"http://{}/billmgr\"\nread_timeout_ms = 500\n[store]\npath = \"store\"\n", sandbox.addr),
    )
    .unwrap();
    let mappings = write_mappings(dir.path());
    let bin = env!("CARGO_BIN_EXE_resellgate");
    let out = Command::new(bin)
        .args(["mappings", "apply", "--config"])
        .arg(&config)
        .arg(&mappings)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let log_path = dir.path().join("gateway.log");
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RESELLGATE_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    resellgate::app::wait_until_accepting(addr, Duration::from_secs(20)).unwrap();

    let post = |form: &str| client::post_form(addr, "/billmgr", form).unwrap();
    let ai = format!("authinfo={}:{}", ACME.0, ACME.1);
    post(&format!("func=whoami&{ai}"));
    post("func=whoami&authinfo=acme:wrong-password-123");
    post("func=whoami&authinfo=acme");
    let resp = post(&format!(
        "func=auth&username={}&password={}",
        ACME.0, ACME.1
    ));
    let d = billmgr::parse(&resp.body, Format::Xml).unwrap();
    let sid = d.find("auth").unwrap().get_attr("id").unwrap().to_string();
    post(&format!("func=certificate&auth={sid}"));
    post(&format!("func=user.edit&auth={sid}"));
    post(&format!(
        "func=certificate.xyz&elid=5001&probe=value-never-logged-77&{ai}"
    ));
    post(&format!("func=certificate&su=root&{ai}"));
    post(&format!("func=whoami&{ai}&{ai}"));
    post(&format!("func=whoami&{ai}&x=%zz"));
    sandbox
        .sandbox
        .inject(Fault::Garbage, FaultPhase::BeforeHandling);
    post(&format!("func=certificate.edit&sok=ok&elid=1&{ai}"));
    sandbox
        .sandbox
        .inject(Fault::Hang, FaultPhase::BeforeHandling);
    post(&format!("func=certificate.edit&sok=ok&elid=1&{ai}"));
    post(&format!("func=certificate.order.param&sok=ok&pricelist=101&period=12&CN=a.example.com&approver_email_1=admin%40a.example.com&adm_fname=A&adm_lname=B&adm_email=a%40example.com&adm_phone=1&like_admin=on&remoteid=x&{ai}"));
    let _ = client::get(addr, &format!("/billmgr?func=whoami&{ai}"));
    let _ = client::get(addr, &format!("/nowhere?func=whoami&{ai}"));
    std::thread::sleep(Duration::from_millis(200)); // let the last access lines reach the file
    let _ = child.kill();
    let _ = child.wait();

    let log = std::fs::read_to_string(&log_path).unwrap();
    let access = log.lines().filter(|l| l.contains("access")).count();
    assert!(
        access >= 13,
        "expected an access line per request, got {access}:\n{log}"
    );
    assert!(
        log.contains("reseller=\"acme\"") || log.contains("reseller=acme"),
        "{log}"
    );
    // the client's address is in the access lines
    assert!(log.contains("client=127.0.0.1"), "{log}");
    // an unknown function is logged with its parameter names, never their values
    let unknown = log
        .lines()
        .find(|l| l.contains("unknown function refused") && l.contains("certificate.xyz"))
        .unwrap_or_else(|| panic!("no line for the unknown function:\n{log}"));
    assert!(
        unknown.contains("certificate.xyz") && unknown.contains("func,elid,probe,authinfo"),
        "{unknown}"
    );
    assert!(!log.contains("value-never-logged-77"), "{log}");
    let mapping_text = std::fs::read_to_string(&mappings).unwrap();
    let hashes: Vec<&str> = mapping_text
        .lines()
        .filter_map(|l| l.split('"').nth(1))
        .filter(|v| v.starts_with("$argon2"))
        .collect();
    assert_eq!(hashes.len(), 2);
    let mut secrets = vec![
        ACME.1.to_string(),
        GLOBEX.1.to_string(),
        "acme-upstream-pw".to_string(),
        "globex-upstream-pw".to_string(),
        "wrong-password-123".to_string(),
        sid.clone(),
    ];
    secrets.extend(hashes.iter().map(|h| h.to_string()));
    for s in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "a secret appears in the logs:\n{log}"
        );
    }
}
