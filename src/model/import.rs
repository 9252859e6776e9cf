//! Weight import: reads PyTorch `state_dict` files (`torch.save`) into named tensors, copies
//! them into a [`VarStore`], and writes named tensors as `.safetensors`.
//!
//! Why our own reader: no `tch` loader reads a Python `state_dict` file, and the crates that
//! read pickles are heavy or miss the legacy format our ImageNet MobileNetV2 comes in
//! (docs/DESIGN.md, "Reading .pth files"). Both `torch.save` formats are handled:
//!
//! - **zip** (PyTorch ≥ 1.6): `<folder>/data.pkl` (the folder name varies with the file
//!   name), raw little-endian storages in `<folder>/data/<key>`, `<folder>/byteorder`.
//! - **legacy** (`_use_new_zipfile_serialization=False`, PyTorch < 1.6): five pickles back to
//!   back (magic number, protocol 1001, sys_info, the object, the storage key list), then for
//!   each listed key an int64 element count and the raw data.
//!
//! Only the pickle opcodes and globals a `state_dict` needs are understood; anything else
//! is an error naming the file, the opcode or global, and its byte offset. Tensors come
//! back as views (`as_strided`) over their storages, exactly as `torch.load` builds them:
//! shared storages, non-zero offsets and non-contiguous strides keep their meaning.

use anyhow::{anyhow, bail, ensure, Context, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// Tensors of a PyTorch state_dict file, by name, in file order.
///
/// The file's top-level object must be a dict (a `state_dict`, plain or `OrderedDict`).
/// Nested dicts, lists and tuples are flattened with `.`-joined names (so a full training
/// checkpoint gives `state_dict.conv1.weight`, ...); scalar entries (ints, strings, None)
/// are skipped; any other object is an error naming the Python callable that built it.
/// Tensors are views over their storages, as `torch.load` returns them.
pub fn read_pth(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_pth(&bytes).with_context(|| format!("reading PyTorch checkpoint {}", path.display()))
}

/// What [`load_into`] did: names of the variables loaded, missing from the file, unexpected in
/// the file, and loaded with a different shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// Var-store names that received a tensor from the file, sorted.
    pub loaded: Vec<String>,
    /// Var-store names (under `add_prefix`, not ignored) with no tensor in the file, sorted.
    pub missing: Vec<String>,
    /// File names (not ignored) with no variable in the var store, in file order.
    pub unexpected: Vec<String>,
    /// `(var-store name, shape in the file, shape in the var store)`, in file order.
    pub mismatched: Vec<(String, Vec<i64>, Vec<i64>)>,
}

/// How [`load_into`] maps file names onto var-store names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// Load what fits and report the rest instead of refusing.
    pub partial: bool,
    /// File names starting with one of these (e.g. `"fc."`, `"classifier."`: an ImageNet
    /// head the embedding network replaces) are neither loaded nor reported; var-store
    /// variables whose name (without `add_prefix`) starts with one are not reported missing.
    pub ignore_prefixes: Vec<String>,
    /// Prepended to every file name to get the var-store name (e.g. `"backbone."`). Only
    /// variables whose names start with it are expected in the file.
    pub add_prefix: String,
}

/// Copies tensors into `vs` variables with the same names (after `opts.add_prefix` is
/// prepended), skipping names under `opts.ignore_prefixes`.
///
/// Refuses, copying nothing, with an error listing every problem by name when a variable
/// is missing, a file tensor is unexpected or a shape differs, unless `opts.partial`.
/// Values are converted to the variable's dtype (a float16 file loads into float32
/// variables); a float/integer/bool family change is always refused, as it would truncate.
pub fn load_into(
    vs: &mut VarStore,
    tensors: &[(String, Tensor)],
    opts: &ImportOptions,
) -> Result<ImportReport> {
    let ignored = |name: &str| {
        opts.ignore_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()))
    };
    let vars = vs.variables();
    let mut report = ImportReport::default();
    let mut plan: Vec<(String, &Tensor)> = Vec::new();
    let mut bad_kinds: Vec<String> = Vec::new();
    let mut found: HashSet<String> = HashSet::new();
    for (name, tensor) in tensors {
        if ignored(name) {
            continue;
        }
        let target = format!("{}{name}", opts.add_prefix);
        let Some(var) = vars.get(&target) else {
            report.unexpected.push(name.clone());
            continue;
        };
        found.insert(target.clone());
        let (file_kind, var_kind) = (tensor.f_kind()?, var.f_kind()?);
        if kind_family(file_kind) != kind_family(var_kind) {
            bad_kinds.push(format!("{target} (file {file_kind:?}, model {var_kind:?})"));
        } else if tensor.size() != var.size() {
            report.mismatched.push((target, tensor.size(), var.size()));
        } else {
            plan.push((target, tensor));
        }
    }
    let mut missing: Vec<String> = vars
        .keys()
        .filter(|n| !found.contains(*n))
        .filter_map(|n| {
            n.strip_prefix(opts.add_prefix.as_str())
                .map(|rest| (n, rest))
        })
        .filter(|(_, rest)| !ignored(rest))
        .map(|(n, _)| n.clone())
        .collect();
    missing.sort();
    report.missing = missing;

    let problems = import_problems(&report, &bad_kinds, opts.partial);
    if !problems.is_empty() {
        // Checked before any copy, so a refused import leaves the var store untouched.
        bail!(
            "weights do not fit the model (nothing loaded{}):\n  {}",
            if opts.partial {
                ""
            } else {
                "; `partial` loads what fits"
            },
            problems.join("\n  ")
        );
    }
    tch::no_grad(|| -> Result<()> {
        for (target, tensor) in &plan {
            let mut var = vars[target].shallow_clone();
            var.f_copy_(tensor)
                .with_context(|| format!("copying {target}"))?;
        }
        Ok(())
    })?;
    report.loaded = plan.into_iter().map(|(n, _)| n).collect();
    report.loaded.sort();
    Ok(report)
}

/// Why an import is refused: dtype-family changes always, missing, unexpected and
/// mis-shaped names unless `partial`.
fn import_problems(report: &ImportReport, bad_kinds: &[String], partial: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if !bad_kinds.is_empty() {
        problems.push(format!("incompatible dtypes: {}", bad_kinds.join(", ")));
    }
    if !partial {
        if !report.missing.is_empty() {
            problems.push(format!(
                "missing from the file: {}",
                report.missing.join(", ")
            ));
        }
        if !report.unexpected.is_empty() {
            problems.push(format!(
                "not in the model: {}",
                report.unexpected.join(", ")
            ));
        }
        if !report.mismatched.is_empty() {
            let list: Vec<String> = report
                .mismatched
                .iter()
                .map(|(n, file, model)| format!("{n} (file {file:?}, model {model:?})"))
                .collect();
            problems.push(format!("shape mismatch: {}", list.join(", ")));
        }
    }
    problems
}

