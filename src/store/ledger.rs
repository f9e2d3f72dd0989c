//! The ledger: one entry per successful order and renewal, for invoicing resellers. The
//! reseller's price is computed by the caller (`crate::catalog::pricing`) and stored as
//! given.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::model::opt_decimal_str;
use super::{decode, encode, Store, StoreError};

/// The ledger's tree.
pub const LEDGER: &str = "ledger";
/// Keys of the ledger entries still without an upstream cost (values empty), so filling
/// them in later does not scan the whole ledger.
pub const LEDGER_COSTLESS: &str = "ledger_costless";

/// One billable event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Unix milliseconds.
    pub at_ms: u64,
    pub reseller: String,
    pub kind: LedgerKind,
    pub upstream_id: u64,
    pub remoteid: Option<String>,
    /// Upstream pricelist id.
    pub plan: Option<String>,
    /// Months.
    pub period: Option<String>,
    /// What the upstream charged, when it could be read.
    #[serde(with = "opt_decimal_str")]
    pub upstream_cost: Option<Decimal>,
    /// What the reseller is charged (see `crate::catalog::pricing::marked_up_price`).
    #[serde(with = "opt_decimal_str")]
    pub price: Option<Decimal>,
}

impl LedgerEntry {
    /// The upstream cost as the CSV shows it (`9.00`), when known.
    pub fn upstream_cost_text(&self) -> Option<String> {
        self.upstream_cost.map(|c| c.to_string())
    }

    /// The reseller's price as the CSV shows it, when known.
    pub fn price_text(&self) -> Option<String> {
        self.price.map(|p| p.to_string())
    }
}

/// What a ledger entry bills. Shown (CSV, logs) as `order` or `renewal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerKind {
    /// A new certificate: one entry per certificate.
    Order,
    /// A `service.prolong`: one entry per call.
    Renewal,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Order => "order",
            LedgerKind::Renewal => "renewal",
        }
    }

    /// The inverse of [`LedgerKind::as_str`] (reads the strings of store format 1).
    pub fn parse(s: &str) -> Option<LedgerKind> {
        [LedgerKind::Order, LedgerKind::Renewal]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for LedgerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn entry_key(e: &LedgerEntry) -> Vec<u8> {
    // reseller \0 kind \0 upstream id [\0 time]: an order is recorded once per certificate,
    // a renewal once per call.
    let mut k = Vec::new();
    k.extend_from_slice(e.reseller.as_bytes());
    k.push(0);
    k.extend_from_slice(e.kind.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(&e.upstream_id.to_be_bytes());
    if e.kind != LedgerKind::Order {
        k.push(0);
        k.extend_from_slice(&e.at_ms.to_be_bytes());
    }
    k
}

impl Store {
    /// Records `entry` (an order's entry replaces an earlier one for the same certificate);
    /// flushed before returning.
    pub fn record_ledger(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        let _guard = self.lock();
        self.put_ledger_unflushed(entry)?;
        self.shared.backend.flush()?;
        Ok(())
    }

    /// [`Store::record_ledger`] without the flush (the caller makes it durable, e.g. with
    /// [`Store::write_durable`]).
    pub fn put_ledger_locked(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        let _guard = self.lock();
        self.put_ledger_unflushed(entry)
    }

    /// [`Store::record_ledger`] without lock and flush (the caller holds and flushes).
    pub(crate) fn put_ledger_unflushed(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        let v = encode(entry, || format!("ledger entry for {}", entry.upstream_id))?;
        let key = entry_key(entry);
        self.shared.backend.put(LEDGER, &key, &v)?;
        if entry.upstream_cost.is_none() {
            self.shared.backend.put(LEDGER_COSTLESS, &key, &[])?;
        } else {
            self.shared.backend.delete(LEDGER_COSTLESS, &key)?;
        }
        Ok(())
    }

    /// The ledger entries whose upstream cost is not known yet, oldest first.
    pub fn costless_ledger(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut out = Vec::new();
        for (k, _) in self.shared.backend.scan(LEDGER_COSTLESS)? {
            if let Some(v) = self.shared.backend.get(LEDGER, &k)? {
                let e: LedgerEntry = decode("ledger", &k, &v)?;
                if e.upstream_cost.is_none() {
                    out.push(e);
                }
            }
        }
        out.sort_by_key(|e| e.at_ms);
        Ok(out)
    }

    /// Every ledger entry of `reseller` (all when `None`), oldest first.
    pub fn ledger(&self, reseller: Option<&str>) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut out = self.records_of(LEDGER, reseller, |e: &LedgerEntry| &e.reseller)?;
        out.sort_by_key(|e| e.at_ms);
        Ok(out)
    }
}

/// `YYYY-MM` of unix milliseconds (UTC).
pub fn month_of(at_ms: u64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp((at_ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", d.year(), d.month() as u8)
}

/// RFC 3339 UTC time of unix milliseconds.
pub fn timestamp(at_ms: u64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp((at_ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// The CSV the `ledger export` command prints: a header, then one row per entry of
/// `entries` in month `month` (`YYYY-MM`).
pub fn to_csv(entries: &[LedgerEntry], month: &str) -> String {
    let mut out =
        String::from("time,reseller,kind,service_id,remoteid,plan,period,upstream_cost,price\n");
    for e in entries.iter().filter(|e| month_of(e.at_ms) == month) {
        let fields = [
            timestamp(e.at_ms),
            e.reseller.clone(),
            e.kind.to_string(),
            e.upstream_id.to_string(),
            e.remoteid.clone().unwrap_or_default(),
            e.plan.clone().unwrap_or_default(),
            e.period.clone().unwrap_or_default(),
            e.upstream_cost_text().unwrap_or_default(),
            e.price_text().unwrap_or_default(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: LedgerKind, id: u64, at_ms: u64, cost: Option<&str>) -> LedgerEntry {
        let cost = cost.map(|c| c.parse::<Decimal>().unwrap());
        LedgerEntry {
            at_ms,
            reseller: "acme".into(),
            kind,
            upstream_id: id,
            remoteid: None,
            plan: Some("3033".into()),
            period: Some("12".into()),
            upstream_cost: cost,
            price: cost,
        }
    }

    #[test]
    fn costless_entries_are_indexed_until_their_cost_is_known() {
        let store = Store::open_temporary().unwrap();
        use LedgerKind::{Order, Renewal};
        store.record_ledger(&entry(Order, 1, 10, None)).unwrap();
        store.record_ledger(&entry(Renewal, 1, 20, None)).unwrap();
        store
            .record_ledger(&entry(Order, 2, 5, Some("9.00")))
            .unwrap();
        let ids = |v: Vec<LedgerEntry>| -> Vec<(String, u64)> {
            v.into_iter()
                .map(|e| (e.kind.to_string(), e.upstream_id))
                .collect()
        };
        assert_eq!(
            ids(store.costless_ledger().unwrap()),
            [("order".into(), 1), ("renewal".into(), 1)]
        );
        // the same entry rewritten with its cost leaves the index
        store
            .record_ledger(&entry(Renewal, 1, 20, Some("9.00")))
            .unwrap();
        assert_eq!(ids(store.costless_ledger().unwrap()), [("order".into(), 1)]);
        assert_eq!(store.ledger(Some("acme")).unwrap().len(), 3);
    }
}
