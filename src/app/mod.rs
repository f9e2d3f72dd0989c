//! The application: what `serve` runs, put together from the layers below it.
//!
//! - [`Parts`] — the per-process pieces: the upstream [`Client`], the call path's
//!   [`Gateway`] and the background [`Reconciler`] it feeds through a job channel.
//! - [`build`] — the pingora server: the proxy listener (HTTP, or HTTPS with rustls when
//!   `tls_cert`/`tls_key` are set), the admin listener (when its token is set) and the
//!   background services ([`background`]).
//!
//! [`run`] blocks until SIGTERM/SIGINT (the `serve` command); [`spawn`] runs the server
//! on its own thread and stops it when the handle is dropped (tests and the demo).

pub mod background;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use tokio::sync::watch;

use crate::config::Config;
use crate::proxy::connection::{ConnLimits, Guarded};
use crate::proxy::service::GatewayService;
use crate::proxy::Gateway;
use crate::reconcile::Reconciler;
use crate::store::Store;
use crate::upstream::{Client, SetupError};

/// The per-process pieces of a running gateway.
#[derive(Clone)]
pub struct Parts {
    pub gateway: Arc<Gateway>,
    pub reconciler: Arc<Reconciler>,
}

impl Parts {
    /// Set up the upstream client (every upstream account's password resolved now, so a
    /// missing variable or file stops the start), the reconciler and the call path.
    pub fn new(config: &Config, store: Store) -> Result<Parts, SetupError> {
        let client = Arc::new(Client::new(config, store.clone())?);
        let reconciler = Reconciler::new(store.clone(), client.clone(), config.order_settle());
        let gateway = Arc::new(Gateway::new(config, store, client, reconciler.jobs()));
        Ok(Parts {
            gateway,
            reconciler,
        })
    }
}

/// How long a client may take to send a request body unless configured otherwise.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Build the server for `config` around already-built parts.
pub fn build(config: &Config, parts: &Parts) -> anyhow::Result<Server> {
    let gateway = &parts.gateway;
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ca_file: config
            .upstream
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let svc = GatewayService {
        gateway: gateway.clone(),
        keepalive_timeout_s: config.server.keepalive_timeout_s,
        client_timeout: config.server.client_timeout(),
        paths: config.server.paths.clone(),
        // Validated at load; a bad entry cannot get here.
        trusted_proxies: crate::proxy::client_addr::parse_all(&config.server.trusted_proxies)
            .unwrap_or_default(),
    };
    // The proxy application behind the connection bounds (issue 9): a cap per client
    // address and a total deadline for each request header.
    let limits = ConnLimits {
        max_per_ip: config.server.max_connections_per_ip,
        header_timeout: Duration::from_millis(config.server.header_timeout_ms),
    };
    let app = Guarded {
        inner: Arc::new(pingora::proxy::http_proxy(&server.configuration, svc)),
        limits,
        counts: Arc::default(),
    };
    let mut proxy = pingora::services::listening::Service::new("resellgate proxy".to_string(), app);
    match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => {
            proxy
                .add_tls(
                    &config.server.listen,
                    &cert.display().to_string(),
                    &key.display().to_string(),
                )
                .map_err(|e| anyhow::anyhow!("cannot use the TLS certificate or key: {e}"))?;
        }
        _ => proxy.add_tcp(&config.server.listen),
    }
    server.add_service(proxy);
    let tokens = admin_tokens(&config.admin);
    if tokens.is_empty() {
        tracing::warn!(
            variable = %config.admin.token_env,
            "no admin token variable is set: the admin listener is off"
        );
    } else {
        let app = crate::admin::AdminApp::new(gateway.clone(), parts.reconciler.clone(), tokens)
            .with_console_sessions(
                Duration::from_secs(config.admin.console_session_ttl_s),
                config.admin.max_console_sessions,
            );
        // The same connection bounds as the proxy listener (its own counts).
        let mut admin = pingora::services::listening::Service::new(
            "resellgate admin".to_string(),
            Guarded {
                inner: Arc::new(pingora::apps::http_app::HttpServer::new_app(app)),
                limits,
                counts: Arc::default(),
            },
        );
        admin.add_tcp(&config.admin.listen);
        admin.threads = Some(1);
        server.add_service(admin);
    }
    server.add_service(background_service(
        "session purge",
        background::Purge {
            gateway: gateway.clone(),
            failed_retention: Duration::from_secs(config.orders.failed_retention_s),
        },
    ));
    server.add_service(background_service(
        "order reconciliation",
        background::Reconcile {
            reconciler: parts.reconciler.clone(),
            interval: config.reconcile_interval(),
        },
    ));
    Ok(server)
}

/// Run the gateway until SIGTERM or SIGINT.
pub fn run(config: &Config, parts: &Parts) -> anyhow::Result<()> {
    let server = build(config, parts)?;
    tracing::info!(listen = %config.server.listen, tls = config.server.tls_cert.is_some(), "resellgate serving");
    server.run(RunArgs::default());
    Ok(())
}

struct WatchSignal(watch::Receiver<bool>);

#[async_trait]
impl ShutdownSignalWatch for WatchSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
        ShutdownSignal::FastShutdown
    }
}

/// A gateway running on its own thread; dropped, it stops.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub reconciler: Arc<Reconciler>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl RunningGateway {
    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start the gateway on a thread and wait until its port accepts connections.
pub fn spawn(config: &Config, store: Store) -> anyhow::Result<RunningGateway> {
    let parts = Parts::new(config, store)?;
    let server = build(config, &parts)?;
    let addr: SocketAddr = config.server.listen.parse()?;
    let (tx, rx) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("resellgate-server".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(WatchSignal(rx)),
            })
        })?;
    let running = RunningGateway {
        addr,
        gateway: parts.gateway,
        reconciler: parts.reconciler,
        stop: tx,
        thread: Some(thread),
    };
    wait_until_accepting(addr, Duration::from_secs(10))?;
    Ok(running)
}

/// Poll until `addr` accepts a TCP connection.
pub fn wait_until_accepting(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{addr} did not start accepting connections within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The admin tokens whose variables are set (non-empty): `[admin] token_env` as the
/// write token `admin`, then each `[[admin.token]]`. A named token whose variable is
/// unset is off (logged).
pub fn admin_tokens(admin: &crate::config::AdminConfig) -> Vec<crate::admin::Token> {
    let mut out = Vec::new();
    for (name, env, role) in admin.tokens() {
        match std::env::var(&env).ok().filter(|t| !t.is_empty()) {
            Some(t) => out.push(crate::admin::Token::new(
                name,
                role,
                &crate::secret::Secret::new(t),
            )),
            None if name != "admin" => tracing::warn!(
                token = %name,
                variable = %env,
                "the admin token's variable is unset: that token is off"
            ),
            None => {}
        }
    }
    out
}
