//! The REST part of the HTTP API (`/api/v1/…`), described by
//! `docs/openapi.json` (served at `/api/v1/openapi.json` and checked
//! against the running server by `e2e http::the_openapi_description_`).
//!
//! Each resource is a thin mapping onto the command the socket and Kea's
//! shape already answer ([`crate::ctl::answer`]), so REST, Kea scripts and
//! `irondhcp-ctl` can never disagree: the command's `arguments` are the
//! body of a success, its `text` the `error` of a failure, and Kea's result
//! codes become statuses (0 → 200 or 201, 3 → 404, 2 → 501, 1 → 400, or
//! 409 when the request conflicts with what exists).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::ctl;
use crate::http::Shared;

/// The description served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// The REST routes, for the HTTP listener's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/leases", get(leases))
        .route("/api/v1/leases/{address}", get(lease).delete(release))
        .route("/api/v1/pools", get(pools))
        .route("/api/v1/servers", get(servers))
        .route(
            "/api/v1/reservations",
            get(reservations).post(add_reservation),
        )
        .route("/api/v1/reservations/audit", get(audit))
        .route(
            "/api/v1/reservations/{subnet}/{address}",
            get(reservation)
                .put(update_reservation)
                .delete(delete_reservation),
        )
        .route("/api/v1/config/test", post(config_test))
        .route("/api/v1/config/reload", post(config_reload))
        .route("/api/v1/drain", post(drain))
        .route("/api/v1/undrain", post(undrain))
}

/// Who is asking, once let in: every REST handler takes one. A request
/// without the token (when one is configured) is answered 401 before any
/// handler runs.
pub(crate) struct Caller {
    s: Arc<Shared>,
    /// For the audit trail.
    actor: String,
}

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        if !state.allowed(&parts.headers) {
            return Err(crate::http::unauthorized());
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or("an unknown peer".to_string(), |c| c.0.to_string());
        Ok(Caller {
            s: state.clone(),
            actor: format!("{peer} over HTTP (REST)"),
        })
    }
}

impl Caller {
    /// Runs `command` and renders its answer: `ok` is the status of a
    /// success.
    async fn call(&self, command: &str, args: Value, ok: StatusCode) -> Response {
        render(&self.answer(command, args).await, ok)
    }

    async fn answer(&self, command: &str, args: Value) -> Value {
        ctl::answer(command, &args, &self.s.ctx, &self.actor).await
    }
}

fn render(answer: &Value, ok: StatusCode) -> Response {
    let text = answer["text"].as_str().unwrap_or_default().to_string();
    let status = match answer["result"].as_i64() {
        Some(0) => ok,
        Some(3) => StatusCode::NOT_FOUND,
        Some(2) => StatusCode::NOT_IMPLEMENTED,
        _ if conflict(&text) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    if !status.is_success() {
        return (status, Json(json!({ "error": text }))).into_response();
    }
    let body = match &answer["arguments"] {
        Value::Null => {
            let mut m: Map<String, Value> = answer
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k != "result")
                .collect();
            m.entry("text").or_insert(json!(text));
            Value::Object(m)
        }
        a => a.clone(),
    };
    (status, Json(body)).into_response()
}

