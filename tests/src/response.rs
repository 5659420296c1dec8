//! Reading the origin's HTTP answers.

use serde_json::Value;

/// Status and JSON body (Null if the body is not JSON).
pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}
