//! GPU ops, one file per op family. Each checks shapes, fills its parameter struct and records
//! its dispatches; `shaders/<name>.wgsl` holds the kernels and `reference::<name>` the f64 oracle.

pub mod cell;
pub mod communication;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod input_attention;
pub mod matmul;
pub mod merge;
pub mod optim;
pub mod recurrent;
pub mod reduce;
pub mod squared_error;
