//! Every route takes the query parameters its OpenAPI operation declares and nothing else: an
//! unknown one is a 400 naming it, never ignored (the CLI's `dry_run` sent to
//! `POST /admin/products/{id}/reconcile`, whose flag is `dryRun`, once ran a real reconcile).
//!
//! One definition: the names come from the document built from the handlers themselves
//! ([`remember`], at start), and the guards that every shop and admin route already passes
//! ([`super::require_edge_secret`], [`super::require_admin_token`]) check them ([`refusal`]),
//! so a request without a query pays one branch.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request};
use utoipa::openapi::path::{HttpMethod, ParameterIn};
use utoipa::openapi::OpenApi;

use crate::error::ApiError;

/// (method, path template) → the query parameters its operation declares.
type Declared = HashMap<(String, String), Vec<String>>;

static DECLARED: OnceLock<Declared> = OnceLock::new();

/// Keeps the query parameters `doc` declares for each operation (the first document wins: every
/// app of a process serves the same handlers).
pub fn remember(doc: &OpenApi) {
    DECLARED.get_or_init(|| declared(doc));
}

fn declared(doc: &OpenApi) -> Declared {
    let mut all = Declared::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            (HttpMethod::Get, &item.get),
            (HttpMethod::Post, &item.post),
            (HttpMethod::Put, &item.put),
            (HttpMethod::Delete, &item.delete),
            (HttpMethod::Patch, &item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let names = operation
                .parameters
                .iter()
                .flatten()
                .filter(|p| p.parameter_in == ParameterIn::Query)
                .map(|p| p.name.clone())
                .collect();
            all.insert((method_name(&method).to_owned(), path.clone()), names);
        }
    }
    all
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Options => "OPTIONS",
        HttpMethod::Head => "HEAD",
        HttpMethod::Trace => "TRACE",
    }
}

/// The 400 for a request whose query names a parameter its route does not declare.
pub fn refusal(request: &Request) -> Option<ApiError> {
    let query = request.uri().query().filter(|q| !q.is_empty())?;
    let path = request.extensions().get::<MatchedPath>()?.as_str();
    let takes = DECLARED.get()?.get(&(request.method().as_str().to_owned(), path.to_owned()))?;
    let mut unknown: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| name.into_owned())
        .filter(|n| !takes.contains(n))
        .collect();
    unknown.dedup();
    if unknown.is_empty() {
        return None;
    }
    let allowed =
        if takes.is_empty() { "no query parameters".to_owned() } else { format!("only {}", takes.join(", ")) };
    Some(ApiError::BadRequest(format!("unknown query parameter {}: this route takes {allowed}", unknown.join(", "))))
}
