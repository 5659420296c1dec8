//! The few origin HTTP calls the bench makes outside its loads: create and preload a
//! product (admin API), one buy, and the buy request every load sends.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Method, Request};
use serde_json::{json, Value};

use crate::load::Endpoint;

/// The header that proves a request came through the edge.
const EDGE_SECRET_HEADER: &str = "x-seckill-edge-secret";

/// The product name of everything the bench creates.
pub(crate) const PRODUCT_NAME: &str = "Bench item";
/// The price of every bench product (and of the ceiling's Redis window).
pub(crate) const PRICE: &str = "6999.00";

/// An origin's admin API.
#[derive(Clone)]
pub(crate) struct Admin {
    pub base: String,
    token: String,
    client: reqwest::Client,
}

impl Admin {
    pub(crate) fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { base: base.trim_end_matches('/').to_string(), token: token.to_string(), client })
    }

    /// `POST /admin/products` then `POST /admin/products/{id}/preload`: a product on sale now,
    /// with `stock` units, in MySQL and in Redis. Returns its id.
    pub(crate) async fn create_product(&self, stock: u64) -> anyhow::Result<u64> {
        self.create_sale(json!({ "stock": stock })).await
    }

    /// Like [`Admin::create_product`], with more of the sale's fields (`stock` among them) in
    /// `fields`; the name and price are the bench's.
    pub(crate) async fn create_sale(&self, mut fields: Value) -> anyhow::Result<u64> {
        fields["name"] = json!(PRODUCT_NAME);
        fields["price"] = json!(PRICE);
        let resp = self
            .client
            .post(format!("{}/admin/products", self.base))
            .bearer_auth(&self.token)
            .json(&fields)
            .send()
            .await
            .with_context(|| format!("POST {}/admin/products", self.base))?;
        let created: Value = answer(resp, "create a product").await?;
        let id = created["id"].as_u64().with_context(|| format!("no id in {created}"))?;
        let resp = self
            .client
            .post(format!("{}/admin/products/{id}/preload", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("POST {}/admin/products/{id}/preload", self.base))?;
        answer(resp, "preload the product").await?;
        Ok(id)
    }
}

/// The JSON body of a 2xx answer, else an error with the status and body.
async fn answer(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{what}: {status} {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: not JSON: {body}"))
}

/// The JSON body of a buy of one unit of `product` by `user`.
fn buy_body(user: u64, product: u64) -> String {
    format!(r#"{{"userId":{user},"productId":{product}}}"#)
}

/// `Bearer <token>` for `user`, signed with the configured keys (`config/base.toml`, which the
/// stack's edge and the bench's origins share), as the local login signs it.
pub(crate) fn bearer(user: u64) -> String {
    static KEYS: std::sync::OnceLock<(seckill_protocol::token::KeySet, String)> = std::sync::OnceLock::new();
    let (keys, audience) = KEYS.get_or_init(|| {
        let auth = seckill_origin::configuration::load().expect("load the settings").auth;
        (seckill_protocol::token::KeySet::parse(&auth.token_keys).expect("auth.token_keys parse"), auth.audience)
    });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    format!("Bearer {}", keys.sign(user, audience, now, 3600))
}

/// `POST /api/seckill` (the `endpoint`) for `user` and `product`, signed in as `user`, with the
/// edge secret header if given: the request a buy load sends.
pub(crate) fn buy_request(endpoint: &Endpoint, secret: Option<&str>, user: u64, product: u64) -> Request<Full<Bytes>> {
    let mut req = endpoint
        .request(Method::POST)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, bearer(user));
    if let Some(secret) = secret {
        req = req.header(EDGE_SECRET_HEADER, secret);
    }
    req.body(Full::new(Bytes::from(buy_body(user, product)))).expect("valid request")
}

/// One buy; returns the status and body. Used to sell out a product before a sold-out load.
pub(crate) async fn buy_once(
    url: &str,
    secret: Option<&str>,
    user: u64,
    product: u64,
) -> anyhow::Result<(u16, String)> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    buy_with(&client, url, secret, user, product).await
}

/// One buy on `client` (its connections kept for the next); returns the status and body.
pub(crate) async fn buy_with(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    user: u64,
    product: u64,
) -> anyhow::Result<(u16, String)> {
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::AUTHORIZATION, bearer(user))
        .body(buy_body(user, product));
    if let Some(secret) = secret {
        req = req.header(EDGE_SECRET_HEADER, secret);
    }
    let resp = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}
