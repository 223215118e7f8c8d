//! `rims infer`: runs a checkpoint on an input sequence from a safetensors file and writes
//! every step's state, mask and output, for checking against other implementations.
//!
//! Input tensors: `x` f32 [T, B, D] (cell inputs) or `tokens` (u32, i32 or i64) [T, B] (embedded
//! first; every id below the vocabulary size); optional `h0`, `c0` f32 [B, N·H]; optional
//! `mask` f32 [T, B, N] of exactly 0 or 1 (overrides the top-k choice). Every value must be
//! finite, and any other tensor is refused (a misspelt name would otherwise be ignored). Output tensors: `h` [T, B, N·H], `c` [T, B, N·H] (LSTM), `mask`
//! [T, B, N], `logits` [T, B, V].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Args;
use rims::nn::model::Model;
use rims::train::checkpoint;
use rims::{Error, Result, Tensor};
use safetensors::{Dtype, SafeTensors};

#[derive(Debug, Args)]
pub struct InferArgs {
    #[command(flatten)]
    pub(crate) device: super::shared::DeviceArg,
    /// Checkpoint directory (from `rims train --out`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Input safetensors file (see `rims infer --help` and the README for the tensor names).
    #[arg(long)]
    input: PathBuf,
    /// Output safetensors file (written atomically).
    #[arg(long)]
    out: PathBuf,
}

fn f32s(
    path: &std::path::Path,
    st: &SafeTensors<'_>,
    name: &str,
) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
    let Ok(t) = st.tensor(name) else {
        return Ok(None);
    };
    if t.dtype() != Dtype::F32 {
        return Err(Error::file(
            path,
            format!("tensor '{name}' must be F32, is {:?}", t.dtype()),
        ));
    }
    // safetensors data is little-endian, as the engine's hosts are (ParamStore reads it so
    // too); the copy also aligns it.
    let v = bytemuck::pod_collect_to_vec::<u8, f32>(t.data());
    Ok(Some((t.shape().to_vec(), v)))
}

fn tokens(path: &std::path::Path, st: &SafeTensors<'_>) -> Result<Option<(Vec<usize>, Vec<u32>)>> {
    let Ok(t) = st.tensor("tokens") else {
        return Ok(None);
    };
    let d = t.data();
    // Little-endian in the file, as on the engine's hosts; copied out, so alignment is moot.
    let v: Vec<i64> = match t.dtype() {
        Dtype::U32 => bytemuck::pod_collect_to_vec::<u8, u32>(d)
            .into_iter()
            .map(i64::from)
            .collect(),
        Dtype::I32 => bytemuck::pod_collect_to_vec::<u8, i32>(d)
            .into_iter()
            .map(i64::from)
            .collect(),
        Dtype::I64 => bytemuck::pod_collect_to_vec::<u8, i64>(d),
        other => {
            return Err(Error::file(
                path,
                format!("tensor 'tokens' must be U32, I32 or I64, is {other:?}"),
            ));
        }
    };
    let v = v
        .into_iter()
        .map(|x| {
            u32::try_from(x)
                .map_err(|_| Error::file(path, format!("token {x} is negative or too large")))
        })
        .collect::<Result<_>>()?;
    Ok(Some((t.shape().to_vec(), v)))
}

/// The tensors an input file may hold.
const INPUTS: [&str; 5] = ["x", "tokens", "h0", "c0", "mask"];

/// Flat index `i` of a tensor shaped `shape`, as "[a, b, c]".
fn at(i: usize, shape: &[usize]) -> String {
    let mut rest = i;
    let mut idx = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        idx[d] = rest % n.max(1);
        rest /= n.max(1);
    }
    format!("{idx:?}")
}

/// Refuses a tensor holding NaN or an infinity: the run would only carry it into every output.
fn finite(path: &Path, name: &str, shape: &[usize], v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::file(
            path,
            format!(
                "tensor '{name}': {} at {} is not a finite number",
                v[i],
                at(i, shape)
            ),
        )),
    }
}

