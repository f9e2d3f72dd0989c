//! The web console at `/console/`.

use http::{Response, StatusCode};
use pingora::protocols::http::ServerSession;

use super::AdminApp;

impl AdminApp {
    pub(crate) async fn console(&self, _s: &mut ServerSession) -> Response<Vec<u8>> {
        super::text(StatusCode::NOT_FOUND, "not found")
    }
}
