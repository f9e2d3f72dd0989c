//! The admin API's routes: one table ([`ROUTES`]) that the router, the `Allow` header and
//! the OpenAPI document (checked by a test) all follow.

use crate::store::RecordKind;

/// Every path template and the methods it answers. `{x}` is one path segment.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/healthz", &["GET"]),
    ("/readyz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/openapi.json", &["GET"]),
    ("/mappings", &["GET", "POST"]),
    ("/services", &["GET"]),
    ("/services/sync", &["POST"]),
    ("/orders", &["GET"]),
    ("/orders/reconcile", &["POST"]),
    ("/ledger", &["GET"]),
    ("/audit", &["GET"]),
    ("/resellers", &["GET", "POST"]),
    ("/resellers/{login}", &["GET", "PUT", "DELETE"]),
    ("/resellers/{login}/markup", &["GET", "PUT", "DELETE"]),
    ("/resellers/{login}/pricelist", &["GET"]),
    ("/upstream_accounts", &["GET", "POST"]),
    ("/upstream_accounts/{name}", &["GET", "PUT", "DELETE"]),
    ("/plans", &["GET", "POST"]),
    ("/plans/{id}", &["GET", "PUT", "DELETE"]),
    ("/plans/{id}/markup", &["GET", "PUT", "DELETE"]),
];

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    ExportMappings,
    ApplyMappings,
    Services,
    Orders,
    Reconcile,
    SyncServices,
    Ledger,
    Audit,
    List(RecordKind),
    Create(RecordKind),
    Get(RecordKind, String),
    Replace(RecordKind, String),
    Delete(RecordKind, String),
    /// The markup of a reseller or a plan.
    GetMarkup(RecordKind, String),
    PutMarkup(RecordKind, String),
    DeleteMarkup(RecordKind, String),
    /// `GET /resellers/{login}/pricelist`.
    Pricelist(String),
}

/// Why a request has no endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrouted {
    NotFound,
    /// The path exists with other methods (the `Allow` header).
    WrongMethod {
        allow: String,
    },
}

/// The template of [`ROUTES`] that `path` matches, and the segments standing for its
/// `{x}` parts (percent-decoded).
fn matching(path: &str) -> Option<(&'static str, &'static [&'static str], Vec<String>)> {
    let given: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    'routes: for (template, methods) in ROUTES {
        let parts: Vec<&str> = template[1..].split('/').collect();
        if parts.len() != given.len() {
            continue;
        }
        let mut args = Vec::new();
        for (p, g) in parts.iter().zip(&given) {
            if p.starts_with('{') {
                let decoded = percent_encoding::percent_decode_str(g).decode_utf8().ok()?;
                if decoded.is_empty() || decoded.chars().any(char::is_control) {
                    return None;
                }
                args.push(decoded.into_owned());
            } else if p != g {
                continue 'routes;
            }
        }
        return Some((template, methods, args));
    }
    None
}

impl Endpoint {
    /// The endpoint of `method` on `path` (the path without its query).
    pub fn route(method: &str, path: &str) -> Result<Endpoint, Unrouted> {
        use RecordKind::*;
        let (template, methods, mut args) = matching(path).ok_or(Unrouted::NotFound)?;
        if !methods.contains(&method) {
            return Err(Unrouted::WrongMethod {
                allow: methods.join(", "),
            });
        }
        let arg = args.pop().unwrap_or_default();
        let kind = match template.split('/').nth(1) {
            Some("resellers") => Reseller,
            Some("plans") => Plan,
            _ => UpstreamAccount,
        };
        Ok(match (method, template) {
            ("GET", "/healthz") => Endpoint::Healthz,
            ("GET", "/readyz") => Endpoint::Readyz,
            ("GET", "/metrics") => Endpoint::Metrics,
            ("GET", "/openapi.json") => Endpoint::OpenApi,
            ("GET", "/mappings") => Endpoint::ExportMappings,
            ("POST", "/mappings") => Endpoint::ApplyMappings,
            ("GET", "/services") => Endpoint::Services,
            ("GET", "/orders") => Endpoint::Orders,
            ("POST", "/orders/reconcile") => Endpoint::Reconcile,
            ("POST", "/services/sync") => Endpoint::SyncServices,
            ("GET", "/ledger") => Endpoint::Ledger,
            ("GET", "/audit") => Endpoint::Audit,
            ("GET", "/resellers/{login}/pricelist") => Endpoint::Pricelist(arg),
            ("GET", "/resellers" | "/plans" | "/upstream_accounts") => Endpoint::List(kind),
            ("POST", _) => Endpoint::Create(kind),
            ("GET", t) if t.ends_with("/markup") => Endpoint::GetMarkup(kind, arg),
            ("PUT", t) if t.ends_with("/markup") => Endpoint::PutMarkup(kind, arg),
            ("DELETE", t) if t.ends_with("/markup") => Endpoint::DeleteMarkup(kind, arg),
            ("GET", _) => Endpoint::Get(kind, arg),
            ("PUT", _) => Endpoint::Replace(kind, arg),
            ("DELETE", _) => Endpoint::Delete(kind, arg),
            _ => return Err(Unrouted::NotFound),
        })
    }

