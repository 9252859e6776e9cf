//! The trust table of a run (docs/REFERENCE.md, "Trust table"): every map-producing
//! method scored on the same explained images — deletion and insertion AUC, ROAD,
//! average drop and increase ([`super::faithfulness`]), the cascading-randomisation
//! sanity check ([`super::sanity`]) and images per second — as means with spread, the
//! best per metric marked ([`crate::run::trust::TrustTable`]).
//!
//! Each method is run on its own for the timing (its passes and its computation; the
//! chunk's prediction forward pass, shared by all, is left out), so images per second
//! compare methods measured back to back in one process. Degenerate maps (zero,
//! constant) carry no order and are left out of the faithfulness means (`n` says how
//! many images each mean has).

use super::chunk::forward_only_batch;
use super::explainer::{ExplainOptions, Explainer, Scene};
use super::faithfulness::{evaluate, similarity_scorer, FaithOptions, Faithfulness};
use super::input::load_inputs;
use super::map::{MapStatus, SaliencyMap};
use super::method::SaliencyMethod;
use super::sanity::{cascading_randomisation, finite_mean, PASS_BELOW};
use crate::config::Phase;
use crate::data::rng::Rng;
use crate::run::record::SCHEMA_VERSION;
use crate::run::trust::{Stat, TrustRow, TrustTable};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// How the table is computed.
#[derive(Debug, Clone)]
pub struct TrustOptions {
    /// Deletion/insertion steps, ROAD percentiles and noise, seed.
    pub faith: FaithOptions,
    /// Whether to run the sanity check (one pass of every method per block).
    pub sanity: bool,
}

impl Default for TrustOptions {
    fn default() -> Self {
        TrustOptions {
            faith: FaithOptions::default(),
            sanity: true,
        }
    }
}

