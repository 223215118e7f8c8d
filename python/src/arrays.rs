//! numpy in and out: float32 arrays checked for dtype, shape, layout and finiteness (naming
//! the argument), and engine results handed over as arrays without another copy.

use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::value_error;

/// `a` as a read-only float32 array, or an error naming `name` and what it was.
pub fn f32_array<'py>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArrayDyn<'py, f32>> {
    a.extract::<PyReadonlyArrayDyn<'py, f32>>().map_err(|_| {
        let what = a
            .getattr("dtype")
            .map(|d| format!("an array of {d}"))
            .unwrap_or_else(|_| a.get_type().to_string());
        value_error(format!("{name} must be a float32 array, got {what}"))
    })
}

/// `a` as a read-only uint32 array, or an error naming `name`.
pub fn u32_array<'py>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArrayDyn<'py, u32>> {
    a.extract::<PyReadonlyArrayDyn<'py, u32>>().map_err(|_| {
        value_error(format!(
            "{name} must be an array of non-negative integers (uint32)"
        ))
    })
}

/// The values of `a` when its shape is `shape` (None: any) and every value is finite.
pub fn finite_values<'a>(
    name: &str,
    a: &'a PyReadonlyArrayDyn<'_, f32>,
    shape: Option<&[usize]>,
) -> PyResult<&'a [f32]> {
    if let Some(want) = shape
        && a.shape() != want
    {
        return Err(value_error(format!(
            "{name} must have shape {want:?}, got {:?}",
            a.shape()
        )));
    }
    let v = a
        .as_slice()
        .map_err(|_| value_error(format!("{name} must be a contiguous array")))?;
    // A branch-free pass (it vectorises; activations are tens of MB), then the position.
    let all_finite = v
        .chunks(4096)
        .all(|c| c.iter().fold(true, |ok, x| ok & x.is_finite()));
    if !all_finite {
        let i = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
        return Err(value_error(format!(
            "{name} holds a value that is not finite ({} at flat index {i})",
            v[i]
        )));
    }
    Ok(v)
}

/// `v` as a numpy array of `shape` (no copy).
pub fn to_numpy<'py>(
    py: Python<'py>,
    v: Vec<f32>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    PyArray1::from_vec(py, v).reshape(shape.to_vec())
}
