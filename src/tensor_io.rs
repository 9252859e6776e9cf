//! Named tensors on disk as safetensors: every checkpoint, optimiser state, gallery
//! and imported weight file goes through here (atomic writes, errors naming the file).

use anyhow::{anyhow, ensure, Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tch::{Kind, Tensor};

/// Reads every tensor of a safetensors file, by name.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))
}

/// The `__metadata__` strings of a safetensors file.
pub type Metadata = HashMap<String, String>;

/// Reads a safetensors file in one read: its tensors and its `__metadata__` strings (empty
/// when it has none), so both come from the same version of a file that is being replaced.
pub fn read_safetensors_with_metadata(path: &Path) -> Result<(Vec<(String, Tensor)>, Metadata)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut tensors = Vec::new();
    for (name, view) in parsed.tensors() {
        let kind = tch_kind(view.dtype()).ok_or_else(|| {
            anyhow!(
                "reading {}: tensor {name} has unsupported dtype {:?}",
                path.display(),
                view.dtype()
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)
            .with_context(|| format!("reading {}: tensor {name}", path.display()))?;
        tensors.push((name, tensor));
    }
    Ok((tensors, header.metadata().clone().unwrap_or_default()))
}

/// Writes named tensors to a `.safetensors` file atomically (temp file + rename), so a
/// converted checkpoint can be read by `tch` and by Python's `safetensors`.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    crate::atomic::write_atomic(path, &safetensors_bytes(path, tensors, None)?)
}

/// The bytes of a safetensors file holding `tensors` and, when given, `__metadata__`
/// strings; `path` is where they will go (for messages).
pub fn safetensors_bytes(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<Metadata>,
) -> Result<Vec<u8>> {
    let mut seen = HashSet::new();
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        ensure!(
            seen.insert(name.as_str()),
            "writing {}: tensor name {name} given twice",
            path.display()
        );
        let kind = tensor.f_kind()?;
        let dtype = safetensors_dtype(kind).ok_or_else(|| {
            anyhow!(
                "writing {}: tensor {name} has unsupported dtype {kind:?}",
                path.display()
            )
        })?;
        // at_copy_data copies raw memory: the tensor must be contiguous and on the CPU.
        let cpu = tensor.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
        let numel = cpu.numel();
        let mut data = vec![0u8; numel * kind.elt_size_in_bytes()];
        cpu.f_copy_data_u8(&mut data, numel)?;
        let shape: Vec<usize> = cpu.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), dtype, shape, data));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, data)| {
            Ok((
                name.as_str(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .with_context(|| format!("writing {}", path.display()))?;
    safetensors::tensor::serialize(views, metadata)
        .with_context(|| format!("writing {}", path.display()))
}

/// The tch kind of a safetensors dtype (the inverse of [`safetensors_dtype`]).
fn tch_kind(dtype: safetensors::Dtype) -> Option<Kind> {
    use safetensors::Dtype as D;
    Some(match dtype {
        D::F32 => Kind::Float,
        D::F64 => Kind::Double,
        D::F16 => Kind::Half,
        D::BF16 => Kind::BFloat16,
        D::I64 => Kind::Int64,
        D::I32 => Kind::Int,
        D::I16 => Kind::Int16,
        D::I8 => Kind::Int8,
        D::U8 => Kind::Uint8,
        D::BOOL => Kind::Bool,
        _ => return None,
    })
}

fn safetensors_dtype(kind: Kind) -> Option<safetensors::Dtype> {
    use safetensors::Dtype as D;
    Some(match kind {
        Kind::Float => D::F32,
        Kind::Double => D::F64,
        Kind::Half => D::F16,
        Kind::BFloat16 => D::BF16,
        Kind::Int64 => D::I64,
        Kind::Int => D::I32,
        Kind::Int16 => D::I16,
        Kind::Int8 => D::I8,
        Kind::Uint8 => D::U8,
        Kind::Bool => D::BOOL,
        _ => return None,
    })
}
