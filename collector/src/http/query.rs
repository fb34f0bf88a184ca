//! Query strings, parsed into typed structs; a parameter that does not parse is a JSON
//! [`ApiError`] naming it (axum's own extractor answers in plain text).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// The query string as `T`, or a 400 naming the parameter at fault.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Parses a raw query string; the error names the parameter when serde says which.
fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let field = if field.is_empty() || field == "." {
            "query".to_owned()
        } else {
            field
        };
        ApiError::bad_request(&field, &e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[derive(Debug, serde::Deserialize)]
    struct Page {
        limit: Option<u32>,
    }

    #[test]
    fn a_parameter_that_does_not_parse_is_named() {
        let e = parse::<Page>("limit=abc").unwrap_err();
        assert_eq!(e.field, "limit");
        assert!(e.message.contains("invalid digit"), "{}", e.message);
        assert_eq!(parse::<Page>("limit=7").unwrap().limit, Some(7));
        assert_eq!(parse::<Page>("").unwrap().limit, None);
    }
}
