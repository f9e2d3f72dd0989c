//! The sandbox's handlers for calls on one certificate: reissue, edit, delete, sync,
//! files, keys and renewal.

use super::State;
use crate::billmgr::{BmError, Element, Params};
use crate::sandbox::catalog::{self, money4};
use crate::sandbox::forms::{
    altnames, check_altname_count, check_approver, fake_pem, ok, on_off, period_param, slist,
    valid_email, Answer,
};
use crate::sandbox::{csr, dates};

impl State {
    pub(super) fn reissue_form(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        Ok(Element::doc()
            .child(Element::leaf("elid", c.id.to_string()))
            .child(Element::leaf("CN", &c.cn))
            .child(Element::leaf("altname", c.altnames.join(" ")))
            .child(Element::leaf("approver_email_1", &c.approver_email))
            .child(slist(
                "crt_type",
                &[
                    ("oldrequest", "Use the old request"),
                    ("manual", "Enter a new CSR"),
                    ("altname", "Change the domain list"),
                ],
            ))
            .child(slist("approver_method", &[("auth_email", "E-mail")])))
    }

    pub(super) fn reissue(&mut self, login: &str, p: &Params) -> Answer {
        let i = self.owned_param(login, p)?;
        let crt_type = p
            .get_nonempty("crt_type")
            .ok_or_else(|| BmError::missed("crt_type"))?;
        let (mut new_csr, mut new_alt) = (None, None);
        match crt_type {
            "oldrequest" => {}
            "manual" => {
                let csr = p
                    .get_nonempty("csr")
                    .ok_or_else(|| BmError::missed("csr"))?;
                if !csr::is_csr(csr) {
                    return Err(BmError::invalid("csr", "not a PEM certificate request"));
                }
                new_csr = Some(csr.to_string());
            }
            "altname" => {
                let alt = altnames(p, true)?.ok_or_else(|| BmError::missed("altname"))?;
                check_altname_count(&alt, self.certs[i].domainlimit)?;
                new_alt = Some(alt);
            }
            other => return Err(BmError::invalid("crt_type", other)),
        }
        let approver = p.get_nonempty("approver_email_1");
        if let Some(a) = approver {
            check_approver(&self.certs[i].cn, a, "approver_email_1")?;
        }
        let c = &mut self.certs[i];
        if let Some(csr) = new_csr {
            c.csr = Some(csr);
        }
        if let Some(alt) = new_alt {
            c.altnames = alt;
        }
        if let Some(a) = approver {
            c.approver_email = a.trim().to_ascii_lowercase();
        }
        c.status = 3;
        Ok(ok())
    }

    pub(super) fn edit(&mut self, login: &str, p: &Params) -> Answer {
        let i = self.owned_param(login, p)?;
        if !p.is_submit() {
            let c = &self.certs[i];
            let mut doc = Element::doc()
                .child(Element::leaf("elid", c.id.to_string()))
                .child(Element::leaf("CN", &c.cn))
                .child(Element::leaf("altname", c.altnames.join(" ")))
                .child(Element::leaf("pricelist", c.pricelist.to_string()))
                .child(Element::leaf("period", c.period.to_string()))
                .child(Element::leaf("approver_email", &c.approver_email))
                .child(Element::leaf("approver_method", "auth_email"))
                .child(Element::leaf(
                    "remoteid",
                    c.remoteid.clone().unwrap_or_default(),
                ))
                .child(Element::leaf("createdate", dates::ymd(c.createdate)))
                .child(Element::leaf("expiredate", dates::ymd(c.expiredate)))
                .child(Element::leaf("status", c.status.to_string()));
            for (k, v) in &c.contacts {
                doc.push(Element::leaf(k.as_str(), v.as_str()));
            }
            return Ok(doc);
        }
        let approver = p.get_nonempty("approver_email");
        if let Some(a) = approver {
            check_approver(&self.certs[i].cn, a, "approver_email")?;
        }
        let mut updates = Vec::new();
        for (k, v) in p.iter() {
            if k.starts_with("adm_") || k.starts_with("tech_") || k.starts_with("org_") {
                if k.ends_with("_email") && !v.is_empty() && !valid_email(v) {
                    return Err(BmError::invalid(k, v));
                }
                updates.push((k.to_string(), v.to_string()));
            }
        }
        let c = &mut self.certs[i];
        if let Some(a) = approver {
            c.approver_email = a.trim().to_ascii_lowercase();
        }
        c.contacts.extend(updates);
        if let Some(r) = p.get("remoteid") {
            c.remoteid = Some(r.to_string()).filter(|r| !r.is_empty());
            self.index_remoteid(i);
        }
        Ok(ok())
    }

