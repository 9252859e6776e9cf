//! `dmlviz bench serve` and `dmlviz bench pgvector` (`make bench-serve`): the service
//! under load on loopback, its fault cases, and pgvector's HNSW index beside our exact
//! search. Every loop is bounded in count and in time; every server and database is
//! started here, on 127.0.0.1, and stopped at the end.

use super::knn::clustered;
use crate::eval::gallery::{Gallery, GalleryEntry, GalleryManifest, Origin};
use crate::eval::gallery_store::GalleryStore;
use crate::pg_gallery::local_cluster::LocalCluster;
use crate::pg_gallery::schema::{GalleryIdentity, HnswBuild};
use crate::pg_gallery::{export_with, PgGallery, PgTarget, Search};
use crate::search::knn::k_nearest;
use crate::search::Distance;
use crate::serve::client::{multipart, request, Response};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

/// Percentile `p` (0–100) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What `bench pgvector` measures.
#[derive(Debug, Clone)]
pub struct PgvectorBenchOptions {
    pub rows: i64,
    pub dim: i64,
    pub queries: i64,
    pub k: usize,
    /// The `hnsw.ef_search` values swept, all over the one build.
    pub ef_search: Vec<u32>,
    pub seed: i64,
    /// The server's `maintenance_work_mem` (large enough that the graph stays in memory).
    pub maintenance_work_mem: String,
    /// The server's `max_parallel_maintenance_workers` (workers beside the leader).
    pub parallel_workers: u32,
    /// The HNSW graph's shape.
    pub build: HnswBuild,
}

/// HNSW searches at one `ef_search`.
#[derive(Debug, Clone, Serialize)]
pub struct EfSearchRow {
    pub ef_search: u32,
    pub hnsw_p50_ms: f64,
    pub hnsw_p99_ms: f64,
    /// Mean share of the exact k nearest that HNSW returned.
    pub recall_at_k: f64,
}

/// pgvector's build and search beside our exact search, on the same vectors.
#[derive(Debug, Clone, Serialize)]
pub struct PgvectorReport {
    pub rows: i64,
    pub dim: i64,
    pub queries: i64,
    pub k: usize,
    pub maintenance_work_mem: String,
    pub parallel_workers: u32,
    pub m: u32,
    pub ef_construction: u32,
    /// COPY of the rows plus the HNSW build, in one transaction (the export path).
    pub build_s: f64,
    /// One row per `ef_search`, the same queries each time.
    pub sweep: Vec<EfSearchRow>,
    /// Our exact search (libtorch, in process), one query at a time.
    pub exact_p50_ms: f64,
    pub exact_p99_ms: f64,
    /// libtorch threads of the exact search.
    pub threads: i32,
    /// What the server logged about the build (pgvector warns here when the graph
    /// outgrew `maintenance_work_mem`).
    pub build_warnings: Vec<String>,
}

