//! The real embeddings `dmlviz bench project --data` lays out: a whole image dataset
//! (Fashion-MNIST's 70 000 images in `make bench-projection`) embedded once by the
//! ImageNet MobileNetV2 with an untrained 128-D head, through the test transform, and
//! cached as a safetensors file of two tensors:
//!
//! * `embeddings`: `[N, D]` float32, one row per image in the dataset's sample order;
//! * `labels`: `[N]` int64 class indices.
//!
//! The head is the preset's (`experiments/reference-mobilenet_v2/EPSHN_cosine_mobilenet_v2.toml`,
//! L2-normalised) with its initialisation fixed by seed 0, so the file is reproducible.

use crate::config::ExperimentConfig;
use crate::data::transform::Transform;
use crate::data::Dataset;
use crate::project::input::Matrix;
use crate::tensor_io::{read_safetensors, write_safetensors};
use crate::train::embed::{embed, EmbedOptions};
use crate::train::model::{Model, ModelSpec};
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// The preset whose network embeds the benchmark data.
pub const EMBEDDING_PRESET: &str =
    "experiments/reference-mobilenet_v2/EPSHN_cosine_mobilenet_v2.toml";

/// Embeds every readable image of `data` at `size` px with the preset's untrained head on
/// the ImageNet backbone, and writes `out` atomically. Returns the number of rows.
pub fn embed_dataset(data: &Path, out: &Path, size: u32, threads: usize) -> Result<usize> {
    ensure!(
        size >= 32,
        "image size {size} px is below MobileNetV2's 32 px minimum"
    );
    let cfg = ExperimentConfig::load(Path::new(EMBEDDING_PRESET))?;
    let dataset = Dataset::open(data)?;
    let spec = ModelSpec::from_config(&cfg, dataset.classes.len() as i64);
    let mut model = Model::new(&spec, &cfg.loss, Device::Cpu, 0)?;
    model.load_imagenet(None)?;
    let indices: Vec<usize> = (0..dataset.samples.len()).collect();
    let samples = Arc::new(dataset.samples);
    let embedded = embed(
        &model.net,
        &samples,
        &indices,
        &EmbedOptions {
            transform: Transform::test(size, size),
            batch_size: 128,
            threads,
            device: Device::Cpu,
            cache: None,
            progress: Some("embed"),
        },
    )?;
    let rows = embedded.indices.len();
    write_safetensors(
        out,
        &[
            (
                "embeddings".to_string(),
                embedded.embeddings.to_kind(Kind::Float),
            ),
            ("labels".to_string(), embedded.labels.to_kind(Kind::Int64)),
        ],
    )?;
    Ok(rows)
}

/// Reads an embeddings file written by [`embed_dataset`] (or any safetensors file with
/// `embeddings` `[N, D]` and `labels` `[N]`): the points and their labels.
pub fn read_embeddings(path: &Path) -> Result<(Matrix, Vec<i64>)> {
    let tensors = read_safetensors(path)?;
    let find = |name: &str| -> Result<&Tensor> {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .with_context(|| format!("{}: no tensor named {name:?}", path.display()))
    };
    let (embeddings, labels) = (find("embeddings")?, find("labels")?);
    let dims = embeddings.size();
    if dims.len() != 2 || dims[0] < 1 || dims[1] < 1 {
        bail!(
            "{}: embeddings have shape {dims:?}, expected [N, D]",
            path.display()
        );
    }
    ensure!(
        labels.size() == [dims[0]],
        "{}: labels have shape {:?}, expected [{}]",
        path.display(),
        labels.size(),
        dims[0]
    );
    let data = Vec::<f32>::try_from(&embeddings.to_kind(Kind::Float).contiguous().view([-1]))?;
    let labels = Vec::<i64>::try_from(&labels.to_kind(Kind::Int64).contiguous())?;
    if let Some(bad) = labels.iter().position(|&l| l < 0) {
        bail!(
            "{}: label {} of row {bad} is negative",
            path.display(),
            labels[bad]
        );
    }
    let matrix = Matrix::new(dims[0] as usize, dims[1] as usize, data)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok((matrix, labels))
}

/// `n` rows of `points` and `labels` (a benchmark size), evenly spread over the file so
/// a subset of a class-sorted dataset still holds every class; an error when the file
/// holds fewer.
pub fn spread_subset(
    points: &Matrix,
    labels: &[i64],
    n: usize,
    what: &Path,
) -> Result<(Matrix, Vec<i64>)> {
    ensure!(
        n >= 1 && n <= points.rows,
        "{}: {n} points asked for, the file holds {}",
        what.display(),
        points.rows
    );
    let order = spread_order(points.rows, n);
    let mut data = Vec::with_capacity(n * points.cols);
    for &i in &order {
        data.extend_from_slice(&points.data[i * points.cols..(i + 1) * points.cols]);
    }
    let subset = Matrix::new(n, points.cols, data)?;
    Ok((subset, order.iter().map(|&i| labels[i]).collect()))
}

/// `n` distinct row indices of `0..len`, evenly spaced (Bresenham-style), in order.
fn spread_order(len: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| i * len / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_file_round_trips_and_bad_files_name_themselves() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        let emb = Tensor::from_slice(&[0f32, 1., 2., 3., 4., 5.]).view([3, 2]);
        let labels = Tensor::from_slice(&[2i64, 0, 1]);
        write_safetensors(
            &path,
            &[("embeddings".into(), emb), ("labels".into(), labels)],
        )
        .unwrap();
        let (m, l) = read_embeddings(&path).unwrap();
        assert_eq!((m.rows, m.cols, m.data[5]), (3, 2, 5.0));
        assert_eq!(l, vec![2, 0, 1]);
        let (s, sl) = spread_subset(&m, &l, 2, &path).unwrap();
        // Rows 0 and 1 of 3 (0·3/2, 1·3/2).
        assert_eq!((s.data.clone(), sl), (vec![0., 1., 2., 3.], vec![2, 0]));
        let err = spread_subset(&m, &l, 4, &path).unwrap_err().to_string();
        assert!(
            err.contains("e.safetensors") && err.contains("holds 3"),
            "{err}"
        );

        let bad = dir.path().join("bad.safetensors");
        let short = Tensor::from_slice(&[1i64]);
        let emb = Tensor::zeros([3, 2], (Kind::Float, Device::Cpu));
        write_safetensors(
            &bad,
            &[("embeddings".into(), emb), ("labels".into(), short)],
        )
        .unwrap();
        let err = read_embeddings(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.safetensors") && err.contains("labels"),
            "{err}"
        );
    }

    #[test]
    fn spread_order_is_distinct_and_covers_the_file() {
        let o = spread_order(70_000, 10_000);
        assert_eq!(o.len(), 10_000);
        assert!(o.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*o.last().unwrap(), 69_993);
    }
}