    /// Everything but health, metrics and the API's description needs a token.
    pub fn needs_token(&self) -> bool {
        !matches!(
            self,
            Endpoint::Healthz | Endpoint::Readyz | Endpoint::Metrics | Endpoint::OpenApi
        )
    }
}

/// Whether `method` changes something (needs a `write` token): everything but GET/HEAD.
pub fn changes(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use Endpoint::*;
        for (m, p, e) in [
            ("GET", "/healthz", Healthz),
            ("GET", "/readyz", Readyz),
            ("GET", "/metrics", Metrics),
            ("GET", "/openapi.json", OpenApi),
            ("GET", "/mappings", ExportMappings),
            ("POST", "/mappings", ApplyMappings),
            ("GET", "/services", Services),
            ("GET", "/orders", Orders),
            ("POST", "/orders/reconcile", Reconcile),
            ("POST", "/services/sync", SyncServices),
            ("GET", "/ledger", Ledger),
            ("GET", "/audit", Audit),
            ("GET", "/resellers", List(RecordKind::Reseller)),
            ("POST", "/plans", Create(RecordKind::Plan)),
            (
                "GET",
                "/upstream_accounts/acme-up",
                Get(RecordKind::UpstreamAccount, "acme-up".into()),
            ),
            ("PUT", "/plans/101", Replace(RecordKind::Plan, "101".into())),
            (
                "DELETE",
                "/resellers/a%40b",
                Delete(RecordKind::Reseller, "a@b".into()),
            ),
            (
                "PUT",
                "/resellers/acme/markup",
                PutMarkup(RecordKind::Reseller, "acme".into()),
            ),
            (
                "GET",
                "/plans/101/markup",
                GetMarkup(RecordKind::Plan, "101".into()),
            ),
            ("GET", "/resellers/acme/pricelist", Pricelist("acme".into())),
        ] {
            assert_eq!(Endpoint::route(m, p), Ok(e), "{m} {p}");
        }
        assert_eq!(
            Endpoint::route("GET", "/orders/reconcile"),
            Err(Unrouted::WrongMethod {
                allow: "POST".into()
            })
        );
        assert_eq!(
            Endpoint::route("DELETE", "/mappings"),
            Err(Unrouted::WrongMethod {
                allow: "GET, POST".into()
            })
        );
        assert_eq!(
            Endpoint::route("POST", "/plans/1"),
            Err(Unrouted::WrongMethod {
                allow: "GET, PUT, DELETE".into()
            })
        );
        for p in [
            "/",
            "/order",
            "/orders/",
            "/services/acme",
            "/admin/orders",
            "/resellers/",
            "/resellers/%ff",
            "/resellers/a%00",
            "/plans/1/markup/x",
        ] {
            assert_eq!(Endpoint::route("GET", p), Err(Unrouted::NotFound), "{p}");
        }
    }

    #[test]
    fn only_health_metrics_and_the_description_are_open() {
        for (template, methods) in ROUTES {
            let path = template
                .replace("{login}", "a")
                .replace("{name}", "a")
                .replace("{id}", "1");
            for m in *methods {
                let e = Endpoint::route(m, &path).unwrap();
                let open = ["/healthz", "/readyz", "/metrics", "/openapi.json"].contains(template);
                assert_eq!(e.needs_token(), !open, "{m} {template}");
            }
        }
    }
}
