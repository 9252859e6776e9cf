//! The reference gallery in PostgreSQL with pgvector (docs/DESIGN.md, "The gallery in
//! PostgreSQL"): one table per gallery with a `vector(D)` column, an HNSW index built
//! with the run's distance, and a row in `dmlviz_galleries` naming the checkpoint whose
//! embeddings it holds. A model only searches or extends a gallery of its own
//! checkpoint; any other is refused by name.
//!
//! The client is synchronous (`postgres`): it runs on the thread that holds the model,
//! the CLI's main thread or the service's model thread, never on an async executor.
//! A lost connection is reported as [`StoreUnavailable`] and opened again on the next
//! call, so a database restart needs no restart of its clients.

pub mod local_cluster;
pub mod schema;

use crate::config::Phase;
use crate::eval::enrol::Enrolment;
use crate::eval::gallery::Gallery;
use crate::eval::gallery_store::{ClassCount, GalleryStore, RunGallery, StoreUnavailable};
use crate::eval::phase_model::PhaseModel;
use crate::eval::predict::Neighbour;
use crate::run::RunDir;
use crate::search::Distance;
use anyhow::{bail, Context, Result};
use pgvector::Vector;
use postgres::{Client, Config, NoTls};
use schema::{GalleryIdentity, HnswBuild, Table};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tch::{Kind, Tensor};

/// The default table name of an exported gallery.
pub const DEFAULT_TABLE: &str = "dmlviz_gallery";
/// The default `hnsw.ef_search`: recall@10 0.9945 on 1 000 000 synthetic clustered
/// 128-d vectors with the default graph ([`schema::HnswBuild`]), p50 27 ms (README.md,
/// "Measured: pgvector beside our exact search, and the service under load").
pub const DEFAULT_EF_SEARCH: u32 = 200;
/// How long opening a connection may take before the store reports itself unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// True when `index` names a PostgreSQL database rather than a file.
pub fn is_postgres_url(index: &str) -> bool {
    index.starts_with("postgresql://") || index.starts_with("postgres://")
}

