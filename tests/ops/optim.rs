use rims::device::DeviceKind;
use rims::ops::optim::{self, Adam, AdamConfig, Sgd, SgdConfig};
use rims::reference::optim as reference;
use rims::rng::Rng;
use rims::{Context, Error, Tensor};

use crate::common::{assert_close, fresh, to_f64};

const SIZES: &[usize] = &[1, 7, 1000, 70_000];
/// Gradient scales per step: with max_norm at the norm of scale 1, clipping is active in the
/// steps of scale > 1 and inactive in the others.
const SCALES: &[f64] = &[0.5, 2.0, 0.7, 1.5, 0.3, 3.0];
/// Extra parameters after the first n: the optimizer must leave them alone.
const TAIL: usize = 5;

/// Expected norm of n gradients uniform in [-1, 1).
fn unit_norm(n: usize) -> f32 {
    (n as f32 / 3.0).sqrt()
}

/// Random gradients of step `s`, uniform in [-scale, scale).
fn grads_of(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    rng.vec_f32(n, -scale, scale)
}

fn read1(ctx: &Context, t: &Tensor) -> f64 {
    let v = t.to_vec(ctx).unwrap();
    assert_eq!(v.len(), 1);
    v[0] as f64
}

fn config_field(r: Result<impl Sized, Error>) -> &'static str {
    match r {
        Err(Error::Config { field, .. }) => field,
        Err(e) => panic!("expected Error::Config, got {e}"),
        Ok(_) => panic!("expected Error::Config, got Ok"),
    }
}

/// Runs `steps` of the GPU optimizer and of the reference side by side and compares params
/// (and the norm when clipping) after every step. `gpu_step` / `ref_step` return the norm.
fn run_steps(
    ctx: &Context,
    what: &str,
    n: usize,
    seed: u64,
    clip: bool,
    mut gpu_step: impl FnMut(&Tensor, &Tensor) -> Option<Tensor>,
    mut ref_step: impl FnMut(&mut [f64], &[f64]) -> Option<f64>,
) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let p0 = rng.vec_f32(n + TAIL, -1.0, 1.0);
    let params = Tensor::from_slice(ctx, &[n + TAIL], &p0).unwrap();
    // Gradients longer than n too, in half of the cases.
    let glen = if seed.is_multiple_of(2) { n } else { n + TAIL };
    let grads = Tensor::zeros(ctx, &[glen]).unwrap();
    let mut want = to_f64(&p0[..n]);
    let (mut clipped, mut unclipped) = (0, 0);
    for (s, &scale) in SCALES.iter().enumerate() {
        let g = grads_of(&mut rng, glen, scale);
        grads.write(ctx, &g).unwrap();
        let norm = gpu_step(&params, &grads);
        let ref_norm = ref_step(&mut want, &to_f64(&g[..n]));
        let got = params.to_vec(ctx).unwrap();
        assert_close(
            &format!("{what} n={n} step {s} params"),
            &got[..n],
            &want,
            1e-6,
            1e-5,
        );
        assert_eq!(&got[n..], &p0[n..], "{what}: params past n were written");
        assert_eq!(grads.to_vec(ctx).unwrap(), g, "{what}: grads were changed");
        match (norm, ref_norm) {
            (Some(norm), Some(r)) => {
                assert!(clip);
                let gpu = read1(ctx, &norm);
                assert!(
                    (gpu - r).abs() <= 1e-5 * r,
                    "{what} n={n} step {s}: norm {gpu} vs reference {r}"
                );
                if r > unit_norm(n) as f64 * 1.000_01 {
                    clipped += 1;
                } else {
                    unclipped += 1;
                }
            }
            (None, None) => assert!(!clip),
            (a, b) => panic!("{what}: gpu norm {a:?} vs reference norm {b:?}"),
        }
    }
    if clip && n > 100 {
        assert!(
            clipped > 0 && unclipped > 0,
            "{what} n={n}: clipping should be active in some steps ({clipped}) and inactive in \
             others ({unclipped})"
        );
    }
    want
}

