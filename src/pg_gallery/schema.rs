//! The tables of a PostgreSQL gallery: the catalogue `dmlviz_galleries` (one row per
//! gallery table: checkpoint hash, dimension, distance, where it came from) and the
//! gallery table itself (class, image path, origin, checkpoint hash, `vector(D)`).

use super::{classify, PgTarget};
use crate::search::Distance;
use anyhow::{bail, Result};
use postgres::{Client, Transaction};
use std::fmt;
use std::fmt::Write;

/// The catalogue of gallery tables.
const CATALOGUE: &str = "dmlviz_galleries";

/// A validated table name (it is written into SQL, so only `[a-z_][a-z0-9_]*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Table(String);

impl Table {
    /// Checks `name`: lower-case letters, digits and `_`, not starting with a digit,
    /// at most 48 characters (room for the index names' suffixes in PostgreSQL's 63).
    pub fn new(name: &str) -> Result<Table> {
        let ok = !name.is_empty()
            && name.len() <= 48
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok || name == CATALOGUE {
            bail!(
                "table name {name:?}: use lower-case letters, digits and _ (at most 48, not \
                 starting with a digit, not {CATALOGUE})"
            );
        }
        Ok(Table(name.to_string()))
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which model a gallery's rows were embedded by, and how they are compared.
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryIdentity {
    /// SHA-256 of the checkpoint file ([`super::checkpoint_hash`]).
    pub checkpoint: String,
    pub dim: usize,
    pub distance: Distance,
    /// Run directory and phase, for people reading a refusal.
    pub source: String,
}

impl GalleryIdentity {
    /// pgvector's operator for the distance (`<=>` is 1 − cosine, as ours).
    pub fn distance_operator(&self) -> &'static str {
        match self.distance {
            Distance::Cosine => "<=>",
            Distance::Euclidean => "<->",
        }
    }

    fn operator_class(&self) -> &'static str {
        match self.distance {
            Distance::Cosine => "vector_cosine_ops",
            Distance::Euclidean => "vector_l2_ops",
        }
    }

    fn distance_name(&self) -> &'static str {
        match self.distance {
            Distance::Cosine => "cosine",
            Distance::Euclidean => "euclidean",
        }
    }
}

/// Creates the pgvector extension and the catalogue when missing.
pub fn ensure_catalogue(client: &mut Client, target: &PgTarget) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS vector;
             CREATE TABLE IF NOT EXISTS {CATALOGUE} (
                 name text PRIMARY KEY, checkpoint text NOT NULL, dim integer NOT NULL,
                 distance text NOT NULL, source text NOT NULL)"
        ))
        .map_err(|e| classify(e, "creating the pgvector extension and catalogue", target))
}

/// Checks that the gallery table exists and was made by the model `identity`.
pub fn check_identity(
    client: &mut Client,
    target: &PgTarget,
    identity: &GalleryIdentity,
) -> Result<()> {
    let t = &target.table;
    let exists = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&CATALOGUE])
        .map_err(|e| classify(e, "reading the gallery catalogue", target))?
        .get::<_, bool>(0);
    let row = if exists {
        client
            .query_opt(
                &format!(
                    "SELECT checkpoint, dim, distance, source FROM {CATALOGUE} WHERE name = $1"
                ),
                &[&t.0],
            )
            .map_err(|e| classify(e, "reading the gallery catalogue", target))?
    } else {
        None
    };
    let Some(row) = row else {
        bail!(
            "{} holds no dmlviz gallery: write one with `dmlviz index export --to …`",
            target.describe()
        );
    };
    let (checkpoint, dim, distance, source): (String, i32, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if checkpoint != identity.checkpoint {
        bail!(
            "{} was made by another checkpoint ({} of {source}); this model ({}) is {}: \
             its embeddings are not comparable, export this model's gallery to another table",
            target.describe(),
            short(&checkpoint),
            identity.source,
            short(&identity.checkpoint)
        );
    }
    if dim as usize != identity.dim || distance != identity.distance_name() {
        bail!(
            "{} holds {dim}-d {distance} embeddings; this model makes {}-d {}",
            target.describe(),
            identity.dim,
            identity.distance_name()
        );
    }
    Ok(())
}

