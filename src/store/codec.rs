//! Value encoding: one version byte, then bincode. A record written by a newer build (a
//! version this build does not know) is refused with a clear error instead of misread.
//!
//! Version 1 is the encoding before persisted domain values became enums (ledger kind,
//! service source, history outcome as strings); [`super::migrate`] reads it with
//! [`decode_version`] and rewrites every value as version 2.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format version written by this build.
pub const VERSION: u8 = 2;

/// Why a stored value could not be read or written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("the stored value is empty")]
    Empty,
    #[error(
        "unknown value format version {found} (this build reads version {VERSION}); \
         was the store written by a newer resellgate?"
    )]
    UnknownVersion { found: u8 },
    #[error("the stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot encode the value: {0}")]
    Encode(String),
}

/// `VERSION` followed by the bincode encoding of `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![VERSION];
    bincode::serialize_into(&mut out, value).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// The inverse of [`encode`]; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_version(bytes, VERSION)
}

/// Whether a stored record whose first field is a `u64` and second its reseller (a
/// [`Service`](super::services::Service), a [`LedgerEntry`](super::ledger::LedgerEntry))
/// may be `reseller`'s, read from its bytes without decoding it: the version byte, the
/// `u64`, the reseller's length (8 bytes, little-endian) and bytes. `true` when the value
/// is not in that shape (its decoding then judges it): a filter over a large tree.
pub fn may_belong(value: &[u8], reseller: &str) -> bool {
    let (Some(len), Some(&VERSION)) = (value.get(9..17), value.first()) else {
        return true;
    };
    let len = u64::from_le_bytes(len.try_into().unwrap_or_default());
    if len != reseller.len() as u64 {
        return false;
    }
    value
        .get(17..17 + reseller.len())
        .is_none_or(|name| name == reseller.as_bytes())
}

/// The version byte of a stored value.
pub fn version_of(bytes: &[u8]) -> Result<u8, CodecError> {
    bytes.first().copied().ok_or(CodecError::Empty)
}

/// [`decode`] of a value written as format `version` (the migration reads older ones).
pub fn decode_version<T: DeserializeOwned>(bytes: &[u8], version: u8) -> Result<T, CodecError> {
    decode_body(body_of(bytes, version)?)
}

/// The encoding after the version byte, when that byte is `version`.
fn body_of(bytes: &[u8], version: u8) -> Result<&[u8], CodecError> {
    let (&found, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if found != version {
        return Err(CodecError::UnknownVersion { found });
    }
    Ok(body)
}

/// The leading fields of a value (`T` is a prefix of the stored type's fields, in order:
/// bincode is positional), the rest not read: a record's head without its long tail.
pub fn decode_head<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    use bincode::Options;
    let body = body_of(bytes, VERSION)?;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| CodecError::Corrupt(e.to_string()))
}

/// bincode with fixed-width integers, no trailing bytes, bounded by the body's size.
pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .reject_trailing_bytes()
        // A corrupt length prefix must not make us allocate more than the value's size.
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| CodecError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check on a record's encoded bytes agrees with its decoding: it passes over
    /// another reseller's service or ledger entry, never one of `reseller`'s, and leaves
    /// a value of another shape to the decoding.
    #[test]
    fn may_belong_reads_the_encoded_reseller() {
        use crate::store::ledger::{LedgerEntry, LedgerKind};
        for (owner, asked) in [
            ("acme", "acme"),
            ("acme", "acm"),
            ("acme", "acmf"),
            ("", ""),
            ("ацме", "ацме"),
            ("x", "acme"),
        ] {
            let svc = crate::store::tests::service(7, owner);
            let entry = LedgerEntry {
                at_ms: 9,
                reseller: owner.into(),
                kind: LedgerKind::Order,
                upstream_id: 7,
                remoteid: None,
                plan: None,
                period: None,
                upstream_cost: None,
                price: None,
            };
            for v in [encode(&svc).unwrap(), encode(&entry).unwrap()] {
                assert_eq!(may_belong(&v, asked), owner == asked, "{owner} / {asked}");
            }
        }
        assert!(may_belong(b"\x02short", "acme"));
        assert!(may_belong(&[], "acme"));
        let mut other = encode(&(7u64, "acme")).unwrap();
        other[0] = 9;
        assert!(may_belong(&other, "globex"));
    }

    #[test]
    fn round_trip_and_errors() {
        let v = (String::from("acme"), vec![1u64, 2, 3], Some(7u8));
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode::<(String, Vec<u64>, Option<u8>)>(&bytes).unwrap(), v);

        let mut future = bytes.clone();
        future[0] = 9;
        let e = decode::<(String, Vec<u64>, Option<u8>)>(&future).unwrap_err();
        assert_eq!(e, CodecError::UnknownVersion { found: 9 });
        assert!(
            e.to_string().contains("unknown value format version 9"),
            "{e}"
        );

        assert_eq!(decode::<u8>(&[]).unwrap_err(), CodecError::Empty);
        assert!(matches!(
            decode::<String>(&bytes[..3]),
            Err(CodecError::Corrupt(_))
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode::<(String, Vec<u64>, Option<u8>)>(&long),
            Err(CodecError::Corrupt(_))
        ));
    }
}
