//! Named tensors on disk as safetensors: every checkpoint, optimiser state, gallery
//! and imported weight file goes through here (atomic writes, errors naming the file).

use anyhow::{anyhow, ensure, Context, Result};
use std::collections::HashSet;
use std::path::Path;
use tch::{Kind, Tensor};

/// Reads every tensor of a safetensors file, by name.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes named tensors to a `.safetensors` file atomically (temp file + rename), so a
/// converted checkpoint can be read by `tch` and by Python's `safetensors`.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
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
    let bytes = safetensors::tensor::serialize(views, None)
        .with_context(|| format!("writing {}", path.display()))?;
    crate::atomic::write_atomic(path, &bytes)
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
