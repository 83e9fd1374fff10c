//! The HTTP listener on the daemon's runtime: Prometheus `GET /metrics`,
//! `GET /health` for a BGP checker or a load balancer (200 healthy, 503
//! not), and Kea's control channel as Kea's control agent serves it
//! (`POST /` with `{"command": ..., "arguments": ...}`; with `"service"`
//! in the request the answer is a list, as the agent's is).
//!
//! It is the management socket's twin over TCP: the same commands, the
//! same counters (`ctl::gather`), so nothing is counted or named twice.
//! On loopback by default; with `http.token` every request must carry
//! `Authorization: Bearer <token>` (the config refuses a non-loopback
//! address without one).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ctl::{self, CtlContext, Request};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// What every handler needs: the management context and the token.
pub(crate) struct Shared {
    pub(crate) ctx: CtlContext,
    token: Option<String>,
}

impl Shared {
    /// Whether the request may in: no token configured, or the right one.
    pub(crate) fn allowed(&self, headers: &HeaderMap) -> bool {
        allowed(self, headers)
    }
}

/// Binds `addr` (a clear error if it cannot).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    ctx: CtlContext,
    token: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared { ctx, token });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/", post(command))
        .merge(crate::rest::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|v| *v).await;
    })
    .await
}

/// Whether the request may in: no token configured, or the right one.
fn allowed(s: &Shared, headers: &HeaderMap) -> bool {
    let Some(want) = &s.token else { return true };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    got.is_some_and(|g| constant_time_eq(g.as_bytes(), want.as_bytes()))
}

/// Compares without stopping at the first difference, so the time taken
/// does not say how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required (Authorization: Bearer <http.token>)\n",
    )
        .into_response()
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !allowed(&s, &headers) {
        return unauthorized();
    }
    match ctl::gather(&s.ctx).await {
        Ok(stats) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::render(&stats),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn health(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !allowed(&s, &headers) {
        return unauthorized();
    }
    let h = ctl::health(&s.ctx).await;
    let code = if h["healthy"] == true {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(h)).into_response()
}

async fn command(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !allowed(&s, &headers) {
        return unauthorized();
    }
    let raw: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"result": 1, "text": format!("bad request: {e}")})),
            )
                .into_response()
        }
    };
    // Kea's control agent forwards to the services named in "service" and
    // answers with a list, one answer per service; irondhcp is the one
    // service.
    let listed = raw.get("service").is_some();
    let answer = match serde_json::from_value::<Request>(raw) {
        Ok(req) => {
            let actor = format!("{peer} over HTTP");
            ctl::answer(&req.command, &req.arguments, &s.ctx, &actor).await
        }
        Err(e) => json!({"result": 1, "text": format!("bad request: {e}")}),
    };
    let body = if listed { json!([answer]) } else { answer };
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_compared_whole() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3crex"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(constant_time_eq(b"", b""));
    }
}
