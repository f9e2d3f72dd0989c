//! Certificate look-ups on a reseller's upstream account: its list of certificates (all,
//! or those of one `remoteid`) and the cost of renewing one. Ownership checks, services
//! sync, reconciliation and cost filling all read the upstream through these.

use crate::billmgr::{self, BmError, Element, Params};
use crate::telemetry::RequestLog;

use super::{Account, Client, Outgoing, UpstreamError};

/// A certificate as the upstream lists it.
#[derive(Debug, Clone)]
pub struct UpstreamCert {
    pub id: u64,
    pub remoteid: Option<String>,
    pub plan: Option<String>,
    pub period: Option<String>,
    pub cost: Option<String>,
}

impl Client {
    /// The certificates of `account` (`func=certificate`), those with `remoteid` only
    /// when given. `who` names the reseller in logs.
    pub async fn list_certificates(
        &self,
        who: &str,
        account: &Account,
        remoteid: Option<&str>,
    ) -> Result<Vec<UpstreamCert>, UpstreamError> {
        let mut params = Params::from_pairs([("func", "certificate")]);
        if let Some(r) = remoteid {
            params.push("remoteid", r);
        }
        let call = Outgoing {
            params: &params,
            retry: true,
            list_items: Some(&["elem"]),
        };
        let (body, doc) = self
            .forward(account, call, &mut RequestLog::default())
            .await?;
        if let Some(e) = BmError::from_doc(&doc) {
            tracing::warn!(reseller = %who, error = %e, "the upstream refused the certificate list");
            return Err(UpstreamError::Garbage);
        }
        let text = |e: &Element, n: &str| {
            e.child_text(n)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        };
        // One row at a time: a list of a large account never becomes one tree.
        let mut rows = Vec::new();
        billmgr::edit::rewrite_items(&body, params.format(), &["elem"], &mut |name, node| {
            let e = node.to_element(name);
            rows.extend((|| {
                Some(UpstreamCert {
                    id: text(&e, "id")?.parse().ok()?,
                    remoteid: text(&e, "remoteid"),
                    plan: text(&e, "pricelist_id"),
                    period: text(&e, "period"),
                    cost: text(&e, "cost"),
                })
            })());
            Vec::new()
        })
        .map_err(|_| UpstreamError::Garbage)?;
        let certs = rows
            .into_iter()
            // An upstream that ignores the filter must not match other remoteids.
            .filter(|c| remoteid.is_none_or(|r| c.remoteid.as_deref() == Some(r)))
            .collect();
        Ok(certs)
    }

    /// The upstream's cost of renewing `id` for `period` months, from the prolong form.
    pub async fn renewal_cost(&self, account: &Account, id: u64, period: &str) -> Option<String> {
        let params = Params::from_pairs([("func", "service.prolong"), ("elid", &id.to_string())]);
        let call = Outgoing {
            params: &params,
            retry: true,
            list_items: None,
        };
        let (_, doc) = self
            .forward(account, call, &mut RequestLog::default())
            .await
            .ok()?;
        let slist = doc
            .find_all("slist")
            .find(|s| s.get_attr("name") == Some("period"))?;
        let val = slist
            .find_all("val")
            .find(|v| v.get_attr("key") == Some(period.trim()))?;
        val.get_attr("cost").map(str::to_string)
    }
}
