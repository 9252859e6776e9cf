//! `dmlviz serve`.

use super::predict::{PhaseArg, StoreArgs};
use anyhow::Result;
use clap::Args;
use dmlviz::pg_gallery::schema::HnswBuild;
use dmlviz::serve::model_thread::Batching;
use dmlviz::serve::{serve, ServeOptions, TokenSource};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Serve predictions and enrolments over HTTP (JSON), from the run's gallery file or a
/// PostgreSQL gallery shared by several servers.
#[derive(Args)]
#[command(
    after_help = "Example:\n  DMLVIZ_SERVE_TOKEN=$(cat token) dmlviz serve --run runs/demo \\\n    --index postgresql://me@localhost/dml --token-env\n\n\
Endpoints: POST /predict[?k=10&explain=gradcam] (image bytes), POST /classes/NAME/images \
(multipart, Authorization: Bearer TOKEN), GET /classes, GET /classes/NAME, GET /health."
)]
pub struct ServeArgs {
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum, default_value = "all")]
    phase: PhaseArg,
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// A file whose first line is the bearer token of the write endpoints.
    #[arg(long, conflicts_with_all = ["token_env", "read_only"])]
    token_file: Option<PathBuf>,
    /// Take the bearer token from the environment variable DMLVIZ_SERVE_TOKEN.
    #[arg(long, conflicts_with = "read_only")]
    token_env: bool,
    /// No write endpoints (enrolment answers 403); needs no token.
    #[arg(long)]
    read_only: bool,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 16)]
    max_body_mib: usize,
    /// Requests waiting for the model before new ones get 503.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Predictions embedded in one forward pass at most.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// How long a prediction waits for others to share its forward pass, in ms.
    #[arg(long, default_value_t = 5)]
    batch_ms: u64,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let token = match (args.token_file, args.token_env, args.read_only) {
        (Some(file), _, _) => TokenSource::File(file),
        (None, true, _) => TokenSource::Env,
        (None, false, true) => TokenSource::ReadOnly,
        // Neither: the variable if set, else serve refuses naming the choices.
        (None, false, false) => TokenSource::Env,
    };
    let opts = ServeOptions {
        run: args.run,
        phase: args.phase.into(),
        store: args.store.choice(),
        addr: args.addr,
        token,
        max_body: args.max_body_mib.max(1) << 20,
        batching: Batching {
            queue: args.queue.max(1),
            max_batch: args.max_batch.max(1),
            deadline: Duration::from_millis(args.batch_ms),
        },
        max_k: 100,
    };
    serve(opts, |addr, gallery| {
        // One line on stdout that scripts (and the tests) wait for.
        println!("listening on http://{addr} (gallery: {gallery})");
    })
}

#[derive(Args)]
pub struct ServeBenchArgs {
    /// A trained run (phase `all` is served).
    #[arg(long)]
    run: PathBuf,
    /// Query images: files or directories.
    #[arg(long = "images", required = true)]
    images: Vec<PathBuf>,
    /// Requests per client at each load level.
    #[arg(long, default_value_t = 40)]
    per_client: usize,
    /// Seconds each load phase may take at most.
    #[arg(long, default_value_t = 30)]
    budget_s: u64,
    /// One-image `dmlviz predict` processes timed.
    #[arg(long, default_value_t = 5)]
    cli_runs: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct PgvectorBenchArgs {
    #[arg(long, default_value_t = 1_000_000)]
    rows: i64,
    #[arg(long, default_value_t = 128)]
    dim: i64,
    #[arg(long, default_value_t = 200)]
    queries: i64,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// `hnsw.ef_search` values measured over the one build (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [100, 200, 400, 800])]
    ef_search: Vec<u32>,
    /// The server's `maintenance_work_mem` for the index build.
    #[arg(long, default_value = "4GB")]
    maintenance_work_mem: String,
    /// The server's `max_parallel_maintenance_workers` (beside the leader).
    #[arg(long, default_value_t = 1)]
    parallel_workers: u32,
    /// The HNSW graph's links per node (pgvector's `m`; default: `index export`'s).
    #[arg(long, default_value_t = HnswBuild::default().m)]
    hnsw_m: u32,
    /// The HNSW build's candidate list (pgvector's `ef_construction`; default: `index
    /// export`'s).
    #[arg(long, default_value_t = HnswBuild::default().ef_construction)]
    ef_construction: u32,
    /// libtorch threads of the exact search.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Writes `value` as JSON to `out` (when given) and prints it.
fn report<T: serde::Serialize>(value: &T, out: Option<&PathBuf>) -> Result<()> {
    if let Some(path) = out {
        dmlviz::atomic::write_json(path, value)?;
    }
    super::print_json(value)
}

pub fn bench_serve(args: ServeBenchArgs) -> Result<()> {
    let mut images = Vec::new();
    for input in &args.images {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| dmlviz::data::decode::has_image_extension(p))
                .collect();
            found.sort();
            images.extend(found);
        } else {
            images.push(input.clone());
        }
    }
    let root = std::env::current_dir()?;
    let r = dmlviz::bench::serve::run_serve(
        &root,
        &dmlviz::bench::serve::ServeBenchOptions {
            run: args.run,
            images,
            per_client: args.per_client,
            budget: Duration::from_secs(args.budget_s),
            cli_runs: args.cli_runs,
        },
    )?;
    report(&r, args.out.as_ref())
}

pub fn bench_pgvector(args: PgvectorBenchArgs) -> Result<()> {
    tch::set_num_threads(args.threads);
    let root = std::env::current_dir()?;
    let r = dmlviz::bench::serve::run_pgvector(
        &root,
        &dmlviz::bench::serve::PgvectorBenchOptions {
            rows: args.rows,
            dim: args.dim,
            queries: args.queries,
            k: args.k,
            ef_search: args.ef_search,
            seed: 0,
            maintenance_work_mem: args.maintenance_work_mem,
            parallel_workers: args.parallel_workers,
            build: HnswBuild {
                m: args.hnsw_m,
                ef_construction: args.ef_construction,
            },
        },
    )?;
    report(&r, args.out.as_ref())
}
