//! Unit tests of authentication: credentials, sessions, throttling, verification bounds.

use super::*;

fn ip(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

fn p(q: &str) -> Params {
    Params::parse(Some(q), b"", &Default::default()).unwrap()
}

#[test]
fn authinfo_splits_at_first_colon() {
    assert_eq!(
        credentials(&p("func=whoami&authinfo=joe:pa:ss"), None).unwrap(),
        Credentials::Password {
            login: "joe".into(),
            password: "pa:ss".into()
        }
    );
}

#[test]
fn func_auth_uses_username_password() {
    assert_eq!(
        credentials(&p("func=auth&username=joe&password=x"), None).unwrap(),
        Credentials::Password {
            login: "joe".into(),
            password: "x".into()
        }
    );
    assert_eq!(
        credentials(&p("func=auth&password=x"), None)
            .unwrap_err()
            .error()
            .object
            .as_deref(),
        Some("username")
    );
}

#[test]
fn two_authinfo_values_are_refused() {
    let e = credentials(&p("func=whoami&authinfo=a:b&authinfo=c:d"), None)
        .unwrap_err()
        .error();
    assert_eq!(
        (e.kind.as_str(), e.object.as_deref()),
        ("value", Some("authinfo"))
    );
}

#[test]
fn session_from_param_or_cookie() {
    assert_eq!(
        credentials(&p("func=whoami&auth=S1"), Some("S2")).unwrap(),
        Credentials::Session("S1".into())
    );
    assert_eq!(
        credentials(&p("func=whoami"), Some("S2")).unwrap(),
        Credentials::Session("S2".into())
    );
    assert_eq!(session_cookie("a=1; billmgrses5=abc ; b=2"), Some("abc"));
    let e = credentials(&p("func=whoami"), None).unwrap_err().error();
    assert_eq!(e.kind.as_str(), "auth");
}

#[test]
fn credentials_debug_hides_secrets() {
    let c = Credentials::Password {
        login: "joe".into(),
        password: "hunter2".into(),
    };
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{:?}", Credentials::Session("sid123".into())).contains("sid123"));
}

#[test]
fn sessions_slide_expire_and_bind_to_address() {
    let a = Authenticator::new(AuthSettings::default());
    let t0 = Instant::now();
    let sid = a.create_session("joe", ip(1), t0);
    assert_eq!(sid.len(), 48);
    let t1 = t0 + Duration::from_secs(3000);
    assert_eq!(a.resolve_session(&sid, ip(1), t1).unwrap(), "joe");
    // sliding: 3000 s after the last use it is still alive
    let t2 = t1 + Duration::from_secs(3000);
    assert_eq!(a.resolve_session(&sid, ip(1), t2).unwrap(), "joe");
    assert_eq!(
        a.resolve_session(&sid, ip(2), t2)
            .unwrap_err()
            .error()
            .kind
            .as_str(),
        "auth"
    );
    let t3 = t2 + Duration::from_secs(3600);
    assert!(a.resolve_session(&sid, ip(1), t3).is_err());
    assert_eq!(a.session_count(), 0);
    assert!(a.resolve_session("nope", ip(1), t0).is_err());
}

#[test]
fn throttles_after_max_failures_within_window() {
    let a = Authenticator::new(AuthSettings::default());
    let t0 = Instant::now();
    for _ in 0..10 {
        a.check_throttle("joe", ip(1), t0).unwrap();
        a.record_failure("joe", ip(1), t0);
    }
    let e = a
        .check_throttle("joe", ip(1), t0 + Duration::from_secs(5))
        .unwrap_err()
        .error();
    assert_eq!(e.kind.as_str(), "auth");
    assert!(e.msg.contains("try again in 55 s"), "{}", e.msg);
    // other address, other login: unaffected
    a.check_throttle("joe", ip(2), t0).unwrap();
    a.check_throttle("ann", ip(1), t0).unwrap();
    // after the minute passes
    a.check_throttle("joe", ip(1), t0 + Duration::from_secs(60))
        .unwrap();
}

#[test]
fn verified_cache_follows_the_stored_hash() {
    let a = Authenticator::new(AuthSettings::default());
    a.remember_verified("joe", "pw", "$argon2id$h1");
    assert!(a.is_verified("joe", "pw", "$argon2id$h1"));
    assert!(!a.is_verified("joe", "other", "$argon2id$h1"));
    assert!(!a.is_verified("joe", "pw", "$argon2id$h2"));
}

#[test]
fn concurrent_checks_of_one_credential_share_one_verification() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = Arc::new(Authenticator::new(AuthSettings::default()));
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (open, gate) = tokio::sync::watch::channel(false);
        let check = |pw: &'static str| {
            let (a, runs, mut gate) = (a.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                a.verify_shared("acme", pw, "$hash", || async move {
                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    Ok(pw == "right")
                })
                .await
                .unwrap()
            })
        };
        let right: Vec<_> = (0..16).map(|_| check("right")).collect();
        let wrong = check("wrong");
        // every task is now waiting: one verification per distinct credential
        tokio::task::yield_now().await;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
        open.send(true).unwrap();
        for h in right {
            assert!(h.await.unwrap());
        }
        assert!(!wrong.await.unwrap());
        assert!(a.in_flight.is_empty());
        // later checks verify again (nothing is cached here)
        assert!(check("right").await.unwrap());
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
    });
}

