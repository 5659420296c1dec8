//! The OpenAPI document at `/admin/openapi.json` describes every route the origin serves, and
//! every route it describes is served.
//!
//! Routes are registered with `utoipa_axum::routes!`, which documents them as it routes them;
//! what could still slip past is a plain `.route("…")` (of axum or of the OpenApiRouter), so the
//! first test reads the origin's source for those and wants each of their paths documented.

use std::collections::BTreeSet;
use std::path::Path;

use seckill_e2e::TestApp;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// (method, path) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(move |m| (m.to_string(), path.clone()))
        })
        .collect()
}

/// Every `.route("<path>"` / `.route_service("<path>"` / `.nest("<path>"` literal under `dir`.
fn plain_routes(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            plain_routes(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).unwrap();
            for call in [".route(\"", ".route_service(\"", ".nest(\"", ".nest_service(\""] {
                for (at, _) in source.match_indices(call) {
                    let rest = &source[at + call.len()..];
                    let route = &rest[..rest.find('"').unwrap()];
                    found.push((path.display().to_string(), route.to_string()));
                }
            }
        }
    }
}

#[test]
fn every_route_in_the_source_is_in_the_document() {
    let (_, settings) = seckill_e2e::isolated_settings();
    let doc = serde_json::to_value(seckill_origin::http::document(&settings.http)).unwrap();
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let mut routes = Vec::new();
    plain_routes(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../origin/src"), &mut routes);
    // The consumer's own listener serves /metrics and /livez like serve does.
    assert!(routes.iter().any(|(_, r)| r == "/metrics"), "the scan finds the consumer's listener: {routes:?}");
    let missing: Vec<_> = routes.iter().filter(|(_, r)| !documented.contains(r)).collect();
    assert!(missing.is_empty(), "routes missing from the OpenAPI document: {missing:?}");

    // Every shop and admin operation names its credentials and documents its error body.
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let tagged = op["tags"].as_array().is_some_and(|t| !t.is_empty());
        assert!(tagged, "{method} {path} has no tag");
        let guarded = path.starts_with("/api/") || (path.starts_with("/admin/") && !is_public_admin(&path));
        if guarded {
            assert!(op["security"].as_array().is_some_and(|s| !s.is_empty()), "{method} {path} names no credentials");
            let errors = op["responses"].as_object().unwrap().iter().filter(|(status, _)| status.as_str() >= "400");
            let described: Vec<_> = errors
                .filter(|(_, r)| r["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody")
                .collect();
            assert!(!described.is_empty(), "{method} {path} documents no ErrorBody answer");
        }
    }
}

fn is_public_admin(path: &str) -> bool {
    path == "/admin/ui" || path == "/admin/openapi.json" || path.starts_with("/admin/docs")
}

/// A value for each path parameter that the route accepts.
fn sample(path: &str) -> String {
    path.replace("{id}", "1").replace("{orderNo}", "10000000000000000001").replace("{file}", "swagger-ui.css")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_the_document_is_served() {
    let app = TestApp::spawn().await;
    let resp = app.http.get(app.url("/admin/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let served: Value = resp.json().await.unwrap();
    assert_eq!(served["openapi"].as_str().map(|v| &v[..2]), Some("3."), "an OpenAPI 3 document");
    let expected = serde_json::to_value(seckill_origin::http::document(&app.settings.http)).unwrap();
    assert_eq!(served, expected, "the served document is the routes' document");
    let ops = operations(&served);
    for must in [
        ("post", "/api/seckill"),
        ("get", "/api/orders/{orderNo}"),
        ("post", "/admin/products"),
        ("get", "/admin/overview"),
        ("put", "/admin/products/{id}/waiting-room"),
        ("get", "/admin/ui"),
        ("get", "/metrics"),
    ] {
        assert!(ops.contains(&(must.0.to_string(), must.1.to_string())), "{must:?} is documented");
    }

    // Each documented operation reaches a handler (or its guard): not the fallback's 404, not
    // a 405. Sent without credentials, so nothing changes.
    for (method, path) in &ops {
        let url = app.url(&sample(path));
        let request = app.http.request(method.to_uppercase().parse().unwrap(), &url).body("");
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {body}");
        let fallback = status == 404 && body.contains("no such route");
        assert!(!fallback, "{method} {path} is documented but not routed: {body}");
        if path.starts_with("/admin/") && !is_public_admin(path) {
            assert_eq!(status, 401, "{method} {path} wants the admin token: {body}");
        }
        if path.starts_with("/api/") {
            assert_eq!(status, 403, "{method} {path} wants the edge secret: {body}");
        }
    }

    // The Swagger UI and the console come from the binary.
    for (path, kind) in
        [("/admin/docs/", "text/html"), ("/admin/docs/swagger-ui.css", "text/css"), ("/admin/ui", "text/html")]
    {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    let initializer = app.http.get(app.url("/admin/docs/swagger-initializer.js")).send().await.unwrap();
    let initializer = initializer.text().await.unwrap();
    assert!(initializer.contains("/admin/openapi.json"), "the UI loads our document: {initializer}");
    let redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = redirect.get(app.url("/admin/docs")).send().await.unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
}
