//! The service's model thread: the one thread that holds the network and the gallery
//! store, so libtorch's forward passes never run on the async workers. Requests reach it
//! through a bounded queue ([`JobQueue`]); a full queue is refused at once (503).
//! Predictions waiting together are embedded in one forward pass: the thread takes the
//! first, then whatever else arrives within the batching deadline, up to a batch.

use crate::config::Phase;
use crate::eval::enrol::{enrol_embedded, Enrolment};
use crate::eval::gallery_store::{ClassCount, GalleryStore, StoreUnavailable};
use crate::eval::phase_model::PhaseModel;
use crate::eval::predict::{
    embed_readable_files, predictions_from_neighbours, Neighbour, Prediction,
};
use crate::explain::explainer::{ExplainOptions, Explainer};
use crate::explain::registry;
use crate::explain::render::overlay;
use crate::pg_gallery::StoreChoice;
use crate::run::RunDir;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Why a request failed, as the HTTP status it maps to.
#[derive(Debug)]
pub enum Failure {
    /// The request itself is wrong (an image that does not decode, an empty class): 400.
    BadRequest(String),
    /// The gallery store is down, or the queue is full: 503, try again.
    Unavailable(String),
    /// Anything else: 500.
    Internal(String),
}

impl Failure {
    fn of(e: anyhow::Error) -> Failure {
        Failure::from_ref(&e)
    }

    fn from_ref(e: &anyhow::Error) -> Failure {
        match e.downcast_ref::<StoreUnavailable>() {
            Some(u) => Failure::Unavailable(u.to_string()),
            None => Failure::Internal(format!("{e:#}")),
        }
    }
}

/// A prediction's answer: the prediction and, when asked for, the Grad-CAM overlay PNG.
pub struct Predicted {
    pub prediction: Prediction,
    pub gradcam_png: Option<Vec<u8>>,
}

type Reply<T> = oneshot::Sender<std::result::Result<T, Failure>>;

/// One request for the model thread.
pub enum Job {
    Predict {
        image: Vec<u8>,
        k: usize,
        gradcam: bool,
        reply: Reply<Predicted>,
    },
    Enrol {
        class: String,
        /// (file name as uploaded, bytes).
        images: Vec<(String, Vec<u8>)>,
        reply: Reply<Enrolment>,
    },
    Classes {
        reply: Reply<Vec<ClassCount>>,
    },
}

/// How the model thread batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Requests the queue holds before refusing.
    pub queue: usize,
    /// Predictions embedded in one forward pass at most.
    pub max_batch: usize,
    /// How long the first prediction of a batch waits for company.
    pub deadline: Duration,
}

/// The sending side of the model thread's queue.
#[derive(Clone)]
pub struct JobQueue(SyncSender<Job>);

impl JobQueue {
    /// Queues a job, or refuses at once when the queue is full or the thread is gone.
    pub fn submit(&self, job: Job) -> std::result::Result<(), Failure> {
        self.0.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => {
                Failure::Unavailable("the prediction queue is full; try again shortly".into())
            }
            TrySendError::Disconnected(_) => {
                Failure::Unavailable("the model thread has stopped".into())
            }
        })
    }
}

/// What the thread reports once the model and the gallery are open.
pub struct Ready {
    pub gallery: String,
    pub phase: Phase,
}

