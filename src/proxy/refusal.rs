//! Why a call is refused or failed, named after the condition, and the one place a
//! refusal becomes a BILLmanager error document ([`Refusal::document`]).
//!
//! Every step of a call returns a [`Refusal`] rather than assembling an error itself:
//! the wording, the error `type`, `object` and `value` of each condition live in
//! [`Refusal::error`] only. An upstream's own error document is not a refusal: it passes
//! to the reseller as the upstream wrote it.

use bytes::Bytes;

use super::functions::{self, Refused};
use crate::billmgr::{self, BmError, ErrorType, Format, ParamError};
use crate::upstream::UpstreamError;

/// One condition under which the gateway answers with an error document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The parameters could not be read: over a limit, badly encoded, ambiguous.
    Unreadable(ParamError),
    /// No `func`.
    NoFunction,
    /// `su`: acting as another user.
    ActAsOther,
    /// `func=auth&key=…`: the gateway issues no keys.
    KeyLogin,
    /// The function table or the policy refuses `func`.
    Function { func: String, why: Refused },
    /// A field the call needs is missing or empty (`username`, `password`, `remoteid`).
    MissingField(&'static str),
    /// A credential field given more than once (`authinfo`, `auth`).
    RepeatedField(&'static str),
    /// `authinfo` is not `login:password`.
    MalformedAuthinfo,
    /// No credentials at all.
    NotAuthenticated,
    /// The login or password is wrong (or the login unknown).
    WrongCredentials,
    /// Too many failed logins from this address within the window.
    Throttled { wait_s: u64 },
    /// The password-check queue is full.
    VerificationsBusy,
    /// The session expired or was never issued.
    SessionExpired,
    /// The session was issued to another address.
    SessionElsewhere,
    /// The session's reseller was removed.
    ResellerGone,
    /// The reseller's upstream account is unknown or its password cannot be resolved.
    AccountUnavailable,
    /// The catalogue refuses the call (an unmapped plan, a plan the reseller may not see);
    /// its error is the catalogue's own.
    Catalog(BmError),
    /// An `elid` that is not one of the reseller's services (or not an id at all).
    ForeignService(String),
    /// An order whose outcome is not known yet (sent, the answer lost or unreadable).
    OrderPending { remoteid: String },
    /// The order was sent and then the upstream failed: its outcome is not known.
    OrderOutcomeUnknown {
        remoteid: String,
        failure: UpstreamError,
    },
    /// The remoteid was ordered before with other parameters.
    OrderConflict { remoteid: String },
    /// The upstream could not be reached, timed out, or answered garbage.
    Upstream(UpstreamError),
    /// The store failed before anything was forwarded.
    StoreBeforeForward,
    /// The store failed after the upstream received the call (its outcome may exist
    /// upstream; reconciliation checks it).
    StoreAfterForward,
    /// A path the API does not answer on (HTTP 404); `hint` is the first configured one.
    UnknownPath { hint: String },
    /// A method other than GET and POST (HTTP 405).
    WrongMethod,
    /// pingora could not read the request (HTTP 400).
    RequestUnreadable,
    /// A connection over the per-address cap (answered before any request is read).
    TooManyConnections { max: usize },
}

impl From<ParamError> for Refusal {
    fn from(e: ParamError) -> Self {
        Refusal::Unreadable(e)
    }
}

impl From<UpstreamError> for Refusal {
    fn from(e: UpstreamError) -> Self {
        Refusal::Upstream(e)
    }
}

fn pending_msg(remoteid: &str) -> String {
    format!(
        "The order '{remoteid}' was sent to the upstream but its outcome is not known yet; \
         it will be checked against the upstream shortly. Retry later with the same parameters"
    )
}

impl Refusal {
    /// The error the reseller receives for this condition.
    pub fn error(&self) -> BmError {
        match self {
            Refusal::Unreadable(e) => e.clone().into(),
            Refusal::NoFunction => BmError::missed("func"),
            Refusal::ActAsOther => BmError::access(
                "su",
                "Acting as another user (su) is not allowed through this gateway",
            ),
            Refusal::KeyLogin => functions::key_login_refused(),
            Refusal::Function { func, why } => why.error(func),
            Refusal::MissingField(f) => BmError::missed(f),
            Refusal::RepeatedField(key) => BmError::new(
                ErrorType::Value,
                format!("The '{key}' field is given more than once"),
            )
            .object(*key),
            Refusal::MalformedAuthinfo => BmError::new(
                ErrorType::Value,
                "The 'authinfo' field must be login:password",
            )
            .object("authinfo"),
            Refusal::NotAuthenticated => BmError::auth(
                "Authentication is required: send authinfo=login:password or a session id",
            )
            .object("authinfo"),
            Refusal::WrongCredentials => {
                BmError::auth("Invalid login or password").object("authinfo")
            }
            Refusal::Throttled { wait_s } => {
                BmError::auth(format!("Too many failed logins; try again in {wait_s} s"))
                    .object("authinfo")
            }
            Refusal::VerificationsBusy => {
                BmError::auth("Too many logins are being checked right now; try again in a moment")
                    .object("authinfo")
            }
            Refusal::SessionExpired => {
                BmError::auth("The session has expired or is unknown; log in again").object("auth")
            }
            Refusal::SessionElsewhere => {
                BmError::auth("The session belongs to another address; log in again").object("auth")
            }
            Refusal::ResellerGone => {
                BmError::auth("The session's reseller no longer exists").object("auth")
            }
            Refusal::AccountUnavailable => {
                BmError::upstream("The upstream account for this reseller is not configured")
            }
            Refusal::Catalog(e) => e.clone(),
            Refusal::ForeignService(id) => {
                BmError::access("elid", "There is no such service on your account")
                    .value(id.as_str())
            }
            Refusal::OrderPending { remoteid } => {
                BmError::new(ErrorType::Pending, pending_msg(remoteid))
                    .object("remoteid")
                    .value(remoteid.as_str())
            }
            Refusal::OrderOutcomeUnknown { remoteid, failure } => BmError::new(
                ErrorType::Pending,
                format!(
                    "{failure} after the order '{remoteid}' was sent; its outcome is not known yet \
                     and will be checked against the upstream. Retry later with the same parameters"
                ),
            )
            .object("remoteid")
            .value(remoteid.as_str()),
            Refusal::OrderConflict { remoteid } => BmError::new(
                ErrorType::Exists,
                format!(
                    "An order with remoteid '{remoteid}' was already placed with other parameters"
                ),
            )
            .object("remoteid")
            .value(remoteid.as_str()),
            Refusal::Upstream(e) => {
                let mut s = e.to_string();
                if let Some(first) = s.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                BmError::upstream(s)
            }
            Refusal::StoreBeforeForward => BmError::new(
                ErrorType::Upstream,
                "The gateway could not record the call; nothing was sent, try again later",
            )
            .object("store"),
            Refusal::StoreAfterForward => BmError::new(
                ErrorType::Upstream,
                "The call reached the upstream, but the gateway could not record its outcome; \
                 it will be checked against the upstream. Retry later with the same parameters",
            )
            .object("store"),
            Refusal::UnknownPath { hint } => BmError::new(
                ErrorType::Missed,
                format!("No BILLmanager here: use {hint}"),
            )
            .object("path"),
            Refusal::WrongMethod => {
                BmError::new(ErrorType::Value, "Only GET and POST are accepted").object("method")
            }
            Refusal::TooManyConnections { max } => BmError::new(
                ErrorType::Access,
                format!(
                    "Too many connections from your address (at most {max}); close some and retry"
                ),
            )
            .object("connection"),
            Refusal::RequestUnreadable => {
                BmError::new(ErrorType::Value, "The request could not be read").object("request")
            }
        }
    }

    /// The error document for this refusal in the caller's format and language: the
    /// only way a refusal reaches the wire.
    pub fn document(&self, format: Format, lang: &str) -> Bytes {
        billmgr::render(&self.error().to_doc(lang), format).into()
    }

    /// The access line's outcome: the upstream failed, or the gateway refused.
    pub fn outcome(&self) -> &'static str {
        if self.error().kind == ErrorType::Upstream {
            "upstream_error"
        } else {
            "refused"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_after_the_upstream_answered_does_not_say_nothing_was_sent() {
        let before = Refusal::StoreBeforeForward.error();
        assert!(before.msg.contains("nothing was sent"), "{}", before.msg);
        let after = Refusal::StoreAfterForward.error();
        assert!(!after.msg.contains("nothing was sent"), "{}", after.msg);
        assert!(after.msg.contains("reached the upstream"), "{}", after.msg);
        assert_eq!(
            (after.kind, after.object.as_deref()),
            (ErrorType::Upstream, Some("store"))
        );
    }

    #[test]
    fn outcomes_follow_the_error_type() {
        assert_eq!(
            Refusal::Upstream(UpstreamError::Timeout).outcome(),
            "upstream_error"
        );
        assert_eq!(Refusal::WrongCredentials.outcome(), "refused");
    }

    #[test]
    fn documents_are_in_the_callers_format() {
        let doc = Refusal::NoFunction.document(Format::Json, "en");
        let text = std::str::from_utf8(&doc).unwrap();
        assert!(text.contains("missed"), "{text}");
    }
}
