//! Around the forward: every `elid` must belong to the calling reseller, and orders
//! (`certificate.order.param` with `sok`) are exactly-once per (reseller, `remoteid`).
//!
//! Not implemented yet (issue 4): today every call is forwarded and nothing is recorded.

use bytes::Bytes;

use super::upstream::UpstreamError;
use super::Gateway;
use crate::billmgr::{BmError, Element, Params};
use crate::store::model::Reseller;

/// What to do with a call before it is forwarded.
pub enum Before {
    /// Forward it; an order carries its claim to [`Gateway::after_forward`].
    Forward(Option<OrderClaim>),
    /// An identical order was answered before: answer the stored document again.
    Replay(Element),
}

/// A claimed (reseller, remoteid) order key, recorded before the order is forwarded.
#[derive(Debug)]
pub struct OrderClaim {
    pub remoteid: String,
}

impl Gateway {
    /// Check ownership and claim orders. Runs after the catalogue mapped the call.
    pub(crate) async fn before_forward(
        &self,
        _reseller: &Reseller,
        _func: &str,
        _params: &Params,
    ) -> Result<Before, BmError> {
        Ok(Before::Forward(None))
    }

    /// Record the outcome of a forwarded call (an order's answer, a new service) before
    /// the reseller is answered; turn an upstream failure into the reseller's error.
    pub(crate) async fn after_forward(
        &self,
        _reseller: &Reseller,
        _func: &str,
        _params: &Params,
        _claim: Option<OrderClaim>,
        result: Result<(Bytes, Element), UpstreamError>,
    ) -> Result<(Bytes, Element), BmError> {
        result.map_err(BmError::from)
    }
}
