//! The build pages GitHub links to (placeholder until the pages land).

use crate::api::ApiState;
use axum::Router;

/// The page routes.
pub fn router(state: ApiState) -> Router {
    Router::new().with_state(state)
}
