//! Which [`OrderEvent`] a claim or a finish was, for `resellgate_orders_total{event}`:
//! decided from the results the order path already returns, so counting changes nothing
//! in it.

use bytes::Bytes;

use super::orders::Claimed;
use super::Refusal;
use crate::billmgr::{BmError, Element};
use crate::telemetry::OrderEvent;

/// The event of a claim; `None` when no claim was tried (the call was refused before,
/// e.g. without a `remoteid`).
pub fn claim_event(claimed: &Result<Claimed, Refusal>) -> Option<OrderEvent> {
    Some(match claimed {
        Ok(Claimed::Forward(_)) => OrderEvent::Claimed,
        Ok(Claimed::Replay(_)) => OrderEvent::Replayed,
        Err(Refusal::OrderPending { .. }) => OrderEvent::Pending,
        Err(Refusal::OrderConflict { .. }) => OrderEvent::Conflict,
        Err(Refusal::StoreBeforeForward) => OrderEvent::StoreError,
        Err(_) => return None,
    })
}

/// The event of a forwarded order's finish: acknowledged only when its outcome was
/// recorded and the answer is the upstream's acceptance.
pub fn finish_event(finished: &Result<(Bytes, Element), Refusal>) -> OrderEvent {
    match finished {
        Ok((_, doc)) if BmError::from_doc(doc).is_some() => OrderEvent::Failed,
        Ok(_) => OrderEvent::Acknowledged,
        // Nothing was sent: the claim was released.
        Err(Refusal::Upstream(_)) => OrderEvent::Failed,
        Err(Refusal::StoreBeforeForward | Refusal::StoreAfterForward) => OrderEvent::StoreError,
        Err(_) => OrderEvent::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamError;

    #[test]
    fn claims_and_finishes_are_named() {
        assert_eq!(
            claim_event(&Ok(Claimed::Replay(Element::doc()))),
            Some(OrderEvent::Replayed)
        );
        assert_eq!(
            claim_event(&Err(Refusal::OrderConflict {
                remoteid: "r".into()
            })),
            Some(OrderEvent::Conflict)
        );
        assert_eq!(claim_event(&Err(Refusal::MissingField("remoteid"))), None);
        let ok = Element::doc().child(Element::leaf("id", "7"));
        assert_eq!(
            finish_event(&Ok((Bytes::new(), ok))),
            OrderEvent::Acknowledged
        );
        let refused = crate::billmgr::parse(
            b"<doc><error type=\"value\"><msg>no</msg></error></doc>",
            crate::billmgr::Format::Xml,
        )
        .unwrap();
        assert_eq!(
            finish_event(&Ok((Bytes::new(), refused))),
            OrderEvent::Failed
        );
        assert_eq!(
            finish_event(&Err(Refusal::OrderPending {
                remoteid: "r".into()
            })),
            OrderEvent::Unknown
        );
        assert_eq!(
            finish_event(&Err(Refusal::StoreAfterForward)),
            OrderEvent::StoreError
        );
        assert_eq!(
            finish_event(&Err(Refusal::Upstream(UpstreamError::Garbage))),
            OrderEvent::Failed
        );
    }
}