/// Synthetic clustered, normalised vectors as a gallery, written with `export` into a
/// fresh cluster; then timed HNSW queries at each `ef_search` against our exact answer.
pub fn run_pgvector(crate_root: &Path, opts: &PgvectorBenchOptions) -> Result<PgvectorReport> {
    tch::manual_seed(opts.seed);
    let centres = Tensor::randn([100, opts.dim], (Kind::Float, Device::Cpu));
    let references = clustered(&centres, opts.rows);
    let queries = clustered(&centres, opts.queries);
    let gallery = Gallery {
        embeddings: references.shallow_clone(),
        manifest: GalleryManifest {
            classes: vec!["synthetic".into()],
            entries: (0..opts.rows)
                .map(|i| GalleryEntry {
                    path: PathBuf::from(i.to_string()),
                    label: 0,
                    origin: Origin::Train,
                })
                .collect(),
        },
    };
    let workers = opts.parallel_workers.to_string();
    let cluster = LocalCluster::start_with(
        crate_root,
        &[
            ("maintenance_work_mem", opts.maintenance_work_mem.as_str()),
            ("max_parallel_maintenance_workers", workers.as_str()),
            // pgvector's "graph no longer fits" is a NOTICE: keep it in the log.
            ("log_min_messages", "notice"),
        ],
    )?;
    let target = PgTarget::parse(&cluster.url(), "bench_vectors")?;
    let identity = GalleryIdentity {
        checkpoint: "synthetic".into(),
        dim: opts.dim as usize,
        distance: Distance::Cosine,
        source: "dmlviz bench pgvector".into(),
    };
    eprintln!(
        "pgvector: writing {} × {} and building HNSW",
        opts.rows, opts.dim
    );
    let start = Instant::now();
    export_with(&gallery, &target, &identity, true, opts.build)?;
    let build_s = start.elapsed().as_secs_f64();
    eprintln!("pgvector: built in {build_s:.0} s");
    drop(gallery);
    let build_warnings = cluster
        .log()?
        .lines()
        .filter(|l| l.contains("WARNING") || l.contains("maintenance_work_mem"))
        .map(str::to_string)
        .collect();

    // The exact answer once per query, then every ef_search against it.
    let mut exact_ms = Vec::new();
    let mut exact: Vec<HashSet<i64>> = Vec::new();
    for q in 0..opts.queries {
        let query = queries.narrow(0, q, 1);
        let t = Instant::now();
        let (idx, _) = k_nearest(&query, &references, opts.k as i64, Distance::Cosine);
        exact_ms.push(t.elapsed().as_secs_f64() * 1e3);
        exact.push(Vec::<i64>::try_from(&idx.view([-1]))?.into_iter().collect());
    }
    let mut sweep = Vec::new();
    for &ef_search in &opts.ef_search {
        let mut store =
            PgGallery::open(target.clone(), identity.clone(), Search::Hnsw { ef_search })?;
        let (mut hnsw_ms, mut recall) = (Vec::new(), 0.0);
        for (q, truth) in exact.iter().enumerate() {
            let query = queries.narrow(0, q as i64, 1);
            let t = Instant::now();
            let found = store.nearest(&query, opts.k)?.pop().unwrap_or_default();
            hnsw_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let hits = found
                .iter()
                .filter(|n| {
                    n.path
                        .to_str()
                        .and_then(|s| s.parse::<i64>().ok())
                        .is_some_and(|i| truth.contains(&i))
                })
                .count();
            recall += hits as f64 / opts.k as f64;
        }
        hnsw_ms.sort_by(f64::total_cmp);
        let row = EfSearchRow {
            ef_search,
            hnsw_p50_ms: percentile(&hnsw_ms, 50.0),
            hnsw_p99_ms: percentile(&hnsw_ms, 99.0),
            recall_at_k: recall / opts.queries.max(1) as f64,
        };
        eprintln!("pgvector: {row:?}");
        sweep.push(row);
    }
    exact_ms.sort_by(f64::total_cmp);
    Ok(PgvectorReport {
        rows: opts.rows,
        dim: opts.dim,
        queries: opts.queries,
        k: opts.k,
        maintenance_work_mem: opts.maintenance_work_mem.clone(),
        parallel_workers: opts.parallel_workers,
        m: opts.build.m,
        ef_construction: opts.build.ef_construction,
        build_s,
        sweep,
        exact_p50_ms: percentile(&exact_ms, 50.0),
        exact_p99_ms: percentile(&exact_ms, 99.0),
        threads: tch::get_num_threads(),
        build_warnings,
    })
}

