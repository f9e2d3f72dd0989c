//! Editing plans and resellers in the console, with the price preview beside the form.

use super::*;

pub(super) fn markup_text(m: &Option<crate::store::Markup>) -> String {
    match m {
        None => "—".to_string(),
        Some(m) => format!("{} % + {} (round {})", m.percent, m.fixed, m.round_to),
    }
}

/// The markup form fields as the API's JSON (`null` when all three are empty).
pub(super) fn markup_json(form: &Form) -> Value {
    let parts: Vec<(&str, &str)> = ["percent", "fixed", "round_to"]
        .iter()
        .map(|k| (*k, field(form, &format!("markup_{k}")).trim()))
        .collect();
    if parts.iter().all(|(_, v)| v.is_empty()) {
        return Value::Null;
    }
    let mut m = serde_json::Map::new();
    for (k, v) in parts {
        if !v.is_empty() {
            m.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(m)
}

/// `101, 102` → ids; anything else names the field.
pub(super) fn id_list(field_name: &str, text: &str) -> Result<Vec<u64>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u64>().map_err(|_| ApiError {
                status: StatusCode::BAD_REQUEST,
                error: "not a list of plan ids such as 101, 102".into(),
                field: Some(field_name.into()),
                value: Some(t.to_string()),
            })
        })
        .collect()
}

/// `201=3034, 202=3035` → add-ons.
pub(super) fn addon_list(text: &str) -> Result<Vec<Value>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let bad = || ApiError {
                status: StatusCode::BAD_REQUEST,
                error: "not a list of add-ons such as 201=3034 (local id = upstream id)".into(),
                field: Some("addons".into()),
                value: Some(t.to_string()),
            };
            let (a, b) = t.split_once('=').ok_or_else(bad)?;
            let id: u64 = a.trim().parse().map_err(|_| bad())?;
            let up: u64 = b.trim().parse().map_err(|_| bad())?;
            Ok(json!({"id": id, "upstream_id": up}))
        })
        .collect()
}

pub(super) fn error_text(e: &ApiError) -> String {
    let mut t = e.error.clone();
    if let Some(f) = &e.field {
        let _ = write!(t, " (field {f}");
        if let Some(v) = &e.value {
            let _ = write!(t, ", value '{v}'");
        }
        t.push(')');
    }
    match e.status {
        StatusCode::PRECONDITION_FAILED => format!(
            "Not saved: someone changed this record since you opened it. Its current state is shown; make your change again. ({t})"
        ),
        _ => format!("Not saved: {t}"),
    }
}

/// One plan of a price list document as the reseller sees it.
struct PricedPlan {
    id: String,
    name: String,
    periods: Vec<(String, String)>,
    addons: Vec<(String, String)>,
}