device_test!(adam_matches_reference_over_steps);
fn adam_matches_reference_over_steps(ctx: &Context) {
    for &n in SIZES {
        let configs = [
            (
                "adam",
                AdamConfig {
                    lr: 1e-2,
                    ..Default::default()
                },
            ),
            (
                "adam+wd+clip",
                AdamConfig {
                    lr: 1e-2,
                    beta1: 0.8,
                    beta2: 0.99,
                    eps: 1e-6,
                    weight_decay: 0.05,
                    clip_norm: Some(unit_norm(n)),
                },
            ),
            (
                "adam+wd",
                AdamConfig {
                    lr: 3e-3,
                    weight_decay: 0.1,
                    ..Default::default()
                },
            ),
        ];
        for (c, (what, cfg)) in configs.into_iter().enumerate() {
            let mut adam = Adam::new(ctx, n, cfg).unwrap();
            let mut state = reference::AdamState::new(n);
            run_steps(
                ctx,
                what,
                n,
                n as u64 * 10 + c as u64,
                cfg.clip_norm.is_some(),
                |p, g| {
                    adam.step(ctx, p, g).unwrap();
                    adam.grad_norm().cloned()
                },
                |p, g| reference::adam_step(&cfg, &mut state, p, g),
            );
            assert_eq!(adam.steps(), SCALES.len() as u64);
            assert_eq!(state.t, adam.steps());
            let (m, v) = adam.moments();
            assert_close(
                &format!("{what} n={n} m"),
                &m.to_vec(ctx).unwrap(),
                &state.m,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("{what} n={n} v"),
                &v.to_vec(ctx).unwrap(),
                &state.v,
                1e-9,
                1e-5,
            );
        }
    }
}

device_test!(sgd_matches_reference_over_steps);
fn sgd_matches_reference_over_steps(ctx: &Context) {
    for &n in SIZES {
        let base = SgdConfig {
            lr: 0.05,
            ..Default::default()
        };
        let configs = [
            ("sgd", base),
            (
                "sgd+wd+clip",
                SgdConfig {
                    weight_decay: 0.1,
                    clip_norm: Some(unit_norm(n)),
                    ..base
                },
            ),
            (
                "sgd+momentum+dampening",
                SgdConfig {
                    momentum: 0.9,
                    dampening: 0.25,
                    ..base
                },
            ),
            (
                "sgd+momentum+wd+clip",
                SgdConfig {
                    momentum: 0.5,
                    weight_decay: 0.01,
                    clip_norm: Some(unit_norm(n)),
                    ..base
                },
            ),
            (
                "sgd+nesterov",
                SgdConfig {
                    momentum: 0.9,
                    nesterov: true,
                    ..base
                },
            ),
            (
                "sgd+nesterov+wd+clip",
                SgdConfig {
                    momentum: 0.8,
                    nesterov: true,
                    weight_decay: 0.02,
                    clip_norm: Some(unit_norm(n)),
                    ..base
                },
            ),
        ];
        for (c, (what, cfg)) in configs.into_iter().enumerate() {
            let mut sgd = Sgd::new(ctx, n, cfg).unwrap();
            assert_eq!(sgd.momentum_buffer().is_some(), cfg.momentum != 0.0);
            let mut state = reference::SgdState::default();
            run_steps(
                ctx,
                what,
                n,
                n as u64 * 100 + c as u64,
                cfg.clip_norm.is_some(),
                |p, g| {
                    sgd.step(ctx, p, g).unwrap();
                    sgd.grad_norm().cloned()
                },
                |p, g| reference::sgd_step(&cfg, &mut state, p, g),
            );
            assert_eq!(sgd.steps(), SCALES.len() as u64);
            if let (Some(buf), Some(want)) = (sgd.momentum_buffer(), &state.buf) {
                assert_close(
                    &format!("{what} n={n} momentum buffer"),
                    &buf.to_vec(ctx).unwrap(),
                    want,
                    1e-6,
                    1e-5,
                );
            }
        }
    }
}

device_test!(global_grad_norm_matches_reference);
fn global_grad_norm_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(7);
    // 300_000 needs more than 1024 chunks of 256: the partial count is capped and each thread
    // strides over its chunk; 70_000 gives more partials than the second pass has threads.
    for &n in &[1usize, 7, 255, 256, 257, 1000, 70_000, 300_000] {
        let g = rng.vec_f32(n + 3, -2.0, 2.0);
        let t = Tensor::from_slice(ctx, &[n + 3], &g).unwrap();
        let norm = optim::global_grad_norm(ctx, &t, n).unwrap();
        assert_eq!(norm.shape(), &[1]);
        let got = read1(ctx, &norm);
        let want = reference::grad_norm(&to_f64(&g[..n]));
        assert!(
            (got - want).abs() <= 1e-5 * want,
            "n={n}: norm {got} vs reference {want}"
        );
    }
    let zeros = Tensor::zeros(ctx, &[10]).unwrap();
    let norm = optim::global_grad_norm(ctx, &zeros, 10).unwrap();
    assert_eq!(read1(ctx, &norm), 0.0);
}

#[test]
fn clip_reference_follows_pytorch() {
    // clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied only when below 1.
    let mut g = vec![3.0, 4.0];
    assert_eq!(reference::clip_grad_norm(&mut g, 10.0), 5.0);
    assert_eq!(g, vec![3.0, 4.0]);
    let norm = reference::clip_grad_norm(&mut g, 1.0);
    assert_eq!(norm, 5.0);
    let coef = 1.0 / (5.0 + 1e-6f32 as f64);
    assert_eq!(g, vec![3.0 * coef, 4.0 * coef]);
}

