//! Records back to a mapping file, and a mapping set into the store.
//!
//! [`MappingFile::to_toml`] is `toml_edit`'s serialisation (the engine of the `toml`
//! crate) laid out as the documented files are: one `[[kind]]` table per record, with
//! markups and add-ons inline. [`MappingSet::apply_to`] hands the store one
//! [`Batch`] and checks references against the store under its write lock.

use super::{
    AddonSpec, MappingFile, MappingSet, MarkupSpec, PlanSpec, ResellerSpec, UpstreamAccountSpec,
};
use crate::config::ConfigError;
use crate::secret::PasswordSource;
use crate::store::model::{Markup, Plan, Reseller, UpstreamAccount};
use crate::store::{Actor, Batch, Change, Store, StoreError};

/// Why a mapping set could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A reference the set and the store cannot satisfy (names file, entry, key, value).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MappingSet {
    /// Upserts every entry of the set (nothing is deleted) after checking references
    /// against the set and the store; answers the changes, none when the store already
    /// matches. All writes are flushed once.
    pub fn apply_to(&self, store: &Store) -> Result<Vec<Change>, ApplyError> {
        self.apply_to_as(store, None)
    }

    /// [`MappingSet::apply_to`] with an audit entry per changed record for `actor`,
    /// written with the change.
    pub fn apply_to_as(
        &self,
        store: &Store,
        actor: Option<&Actor>,
    ) -> Result<Vec<Change>, ApplyError> {
        let batch = Batch {
            upstream_accounts: self
                .upstream_accounts
                .iter()
                .map(|e| e.item.clone())
                .collect(),
            plans: self.plans.iter().map(|e| e.item.clone()).collect(),
            resellers: self.resellers.iter().map(|e| e.item.clone()).collect(),
        };
        let check = |s: &Store| {
            self.validate_refs(&|name| s.upstream_account(name).is_some(), &|id| {
                s.plan(id).is_some()
            })
            .map_err(ApplyError::from)
        };
        match actor {
            Some(a) => store.apply_batch_as(a, batch, check),
            None => store.apply_batch(batch, check),
        }
    }
}

impl MappingFile {
    /// The whole state of `store` as a mapping file (password sources by name, never a
    /// value).
    pub fn from_store(store: &Store) -> MappingFile {
        let accounts = store.upstream_accounts();
        let resellers = store.resellers();
        let plans = store.plans();
        MappingFile::from_records(
            accounts.iter().map(|a| &**a),
            resellers.iter().map(|r| &**r),
            plans.iter().map(|p| &**p),
        )
    }

    /// Builds the file that declares exactly these records (what `mappings export` prints).
    pub fn from_records<'a>(
        accounts: impl IntoIterator<Item = &'a UpstreamAccount>,
        resellers: impl IntoIterator<Item = &'a Reseller>,
        plans: impl IntoIterator<Item = &'a Plan>,
    ) -> MappingFile {
        MappingFile {
            upstream_account: accounts
                .into_iter()
                .map(UpstreamAccountSpec::from)
                .collect(),
            reseller: resellers.into_iter().map(ResellerSpec::from).collect(),
            plan: plans.into_iter().map(PlanSpec::from).collect(),
        }
    }

    /// The file as TOML, in the documented layout (inline markups and add-ons).
    pub fn to_toml(&self) -> String {
        // Serialised whole (every value inline), then each top-level array becomes an
        // array of tables whose values stay inline.
        let inline = match toml_edit::ser::to_document(self) {
            Ok(doc) => doc,
            // Only maps with non-string keys fail, and a mapping file has none.
            Err(e) => return format!("# cannot write the mappings as TOML: {e}\n"),
        };
        let mut doc = toml_edit::DocumentMut::new();
        for (key, item) in inline.iter() {
            let Some(array) = item.as_array() else {
                continue;
            };
            let mut tables = toml_edit::ArrayOfTables::new();
            for value in array.iter().filter_map(|v| v.as_inline_table()) {
                let mut t = value.clone().into_table();
                t.fmt();
                tables.push(t);
            }
            if !tables.is_empty() {
                doc.insert(key, toml_edit::Item::ArrayOfTables(tables));
            }
        }
        doc.to_string()
    }
}

impl From<&UpstreamAccount> for UpstreamAccountSpec {
    fn from(a: &UpstreamAccount) -> Self {
        let (password_env, password_file) = match &a.password {
            PasswordSource::Env(name) => (Some(name.clone()), None),
            PasswordSource::File(path) => (None, Some(path.clone())),
        };
        UpstreamAccountSpec {
            name: a.name.clone(),
            login: a.login.clone(),
            password_env,
            password_file,
        }
    }
}

impl From<&Reseller> for ResellerSpec {
    fn from(r: &Reseller) -> Self {
        ResellerSpec {
            login: r.login.clone(),
            password_hash: r.password_hash.clone(),
            upstream_account: r.upstream_account.clone(),
            plans: r.plans.clone(),
            markup: r.markup.as_ref().map(MarkupSpec::from),
        }
    }
}

impl From<&Plan> for PlanSpec {
    fn from(p: &Plan) -> Self {
        PlanSpec {
            id: p.id,
            upstream_id: p.upstream_id,
            name: p.name.clone(),
            markup: p.markup.as_ref().map(MarkupSpec::from),
            addons: p
                .addons
                .iter()
                .map(|a| AddonSpec {
                    id: a.id,
                    upstream_id: a.upstream_id,
                })
                .collect(),
        }
    }
}

impl From<&Markup> for MarkupSpec {
    /// Default parts are left out, so an export reads like a hand-written file.
    fn from(m: &Markup) -> Self {
        let d = Markup::default();
        MarkupSpec {
            percent: (m.percent != d.percent).then(|| m.percent.to_string()),
            fixed: (m.fixed != d.fixed).then(|| m.fixed.to_string()),
            round_to: (m.round_to != d.round_to).then(|| m.round_to.to_string()),
        }
    }
}