/// The first 12 hex digits of a hash, as people quote them.
fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Creates the gallery table and its catalogue row (replacing both when `replace`).
pub fn create_table(
    tx: &mut Transaction,
    target: &PgTarget,
    identity: &GalleryIdentity,
    replace: bool,
) -> Result<()> {
    let t = &target.table;
    let fail = |e: postgres::Error| classify(e, "creating the gallery table", target);
    let present = tx
        .query_one(
            &format!("SELECT to_regclass($1) IS NOT NULL OR EXISTS (SELECT 1 FROM {CATALOGUE} WHERE name = $1)"),
            &[&t.0],
        )
        .map_err(fail)?
        .get::<_, bool>(0);
    if present && !replace {
        bail!(
            "{} exists already: pass --replace to replace it, or --table for another",
            target.describe()
        );
    }
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS {t};
         DELETE FROM {CATALOGUE} WHERE name = '{t}';
         CREATE TABLE {t} (
             id bigserial PRIMARY KEY, class text NOT NULL, path text NOT NULL,
             origin text NOT NULL, checkpoint text NOT NULL,
             embedding vector({dim}) NOT NULL);
         CREATE INDEX {t}_class ON {t} (class)",
        dim = identity.dim
    ))
    .map_err(fail)?;
    tx.execute(
        &format!(
            "INSERT INTO {CATALOGUE} (name, checkpoint, dim, distance, source) VALUES ($1, $2, $3, $4, $5)"
        ),
        &[
            &t.0,
            &identity.checkpoint,
            &(identity.dim as i32),
            &identity.distance_name(),
            &identity.source,
        ],
    )
    .map_err(fail)?;
    Ok(())
}

/// The HNSW graph's shape: pgvector's `m` (links per node) and `ef_construction`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswBuild {
    pub m: u32,
    pub ef_construction: u32,
}

impl Default for HnswBuild {
    /// Twice pgvector's own (16, 64): at 1 000 000 clustered 128-d vectors its default
    /// graph reached recall@10 0.949 at ef_search 400, this one 0.9945 at 200, for a
    /// third more build time (README.md, "Measured: pgvector beside our exact search").
    fn default() -> HnswBuild {
        HnswBuild {
            m: 32,
            ef_construction: 128,
        }
    }
}

/// Builds the HNSW index with the gallery's distance (after the rows are in: faster).
pub fn create_index(
    tx: &mut Transaction,
    target: &PgTarget,
    identity: &GalleryIdentity,
    build: HnswBuild,
) -> Result<()> {
    let t = &target.table;
    tx.batch_execute(&format!(
        // At least 512 MB for the graph, or the server's own setting when it is larger.
        "SELECT set_config('maintenance_work_mem', '512MB', true) \
         WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes('512MB');
         CREATE INDEX {t}_hnsw ON {t} USING hnsw (embedding {}) \
         WITH (m = {}, ef_construction = {})",
        identity.operator_class(),
        build.m,
        build.ef_construction
    ))
    .map_err(|e| classify(e, "building the HNSW index", target))
}

/// Escapes a value for COPY's text format.
fn copy_text(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// One row in COPY's text format: class, path, origin, checkpoint, embedding.
pub fn copy_line(
    out: &mut String,
    class: &str,
    path: &str,
    origin: &str,
    checkpoint: &str,
    embedding: &[f32],
) {
    for value in [class, path, origin, checkpoint] {
        copy_text(out, value);
        out.push('\t');
    }
    out.push('[');
    for (i, v) in embedding.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // `{}` of an f32 is the shortest text that reads back to the same value.
        let _ = write!(out, "{v}");
    }
    out.push_str("]\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_that_could_inject_sql_are_refused() {
        assert!(Table::new("gallery_2").is_ok());
        for bad in ["", "2g", "a;drop", "A", "a b", CATALOGUE, &"x".repeat(49)] {
            assert!(Table::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn copy_lines_escape_separators() {
        let mut line = String::new();
        copy_line(&mut line, "a\tb", "p\\q\nr", "train", "ab", &[1.5, -0.25]);
        assert_eq!(line, "a\\tb\tp\\\\q\\nr\ttrain\tab\t[1.5,-0.25]\n");
    }
}