/// A `dmlviz serve` child process, killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts this executable's `serve` with `args` on a free loopback port.
    pub fn start(args: &[String]) -> Result<ServerProcess> {
        let exe = std::env::current_exe().context("finding dmlviz itself")?;
        Self::spawn(&exe, args)
    }

    /// Starts `exe serve` (`exe` a dmlviz binary) with `args` on a free loopback port
    /// and waits for the line naming its address.
    pub fn spawn(exe: &Path, args: &[String]) -> Result<ServerProcess> {
        let mut child = Command::new(exe)
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting dmlviz serve")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("dmlviz serve did not start: {line:?}"))?
            .parse()?;
        Ok(ServerProcess { child, addr })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When a server is killed during an enrolment.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum KillAt {
    /// This long after the request was sent.
    AfterSendMs(u64),
    /// This long after PostgreSQL showed the enrolment's transaction open with rows
    /// written and not committed (`pg_stat_activity`: an `INSERT` with a transaction id).
    AfterTransactionOpenMs(u64),
}

/// One server killed (SIGKILL) during one enrolment, and what the gallery held after.
#[derive(Debug, Clone, Serialize)]
pub struct KilledEnrolment {
    pub at: KillAt,
    pub class: String,
    /// Images in the enrolment.
    pub images: usize,
    /// The class's rows once no transaction of the killed server was left (0 or
    /// `images`; anything else breaks all-or-nothing).
    pub rows: i64,
    /// The answer, when the server answered before it died.
    pub answered: Option<u16>,
    /// `pg_stat_activity` showed the enrolment's transaction open before the kill.
    pub seen_open: bool,
    /// The server logged "unexpected EOF on client connection with an open
    /// transaction" for this kill: the transaction was open when the client died.
    pub open_transaction_logged: bool,
}

impl KilledEnrolment {
    /// All-or-nothing held: no rows or every row, and every row when it answered 201.
    pub fn whole_or_absent(&self) -> bool {
        let all = self.rows == self.images as i64;
        (self.rows == 0 && self.answered != Some(201)) || all
    }
}

/// The enrolment's transaction: an `INSERT` into the gallery holding a transaction id
/// (it has written rows), on any connection but ours.
const OPEN_ENROLMENT: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE pid <> pg_backend_pid() AND backend_xid IS NOT NULL AND query LIKE 'INSERT INTO %'";
/// Transactions with a transaction id left on other connections.
const OPEN_WRITES: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE pid <> pg_backend_pid() AND backend_xid IS NOT NULL";
/// What PostgreSQL logs when a client dies inside a transaction.
const EOF_IN_TRANSACTION: &str = "unexpected EOF on client connection with an open transaction";

/// Sends an enrolment of `images` copies of `image` as class `class` to `victim`, kills it with SIGKILL at `at`, waits (at most 10 s) until the
/// database holds no transaction of it, and counts the class's rows. Bounded: the
/// watch for the open transaction gives up after 30 s and kills anyway.
// One sequence (send, watch, kill, settle, count); its pieces share the same handles.
pub fn kill_during_enrolment(
    cluster: &LocalCluster,
    victim: &mut ServerProcess,
    token: &str,
    class: &str,
    image: &[u8],
    images: usize,
    at: KillAt,
) -> Result<KilledEnrolment> {
    let (url, addr) = (cluster.url(), victim.addr);
    let mut watcher = postgres::Client::connect(&url, postgres::NoTls)?;
    let logged_before = cluster.log()?.matches(EOF_IN_TRANSACTION).count();
    let names: Vec<String> = (0..images).map(|i| format!("{i}.png")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), image)).collect();
    let (kind, body) = multipart(&files);
    let path = format!("/classes/{class}/images");
    let auth = format!("Bearer {token}");
    let sender = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            &path,
            &[("Content-Type", kind), ("Authorization", auth)],
            &body,
        )
        .ok()
        .map(|r| r.status)
    });
    let sent = Instant::now();
    let mut seen_open = false;
    match at {
        KillAt::AfterSendMs(ms) => std::thread::sleep(Duration::from_millis(ms)),
        KillAt::AfterTransactionOpenMs(ms) => {
            while sent.elapsed() < Duration::from_secs(30) && !sender.is_finished() {
                let open: i64 = watcher.query_one(OPEN_ENROLMENT, &[])?.get(0);
                if open > 0 {
                    seen_open = true;
                    std::thread::sleep(Duration::from_millis(ms));
                    break;
                }
            }
        }
    }
    victim.child.kill().context("killing the server")?;
    let _ = victim.child.wait();
    let answered = sender.join().unwrap_or(None);
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(10) {
        let open: i64 = watcher.query_one(OPEN_WRITES, &[])?.get(0);
        if open == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let rows: i64 = watcher
        .query_one(
            "SELECT count(*) FROM dmlviz_gallery WHERE class = $1",
            &[&class],
        )?
        .get(0);
    // The server writes its log line as it notices the EOF: give it a moment.
    std::thread::sleep(Duration::from_millis(100));
    let open_transaction_logged =
        cluster.log()?.matches(EOF_IN_TRANSACTION).count() > logged_before;
    Ok(KilledEnrolment {
        at,
        class: class.to_string(),
        images,
        rows,
        answered,
        seen_open,
        open_transaction_logged,
    })
}