pub use crate::tensor_io::write_safetensors;

/// Float, integer and bool kinds: conversion within a family keeps values meaningful.
fn kind_family(kind: Kind) -> u8 {
    match kind {
        Kind::Bool => 2,
        Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64 => 1,
        _ => 0,
    }
}

/// The tensor kind of a `torch.XStorage` global (`torch.cuda.XStorage` in legacy GPU saves).
fn storage_kind(module: &str, name: &str) -> Option<Kind> {
    if module != "torch" && module != "torch.cuda" {
        return None;
    }
    Some(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// File formats

/// The legacy format's first pickle: protocol 2, LONG1 of 10 bytes holding the magic number
/// 0x1950a86a20f9469cfc6c, STOP. Compared literally (a general pickle reader misreads it).
const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

/// Tensors of a checkpoint held in memory (errors say what is wrong, callers add the file).
fn parse_pth(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        parse_zip(bytes)
    } else if bytes.starts_with(&LEGACY_MAGIC) {
        parse_legacy(bytes)
    } else if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        bail!("tar checkpoint (PyTorch < 0.4) is not supported; re-save it with a newer torch")
    } else {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        bail!(
            "not a PyTorch checkpoint: starts with bytes [{}], expected a zip archive or the legacy magic number",
            head.join(" ")
        )
    }
}

fn parse_zip(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("reading the zip directory")?;
    // The folder name is the saved file's stem ("archive" in older torch): find it.
    let pickles: Vec<String> = zip
        .file_names()
        .filter(|n| n.split('/').count() == 2 && n.ends_with("/data.pkl"))
        .map(String::from)
        .collect();
    let pkl_name = match pickles.as_slice() {
        [one] => one.clone(),
        [] => bail!("zip archive has no <folder>/data.pkl: not a torch.save file"),
        many => bail!(
            "zip archive has several data.pkl files: {}",
            many.join(", ")
        ),
    };
    let folder = pkl_name.trim_end_matches("data.pkl").to_string();
    if zip.file_names().any(|n| n == format!("{folder}byteorder")) {
        let order = read_entry(&mut zip, &format!("{folder}byteorder"), None)?;
        ensure!(
            order == b"little",
            "{folder}byteorder says {:?}: only little-endian checkpoints are supported",
            String::from_utf8_lossy(&order)
        );
    }
    let pickle = read_entry(&mut zip, &pkl_name, None)?;
    let top = Unpickler::new(&pickle, 0, &pkl_name).run()?;
    let entries = state_dict_entries(&top).with_context(|| format!("in {pkl_name}"))?;
    let mut bases: HashMap<String, Tensor> = HashMap::new();
    for storage in unique_storages(&entries)? {
        let name = format!("{folder}data/{}", storage.key);
        let nbytes = storage_bytes(&storage)?;
        let data = read_entry(&mut zip, &name, Some(nbytes))?;
        ensure!(
            data.len() == nbytes,
            "{name} holds {} bytes, the pickle says {} elements of {:?} ({nbytes} bytes)",
            data.len(),
            storage.numel,
            storage.kind
        );
        bases.insert(
            storage.key.clone(),
            base_tensor(&data, &storage).with_context(|| format!("storage {name}"))?,
        );
    }
    build_tensors(&entries, &bases)
}

/// Bytes of one zip entry; with `limit`, reads no more than that (corrupt sizes cannot make
/// us allocate more than the storage needs).
fn read_entry(
    zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    limit: Option<usize>,
) -> Result<Vec<u8>> {
    let file = zip
        .by_name(name)
        .with_context(|| format!("zip entry {name}"))?;
    let mut data = Vec::new();
    match limit {
        // One byte past the storage: reaching the end makes the zip reader check the CRC.
        Some(n) => file.take(n as u64 + 1).read_to_end(&mut data),
        None => file.take(u32::MAX as u64).read_to_end(&mut data),
    }
    .with_context(|| format!("reading zip entry {name}"))?;
    Ok(data)
}

fn parse_legacy(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut pos = LEGACY_MAGIC.len();
    let (version, next) = Unpickler::new(bytes, pos, "protocol version pickle").run_at()?;
    ensure!(
        matches!(version, Value::Int(1001)),
        "legacy protocol version is {}, expected 1001 (pickle at byte {pos})",
        version.type_name()
    );
    pos = next;
    let (sys_info, next) = Unpickler::new(bytes, pos, "sys_info pickle").run_at()?;
    if let Value::Dict(d) = &sys_info {
        if let Some(little) = d.borrow().get("little_endian") {
            ensure!(
                matches!(little, Value::Bool(true)),
                "checkpoint was written big-endian: not supported"
            );
        }
    } else {
        bail!(
            "sys_info pickle at byte {pos} is a {}, expected a dict",
            sys_info.type_name()
        );
    }
    pos = next;
    let (top, next) = Unpickler::new(bytes, pos, "main pickle").run_at()?;
    let entries =
        state_dict_entries(&top).with_context(|| format!("in the main pickle at byte {pos}"))?;
    pos = next;
    let (keys, next) = Unpickler::new(bytes, pos, "storage key pickle").run_at()?;
    let keys: Vec<String> = match &keys {
        Value::List(l) => l
            .borrow()
            .items
            .iter()
            .map(|k| {
                k.as_key().ok_or_else(|| {
                    anyhow!("storage key list at byte {pos} holds a {}", k.type_name())
                })
            })
            .collect::<Result<_>>()?,
        other => bail!(
            "storage key pickle at byte {pos} is a {}, expected a list",
            other.type_name()
        ),
    };
    pos = next;
    let storages: HashMap<String, Rc<StorageRef>> = unique_storages(&entries)?
        .into_iter()
        .map(|s| (s.key.clone(), s))
        .collect();
    let bases = legacy_storage_data(bytes, pos, keys, &storages)?;
    build_tensors(&entries, &bases)
}

