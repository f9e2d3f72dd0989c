//! Ownership: each id of `elid` (`5001, 5002`) must be a service of the calling reseller,
//! checked id by id before anything is forwarded.
//!
//! An id the gateway never saw is looked up once in the reseller's own upstream account
//! (`func=certificate`) and recorded when it is there; otherwise `access`/`elid`, and the
//! refusal is remembered for a short while ([`super::elid_cache`]) so repeating the id
//! does not cost another upstream call. The store is always read first, so a
//! certificate the gateway records is never refused because of that memory.

use std::time::Instant;

use super::{Caller, Gateway, Refusal};
use crate::billmgr::Params;
use crate::reconcile::record::{self, blocking};
use crate::store::services::ServiceSource;

/// The ids of an `elid` value (`5001, 5002`), or the first one that is not an id.
pub fn elids(params: &Params) -> Result<Vec<u64>, Refusal> {
    let mut ids = Vec::new();
    for value in params.get_all("elid") {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = part
                .parse::<u64>()
                .map_err(|_| Refusal::ForeignService(part.to_string()))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

impl Gateway {
    /// Every `elid` must be the reseller's; unknown ids are looked up upstream once, and a
    /// refusal is remembered for [`super::elid_cache::REFUSAL_TTL`]. The store is read
    /// first: an id the gateway recorded passes whatever was remembered about it.
    /// Answers the upstream plan of each id, as the service map has it.
    pub(super) async fn check_elids(
        &self,
        caller: &Caller,
        params: &Params,
    ) -> Result<Vec<Option<String>>, Refusal> {
        let reseller = &caller.reseller;
        let ids = elids(params)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.store.clone();
        let login = reseller.login.clone();
        let (mut plans, unknown) = blocking(move || {
            let (mut plans, mut unknown) = (Vec::new(), Vec::new());
            for id in ids {
                match store.service_head(id)? {
                    Some(s) if s.reseller == login => plans.push(s.plan),
                    Some(_) => return Ok(Err(id)),
                    None => unknown.push(id),
                }
            }
            Ok(Ok((plans, unknown)))
        })
        .await
        .map_err(|_| Refusal::StoreBeforeForward)?
        .map_err(|id| {
            tracing::info!(reseller = %reseller.login, id, "elid of another reseller refused");
            Refusal::ForeignService(id.to_string())
        })?;
        if unknown.is_empty() {
            return Ok(plans);
        }
        let now = Instant::now();
        if let Some(&id) = unknown
            .iter()
            .find(|&&id| self.refused_elids.is_refused(&reseller.login, id, now))
        {
            tracing::info!(reseller = %reseller.login, id, "unknown elid refused again without a lookup (refused recently)");
            return Err(Refusal::ForeignService(id.to_string()));
        }
        let list = self
            .upstream
            .list_certificates(&reseller.login, &caller.account, None)
            .await?;
        let mut refused = None;
        for id in unknown {
            let Some(cert) = list.iter().find(|c| c.id == id) else {
                tracing::info!(reseller = %reseller.login, id, "unknown elid not on the reseller's upstream account: refused");
                self.refused_elids
                    .remember(&reseller.login, id, Instant::now());
                refused = refused.or(Some(id));
                continue;
            };
            if record::record_found(&self.store, &reseller.login, cert, ServiceSource::Lookup)
                .await
                .map_err(|_| Refusal::StoreBeforeForward)?
            {
                plans.push(cert.plan.clone());
            } else {
                refused = refused.or(Some(id));
            }
        }
        match refused {
            Some(id) => Err(Refusal::ForeignService(id.to_string())),
            None => Ok(plans),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billmgr::ErrorType;

    #[test]
    fn elid_lists() {
        let p = Params::from_pairs([("elid", "5001, 5002,5003 ,")]);
        assert_eq!(elids(&p).unwrap(), vec![5001, 5002, 5003]);
        let p = Params::from_pairs([("elid", "5001, x")]);
        assert_eq!(elids(&p).unwrap_err().error().kind, ErrorType::Access);
    }
}
