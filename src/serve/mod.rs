//! `dmlviz serve`: a phase's model and gallery behind an HTTP JSON API on axum + tokio
//! (docs/DESIGN.md, "The prediction service"). The async side parses and answers;
//! the model thread ([`model_thread`]) embeds, searches and enrols. Ctrl-C (or SIGTERM)
//! stops accepting, lets the requests in flight finish, then stops the model thread
//! after the jobs already queued.

pub mod client;
pub mod model_thread;
pub mod routes;

use crate::config::Phase;
use crate::pg_gallery::StoreChoice;
use crate::run::RunDir;
use anyhow::{bail, Context, Result};
use model_thread::Batching;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The environment variable holding the write endpoints' bearer token.
pub const TOKEN_ENV: &str = "DMLVIZ_SERVE_TOKEN";

/// Where the bearer token of the write endpoints comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// The first line of a file.
    File(PathBuf),
    /// [`TOKEN_ENV`].
    Env,
    /// No write endpoints.
    ReadOnly,
}

/// Everything `dmlviz serve` is told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub run: PathBuf,
    pub phase: Phase,
    pub store: StoreChoice,
    pub addr: SocketAddr,
    pub token: TokenSource,
    /// Largest request body in bytes.
    pub max_body: usize,
    pub batching: Batching,
    /// The most neighbours one prediction may ask for.
    pub max_k: usize,
}

/// Reads the token; a write-enabled service without one refuses to start.
fn read_token(source: &TokenSource) -> Result<Option<String>> {
    let token = match source {
        TokenSource::ReadOnly => return Ok(None),
        TokenSource::File(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        TokenSource::Env => std::env::var(TOKEN_ENV)
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    if token.len() < 16 {
        bail!(
            "the write endpoints need a bearer token of at least 16 characters: give \
             --token-file FILE or set {TOKEN_ENV}, or pass --read-only"
        );
    }
    Ok(Some(token))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs the service until Ctrl-C or SIGTERM; `ready` is called with the bound address
/// once it accepts connections.
pub fn serve(opts: ServeOptions, ready: impl FnOnce(SocketAddr, &str)) -> Result<()> {
    let token = read_token(&opts.token)?;
    let run = RunDir::new(&opts.run);
    let (queue, loaded, model) =
        model_thread::start(run, opts.phase, opts.store.clone(), opts.batching)?;
    let state = Arc::new(routes::AppState {
        queue,
        token,
        gallery: loaded.gallery.clone(),
        max_k: opts.max_k,
    });
    let app = routes::router(state, opts.max_body);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .with_context(|| format!("binding {}", opts.addr))?;
        let addr = listener.local_addr()?;
        ready(addr, &loaded.gallery);
        axum::serve(listener, app)
            .with_graceful_shutdown(stop_signal())
            .await
            .context("serving")
    })?;
    // Every sender is gone with the router: the model thread drains its queue and ends.
    runtime.shutdown_timeout(Duration::from_secs(5));
    model
        .join()
        .map_err(|_| anyhow::anyhow!("the model thread panicked"))?;
    Ok(())
}
