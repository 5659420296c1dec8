//! The OpenAPI 3 document of the origin's API and the Swagger UI that shows it.
//!
//! The document is not written by hand: each handler carries its own `#[utoipa::path]`
//! (method, path, parameters, bodies, every answer with its error codes), and
//! [`crate::http::routes()`] registers handlers with `utoipa_axum::routes!`, which adds the route
//! and its description in one step, so a route cannot be served without being described.
//! [`ApiDoc`] adds what is common: title, tags, the three credentials and the error body.
//!
//! `GET /admin/openapi.json` serves the document; `/admin/docs/` the Swagger UI, whose files are
//! compiled into the binary (`utoipa-swagger-ui`'s `vendored` feature): nothing is fetched at
//! build time or by the browser. Both are public, like the console page: they hold no data,
//! and every call the UI makes still needs its credentials.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, ObjectBuilder, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::{ErrorBody, EDGE_SECRET_HEADER};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/admin/openapi.json";
/// Where the Swagger UI is served (`/admin/docs` redirects here).
pub const SWAGGER_UI_PATH: &str = "/admin/docs/";

/// Security scheme names the handlers' `security(...)` refer to.
pub const ADMIN_TOKEN: &str = "adminToken";
pub const IDENTITY: &str = "identity";
pub const EDGE_SECRET: &str = "edgeSecret";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "seckill origin API",
        description = "The flash-sale origin behind the edge. Shop routes (`/api/*`) take the edge \
            secret and a signed identity token; buyers reach them through the edge, which answers \
            much of the traffic itself (sold out, already bought, rate limited, queued) with the \
            same bodies. Admin routes (`/admin/*`) take the admin token. Every error answer is \
            `{\"code\", \"message\"}` (`ErrorBody`)."
    ),
    tags(
        (name = "shop", description = "What buyers call, through the edge"),
        (name = "edge", description = "What the edge itself tells the origin (its waiting rooms' reports)"),
        (name = "admin", description = "Running a sale: create, preload, reconcile, watch, replay"),
        (name = "operations", description = "Health, metrics and this document"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&Credentials)
)]
#[derive(Debug)]
pub struct ApiDoc;

struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin token (`http.admin_token`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            IDENTITY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The buyer's identity token (JWT HS256 with a kid; `sub` = userId), as a bearer \
                         token or the `seckill_token` cookie",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            EDGE_SECRET,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                EDGE_SECRET_HEADER,
                "The secret the edge adds to what it forwards (`http.edge_secret`)",
            ))),
        );
    }
}

/// The document [`crate::http::routes()`] collected, completed with the Swagger UI's own paths
/// (served by `utoipa-swagger-ui`'s router, so no `#[utoipa::path]` of ours describes them).
pub fn complete(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let html = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("text/html", Content::new(None::<ObjectBuilder>))
            .build()
    };
    let index = OperationBuilder::new()
        .tag("operations")
        .summary(Some("The Swagger UI of this document"))
        .response("200", html("The Swagger UI page"))
        .build();
    let file = OperationBuilder::new()
        .tag("operations")
        .summary(Some("A file of the Swagger UI (scripts, styles, its initializer)"))
        .parameter(
            ParameterBuilder::new()
                .name("file")
                .parameter_in(ParameterIn::Path)
                .required(utoipa::openapi::Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .response("200", html("The file"))
        .response("404", ResponseBuilder::new().description("No such file").build())
        .build();
    let redirect = OperationBuilder::new()
        .tag("operations")
        .summary(Some("Redirects to /admin/docs/"))
        .response("303", ResponseBuilder::new().description("To /admin/docs/").build())
        .build();
    for (path, operation) in [("/admin/docs", redirect), (SWAGGER_UI_PATH, index), ("/admin/docs/{file}", file)] {
        doc.paths.paths.insert(path.to_string(), PathItem::new(HttpMethod::Get, operation));
    }
    with_unsigned_bounds(doc)
}

/// The document with every unsigned integer bounded by its type: utoipa writes a `u64` as
/// `format: u-int64` with no `maximum`, so the document would allow ids no handler can read.
fn with_unsigned_bounds(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    fn bound(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(fields) => {
                let max = match fields.get("format").and_then(serde_json::Value::as_str) {
                    Some("u-int64") => Some(serde_json::Value::from(u64::MAX)),
                    Some("u-int32") => Some(serde_json::Value::from(u32::MAX)),
                    Some("u-int16") => Some(serde_json::Value::from(u16::MAX)),
                    Some("u-int8") => Some(serde_json::Value::from(u8::MAX)),
                    _ => None,
                };
                if let Some(max) = max {
                    fields.entry("maximum").or_insert(max);
                }
                fields.values_mut().for_each(bound);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(bound),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&doc).expect("the document serializes");
    bound(&mut value);
    serde_json::from_value(value).expect("bounds keep the document an OpenAPI document")
}

/// The Swagger UI's routes, pointed at [`OPENAPI_PATH`].
pub fn swagger_ui() -> SwaggerUi {
    // No validator badge: it would fetch validator.swagger.io.
    SwaggerUi::new("/admin/docs").config(Config::from(OPENAPI_PATH).validator_url("none"))
}

/// The completed document, shared by every request.
#[derive(Clone)]
pub struct Document(pub Arc<utoipa::openapi::OpenApi>);

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document").field("paths", &self.0.paths.paths.len()).finish_non_exhaustive()
    }
}

/// `GET /admin/openapi.json`: this API's OpenAPI 3 document.
#[utoipa::path(
    get, path = "/admin/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(Extension(Document(doc)): Extension<Document>) -> Response {
    Json(doc.as_ref()).into_response()
}
