//! Upstream accounts: each reseller calls under its own, whose password comes from a
//! variable or a file ([`crate::secret`]). Passwords are resolved at start-up (and when
//! an account is applied to the running gateway) and kept; a call resolves its
//! reseller's account once into an [`Account`] and uses it for everything it sends.

use dashmap::DashMap;

use super::SetupError;
use crate::secret::Secret;
use crate::store::model::Reseller;
use crate::store::Store;

/// The login and password a reseller's calls go out under.
#[derive(Debug, Clone)]
pub struct Account {
    pub login: String,
    pub password: Secret,
}

/// The reseller's upstream account is unknown, or its password cannot be resolved
/// (logged with the account's name; the reseller is told only that it is unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream account for this reseller is not configured")]
pub struct AccountUnavailable;

/// Upstream account name → password.
pub struct Accounts {
    store: Store,
    secrets: DashMap<String, Secret>,
}

impl Accounts {
    /// Resolve the password of every upstream account in `store`.
    pub fn load(store: Store) -> Result<Accounts, SetupError> {
        let secrets = DashMap::new();
        for account in store.upstream_accounts() {
            let secret = account
                .password
                .resolve()
                .map_err(|e| SetupError::Account {
                    name: account.name.clone(),
                    error: e.to_string(),
                })?;
            secrets.insert(account.name.clone(), secret);
        }
        Ok(Accounts { store, secrets })
    }

    /// Use `secret` as the password of upstream account `name` from now on (an account
    /// applied to the running gateway).
    pub fn set_secret(&self, name: &str, secret: Secret) {
        self.secrets.insert(name.to_string(), secret);
    }

    /// The reseller's upstream login and password.
    pub fn resolve(&self, reseller: &Reseller) -> Result<Account, AccountUnavailable> {
        let account = self.store.upstream_account(&reseller.upstream_account).ok_or_else(|| {
            tracing::error!(reseller = %reseller.login, account = %reseller.upstream_account, "reseller refers to an unknown upstream account");
            AccountUnavailable
        })?;
        if let Some(s) = self.secrets.get(&account.name) {
            return Ok(Account {
                login: account.login.clone(),
                password: s.clone(),
            });
        }
        // An account applied after the start: resolve its password now.
        let secret = account.password.resolve().map_err(|e| {
            tracing::error!(account = %account.name, error = %e, "cannot resolve the upstream account's password");
            AccountUnavailable
        })?;
        self.secrets.insert(account.name.clone(), secret.clone());
        Ok(Account {
            login: account.login.clone(),
            password: secret,
        })
    }
}