    pub(super) fn delete(&mut self, login: &str, p: &Params) -> Answer {
        for i in self.owned_list(login, p)? {
            self.certs[i].deleted = true;
        }
        Ok(ok())
    }

    /// `certificate.sync` (toolbar): refresh the status from the CA. The sandbox's CA has
    /// nothing new to say; every id must be the account's.
    pub(super) fn sync(&mut self, login: &str, p: &Params) -> Answer {
        self.owned_list(login, p)?;
        Ok(ok())
    }

    /// `certificate.file&elid=ID`: the files of a certificate, as a list.
    pub(super) fn files(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        let mut doc = Element::doc();
        for (id, name) in [("crt", "certificate.crt"), ("ca", "ca-bundle.crt")] {
            doc.push(
                Element::new("elem")
                    .child(Element::leaf("id", id))
                    .child(Element::leaf("name", format!("{}-{name}", c.cn))),
            );
        }
        Ok(doc)
    }

    /// `certificate.file.edit&elid=ID[&file=crt|ca]`: a file's content; with `sok`, ok.
    pub(super) fn file_edit(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        if p.is_submit() {
            return Ok(ok());
        }
        let file = p.get_nonempty("file").unwrap_or("crt");
        Ok(Element::doc()
            .child(Element::leaf("elid", c.id.to_string()))
            .child(Element::leaf("file", file))
            .child(Element::leaf("content", fake_pem("CERTIFICATE", c.id))))
    }

    /// `sslkey.download&elid=ID`: the certificate's private key.
    pub(super) fn key_download(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        if c.key_deleted {
            return Err(BmError::missed("sslkey").value(c.id.to_string()));
        }
        Ok(Element::doc().child(Element::leaf("sslkey", fake_pem("PRIVATE KEY", c.id))))
    }

    /// `sslkey.edit&elid=ID`: the key's form; with `sok`, ok.
    pub(super) fn key_edit(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        if p.is_submit() {
            return Ok(ok());
        }
        Ok(Element::doc()
            .child(Element::leaf("elid", c.id.to_string()))
            .child(Element::leaf("key_stored", on_off(!c.key_deleted))))
    }

    /// `sslkey.delete&elid=ID[, ID]` (toolbar): forget the stored keys.
    pub(super) fn key_delete(&mut self, login: &str, p: &Params) -> Answer {
        for i in self.owned_list(login, p)? {
            self.certs[i].key_deleted = true;
        }
        Ok(ok())
    }

    pub(super) fn prolong(&mut self, login: &str, p: &Params) -> Answer {
        let i = self.owned_param(login, p)?;
        let (pricelist, domainlimit, expiredate) = {
            let c = &self.certs[i];
            (c.pricelist, c.domainlimit, c.expiredate)
        };
        let plan = catalog::plan(pricelist)
            .ok_or_else(|| BmError::invalid("pricelist", pricelist.to_string()))?;
        if !p.is_submit() {
            let mut periods = Element::new("slist").attr("name", "period");
            for (months, _) in plan.periods {
                let cost = plan.cost(*months, domainlimit).unwrap_or_default();
                periods.push(
                    Element::new("val")
                        .attr("key", months.to_string())
                        .attr("cost", money4(cost))
                        .text(format!(
                            "{months} months - {} {}",
                            money4(cost),
                            self.currency
                        )),
                );
            }
            return Ok(Element::doc()
                .child(Element::leaf("elid", self.certs[i].id.to_string()))
                .child(Element::leaf("expiredate", dates::ymd(expiredate)))
                .child(Element::leaf("currency", &self.currency))
                .child(periods));
        }
        let period = period_param(p, plan)?;
        let cost = plan
            .cost(period, domainlimit)
            .ok_or_else(|| BmError::invalid("period", period.to_string()))?;
        self.charge(login, cost)?;
        let c = &mut self.certs[i];
        c.expiredate = dates::add_months(expiredate, period);
        // As ISPsystem's own client reads it: `/doc/doc/newexpiredate`.
        Ok(ok()
            .child(Element::doc().child(Element::leaf("newexpiredate", dates::ymd(c.expiredate)))))
    }
}