/// The legacy format's storage data, from byte `pos` on: for each key in `keys`, an
/// int64 LE element count followed by the raw LE data. Every storage a tensor uses
/// must be there exactly once.
fn legacy_storage_data(
    bytes: &[u8],
    mut pos: usize,
    keys: Vec<String>,
    storages: &HashMap<String, Rc<StorageRef>>,
) -> Result<HashMap<String, Tensor>> {
    let mut bases: HashMap<String, Tensor> = HashMap::new();
    for key in keys {
        let at = pos;
        let count = bytes
            .get(pos..pos + 8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| {
                anyhow!(
                    "file ends at byte {} inside the element count of storage {key}",
                    bytes.len()
                )
            })?;
        pos += 8;
        // A storage no tensor uses: its dtype is unknown, but torch writes none such.
        let storage = storages
            .get(&key)
            .ok_or_else(|| anyhow!("storage {key} (data at byte {at}) is used by no tensor"))?;
        ensure!(
            count == storage.numel,
            "storage {key} at byte {at} holds {count} elements, the pickle says {}",
            storage.numel
        );
        let nbytes = storage_bytes(storage)?;
        let data = bytes
            .get(pos..)
            .filter(|rest| rest.len() >= nbytes)
            .map(|rest| &rest[..nbytes])
            .ok_or_else(|| {
                anyhow!(
                    "file ends at byte {} inside storage {key} ({nbytes} bytes from byte {pos})",
                    bytes.len()
                )
            })?;
        pos += nbytes;
        ensure!(
            !bases.contains_key(&key),
            "storage {key} listed twice (second at byte {at})"
        );
        bases.insert(
            key.clone(),
            base_tensor(data, storage).with_context(|| format!("storage {key}"))?,
        );
    }
    for key in storages.keys() {
        ensure!(
            bases.contains_key(key),
            "storage {key} is used by a tensor but not in the storage list"
        );
    }
    Ok(bases)
}

// ---------------------------------------------------------------------------------------
// Storages and tensors

/// A storage as the pickle names it: `('storage', torch.FloatStorage, key, location, numel
/// [, view_metadata])`; legacy view metadata makes it a window into the root storage.
#[derive(Debug)]
struct StorageRef {
    key: String,
    kind: Kind,
    /// Elements of the root storage (what the data file holds).
    numel: i64,
    /// Window of a legacy storage view into the root storage: first element and length.
    view_offset: i64,
    view_numel: i64,
}

/// A tensor as `_rebuild_tensor_v2(storage, offset, size, stride, ...)` describes it.
#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

fn storage_bytes(storage: &StorageRef) -> Result<usize> {
    usize::try_from(storage.numel)
        .ok()
        .and_then(|n| n.checked_mul(storage.kind.elt_size_in_bytes()))
        .ok_or_else(|| {
            anyhow!(
                "storage {} has an impossible size of {} elements",
                storage.key,
                storage.numel
            )
        })
}

/// Each storage once, checking that all references agree on its dtype and size.
fn unique_storages(entries: &[(String, Rc<TensorRef>)]) -> Result<Vec<Rc<StorageRef>>> {
    let mut seen: BTreeMap<String, Rc<StorageRef>> = BTreeMap::new();
    for (name, t) in entries {
        let s = &t.storage;
        match seen.get(&s.key) {
            Some(prev) => ensure!(
                prev.kind == s.kind && prev.numel == s.numel,
                "tensor {name} sees storage {} as {} × {:?}, an earlier tensor as {} × {:?}",
                s.key,
                s.numel,
                s.kind,
                prev.numel,
                prev.kind
            ),
            None => {
                seen.insert(s.key.clone(), s.clone());
            }
        }
    }
    Ok(seen.into_values().collect())
}

/// The whole storage as a 1-D tensor: every tensor of the file is a view into one of these.
fn base_tensor(data: &[u8], storage: &StorageRef) -> Result<Tensor> {
    // libtorch expects bool bytes to be 0 or 1; a corrupt byte must not become a third value.
    let normalised;
    let data = if storage.kind == Kind::Bool {
        normalised = data.iter().map(|&b| (b != 0) as u8).collect::<Vec<u8>>();
        &normalised[..]
    } else {
        data
    };
    Ok(Tensor::f_from_data_size(
        data,
        &[storage.numel],
        storage.kind,
    )?)
}

fn build_tensors(
    entries: &[(String, Rc<TensorRef>)],
    bases: &HashMap<String, Tensor>,
) -> Result<Vec<(String, Tensor)>> {
    entries
        .iter()
        .map(|(name, t)| {
            let base = bases
                .get(&t.storage.key)
                .ok_or_else(|| anyhow!("tensor {name}: storage {} not found", t.storage.key))?;
            let view = base
                .f_as_strided(
                    t.size.as_slice(),
                    t.stride.as_slice(),
                    t.storage.view_offset + t.offset,
                )
                .with_context(|| format!("tensor {name}"))?;
            Ok((name.clone(), view))
        })
        .collect()
}

/// Flattens the unpickled top-level dict into (name, tensor) in file order.
fn state_dict_entries(top: &Value) -> Result<Vec<(String, Rc<TensorRef>)>> {
    match top {
        Value::Dict(_) => {}
        Value::Object(callable) => bail!(
            "the file holds an object built by {callable}, expected a dict of tensors (a state_dict){}",
            if callable.starts_with("__torch__") { "; this looks like a TorchScript archive" } else { "" }
        ),
        other => bail!("the file holds a {}, expected a dict of tensors (a state_dict)", other.type_name()),
    }
    let mut out = Vec::new();
    flatten("", top, &mut out, 0)?;
    let mut names = HashSet::new();
    for (name, _) in &out {
        ensure!(
            names.insert(name.as_str()),
            "tensor name {name} occurs twice after flattening nested dicts"
        );
    }
    Ok(out)
}

