//! What a saliency method is to the explain driver: its identity (name, title, note),
//! the passes it needs, and one function from a computed [`Chunk`] to its maps.
//!
//! The driver ([`super::explainer`]) runs the forward pass of a chunk of images once,
//! then each [`Pass`] at most once and only when a chosen method declares it, then calls
//! every chosen method in page order. A method is one file implementing
//! [`SaliencyMethod`] (or, for the CAM family, [`super::cam::CamRule`]) and one line in
//! the registry (`super::METHODS`, in `src/explain/mod.rs`).

use super::chunk::Chunk;
use super::explainer::{ExplanationRecord, MapRecord};
use super::map::SaliencyMap;
use super::pair::PairExplanation;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// A computation over a chunk of images that methods share; the driver runs each one at
/// most once per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The forward pass without gradients: embeddings and last-conv activations. Always
    /// run (the prediction needs it); methods that need nothing else declare it alone.
    Forward,
    /// One backward pass from the score to the last conv activation (through the head
    /// only): ∂score/∂A, with the activations and each score's sensitivity.
    LayerGradient,
    /// The same backward pass carried on to the input pixels: ∂score/∂x as well.
    InputGradient,
    /// The segmented guided-backprop walk to the input ([`super::guided`]).
    GuidedWalk,
    /// The activations of the CAM layers (`--layer`, the last convolution by default)
    /// without gradients: what gradient-free CAMs weight ([`super::layers`]).
    LayerActivations,
}

/// What identifies a method and what it needs, as constants of its file.
#[derive(Debug)]
pub struct MethodInfo {
    /// The key in files, JSON and on the command line (`snake_case`; `-` is accepted for `_`).
    pub name: &'static str,
    /// Other keys accepted on the command line.
    pub aliases: &'static [&'static str],
    /// A title for pages.
    pub title: &'static str,
    /// One sentence on what the map shows and how it is computed (plain text: pages escape it).
    pub note: &'static str,
    /// The passes the method reads.
    pub passes: &'static [Pass],
    /// Whether it reads the phase's weight-transfer store (computed on first use).
    pub weight_store: bool,
}

/// A saliency method: see the module documentation.
pub trait SaliencyMethod: Sync {
    /// Name, title, note and needs.
    fn info(&self) -> &'static MethodInfo;

    /// Computes the method's maps (and raw arrays) for every image of `chunk` into `out`.
    fn explain(&self, chunk: &Chunk<'_>, out: &mut MethodOutput) -> Result<()>;

    /// The keys and column labels of this method's maps in `explanations.json` (the
    /// report's sample), in column order.
    fn sample_columns(&self) -> Vec<(String, String)> {
        let info = self.info();
        vec![(info.name.to_string(), info.title.to_string())]
    }

    /// This method's maps of one written explanation, under the keys of
    /// [`SaliencyMethod::sample_columns`].
    fn sample_entries<'r>(&self, record: &'r ExplanationRecord) -> Vec<(String, &'r MapRecord)> {
        let name = self.info().name;
        record
            .maps
            .get(name)
            .map(|m| (name.to_string(), m))
            .into_iter()
            .collect()
    }
}

impl std::fmt::Debug for dyn SaliencyMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.info().name)
    }
}

/// What the methods computed for a chunk, per image: maps by method name, raw arrays for
/// `maps.safetensors`, and pair maps.
pub struct MethodOutput {
    /// Maps by method name, per image.
    pub maps: Vec<BTreeMap<String, SaliencyMap>>,
    /// Named arrays, per image (each name once).
    pub arrays: Vec<Vec<(String, Tensor)>>,
    /// Pair maps, per image.
    pub pairs: Vec<Vec<PairExplanation>>,
}

impl MethodOutput {
    /// Empty output for `images` images.
    pub fn new(images: usize) -> MethodOutput {
        MethodOutput {
            maps: (0..images).map(|_| BTreeMap::new()).collect(),
            arrays: (0..images).map(|_| Vec::new()).collect(),
            pairs: (0..images).map(|_| Vec::new()).collect(),
        }
    }

    /// Stores one map per image under `name`, and each as an array of the same name.
    pub fn put_maps(&mut self, name: &str, maps: Vec<SaliencyMap>) -> Result<()> {
        self.check_len(name, maps.len())?;
        for (i, m) in maps.into_iter().enumerate() {
            self.put_array(i, name, m.to_tensor().squeeze_dim(0));
            self.maps[i].insert(name.to_string(), m);
        }
        Ok(())
    }

    /// Stores row i of `batch` (`[B, …]`) as image i's array `name`, as f32 on the CPU.
    pub fn put_rows(&mut self, name: &str, batch: &Tensor) -> Result<()> {
        self.check_len(name, batch.size().first().copied().unwrap_or(0) as usize)?;
        for i in 0..self.arrays.len() {
            let row = batch
                .get(i as i64)
                .detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float);
            self.put_array(i, name, row);
        }
        Ok(())
    }

    /// Stores image i's array `name`; a name already stored (the same pass's array,
    /// stored by another method) is kept as it is.
    pub fn put_array(&mut self, image: usize, name: &str, array: Tensor) {
        let arrays = &mut self.arrays[image];
        if arrays.iter().all(|(n, _)| n != name) {
            arrays.push((name.to_string(), array));
        }
    }

    fn check_len(&self, name: &str, len: usize) -> Result<()> {
        if len != self.arrays.len() {
            bail!(
                "internal error: {name} gave {len} results for {} images",
                self.arrays.len()
            );
        }
        Ok(())
    }
}
