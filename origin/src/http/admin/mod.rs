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
        .routes(routes!(sales::pause_waiting_room))
        .routes(routes!(sales::resume_waiting_room))
        .routes(routes!(sales::revoke_pass))
        .routes(routes!(sales::restore_pass))
        .routes(routes!(overview::overview))
        .routes(routes!(overview::metrics))
        .routes(routes!(orders::list_orders))
        .routes(routes!(orders::rejected_orders))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::replay))
}

/// The product, or 404 `NO_SUCH_PRODUCT`.
async fn existing_product(state: &AppState, id: u64) -> Result<u64, ApiError> {
    products::find(state.db(), id)
        .await?
        .map(|p| p.id)
        .ok_or_else(|| ApiError::not_found(ErrorCode::NoSuchProduct, format!("no product {id}")))
}

/// A list's `limit` (default 100), or a 400 if it is outside 1 to 1000.
fn list_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!("limit must be between 1 and 1000, got {n}"))),
    }
}
