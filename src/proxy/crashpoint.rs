//! Crash points for the crash tests: `RESELLGATE_CRASHPOINT=NAME[:N]` makes the N-th
//! (default: first) order reaching point NAME — and every later one — print
//! `resellgate crashpoint NAME reached` on stderr and stop there for good, so a test can
//! SIGKILL the process at exactly that point of the order path.
//!
//! | NAME | the order has … |
//! |---|---|
//! | `order-claimed` | been claimed and flushed, not forwarded |
//! | `upstream-answered` | been answered by the upstream, nothing recorded |
//! | `reseller-answered` | been recorded and its answer written to the reseller |
//!
//! Unset — as in production — a point costs one check of an initialised `OnceLock`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a crash point.
pub const ENV: &str = "RESELLGATE_CRASHPOINT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    OrderClaimed,
    UpstreamAnswered,
    ResellerAnswered,
}

impl Point {
    pub const ALL: [Point; 3] = [
        Point::OrderClaimed,
        Point::UpstreamAnswered,
        Point::ResellerAnswered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::OrderClaimed => "order-claimed",
            Point::UpstreamAnswered => "upstream-answered",
            Point::ResellerAnswered => "reseller-answered",
        }
    }
}

/// `NAME[:N]` → the point and N (≥ 1).
pub fn parse(spec: &str) -> Result<(Point, u32), String> {
    let (name, n) = match spec.split_once(':') {
        Some((name, n)) => (
            name,
            n.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("'{n}' is not a count of at least 1"))?,
        ),
        None => (spec, 1),
    };
    let point = Point::ALL
        .into_iter()
        .find(|p| p.name() == name.trim())
        .ok_or_else(|| {
            let names: Vec<_> = Point::ALL.iter().map(|p| p.name()).collect();
            format!("unknown crash point '{name}' (one of {})", names.join(", "))
        })?;
    Ok((point, n))
}

fn armed() -> Option<(Point, u32)> {
    static ARMED: OnceLock<Option<(Point, u32)>> = OnceLock::new();
    *ARMED.get_or_init(|| {
        let spec = std::env::var(ENV).ok()?;
        match parse(&spec) {
            Ok(armed) => Some(armed),
            Err(e) => {
                eprintln!("resellgate: {ENV} ignored: {e}");
                None
            }
        }
    })
}

/// Stop here for good if `point` is armed and this is its N-th or a later arrival.
pub async fn reached(point: Point) {
    static ARRIVALS: AtomicU32 = AtomicU32::new(0);
    let Some((armed, n)) = armed() else { return };
    if armed != point || ARRIVALS.fetch_add(1, Ordering::SeqCst) + 1 < n {
        return;
    }
    eprintln!("resellgate crashpoint {} reached", point.name());
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(parse("order-claimed"), Ok((Point::OrderClaimed, 1)));
        assert_eq!(
            parse("reseller-answered:3"),
            Ok((Point::ResellerAnswered, 3))
        );
        assert!(parse("upstream-answered:0").unwrap_err().contains("'0'"));
        assert!(parse("nowhere").unwrap_err().contains("order-claimed"));
    }
}
