//! The BILLmanager wire protocol as the gateway sees it (see docs/protocol.md): request
//! parameters, documents in every output format, and error documents.

mod doc;
pub mod edit;
mod error;
pub mod functions;
mod params;

pub use doc::{parse, render, DocError, Element, Format, MAX_DEPTH};
pub use edit::Node;
pub use error::{BmError, ErrorType};
pub use params::{sniff_format, Limits, ParamError, Params};

/// The paths a BILLmanager is reached on by default (`[server] paths`).
pub const PATHS: &[&str] = &["/billmgr", "/manager/billmgr", "/"];

/// A rendered document: the bytes and their content type.
pub fn respond(doc: &Element, format: Format) -> (Vec<u8>, &'static str) {
    (render(doc, format), format.content_type())
}
