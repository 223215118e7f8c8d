//! The parameter store: every parameter of a model carved out of one device allocation (llm.c
//! style), with a twin allocation for gradients. Ops see each parameter as a tensor view; the
//! optimizer updates all of them in one dispatch over the flat buffers.
//!
//! Trainable parameters come first, frozen ones (e.g. variant A's zero input-attention biases)
//! after them, so the optimizer simply stops at [`ParamStore::trainable_len`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::device::Context;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::ops::elementwise;
use crate::rng::Rng;
use crate::tape::ParamSource;
use crate::tensor::{Tensor, VIEW_ALIGN, numel};

/// Parameters on the host: name → (shape, values).
pub type HostParams = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// Every element this value.
    Constant(f32),
    /// Uniform in [lo, hi).
    Uniform(f32, f32),
    /// Normal with this mean and standard deviation.
    Normal(f32, f32),
}

/// A parameter to create.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Unique name, the key in the store and in parameter files.
    pub name: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Initial values.
    pub init: Init,
    /// False for parameters that exist in the file format but are never updated.
    pub trainable: bool,
}

impl ParamSpec {
    /// A trainable parameter (see [`ParamSpec::frozen`]).
    pub fn new(name: &str, shape: &[usize], init: Init) -> Self {
        ParamSpec {
            name: name.to_string(),
            shape: shape.to_vec(),
            init,
            trainable: true,
        }
    }

    /// The same parameter, never updated by the optimizer.
    pub fn frozen(self) -> Self {
        ParamSpec {
            trainable: false,
            ..self
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    offset: usize,
    trainable: bool,
}

/// Named parameters in one flat buffer, gradients in another.
pub struct ParamStore {
    values: Tensor,
    grads: Tensor,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    trainable_len: usize,
}

impl std::fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamStore")
            .field("names", &self.names())
            .finish_non_exhaustive()
    }
}

impl ParamSource for ParamStore {
    fn param_views(&self, name: &str) -> Result<(Tensor, Option<Tensor>)> {
        let value = self.value(name)?;
        if !self.is_trainable(name)? {
            return Ok((value, None));
        }
        Ok((value, Some(self.grad(name)?)))
    }
}

impl ParamStore {
    /// Creates the parameters in `specs` order (trainable first), initialised from `seed`: the
    /// same seed gives the same values on every machine.
    pub fn new(ctx: &Context, specs: &[ParamSpec], seed: u64) -> Result<Self> {
        let mut seen = HashMap::new();
        for (i, s) in specs.iter().enumerate() {
            if seen.insert(s.name.clone(), i).is_some() {
                return Err(Error::config(
                    "params",
                    format!("duplicate parameter '{}'", s.name),
                ));
            }
            if numel(&s.shape)? == 0 {
                return Err(Error::config(
                    "params",
                    format!(
                        "parameter '{}' has shape {:?} with no elements",
                        s.name, s.shape
                    ),
                ));
            }
        }
        // Layout first: trainable parameters, then frozen ones, each at a view-aligned offset.
        let mut order: Vec<usize> = (0..specs.len()).collect();
        order.sort_by_key(|&i| !specs[i].trainable);
        let mut entries = vec![None; specs.len()];
        let mut offset = 0usize;
        let mut trainable_len = 0;
        for &i in &order {
            let s = &specs[i];
            if !s.trainable && trainable_len == 0 {
                trainable_len = offset;
            }
            entries[i] = Some(Entry {
                name: s.name.clone(),
                shape: s.shape.clone(),
                offset,
                trainable: s.trainable,
            });
            let len = numel(&s.shape)?.next_multiple_of(VIEW_ALIGN);
            offset = offset.checked_add(len).ok_or_else(|| Error::DeviceLimit {
                what: "parameter store".into(),
                requested: u64::MAX,
                limit: u64::MAX,
            })?;
        }
        let entries: Vec<Entry> = order
            .iter()
            .map(|&i| entries[i].clone().expect("every spec laid out"))
            .collect();
        if entries.iter().all(|e| e.trainable) {
            trainable_len = offset;
        }
        let total = offset.max(VIEW_ALIGN);
        // The device buffers before the host copy: a size the device (or the host) cannot hold
        // is an error naming the store, never an aborted allocation.
        let values = Tensor::uninit(ctx, &[total])?;
        let grads = Tensor::zeros(ctx, &[total])?;
        let mut flat: Vec<f32> = Vec::new();
        flat.try_reserve_exact(total)
            .map_err(|_| Error::DeviceLimit {
                what: format!("host copy of the parameter store ({total} values)"),
                requested: total as u64 * 4,
                limit: crate::device::host::total_memory_bytes(),
            })?;
        flat.resize(total, 0.0);
        // Initial values are drawn in spec order, whatever the layout order.
        let mut rng = Rng::new(seed);
        for s in specs {
            let e = entries.iter().find(|e| e.name == s.name).expect("laid out");
            for v in &mut flat[e.offset..e.offset + numel(&s.shape)?] {
                *v = match s.init {
                    Init::Zeros => 0.0,
                    Init::Constant(c) => c,
                    Init::Uniform(lo, hi) => rng.uniform(lo as f64, hi as f64) as f32,
                    Init::Normal(mean, std) => (mean as f64 + std as f64 * rng.normal()) as f32,
                };
            }
        }
        values.write(ctx, &flat)?;
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Ok(ParamStore {
            values,
            grads,
            entries,
            index,
            trainable_len,
        })
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.index
            .get(name)
            .map(|&i| &self.entries[i])
            .ok_or_else(|| {
                Error::config(
                    "params",
                    format!(
                        "no parameter named '{name}' (have: {})",
                        self.names().join(", ")
                    ),
                )
            })
    }

