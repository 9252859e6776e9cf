//! The HTTP endpoints of `dmlviz serve` (docs/DESIGN.md, "The prediction service"):
//! `POST /predict`, `POST /classes/{name}/images`, `GET /classes`,
//! `GET /classes/{name}` and `GET /health`. Handlers only parse, check the token and
//! queue a job for the model thread; every answer is JSON.

use super::model_thread::{Failure, Job, JobQueue, Predicted};
use crate::eval::enrol::check_request;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What every handler shares.
pub struct AppState {
    pub queue: JobQueue,
    /// The bearer token of the write endpoints; `None`: the service is read-only.
    pub token: Option<String>,
    /// The store, for `/health`.
    pub gallery: String,
    /// The most neighbours one prediction may ask for.
    pub max_k: usize,
}

/// An error answer: a status and a message.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> ApiError {
        match f {
            Failure::BadRequest(m) => ApiError(StatusCode::BAD_REQUEST, m),
            Failure::Unavailable(m) => ApiError(StatusCode::SERVICE_UNAVAILABLE, m),
            Failure::Internal(m) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

type Answer = std::result::Result<Response, ApiError>;

/// The router with its body limit.
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/predict", post(predict))
        .route("/classes", get(classes))
        .route("/classes/{name}", get(class))
        .route("/classes/{name}/images", post(enrol))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Queues a job and waits for its answer.
async fn ask<T>(
    state: &AppState,
    job: impl FnOnce(oneshot::Sender<std::result::Result<T, Failure>>) -> Job,
) -> std::result::Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    state.queue.submit(job(tx))?;
    match rx.await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model thread stopped before answering".into(),
        )),
    }
}

#[derive(Deserialize)]
struct PredictQuery {
    k: Option<usize>,
    explain: Option<String>,
}

async fn predict(
    State(state): State<Arc<AppState>>,
    Query(q): Query<PredictQuery>,
    body: Bytes,
) -> Answer {
    if body.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "send the image's bytes (PNG or JPEG) as the request body".into(),
        ));
    }
    let k = q.k.unwrap_or(10);
    if k == 0 || k > state.max_k {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("k must be between 1 and {}", state.max_k),
        ));
    }
    let gradcam = match q.explain.as_deref() {
        None => false,
        Some("gradcam") => true,
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("explain={other:?}: the service explains with `gradcam` only"),
            ))
        }
    };
    let Predicted {
        prediction,
        gradcam_png,
    } = ask(&state, |reply| Job::Predict {
        image: body.to_vec(),
        k,
        gradcam,
        reply,
    })
    .await?;
    let mut answer = serde_json::to_value(&prediction)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if let (Some(png), Value::Object(map)) = (gradcam_png, &mut answer) {
        map.remove("image");
        map.insert(
            "gradcam_png_base64".into(),
            base64::engine::general_purpose::STANDARD.encode(png).into(),
        );
    } else if let Value::Object(map) = &mut answer {
        map.remove("image");
    }
    Ok(Json(answer).into_response())
}

/// Checks `Authorization: Bearer …` against the service's token.
fn authorise(state: &AppState, headers: &HeaderMap) -> std::result::Result<(), ApiError> {
    let Some(token) = &state.token else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "this service was started read-only: enrolment is off".into(),
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "enrolment needs `Authorization: Bearer <token>`".into(),
        )),
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError(StatusCode::FORBIDDEN, "wrong token".into())),
    }
}

/// Equality whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn enrol(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Answer {
    authorise(&state, &headers)?;
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    let mut images = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("reading the multipart body: {e}")))?
    {
        let file = field
            .file_name()
            .map(str::to_string)
            .unwrap_or_else(|| format!("part-{}", images.len()));
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad(format!("reading the part {file:?}: {e}")))?;
        images.push((file, bytes.to_vec()));
    }
    let names: Vec<PathBuf> = images.iter().map(|(n, _)| PathBuf::from(n)).collect();
    check_request(&name, &names).map_err(|e| bad(format!("{e:#}")))?;
    let done = ask(&state, |reply| Job::Enrol {
        class: name,
        images,
        reply,
    })
    .await?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

async fn classes(State(state): State<Arc<AppState>>) -> Answer {
    let all = ask(&state, |reply| Job::Classes { reply }).await?;
    Ok(Json(all).into_response())
}

async fn class(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Answer {
    let all = ask(&state, |reply| Job::Classes { reply }).await?;
    match all.into_iter().find(|c| c.class == name) {
        Some(c) => Ok(Json(c).into_response()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no class {name:?} in the gallery"),
        )),
    }
}

/// 200 with the gallery's size when the model thread and the store answer; 503 with
/// the reason otherwise.
async fn health(State(state): State<Arc<AppState>>) -> Answer {
    let all = ask(&state, |reply| Job::Classes { reply }).await?;
    Ok(Json(json!({
        "status": "ok",
        "gallery": state.gallery,
        "classes": all.len(),
        "images": all.iter().map(|c| c.images).sum::<usize>(),
    }))
    .into_response())
}
