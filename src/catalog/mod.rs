//! The operator's catalogue: local plan ids, names and marked-up prices over the
//! upstream's plans (issue 3).
//!
//! Not implemented yet: requests and responses pass unchanged.

use crate::billmgr::{BmError, Element, Params};
use crate::store::model::Reseller;
use crate::store::Store;

/// Map a reseller's call to what the upstream must receive: local plan ids in
/// `pricelist` and `addon_<id>` keys become upstream ids. Refuses unmapped or foreign
/// plans with an error of type `value` naming the field.
pub fn map_request(
    _store: &Store,
    _reseller: &Reseller,
    _func: &str,
    params: &Params,
) -> Result<Params, BmError> {
    Ok(params.clone())
}

/// Rewrite an upstream answer for the reseller (plans under local ids, marked-up prices).
/// `params` is the reseller's original call. Answers whether the document changed.
pub fn map_response(
    _store: &Store,
    _reseller: &Reseller,
    _func: &str,
    _params: &Params,
    _doc: &mut Element,
) -> bool {
    false
}
