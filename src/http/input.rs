//! The body of an auth endpoint: a JSON object or an HTML form, read with a
//! hard size cap before any parsing or hashing.
//!
//! Anything that is neither JSON nor a urlencoded form but that a browser
//! could send cross-site (`text/plain`, `multipart/form-data`, no type) is
//! read as an empty form, so it fails the form's CSRF check: a cross-site
//! page cannot forge a JSON login. Other types are 415.
//!
//! Handlers get a body only through the data guards in [`super::guards`],
//! which apply the CSRF rule to it.

use rocket::data::{Data, ToByteUnit};
use rocket::http::ContentType;
use rocket::Request;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::envelope::is_json_type;
use super::error::ApiError;
use crate::core::{msg, FieldErrors};

/// Largest body an auth endpoint reads.
pub const BODY_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Str(String),
    Bool(bool),
    Null,
    /// A whole number (JSON).
    Int(i64),
    /// A list of strings (JSON).
    List(Vec<String>),
    Other,
}

/// A parsed auth-endpoint body.
#[derive(Debug, Clone)]
pub struct Input {
    /// True for an HTML form (checked against its `csrf_token` field).
    pub form: bool,
    fields: Vec<(String, Field)>,
}

impl Input {
    fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A field that is present and a string; `None` for absent, null or
    /// any other JSON type.
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.field(name) {
            Some(Field::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A text field; absent or null reads as empty. A JSON value that is not
    /// a string is a 400 with FS's "Input not appropriate" message.
    pub fn text(&self, name: &str) -> Result<&str, ApiError> {
        match self.field(name) {
            None | Some(Field::Null) => Ok(""),
            Some(Field::Str(s)) => Ok(s),
            Some(_) => Err(ApiError::Validation(FieldErrors::one(
                name,
                msg::NOT_A_STRING,
            ))),
        }
    }

    /// A whole number, given as a JSON number or as text; absent: `None`.
    pub fn number(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let bad = || ApiError::Validation(FieldErrors::one(name, "Not a valid integer value."));
        match self.field(name) {
            None | Some(Field::Null) => Ok(None),
            Some(Field::Int(n)) => Ok(Some(*n)),
            Some(Field::Str(s)) if s.trim().is_empty() => Ok(None),
            Some(Field::Str(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// Whether a list was given: a JSON list (even empty) or a non-empty
    /// form field. `None` when absent, null, or an empty form field.
    pub fn list_given(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.field(name) {
            None | Some(Field::Null) => Ok(None),
            Some(Field::Str(s)) if s.trim().is_empty() => Ok(None),
            _ => self.list(name).map(Some),
        }
    }

    /// A list of names: a JSON list of strings, or comma-separated text (a
    /// form); absent: empty.
    pub fn list(&self, name: &str) -> Result<Vec<String>, ApiError> {
        match self.field(name) {
            None | Some(Field::Null) => Ok(Vec::new()),
            Some(Field::List(l)) => Ok(l.clone()),
            Some(Field::Str(s)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect()),
            Some(_) => Err(ApiError::Validation(FieldErrors::one(
                name,
                "A list of names.",
            ))),
        }
    }

    /// Several text fields at once: every field that is not a string is
    /// reported (in the order asked), as FS's forms do.
    pub fn texts<const N: usize>(&self, names: [&str; N]) -> Result<[&str; N], ApiError> {
        let mut errors = FieldErrors::default();
        let values = names.map(|name| match self.text(name) {
            Ok(v) => v,
            Err(_) => {
                errors.add(name, msg::NOT_A_STRING);
                ""
            }
        });
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// The `remember` flag: false, `"false"`, `""` and absence are false,
    /// anything else is true.
    pub fn remember(&self) -> bool {
        match self.field("remember") {
            None | Some(Field::Null) | Some(Field::Bool(false)) => false,
            Some(Field::Str(s)) => !(s.is_empty() || s == "false"),
            Some(_) => true,
        }
    }

    /// A form's `csrf_token` field, if it has a non-empty one.
    pub fn csrf_field(&self) -> Option<&str> {
        if !self.form {
            return None;
        }
        match self.field("csrf_token") {
            Some(Field::Str(s)) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        }
    }
}

/// A JSON object whose values are kept flat: strings, booleans and null as
/// they are, anything else as "not a string". Duplicate keys are refused.
struct FlatObject(Vec<(String, Field)>);

impl<'de> serde::Deserialize<'de> for FlatObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FlatObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FlatObject, A::Error> {
                let mut out: Vec<(String, Field)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate field {key:?}")));
                    }
                    let value = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(s) => Field::Str(s),
                        serde_json::Value::Bool(b) => Field::Bool(b),
                        serde_json::Value::Null => Field::Null,
                        serde_json::Value::Number(n) if n.is_i64() => {
                            Field::Int(n.as_i64().unwrap_or_default())
                        }
                        serde_json::Value::Array(items)
                            if items.iter().all(serde_json::Value::is_string) =>
                        {
                            Field::List(
                                items
                                    .into_iter()
                                    .filter_map(|v| v.as_str().map(str::to_owned))
                                    .collect(),
                            )
                        }
                        _ => Field::Other,
                    };
                    out.push((key, value));
                }
                Ok(FlatObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_json(body: &[u8]) -> Result<Vec<(String, Field)>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "The request body must be a JSON object.".into(),
        ));
    }
    serde_json::from_slice::<FlatObject>(body)
        .map(|o| o.0)
        .map_err(|e| ApiError::BadRequest(format!("The request body is not valid JSON: {e}.")))
}

fn parse_form(body: &[u8]) -> Result<Vec<(String, Field)>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("The form is not valid UTF-8.".into()))?;
    let decode = |s: &str| -> Result<String, ApiError> {
        let plus = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| ApiError::BadRequest("The form is not valid UTF-8.".into()))
    };
    let mut out: Vec<(String, Field)> = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k)?;
        // As WTForms: the first value of a repeated field wins.
        if !out.iter().any(|(existing, _)| *existing == key) {
            out.push((key, Field::Str(decode(v)?)));
        }
    }
    Ok(out)
}

