//! The console's read pages: services, orders (with reconciliation), ledger, audit log.

use super::*;

impl AdminApp {
    fn reseller_picker(&self, action: &str, chosen: &str, extra: &str) -> String {
        let mut b = format!(
            r#"<form method="get" action="{action}" class="inline"><label>reseller <select id="reseller" name="reseller">"#
        );
        for r in self.gateway.store().resellers() {
            let _ = write!(
                b,
                r#"<option value="{0}"{1}>{0}</option>"#,
                esc(&r.login),
                if r.login == chosen { " selected" } else { "" }
            );
        }
        let _ = write!(
            b,
            r#"</select></label>{extra}<button id="show">Show</button></form>"#
        );
        b
    }

    pub(super) async fn services_page(&self, live: &Live, reseller: &str) -> Response<Vec<u8>> {
        let mut b = self.reseller_picker("/console/services", reseller, "");
        if !reseller.is_empty() {
            let store = self.gateway.store().clone();
            let l = reseller.to_string();
            match crate::admin::read_store("services", move || store.services(Some(&l))).await {
                Ok(list) => {
                    b.push_str(r#"<table id="services"><tr><th>id</th><th>remoteid</th><th>plan</th><th>period</th><th>source</th><th>recorded</th><th>calls</th></tr>"#);
                    for s in list.iter().map(crate::admin::records::service_view) {
                        let _ = write!(
                            b,
                            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            s.upstream_id,
                            if s.deleted { " (deleted)" } else { "" },
                            esc(s.remoteid.as_deref().unwrap_or("—")),
                            esc(s.plan.as_deref().unwrap_or("—")),
                            esc(s.period.as_deref().unwrap_or("—")),
                            esc(&s.source),
                            esc(&s.recorded_at),
                            s.history.len()
                        );
                    }
                    b.push_str("</table>");
                }
                Err(_) => b.push_str(r#"<p class="error">The services could not be read.</p>"#),
            }
        }
        page(StatusCode::OK, "Services", Some(live), &Message::None, &b)
    }

    pub(super) async fn orders_page(&self, live: &Live, message: Message) -> Response<Vec<u8>> {
        let store = self.gateway.store().clone();
        let mut b = format!(
            r#"<form method="post" action="/console/orders/reconcile" class="inline"><input type="hidden" name="csrf" value="{}"><button id="reconcile">Reconcile pending orders now</button></form>"#,
            esc(&live.csrf)
        );
        match crate::admin::read_store("orders", move || store.orders()).await {
            Ok(orders) => {
                let view = crate::admin::records::orders_view(&orders, &Default::default());
                b.push_str(r#"<table id="orders"><tr><th>reseller</th><th>remoteid</th><th>state</th><th>certificate</th><th>plan</th><th>claimed</th><th>failure</th></tr>"#);
                let mut sorted: Vec<_> = view.orders.iter().collect();
                sorted.sort_by_key(|o| o.state != "pending");
                for o in sorted {
                    let _ = write!(
                        b,
                        r#"<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                        o.state,
                        esc(&o.reseller),
                        esc(&o.remoteid),
                        o.state,
                        o.upstream_id.map_or("—".to_string(), |i| i.to_string()),
                        esc(o.plan.as_deref().unwrap_or("—")),
                        esc(&o.claimed_at),
                        esc(o.failure.as_deref().unwrap_or(""))
                    );
                }
                b.push_str("</table>");
            }
            Err(_) => b.push_str(r#"<p class="error">The orders could not be read.</p>"#),
        }
        page(StatusCode::OK, "Orders", Some(live), &message, &b)
    }

    pub(super) async fn reconcile_now(&self, live: &Live) -> Response<Vec<u8>> {
        let settle = self.reconciler.settle();
        let message = match self.reconciler.reconcile_orders(settle).await {
            Ok(r) => Message::Ok(format!(
                "Reconciled: {} found, {} failed, {} still pending (orders claimed at least {} ms ago).",
                r.found.len(),
                r.failed.len(),
                r.left.len(),
                settle.as_millis()
            )),
            Err(e) => {
                tracing::error!(error = %e, "reconciliation from the console failed");
                Message::Error(format!("The reconciliation failed: {e}"))
            }
        };
        self.orders_page(live, message).await
    }

    pub(super) async fn ledger_page(
        &self,
        live: &Live,
        reseller: &str,
        month: &str,
    ) -> Response<Vec<u8>> {
        let month_now = crate::store::ledger::month_of(crate::store::audit::now_ms());
        let month = if month.is_empty() {
            month_now.as_str()
        } else {
            month
        };
        let extra = format!(
            r#"<label>month <input id="month" name="month" value="{}"></label>"#,
            esc(month)
        );
        let mut b = self.reseller_picker("/console/ledger", reseller, &extra);
        let mut message = Message::None;
        if !reseller.is_empty() {
            if !api::valid_month(month) {
                message = Message::Error(format!("'{month}' is not a month (YYYY-MM)."));
            } else {
                match self.ledger_text(reseller, month).await {
                    Ok(csv) => {
                        let _ = write!(
                            b,
                            r#"<p><a id="csv" href="/console/ledger.csv?reseller={}&amp;month={}">Download CSV</a></p><table id="ledger">"#,
                            enc(reseller),
                            enc(month)
                        );
                        for (i, line) in csv.lines().enumerate() {
                            let cell = if i == 0 { "th" } else { "td" };
                            b.push_str("<tr>");
                            for c in line.split(',') {
                                let _ = write!(b, "<{cell}>{}</{cell}>", esc(c.trim_matches('"')));
                            }
                            b.push_str("</tr>");
                        }
                        b.push_str("</table>");
                    }
                    Err(e) => message = Message::Error(e),
                }
            }
        }
        page(StatusCode::OK, "Ledger", Some(live), &message, &b)
    }

    async fn ledger_text(&self, reseller: &str, month: &str) -> Result<String, String> {
        if self.gateway.store().reseller(reseller).is_none() {
            return Err(format!("There is no reseller '{reseller}'."));
        }
        let store = self.gateway.store().clone();
        let l = reseller.to_string();
        let entries = crate::admin::read_store("ledger", move || store.ledger(Some(&l)))
            .await
            .map_err(|_| "The ledger could not be read.".to_string())?;
        Ok(crate::store::ledger::to_csv(&entries, month))
    }

    pub(super) async fn ledger_csv(&self, reseller: &str, month: &str) -> Response<Vec<u8>> {
        if !api::valid_month(month) {
            return crate::admin::text(StatusCode::BAD_REQUEST, "month must be YYYY-MM");
        }
        match self.ledger_text(reseller, month).await {
            Ok(csv) => {
                let mut r = crate::admin::reply(StatusCode::OK, "text/csv; charset=UTF-8", csv);
                let name = format!(
                    "attachment; filename=\"ledger-{}-{}.csv\"",
                    reseller.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
                    month
                );
                if let Ok(v) = http::HeaderValue::from_str(&name) {
                    r.headers_mut().insert(http::header::CONTENT_DISPOSITION, v);
                }
                secure(&mut r);
                r
            }
            Err(e) => crate::admin::text(StatusCode::NOT_FOUND, e),
        }
    }

    pub(super) async fn audit_page(&self, live: &Live, kind: &str, key: &str) -> Response<Vec<u8>> {
        let filter = crate::store::AuditFilter {
            kind: Some(kind.to_string()).filter(|k| !k.is_empty()),
            key: Some(key.to_string()).filter(|k| !k.is_empty()),
            limit: api::DEFAULT_AUDIT_ENTRIES,
            ..Default::default()
        };
        let mut b = String::new();
        let _ = write!(
            b,
            r#"<form method="get" action="/console/audit" class="inline"><label>kind <select name="kind"><option value="">any</option>{}</select></label><label>key <input name="key" value="{}"></label><button>Filter</button></form>"#,
            ["plan", "reseller", "upstream_account"]
                .iter()
                .map(|k| format!(
                    r#"<option{}>{k}</option>"#,
                    if *k == kind { " selected" } else { "" }
                ))
                .collect::<String>(),
            esc(key)
        );
        let store = self.gateway.store().clone();
        match crate::admin::read_store("audit log", move || store.audit(&filter)).await {
            Ok(entries) => {
                b.push_str(r#"<table id="audit"><tr><th>when</th><th>token</th><th>via</th><th>what</th><th>object</th><th>changes</th></tr>"#);
                for e in entries {
                    let _ = write!(
                        b,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td></tr>",
                        esc(&crate::store::ledger::timestamp(e.at_ms)),
                        esc(&e.actor),
                        esc(&e.via),
                        esc(&e.op),
                        esc(&e.kind),
                        esc(&e.key),
                        esc(&e.changes.join("; "))
                    );
                }
                b.push_str("</table>");
            }
            Err(_) => b.push_str(r#"<p class="error">The audit log could not be read.</p>"#),
        }
        page(StatusCode::OK, "Audit log", Some(live), &Message::None, &b)
    }
}
