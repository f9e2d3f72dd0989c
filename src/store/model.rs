//! Domain records kept in the store. Validated before they get here (see
//! `crate::config::mappings`); the store only persists and caches them.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::secret::PasswordSource;

/// The operator's customer account at the upstream, used on behalf of resellers.
/// The password itself is never stored, only where to find it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamAccount {
    pub name: String,
    pub login: String,
    pub password: PasswordSource,
}

/// A reselling billing allowed to use the gateway.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reseller {
    pub login: String,
    /// argon2id PHC string. Never printed (see the `Debug` impl).
    pub password_hash: String,
    /// Name of the [`UpstreamAccount`] its calls are made with.
    pub upstream_account: String,
    /// Local plan ids this reseller may see and order.
    pub plans: Vec<u64>,
    /// Replaces each plan's markup as a whole when set.
    pub markup: Option<Markup>,
}

impl Reseller {
    /// Whether this reseller may see and order local plan `id`.
    pub fn has_plan(&self, id: u64) -> bool {
        self.plans.contains(&id)
    }
}

impl fmt::Debug for Reseller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reseller")
            .field("login", &self.login)
            .field("password_hash", &"***")
            .field("upstream_account", &self.upstream_account)
            .field("plans", &self.plans)
            .field("markup", &self.markup)
            .finish()
    }
}

/// A local plan: the id resellers see, mapped to the upstream pricelist id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: u64,
    pub upstream_id: u64,
    pub name: Option<String>,
    pub markup: Option<Markup>,
    pub addons: Vec<Addon>,
}

impl Plan {
    /// The upstream id of local add-on `id` of this plan.
    pub fn addon_upstream_id(&self, id: u64) -> Option<u64> {
        self.addons
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.upstream_id)
    }

    /// The local id of upstream add-on `upstream_id` of this plan.
    pub fn addon_local_id(&self, upstream_id: u64) -> Option<u64> {
        self.addons
            .iter()
            .find(|a| a.upstream_id == upstream_id)
            .map(|a| a.id)
    }
}

/// A plan add-on (e.g. domainlimit): local id ↔ upstream id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addon {
    pub id: u64,
    pub upstream_id: u64,
}

/// `price × (1 + percent/100) + fixed`, rounded half-up to a multiple of `round_to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Markup {
    #[serde(with = "decimal_str")]
    pub percent: Decimal,
    #[serde(with = "decimal_str")]
    pub fixed: Decimal,
    #[serde(with = "decimal_str")]
    pub round_to: Decimal,
}

impl Markup {
    /// The default rounding step, one cent.
    pub fn default_round_to() -> Decimal {
        Decimal::new(1, 2)
    }
}

impl Default for Markup {
    fn default() -> Self {
        Markup {
            percent: Decimal::ZERO,
            fixed: Decimal::ZERO,
            round_to: Markup::default_round_to(),
        }
    }
}

impl fmt::Display for Markup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "percent {}, fixed {}, round_to {}",
            self.percent, self.fixed, self.round_to
        )
    }
}

/// Decimals as strings, exact and readable by every serde format (bincode included, which
/// cannot use rust_decimal's default self-describing deserializer).
pub(crate) mod decimal_str {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let s = String::deserialize(d)?;
        Decimal::from_str(&s).map_err(serde::de::Error::custom)
    }
}

/// [`decimal_str`] for an optional decimal.
pub(crate) mod opt_decimal_str {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| Decimal::from_str(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reseller_debug_hides_hash() {
        let r = Reseller {
            login: "acme".into(),
            password_hash: "$argon2id$secret".into(),
            upstream_account: "acme-up".into(),
            plans: vec![101],
            markup: None,
        };
        let s = format!("{r:?}");
        assert!(!s.contains("argon2id"), "{s}");
        assert!(s.contains("acme-up"), "{s}");
    }
}