/// Starts the model thread: it loads the phase and opens the store, then serves the
/// queue until every [`JobQueue`] is dropped, finishing the jobs already queued.
pub fn start(
    run: RunDir,
    phase: Phase,
    store: StoreChoice,
    batching: Batching,
) -> Result<(JobQueue, Ready, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(batching.queue.max(1));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("dmlviz-model".into())
        .spawn(move || {
            let opened = PhaseModel::load(&run, phase).and_then(|pm| {
                let gallery = store.open(&pm, &run)?;
                Ok((pm, gallery))
            });
            match opened {
                Ok((pm, gallery)) => {
                    let _ = ready_tx.send(Ok(Ready {
                        gallery: gallery.describe(),
                        phase,
                    }));
                    let mut worker = Worker {
                        run,
                        pm,
                        gallery,
                        scratch: None,
                    };
                    worker.serve(rx, batching);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .context("starting the model thread")?;
    let ready = ready_rx
        .recv()
        .context("the model thread stopped while loading")??;
    Ok((JobQueue(tx), ready, handle))
}

struct Worker {
    run: RunDir,
    pm: PhaseModel,
    gallery: Box<dyn GalleryStore>,
    /// Uploaded images are decoded from files here, by the same decoder as every image.
    scratch: Option<tempfile::TempDir>,
}

/// A prediction waiting in a batch.
struct Pending {
    image: Vec<u8>,
    k: usize,
    gradcam: bool,
    reply: Reply<Predicted>,
}

impl Worker {
    fn serve(&mut self, rx: Receiver<Job>, batching: Batching) {
        let mut held: Option<Job> = None;
        loop {
            let job = match held.take() {
                Some(job) => job,
                None => match rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            match job {
                Job::Predict {
                    image,
                    k,
                    gradcam,
                    reply,
                } => {
                    let mut batch = vec![Pending {
                        image,
                        k,
                        gradcam,
                        reply,
                    }];
                    let until = Instant::now() + batching.deadline;
                    while batch.len() < batching.max_batch {
                        let left = until.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(Job::Predict {
                                image,
                                k,
                                gradcam,
                                reply,
                            }) => batch.push(Pending {
                                image,
                                k,
                                gradcam,
                                reply,
                            }),
                            // Another kind of job waits for the batch to finish.
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                                break
                            }
                        }
                    }
                    self.predict_batch(batch);
                }
                Job::Enrol {
                    class,
                    images,
                    reply,
                } => {
                    let _ = reply.send(self.enrol(&class, images));
                }
                Job::Classes { reply } => {
                    let _ = reply.send(self.gallery.classes().map_err(Failure::of));
                }
            }
        }
    }

    /// Writes uploads into the scratch directory, returning their paths.
    fn stage(&mut self, files: &[(String, &[u8])]) -> Result<Vec<PathBuf>> {
        if self.scratch.is_none() {
            self.scratch = Some(
                tempfile::Builder::new()
                    .prefix("dmlviz-serve.")
                    .tempdir()
                    .context("creating the upload directory")?,
            );
        }
        let dir = self.scratch.as_ref().expect("just created").path();
        files
            .iter()
            .enumerate()
            .map(|(i, (name, bytes))| {
                // The uploaded name is kept only as text in messages, never as a path.
                let path = dir.join(format!("upload-{i}"));
                std::fs::write(&path, bytes)
                    .with_context(|| format!("staging the upload {name:?}"))?;
                Ok(path)
            })
            .collect()
    }

    /// One forward pass for the batch, one gallery search, one answer per request.
    fn predict_batch(&mut self, batch: Vec<Pending>) {
        let uploads: Vec<(String, &[u8])> = batch
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("request {i}"), p.image.as_slice()))
            .collect();
        let embedded = self.stage(&uploads).and_then(|paths| {
            let e = embed_readable_files(
                &self.pm.model.net,
                &paths,
                self.pm.exp.test_transform(),
                self.pm.exp.device,
            )?;
            Ok((paths, e))
        });
        let (paths, embedded) = match embedded {
            Ok(x) => x,
            Err(e) => {
                let message = format!("{e:#}");
                for p in batch {
                    let _ = p.reply.send(Err(Failure::Internal(message.clone())));
                }
                return;
            }
        };
        let k = batch.iter().map(|p| p.k).max().unwrap_or(1);
        let mut rows: Result<Vec<Vec<Neighbour>>> = if embedded.paths.is_empty() {
            Ok(Vec::new())
        } else {
            self.gallery.nearest(&embedded.embeddings, k)
        };
        let mut row_of_path = embedded.paths.iter();
        let mut next_row = 0usize;
        let mut next_decoded = row_of_path.next();
        for (p, path) in batch.into_iter().zip(&paths) {
            if next_decoded != Some(path) {
                let reason = embedded
                    .unreadable
                    .iter()
                    .find(|u| &u.path == path)
                    .map(|u| u.reason.replace(&path.display().to_string(), "the image"))
                    .unwrap_or_else(|| "the image does not decode".into());
                let _ = p.reply.send(Err(Failure::BadRequest(reason)));
                continue;
            }
            next_decoded = row_of_path.next();
            let row = next_row;
            next_row += 1;
            let answer = match &mut rows {
                Err(e) => Err(Failure::from_ref(e)),
                Ok(rows) => {
                    let row = rows.get_mut(row).map(std::mem::take).unwrap_or_default();
                    self.answer(path, row, &p)
                }
            };
            let _ = p.reply.send(answer);
        }
    }

    /// The prediction of one image from its neighbours (cut to its own k), and its
    /// Grad-CAM map when asked for.
    fn answer(
        &mut self,
        path: &std::path::Path,
        mut neighbours: Vec<Neighbour>,
        p: &Pending,
    ) -> std::result::Result<Predicted, Failure> {
        neighbours.truncate(p.k);
        let mut prediction =
            predictions_from_neighbours(&[PathBuf::from("upload")], vec![neighbours])
                .map_err(|e| Failure::BadRequest(format!("{e:#}")))?
                .remove(0);
        prediction.image = PathBuf::from("upload");
        let gradcam_png = match p.gradcam {
            true => Some(self.gradcam_png(path, p.k).map_err(Failure::of)?),
            false => None,
        };
        Ok(Predicted {
            prediction,
            gradcam_png,
        })
    }

    /// Grad-CAM of the image against its nearest neighbour in the run's gallery file, as
    /// an overlay PNG.
    fn gradcam_png(&self, path: &std::path::Path, k: usize) -> Result<Vec<u8>> {
        let method = registry::find("gradcam").context("Grad-CAM is not registered")?;
        let opts = ExplainOptions {
            methods: vec![method],
            k: k.max(1),
            pair_neighbours: 0,
            ..ExplainOptions::default()
        };
        let mut explainer = Explainer::new(&self.run, &self.pm)?;
        let e = explainer
            .explain(&[path.to_path_buf()], &opts)?
            .pop()
            .context("no explanation")?;
        let map = e.maps.get("gradcam").context("no Grad-CAM map")?;
        let image = overlay(map, &e.input)?;
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(image)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .context("encoding the Grad-CAM PNG")?;
        Ok(png)
    }

    /// All of a class's uploads, or none (an image that does not decode refuses all).
    fn enrol(
        &mut self,
        class: &str,
        images: Vec<(String, Vec<u8>)>,
    ) -> std::result::Result<Enrolment, Failure> {
        let uploads: Vec<(String, &[u8])> = images
            .iter()
            .map(|(n, b)| (n.clone(), b.as_slice()))
            .collect();
        let paths = self.stage(&uploads).map_err(Failure::of)?;
        let mut embedded = embed_readable_files(
            &self.pm.model.net,
            &paths,
            self.pm.exp.test_transform(),
            self.pm.exp.device,
        )
        .map_err(Failure::of)?;
        // Name the uploads as their senders did, not as the staging files.
        let name_of = |p: &PathBuf| {
            let i = paths.iter().position(|q| q == p).unwrap_or(0);
            images[i].0.clone()
        };
        if !embedded.unreadable.is_empty() {
            let names: Vec<String> = embedded
                .unreadable
                .iter()
                .map(|u| name_of(&u.path))
                .collect();
            return Err(Failure::BadRequest(format!(
                "{} of {} images do not decode, so none was enrolled: {}",
                names.len(),
                images.len(),
                names.join(", ")
            )));
        }
        embedded.paths = embedded
            .paths
            .iter()
            .map(|p| PathBuf::from(format!("upload/{class}/{}", name_of(p))))
            .collect();
        enrol_embedded(self.gallery.as_mut(), class, embedded).map_err(|e| {
            match e.downcast_ref::<StoreUnavailable>() {
                Some(u) => Failure::Unavailable(u.to_string()),
                None if e.to_string().contains("class name") => {
                    Failure::BadRequest(format!("{e:#}"))
                }
                None => Failure::Internal(format!("{e:#}")),
            }
        })
    }
}
