//! One edit of one record, as the admin API and the console make it: conditioned on an
//! entity tag (`If-Match`) or on the record's absence (a create), checked against the
//! store as it is, and written with its audit entry.

use std::sync::Arc;

use sha2::Digest;

use super::audit::Actor;
use super::records::{diff_account, diff_plan, diff_reseller, Write};
use super::{
    encode, Change, ChangeOp, Plan, RecordKind, Reseller, Store, StoreError, UpstreamAccount,
};

/// One edit of one record, as the admin API makes it ([`Store::edit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    PutAccount(UpstreamAccount),
    PutReseller(Reseller),
    PutPlan(Plan),
    DeleteAccount(String),
    DeleteReseller(String),
    DeletePlan(u64),
}

impl Edit {
    /// The record it is about.
    pub fn target(&self) -> (RecordKind, String) {
        match self {
            Edit::PutAccount(a) => (RecordKind::UpstreamAccount, a.name.clone()),
            Edit::PutReseller(r) => (RecordKind::Reseller, r.login.clone()),
            Edit::PutPlan(p) => (RecordKind::Plan, p.id.to_string()),
            Edit::DeleteAccount(n) => (RecordKind::UpstreamAccount, n.clone()),
            Edit::DeleteReseller(l) => (RecordKind::Reseller, l.clone()),
            Edit::DeletePlan(id) => (RecordKind::Plan, id.to_string()),
        }
    }
}

impl Store {
    /// The entity tag of a record as it is now (`"…"`, a digest of its stored form), or
    /// `None` when there is no such record.
    pub fn etag(&self, kind: RecordKind, key: &str) -> Option<String> {
        let bytes = match kind {
            RecordKind::UpstreamAccount => encode(&*self.upstream_account(key)?, String::new),
            RecordKind::Reseller => encode(&*self.reseller(key)?, String::new),
            RecordKind::Plan => encode(&*self.plan(key.parse().ok()?)?, String::new),
        }
        .ok()?;
        let d = sha2::Sha256::digest(&bytes);
        let hex: String = d.iter().take(12).map(|b| format!("{b:02x}")).collect();
        Some(format!("\"{hex}\""))
    }

    /// Makes one edit for `actor`, with its audit entry in the same write. With
    /// `if_match` (an `If-Match` header: entity tags separated by commas, or `*`), the
    /// record must exist with one of those tags, else [`StoreError::Stale`]. Deleting a
    /// record that does not exist is [`StoreError::NotFound`].
    pub fn edit(
        &self,
        actor: &Actor,
        edit: Edit,
        if_match: Option<&str>,
    ) -> Result<Vec<Change>, StoreError> {
        let _guard = self.lock();
        if let Some(expected) = if_match {
            let (kind, key) = edit.target();
            let current = self.etag(kind, &key);
            let ok = match &current {
                None => false,
                Some(tag) => expected
                    .split(',')
                    .map(str::trim)
                    .any(|e| e == "*" || e == tag || e.strip_prefix("W/") == Some(tag)),
            };
            if !ok {
                return Err(StoreError::Stale {
                    what: format!("{kind} '{key}'"),
                });
            }
        }
        let (changes, writes) = self.plan_edit(edit)?;
        if !writes.is_empty() {
            self.commit(writes, &changes, Some(actor))?;
        }
        Ok(changes)
    }

    /// Makes a put `edit` for `actor` only if its record does not exist yet
    /// ([`StoreError::Exists`] otherwise), audited like [`Store::edit`].
    pub fn create(&self, actor: &Actor, edit: Edit) -> Result<Vec<Change>, StoreError> {
        let _guard = self.lock();
        let (kind, key) = edit.target();
        if self.etag(kind, &key).is_some() {
            return Err(StoreError::Exists {
                what: format!("{kind} '{key}'"),
            });
        }
        let (changes, writes) = self.plan_edit(edit)?;
        if !writes.is_empty() {
            self.commit(writes, &changes, Some(actor))?;
        }
        Ok(changes)
    }

    /// What an edit would change and write, checked against the store as it is. Call
    /// with the lock held.
    pub(super) fn plan_edit(&self, edit: Edit) -> Result<(Vec<Change>, Vec<Write>), StoreError> {
        let one = |c: Change, w: Write| Ok((vec![c], vec![w]));
        match edit {
            Edit::PutAccount(account) => {
                let changes =
                    diff_account(self.upstream_account(&account.name).as_deref(), &account);
                let writes = if changes.is_empty() {
                    vec![]
                } else {
                    vec![Write::Account(Arc::new(account))]
                };
                Ok((changes, writes))
            }
            Edit::PutPlan(plan) => {
                let changes = diff_plan(self.plan(plan.id).as_deref(), &plan);
                let writes = if changes.is_empty() {
                    vec![]
                } else {
                    vec![Write::Plan(Arc::new(plan))]
                };
                Ok((changes, writes))
            }
            Edit::PutReseller(reseller) => {
                let what = format!("reseller '{}'", reseller.login);
                if self.upstream_account(&reseller.upstream_account).is_none() {
                    return Err(StoreError::MissingRef {
                        what,
                        missing: format!("upstream_account '{}'", reseller.upstream_account),
                    });
                }
                if let Some(id) = reseller.plans.iter().find(|id| self.plan(**id).is_none()) {
                    return Err(StoreError::MissingRef {
                        what,
                        missing: format!("plan {id}"),
                    });
                }
                let changes = diff_reseller(self.reseller(&reseller.login).as_deref(), &reseller);
                let writes = if changes.is_empty() {
                    vec![]
                } else {
                    vec![Write::Reseller(Arc::new(reseller))]
                };
                Ok((changes, writes))
            }
            Edit::DeleteReseller(login) => {
                if self.reseller(&login).is_none() {
                    return Err(StoreError::NotFound {
                        what: format!("reseller '{login}'"),
                    });
                }
                one(
                    Change::new(ChangeOp::Delete, RecordKind::Reseller, &login, None),
                    Write::DeleteReseller(login),
                )
            }
            Edit::DeletePlan(id) => {
                if self.plan(id).is_none() {
                    return Err(StoreError::NotFound {
                        what: format!("plan {id}"),
                    });
                }
                if let Some(r) = self.resellers().into_iter().find(|r| r.has_plan(id)) {
                    return Err(StoreError::StillUsed {
                        what: format!("plan {id}"),
                        by: format!("reseller '{}'", r.login),
                    });
                }
                one(
                    Change::new(ChangeOp::Delete, RecordKind::Plan, id, None),
                    Write::DeletePlan(id),
                )
            }
            Edit::DeleteAccount(name) => {
                if self.upstream_account(&name).is_none() {
                    return Err(StoreError::NotFound {
                        what: format!("upstream_account '{name}'"),
                    });
                }
                if let Some(r) = self
                    .resellers()
                    .into_iter()
                    .find(|r| r.upstream_account == name)
                {
                    return Err(StoreError::StillUsed {
                        what: format!("upstream_account '{name}'"),
                        by: format!("reseller '{}'", r.login),
                    });
                }
                one(
                    Change::new(ChangeOp::Delete, RecordKind::UpstreamAccount, &name, None),
                    Write::DeleteAccount(name),
                )
            }
        }
    }
}
