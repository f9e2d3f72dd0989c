//! Query strings of the admin API: every parameter must be one the endpoint knows, given
//! once, with a value. Anything else is a [`QueryError`] (answered with 400), so a typo
//! such as `?stat=pending` is not silently ignored.

use std::collections::BTreeMap;

use crate::billmgr::{Limits, Params};

/// Why a query string was refused; the message is shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query string is not valid: {0}")]
    Encoding(String),
    #[error("unknown query parameter '{name}' (this endpoint takes: {allowed})")]
    Unknown { name: String, allowed: String },
    #[error("query parameter '{0}' is given more than once")]
    Repeated(String),
    #[error("query parameter '{0}' is empty")]
    Empty(String),
    #[error("query parameter '{name}': {problem}")]
    Invalid { name: String, problem: String },
}

/// The parameters of `query`, each one of `allowed`.
pub fn parse(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, QueryError> {
    // The proxy's own strict decoder: broken percent-encoding or UTF-8 is an error, and
    // length and count are bounded.
    let params = Params::parse(query, b"", &Limits::default())
        .map_err(|e| QueryError::Encoding(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, value) in params.iter() {
        let (name, value) = (name.to_string(), value.to_string());
        if !allowed.contains(&name.as_str()) {
            let allowed = if allowed.is_empty() {
                "nothing".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(QueryError::Unknown {
                name: printable(&name),
                allowed,
            });
        }
        if value.is_empty() {
            return Err(QueryError::Empty(name));
        }
        if out.contains_key(&name) {
            return Err(QueryError::Repeated(name));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// `value` for a message: control characters escaped, at most 64 characters
/// ([`crate::telemetry::printable`]), `…` when cut.
pub fn printable(value: &str) -> String {
    let mut s = crate::telemetry::printable(value, 64);
    if value.chars().nth(64).is_some() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_parameters_once_each() {
        let q = parse(
            Some("state=pending&reseller=acme%2Bco"),
            &["state", "reseller"],
        )
        .unwrap();
        assert_eq!(q["state"], "pending");
        assert_eq!(q["reseller"], "acme+co");
        assert!(parse(None, &["state"]).unwrap().is_empty());
        assert!(parse(Some(""), &[]).unwrap().is_empty());
    }

    #[test]
    fn unknown_repeated_empty_and_bad_encoding_are_refused() {
        assert_eq!(
            parse(Some("stat=pending"), &["state", "reseller"])
                .unwrap_err()
                .to_string(),
            "unknown query parameter 'stat' (this endpoint takes: state, reseller)"
        );
        assert_eq!(
            parse(Some("x=1"), &[]).unwrap_err().to_string(),
            "unknown query parameter 'x' (this endpoint takes: nothing)"
        );
        assert_eq!(
            parse(Some("state=done&state=failed"), &["state"]),
            Err(QueryError::Repeated("state".into()))
        );
        assert_eq!(
            parse(Some("reseller="), &["reseller"]),
            Err(QueryError::Empty("reseller".into()))
        );
        assert!(matches!(
            parse(Some("reseller=%FF"), &["reseller"]),
            Err(QueryError::Encoding(_))
        ));
        assert!(matches!(
            parse(Some("reseller=%zz"), &["reseller"]),
            Err(QueryError::Encoding(_))
        ));
    }

    #[test]
    fn printable_escapes_and_shortens() {
        assert_eq!(printable("acme"), "acme");
        assert_eq!(printable("a\nb"), "a\\nb");
        assert_eq!(printable(&"x".repeat(100)), format!("{}…", "x".repeat(64)));
    }
}