#[test]
fn attempts_are_counted_before_verifying() {
    let a = Authenticator::new(AuthSettings::default());
    let t0 = Instant::now();
    // ten attempts under way at once, none finished: the eleventh is refused
    for _ in 0..10 {
        a.begin_attempt("joe", ip(1), t0).unwrap();
    }
    let e = a.begin_attempt("joe", ip(1), t0).unwrap_err().error();
    assert!(e.msg.contains("Too many failed logins"), "{}", e.msg);
    assert!(a.check_throttle("joe", ip(1), t0).is_err());
    a.begin_attempt("joe", ip(2), t0).unwrap();
    // a success clears the count; the window passing resets it
    a.clear_failures("joe", ip(1));
    a.begin_attempt("joe", ip(1), t0).unwrap();
    for _ in 0..9 {
        a.begin_attempt("ann", ip(1), t0).unwrap();
    }
    a.begin_attempt("ann", ip(1), t0 + Duration::from_secs(60))
        .unwrap();
}

#[test]
fn verifications_beyond_slots_and_queue_are_refused_at_once() {
    let a = Authenticator::new(AuthSettings {
        max_concurrent_verifications: 2,
        max_queued_verifications: 3,
        ..AuthSettings::default()
    });
    let held: Vec<_> = (0..5).map(|_| a.admit().unwrap()).collect();
    assert_eq!(a.verifications_admitted(), 5);
    let e = a.admit().err().unwrap().error();
    assert_eq!(e.kind.as_str(), "auth");
    drop(held);
    assert_eq!(a.verifications_admitted(), 0);
    let _one = a.admit().unwrap();
}

#[test]
fn at_most_the_configured_verifications_run_at_once() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = Arc::new(Authenticator::new(AuthSettings {
            max_concurrent_verifications: 2,
            max_queued_verifications: 10,
            ..AuthSettings::default()
        }));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (a, running, peak) = (a.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    let slot = a.admit().unwrap();
                    slot.run(|| async {
                        let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        true
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn sessions_are_capped_per_reseller_and_in_total_least_recently_used_first() {
    let a = Authenticator::new(AuthSettings {
        max_sessions_per_reseller: 3,
        max_sessions: 5,
        ..AuthSettings::default()
    });
    let t0 = Instant::now();
    let s: Vec<String> = (0..3).map(|_| a.create_session("joe", ip(1), t0)).collect();
    // at the edge: all three live
    for sid in &s {
        a.resolve_session(sid, ip(1), t0).unwrap();
    }
    // use the first again: the second is now the least recently used
    a.resolve_session(&s[0], ip(1), t0).unwrap();
    let s3 = a.create_session("joe", ip(1), t0);
    assert_eq!(a.session_count(), 3);
    assert!(a.resolve_session(&s[1], ip(1), t0).is_err());
    for sid in [&s[0], &s[2], &s3] {
        a.resolve_session(sid, ip(1), t0).unwrap();
    }
    // total: 3 of joe + 2 of ann = 5 (the edge); one more evicts the oldest overall
    let ann: Vec<String> = (0..2).map(|_| a.create_session("ann", ip(1), t0)).collect();
    assert_eq!(a.session_count(), 5);
    let extra = a.create_session("bob", ip(1), t0);
    assert_eq!(a.session_count(), 5);
    assert!(
        a.resolve_session(&s[0], ip(1), t0).is_err(),
        "oldest evicted"
    );
    for sid in [&s[2], &s3, &ann[0], &ann[1], &extra] {
        a.resolve_session(sid, ip(1), t0).unwrap();
    }
    // expiry still removes sessions from every index
    a.purge(t0 + Duration::from_secs(7200));
    assert_eq!(a.session_count(), 0);
    let sessions = a.sessions();
    assert!(sessions.order.is_empty() && sessions.per_login.is_empty());
}
