//! A dense row-major `f32` matrix: the points a projection lays out and the embeddings an
//! import reads, shared by both (they are siblings, so it lives below them).

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Rows of `cols` values, row-major, `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows (points).
    pub rows: usize,
    /// Number of columns (dimensions).
    pub cols: usize,
    /// `rows × cols` values, row-major.
    pub data: Vec<f32>,
}

impl Matrix {
    /// A matrix from row-major values; errors when the length does not match.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Matrix> {
        ensure!(
            data.len() == rows * cols,
            "{} values do not make a {rows}×{cols} matrix",
            data.len()
        );
        Ok(Matrix { rows, cols, data })
    }

    /// A 2-D float tensor as a matrix (copied to the CPU as `f32`).
    pub fn from_tensor(t: &Tensor) -> Result<Matrix> {
        let size = t.size();
        ensure!(size.len() == 2, "expected a 2-D tensor, got shape {size:?}");
        let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let data = Vec::<f32>::try_from(&t.view([-1]))?;
        Matrix::new(size[0] as usize, size[1] as usize, data)
    }

    /// The matrix as a `[rows, cols]` float tensor on the CPU.
    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_slice(&self.data).view([self.rows as i64, self.cols as i64])
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows scaled to unit L2 norm (zero rows stay zero).
    pub fn normalized(&self) -> Matrix {
        let mut out = self.clone();
        for row in out.data.chunks_mut(self.cols.max(1)) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        out
    }
}
