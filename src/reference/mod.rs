//! The CPU oracle: every op's forward (and, later, backward) in plain f64 loops, written to be
//! obviously correct rather than fast. GPU results are compared with these at named tolerances.

pub mod cross_entropy;
pub mod elementwise;
pub mod matmul;
pub mod reduce;
