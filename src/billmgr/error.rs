//! BILLmanager error documents: `<doc><error type=… object=…><msg>…</msg></error></doc>`.
//!
//! Every refusal the gateway (or the sandbox) makes is one [`BmError`]; [`BmError::to_doc`]
//! is the one place it becomes a document, rendered in the caller's format with HTTP 200.

use super::Element;

/// The `type` attribute of an error document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// Bad login, unknown or expired session, throttled.
    Auth,
    /// Function or field not allowed, foreign `elid`, `su` present.
    Access,
    /// A required field or object is missing.
    Missed,
    /// A field has an invalid value (unmapped plan, broken request).
    Value,
    /// The object exists already (an order retried with other parameters).
    Exists,
    /// An order's outcome is not known yet.
    Pending,
    /// The upstream is unreachable, timed out, or answered garbage.
    Upstream,
    /// Not enough money on the account (sandbox).
    Balance,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Access => "access",
            ErrorType::Missed => "missed",
            ErrorType::Value => "value",
            ErrorType::Exists => "exists",
            ErrorType::Pending => "pending",
            ErrorType::Upstream => "upstream",
            ErrorType::Balance => "balance",
        }
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One BILLmanager error. Messages are written for the reseller and never carry secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}({}): {msg}", object.as_deref().unwrap_or(""))]
pub struct BmError {
    pub kind: ErrorType,
    pub object: Option<String>,
    /// The offending value, shown back to the caller. Never set this to a secret.
    pub value: Option<String>,
    pub msg: String,
}

impl BmError {
    pub fn new(kind: ErrorType, msg: impl Into<String>) -> Self {
        BmError {
            kind,
            object: None,
            value: None,
            msg: msg.into(),
        }
    }

    pub fn object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    pub fn auth(msg: impl Into<String>) -> Self {
        BmError::new(ErrorType::Auth, msg)
    }

    pub fn access(object: &str, msg: impl Into<String>) -> Self {
        BmError::new(ErrorType::Access, msg).object(object)
    }

    pub fn missed(object: &str) -> Self {
        BmError::new(
            ErrorType::Missed,
            format!("The '{object}' field is required"),
        )
        .object(object)
    }

    pub fn invalid(object: &str, value: impl Into<String>) -> Self {
        BmError::new(
            ErrorType::Value,
            format!("The value of the '{object}' field is invalid"),
        )
        .object(object)
        .value(value)
    }

    pub fn upstream(msg: impl Into<String>) -> Self {
        BmError::new(ErrorType::Upstream, msg).object("upstream")
    }

    /// The error as a document tree, ready for [`super::render`].
    pub fn to_doc(&self, lang: &str) -> Element {
        let mut err = Element::new("error").attr("type", self.kind.as_str());
        if let Some(o) = &self.object {
            err = err.attr("object", o);
        }
        err = err.attr("lang", lang);
        if let Some(o) = &self.object {
            err.push(
                Element::new("param")
                    .attr("name", "object")
                    .attr("type", "msg")
                    .attr("msg", o)
                    .text(o),
            );
        }
        if let Some(v) = &self.value {
            err.push(Element::new("param").attr("name", "value").text(v));
        }
        err.push(Element::new("msg").text(&self.msg));
        Element::new("doc").child(err)
    }

    /// Read an error back from a parsed document (`doc/error`), if it is one.
    pub fn from_doc(doc: &Element) -> Option<BmError> {
        let e = doc.find("error")?;
        // json keeps attributes apart ("$type"); bjson folds them into plain keys.
        let field = |name: &str| {
            e.get_attr(name)
                .or_else(|| e.find(name).and_then(|c| c.text.as_deref()))
        };
        let kind = match field("type").unwrap_or("") {
            "auth" => ErrorType::Auth,
            "access" => ErrorType::Access,
            "missed" => ErrorType::Missed,
            "exists" => ErrorType::Exists,
            "pending" => ErrorType::Pending,
            "upstream" => ErrorType::Upstream,
            "balance" => ErrorType::Balance,
            _ => ErrorType::Value,
        };
        Some(BmError {
            kind,
            object: field("object").map(str::to_string),
            value: e
                .find_all("param")
                .find(|c| c.child_text("name") == Some("value"))
                .and_then(|c| c.text.clone()),
            msg: e.child_text("msg").unwrap_or_default().to_string(),
        })
    }
}