/// The methods a trust table can score: those that make a map of the explained image
/// under their own name (pair maps explain a pair, not the score of one image).
pub fn scorable(methods: &[&'static dyn SaliencyMethod]) -> Vec<&'static dyn SaliencyMethod> {
    methods
        .iter()
        .copied()
        .filter(|m| {
            let name = m.info().name;
            m.sample_columns().iter().any(|(k, _)| k == name)
        })
        .collect()
}

/// What one method gathered over the images.
#[derive(Default)]
struct Tally {
    scores: Vec<Faithfulness>,
    sanity_final: Vec<f64>,
    sanity_depths: Vec<Vec<f64>>,
    seconds: f64,
    images: usize,
}

/// Scores `methods` on the images `paths` (explained as `eopts` says, in chunks of its
/// batch size) for the trust table of `phase`.
pub fn trust_table(
    explainer: &Explainer<'_>,
    paths: &[PathBuf],
    methods: &[&'static dyn SaliencyMethod],
    eopts: &ExplainOptions,
    topts: &TrustOptions,
    phase: Phase,
) -> Result<TrustTable> {
    let methods = scorable(methods);
    let pm = explainer.pm;
    let (transform, device) = (pm.exp.test_transform(), pm.exp.device);
    let mut tallies: Vec<Tally> = methods.iter().map(|_| Tally::default()).collect();
    let mut blocks = Vec::new();
    let mut first_image = 0u64;
    for chunk in paths.chunks(eopts.batch_size.max(1)) {
        let scene = explainer.scene(load_inputs(chunk, transform, device)?, eopts)?;
        let trained = timed_maps(explainer, &scene, &methods, eopts, &mut tallies)?;
        faithfulness(
            explainer,
            &scene,
            &trained,
            &methods,
            eopts,
            topts,
            first_image,
            &mut tallies,
        )?;
        if topts.sanity {
            let seed = topts.faith.seed;
            let (labels, cascades) =
                cascading_randomisation(explainer, &scene, &methods, &trained, eopts, seed)?;
            blocks = labels;
            for (c, tally) in cascades.iter().zip(tallies.iter_mut()) {
                if let Some(last) = c.correlations.last() {
                    tally.sanity_final.extend(last);
                }
                tally.sanity_depths.resize(c.correlations.len(), Vec::new());
                for (d, row) in c.correlations.iter().enumerate() {
                    tally.sanity_depths[d].extend(row);
                }
            }
        }
        first_image += chunk.len() as u64;
    }
    let rows = methods
        .iter()
        .zip(&tallies)
        .map(|(m, t)| row(*m, t))
        .collect();
    let mut table = TrustTable {
        schema_version: SCHEMA_VERSION,
        phase: Some(phase),
        images: paths.len(),
        steps: topts.faith.steps,
        road_percentiles: topts.faith.road_percentiles.clone(),
        sanity_blocks: blocks,
        sanity_pass_below: PASS_BELOW,
        rows,
    };
    table.mark_best();
    Ok(table)
}

/// Each method's maps of a scene, every method run on its own and timed into its tally.
fn timed_maps(
    explainer: &Explainer<'_>,
    scene: &Scene,
    methods: &[&'static dyn SaliencyMethod],
    eopts: &ExplainOptions,
    tallies: &mut [Tally],
) -> Result<Vec<BTreeMap<String, SaliencyMap>>> {
    let n = scene.inputs.paths.len();
    let mut trained: Vec<BTreeMap<String, SaliencyMap>> = (0..n).map(|_| BTreeMap::new()).collect();
    for (m, tally) in methods.iter().zip(tallies.iter_mut()) {
        let start = Instant::now();
        let out = explainer.run_methods(scene, &scene.forward, &[*m], eopts)?;
        tally.seconds += start.elapsed().as_secs_f64();
        tally.images += n;
        for (maps, mut got) in trained.iter_mut().zip(out.maps) {
            if let Some(map) = got.remove(m.info().name) {
                maps.insert(m.info().name.to_string(), map);
            }
        }
    }
    Ok(trained)
}

/// The faithfulness scores of every real map of a scene into the methods' tallies
/// (`first_image`: the scene's first image in the whole sample, for the noise seeds).
#[allow(clippy::too_many_arguments)] // one call site; the pieces are the table's state
fn faithfulness(
    explainer: &Explainer<'_>,
    scene: &Scene,
    trained: &[BTreeMap<String, SaliencyMap>],
    methods: &[&'static dyn SaliencyMethod],
    eopts: &ExplainOptions,
    topts: &TrustOptions,
    first_image: u64,
    tallies: &mut [Tally],
) -> Result<()> {
    let pm = explainer.pm;
    for (i, maps) in trained.iter().enumerate() {
        let target = scene.targets.get(i as i64);
        let contrast = scene.contrast.as_ref().map(|c| c.get(i as i64));
        let score = similarity_scorer(
            &pm.model.net,
            pm.exp.device,
            &target,
            contrast.as_ref(),
            forward_only_batch(eopts.batch_size),
        );
        let image = scene.inputs.tensor.get(i as i64);
        for (j, (m, tally)) in methods.iter().zip(tallies.iter_mut()).enumerate() {
            let Some(map) = maps
                .get(m.info().name)
                .filter(|m| m.status == MapStatus::Ok)
            else {
                continue;
            };
            let mut faith = topts.faith.clone();
            let path = [first_image + i as u64, j as u64];
            faith.seed = Rng::derive(topts.faith.seed, &path).next_u64();
            tally.scores.push(evaluate(&image, map, &score, &faith)?);
        }
    }
    Ok(())
}

/// One method's row from its tally.
fn row(m: &dyn SaliencyMethod, t: &Tally) -> TrustRow {
    let of = |f: fn(&Faithfulness) -> f64| Stat::of(&t.scores.iter().map(f).collect::<Vec<_>>());
    let sanity = Stat::of(&t.sanity_final);
    TrustRow {
        method: m.info().name.to_string(),
        title: m.info().title.to_string(),
        deletion_auc: of(|f| f.deletion_auc),
        insertion_auc: of(|f| f.insertion_auc),
        road: of(|f| f.road),
        average_drop: of(|f| f.average_drop),
        increase: of(|f| f.increase),
        sanity,
        sanity_curve: t
            .sanity_depths
            .iter()
            .map(|d| Some(finite_mean(d)).filter(|v| v.is_finite()))
            .collect(),
        sanity_pass: sanity.mean.is_finite().then_some(sanity.mean < PASS_BELOW),
        images_per_second: if t.seconds > 0.0 {
            t.images as f64 / t.seconds
        } else {
            f64::NAN
        },
        best: Vec::new(),
    }
}