/// Latency and throughput of one load level.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRow {
    pub clients: usize,
    pub requests: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, usize>,
}

/// Runs `clients` threads, each sending up to `per_client` requests made by `send`, all
/// stopping at `budget`; returns latencies and statuses.
fn load(
    clients: usize,
    per_client: usize,
    budget: Duration,
    send: impl Fn(usize, usize) -> Result<Response> + Sync,
) -> LoadRow {
    let start = Instant::now();
    let results: Vec<(f64, u16)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let send = &send;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..per_client {
                        if start.elapsed() > budget {
                            break;
                        }
                        let t = Instant::now();
                        let status = send(c, i).map(|r| r.status).unwrap_or(0);
                        out.push((t.elapsed().as_secs_f64() * 1e3, status));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut ok_ms: Vec<f64> = results
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(ms, _)| *ms)
        .collect();
    ok_ms.sort_by(f64::total_cmp);
    let mut statuses = BTreeMap::new();
    for (_, s) in &results {
        *statuses.entry(*s).or_insert(0) += 1;
    }
    LoadRow {
        clients,
        requests: results.len(),
        per_second: ok_ms.len() as f64 / wall,
        p50_ms: percentile(&ok_ms, 50.0),
        p99_ms: percentile(&ok_ms, 99.0),
        statuses,
    }
}

/// What `bench serve` measures.
#[derive(Debug, Clone)]
pub struct ServeBenchOptions {
    /// A trained run (its phase `all` is served).
    pub run: PathBuf,
    /// Query images (PNG/JPEG), cycled through.
    pub images: Vec<PathBuf>,
    /// Requests per client at each load level.
    pub per_client: usize,
    /// Time budget of each load phase.
    pub budget: Duration,
    /// CLI predictions, one process each.
    pub cli_runs: usize,
}

/// Everything `bench serve` found.
#[derive(Debug, Clone, Serialize)]
pub struct ServeReport {
    /// Mean wall time of one `dmlviz predict` process (one image).
    pub cli_ms: f64,
    pub levels: Vec<LoadRow>,
    /// Predictions beside enrolments.
    pub mixed: LoadRow,
    /// Enrolments answered 2xx whose class has all its rows / answered otherwise whose
    /// class has none; and the counts that break the rule (must be 0).
    pub enrol_ok_whole: usize,
    pub enrol_refused_absent: usize,
    pub enrol_violations: usize,
    /// A queue of 2 under 32 clients.
    pub past_capacity: LoadRow,
    /// The database killed for a while under load, then started again.
    pub db_outage: LoadRow,
    /// One prediction's answer while the database was down: status and body.
    pub outage_status: u16,
    pub outage_message: String,
    /// A prediction answered 200 after the database came back (no server restart).
    pub recovered: bool,
    /// How long one whole 64-image enrolment took (the kill delays are shares of it).
    pub enrol_64_ms: u64,
    /// The server killed during enrolments, at several moments: each class's rows must
    /// be 0 or all.
    pub killed_enrolments: Vec<KilledEnrolment>,
    /// Kills after which a class was partly present (must be 0).
    pub killed_violations: usize,
    /// A class enrolled through one server predicted by another: the class the second
    /// server named as nearest to the enrolled image.
    pub second_server_nearest: String,
    pub second_server_sees_it: bool,
    /// The enrolment's status through the first server, the second server's answer.
    pub second_server_enrol_status: u16,
    pub second_server_answer: serde_json::Value,
}

