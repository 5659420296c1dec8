//! The admin API (behind the bearer token, which [`crate::http::routes()`] checks): sales
//! (`sales`: create, preload, reconcile, stock, waiting room), orders (`orders`), the
//! console's overview and this process's metrics (`overview`), and dead letters
//! (`dead_letters`).

mod dead_letters;
mod orders;
mod overview;
mod sales;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::products;

/// The admin routes, each with its description; [`crate::http::routes()`] guards them.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sales::create_product))
        .routes(routes!(sales::preload))
        .routes(routes!(sales::reconcile))
        .routes(routes!(sales::stock))
        .routes(routes!(sales::waiting_room, sales::set_waiting_room, sales::remove_waiting_room))
        .routes(routes!(overview::overview))
        .routes(routes!(overview::metrics))
        .routes(routes!(orders::list_orders))
        .routes(routes!(orders::rejected_orders))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::replay))
}

/// A product id from the path, or a 400 naming it.
fn product_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::BadRequest(format!("product id must be a positive integer, got {raw:?}")))
}

/// A true/false query parameter (absent = false), or a 400 naming it.
fn flag(name: &str, raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!("{name} must be true or false, got {other:?}"))),
    }
}

/// The product, or 404 `NO_SUCH_PRODUCT`.
async fn existing_product(state: &AppState, raw: &str) -> Result<u64, ApiError> {
    let id = product_id(raw)?;
    products::find(state.db(), id)
        .await?
        .map(|p| p.id)
        .ok_or_else(|| ApiError::not_found(ErrorCode::NoSuchProduct, format!("no product {id}")))
}

fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(100),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be between 1 and 1000, got {l:?}"))),
    }
}
