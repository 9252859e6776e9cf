//! Embedding matrices from files: `.npy` and `.npz` (NumPy, read by tch), `.safetensors`,
//! and `.csv` (one row of numbers a line, an optional header line). A file holding several
//! arrays gives the one named for its side ([`Side`]), so one `.npz` may hold both.
//! Every row must be finite: the first row with a NaN or infinity is named.

use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Which rows a file gives: the training (reference) or the test (query) embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Training (reference) rows.
    Train,
    /// Test (query) rows.
    Test,
}

impl Side {
    /// Array names looked for, in order, in a file with several arrays.
    pub fn array_names(self) -> &'static [&'static str] {
        match self {
            Side::Train => &[
                "train",
                "reference",
                "train_embeddings",
                "reference_embeddings",
            ],
            Side::Test => &["test", "query", "test_embeddings", "query_embeddings"],
        }
    }
}

pub use crate::matrix::Matrix;

/// Reads the `side` embeddings of `path`, by its extension; errors name the file (and the
/// row or line).
pub fn read_matrix(path: &Path, side: Side) -> Result<Matrix> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let m = match ext.as_str() {
        "csv" => read_csv(path)?,
        "npy" => from_tensor(
            &Tensor::read_npy(path).with_context(|| format!("reading {}", path.display()))?,
            path,
        )?,
        "npz" => pick(
            Tensor::read_npz(path).with_context(|| format!("reading {}", path.display()))?,
            path,
            side,
        )?,
        "safetensors" => pick(crate::tensor_io::read_safetensors(path)?, path, side)?,
        _ => bail!(
            "{}: unknown embeddings format; give a .npy, .npz, .safetensors or .csv file",
            path.display()
        ),
    };
    if let Some(row) = (0..m.rows).find(|r| {
        m.data[r * m.cols..(r + 1) * m.cols]
            .iter()
            .any(|v| !v.is_finite())
    }) {
        bail!(
            "{}: row {row} (counting from 0) holds a NaN or infinite value",
            path.display()
        );
    }
    Ok(m)
}

/// The array of a several-array file meant for `side`: the only one, else the first of
/// [`Side::array_names`] present.
fn pick(arrays: Vec<(String, Tensor)>, path: &Path, side: Side) -> Result<Matrix> {
    if arrays.len() == 1 {
        return from_tensor(&arrays[0].1, path);
    }
    for name in side.array_names() {
        if let Some((_, t)) = arrays.iter().find(|(n, _)| n == name) {
            return from_tensor(t, path).with_context(|| format!("array {name:?}"));
        }
    }
    let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
    bail!(
        "{}: holds the arrays {names:?}, none of them named {:?}: name the {} array one of \
         these, or save it alone",
        path.display(),
        side.array_names(),
        match side {
            Side::Train => "training",
            Side::Test => "test",
        }
    )
}

/// A 2-D numeric tensor as a float32 matrix.
fn from_tensor(t: &Tensor, path: &Path) -> Result<Matrix> {
    let size = t.size();
    let kind = t.f_kind()?;
    if size.len() != 2 || matches!(kind, Kind::Bool | Kind::ComplexFloat | Kind::ComplexDouble) {
        bail!(
            "{}: expected a 2-D numeric array [rows, dimensions], got {kind:?} {size:?}",
            path.display()
        );
    }
    let data = Vec::<f32>::try_from(&t.to_kind(Kind::Float).contiguous().view([-1]))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Matrix {
        rows: size[0] as usize,
        cols: size[1] as usize,
        data,
    })
}

/// A CSV of numbers: one row a line, blank lines skipped, the first line skipped when
/// it is not all numbers (a header).
fn read_csv(path: &Path) -> Result<Matrix> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut data = Vec::new();
    let (mut rows, mut cols) = (0, 0);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let values: Result<Vec<f32>, _> =
            line.split(',').map(|v| v.trim().parse::<f32>()).collect();
        let values = match values {
            Ok(v) => v,
            Err(_) if rows == 0 && data.is_empty() && i == first_line(&text) => continue,
            Err(_) => {
                let (col, bad) = line
                    .split(',')
                    .enumerate()
                    .find(|(_, v)| v.trim().parse::<f32>().is_err())
                    .unwrap_or((0, line));
                bail!(
                    "{} line {}: column {} is not a number: {:?}",
                    path.display(),
                    i + 1,
                    col + 1,
                    bad.trim()
                );
            }
        };
        if rows == 0 {
            cols = values.len();
        } else if values.len() != cols {
            bail!(
                "{} line {}: {} values, the first row has {cols}",
                path.display(),
                i + 1,
                values.len()
            );
        }
        data.extend(values);
        rows += 1;
    }
    if rows == 0 {
        bail!("{}: no rows of numbers", path.display());
    }
    Ok(Matrix { rows, cols, data })
}

/// Index of the first non-blank line.
fn first_line(text: &str) -> usize {
    text.lines().position(|l| !l.trim().is_empty()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_gives_the_same_matrix_and_nan_rows_are_named() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([3, 2]);
        let want = Matrix {
            rows: 3,
            cols: 2,
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let npy = dir.path().join("e.npy");
        t.to_kind(Kind::Double).write_npy(&npy).unwrap();
        assert_eq!(read_matrix(&npy, Side::Train).unwrap(), want);
        let npz = dir.path().join("e.npz");
        let other = Tensor::zeros([1, 2], (Kind::Float, tch::Device::Cpu));
        Tensor::write_npz(&[("query", &other), ("reference", &t)], &npz).unwrap();
        assert_eq!(read_matrix(&npz, Side::Train).unwrap(), want);
        assert_eq!(read_matrix(&npz, Side::Test).unwrap().rows, 1);
        let st = dir.path().join("e.safetensors");
        crate::tensor_io::write_safetensors(&st, &[("anything".into(), t.shallow_clone())])
            .unwrap();
        assert_eq!(read_matrix(&st, Side::Test).unwrap(), want);
        let csv = dir.path().join("e.csv");
        std::fs::write(&csv, "d0,d1\n1,2\n\n3,4\n5,6\n").unwrap();
        assert_eq!(read_matrix(&csv, Side::Train).unwrap(), want);

        std::fs::write(&csv, "1,2\n3,nan\n").unwrap();
        let err = format!("{:#}", read_matrix(&csv, Side::Train).unwrap_err());
        assert!(
            err.contains("e.csv: row 1 ") && err.contains("NaN"),
            "{err}"
        );
        std::fs::write(&csv, "1,2\n3,x\n").unwrap();
        let err = format!("{:#}", read_matrix(&csv, Side::Train).unwrap_err());
        assert!(err.contains("e.csv line 2: column 2"), "{err}");
        std::fs::write(&csv, "1,2\n3\n").unwrap();
        let err = format!("{:#}", read_matrix(&csv, Side::Train).unwrap_err());
        assert!(err.contains("line 2: 1 values"), "{err}");
        let two = dir.path().join("two.npz");
        Tensor::write_npz(&[("a", &t), ("b", &t)], &two).unwrap();
        let err = format!("{:#}", read_matrix(&two, Side::Test).unwrap_err());
        assert!(
            err.contains("\"a\", \"b\"") && err.contains("query"),
            "{err}"
        );
        let v = dir.path().join("v.npy");
        Tensor::from_slice(&[1.0f32, 2.0]).write_npy(&v).unwrap();
        let err = format!("{:#}", read_matrix(&v, Side::Test).unwrap_err());
        assert!(err.contains("2-D"), "{err}");
    }
}