pub fn run_infer(args: &InferArgs) -> Result<()> {
    // --out may replace neither the input nor a file of the checkpoint.
    checkpoint::check_output(&args.out, &[&args.input, &args.checkpoint])?;
    let state = checkpoint::read_state(&args.checkpoint)?;
    let cfg = state.config.model()?;
    let bytes = rims::io::read_regular(&args.input, rims::io::Link::Follow)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::file(&args.input, format!("not a valid safetensors file: {e}")))?;
    let mut names = st.names();
    names.sort();
    let has_input = names.iter().any(|n| ["x", "tokens"].contains(n));
    if !has_input {
        return Err(Error::file(
            &args.input,
            format!(
                "no input: expected a tensor 'x' [T, B, D] or 'tokens' [T, B], found {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    if let Some(unknown) = names.iter().find(|n| !INPUTS.contains(n)) {
        return Err(Error::file(
            &args.input,
            format!(
                "tensor '{unknown}' is not an input of rims infer (x or tokens, and optionally \
                 h0, c0, mask)"
            ),
        ));
    }
    // State width and mask width: N·H and N for RIMs, H and 1 for a dense baseline.
    let (nh, n) = (cfg.state_width(), cfg.mask_width());
    let x = f32s(&args.input, &st, "x")?;
    let toks = tokens(&args.input, &st)?;
    let t_b = match (&x, &toks) {
        (Some((shape, v)), None) => {
            if shape.len() != 3 || shape[2] != cfg.rims.input {
                return Err(Error::file(
                    &args.input,
                    format!("'x' must be [T, B, {}], is {shape:?}", cfg.rims.input),
                ));
            }
            finite(&args.input, "x", shape, v)?;
            (shape[0], shape[1])
        }
        (None, Some((shape, v))) => {
            if cfg.input != rims::nn::model::InputLayer::Embedding {
                return Err(Error::file(
                    &args.input,
                    "tensor 'tokens': this checkpoint reads real-valued features, not tokens \
                     (give its cell inputs as 'x')",
                ));
            }
            if shape.len() != 2 {
                return Err(Error::file(
                    &args.input,
                    format!("'tokens' must be [T, B], is {shape:?}"),
                ));
            }
            if let Some(i) = v.iter().position(|&t| t as usize >= cfg.vocab) {
                return Err(Error::file(
                    &args.input,
                    format!(
                        "tensor 'tokens': {} at {} is outside the checkpoint's vocabulary \
                         (0..={})",
                        v[i],
                        at(i, shape),
                        cfg.vocab - 1
                    ),
                ));
            }
            (shape[0], shape[1])
        }
        (Some(_), Some(_)) => {
            return Err(Error::file(
                &args.input,
                "give either 'x' or 'tokens', not both",
            ));
        }
        (None, None) => return Err(Error::file(&args.input, "no input")),
    };
    let (t_len, b) = t_b;
    if t_len == 0 || b == 0 {
        return Err(Error::file(
            &args.input,
            format!(
                "the input has T = {t_len} steps of B = {b} sequences; both must be at least 1"
            ),
        ));
    }
    let extra = |name: &str, want: Vec<usize>| -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        match f32s(&args.input, &st, name)? {
            Some((shape, _)) if shape != want => Err(Error::file(
                &args.input,
                format!("'{name}' must be {want:?}, is {shape:?}"),
            )),
            other => Ok(other),
        }
    };
    let h0 = extra("h0", vec![b, nh])?;
    let c0 = extra("c0", vec![b, nh])?;
    let mask = extra("mask", vec![t_len, b, n])?;
    for (name, t) in [("h0", &h0), ("c0", &c0)] {
        if let Some((shape, v)) = t {
            finite(&args.input, name, shape, v)?;
        }
    }
    if c0.is_some() && cfg.rims.cell != rims::nn::CellKind::Lstm {
        return Err(Error::file(
            &args.input,
            "tensor 'c0': this checkpoint's cells are GRUs, which have no cell state",
        ));
    }
    if let Some((shape, v)) = &mask
        && let Some(i) = v.iter().position(|&m| m != 0.0 && m != 1.0)
    {
        return Err(Error::file(
            &args.input,
            format!(
                "tensor 'mask': {} at {} is neither 0 nor 1 (a mask override says which \
                 mechanisms are active)",
                v[i],
                at(i, shape)
            ),
        ));
    }
    let ctx = args.device.open()?;
    let need = rims::train::budget::need(&cfg, t_len, b, false, 0);
    rims::train::budget::check_need(&ctx, &need, &format!("{b} sequences of {t_len} steps"))?;
    let model = Model::new(&ctx, cfg.clone(), 0)?;
    checkpoint::load(&ctx, &args.checkpoint, &model, None)?;
    let x = match (x, toks) {
        (Some((shape, v)), _) => Tensor::from_slice(&ctx, &shape, &v)?,
        (None, Some((shape, v))) => model.embed(&ctx, &Tensor::from_u32(&ctx, &shape, &v)?)?,
        (None, None) => return Err(Error::file(&args.input, "no input")),
    };
    let upload = |t: Option<(Vec<usize>, Vec<f32>)>| -> Result<Option<Tensor>> {
        t.map(|(shape, v)| Tensor::from_slice(&ctx, &shape, &v))
            .transpose()
    };
    let (h0, c0, mask) = (upload(h0)?, upload(c0)?, upload(mask)?);
    let out = model.run_features(&ctx, &x, h0, c0, mask)?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
        ("h".into(), vec![t_len, b, nh], out.h.to_vec(&ctx)?),
        ("mask".into(), vec![t_len, b, n], out.masks.to_vec(&ctx)?),
        (
            "logits".into(),
            vec![t_len, b, cfg.classes],
            out.logits.to_vec(&ctx)?,
        ),
    ];
    if let Some(c) = out.c {
        tensors.push(("c".into(), vec![t_len, b, nh], c.to_vec(&ctx)?));
    }
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, bytemuck::cast_slice(&v).to_vec()))
        .collect();
    let views = raw
        .iter()
        .map(|(n, s, d)| {
            safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), d).map(|v| (n.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::file(&args.out, e.to_string()))?;
    let meta: HashMap<String, String> = cfg.metadata().into_iter().collect();
    let encoded = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::file(&args.out, e.to_string()))?;
    rims::io::write_atomic(&args.out, &encoded)?;
    println!(
        "wrote {} (T = {t_len}, B = {b}): h, mask, logits{}",
        args.out.display(),
        if cfg.rims.cell == rims::nn::CellKind::Lstm {
            ", c"
        } else {
            ""
        }
    );
    Ok(())
}
