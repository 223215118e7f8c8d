//! The PyTorch codes' state_dicts in and out as dicts of numpy arrays, through the engine's
//! importer and exporter (`rims::interop`, the same code as `rims import` and `rims export`).

use std::collections::BTreeMap;
use std::path::Path;

use numpy::{PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rims::interop::state_dict::{Entry, StateDict};
use rims::interop::{self, Code, ImportOptions, ModelTensors};

use crate::arrays::to_numpy;
use crate::errors::{engine_error, value_error};
use crate::layer::{config_from_dict, config_to_dict};

fn code(source: &str) -> PyResult<Code> {
    match source {
        "authors" => Ok(Code::Authors),
        "dido" => Ok(Code::Dido),
        other => Err(value_error(format!(
            "source must be 'authors' or 'dido', got '{other}'"
        ))),
    }
}

/// One float64 array as a state_dict entry, its values checked finite.
fn entry(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Entry> {
    let arr: PyReadonlyArrayDyn<'_, f64> = value.extract().map_err(|_| {
        value_error(format!(
            "'{name}' must be a float64 array (rims/torch.py converts)"
        ))
    })?;
    let shape = arr.shape().to_vec();
    let values = arr
        .to_vec()
        .map_err(|_| value_error(format!("'{name}' is not readable")))?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(value_error(format!(
            "'{name}' holds a value that is not finite ({} at flat index {i})",
            values[i]
        )));
    }
    if let Some(i) = values.iter().position(|v| v.abs() > f64::from(f32::MAX)) {
        return Err(value_error(format!(
            "'{name}' holds {:e} at flat index {i}, beyond f32's range",
            values[i]
        )));
    }
    Ok(Entry::new(&shape, values))
}

fn entries(d: &Bound<'_, PyDict>) -> PyResult<BTreeMap<String, Entry>> {
    let mut out = BTreeMap::new();
    for (k, v) in d.iter() {
        let name: String = k.extract()?;
        let e = entry(&name, &v)?;
        out.insert(name, e);
    }
    Ok(out)
}

fn f32_numpy<'py>(py: Python<'py>, e: &Entry) -> PyResult<Bound<'py, PyAny>> {
    let v = e.values.iter().map(|&x| x as f32).collect();
    Ok(to_numpy(py, v, &e.shape)?.into_any())
}

/// `import_weights(state, source, k, comm_heads, prefix)`: a state_dict of the authors'
/// `BlocksCore` (or their whole `RNNModel`) or dido's `RIMCell` (float64 arrays by key) as
/// (config, canonical cell tensors, embedding or None, (dec_w, dec_b) or None, notes).
#[pyfunction]
#[pyo3(signature = (state, source, k, comm_heads=None, prefix=None))]
pub fn import_weights<'py>(
    py: Python<'py>,
    state: &Bound<'py, PyDict>,
    source: &str,
    k: usize,
    comm_heads: Option<usize>,
    prefix: Option<String>,
) -> PyResult<Bound<'py, PyList>> {
    let code = code(source)?;
    if code == Code::Dido && comm_heads.is_some() {
        return Err(value_error(
            "dido's communication heads follow from the shapes (d_vc = H); drop comm_heads",
        ));
    }
    let mut sd = StateDict::from_entries(Path::new("<state_dict>"), entries(state)?);
    let opts = ImportOptions {
        code,
        active: k,
        comm_heads,
        prefix,
    };
    let imported = interop::import(&mut sd, &opts).map_err(engine_error)?;
    let cell = PyDict::new(py);
    for (name, e) in &imported.cell {
        cell.set_item(name, f32_numpy(py, e)?)?;
    }
    let embed = imported
        .embed
        .as_ref()
        .map(|e| f32_numpy(py, e))
        .transpose()?;
    let decoder = match &imported.decoder {
        Some((w, b)) => Some((f32_numpy(py, w)?, f32_numpy(py, b)?)),
        None => None,
    };
    let config = config_to_dict(py, &imported.rims)?;
    PyList::new(
        py,
        [
            config.into_any(),
            cell.into_any(),
            embed.into_pyobject(py)?.into_any(),
            decoder.into_pyobject(py)?.into_any(),
            imported.notes.into_pyobject(py)?.into_any(),
        ],
    )
}

/// `export_weights(config, cell, source, embed, decoder)`: the canonical cell tensors (float64
/// arrays by name) as the state_dict `source`'s module loads with `strict=True`, float32. With
/// the authors' code and both `embed` and `decoder` (PyTorch's layout: weight [C, N·H], bias
/// [C]), the whole `RNNModel`.
#[pyfunction]
#[pyo3(signature = (config, cell, source, embed=None, decoder=None))]
pub fn export_weights<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyDict>,
    cell: &Bound<'py, PyDict>,
    source: &str,
    embed: Option<&Bound<'py, PyAny>>,
    decoder: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
) -> PyResult<Bound<'py, PyDict>> {
    let code = code(source)?;
    let cfg = config_from_dict(config)?;
    let canonical = entries(cell)?;
    let model = ModelTensors {
        embed: embed.map(|e| entry("embed", e)).transpose()?,
        decoder: match decoder {
            Some((w, b)) => Some((entry("decoder.weight", &w)?, entry("decoder.bias", &b)?)),
            None => None,
        },
    };
    let out = interop::export(code, &cfg, &canonical, &model).map_err(engine_error)?;
    let d = PyDict::new(py);
    for (name, e) in &out {
        d.set_item(name, f32_numpy(py, e)?)?;
    }
    Ok(d)
}