const TOKEN: &str = "bench-token-0123456789abcdef";

fn enrol_request(addr: SocketAddr, class: &str, files: &[(&str, &[u8])]) -> Result<Response> {
    let (kind, body) = multipart(files);
    request(
        addr,
        "POST",
        &format!("/classes/{class}/images"),
        &[
            ("Content-Type", kind),
            ("Authorization", format!("Bearer {TOKEN}")),
        ],
        &body,
    )
}

fn rows_of(url: &str, class: &str) -> Result<i64> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    Ok(c.query_one(
        "SELECT count(*) FROM dmlviz_gallery WHERE class = $1",
        &[&class],
    )?
    .get(0))
}

/// The service benchmark: the load and fault figures of README.md, "Measured: pgvector
/// beside our exact search, and the service under load".
// One straight script of phases, each a few lines; splitting it would only pass the
// servers and the cluster around.
pub fn run_serve(crate_root: &Path, opts: &ServeBenchOptions) -> Result<ServeReport> {
    if opts.images.is_empty() {
        bail!("no query image");
    }
    let images: Vec<Vec<u8>> = opts
        .images
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<_>>()?;
    let run_s = opts.run.display().to_string();
    let exe = std::env::current_exe()?;
    // One prediction at a time through the CLI (a process each: model load included).
    let t = Instant::now();
    for i in 0..opts.cli_runs {
        let out = Command::new(&exe)
            .args(["predict", "--run", &run_s, "--image"])
            .arg(&opts.images[i % opts.images.len()])
            .output()?;
        if !out.status.success() {
            bail!(
                "dmlviz predict failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let cli_ms = t.elapsed().as_secs_f64() * 1e3 / opts.cli_runs.max(1) as f64;

    let cluster = LocalCluster::start(crate_root)?;
    let url = cluster.url();
    let out = Command::new(&exe)
        .args(["index", "export", "--run", &run_s, "--to", &url])
        .output()?;
    if !out.status.success() {
        bail!("export failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let token_file = tempfile::NamedTempFile::new()?;
    std::fs::write(token_file.path(), TOKEN)?;
    let base: Vec<String> = [
        "--run",
        &run_s,
        "--index",
        &url,
        "--token-file",
        &token_file.path().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let a = ServerProcess::start(&base)?;
    let predict = |addr: SocketAddr, i: usize| {
        request(addr, "POST", "/predict?k=5", &[], &images[i % images.len()])
    };
    let mut levels = Vec::new();
    for clients in [1, 8, 32] {
        eprintln!("serve: {clients} clients");
        levels.push(load(clients, opts.per_client, opts.budget, |c, i| {
            predict(a.addr, c * 7919 + i)
        }));
    }

    // Mixed: client 0 enrols (every third class with one broken image), the rest predict.
    let outcomes = std::sync::Mutex::new(Vec::new());
    let good = images[0].as_slice();
    let mixed = load(8, opts.per_client, opts.budget, |c, i| {
        if c != 0 {
            return predict(a.addr, i);
        }
        let class = format!("mixed_{i}");
        let files: Vec<(&str, &[u8])> = if i % 3 == 2 {
            vec![("a.png", good), ("b.png", b"broken")]
        } else {
            vec![("a.png", good), ("b.png", good)]
        };
        let r = enrol_request(a.addr, &class, &files)?;
        outcomes.lock().unwrap().push((class, r.status));
        Ok(Response {
            status: if r.status == 201 { 200 } else { r.status },
            body: r.body,
        })
    });
    let (mut enrol_ok_whole, mut enrol_refused_absent, mut enrol_violations) = (0, 0, 0);
    for (class, status) in outcomes.into_inner().unwrap_or_default() {
        match (status, rows_of(&url, &class)?) {
            (201, 2) => enrol_ok_whole += 1,
            (s, 0) if s != 201 => enrol_refused_absent += 1,
            _ => enrol_violations += 1,
        }
    }

    // Past capacity: a queue of 2 under 32 clients.
    let small =
        ServerProcess::start(&[&base[..], &["--queue".to_string(), "2".to_string()][..]].concat())?;
    eprintln!("serve: past capacity");
    let past_capacity = load(32, opts.per_client, opts.budget, |c, i| {
        predict(small.addr, c + i)
    });
    drop(small);

    // The database killed under load for two seconds, then back.
    eprintln!("serve: database outage");
    let (db_outage, outage_status, outage_message) = std::thread::scope(|s| -> Result<_> {
        let row = s.spawn(|| {
            load(4, opts.per_client, opts.budget, |c, i| {
                std::thread::sleep(Duration::from_millis(20));
                predict(a.addr, c + i)
            })
        });
        std::thread::sleep(Duration::from_millis(500));
        cluster.kill()?;
        let during = predict(a.addr, 0)?;
        std::thread::sleep(Duration::from_secs(2));
        cluster.resume()?;
        let row = row
            .join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))?;
        Ok((
            row,
            during.status,
            String::from_utf8_lossy(&during.body).into_owned(),
        ))
    })?;
    let recovered = predict(a.addr, 0).is_ok_and(|r| r.status == 200);

    // The server killed during 64-image enrolments: at fixed delays after sending, and
    // as soon as (and shortly after) PostgreSQL shows the transaction open.
    eprintln!("serve: killing servers mid-enrolment");
    // Fixed delays as shares of one whole enrolment's time, measured first on server a.
    let names: Vec<String> = (0..64).map(|i| format!("{i}.png")).collect();
    let whole: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), good)).collect();
    let t = Instant::now();
    let timed = enrol_request(a.addr, "killed_reference", &whole)?;
    let enrol_ms = t.elapsed().as_millis() as u64;
    if timed.status != 201 {
        bail!("a whole 64-image enrolment failed: {}", timed.status);
    }
    let mut moments: Vec<KillAt> = [25, 50, 75, 90, 100, 150]
        .iter()
        .map(|share| KillAt::AfterSendMs(enrol_ms * share / 100))
        .collect();
    moments.extend([0, 0, 2, 5].map(KillAt::AfterTransactionOpenMs));
    let mut killed_enrolments = Vec::new();
    for (i, at) in moments.into_iter().enumerate() {
        let mut victim = ServerProcess::start(&base)?;
        let k = kill_during_enrolment(
            &cluster,
            &mut victim,
            TOKEN,
            &format!("killed_{i}"),
            good,
            64,
            at,
        )?;
        eprintln!("serve: {k:?}");
        killed_enrolments.push(k);
    }
    let killed_violations = killed_enrolments
        .iter()
        .filter(|k| !k.whole_or_absent())
        .count();

    // Two servers: enrolled through a, predicted by b.
    let b = ServerProcess::start(&base)?;
    // An image of no class in the gallery (an emoji among playing cards), so the
    // enrolled copy is its only exact match.
    let probe_path = crate_root.join("fixtures/emoji-cub/images/005.dog/google.png");
    let probe =
        &std::fs::read(&probe_path).with_context(|| format!("reading {}", probe_path.display()))?;
    let enrolled = enrol_request(
        a.addr,
        "second_server_probe",
        &[("p.png", probe.as_slice())],
    )?;
    let seen = request(b.addr, "POST", "/predict?k=1", &[], probe)?;
    let second_server_enrol_status = enrolled.status;
    let second_server_answer = seen.json()?;
    let second_server_nearest = second_server_answer["nearest"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let second_server_sees_it = enrolled.status == 201
        && seen.status == 200
        && second_server_nearest == "second_server_probe";
    Ok(ServeReport {
        cli_ms,
        levels,
        mixed,
        enrol_ok_whole,
        enrol_refused_absent,
        enrol_violations,
        past_capacity,
        db_outage,
        outage_status,
        outage_message,
        recovered,
        enrol_64_ms: enrol_ms,
        killed_enrolments,
        killed_violations,
        second_server_enrol_status,
        second_server_answer,
        second_server_nearest,
        second_server_sees_it,
    })
}