device_test!(adam_first_step_moves_by_lr_times_sign);
fn adam_first_step_moves_by_lr_times_sign(ctx: &Context) {
    // After one step m̂ = g and v̂ = g², so each parameter moves by lr·g/(|g| + eps): a check
    // of GPU and reference that does not depend on the reference.
    let g = [0.5f32, -2.0, 1e-3, -7.0, 0.0];
    let params = Tensor::from_slice(ctx, &[5], &[1.0; 5]).unwrap();
    let grads = Tensor::from_slice(ctx, &[5], &g).unwrap();
    let mut adam = Adam::new(ctx, 5, AdamConfig::default()).unwrap();
    adam.step(ctx, &params, &grads).unwrap();
    let got = params.to_vec(ctx).unwrap();
    let want: Vec<f64> = g
        .iter()
        .map(|&g| 1.0 - (1e-3f32 as f64) * g as f64 / ((g as f64).abs() + 1e-8f32 as f64))
        .collect();
    assert_close("first Adam step", &got, &want, 1e-7, 1e-6);
    let mut p = vec![1.0; 5];
    let mut state = reference::AdamState::new(5);
    reference::adam_step(&AdamConfig::default(), &mut state, &mut p, &to_f64(&g));
    for (i, (r, w)) in p.iter().zip(&want).enumerate() {
        assert!(
            (r - w).abs() < 1e-15,
            "reference first step[{i}]: {r} vs {w}"
        );
    }
}

device_test!(
    steps_only_record_three_dispatches_with_clip_one_without,
    fresh
);
fn steps_only_record_three_dispatches_with_clip_one_without(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else { return };
    let ctx = &ctx;
    let n = 1000;
    let params = Tensor::zeros(ctx, &[n]).unwrap();
    let grads = Tensor::full(ctx, &[n], 0.5).unwrap();
    let mut plain = Adam::new(ctx, n, AdamConfig::default()).unwrap();
    let mut clipped = Adam::new(
        ctx,
        n,
        AdamConfig {
            clip_norm: Some(1.0),
            ..Default::default()
        },
    )
    .unwrap();
    let mut sgd = Sgd::new(
        ctx,
        n,
        SgdConfig {
            momentum: 0.9,
            clip_norm: Some(1.0),
            ..Default::default()
        },
    )
    .unwrap();
    ctx.submit().unwrap();
    let count = |f: &mut dyn FnMut()| {
        let before = ctx.recorder_stats();
        f();
        let after = ctx.recorder_stats();
        assert_eq!(after.submits, before.submits, "a step must only record");
        after.dispatches - before.dispatches
    };
    assert_eq!(
        count(&mut || clipped.step(ctx, &params, &grads).unwrap()),
        3
    );
    assert_eq!(count(&mut || plain.step(ctx, &params, &grads).unwrap()), 1);
    assert_eq!(
        count(&mut || clipped.step(ctx, &params, &grads).unwrap()),
        3
    );
    assert_eq!(count(&mut || sgd.step(ctx, &params, &grads).unwrap()), 3);
    let before = ctx.recorder_stats();
    // The whole recorded sequence runs in one submit (and one pass) when first read.
    let norm = clipped.grad_norm().unwrap();
    let want = (n as f64 * 0.25).sqrt();
    assert!((read1(ctx, norm) - want).abs() <= 1e-5 * want);
    let after = ctx.recorder_stats();
    assert_eq!(after.submits, before.submits + 1);
    assert_eq!(after.passes, before.passes + 1);
    assert!(plain.grad_norm().is_none());
    assert!(params.to_vec(ctx).unwrap().iter().all(|p| p.is_finite()));
}

