//! `rims infer`: runs a checkpoint on an input sequence from a safetensors file and writes
//! every step's state, mask and output, for checking against other implementations.
//!
//! Input tensors: `x` f32 [T, B, D] (cell inputs) or `tokens` (u32, i32 or i64) [T, B] (embedded
//! first); optional `h0`, `c0` f32 [B, N·H]; optional `mask` f32 [T, B, N] of 0/1 (overrides
//! the top-k choice). Output tensors: `h` [T, B, N·H], `c` [T, B, N·H] (LSTM), `mask`
//! [T, B, N], `logits` [T, B, V].

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use rims::nn::model::Model;
use rims::train::checkpoint;
use rims::{Error, Result, Tensor};
use safetensors::{Dtype, SafeTensors};

#[derive(Debug, Args)]
pub struct InferArgs {
    #[command(flatten)]
    pub(crate) device: super::DeviceArg,
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

fn bad(path: &std::path::Path, reason: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
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
        return Err(bad(
            path,
            format!("tensor '{name}' must be F32, is {:?}", t.dtype()),
        ));
    }
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Some((t.shape().to_vec(), v)))
}

fn tokens(path: &std::path::Path, st: &SafeTensors<'_>) -> Result<Option<(Vec<usize>, Vec<u32>)>> {
    let Ok(t) = st.tensor("tokens") else {
        return Ok(None);
    };
    let d = t.data();
    let v: Vec<i64> = match t.dtype() {
        Dtype::U32 => d
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect(),
        Dtype::I32 => d
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect(),
        Dtype::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        other => {
            return Err(bad(
                path,
                format!("tensor 'tokens' must be U32, I32 or I64, is {other:?}"),
            ));
        }
    };
    let v = v
        .into_iter()
        .map(|x| {
            u32::try_from(x).map_err(|_| bad(path, format!("token {x} is negative or too large")))
        })
        .collect::<Result<_>>()?;
    Ok(Some((t.shape().to_vec(), v)))
}

pub fn run_infer(args: &InferArgs) -> Result<()> {
    let state = checkpoint::read_state(&args.checkpoint)?;
    let cfg = state.config.model()?;
    let bytes =
        std::fs::read(&args.input).map_err(|e| bad(&args.input, format!("cannot read: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(&args.input, format!("not a valid safetensors file: {e}")))?;
    let ctx = args.device.open()?;
    let model = Model::new(&ctx, cfg.clone(), 0)?;
    checkpoint::load(&ctx, &args.checkpoint, &model, None)?;
    // State width and mask width: N·H and N for RIMs, H and 1 for a dense baseline.
    let (nh, n) = (cfg.state_width(), cfg.mask_width());
    let x = match (f32s(&args.input, &st, "x")?, tokens(&args.input, &st)?) {
        (Some((shape, v)), None) => Tensor::from_slice(&ctx, &shape, &v)?,
        (None, Some((shape, v))) => {
            if shape.len() != 2 {
                return Err(bad(
                    &args.input,
                    format!("'tokens' must be [T, B], is {shape:?}"),
                ));
            }
            model.embed(&ctx, &Tensor::from_u32(&ctx, &shape, &v)?)?
        }
        (Some(_), Some(_)) => {
            return Err(bad(&args.input, "give either 'x' or 'tokens', not both"));
        }
        (None, None) => {
            return Err(bad(
                &args.input,
                "no input: expected a tensor 'x' [T, B, D] or 'tokens' [T, B]",
            ));
        }
    };
    let s = x.shape().to_vec();
    if s.len() != 3 || s[2] != cfg.rims.input {
        return Err(bad(
            &args.input,
            format!("'x' must be [T, B, {}], is {s:?}", cfg.rims.input),
        ));
    }
    let (t_len, b) = (s[0], s[1]);
    let load = |name: &str, want: Vec<usize>| -> Result<Option<Tensor>> {
        match f32s(&args.input, &st, name)? {
            None => Ok(None),
            Some((shape, v))
                if shape.iter().product::<usize>() == want.iter().product::<usize>() =>
            {
                Ok(Some(Tensor::from_slice(&ctx, &want, &v)?))
            }
            Some((shape, _)) => Err(bad(
                &args.input,
                format!("'{name}' must be {want:?}, is {shape:?}"),
            )),
        }
    };
    let h0 = load("h0", vec![b, nh])?;
    let c0 = load("c0", vec![b, nh])?;
    let mask = load("mask", vec![t_len, b, n])?;
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
        .map_err(|e| bad(&args.out, e.to_string()))?;
    let meta: HashMap<String, String> = cfg.metadata().into_iter().collect();
    let encoded =
        safetensors::serialize(views, Some(meta)).map_err(|e| bad(&args.out, e.to_string()))?;
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