fn flatten(
    prefix: &str,
    value: &Value,
    out: &mut Vec<(String, Rc<TensorRef>)>,
    depth: usize,
) -> Result<()> {
    ensure!(
        depth < 64,
        "entry {prefix}: containers nested more than 64 deep"
    );
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Tensor(t) => out.push((prefix.to_string(), t.clone())),
        Value::Dict(d) => {
            for (k, v) in &d.borrow().items {
                let key = k
                    .as_key()
                    .ok_or_else(|| anyhow!("entry {prefix}: dict key is a {}", k.type_name()))?;
                flatten(&join(&key), v, out, depth + 1)?;
            }
        }
        Value::List(l) => {
            for (i, v) in l.borrow().items.iter().enumerate() {
                flatten(&join(&i.to_string()), v, out, depth + 1)?;
            }
        }
        Value::Tuple(t) => {
            for (i, v) in t.items.iter().enumerate() {
                flatten(&join(&i.to_string()), v, out, depth + 1)?;
            }
        }
        Value::None
        | Value::Bool(_)
        | Value::Int(_)
        | Value::Float(_)
        | Value::Str(_)
        | Value::Bytes(_) => {}
        Value::Object(callable) => {
            bail!("entry {prefix}: object built by {callable} is not supported")
        }
        Value::Global(g) => bail!(
            "entry {prefix}: a bare reference to {}.{} is not supported",
            g.0,
            g.1
        ),
        Value::Storage(s) => bail!(
            "entry {prefix}: a bare storage ({}) is not supported",
            s.key
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Pickle reader

/// Containers nested deeper than this are refused: dropping or walking a deeper (corrupt
/// or hostile) structure could overflow the stack.
const MAX_DEPTH: u32 = 1000;

/// An unpickled Python value. Lists and dicts are shared and mutable, as in Python: the memo
/// and the stack may hold the same one while SETITEMS/APPENDS fill it.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Seq>),
    List(Rc<RefCell<Seq>>),
    Dict(Rc<RefCell<DictObj>>),
    /// A `module.name` reference (GLOBAL), callable by REDUCE.
    Global(Rc<(String, String)>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// The result of calling a global we do not model: only its name is kept, for errors.
    Object(Rc<str>),
}

#[derive(Debug, Default)]
struct Seq {
    items: Vec<Value>,
    depth: u32,
}

#[derive(Debug, Default)]
struct DictObj {
    items: Vec<(Value, Value)>,
    /// Position of each string key in `items`: a repeated key replaces the value, as in Python.
    index: HashMap<Rc<str>, usize>,
    depth: u32,
}

impl DictObj {
    fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.items[i].1)
    }

    fn insert(&mut self, key: Value, value: Value) {
        self.depth = self.depth.max(1 + key.depth().max(value.depth()));
        if let Value::Str(s) = &key {
            if let Some(&i) = self.index.get(s) {
                self.items[i].1 = value;
                return;
            }
            self.index.insert(s.clone(), self.items.len());
        }
        self.items.push((key, value));
    }
}

impl Value {
    fn type_name(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(i) => format!("int ({i})"),
            Value::Float(f) => format!("float ({f})"),
            Value::Str(s) => format!("str ({s:?})"),
            Value::Bytes(b) => format!("bytes ({} long)", b.len()),
            Value::Tuple(_) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Dict(_) => "dict".into(),
            Value::Global(g) => format!("global {}.{}", g.0, g.1),
            Value::Storage(_) => "storage".into(),
            Value::Tensor(_) => "tensor".into(),
            Value::Object(c) => format!("object built by {c}"),
        }
    }

    fn depth(&self) -> u32 {
        match self {
            Value::Tuple(s) => s.depth,
            // try_borrow: a list being filled may be looked at while borrowed (self-reference).
            Value::List(l) => l.try_borrow().map(|s| s.depth).unwrap_or(MAX_DEPTH),
            Value::Dict(d) => d.try_borrow().map(|d| d.depth).unwrap_or(MAX_DEPTH),
            _ => 0,
        }
    }

    /// A dict key or storage key as text (torch writes str keys; ints appear in optimizer state).
    fn as_key(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    fn ints(&self) -> Option<Vec<i64>> {
        match self {
            Value::Tuple(t) => t.items.iter().map(Value::int).collect(),
            Value::List(l) => l.borrow().items.iter().map(Value::int).collect(),
            _ => None,
        }
    }
}

fn tuple(items: Vec<Value>) -> Result<Value> {
    let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
    ensure!(
        depth <= MAX_DEPTH,
        "containers nested more than {MAX_DEPTH} deep"
    );
    Ok(Value::Tuple(Rc::new(Seq { items, depth })))
}

