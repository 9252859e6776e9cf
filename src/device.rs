//! The compute device: `--device cpu|cuda|cuda:N` parsed and checked against the
//! libtorch this binary runs on, and the one place where tensors made on the CPU
//! (batches, targets, kNN candidates) move to it. docs/REFERENCE.md, "GPU", has the
//! three ways to get a CUDA libtorch.

use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;
use tch::{Device, Tensor};

/// Set by `build.rs` when the libtorch linked in has `libtorch_cuda.so`.
const LINKED_CUDA: Option<&str> = option_env!("DMLVIZ_LIBTORCH_CUDA");
/// The libtorch library directory `build.rs` linked against, for messages.
const LINKED_LIB: Option<&str> = option_env!("DMLVIZ_LIBTORCH_LIB");

/// A device as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// `cuda` is `cuda:0`.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<DeviceSpec> {
        let index = |n: &str| n.parse::<usize>().ok();
        match text {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match text.strip_prefix("cuda:").and_then(index) {
                Some(n) => Ok(DeviceSpec::Cuda(n)),
                None => bail!("device {text:?}: expected cpu, cuda or cuda:N (N a GPU index)"),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// How to get a CUDA libtorch, appended to every "no CUDA" message.
const HOW_TO_FIX: &str = "to use a GPU: `make setup-cuda`, then build with \
    LIBTORCH=$PWD/.libtorch-cuda (and CARGO_TARGET_DIR=target/cuda); or LIBTORCH=/path/to/libtorch \
    for a CUDA libtorch 2.13; or LIBTORCH_USE_PYTORCH=1 with a CUDA build of torch 2.13 in the \
    active Python (README, \"GPU\"); otherwise use --device cpu";

impl DeviceSpec {
    /// The `tch` device, or why it cannot be used: this libtorch has no CUDA (the
    /// CPU-only one `make setup` builds), CUDA sees no GPU, or too few of them.
    pub fn resolve(self) -> Result<Device> {
        let DeviceSpec::Cuda(n) = self else {
            return Ok(Device::Cpu);
        };
        if LINKED_CUDA.is_none() {
            bail!(
                "--device {self}: this dmlviz is built on a libtorch without CUDA ({}: no \
                 libtorch_cuda.so, the CPU-only libtorch `make setup` assembles); {HOW_TO_FIX}",
                LINKED_LIB.unwrap_or("unknown directory")
            );
        }
        let count = visible_gpus();
        if count == 0 {
            let visible = std::env::var("CUDA_VISIBLE_DEVICES")
                .map(|v| format!("CUDA_VISIBLE_DEVICES={v:?}"))
                .unwrap_or_else(|_| "CUDA_VISIBLE_DEVICES unset".into());
            bail!(
                "--device {self}: libtorch has CUDA but sees no GPU ({visible}); check that \
                 `nvidia-smi` lists one and that the driver supports CUDA 13, or use --device cpu"
            );
        }
        if n >= count {
            bail!(
                "--device {self}: only {count} GPU(s) visible (cuda:0 to cuda:{}); pick one of \
                 them or use --device cpu",
                count - 1
            );
        }
        Ok(Device::Cuda(n))
    }
}

/// GPUs libtorch can use (0 without a CUDA libtorch).
pub fn visible_gpus() -> usize {
    if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    }
}

/// `tensor` on `device`: the one place where tensors made on the CPU (loader batches,
/// labels, targets, kNN candidates) move to the compute device. A tensor already
/// there is shared, not copied.
pub fn onto(tensor: &Tensor, device: Device) -> Tensor {
    if tensor.device() == device {
        tensor.shallow_clone()
    } else {
        tensor.to_device(device)
    }
}

/// Waits for the work queued on `device` (CUDA runs kernels asynchronously, so a
/// timing must wait before reading the clock); nothing to wait for on the CPU.
pub fn synchronize(device: Device) {
    if let Device::Cuda(n) = device {
        tch::Cuda::synchronize(n as i64);
    }
}

/// libtorch on one thread while it lives, its former thread count restored on drop.
///
/// Why: libtorch's OpenMP workers spin between parallel regions and end each with a
/// barrier. Where the parallelism is coarser than one tensor operation (rayon's loops
/// around t-SNE's small FFTs; the exact search's query chunks, one per rayon worker),
/// libtorch on one thread leaves the cores to that. Profiled with `perf` on t-SNE at
/// 10 000 points, 2 threads: about 70 % of the time was spent spinning in libgomp.
pub struct OneTorchThread(i32);

impl OneTorchThread {
    /// Sets libtorch to one thread until the guard is dropped.
    pub fn new() -> OneTorchThread {
        let before = tch::get_num_threads();
        tch::set_num_threads(1);
        OneTorchThread(before)
    }
}

impl Default for OneTorchThread {
    fn default() -> Self {
        OneTorchThread::new()
    }
}

impl Drop for OneTorchThread {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print_back() {
        for (text, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:0", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), spec, "{text}");
        }
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        for bad in ["gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cpu:0", ""] {
            let err = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(err.contains("expected cpu, cuda or cuda:N"), "{bad}: {err}");
        }
    }

    #[test]
    fn cpu_always_resolves() {
        assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), Device::Cpu);
    }

    #[test]
    fn cuda_resolves_only_to_a_visible_gpu() {
        let gpus = visible_gpus();
        let beyond = DeviceSpec::Cuda(gpus).resolve().unwrap_err().to_string();
        assert!(beyond.contains("--device cpu"), "{beyond}");
        if gpus == 0 {
            let err = DeviceSpec::Cuda(0).resolve().unwrap_err().to_string();
            assert!(
                err.contains("without CUDA") || err.contains("sees no GPU"),
                "{err}"
            );
        } else {
            assert_eq!(DeviceSpec::Cuda(0).resolve().unwrap(), Device::Cuda(0));
        }
    }

    #[test]
    fn onto_shares_a_tensor_already_on_the_device() {
        let t = Tensor::from_slice(&[1f32, 2.0]);
        let same = onto(&t, Device::Cpu);
        assert_eq!(same.data_ptr(), t.data_ptr());
        assert_eq!(Vec::<f32>::try_from(&same).unwrap(), vec![1.0, 2.0]);
    }
}
