//! Logging and counters.
//!
//! - `tracing` with an env filter (`RESELLGATE_LOG`, then `RUST_LOG`, default `info`);
//!   pingora's `log` records are bridged in so its errors are not lost, with anything
//!   that could quote a request (headers, query, raw bytes) removed ([`redact_pingora`]).
//! - Every line is written through [`EscapingWriter`]: control characters a client sent
//!   (a `%0a` in a value) are escaped, so no log line can be forged.
//! - One access line per request (target `access`): reseller, func, outcome, HTTP status,
//!   upstream status and latency. Never a password, hash, authinfo or session id: the
//!   line is built from [`RequestLog`], which has no field that could hold one.
//! - Counters of requests by outcome and of refused functions by name.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Install the global subscriber once (later calls do nothing).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RESELLGATE_LOG")
            .or_else(|_| std::env::var("RUST_LOG"))
            .unwrap_or_else(|_| "info".to_string());
        // pingora's debug/trace output prints request lines and headers, which may carry
        // credentials; it is capped at `info` whatever the filter says (and the bridge
        // drops it anyway, see [`PingoraSafeLog`]).
        let filter = tracing_subscriber::EnvFilter::try_new(format!(
            "{filter},pingora=info,pingora_core=info,pingora_proxy=info"
        ))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(EscapingWriter::stderr)
            // Colours are escape sequences; every control character is escaped instead.
            .with_ansi(false)
            .with_target(true)
            .finish();
        if tracing::subscriber::set_global_default(subscriber).is_ok() {
            use tracing_log::AsLog;
            if log::set_boxed_logger(Box::new(PingoraSafeLog)).is_ok() {
                log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
            }
        }
    });
}

/// Crates whose `log` records are pingora's.
fn is_pingora(target: &str) -> bool {
    target.starts_with("pingora")
}

/// The PostgreSQL client's crates (fleet mode): at `debug` they log every statement's
/// parameters, which are stored records (password hashes among them). Below `info` their
/// records are dropped.
fn is_database_client(target: &str) -> bool {
    target.starts_with("tokio_postgres") || target.starts_with("postgres_protocol")
}

/// The `log` → `tracing` bridge. The PostgreSQL client's records below `info` are dropped
/// ([`is_database_client`]). pingora's records are made safe first: below `info`
/// they are dropped (they dump request headers), and the rest pass [`redact_pingora`],
/// so nothing pingora logs carries a request's headers or query string.
struct PingoraSafeLog;