/// A protocol ≤ 5 pickle machine restricted to what `torch.save` writes for a state_dict.
struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    /// What this pickle is, for errors ("data.pkl", "main pickle").
    what: &'a str,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8], pos: usize, what: &'a str) -> Self {
        Unpickler {
            data,
            pos,
            what,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    /// Runs to STOP; the value and the byte after STOP.
    fn run_at(mut self) -> Result<(Value, usize)> {
        let value = self.run_inner()?;
        Ok((value, self.pos))
    }

    fn run(self) -> Result<Value> {
        self.run_at().map(|(v, _)| v)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                anyhow!(
                    "the data ends at byte {} but {n} more bytes are needed at byte {}",
                    data.len(),
                    self.pos
                )
            })?;
        let out = &data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| anyhow!("no end of line"))?;
        let text = std::str::from_utf8(&rest[..n])
            .map_err(|_| anyhow!("name is not UTF-8"))?
            .to_string();
        self.pos += n + 1;
        Ok(text)
    }

    fn text(&mut self, n: u64) -> Result<Value> {
        let n = usize::try_from(n)?;
        let bytes = self.take(n)?;
        let s = std::str::from_utf8(bytes).map_err(|_| anyhow!("string is not UTF-8"))?;
        Ok(Value::Str(s.into()))
    }

    fn bytes(&mut self, n: u64) -> Result<Value> {
        let n = usize::try_from(n)?;
        Ok(Value::Bytes(self.take(n)?.into()))
    }

    /// Two's-complement little-endian integer of LONG1/LONG4.
    fn long(&mut self, n: u64) -> Result<Value> {
        ensure!(n <= 8, "integer of {n} bytes does not fit in 64 bits");
        let bytes = self.take(n as usize)?;
        if bytes.is_empty() {
            return Ok(Value::Int(0));
        }
        let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
            0xff
        } else {
            0
        };
        let mut full = [fill; 8];
        full[..bytes.len()].copy_from_slice(bytes);
        Ok(Value::Int(i64::from_le_bytes(full)))
    }

    /// Stack floor: values below the last MARK belong to an outer frame.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value> {
        ensure!(self.stack.len() > self.floor(), "the stack is empty");
        Ok(self.stack.pop().expect("checked non-empty"))
    }

    fn top(&self) -> Result<&Value> {
        ensure!(self.stack.len() > self.floor(), "the stack is empty");
        Ok(self.stack.last().expect("checked non-empty"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| anyhow!("no MARK to pop to"))?;
        Ok(self.stack.split_off(mark))
    }

    fn run_inner(&mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = self.u8().map_err(|_| {
                anyhow!(
                    "{}: the data ends at byte {at} before the STOP opcode",
                    self.what
                )
            })?;
            match self.step(op) {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(e) => {
                    let shown = if op.is_ascii_graphic() {
                        format!(" '{}'", op as char)
                    } else {
                        String::new()
                    };
                    return Err(e.context(format!(
                        "{}: opcode 0x{op:02x}{shown} at byte {at}",
                        self.what
                    )));
                }
            }
        }
    }

    /// One opcode; `Some` at STOP. Long on purpose: one arm per opcode keeps the whole
    /// opcode table readable in one place, as the pickle specification lists it.
    fn step(&mut self, op: u8) -> Result<Option<Value>> {
        let value = match op {
            0x80 => {
                let proto = self.u8()?;
                ensure!(proto <= 5, "pickle protocol {proto} is unknown");
                return Ok(None);
            }
            0x95 => {
                self.u64()?; // FRAME: a length hint only
                return Ok(None);
            }
            b'.' => return Ok(Some(self.pop()?)),
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                Value::Global(Rc::new((module, name)))
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => {
                        Value::Global(Rc::new((m.to_string(), n.to_string())))
                    }
                    (m, n) => bail!(
                        "STACK_GLOBAL needs two strings, got {} and {}",
                        m.type_name(),
                        n.type_name()
                    ),
                }
            }
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => self.u8()? as u32,
                    b'r' => self.u32()?,
                    _ => self.memo.len() as u32,
                };
                let top = self.top()?.clone();
                self.memo.insert(key, top);
                return Ok(None);
            }
            b'h' | b'j' => {
                let key = if op == b'h' {
                    self.u8()? as u32
                } else {
                    self.u32()?
                };
                self.memo
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| anyhow!("memo entry {key} was never stored"))?
            }
            b'(' => {
                self.marks.push(self.stack.len());
                return Ok(None);
            }
            b')' => tuple(Vec::new())?,
            b't' => {
                let items = self.pop_mark()?;
                tuple(items)?
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                ensure!(
                    self.stack.len() >= self.floor() + n,
                    "the stack holds fewer than {n} items"
                );
                let items = self.stack.split_off(self.stack.len() - n);
                tuple(items)?
            }
            b']' => Value::List(Rc::new(RefCell::new(Seq {
                items: Vec::new(),
                depth: 1,
            }))),
            b'l' => {
                let items = self.pop_mark()?;
                let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
                ensure!(
                    depth <= MAX_DEPTH,
                    "containers nested more than {MAX_DEPTH} deep"
                );
                Value::List(Rc::new(RefCell::new(Seq { items, depth })))
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![self.pop()?]
                } else {
                    self.pop_mark()?
                };
                let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
                ensure!(
                    depth <= MAX_DEPTH,
                    "containers nested more than {MAX_DEPTH} deep"
                );
                match self.top()? {
                    Value::List(l) => {
                        let mut l = l
                            .try_borrow_mut()
                            .map_err(|_| anyhow!("list appended to itself"))?;
                        l.depth = l.depth.max(depth);
                        l.items.extend(items);
                    }
                    other => bail!("APPEND to a {}", other.type_name()),
                }
                return Ok(None);
            }
            b'}' => Value::Dict(Rc::new(RefCell::new(DictObj {
                depth: 1,
                ..Default::default()
            }))),
            b'd' => {
                let items = self.pop_mark()?;
                let mut dict = DictObj {
                    depth: 1,
                    ..Default::default()
                };
                fill_dict(&mut dict, items)?;
                Value::Dict(Rc::new(RefCell::new(dict)))
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    vec![key, value]
                } else {
                    self.pop_mark()?
                };
                match self.top()? {
                    Value::Dict(d) => {
                        let mut d = d
                            .try_borrow_mut()
                            .map_err(|_| anyhow!("dict stored in itself"))?;
                        fill_dict(&mut d, items)?;
                    }
                    other => bail!("SETITEM on a {}", other.type_name()),
                }
                return Ok(None);
            }
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'J' => Value::Int(i32::from_le_bytes(self.take(4)?.try_into()?) as i64),
            b'K' => Value::Int(self.u8()? as i64),
            b'M' => Value::Int(self.u16()? as i64),
            0x8a => {
                let n = self.u8()? as u64;
                self.long(n)?
            }
            0x8b => {
                let n = self.u32()? as u64;
                self.long(n)?
            }
            b'G' => Value::Float(f64::from_be_bytes(self.take(8)?.try_into()?)),
            b'X' | b'T' => {
                let n = self.u32()? as u64;
                self.text(n)?
            }
            0x8c | b'U' => {
                let n = self.u8()? as u64;
                self.text(n)?
            }
            0x8d => {
                let n = self.u64()?;
                self.text(n)?
            }
            b'B' => {
                let n = self.u32()? as u64;
                self.bytes(n)?
            }
            b'C' => {
                let n = self.u8()? as u64;
                self.bytes(n)?
            }
            0x8e => {
                let n = self.u64()?;
                self.bytes(n)?
            }
            b'Q' => {
                let pid = self.pop()?;
                persistent_load(&pid)?
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let func = self.pop()?;
                call(&func, &args)?
            }
            b'b' => {
                // BUILD sets attributes (an OrderedDict's `_metadata`, module versions): they
                // carry no tensor data, so the state is dropped.
                self.pop()?;
                self.top()?;
                return Ok(None);
            }
            b'0' => {
                if self.stack.len() == self.floor() && !self.marks.is_empty() {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
                return Ok(None);
            }
            b'1' => {
                self.pop_mark()?;
                return Ok(None);
            }
            b'2' => self.top()?.clone(),
            _ => bail!("unsupported pickle opcode"),
        };
        self.stack.push(value);
        Ok(None)
    }
}

fn fill_dict(dict: &mut DictObj, items: Vec<Value>) -> Result<()> {
    ensure!(
        items.len().is_multiple_of(2),
        "odd number of items ({}) for a dict",
        items.len()
    );
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        dict.insert(k, v);
    }
    ensure!(
        dict.depth <= MAX_DEPTH,
        "containers nested more than {MAX_DEPTH} deep"
    );
    Ok(())
}

/// `('storage', torch.FloatStorage, key, location, numel[, view_metadata])`.
fn persistent_load(pid: &Value) -> Result<Value> {
    let Value::Tuple(t) = pid else {
        bail!("persistent id is a {}, expected a tuple", pid.type_name())
    };
    let items = &t.items;
    match items.first() {
        Some(Value::Str(s)) if &**s == "storage" => {}
        Some(Value::Str(s)) if &**s == "module" => {
            bail!("the file pickles a whole nn.Module: save model.state_dict() instead")
        }
        Some(other) => bail!(
            "persistent id of type {} (only 'storage' is supported)",
            other.type_name()
        ),
        None => bail!("empty persistent id"),
    }
    ensure!(
        items.len() == 5 || items.len() == 6,
        "storage persistent id has {} fields, expected 5 or 6",
        items.len()
    );
    let kind = match &items[1] {
        Value::Global(g) => storage_kind(&g.0, &g.1)
            .ok_or_else(|| anyhow!("unsupported storage type {}.{} (known: torch.FloatStorage, DoubleStorage, HalfStorage, BFloat16Storage, LongStorage, IntStorage, ShortStorage, CharStorage, ByteStorage, BoolStorage)", g.0, g.1))?,
        other => bail!("storage type is a {}, expected a torch.XStorage global", other.type_name()),
    };
    let key = items[2]
        .as_key()
        .ok_or_else(|| anyhow!("storage key is a {}", items[2].type_name()))?;
    let numel = items[4]
        .int()
        .filter(|&n| n >= 0)
        .ok_or_else(|| anyhow!("storage {key}: size is a {}", items[4].type_name()))?;
    ensure!(
        numel <= i64::MAX / 16,
        "storage {key}: impossible size {numel}"
    );
    let (view_offset, view_numel) = match items.get(5) {
        None | Some(Value::None) => (0, numel),
        Some(Value::Tuple(v)) if v.items.len() == 3 => {
            let off = v.items[1].int().filter(|&o| o >= 0);
            let len = v.items[2].int().filter(|&n| n >= 0);
            match (off, len) {
                (Some(o), Some(n)) if o.checked_add(n).is_some_and(|end| end <= numel) => (o, n),
                _ => bail!("storage {key}: view metadata is not (key, offset, size) within {numel} elements"),
            }
        }
        Some(other) => bail!("storage {key}: view metadata is a {}", other.type_name()),
    };
    Ok(Value::Storage(Rc::new(StorageRef {
        key,
        kind,
        numel,
        view_offset,
        view_numel,
    })))
}

