//! Typed extractors: a handler takes its body, path ids and query already parsed into the
//! types the document describes, and a malformed one is a 400 `BAD_REQUEST` whose message names
//! the field at fault, in the JSON shape of every error (the framework's own rejections say
//! less, and in plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use seckill_protocol::buy::BuyBody;
use seckill_protocol::json::plain_integer;
use serde::de::DeserializeOwned;

use crate::error::{naming_the_field, parse_json, ApiError};

/// The whole body; one over the limit keeps the framework's 413 (made JSON by `json_errors`).
async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, Response> {
    Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)
}

/// A JSON body parsed into `T`; an empty or malformed one is a 400 naming the field.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let bytes = body_bytes(request, state).await?;
        parse_json(&bytes).map(JsonBody).map_err(IntoResponse::into_response)
    }
}

/// A JSON body parsed into `T`, or `T::default()` when there is no body (zero bytes). Only
/// whitespace is not JSON, so it is a 400 like any other malformed body.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let bytes = body_bytes(request, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_json(&bytes).map(OptionalJsonBody).map_err(IntoResponse::into_response)
    }
}

/// The buy body, read by the rules the edge shares ([`BuyBody::parse`]). A body that breaks
/// one is kept as its 400 for the handler, which answers the caller's identity first.
#[derive(Debug)]
pub struct BuyJson(pub Result<BuyBody, ApiError>);

impl<S: Send + Sync> FromRequest<S> for BuyJson {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let bytes = body_bytes(request, state).await?;
        Ok(BuyJson(BuyBody::parse(&bytes).map_err(|bad| ApiError::BadRequest(bad.0))))
    }
}

/// A query string parsed into `T` (absent: every field absent); a malformed one is a 400
/// naming the parameter.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        // `limit=3.0` is an integer to JSON Schema, so to the document: read it as 3.
        let plain: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form_urlencoded::parse(query.as_bytes()).map(|(name, value)| {
                let value = plain_integer(&value).into_owned();
                (name, value)
            }))
            .finish();
        let pairs = form_urlencoded::parse(plain.as_bytes());
        serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs))
            .map(QueryParams)
            .map_err(|e| naming_the_field("invalid query", e))
    }
}

/// Parses a positive id, or a 400 saying `what` it should have been.
fn positive_id(raw: &str, what: &str) -> Result<u64, ApiError> {
    plain_integer(raw)
        .parse::<u64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::BadRequest(format!("{what} must be a positive integer, got {raw:?}")))
}

/// Declares an extractor of the route's one path parameter as a positive id.
macro_rules! path_id {
    ($(#[doc = $doc:literal])* $name:ident, $what:literal) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub u64);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                let Path(raw) = Path::<String>::from_request_parts(parts, state)
                    .await
                    .map_err(|e| ApiError::BadRequest(e.body_text()))?;
                positive_id(&raw, $what).map($name)
            }
        }
    };
}

path_id!(
    /// `{id}` of `/admin/products/{id}/...`: a product id, 1 or more.
    ProductId,
    "product id"
);
path_id!(
    /// `{id}` of `/admin/dead-letters/{id}/...`: a dead letter's id, 1 or more.
    DeadLetterId,
    "dead-letter id"
);

/// A positive id in a query parameter, or a 400 naming the parameter.
pub fn query_id(raw: Option<u64>, name: &str) -> Result<Option<u64>, ApiError> {
    match raw {
        Some(0) => Err(ApiError::BadRequest(format!("{name} must be a positive integer, got 0"))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Flags {
        dry_run: Option<bool>,
        wait_secs: Option<u64>,
    }

    async fn query(uri: &str) -> Result<Flags, String> {
        let (mut parts, ()) = axum::http::Request::builder().uri(uri).body(()).unwrap().into_parts();
        QueryParams::<Flags>::from_request_parts(&mut parts, &()).await.map(|q| q.0).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn a_query_parses_into_its_type_and_a_bad_value_names_its_parameter() {
        assert_eq!(query("/x").await, Ok(Flags::default()));
        assert_eq!(query("/x?dryRun=true&waitSecs=5").await, Ok(Flags { dry_run: Some(true), wait_secs: Some(5) }));
        assert_eq!(query("/x?waitSecs=5.0").await, Ok(Flags { dry_run: None, wait_secs: Some(5) }));
        let bad = query("/x?dryRun=yes").await.unwrap_err();
        assert!(bad.contains("dryRun"), "{bad}");
        let bad = query("/x?waitSecs=-1").await.unwrap_err();
        assert!(bad.contains("waitSecs"), "{bad}");
    }

    #[tokio::test]
    async fn an_empty_optional_body_is_the_default_and_a_bad_one_is_a_400() {
        let request = |body: &'static str| axum::http::Request::builder().body(Body::from(body)).unwrap();
        let OptionalJsonBody(empty) = OptionalJsonBody::<Flags>::from_request(request(""), &()).await.unwrap();
        assert_eq!(empty, Flags::default());
        let blank = OptionalJsonBody::<Flags>::from_request(request(" \n"), &()).await.unwrap_err();
        assert_eq!(blank.status(), 400);
        let bad = OptionalJsonBody::<Flags>::from_request(request(r#"{"waitSecs": "x"}"#), &()).await.unwrap_err();
        assert_eq!(bad.status(), 400);
    }

    #[test]
    fn ids_are_positive_integers() {
        assert_eq!(positive_id("7", "product id").unwrap(), 7);
        assert_eq!(positive_id("7.0", "product id").unwrap(), 7);
        for bad in ["0", "-1", "x", "1.5", "", "0.0"] {
            let e = positive_id(bad, "product id").unwrap_err().to_string();
            assert!(e.contains("product id must be a positive integer"), "{e}");
        }
        assert!(query_id(Some(0), "productId").is_err());
        assert_eq!(query_id(Some(3), "productId").unwrap(), Some(3));
    }
}
