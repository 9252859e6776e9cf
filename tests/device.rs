//! `--device` on every command that computes: a device this build cannot use fails at
//! once (exit 1, before any file is read) saying why and how to get a CUDA libtorch;
//! `--amp` trains on the CPU in bfloat16; `--device cpu` computes as the default does.

mod common;

use common::{dmlviz, ok, tiny_run};
use dmlviz::config::Phase;
use dmlviz::mixed_precision::autocast;
use dmlviz::run::RunDir;
use dmlviz::train::model::{Model, ModelSpec};
use tch::{Device, Kind, Tensor};

/// Every command that takes `--device`, with arguments naming files that do not
/// exist: the device must be refused before they are looked at.
const COMMANDS: &[&[&str]] = &[
    &["train", "--config", "no/such.toml"],
    &["eval", "--run", "no/such/run"],
    &["explain", "--run", "no/such/run", "--image", "no/such.png"],
    &["project", "--run", "no/such/run"],
    &["predict", "--run", "no/such/run", "--image", "no/such.png"],
    &[
        "index",
        "add",
        "--run",
        "no/such/run",
        "--images",
        "no/such",
        "--class",
        "x",
    ],
    &[
        "bench",
        "knn",
        "--queries",
        "10",
        "--references",
        "20",
        "--dim",
        "4",
    ],
    &["bench", "train", "--config", "no/such.toml"],
];

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cuda_without_a_usable_gpu_fails_at_once_saying_why_and_how_to_fix_it() {
    if dmlviz::device::visible_gpus() > 0 {
        // A CUDA build on a GPU machine: cuda:0 is usable, an index past the last is not.
        let beyond = format!("cuda:{}", dmlviz::device::visible_gpus());
        let out = dmlviz(&["eval", "--run", "no/such/run", "--device", &beyond]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("GPU(s) visible"), "{}", stderr(&out));
        return;
    }
    for args in COMMANDS {
        for device in ["cuda", "cuda:1"] {
            let mut full = args.to_vec();
            full.extend(["--device", device]);
            let out = dmlviz(&full);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{full:?}: {err}");
            assert!(err.contains("--device cuda"), "{full:?}: {err}");
            // Why: this libtorch has no CUDA, or CUDA sees no GPU.
            assert!(
                err.contains("libtorch without CUDA") || err.contains("sees no GPU"),
                "{full:?}: {err}"
            );
            // How: the CPU build says how to get a CUDA libtorch.
            if err.contains("libtorch without CUDA") {
                for fix in [
                    "make setup-cuda",
                    "LIBTORCH=",
                    "LIBTORCH_USE_PYTORCH=1",
                    "--device cpu",
                ] {
                    assert!(err.contains(fix), "{full:?} lacks {fix:?}: {err}");
                }
            }
            assert!(
                !err.contains("no/such"),
                "the device is checked first: {err}"
            );
        }
    }
}

#[test]
fn a_mistyped_device_is_a_usage_error() {
    let out = dmlviz(&["eval", "--run", "no/such/run", "--device", "gpu"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("expected cpu, cuda or cuda:N"), "{err}");
}

#[test]
fn amp_trains_on_the_cpu_in_bfloat16_and_the_run_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let single = tiny_run(dir.path(), "epshn", "");
    let mixed = dir.path().join("mixed");
    let cfg = dir.path().join("tiny.toml");
    ok(dmlviz(&[
        "train",
        "--quiet",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        mixed.to_str().unwrap(),
        "--device",
        "cpu",
        "--amp",
    ]));
    let (single, mixed) = (RunDir::new(single), RunDir::new(mixed));
    assert!(!single.read_config().unwrap().training.mixed_precision);
    assert!(mixed.read_config().unwrap().training.mixed_precision);
    let loss = |run: &RunDir| run.phase(Phase::All).read_history().unwrap()[0].train_loss;
    let (a, b) = (loss(&single), loss(&mixed));
    // A different rounding changes which pairs are mined, so over an epoch the losses
    // part; the forward pass itself is compared below.
    assert!(b.is_finite() && a != b, "float32 {a}, bfloat16 {b}");

    // The same network and images: the bfloat16 embeddings point where the float32 ones do.
    let cfg = mixed.read_config().unwrap();
    let model = Model::new(
        &ModelSpec::from_config(&cfg, 8),
        &cfg.loss,
        Device::Cpu,
        cfg.training.seed,
    )
    .unwrap();
    let x = Tensor::randn([8, 3, 32, 32], (Kind::Float, Device::Cpu));
    let embed = |amp: bool| {
        let e = autocast(amp, Device::Cpu, || model.net.forward_t(&x, false));
        let e = e.to_kind(Kind::Float);
        &e / e.norm_scalaropt_dim(2, [1], true)
    };
    let (f32_embeddings, bf16_embeddings) = (embed(false), embed(true));
    let cosine =
        (&f32_embeddings * &bf16_embeddings).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let worst = cosine.min().double_value(&[]);
    assert!(
        !f32_embeddings.equal(&bf16_embeddings),
        "autocast changed nothing"
    );
    assert!(
        worst >= 0.99,
        "cosine between float32 and bfloat16 embeddings {worst}"
    );
}

#[test]
fn device_cpu_computes_like_the_default() {
    let args = [
        "bench",
        "knn",
        "--queries",
        "40",
        "--references",
        "300",
        "--dim",
        "8",
        "--k",
        "3",
    ];
    let run = |extra: &[&str]| {
        let mut full = args.to_vec();
        full.extend(extra);
        full.extend(["--threads", "1", "--repeats", "1", "--json"]);
        let rows: serde_json::Value = serde_json::from_str(&ok(dmlviz(&full))).unwrap();
        rows
    };
    let explicit = run(&["--device", "cpu"]);
    let default = run(&[]);
    assert_eq!(
        explicit.as_array().unwrap().len(),
        2,
        "cosine and euclidean"
    );
    for (a, b) in explicit
        .as_array()
        .unwrap()
        .iter()
        .zip(default.as_array().unwrap())
    {
        assert_eq!(a["distance"], b["distance"]);
        assert_eq!(a["tile"], b["tile"], "the CPU tile on both");
        assert_eq!(
            a["same_index_share"], 1.0,
            "our search agrees with matmul+topk"
        );
    }
}