impl log::Log for PingoraSafeLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        !((is_pingora(m.target()) || is_database_client(m.target()))
            && m.level() > log::Level::Info)
    }

    fn log(&self, record: &log::Record) {
        if is_database_client(record.target()) && record.level() > log::Level::Info {
            return;
        }
        if !is_pingora(record.target()) {
            let _ = tracing_log::format_trace(record);
            return;
        }
        if record.level() > log::Level::Info {
            return;
        }
        let msg = record.args().to_string();
        if is_pingora_noise(&msg) {
            return;
        }
        let msg = redact_pingora(&msg);
        let _ = tracing_log::format_trace(
            &log::Record::builder()
                .args(format_args!("{msg}"))
                .level(record.level())
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {}
}

/// pingora's records at `error` that report nothing wrong: losing a race for a pooled
/// upstream connection (pingora then connects anew) happens under load on every busy
/// gateway, and would teach operators to ignore `error`.
fn is_pingora_noise(msg: &str) -> bool {
    msg == "failed to acquire reusable stream"
}

/// A pingora log message with everything that may quote a request removed: the raw
/// request bytes of a malformed request (`buf: …`, to the end), query strings
/// (`?…` up to white space or a comma), and any message that still mentions a header
/// that carries credentials or spans several lines.
pub fn redact_pingora(msg: &str) -> String {
    let mut out = match msg.find("buf:") {
        Some(i) => format!("{}buf: <request bytes withheld>", &msg[..i]),
        None => msg.to_string(),
    };
    const WITHHELD: &str = "?<query withheld>";
    let mut from = 0;
    while let Some(i) = out[from..].find('?').map(|n| from + n) {
        let end = out[i..]
            .find(|c: char| c.is_whitespace() || c == ',')
            .map_or(out.len(), |n| i + n);
        out.replace_range(i..end, WITHHELD);
        from = i + WITHHELD.len();
    }
    let lower = out.to_ascii_lowercase();
    if [
        "authorization",
        "cookie",
        "authinfo",
        "password",
        "\n",
        "\r",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return "<a message quoting the request was withheld>".to_string();
    }
    out
}

/// Every log line is one write; control characters in it (a newline or an escape
/// sequence a client smuggled into a value) are written escaped, so a client can never
/// forge or split a log line. Only the line's final newline is kept.
pub struct EscapingWriter<W>(W);

impl EscapingWriter<std::io::Stderr> {
    pub fn stderr() -> Self {
        EscapingWriter(std::io::stderr())
    }
}

impl<W: std::io::Write> std::io::Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(b) => (b, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        self.0
            .write_all(escape_controls(&String::from_utf8_lossy(body)).as_bytes())?;
        self.0.write_all(end)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `s` with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`, …).
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// At most `max` characters of `s`, control characters escaped as [`escape_controls`]
/// does: text a client chose (a parameter's key, a query value) as it may appear in a log
/// line, an error document or a message. The one such helper: `billmgr` (keys in error
/// documents) and `admin` (query values in messages) call it.
pub fn printable(s: &str, max: usize) -> String {
    let head = match s.char_indices().nth(max) {
        Some((cut, _)) => &s[..cut],
        None => s,
    };
    escape_controls(head).into_owned()
}

/// What one request did, filled in as it goes and logged once at the end.
#[derive(Debug, Default, Clone)]
pub struct RequestLog {
    pub reseller: Option<String>,
    /// The client's address (from `X-Forwarded-For` behind a trusted proxy).
    pub client: Option<std::net::IpAddr>,
    /// The function, made printable (`billmgr::functions::printable`).
    pub func: Option<String>,
    /// `ok`, `local`, `refused`, `upstream_error`, or `upstream_refused` (the upstream
    /// answered with an error document).
    pub outcome: &'static str,
    /// The error type for refusals.
    pub error_type: Option<&'static str>,
    pub status: u16,
    pub upstream_status: Option<u16>,
    pub upstream_latency: Option<Duration>,
    pub upstream_failure: Option<&'static str>,
}

impl RequestLog {
    pub fn emit(&self, total: Duration) {
        tracing::info!(
            target: "access",
            reseller = self.reseller.as_deref().unwrap_or("-"),
            client = %self.client.map_or_else(|| "-".to_string(), |c| c.to_string()),
            func = self.func.as_deref().unwrap_or("-"),
            outcome = self.outcome,
            error = self.error_type.unwrap_or("-"),
            status = self.status,
            upstream_status = self.upstream_status.map(|s| s as i64).unwrap_or(-1),
            upstream_ms = self.upstream_latency.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(-1.0),
            upstream_failure = self.upstream_failure.unwrap_or("-"),
            total_ms = total.as_secs_f64() * 1000.0,
        );
    }
}

/// The store's group-commit counters in OpenMetrics text (nothing on a shared backend,
/// which commits every write itself): flushes, the durable writes they covered
/// (writes/flushes is the mean group), and failed flushes. [`Metrics::render_with`] puts
/// them before the closing `# EOF`.
fn commit_stats_text(stats: Option<crate::store::CommitStats>) -> String {
    let Some(s) = stats else {
        return String::new();
    };
    format!(
        "# HELP resellgate_store_flushes Group-commit flushes of the store.\n# TYPE resellgate_store_flushes counter\nresellgate_store_flushes_total {}\n\
         # HELP resellgate_store_durable_writes Writes (order claims, outcomes, ledger entries) made durable by those flushes.\n# TYPE resellgate_store_durable_writes counter\nresellgate_store_durable_writes_total {}\n\
         # HELP resellgate_store_flush_failures Flushes that failed; none of their writes was acknowledged.\n# TYPE resellgate_store_flush_failures counter\nresellgate_store_flush_failures_total {}\n",
        s.flushes, s.writes, s.failed_flushes
    )
}

/// Process-wide counters and latency histograms, rendered by [`Metrics::render`] in the
/// OpenMetrics text format through `prometheus-client` (no global registry: one per
/// gateway). Every label is bounded: outcomes and order events are fixed words, `func` is
/// a function of the function table or `other` ([`func_label`]), refused function names
/// are capped at 256 (then `other`).
///
/// | series | type | labels |
/// |---|---|---|
/// | `resellgate_requests_total` | counter | `outcome` |
/// | `resellgate_refused_functions_total` | counter | `func` (the name refused) |
/// | `resellgate_request_duration_seconds` | histogram | `func`: first byte read to answer written |
/// | `resellgate_upstream_duration_seconds` | histogram | `func`: one upstream call |
/// | `resellgate_rewrite_duration_seconds` | histogram | `func`: the answer rewritten for the reseller |
/// | `resellgate_orders_total` | counter | `event` ([`OrderEvent`]) |
pub struct Metrics {
    registry: prometheus_client::registry::Registry,
    outcomes: Family<OutcomeLabel, Counter>,
    refused_funcs: Family<RefusedLabel, Counter>,
    /// Distinct refused names counted so far (bounds `refused_funcs`).
    refused_names: AtomicU64,
    requests: Family<FuncLabel, Histogram, fn() -> Histogram>,
    upstream: Family<FuncLabel, Histogram, fn() -> Histogram>,
    rewrites: Family<FuncLabel, Histogram, fn() -> Histogram>,
    orders: Family<OrderLabel, Counter>,
}

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    /// Borrowed when counted (no allocation per request), owned when looked up.
    outcome: std::borrow::Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabel {
    func: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FuncLabel {
    func: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrderLabel {
    event: &'static str,
}

/// At most this many distinct refused function names are counted; the rest go to `other`.
const MAX_FUNC_LABELS: usize = 256;

/// Bucket bounds of the latency histograms, in seconds: 50 µs to 30 s (the default
/// upstream read timeout).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// The `func` label of a call: its name when the function table knows it, else `other`
/// (a client chooses `func`: an unbounded label would let it grow the metrics without
/// end).
pub fn func_label(func: Option<&str>) -> &'static str {
    func.and_then(crate::billmgr::functions::lookup)
        .map_or("other", |f| f.name)
}

/// What happened to an exactly-once order (`resellgate_orders_total{event}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    /// Its (reseller, remoteid) claim was made durable: it is forwarded.
    Claimed,
    /// An identical order was answered before: its stored answer was sent again.
    Replayed,
    /// The upstream accepted it and its outcome was recorded before the answer.
    Acknowledged,
    /// The upstream refused it (or could not be reached): the claim was released.
    Failed,
    /// Its outcome is not known (timeout, reset, an answer without an id): left pending
    /// for reconciliation.
    Unknown,
    /// Refused: the same key is still pending.
    Pending,
    /// Refused: the key was used for different parameters.
    Conflict,
    /// The store failed before or after the forward.
    StoreError,
}

impl OrderEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderEvent::Claimed => "claimed",
            OrderEvent::Replayed => "replayed",
            OrderEvent::Acknowledged => "acknowledged",
            OrderEvent::Failed => "failed",
            OrderEvent::Unknown => "unknown",
            OrderEvent::Pending => "pending",
            OrderEvent::Conflict => "conflict",
            OrderEvent::StoreError => "store_error",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = prometheus_client::registry::Registry::with_prefix("resellgate");
        let m = Metrics {
            outcomes: Family::default(),
            refused_funcs: Family::default(),
            refused_names: AtomicU64::new(0),
            requests: Family::new_with_constructor(latency_histogram),
            upstream: Family::new_with_constructor(latency_histogram),
            rewrites: Family::new_with_constructor(latency_histogram),
            orders: Family::default(),
            registry: prometheus_client::registry::Registry::default(),
        };
        registry.register("requests", "Requests by outcome.", m.outcomes.clone());
        registry.register(
            "refused_functions",
            "Calls refused by the function policy, by func.",
            m.refused_funcs.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's first byte read to its answer written, by func.",
            m.requests.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time of one upstream call (request sent to answer read), by func.",
            m.upstream.clone(),
        );
        registry.register(
            "rewrite_duration_seconds",
            "Time to rewrite an upstream answer for the reseller (the gateway's own work on it), by func.",
            m.rewrites.clone(),
        );
        registry.register(
            "orders",
            "Exactly-once orders by event: claimed, replayed, acknowledged, failed, unknown, pending, conflict, store_error.",
            m.orders.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn count_outcome(&self, outcome: &'static str) {
        self.outcomes
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn count_refused_func(&self, func: &str) {
        let label = RefusedLabel {
            func: func.to_string(),
        };
        if let Some(c) = self.refused_funcs.get(&label) {
            c.inc();
            return;
        }
        let label = if self.refused_names.fetch_add(1, Ordering::Relaxed) >= MAX_FUNC_LABELS as u64
        {
            RefusedLabel {
                func: "other".into(),
            }
        } else {
            label
        };
        self.refused_funcs.get_or_create(&label).inc();
    }

    pub fn refused_func_count(&self, func: &str) -> u64 {
        self.refused_funcs
            .get(&RefusedLabel {
                func: func.to_string(),
            })
            .map_or(0, |c| c.get())
    }

    pub fn outcome_count(&self, outcome: &str) -> u64 {
        self.outcomes
            .get(&OutcomeLabel {
                outcome: outcome.to_string().into(),
            })
            .map_or(0, |c| c.get())
    }

    /// One request's time, and its upstream call's when it made one.
    pub fn observe_request(&self, func: Option<&str>, total: Duration, upstream: Option<Duration>) {
        let label = FuncLabel {
            func: func_label(func),
        };
        self.requests
            .get_or_create(&label)
            .observe(total.as_secs_f64());
        if let Some(u) = upstream {
            self.upstream.get_or_create(&label).observe(u.as_secs_f64());
        }
    }

    /// The time one answer to `func` took to rewrite for the reseller.
    pub fn observe_rewrite(&self, func: &str, took: Duration) {
        self.rewrites
            .get_or_create(&FuncLabel {
                func: func_label(Some(func)),
            })
            .observe(took.as_secs_f64());
    }

    pub fn count_order(&self, event: OrderEvent) {
        self.orders
            .get_or_create(&OrderLabel {
                event: event.as_str(),
            })
            .inc();
    }

    pub fn order_count(&self, event: OrderEvent) -> u64 {
        self.orders
            .get(&OrderLabel {
                event: event.as_str(),
            })
            .map_or(0, |c| c.get())
    }

    /// The OpenMetrics text exposition ([`METRICS_CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// [`Metrics::render`] with the store's group-commit counters (sled) added.
    pub fn render_with(&self, commit: Option<crate::store::CommitStats>) -> String {
        let out = self.render();
        let extra = commit_stats_text(commit);
        match out.strip_suffix("# EOF\n") {
            Some(body) if !extra.is_empty() => format!("{body}{extra}# EOF\n"),
            _ => out,
        }
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `f` logs through `tracing` (the default format), for tests.
#[cfg(test)]
pub(crate) fn logged_by(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = out.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_refused_functions_by_name() {
        let m = Metrics::default();
        m.count_refused_func("user.edit");
        m.count_refused_func("user.edit");
        m.count_outcome("refused");
        assert_eq!(m.refused_func_count("user.edit"), 2);
        let text = m.render();
        assert!(
            text.contains("resellgate_refused_functions_total{func=\"user.edit\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("resellgate_requests_total{outcome=\"refused\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn pingora_messages_lose_request_bytes_and_queries() {
        let raw = "HTTP server fails to read from downstream: InvalidHTTPHeader context: buf: GET /x HTTP/1.1\\r\\nAuthorization: Bearer tok cause: invalid";
        let r = redact_pingora(raw);
        assert_eq!(r, "HTTP server fails to read from downstream: InvalidHTTPHeader context: buf: <request bytes withheld>");
        let r = redact_pingora("fails to write: closed, GET /billmgr?authinfo=a:b&x=1, Host: h");
        assert_eq!(
            r,
            "fails to write: closed, GET /billmgr?<query withheld>, Host: h"
        );
        assert_eq!(
            redact_pingora("Fail to proxy: Authorization: Bearer x"),
            "<a message quoting the request was withheld>"
        );
        assert_eq!(redact_pingora("Accept() failed"), "Accept() failed");
    }

    /// What `PingoraSafeLog` passes on for a pingora record at `error`.
    fn bridged(msg: &str) -> String {
        use log::Log;
        logged_by(|| {
            PingoraSafeLog.log(
                &log::Record::builder()
                    .args(format_args!("{msg}"))
                    .level(log::Level::Error)
                    .target("pingora_core::connectors")
                    .build(),
            )
        })
    }

    #[test]
    fn a_lost_race_for_a_pooled_connection_is_not_an_error() {
        assert_eq!(bridged("failed to acquire reusable stream"), "");
        let other = bridged("failed to connect to upstream");
        assert!(
            other.contains("ERROR") && other.contains("failed to connect to upstream"),
            "{other}"
        );
    }

    /// The group commit's counters sit inside the exposition, before its closing `# EOF`.
    #[test]
    fn commit_counters_come_before_eof() {
        let m = Metrics::default();
        m.count_outcome("ok");
        assert_eq!(m.render_with(None), m.render());
        let text = m.render_with(Some(crate::store::CommitStats {
            flushes: 3,
            writes: 12,
            failed_flushes: 1,
        }));
        for line in [
            "# TYPE resellgate_store_flushes counter\nresellgate_store_flushes_total 3\n",
            "resellgate_store_durable_writes_total 12\n",
            "resellgate_store_flush_failures_total 1\n",
            "resellgate_requests_total{outcome=\"ok\"} 1\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        assert!(
            text.ends_with("resellgate_store_flush_failures_total 1\n# EOF\n"),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }

    #[test]
    fn log_lines_escape_control_characters() {
        use std::io::Write;
        let mut w = EscapingWriter(Vec::new());
        w.write_all(b"a remoteid=l1\nINFO forged\x1b[31m\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(w.0).unwrap(),
            "a remoteid=l1\\nINFO forged\\u{1b}[31m\n"
        );
        assert_eq!(escape_controls("plain"), "plain");
        assert_eq!(printable("a\u{0}b\nc", 3), "a\\u{0}b");
        assert_eq!(printable(&"é".repeat(100), 64), "é".repeat(64));
    }

    #[test]
    fn label_count_is_bounded() {
        let m = Metrics::default();
        for i in 0..(MAX_FUNC_LABELS + 10) {
            m.count_refused_func(&format!("f{i}"));
        }
        assert_eq!(m.refused_func_count("other"), 10);
    }
}