/// Whether a refusal is a conflict with what exists (409) rather than a
/// bad request (400).
fn conflict(text: &str) -> bool {
    [
        "already",
        "reserved for another",
        "is leased",
        "is offered",
        "quarantined",
        "need a restart",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// The query string as the command's arguments (numbers for `subnet` and
/// `limit`, strings for the rest).
fn query_args(uri: &Uri) -> Value {
    let mut m = Map::new();
    for pair in uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decoded(v);
        let value = match k {
            "subnet" | "limit" => v.parse::<u64>().map(Value::from).unwrap_or(json!(v)),
            _ => json!(v),
        };
        m.insert(percent_decoded(k), value);
    }
    Value::Object(m)
}

/// `%3A` → `:`, `+` → space; a malformed escape is kept as it is.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
                if let (Some(h), Some(l)) = (digit(b[i + 1]), digit(b[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON body, or why it is not one.
fn json_body(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))
}

/// A refusal in the commands' shape, for [`render`].
fn refused(text: impl Into<String>) -> Value {
    json!({"result": 1, "text": text.into()})
}

async fn openapi(_: Caller) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn leases(c: Caller, uri: Uri) -> Response {
    let answer = c.answer("leases", query_args(&uri)).await;
    if answer["result"] != 0 {
        return render(&answer, StatusCode::OK);
    }
    Json(json!({ "leases": answer["leases"], "next": answer["next"] })).into_response()
}

async fn lease(c: Caller, Path(address): Path<String>) -> Response {
    let args = json!({ "ip-address": address });
    c.call("lease4-get", args, StatusCode::OK).await
}

async fn release(c: Caller, Path(address): Path<String>) -> Response {
    let args = json!({ "ip-address": address });
    c.call("lease4-del", args, StatusCode::OK).await
}

async fn pools(c: Caller) -> Response {
    match ctl::gather(&c.s.ctx).await {
        Ok(stats) => Json(json!({ "pools": stats.pools })).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": e }))).into_response(),
    }
}

async fn servers(c: Caller) -> Response {
    c.call("servers", Value::Null, StatusCode::OK).await
}

async fn reservations(c: Caller) -> Response {
    c.call("reservations", Value::Null, StatusCode::OK).await
}

async fn add_reservation(c: Caller, body: Bytes) -> Response {
    match json_body(&body) {
        Ok(r) => {
            let args = json!({ "reservation": r });
            c.call("reservation-add", args, StatusCode::CREATED).await
        }
        Err(e) => render(&refused(e), StatusCode::CREATED),
    }
}

async fn audit(c: Caller, uri: Uri) -> Response {
    c.call("reservation-audit", query_args(&uri), StatusCode::OK)
        .await
}

/// `subnet-id` and `ip-address` from the path.
fn by_address(subnet: &str, address: &str) -> Value {
    json!({
        "subnet-id": subnet.parse::<u64>().map(Value::from).unwrap_or(json!(subnet)),
        "ip-address": address,
    })
}

async fn reservation(c: Caller, Path((subnet, address)): Path<(String, String)>) -> Response {
    let args = by_address(&subnet, &address);
    c.call("reservation-get", args, StatusCode::OK).await
}

async fn update_reservation(
    c: Caller,
    Path((subnet, address)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    // The path names the reservation; the body says what it becomes, and
    // names its client (else the client of the reservation at the path).
    let current = c
        .answer("reservation-get", by_address(&subnet, &address))
        .await;
    if current["result"] != 0 {
        return render(&current, StatusCode::OK);
    }
    let mut r = match json_body(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return render(&refused("the body must be a JSON object"), StatusCode::OK),
        Err(e) => return render(&refused(e), StatusCode::OK),
    };
    let here = &current["arguments"];
    r.entry("subnet-id").or_insert(here["subnet-id"].clone());
    let named = ["hw-address", "client-id"]
        .iter()
        .any(|id| r.contains_key(*id));
    for id in ["hw-address", "client-id"] {
        match (r.get(id), &here[id]) {
            (Some(given), Value::String(_)) if given != &here[id] => {
                let text = format!(
                    "the body names another client ({id} {given}) than the reservation at this path"
                );
                return render(&refused(text), StatusCode::OK);
            }
            (None, v @ Value::String(_)) if !named => {
                r.insert(id.into(), v.clone());
            }
            _ => {}
        }
    }
    let args = json!({ "reservation": r });
    c.call("reservation-update", args, StatusCode::OK).await
}

async fn delete_reservation(
    c: Caller,
    Path((subnet, address)): Path<(String, String)>,
) -> Response {
    let args = by_address(&subnet, &address);
    c.call("reservation-del", args, StatusCode::OK).await
}

async fn config_test(c: Caller, body: Bytes) -> Response {
    let args = if body.is_empty() {
        Value::Null
    } else {
        json!({ "config": String::from_utf8_lossy(&body) })
    };
    c.call("config-test", args, StatusCode::OK).await
}

async fn config_reload(c: Caller) -> Response {
    c.call("config-reload", Value::Null, StatusCode::OK).await
}

async fn drain(c: Caller) -> Response {
    c.call("drain", Value::Null, StatusCode::OK).await
}

async fn undrain(c: Caller) -> Response {
    c.call("undrain", Value::Null, StatusCode::OK).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_become_arguments() {
        let uri: Uri = "/api/v1/leases?subnet=1&hw-address=02%3A00%3A00%3A00%3A00%3A01&limit=5&after=198.18.1.9"
            .parse()
            .unwrap();
        assert_eq!(
            query_args(&uri),
            json!({"subnet": 1, "hw-address": "02:00:00:00:00:01", "limit": 5, "after": "198.18.1.9"})
        );
        assert_eq!(percent_decoded("a%zzb%4"), "a%zzb%4");
        assert_eq!(percent_decoded("a+b%41"), "a bA");
    }

    #[test]
    fn kea_results_become_statuses() {
        let status = |v: Value| render(&v, StatusCode::CREATED).status();
        assert_eq!(
            status(json!({"result": 0, "text": "Host added."})),
            StatusCode::CREATED
        );
        assert_eq!(
            status(json!({"result": 3, "text": "Host not found."})),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(json!({"result": 1, "text": "198.18.1.5 is reserved for another client"})),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(json!({"result": 1, "text": "'subnet-id' parameter not specified"})),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn every_route_is_described() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON");
        let described: Vec<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        for path in [
            "/api/v1/openapi.json",
            "/api/v1/leases",
            "/api/v1/leases/{address}",
            "/api/v1/pools",
            "/api/v1/servers",
            "/api/v1/reservations",
            "/api/v1/reservations/audit",
            "/api/v1/reservations/{subnet}/{address}",
            "/api/v1/config/test",
            "/api/v1/config/reload",
            "/api/v1/drain",
            "/api/v1/undrain",
        ] {
            assert!(
                described.iter().any(|d| d == path),
                "{path} is not in docs/openapi.json"
            );
        }
        assert_eq!(
            described.len(),
            12,
            "docs/openapi.json describes a path the server lacks: {described:?}"
        );
    }
}
