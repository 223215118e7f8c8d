//! The kernel layer: every WGSL entry point of `shaders/NAME.wgsl` has a Rust twin in
//! `kernels/NAME.rs` with the same parameter struct (defined once, there, and filled by the op
//! wrapper in `ops/`) and the same storage bindings in the same order. The GPU runs the WGSL;
//! the CPU device runs the twin. Nothing here knows about devices, tensors or ops: a twin is a
//! function of its [`KernelArgs`].

pub mod args;
pub mod binary_cross_entropy;
pub mod cell;
pub mod common;
pub mod communication;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod gates;
pub mod input_attention;
pub mod layer_norm;
pub mod matmul;
pub mod merge;
pub mod optim;
pub mod ppo_loss;
pub mod recurrent;
pub mod reduce;
pub mod split;
pub mod squared_error;
pub mod team;
pub mod upsample;

pub use args::{Binding, KernelArgs, Rows, par_for};
pub use team::Team;

/// A CPU twin of one WGSL entry point.
pub type CpuKernel = fn(&KernelArgs<'_>);

/// The CPU twin of `shader`'s entry point `entry`, if it has one.
pub fn cpu_twin(shader: &str, entry: &str) -> Option<CpuKernel> {
    match shader {
        "binary_cross_entropy" => binary_cross_entropy::twin(entry),
        "cell" => cell::twin(entry),
        "communication" => communication::twin(entry),
        "conv2d" => conv2d::twin(entry),
        "cross_entropy" => cross_entropy::twin(entry),
        "dropout" => dropout::twin(entry),
        "elementwise" => elementwise::twin(entry),
        "embedding" => embedding::twin(entry),
        "input_attention" => input_attention::twin(entry),
        "layer_norm" => layer_norm::twin(entry),
        "matmul" => matmul::twin(entry),
        "merge" => merge::twin(entry),
        "optim" => optim::twin(entry),
        "ppo_loss" => ppo_loss::twin(entry),
        "recurrent" => recurrent::twin(entry),
        "reduce" => reduce::twin(entry),
        "squared_error" => squared_error::twin(entry),
        "upsample" => upsample::twin(entry),
        _ => None,
    }
}

/// Every shader file of the engine, by name (the file is `shaders/<name>.wgsl`).
pub static SHADERS: &[(&str, &str)] = &[
    (
        "binary_cross_entropy",
        include_str!("../../shaders/binary_cross_entropy.wgsl"),
    ),
    ("cell", include_str!("../../shaders/cell.wgsl")),
    (
        "communication",
        include_str!("../../shaders/communication.wgsl"),
    ),
    (
        "input_attention",
        include_str!("../../shaders/input_attention.wgsl"),
    ),
    ("layer_norm", include_str!("../../shaders/layer_norm.wgsl")),
    ("merge", include_str!("../../shaders/merge.wgsl")),
    ("conv2d", include_str!("../../shaders/conv2d.wgsl")),
    (
        "cross_entropy",
        include_str!("../../shaders/cross_entropy.wgsl"),
    ),
    (
        "elementwise",
        include_str!("../../shaders/elementwise.wgsl"),
    ),
    ("dropout", include_str!("../../shaders/dropout.wgsl")),
    ("embedding", include_str!("../../shaders/embedding.wgsl")),
    ("matmul", include_str!("../../shaders/matmul.wgsl")),
    ("optim", include_str!("../../shaders/optim.wgsl")),
    ("ppo_loss", include_str!("../../shaders/ppo_loss.wgsl")),
    ("recurrent", include_str!("../../shaders/recurrent.wgsl")),
    ("reduce", include_str!("../../shaders/reduce.wgsl")),
    (
        "squared_error",
        include_str!("../../shaders/squared_error.wgsl"),
    ),
    ("upsample", include_str!("../../shaders/upsample.wgsl")),
];

/// Function libraries a shader can pull in with a line `//#include <name>` (WGSL has no
/// includes). Each is valid WGSL on its own, with what it includes (functions and constants
/// only).
pub static LIBRARIES: &[(&str, &str)] = &[
    ("common", include_str!("../../shaders/lib/common.wgsl")),
    ("gates", include_str!("../../shaders/lib/gates.wgsl")),
    (
        "workgroup_reduce",
        include_str!("../../shaders/lib/workgroup_reduce.wgsl"),
    ),
];

/// Replaces every `//#include <name>` line of `source` with the library's text, resolving the
/// libraries' own includes the same way; each library goes in once per shader, at its first
/// include (lib/gates.wgsl includes lib/common.wgsl, which a shader may include as well).
pub fn resolve_includes(source: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(source.len());
    let mut included = Vec::new();
    include_into(source, &mut out, &mut included)?;
    Ok(out)
}

fn include_into(
    source: &str,
    out: &mut String,
    included: &mut Vec<&'static str>,
) -> std::result::Result<(), String> {
    for line in source.lines() {
        if let Some(name) = line.trim().strip_prefix("//#include ") {
            let (name, text) = *LIBRARIES
                .iter()
                .find(|(n, _)| *n == name.trim())
                .ok_or_else(|| format!("unknown library '{}' in #include", name.trim()))?;
            // Marked before its text is read, so a cycle ends instead of recursing.
            if !included.contains(&name) {
                included.push(name);
                include_into(text, out, included)?;
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(())
}