/// REDUCE / NEWOBJ: the globals a state_dict uses are modelled, others become opaque objects.
fn call(func: &Value, args: &Value) -> Result<Value> {
    let Value::Global(g) = func else {
        bail!("call of a {}, expected a global", func.type_name())
    };
    let Value::Tuple(args) = args else {
        bail!(
            "arguments of {}.{} are a {}, expected a tuple",
            g.0,
            g.1,
            args.type_name()
        )
    };
    let args = &args.items;
    Ok(match (g.0.as_str(), g.1.as_str()) {
        ("collections", "OrderedDict") | ("builtins", "dict") | ("__builtin__", "dict") => {
            let mut dict = DictObj {
                depth: 1,
                ..Default::default()
            };
            // OrderedDict([(k, v), ...]) form; torch.save writes OrderedDict() + SETITEMS.
            if let Some(Value::List(pairs)) = args.first() {
                let mut items = Vec::new();
                for pair in &pairs.borrow().items {
                    match pair {
                        Value::Tuple(p) if p.items.len() == 2 => {
                            items.extend(p.items.iter().cloned())
                        }
                        other => bail!(
                            "OrderedDict item is a {}, expected a pair",
                            other.type_name()
                        ),
                    }
                }
                fill_dict(&mut dict, items)?;
            }
            Value::Dict(Rc::new(RefCell::new(dict)))
        }
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            rebuild_tensor(args)?
        }
        ("torch._utils", "_rebuild_parameter")
        | ("torch._utils", "_rebuild_parameter_with_state") => match args.first() {
            Some(t @ Value::Tensor(_)) => t.clone(),
            other => bail!(
                "{} needs a tensor, got {}",
                g.1,
                other
                    .map(Value::type_name)
                    .unwrap_or_else(|| "nothing".into())
            ),
        },
        (module, name) => Value::Object(format!("{module}.{name}").into()),
    })
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])`,
/// checked against the storage so that the later `as_strided` stays inside it.
fn rebuild_tensor(args: &[Value]) -> Result<Value> {
    ensure!(
        args.len() >= 4,
        "tensor rebuild with {} arguments, expected at least 4",
        args.len()
    );
    let Value::Storage(storage) = &args[0] else {
        bail!("tensor storage is a {}", args[0].type_name())
    };
    let offset = args[1]
        .int()
        .filter(|&o| o >= 0)
        .ok_or_else(|| anyhow!("tensor offset is a {}", args[1].type_name()))?;
    let size = args[2]
        .ints()
        .ok_or_else(|| anyhow!("tensor size is a {}", args[2].type_name()))?;
    let stride = args[3]
        .ints()
        .ok_or_else(|| anyhow!("tensor stride is a {}", args[3].type_name()))?;
    ensure!(
        size.len() == stride.len(),
        "tensor size {size:?} and stride {stride:?} differ in length"
    );
    ensure!(
        size.iter().chain(&stride).all(|&d| d >= 0),
        "negative size or stride: {size:?}, {stride:?}"
    );
    // Element count must fit in i64; the farthest element must lie inside the storage window.
    let mut numel: i128 = 1;
    let mut last: i128 = offset as i128;
    for (&d, &s) in size.iter().zip(&stride) {
        numel *= d as i128;
        ensure!(
            numel <= i64::MAX as i128,
            "tensor size {size:?} has too many elements"
        );
        last += (d as i128 - 1).max(0) * s as i128;
    }
    if numel > 0 {
        ensure!(
            last < storage.view_numel as i128,
            "tensor (offset {offset}, size {size:?}, stride {stride:?}) reaches element {last} of storage {} which holds {}",
            storage.key,
            storage.view_numel
        );
    }
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage: storage.clone(),
        offset,
        size,
        stride,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/weights")
            .join(name)
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(&t.to_kind(Kind::Double).reshape([-1])).unwrap()
    }

    const FIXTURES: [&str; 3] = ["small_zip.pth", "small_legacy.pth", "small_deflate.pth"];

    /// fixtures/weights/make_weights.py writes these tensors in all three files.
    fn check_fixture(tensors: &[(String, Tensor)], file: &str) {
        let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv.weight",
                "conv.bias",
                "fc.weight",
                "bn.num_batches_tracked",
                "half",
                "bf16",
                "f64",
                "i32",
                "i16",
                "i8",
                "u8",
                "mask",
                "empty",
                "i64",
                "param"
            ],
            "{file}"
        );
        let t: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let expect = |name: &str, kind: Kind, size: &[i64], vals: &[f64]| {
            let x = t[name];
            assert_eq!(x.kind(), kind, "{file} {name}");
            assert_eq!(x.size(), size, "{file} {name}");
            assert_eq!(values(x), vals, "{file} {name}");
        };
        let arange: Vec<f64> = (0..12).map(f64::from).collect();
        expect("conv.weight", Kind::Float, &[3, 4], &arange);
        expect("conv.bias", Kind::Float, &[2, 2], &[5., 6., 9., 10.]);
        expect(
            "fc.weight",
            Kind::Float,
            &[4, 3],
            &[0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.],
        );
        expect("bn.num_batches_tracked", Kind::Int64, &[], &[7.]);
        expect("half", Kind::Half, &[2], &[1.5, -2.25]);
        expect("bf16", Kind::BFloat16, &[2], &[0.5, 3.0]);
        expect("f64", Kind::Double, &[1, 2], &[1e-300, 2.5]);
        expect("i32", Kind::Int, &[2], &[-3., 2147483647.]);
        expect("i16", Kind::Int16, &[1], &[-300.]);
        expect("i8", Kind::Int8, &[1], &[-7.]);
        expect("u8", Kind::Uint8, &[2], &[0., 255.]);
        expect("mask", Kind::Bool, &[3], &[1., 0., 1.]);
        expect("empty", Kind::Float, &[0, 3], &[]);
        expect("i64", Kind::Int64, &[2], &[(1i64 << 40) as f64, -1.]);
        expect("param", Kind::Float, &[2], &[0.25, 0.75]);
        // Views over one shared storage, with torch's offsets and strides.
        let (w, b, fc) = (t["conv.weight"], t["conv.bias"], t["fc.weight"]);
        assert_eq!(b.stride(), [4, 1], "{file}");
        assert_eq!(fc.stride(), [1, 4], "{file}");
        assert_eq!(
            b.data_ptr() as usize,
            w.data_ptr() as usize + 5 * 4,
            "{file}: conv.bias shares conv.weight's storage"
        );
        assert_eq!(fc.data_ptr(), w.data_ptr(), "{file}");
        assert_eq!(
            i64::try_from(t["i64"].get(0)).unwrap(),
            1i64 << 40,
            "{file}: exact int64"
        );
    }

    #[test]
    fn both_formats_give_the_exact_tensors() {
        tch::set_num_threads(1);
        for file in FIXTURES {
            let tensors = read_pth(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e:#}"));
            check_fixture(&tensors, file);
        }
    }

    /// Every truncation is an error; every single-byte change errs or loads, never panics.
    #[test]
    fn corrupt_files_give_errors_not_panics() {
        tch::set_num_threads(1);
        for file in FIXTURES {
            let bytes = std::fs::read(fixture(file)).unwrap();
            for len in 0..bytes.len() {
                let r = std::panic::catch_unwind(|| parse_pth(&bytes[..len]).is_err());
                assert!(
                    r.expect("panic on truncation"),
                    "{file} truncated to {len} bytes was accepted"
                );
            }
            let mut refused = 0;
            for i in 0..bytes.len() {
                for flip in [0xff, 0x01, 0x80] {
                    let mut b = bytes.clone();
                    b[i] ^= flip;
                    match std::panic::catch_unwind(|| parse_pth(&b).map(|t| t.len())) {
                        Err(_) => panic!("{file}: panic with byte {i} xor 0x{flip:02x}"),
                        Ok(r) => refused += r.is_err() as usize,
                    }
                }
            }
            // Changed raw values (and, in zip files, unchecked header fields) still load.
            eprintln!(
                "{file}: {refused} of {} single-byte changes refused",
                3 * bytes.len()
            );
        }
    }

    #[test]
    fn errors_name_the_file_and_the_bad_byte() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let legacy = std::fs::read(fixture("small_legacy.pth")).unwrap();
        // Byte 23 is the EMPTY_DICT opening sys_info (third pickle); 0xff is no opcode.
        let mut bad = legacy.clone();
        assert_eq!(bad[23], b'}');
        bad[23] = 0xff;
        let path = dir.path().join("bad_opcode.pth");
        std::fs::write(&path, &bad).unwrap();
        let msg = format!("{:#}", read_pth(&path).unwrap_err());
        eprintln!("{msg}");
        assert!(
            msg.contains("bad_opcode.pth") && msg.contains("opcode 0xff at byte 23"),
            "{msg}"
        );

        let path = dir.path().join("cut.pth");
        std::fs::write(&path, &legacy[..legacy.len() - 3]).unwrap();
        let msg = format!("{:#}", read_pth(&path).unwrap_err());
        eprintln!("{msg}");
        assert!(
            msg.contains("cut.pth") && msg.contains("file ends"),
            "{msg}"
        );

        let zip = std::fs::read(fixture("small_zip.pth")).unwrap();
        let path = dir.path().join("cut_zip.pth");
        std::fs::write(&path, &zip[..zip.len() / 2]).unwrap();
        let msg = format!("{:#}", read_pth(&path).unwrap_err());
        eprintln!("{msg}");
        assert!(msg.contains("cut_zip.pth"), "{msg}");

        // Zip entries carry a CRC: a changed storage byte is caught, not loaded.
        let arange: Vec<u8> = (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let at = zip.windows(48).position(|w| w == arange).unwrap();
        let mut flipped = zip.clone();
        flipped[at + 7] ^= 0x01;
        let msg = format!("{:#}", parse_pth(&flipped).unwrap_err());
        eprintln!("{msg}");
        assert!(
            msg.contains("small_zip/data/0") && msg.to_lowercase().contains("checksum"),
            "{msg}"
        );

        let path = dir.path().join("text.pth");
        std::fs::write(&path, b"hello world, not weights").unwrap();
        let msg = format!("{:#}", read_pth(&path).unwrap_err());
        eprintln!("{msg}");
        assert!(
            msg.contains("text.pth") && msg.contains("not a PyTorch checkpoint"),
            "{msg}"
        );

        // An unknown storage type is named.
        let mut unknown = legacy.clone();
        let at = legacy
            .windows(12)
            .position(|w| w == b"FloatStorage")
            .unwrap();
        unknown[at..at + 5].copy_from_slice(b"Fluff");
        let msg = format!("{:#}", parse_pth(&unknown).unwrap_err());
        eprintln!("{msg}");
        assert!(
            msg.contains("unsupported storage type torch.FluffStorage"),
            "{msg}"
        );
    }

    fn store_with(vars: &[(&str, &[i64], Kind)]) -> VarStore {
        let vs = VarStore::new(tch::Device::Cpu);
        for (name, shape, kind) in vars {
            let mut path = vs.root();
            let parts: Vec<&str> = name.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                path = path / *p;
            }
            let _ = path.add(
                parts[parts.len() - 1],
                Tensor::zeros(*shape, (*kind, tch::Device::Cpu)),
                false,
            );
        }
        vs
    }

    fn named(list: &[(&str, Tensor)]) -> Vec<(String, Tensor)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.shallow_clone()))
            .collect()
    }

    #[test]
    fn load_into_reports_by_name_and_refuses_unless_partial() {
        tch::set_num_threads(1);
        let file = named(&[
            ("a.w", Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu))),
            ("a.b", Tensor::ones([3], (Kind::Float, tch::Device::Cpu))),
            (
                "fc.w",
                Tensor::ones([5, 2], (Kind::Float, tch::Device::Cpu)),
            ),
            ("extra", Tensor::ones([1], (Kind::Float, tch::Device::Cpu))),
            ("bn.n", Tensor::from(9i64)),
        ]);
        let mut vs = store_with(&[
            ("a.w", &[2, 3], Kind::Float),
            ("a.b", &[4], Kind::Float),
            ("c.w", &[1], Kind::Float),
            ("fc.w", &[7, 2], Kind::Float),
            ("bn.n", &[], Kind::Int64),
        ]);
        let strict = ImportOptions {
            ignore_prefixes: vec!["fc.".into()],
            ..Default::default()
        };
        let msg = format!("{:#}", load_into(&mut vs, &file, &strict).unwrap_err());
        eprintln!("{msg}");
        for name in ["c.w", "extra", "a.b (file [3], model [4])"] {
            assert!(msg.contains(name), "{name} not in: {msg}");
        }
        assert!(!msg.contains("fc.w"), "{msg}");
        assert_eq!(
            vs.variables()["a.w"].sum(Kind::Double).double_value(&[]),
            0.0,
            "refused import copied nothing"
        );

        let partial = ImportOptions {
            partial: true,
            ..strict
        };
        let report = load_into(&mut vs, &file, &partial).unwrap();
        assert_eq!(
            report,
            ImportReport {
                loaded: vec!["a.w".into(), "bn.n".into()],
                missing: vec!["c.w".into()],
                unexpected: vec!["extra".into()],
                mismatched: vec![("a.b".into(), vec![3], vec![4])],
            }
        );
        let vars = vs.variables();
        assert_eq!(vars["a.w"].sum(Kind::Double).double_value(&[]), 6.0);
        assert_eq!(vars["bn.n"].int64_value(&[]), 9);
        assert_eq!(
            vars["fc.w"].sum(Kind::Double).double_value(&[]),
            0.0,
            "ignored prefix untouched"
        );

        // A float tensor never lands in an integer variable, even partially.
        let wrong = named(&[("bn.n", Tensor::from(1.5f32))]);
        let msg = format!("{:#}", load_into(&mut vs, &wrong, &partial).unwrap_err());
        eprintln!("{msg}");
        assert!(
            msg.contains("bn.n") && msg.contains("incompatible dtypes"),
            "{msg}"
        );
    }

    #[test]
    fn load_into_adds_the_prefix_and_converts_half() {
        tch::set_num_threads(1);
        let mut vs = store_with(&[
            ("backbone.conv.w", &[2], Kind::Float),
            ("head.fc.w", &[3], Kind::Float),
        ]);
        let file = named(&[(
            "conv.w",
            Tensor::from_slice(&[1.5f32, -2.0]).to_kind(Kind::Half),
        )]);
        let opts = ImportOptions {
            add_prefix: "backbone.".into(),
            ..Default::default()
        };
        let report = load_into(&mut vs, &file, &opts).unwrap();
        assert_eq!(report.loaded, ["backbone.conv.w"]);
        assert!(
            report.missing.is_empty(),
            "head.* is outside the prefix: {report:?}"
        );
        let w = vs.variables()["backbone.conv.w"].shallow_clone();
        assert_eq!(w.kind(), Kind::Float);
        assert_eq!(values(&w), [1.5, -2.0]);
    }

    #[test]
    fn load_into_takes_every_fixture_tensor() {
        tch::set_num_threads(1);
        let tensors = read_pth(&fixture("small_zip.pth")).unwrap();
        let vs0 = VarStore::new(tch::Device::Cpu);
        for (name, t) in &tensors {
            let parts: Vec<&str> = name.split('.').collect();
            let mut path = vs0.root();
            for p in &parts[..parts.len() - 1] {
                path = path / *p;
            }
            let _ = path.add(parts[parts.len() - 1], t.zeros_like(), false);
        }
        let mut vs = vs0;
        let report = load_into(&mut vs, &tensors, &ImportOptions::default()).unwrap();
        assert_eq!(report.loaded.len(), tensors.len());
        for (name, t) in &tensors {
            assert!(vs.variables()[name].equal(t), "{name}");
        }
    }

    #[test]
    fn safetensors_round_trip_keeps_views_right() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/w.safetensors");
        let tensors = read_pth(&fixture("small_legacy.pth")).unwrap();
        write_safetensors(&path, &tensors).unwrap();
        let back: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(back.len(), tensors.len());
        for (name, t) in &tensors {
            let b = &back[name];
            assert_eq!((b.kind(), b.size()), (t.kind(), t.size()), "{name}");
            assert!(b.equal(t), "{name}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
        let twice = named(&[("x", Tensor::from(1f32)), ("x", Tensor::from(2f32))]);
        assert!(write_safetensors(&dir.path().join("t.safetensors"), &twice).is_err());
    }

    /// torchvision's ImageNet MobileNetV2 (legacy format, 14 MB), fetched by
    /// scripts/fetch-weights.sh (the Makefile's test target runs it first).
    #[test]
    fn mobilenet_v2_reference_checksums() {
        tch::set_num_threads(1);
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/weights/mobilenet_v2-b0353104.pth");
        assert!(
            path.exists(),
            "{} is missing: run `bash scripts/fetch-weights.sh` (make test does) to fetch it",
            path.display()
        );
        let start = std::time::Instant::now();
        let tensors = read_pth(&path).unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!(
            "read {} in {:.3} s",
            path.display(),
            start.elapsed().as_secs_f64()
        );
        assert_eq!(tensors.len(), 314);
        let total: f64 = tensors
            .iter()
            .map(|(_, t)| t.sum(Kind::Double).double_value(&[]))
            .sum();
        assert!((total - 74441704.64).abs() < 0.01, "total sum {total}");
        let (name, w) = &tensors[0];
        assert_eq!(name, "features.0.0.weight");
        assert_eq!(w.size(), [32, 3, 3, 3]);
        assert!((w.sum(Kind::Double).double_value(&[]) + 0.77307163).abs() < 1e-6);
        let head = values(&w.reshape([-1]).narrow(0, 0, 3));
        for (got, want) in head.iter().zip([0.0131853, -0.0043213, 0.0148231]) {
            assert!((got - want).abs() < 1e-7, "{head:?}");
        }
        assert_eq!(tensors.last().unwrap().0, "classifier.1.bias");

        // A light fuzz on the real file: truncations err, flips in the pickles never panic.
        let bytes = std::fs::read(&path).unwrap();
        for len in (0..bytes.len()).step_by(bytes.len() / 97) {
            assert!(
                parse_pth(&bytes[..len]).is_err(),
                "truncated to {len} bytes was accepted"
            );
        }
        for i in (0..54_108).step_by(331) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            if std::panic::catch_unwind(|| parse_pth(&b).map(|t| t.len())).is_err() {
                panic!("panic with byte {i} flipped");
            }
        }
    }
}