    /// The parameter's values, a view of the flat buffer.
    pub fn value(&self, name: &str) -> Result<Tensor> {
        let e = self.entry(name)?;
        self.values.view(e.offset, &e.shape)
    }

    /// The gradient of a trainable parameter, a view of the flat gradient buffer.
    ///
    /// A frozen parameter (e.g. variant A's `in_k_b`) has no gradient: no backward writes one
    /// and the optimizer never reads one, so this returns `Error::InvalidArgument` saying it is
    /// frozen rather than a view of memory that would always read as zero and pass for a
    /// vanishing gradient. Code that walks every parameter checks [`ParamStore::is_trainable`]
    /// first. `Error::Config` when no parameter has this name.
    pub fn grad(&self, name: &str) -> Result<Tensor> {
        let e = self.entry(name)?;
        if !e.trainable {
            return Err(Error::invalid(
                "ParamStore::grad",
                format!("'{name}' is frozen: it has no gradient (see ParamStore::is_trainable)"),
            ));
        }
        self.grads.view(e.offset, &e.shape)
    }

    /// Where the parameter starts in the flat buffers, in elements.
    pub fn offset(&self, name: &str) -> Result<usize> {
        Ok(self.entry(name)?.offset)
    }

    /// The parameter's shape; `Error::Config` when no parameter has this name.
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(&self.entry(name)?.shape)
    }

    /// Whether the optimizer updates it; `Error::Config` when no parameter has this name.
    pub fn is_trainable(&self, name: &str) -> Result<bool> {
        Ok(self.entry(name)?.trainable)
    }

    /// Names in layout order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The flat value buffer (padding between parameters included).
    pub fn flat_values(&self) -> &Tensor {
        &self.values
    }

    /// The flat gradient buffer.
    pub fn flat_grads(&self) -> &Tensor {
        &self.grads
    }

    /// Elements of the flat buffers the optimizer updates (all trainable parameters and their
    /// padding, which always has zero gradient).
    pub fn trainable_len(&self) -> usize {
        self.trainable_len
    }

    /// Number of parameter values (without padding).
    pub fn count(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.shape.iter().product::<usize>())
            .sum()
    }

    /// Records zeroing of every gradient (one dispatch).
    pub fn zero_grads(&self, ctx: &Context) -> Result<()> {
        elementwise::fill(ctx, &self.grads, 0.0)
    }

    /// Reads every parameter back: name → (shape, values).
    pub fn to_host(&self, ctx: &Context) -> Result<HostParams> {
        let flat = self.values.to_vec(ctx)?;
        Ok(self
            .entries
            .iter()
            .map(|e| {
                let n: usize = e.shape.iter().product();
                (
                    e.name.clone(),
                    (e.shape.clone(), flat[e.offset..e.offset + n].to_vec()),
                )
            })
            .collect())
    }

    /// Overwrites one parameter's values.
    pub fn set(&self, ctx: &Context, name: &str, data: &[f32]) -> Result<()> {
        self.value(name)?.write(ctx, data)
    }

    /// Writes all parameters as safetensors (f32, row-major, canonical names) with `metadata`.
    /// The file is written beside the target and renamed, so a crash never leaves half a file.
    pub fn save(
        &self,
        ctx: &Context,
        path: &Path,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        write_atomic(path, &self.encode(ctx, metadata)?)
    }

    /// The bytes [`ParamStore::save`] writes.
    pub fn encode(&self, ctx: &Context, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
        let host = self.to_host(ctx)?;
        let tensors: Vec<(&str, &[usize], &[f32])> = host
            .iter()
            .map(|(name, (shape, data))| (name.as_str(), shape.as_slice(), data.as_slice()))
            .collect();
        crate::io::encode_f32_safetensors(&tensors, metadata)
            .map_err(|e| Error::invalid("ParamStore::encode", e))
    }

    /// Loads values saved by [`ParamStore::save`] (or any safetensors file with the same names
    /// and shapes) and returns the file's metadata. Every tensor is checked before anything is
    /// written, so a bad file leaves the store as it was. Tensors of the file that are not
    /// parameters are ignored.
    pub fn load(&self, ctx: &Context, path: &Path) -> Result<BTreeMap<String, String>> {
        self.load_prefixed(ctx, path, "")
    }

    /// [`ParamStore::load`] from a file whose tensors are named `prefix` + the parameter's name
    /// (a whole model's file, say `model.` + `rnn_wx`).
    pub fn load_prefixed(
        &self,
        ctx: &Context,
        path: &Path,
        prefix: &str,
    ) -> Result<BTreeMap<String, String>> {
        let bad = |reason: String| Error::File {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = crate::io::read_regular(path, crate::io::Link::Refuse)?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let mut tensors = HostParams::new();
        for e in &self.entries {
            let key = format!("{prefix}{}", e.name);
            let t = file
                .tensor(&key)
                .map_err(|_| bad(format!("missing tensor '{key}'")))?;
            if t.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!(
                    "tensor '{key}' is {:?}, expected F32",
                    t.dtype()
                )));
            }
            let data: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
            tensors.insert(e.name.clone(), (t.shape().to_vec(), data));
        }
        self.load_map(ctx, &tensors).map_err(|e| match e {
            Error::Config { reason, .. } => bad(reason),
            other => other,
        })?;
        Ok(header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect())
    }

    /// Sets every parameter from a map of (shape, values) by name, as [`ParamStore::to_host`]
    /// gives them: each parameter must be there with its shape, and nothing is written unless
    /// all are. Names that are not parameters are an error (a misspelt name would otherwise be
    /// silently left at its initial value).
    pub fn load_map(&self, ctx: &Context, tensors: &HostParams) -> Result<()> {
        let bad = |reason: String| Error::config("params", reason);
        if let Some(extra) = tensors.keys().find(|k| !self.index.contains_key(*k)) {
            return Err(bad(format!(
                "'{extra}' is not a parameter (have: {})",
                self.names().join(", ")
            )));
        }
        let mut updates = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let (shape, data) = tensors
                .get(&e.name)
                .ok_or_else(|| bad(format!("missing tensor '{}'", e.name)))?;
            if shape != &e.shape || data.len() != e.shape.iter().product::<usize>() {
                return Err(bad(format!(
                    "tensor '{}' has shape {shape:?}, expected {:?}",
                    e.name, e.shape
                )));
            }
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "tensor '{}' holds a non-finite value ({}) at flat index {i}",
                    e.name, data[i]
                )));
            }
            updates.push((e, data));
        }
        for (e, data) in updates {
            self.values.view(e.offset, &e.shape)?.write(ctx, data)?;
        }
        Ok(())
    }
}