impl Input {
    /// Reads the body of `req`: JSON object or form, at most [`BODY_LIMIT`]
    /// bytes, within `body_timeout_ms`.
    pub async fn read(req: &Request<'_>, data: Data<'_>) -> Result<Input, ApiError> {
        let declared = req
            .headers()
            .get_one("Content-Length")
            .and_then(|l| l.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        enum Kind {
            Json,
            Form,
            EmptyForm,
        }
        let kind = match req.content_type() {
            Some(ct) if is_json_type(ct) => Kind::Json,
            Some(ct) if ct == &ContentType::Form => Kind::Form,
            None => Kind::EmptyForm,
            Some(ct) if ct == &ContentType::Text || ct.media_type().sub() == "form-data" => {
                Kind::EmptyForm
            }
            Some(_) => return Err(ApiError::UnsupportedMediaType),
        };
        // A client that trickles its body (or stops) does not hold the
        // request past the configured time: 408.
        let limit = super::credentials::security(req).config.body_timeout();
        let body = tokio::time::timeout(limit, data.open(BODY_LIMIT.bytes()).into_bytes())
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map_err(|e| {
                ApiError::BadRequest(format!("The request body could not be read: {e}."))
            })?;
        if !body.is_complete() {
            return Err(ApiError::PayloadTooLarge);
        }
        let (form, fields) = match kind {
            Kind::Json => (false, parse_json(&body)?),
            Kind::Form => (true, parse_form(&body)?),
            Kind::EmptyForm => (true, Vec::new()),
        };
        Ok(Input { form, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_only_and_no_duplicates() {
        assert!(parse_json(br#"{"email":"a","remember":true,"x":null}"#).is_ok());
        assert!(parse_json(br#"["a"]"#).is_err());
        assert!(parse_json(br#""a""#).is_err());
        assert!(parse_json(br#"{"a":"1","a":"2"}"#).is_err());
        assert!(parse_json(br#"{"a":"1""#).is_err());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(parse_json(deep.as_bytes()).is_err());
    }

    #[test]
    fn fields_and_remember() {
        let i = Input {
            form: false,
            fields: parse_json(br#"{"email":"a@b.c","password":5,"remember":"false"}"#).unwrap(),
        };
        assert_eq!(i.text("email").unwrap(), "a@b.c");
        assert_eq!(i.text("missing").unwrap(), "");
        assert!(i.text("password").is_err());
        assert!(!i.remember());
        let i = Input {
            form: true,
            fields: parse_form(b"email=a%40b.c&remember=y&email=other&next=%2Fx+y").unwrap(),
        };
        assert_eq!(i.text("email").unwrap(), "a@b.c");
        assert_eq!(i.text("next").unwrap(), "/x y");
        assert!(i.remember());
    }
}