fn priced_plans(doc: &Element) -> Vec<PricedPlan> {
    let periods = |e: &Element| -> Vec<(String, String)> {
        e.find("price")
            .map(|p| {
                p.find_all("period")
                    .map(|x| {
                        (
                            x.text.clone().unwrap_or_default(),
                            x.get_attr("cost").unwrap_or("?").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    doc.find_all("pricelist")
        .map(|p| PricedPlan {
            id: p.child_text("id").unwrap_or("?").to_string(),
            name: p.child_text("name").unwrap_or("").to_string(),
            periods: periods(p),
            addons: p
                .find_all("addon")
                .map(|a| {
                    let cost = periods(a)
                        .into_iter()
                        .map(|(_, c)| c)
                        .collect::<Vec<_>>()
                        .join(" / ");
                    (a.child_text("id").unwrap_or("?").to_string(), cost)
                })
                .collect(),
        })
        .collect()
}
impl AdminApp {
    pub(super) fn home(&self, live: &Live, message: Message) -> Response<Vec<u8>> {
        let store = self.gateway.store();
        let mut b = String::from(
            r#"<section><h3>Plans</h3><table id="plans"><tr><th>id</th><th>name</th><th>upstream id</th><th>markup</th><th>add-ons</th></tr>"#,
        );
        for p in store.plans() {
            let addons: Vec<String> = p
                .addons
                .iter()
                .map(|a| format!("{}={}", a.id, a.upstream_id))
                .collect();
            let _ = write!(
                b,
                r#"<tr><td><a id="plan-{id}" href="/console/plans/{id}">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(p.name.as_deref().unwrap_or("")),
                p.upstream_id,
                esc(&markup_text(&p.markup)),
                esc(&addons.join(", ")),
                id = p.id
            );
        }
        b.push_str(r#"</table></section><section><h3>Resellers</h3><table id="resellers"><tr><th>login</th><th>upstream account</th><th>plans</th><th>own markup</th></tr>"#);
        for r in store.resellers() {
            let plans: Vec<String> = r.plans.iter().map(u64::to_string).collect();
            let _ = write!(
                b,
                r#"<tr><td><a id="reseller-{}" href="/console/resellers/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&r.login),
                enc(&r.login),
                esc(&r.login),
                esc(&r.upstream_account),
                plans.join(", "),
                esc(&markup_text(&r.markup))
            );
        }
        b.push_str("</table></section>");
        page(
            StatusCode::OK,
            "Plans and resellers",
            Some(live),
            &message,
            &b,
        )
    }

    /// The price list `login` would import, as a table, or why it cannot be shown.
    async fn preview_html(&self, login: &str, only_plan: Option<&str>) -> String {
        let body = match self.gateway.preview_pricelist(login, Format::Xml).await {
            Ok(b) => b,
            Err(r) => {
                return format!(
                    r#"<p class="error">The price list of {} could not be read: {}</p>"#,
                    esc(login),
                    esc(&r.error().msg)
                )
            }
        };
        let doc = match crate::billmgr::parse(&body, Format::Xml) {
            Ok(d) => d,
            Err(_) => return r#"<p class="error">The price list could not be read.</p>"#.into(),
        };
        if let Some(e) = crate::billmgr::BmError::from_doc(&doc) {
            return format!(
                r#"<p class="error">The upstream refused: {}</p>"#,
                esc(&e.msg)
            );
        }
        let mut t = String::from(
            r#"<table class="preview"><tr><th>plan</th><th>name</th><th>prices</th><th>add-ons</th></tr>"#,
        );
        let mut rows = 0;
        for p in priced_plans(&doc) {
            if only_plan.is_some_and(|id| id != p.id) {
                continue;
            }
            rows += 1;
            let prices: Vec<String> = p
                .periods
                .iter()
                .map(|(label, cost)| {
                    format!(
                        r#"<span class="price">{}: <b>{}</b></span>"#,
                        esc(label),
                        esc(cost)
                    )
                })
                .collect();
            let addons: Vec<String> = p
                .addons
                .iter()
                .map(|(id, cost)| format!("{}: {}", esc(id), esc(cost)))
                .collect();
            let _ = write!(
                t,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.id),
                esc(&p.name),
                prices.join(" "),
                addons.join(", ")
            );
        }
        if rows == 0 {
            return "<p>No plan of this reseller is in its price list.</p>".into();
        }
        t.push_str("</table>");
        t
    }

    pub(super) async fn plan_page(
        &self,
        live: &Live,
        id: &str,
        message: Message,
        form: Option<&Form>,
    ) -> Response<Vec<u8>> {
        let store = self.gateway.store();
        let Some(plan) = id.parse().ok().and_then(|i| store.plan(i)) else {
            return page(
                StatusCode::NOT_FOUND,
                "No such plan",
                Some(live),
                &Message::Error(format!("There is no plan {id}.")),
                "",
            );
        };
        let etag = store.etag(RecordKind::Plan, id).unwrap_or_default();
        let [percent, fixed, round_to] = markup_fields(plan.markup);
        let addons: Vec<String> = plan
            .addons
            .iter()
            .map(|a| format!("{}={}", a.id, a.upstream_id))
            .collect();
        // After a refused save, the person's own input stays in the form.
        let val = |name: &str, current: String| -> String {
            esc(&form.map_or(current, |f| field(f, name).to_string()))
        };
        let mut b = format!(
            r#"<div class="edit"><form method="post" action="/console/plans/{id}" class="record">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="etag" value="{etag}">
<label>upstream id <input id="upstream_id" name="upstream_id" value="{up}"></label>
<label>name <input id="name" name="name" value="{name}"></label>
<fieldset><legend>markup (empty: none)</legend>
<label>percent <input id="markup_percent" name="markup_percent" value="{pc}"></label>
<label>fixed <input id="markup_fixed" name="markup_fixed" value="{fx}"></label>
<label>round to <input id="markup_round_to" name="markup_round_to" value="{rt}"></label></fieldset>
<label>add-ons (local=upstream, …) <input id="addons" name="addons" value="{ad}"></label>
<button id="save">Save</button></form>
<aside id="preview"><h3>Price preview</h3>"#,
            id = plan.id,
            csrf = esc(&live.csrf),
            etag = esc(&etag),
            up = val("upstream_id", plan.upstream_id.to_string()),
            name = val("name", plan.name.clone().unwrap_or_default()),
            pc = val("markup_percent", percent),
            fx = val("markup_fixed", fixed),
            rt = val("markup_round_to", round_to),
            ad = val("addons", addons.join(", ")),
        );
        let users: Vec<_> = store
            .resellers()
            .into_iter()
            .filter(|r| r.has_plan(plan.id))
            .collect();
        if users.is_empty() {
            b.push_str("<p>No reseller has this plan.</p>");
        }
        for r in users {
            let _ = write!(
                b,
                r#"<h4>as {} sees it{}</h4>"#,
                esc(&r.login),
                if r.markup.is_some() {
                    " (its own markup replaces the plan's)"
                } else {
                    ""
                }
            );
            b.push_str(
                &self
                    .preview_html(&r.login, Some(&plan.id.to_string()))
                    .await,
            );
        }
        b.push_str("</aside></div>");
        let status = match &message {
            Message::Error(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        page(
            status,
            &format!("Plan {}", plan.id),
            Some(live),
            &message,
            &b,
        )
    }

    pub(super) async fn save_plan(
        &self,
        live: &Live,
        actor: &Actor,
        id: &str,
        form: &Form,
    ) -> Response<Vec<u8>> {
        let built = (|| {
            let up: u64 = field(form, "upstream_id")
                .trim()
                .parse()
                .map_err(|_| ApiError {
                    status: StatusCode::BAD_REQUEST,
                    error: "not a plan id".into(),
                    field: Some("upstream_id".into()),
                    value: Some(field(form, "upstream_id").to_string()),
                })?;
            let name = field(form, "name").trim();
            let mut body = json!({
                "upstream_id": up,
                "addons": addon_list(field(form, "addons"))?,
            });
            if !name.is_empty() {
                body["name"] = Value::String(name.to_string());
            }
            let m = markup_json(form);
            if !m.is_null() {
                body["markup"] = m;
            }
            api::plan_from_body(body.to_string().as_bytes(), Some(id))
        })();
        let result = match built {
            Ok(plan) => {
                self.commit(actor, Edit::PutPlan(plan), field(form, "etag"))
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(msg) => self.plan_page(live, id, Message::Ok(msg), None).await,
            Err(e) => {
                let keep = (e.status != StatusCode::PRECONDITION_FAILED).then_some(form);
                self.plan_page(live, id, Message::Error(error_text(&e)), keep)
                    .await
            }
        }
    }

    /// One audited edit from the console; answers the message to show.
    async fn commit(&self, actor: &Actor, edit: Edit, etag: &str) -> Result<String, ApiError> {
        let store = self.gateway.store().clone();
        let a = actor.clone();
        let tag = etag.to_string();
        let changes = tokio::task::spawn_blocking(move || {
            store.edit(&a, edit, Some(tag.as_str()).filter(|t| !t.is_empty()))
        })
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the write task failed"))?
        .map_err(ApiError::store)?;
        tracing::info!(token = %actor.name, via = "console", changes = changes.len(), "admin change");
        Ok(if changes.is_empty() {
            "Saved: nothing changed.".into()
        } else {
            let lines: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
            format!("Saved: {}", lines.join("; "))
        })
    }

    pub(super) async fn reseller_page(
        &self,
        live: &Live,
        login: &str,
        message: Message,
        form: Option<&Form>,
    ) -> Response<Vec<u8>> {
        let store = self.gateway.store();
        let Some(r) = store.reseller(login) else {
            return page(
                StatusCode::NOT_FOUND,
                "No such reseller",
                Some(live),
                &Message::Error(format!("There is no reseller '{login}'.")),
                "",
            );
        };
        let etag = store.etag(RecordKind::Reseller, login).unwrap_or_default();
        let [percent, fixed, round_to] = markup_fields(r.markup);
        let val = |name: &str, current: String| -> String {
            esc(&form.map_or(current, |f| field(f, name).to_string()))
        };
        let plans: Vec<String> = r.plans.iter().map(u64::to_string).collect();
        let mut b = format!(
            r#"<div class="edit"><form method="post" action="/console/resellers/{enc}" class="record">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="etag" value="{etag}">
<label>upstream account <input id="upstream_account" name="upstream_account" value="{ua}"></label>
<label>plans (ids, comma-separated) <input id="plans" name="plans" value="{pl}"></label>
<fieldset><legend>own markup (replaces the plans' markups; empty: none)</legend>
<label>percent <input id="markup_percent" name="markup_percent" value="{pc}"></label>
<label>fixed <input id="markup_fixed" name="markup_fixed" value="{fx}"></label>
<label>round to <input id="markup_round_to" name="markup_round_to" value="{rt}"></label></fieldset>
<button id="save">Save</button></form>
<aside id="preview"><h3>Price preview: what {login} imports</h3>"#,
            enc = enc(login),
            login = esc(login),
            csrf = esc(&live.csrf),
            etag = esc(&etag),
            ua = val("upstream_account", r.upstream_account.clone()),
            pl = val("plans", plans.join(", ")),
            pc = val("markup_percent", percent),
            fx = val("markup_fixed", fixed),
            rt = val("markup_round_to", round_to),
        );
        b.push_str(&self.preview_html(login, None).await);
        b.push_str("</aside></div>");
        let status = match &message {
            Message::Error(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        page(
            status,
            &format!("Reseller {login}"),
            Some(live),
            &message,
            &b,
        )
    }

    pub(super) async fn save_reseller(
        &self,
        live: &Live,
        actor: &Actor,
        login: &str,
        form: &Form,
    ) -> Response<Vec<u8>> {
        let store = self.gateway.store().clone();
        let built = (|| {
            let mut body = json!({
                "upstream_account": field(form, "upstream_account").trim(),
                "plans": id_list("plans", field(form, "plans"))?,
            });
            let m = markup_json(form);
            if !m.is_null() {
                body["markup"] = m;
            }
            api::reseller_from_body(&store, body.to_string().as_bytes(), Some(login))
        })();
        let result = match built {
            Ok(r) => {
                self.commit(actor, Edit::PutReseller(r), field(form, "etag"))
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(msg) => {
                self.reseller_page(live, login, Message::Ok(msg), None)
                    .await
            }
            Err(e) => {
                let keep = (e.status != StatusCode::PRECONDITION_FAILED).then_some(form);
                self.reseller_page(live, login, Message::Error(error_text(&e)), keep)
                    .await
            }
        }
    }
}

/// A markup's percent, fixed amount and rounding as the form shows them (empty: none).
fn markup_fields(m: Option<crate::store::Markup>) -> [String; 3] {
    match m {
        Some(m) => [
            m.percent.to_string(),
            m.fixed.to_string(),
            m.round_to.to_string(),
        ],
        None => Default::default(),
    }
}