device_test!(bad_configs_name_the_field);
fn bad_configs_name_the_field(ctx: &Context) {
    let adam = |cfg: AdamConfig| Adam::new(ctx, 4, cfg);
    let d = AdamConfig::default();
    assert_eq!(config_field(adam(AdamConfig { lr: -1e-3, ..d })), "lr");
    assert_eq!(config_field(adam(AdamConfig { lr: f32::NAN, ..d })), "lr");
    assert_eq!(config_field(adam(AdamConfig { beta1: 1.0, ..d })), "beta1");
    assert_eq!(config_field(adam(AdamConfig { beta1: -0.1, ..d })), "beta1");
    assert_eq!(
        config_field(adam(AdamConfig {
            beta2: f32::NAN,
            ..d
        })),
        "beta2"
    );
    assert_eq!(config_field(adam(AdamConfig { beta2: 1.5, ..d })), "beta2");
    assert_eq!(config_field(adam(AdamConfig { eps: -1.0, ..d })), "eps");
    assert_eq!(
        config_field(adam(AdamConfig {
            eps: f32::INFINITY,
            ..d
        })),
        "eps"
    );
    assert_eq!(
        config_field(adam(AdamConfig {
            weight_decay: -0.1,
            ..d
        })),
        "weight_decay"
    );
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert_eq!(
            config_field(adam(AdamConfig {
                clip_norm: Some(bad),
                ..d
            })),
            "clip_norm"
        );
    }
    let sgd = |cfg: SgdConfig| Sgd::new(ctx, 4, cfg);
    let s = SgdConfig::default();
    assert_eq!(
        config_field(sgd(SgdConfig {
            lr: f32::INFINITY,
            ..s
        })),
        "lr"
    );
    assert_eq!(
        config_field(sgd(SgdConfig {
            momentum: -0.5,
            ..s
        })),
        "momentum"
    );
    assert_eq!(
        config_field(sgd(SgdConfig {
            dampening: f32::NAN,
            ..s
        })),
        "dampening"
    );
    assert_eq!(
        config_field(sgd(SgdConfig {
            nesterov: true,
            ..s
        })),
        "nesterov"
    );
    assert_eq!(
        config_field(sgd(SgdConfig {
            nesterov: true,
            momentum: 0.9,
            dampening: 0.1,
            ..s
        })),
        "nesterov"
    );
    assert_eq!(
        config_field(sgd(SgdConfig {
            weight_decay: f32::NAN,
            ..s
        })),
        "weight_decay"
    );
    assert_eq!(
        config_field(sgd(SgdConfig {
            clip_norm: Some(-2.0),
            ..s
        })),
        "clip_norm"
    );
    let mut a = Adam::new(ctx, 4, d).unwrap();
    assert_eq!(config_field(a.set_lr(-1.0)), "lr");
    assert_eq!(config_field(a.set_lr(f32::NAN)), "lr");
    assert_eq!(a.config().lr, d.lr);
    a.set_lr(0.5).unwrap();
    assert_eq!(a.config().lr, 0.5);
    let mut b = Sgd::new(ctx, 4, s).unwrap();
    assert_eq!(config_field(b.set_lr(f32::NEG_INFINITY)), "lr");
}

device_test!(bad_tensors_and_sizes_are_errors);
fn bad_tensors_and_sizes_are_errors(ctx: &Context) {
    assert!(matches!(
        Adam::new(ctx, 0, AdamConfig::default()),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        Sgd::new(ctx, 0, SgdConfig::default()),
        Err(Error::Empty { .. })
    ));
    let n = 10;
    let params = Tensor::zeros(ctx, &[n]).unwrap();
    let grads = Tensor::zeros(ctx, &[n]).unwrap();
    let short = Tensor::zeros(ctx, &[n - 1]).unwrap();
    let ints = Tensor::from_u32(ctx, &[n], &[0; 10]).unwrap();
    let flat = Tensor::zeros(ctx, &[256]).unwrap();
    let (p_view, g_view) = (flat.view(0, &[n]).unwrap(), flat.view(128, &[n]).unwrap());
    let cfg = AdamConfig {
        clip_norm: Some(1.0),
        ..Default::default()
    };
    let mut adam = Adam::new(ctx, n, cfg).unwrap();
    let mut sgd = Sgd::new(
        ctx,
        n,
        SgdConfig {
            momentum: 0.9,
            ..Default::default()
        },
    )
    .unwrap();
    for (p, g) in [(&short, &grads), (&params, &short)] {
        assert!(matches!(adam.step(ctx, p, g), Err(Error::Shape { .. })));
        assert!(matches!(sgd.step(ctx, p, g), Err(Error::Shape { .. })));
    }
    for (p, g) in [(&ints, &grads), (&params, &ints), (&p_view, &g_view)] {
        assert!(matches!(
            adam.step(ctx, p, g),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            sgd.step(ctx, p, g),
            Err(Error::InvalidArgument { .. })
        ));
    }
    // The optimizer's own state may not be passed as params or grads.
    let m = adam.moments().0.clone();
    assert!(matches!(
        adam.step(ctx, &params, &m),
        Err(Error::InvalidArgument { .. })
    ));
    let buf = sgd.momentum_buffer().unwrap().clone();
    assert!(matches!(
        sgd.step(ctx, &buf, &grads),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(adam.steps(), 0, "a failed step does not count");
    assert_eq!(sgd.steps(), 0);
    assert!(adam.grad_norm().is_none());
    assert!(matches!(
        optim::global_grad_norm(ctx, &grads, 0),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        optim::global_grad_norm(ctx, &short, n),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        optim::global_grad_norm(ctx, &ints, n),
        Err(Error::InvalidArgument { .. })
    ));
    // The optimizer still works after the errors.
    adam.step(ctx, &params, &grads).unwrap();
    sgd.step(ctx, &params, &grads).unwrap();
    assert_eq!(params.to_vec(ctx).unwrap(), vec![0.0; n]);
}
