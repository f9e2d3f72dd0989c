//! The operator's catalogue: local plan ids, names and marked-up prices over the
//! upstream's plans (issue 3).
//!
//! - [`request`]  — local plan and add-on ids → upstream ids, refusing what the reseller
//!   may not order.
//! - [`response`] — upstream plans, ids and prices → the reseller's view.
//! - [`markup`]   — reading prices and marking them up, decimal only.
//! - [`pricing`]  — the price a reseller is billed for an upstream cost (the ledger's).
//!
//! Both hooks read the store's cache on every call, so a mapping applied while the
//! gateway runs takes effect on the next request.

pub mod markup;
pub mod pricing;
pub mod request;
pub mod response;

use crate::billmgr::{BmError, Params};
use crate::store::model::Reseller;
use crate::store::Store;

/// Map a reseller's call to what the upstream must receive: local plan ids in
/// `pricelist` and `addon_<id>` keys become upstream ids. Refuses unmapped or foreign
/// plans with an error of type `value` naming the field.
pub fn map_request(
    store: &Store,
    reseller: &Reseller,
    func: &str,
    params: &Params,
) -> Result<Params, BmError> {
    let elid_is_plan = crate::billmgr::functions::lookup(func)
        .is_some_and(|f| f.elid == crate::billmgr::functions::Elid::Plan);
    request::map(store, reseller, params, elid_is_plan)
}

pub use response::{Catalog, RowServices, UpstreamNames};

/// Rewrite an upstream answer for the reseller: plans under local ids, marked-up prices,
/// everything else as the upstream wrote it (see [`response::rewrite`]).
pub use response::rewrite as rewrite_response;
