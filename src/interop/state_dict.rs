//! A PyTorch state_dict saved as safetensors (`safetensors.torch.save_file(model.state_dict(),
//! path)`): its tensors by key, read as f64 whatever their float type, and written back as f32.
//! Every key taken is remembered, so an importer can name the keys it did not understand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One tensor of a state_dict: its shape and its values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// PyTorch's shape (e.g. [out, in] for an `nn.Linear` weight).
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f64>,
}

impl Entry {
    /// A tensor of this shape; the values must fill it.
    pub fn new(shape: &[usize], values: Vec<f64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Entry {
            shape: shape.to_vec(),
            values,
        }
    }
}

/// The tensors of a state_dict file, by key.
#[derive(Clone, Debug)]
pub struct StateDict {
    /// Where it was read from (for error messages).
    pub path: PathBuf,
    tensors: BTreeMap<String, Entry>,
    taken: BTreeSet<String>,
}

impl StateDict {
    /// A state_dict held in memory (tests, and export before writing).
    pub fn from_entries(path: &Path, tensors: BTreeMap<String, Entry>) -> Self {
        StateDict {
            path: path.to_path_buf(),
            tensors,
            taken: BTreeSet::new(),
        }
    }

    /// Reads a safetensors file. F32, F64, F16 and BF16 tensors are accepted; any other dtype,
    /// a non-finite value or a malformed file is an error that names the file and the key.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = crate::io::read_regular(path, crate::io::Link::Follow)?;
        Self::parse(path, &bytes)
    }

    /// [`StateDict::read`] of a file's bytes already in memory (errors name `path`).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::File {
            path: path.to_path_buf(),
            reason,
        };
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (key, view) in file.tensors() {
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(data),
                safetensors::Dtype::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(data)
                    .into_iter()
                    .map(f64::from)
                    .collect(),
                safetensors::Dtype::F16 => bytemuck::pod_collect_to_vec::<u8, u16>(data)
                    .into_iter()
                    .map(f16_to_f64)
                    .collect(),
                safetensors::Dtype::BF16 => bytemuck::pod_collect_to_vec::<u8, u16>(data)
                    .into_iter()
                    .map(|b| f64::from(f32::from_bits(u32::from(b) << 16)))
                    .collect(),
                other => {
                    return Err(bad(format!(
                        "tensor '{key}' is {other:?}; a state_dict of floating-point tensors is \
                         expected"
                    )));
                }
            };
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "tensor '{key}' holds a non-finite value ({}) at flat index {i}",
                    values[i]
                )));
            }
            // The engine computes in f32: a value past its range would become infinite.
            if let Some(i) = values.iter().position(|v| v.abs() > f64::from(f32::MAX)) {
                return Err(bad(format!(
                    "tensor '{key}' holds {:e} at flat index {i}, beyond f32's range (±{:e})",
                    values[i],
                    f32::MAX
                )));
            }
            let entry = Entry {
                shape: view.shape().to_vec(),
                values,
            };
            tensors.insert(key, entry);
        }
        Ok(StateDict {
            path: path.to_path_buf(),
            tensors,
            taken: BTreeSet::new(),
        })
    }

    /// Every key, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Whether the key exists.
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The shape of a key, without taking it.
    pub fn shape(&self, key: &str) -> Result<&[usize]> {
        self.tensors
            .get(key)
            .map(|e| e.shape.as_slice())
            .ok_or_else(|| self.missing(key))
    }

    /// Takes a tensor; `shape`, when given, must match exactly. The key counts as understood.
    pub fn take(&mut self, key: &str, shape: Option<&[usize]>) -> Result<Entry> {
        let entry = self.tensors.get(key).ok_or_else(|| self.missing(key))?;
        if let Some(want) = shape
            && entry.shape != want
        {
            return Err(self.bad(format!(
                "'{key}' has shape {:?}, expected {want:?} from the sizes the other tensors imply",
                entry.shape
            )));
        }
        self.taken.insert(key.to_string());
        Ok(entry.clone())
    }

    /// Marks every key under `prefix` as taken without reading it (what an import leaves out
    /// on purpose) and returns how many there were.
    pub fn set_aside(&mut self, prefix: &str) -> usize {
        let keys: Vec<String> = self.untaken(prefix).into_iter().map(String::from).collect();
        let n = keys.len();
        self.taken.extend(keys);
        n
    }

    /// The keys under `prefix` that nothing took.
    pub fn untaken(&self, prefix: &str) -> Vec<&str> {
        self.tensors
            .keys()
            .filter(|k| k.starts_with(prefix) && !self.taken.contains(*k))
            .map(String::as_str)
            .collect()
    }

    /// An error about this file.
    pub fn bad(&self, reason: impl Into<String>) -> Error {
        Error::File {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn missing(&self, key: &str) -> Error {
        self.bad(format!("missing tensor '{key}'"))
    }

    /// The tensors, by key (for writing).
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.tensors
    }

    /// The safetensors bytes of these tensors as f32, with `metadata`.
    pub fn encode_f32(&self, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
        let values: Vec<(&str, &[usize], Vec<f32>)> = self
            .tensors
            .iter()
            .map(|(k, e)| {
                let f = e.values.iter().map(|&v| v as f32).collect();
                (k.as_str(), e.shape.as_slice(), f)
            })
            .collect();
        let tensors: Vec<(&str, &[usize], &[f32])> = values
            .iter()
            .map(|(k, s, v)| (*k, *s, v.as_slice()))
            .collect();
        crate::io::encode_f32_safetensors(&tensors, metadata)
            .map_err(|e| self.bad(format!("cannot encode: {e}")))
    }
}

/// IEEE half precision to f64 (subnormals included).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values_decode() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x3555), 0.333251953125);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert!(f16_to_f64(0x7c00).is_infinite());
    }
}