/// The SHA-256 of a checkpoint file, in hex: the name a gallery's model goes by.
pub fn checkpoint_hash(checkpoint: &Path) -> Result<String> {
    let bytes =
        std::fs::read(checkpoint).with_context(|| format!("reading {}", checkpoint.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// How searches are answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Search {
    /// Through the HNSW index, with this `hnsw.ef_search`.
    Hnsw { ef_search: u32 },
    /// Exact: a sequential scan (index scans off), for measuring the index's recall.
    Exact,
}

/// Connection parameters of a gallery table.
#[derive(Debug, Clone)]
pub struct PgTarget {
    config: Config,
    /// The URL without its password, for messages.
    shown: String,
    pub table: Table,
}

impl PgTarget {
    /// Parses a `postgresql://` URL and a table name.
    pub fn parse(url: &str, table: &str) -> Result<PgTarget> {
        let mut config =
            Config::from_str(url).with_context(|| format!("bad PostgreSQL URL {}", hide(url)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        Ok(PgTarget {
            config,
            shown: hide(url),
            table: Table::new(table)?,
        })
    }

    /// Opens a connection, or [`StoreUnavailable`] naming the database.
    pub fn connect(&self) -> Result<Client> {
        self.config
            .connect(NoTls)
            .map_err(|e| StoreUnavailable(format!("connecting to {}: {e}", self.shown)).into())
    }

    /// "table `t` in postgresql://…" for messages.
    pub fn describe(&self) -> String {
        format!("table {} in {}", self.table, self.shown)
    }
}

/// The URL with any password replaced by `***`.
fn hide(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// A connection-level failure (the server gone, shutting down, unreachable) becomes
/// [`StoreUnavailable`]; an SQL error stays what it is.
fn classify(e: postgres::Error, what: &str, target: &PgTarget) -> anyhow::Error {
    let shutting_down = e
        .as_db_error()
        .is_some_and(|d| d.code().code().starts_with("57P"));
    if e.is_closed() || e.as_db_error().is_none() || shutting_down {
        StoreUnavailable(format!("{what} ({}): {e}", target.describe())).into()
    } else {
        anyhow::Error::new(e).context(format!("{what} ({})", target.describe()))
    }
}

/// A gallery table opened for one model: searches and enrolments.
pub struct PgGallery {
    target: PgTarget,
    identity: GalleryIdentity,
    search: Search,
    client: Option<Client>,
}

impl PgGallery {
    /// Opens the gallery in `target` for the model `identity`; refuses a gallery of
    /// another checkpoint, dimension or distance by name. The connection is checked now
    /// and opened again later whenever it is lost.
    pub fn open(target: PgTarget, identity: GalleryIdentity, search: Search) -> Result<PgGallery> {
        let mut g = PgGallery {
            target,
            identity,
            search,
            client: None,
        };
        g.client()?;
        Ok(g)
    }

    /// The open connection, opened (and the gallery's identity checked) when none is.
    fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            let mut client = self.target.connect()?;
            schema::check_identity(&mut client, &self.target, &self.identity)?;
            let setup = match self.search {
                Search::Hnsw { ef_search } => format!("SET hnsw.ef_search = {ef_search}"),
                Search::Exact => "SET enable_indexscan = off; SET enable_bitmapscan = off".into(),
            };
            client
                .batch_execute(&setup)
                .map_err(|e| classify(e, "setting up the search", &self.target))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("just opened"))
    }

    /// Runs `f` on the connection; a connection-level failure drops it, so the next call
    /// opens a new one. A read (`retry`) is tried once more on a new connection at once:
    /// after a database restart the old connection fails only when next used.
    fn with_client<T>(
        &mut self,
        what: &str,
        retry: bool,
        mut f: impl FnMut(&mut Client, &Table) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let table = self.target.table.clone();
        let tries = if retry { 2 } else { 1 };
        let mut last = None;
        for _ in 0..tries {
            let result = f(self.client()?, &table);
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let err = classify(e, what, &self.target);
                    if !err.is::<StoreUnavailable>() {
                        return Err(err);
                    }
                    self.client = None;
                    last = Some(err);
                }
            }
        }
        Err(last.expect("at least one try"))
    }
}

/// A tensor's rows as pgvector values.
fn vectors(embeddings: &Tensor) -> Result<Vec<Vector>> {
    let rows: Vec<Vec<f32>> =
        Vec::try_from(&embeddings.to_kind(Kind::Float)).context("reading embeddings")?;
    Ok(rows.into_iter().map(Vector::from).collect())
}

/// A path as the text the table stores (paths that are not UTF-8 are refused by name).
fn path_column(path: &Path) -> Result<&str> {
    path.to_str().with_context(|| {
        format!(
            "{}: a PostgreSQL gallery stores image paths as text, and this one is not UTF-8",
            path.display()
        )
    })
}

impl GalleryStore for PgGallery {
    fn describe(&self) -> String {
        self.target.describe()
    }

    fn nearest(&mut self, queries: &Tensor, k: usize) -> Result<Vec<Vec<Neighbour>>> {
        let queries = vectors(queries)?;
        let sql = format!(
            "SELECT class, path, (embedding {op} $1)::float8 FROM {t} \
             ORDER BY embedding {op} $1 LIMIT $2",
            op = self.identity.distance_operator(),
            t = self.target.table,
        );
        self.with_client("searching the gallery", true, |client, _| {
            let statement = client.prepare(&sql)?;
            queries
                .iter()
                .map(|q| {
                    let rows = client.query(&statement, &[q, &(k as i64)])?;
                    Ok(rows
                        .iter()
                        .map(|r| Neighbour {
                            class: r.get(0),
                            path: PathBuf::from(r.get::<_, String>(1)),
                            distance: r.get(2),
                        })
                        .collect())
                })
                .collect()
        })
    }

    fn enrol(
        &mut self,
        class: &str,
        paths: Vec<PathBuf>,
        embeddings: &Tensor,
    ) -> Result<Enrolment> {
        let rows = vectors(embeddings)?;
        if rows.len() != paths.len() {
            bail!("{} embeddings for {} images", rows.len(), paths.len());
        }
        let texts = paths
            .iter()
            .map(|p| path_column(p))
            .collect::<Result<Vec<_>>>()?;
        let checkpoint = self.identity.checkpoint.clone();
        // One transaction: a failure anywhere (or a lost connection) stores no row.
        let (size, classes) = self.with_client("enrolling", false, |client, t| {
            let mut tx = client.transaction()?;
            let insert = tx.prepare(&format!(
                "INSERT INTO {t} (class, path, origin, checkpoint, embedding) \
                 VALUES ($1, $2, 'enrolled', $3, $4)"
            ))?;
            for (path, row) in texts.iter().zip(&rows) {
                tx.execute(&insert, &[&class, path, &checkpoint, row])?;
            }
            let counts = tx.query_one(
                &format!("SELECT count(*), count(DISTINCT class) FROM {t}"),
                &[],
            )?;
            tx.commit()?;
            Ok((counts.get::<_, i64>(0), counts.get::<_, i64>(1)))
        })?;
        Ok(Enrolment {
            class: class.to_string(),
            added: rows.len(),
            gallery_size: size as usize,
            classes: classes as usize,
        })
    }

    fn classes(&mut self) -> Result<Vec<ClassCount>> {
        self.with_client("listing classes", true, |client, t| {
            let rows = client.query(
                &format!("SELECT class, count(*) FROM {t} GROUP BY class ORDER BY class"),
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| ClassCount {
                    class: r.get(0),
                    images: r.get::<_, i64>(1) as usize,
                })
                .collect())
        })
    }
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Export {
    pub table: String,
    pub rows: usize,
    pub classes: usize,
    pub dim: usize,
    pub checkpoint: String,
    pub distance: Distance,
}

/// Writes `gallery` into a new table of `target` with its HNSW index (pgvector's
/// default shape), in one transaction: a failed export leaves nothing. An existing
/// gallery table is refused unless `replace`.
pub fn export(
    gallery: &Gallery,
    target: &PgTarget,
    identity: &GalleryIdentity,
    replace: bool,
) -> Result<Export> {
    export_with(gallery, target, identity, replace, HnswBuild::default())
}

/// [`export`] with an HNSW graph of the shape `build`.
pub fn export_with(
    gallery: &Gallery,
    target: &PgTarget,
    identity: &GalleryIdentity,
    replace: bool,
    build: HnswBuild,
) -> Result<Export> {
    let m = &gallery.manifest;
    let paths = m
        .entries
        .iter()
        .map(|e| path_column(&e.path))
        .collect::<Result<Vec<_>>>()?;
    let embeddings = vectors(&gallery.embeddings)?;
    let mut client = target.connect()?;
    let fail = |e: postgres::Error| classify(e, "exporting the gallery", target);
    schema::ensure_catalogue(&mut client, target)?;
    let mut tx = client.transaction().map_err(fail)?;
    schema::create_table(&mut tx, target, identity, replace)?;
    let t = &target.table;
    let mut copy = tx
        .copy_in(&format!(
            "COPY {t} (class, path, origin, checkpoint, embedding) FROM STDIN"
        ))
        .map_err(fail)?;
    {
        use std::io::Write;
        let mut line = String::new();
        for ((entry, path), row) in m.entries.iter().zip(&paths).zip(&embeddings) {
            line.clear();
            let origin = match entry.origin {
                crate::eval::gallery::Origin::Train => "train",
                crate::eval::gallery::Origin::Enrolled => "enrolled",
            };
            schema::copy_line(
                &mut line,
                &m.classes[entry.label],
                path,
                origin,
                &identity.checkpoint,
                row.as_slice(),
            );
            copy.write_all(line.as_bytes())
                .with_context(|| format!("exporting to {}", target.describe()))?;
        }
    }
    copy.finish().map_err(fail)?;
    schema::create_index(&mut tx, target, identity, build)?;
    tx.commit().map_err(fail)?;
    Ok(Export {
        table: t.to_string(),
        rows: m.entries.len(),
        classes: m.classes.len(),
        dim: identity.dim,
        checkpoint: identity.checkpoint.clone(),
        distance: identity.distance,
    })
}

/// The identity of a trained phase's model: its checkpoint's hash, embedding size and
/// distance.
pub fn identity_of(pm: &PhaseModel, run: &RunDir) -> Result<GalleryIdentity> {
    let checkpoint = run.phase(pm.phase).checkpoint();
    Ok(GalleryIdentity {
        checkpoint: checkpoint_hash(&checkpoint)?,
        dim: pm.exp.cfg.model.embedding_dim as usize,
        distance: pm.exp.cfg.model.distance,
        source: format!("{} {}", run.root.display(), pm.phase.dir_name()),
    })
}

/// Where a command's gallery is: the run's file (`None`, the default) or a PostgreSQL
/// table (`Some(url)`).
#[derive(Debug, Clone)]
pub struct StoreChoice {
    pub index: Option<String>,
    pub table: String,
    pub search: Search,
}

impl StoreChoice {
    /// The phase's own gallery file, searched exactly.
    pub fn run_file() -> StoreChoice {
        StoreChoice {
            index: None,
            table: DEFAULT_TABLE.into(),
            search: Search::Exact,
        }
    }

    /// Opens the chosen store for the phase's model.
    pub fn open(&self, pm: &PhaseModel, run: &RunDir) -> Result<Box<dyn GalleryStore>> {
        match &self.index {
            None => Ok(Box::new(RunGallery::open(pm, run)?)),
            Some(url) if is_postgres_url(url) => {
                let target = PgTarget::parse(url, &self.table)?;
                Ok(Box::new(PgGallery::open(
                    target,
                    identity_of(pm, run)?,
                    self.search,
                )?))
            }
            Some(other) => bail!(
                "--index {other:?}: give a postgresql:// URL, or leave it out for the run's \
                 own gallery file"
            ),
        }
    }
}

/// `dmlviz index export`: the phase's gallery file written into a PostgreSQL table.
pub fn export_phase(
    run: &RunDir,
    phase: Phase,
    url: &str,
    table: &str,
    replace: bool,
) -> Result<Export> {
    let target = PgTarget::parse(url, table)?;
    let pm = PhaseModel::load(run, phase)?;
    let gallery = pm.gallery(run)?;
    export(&gallery, &target, &identity_of(&pm, run)?, replace)
}
