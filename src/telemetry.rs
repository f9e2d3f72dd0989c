//! Logging and counters.
//!
//! - `tracing` with an env filter (`RESELLGATE_LOG`, then `RUST_LOG`, default `info`);
//!   pingora's `log` records are bridged in so its errors are not lost.
//! - One access line per request (target `access`): reseller, func, outcome, HTTP status,
//!   upstream status and latency. Never a password, hash, authinfo or session id: the
//!   line is built from [`RequestLog`], which has no field that could hold one.
//! - Counters of requests by outcome and of refused functions by name.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::Duration;

use dashmap::DashMap;

/// Install the global subscriber once (later calls do nothing).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RESELLGATE_LOG")
            .or_else(|_| std::env::var("RUST_LOG"))
            .unwrap_or_else(|_| "info".to_string());
        // pingora's debug/trace output prints request lines, which may carry a query
        // string with credentials; it is capped at `info` whatever the filter says.
        let filter = tracing_subscriber::EnvFilter::try_new(format!(
            "{filter},pingora=info,pingora_core=info,pingora_proxy=info"
        ))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_log::LogTracer::init();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(true)
            .try_init();
    });
}

/// What one request did, filled in as it goes and logged once at the end.
#[derive(Debug, Default, Clone)]
pub struct RequestLog {
    pub reseller: Option<String>,
    /// The client's address (from `X-Forwarded-For` behind a trusted proxy).
    pub client: Option<std::net::IpAddr>,
    /// The function, made printable ([`crate::proxy::policy::printable`]).
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

/// Process-wide counters (rendered by [`Metrics::render`] in Prometheus text format).
#[derive(Debug, Default)]
pub struct Metrics {
    outcomes: DashMap<&'static str, AtomicU64>,
    refused_funcs: DashMap<String, AtomicU64>,
}

/// At most this many distinct refused function names are counted; the rest go to `other`.
const MAX_FUNC_LABELS: usize = 256;

impl Metrics {
    pub fn count_outcome(&self, outcome: &'static str) {
        self.outcomes
            .entry(outcome)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_refused_func(&self, func: &str) {
        if let Some(c) = self.refused_funcs.get(func) {
            c.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let key = if self.refused_funcs.len() >= MAX_FUNC_LABELS {
            "other"
        } else {
            func
        };
        self.refused_funcs
            .entry(key.to_string())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused_func_count(&self, func: &str) -> u64 {
        self.refused_funcs
            .get(func)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    pub fn outcome_count(&self, outcome: &str) -> u64 {
        self.outcomes
            .get(outcome)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP resellgate_requests_total Requests by outcome.\n# TYPE resellgate_requests_total counter\n");
        let mut rows: Vec<_> = self
            .outcomes
            .iter()
            .map(|e| (*e.key(), e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for (k, v) in rows {
            out.push_str(&format!(
                "resellgate_requests_total{{outcome=\"{k}\"}} {v}\n"
            ));
        }
        out.push_str("# HELP resellgate_refused_functions_total Calls refused by the function policy, by func.\n# TYPE resellgate_refused_functions_total counter\n");
        let mut rows: Vec<_> = self
            .refused_funcs
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for (k, v) in rows {
            out.push_str(&format!(
                "resellgate_refused_functions_total{{func=\"{k}\"}} {v}\n"
            ));
        }
        out
    }
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
    fn label_count_is_bounded() {
        let m = Metrics::default();
        for i in 0..(MAX_FUNC_LABELS + 10) {
            m.count_refused_func(&format!("f{i}"));
        }
        assert_eq!(m.refused_func_count("other"), 10);
    }
}
