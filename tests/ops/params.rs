use std::collections::BTreeMap;

use rims::nn::{Init, ParamSpec, ParamStore};
use rims::{Context, Error};

fn specs() -> Vec<ParamSpec> {
    vec![
        ParamSpec::new("w", &[3, 5], Init::Uniform(-0.5, 0.5)),
        ParamSpec::new("b_frozen", &[5], Init::Zeros).frozen(),
        ParamSpec::new("n", &[70], Init::Normal(1.0, 0.1)),
        ParamSpec::new("c", &[2], Init::Constant(7.0)),
    ]
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rims-test-{tag}-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn store(ctx: &Context, seed: u64) -> ParamStore {
    ParamStore::new(ctx, &specs(), seed).unwrap()
}

device_test!(layout_init_and_views);
fn layout_init_and_views(ctx: &Context) {
    let s = store(ctx, 1);
    // Trainable first, each aligned to 64 elements; frozen after.
    assert_eq!(s.names(), vec!["w", "n", "c", "b_frozen"]);
    assert_eq!(s.trainable_len(), 64 + 128 + 64);
    assert_eq!(s.count(), 15 + 5 + 70 + 2);
    let host = s.to_host(ctx).unwrap();
    assert!(host["w"].1.iter().all(|v| (-0.5..0.5).contains(v)));
    assert_eq!(host["c"].1, vec![7.0, 7.0]);
    assert_eq!(host["b_frozen"].1, vec![0.0; 5]);
    let mean: f32 = host["n"].1.iter().sum::<f32>() / 70.0;
    assert!((mean - 1.0).abs() < 0.05, "normal init mean {mean}");
    // Same seed, same values; another seed, other values.
    assert_eq!(store(ctx, 1).to_host(ctx).unwrap(), host);
    assert_ne!(store(ctx, 2).to_host(ctx).unwrap()["w"], host["w"]);
    assert_eq!(s.value("w").unwrap().shape(), &[3, 5]);
    assert!(!s.is_trainable("b_frozen").unwrap());
    // A frozen parameter has no gradient: asking for one says so instead of reading zeros.
    let err = s.grad("b_frozen").unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("'b_frozen' is frozen"), "{err}");
    assert_eq!(s.grad("w").unwrap().shape(), &[3, 5]);
    assert!(matches!(s.grad("nope"), Err(Error::Config { .. })));
    assert!(matches!(s.value("nope"), Err(Error::Config { .. })));
    let dup = vec![
        ParamSpec::new("a", &[1], Init::Zeros),
        ParamSpec::new("a", &[2], Init::Zeros),
    ];
    assert!(matches!(
        ParamStore::new(ctx, &dup, 0),
        Err(Error::Config { .. })
    ));
    let empty = vec![ParamSpec::new("a", &[0, 3], Init::Zeros)];
    assert!(matches!(
        ParamStore::new(ctx, &empty, 0),
        Err(Error::Config { .. })
    ));
}

device_test!(save_load_round_trip_with_metadata);
fn save_load_round_trip_with_metadata(ctx: &Context) {
    let dir = tmpdir("params-rt");
    let path = dir.join("model.safetensors");
    let a = store(ctx, 3);
    let meta: BTreeMap<String, String> = [("variant".to_string(), "A".to_string())].into();
    a.save(ctx, &path, &meta).unwrap();
    let b = store(ctx, 4);
    assert_ne!(a.to_host(ctx).unwrap(), b.to_host(ctx).unwrap());
    let got = b.load(ctx, &path).unwrap();
    assert_eq!(got.get("variant").map(String::as_str), Some("A"));
    assert_eq!(a.to_host(ctx).unwrap(), b.to_host(ctx).unwrap());
    // The file is plain safetensors with the canonical names and shapes.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("w").unwrap().shape(), &[3, 5]);
    assert!(
        std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

device_test!(bad_files_are_errors_and_change_nothing);
fn bad_files_are_errors_and_change_nothing(ctx: &Context) {
    let dir = tmpdir("params-bad");
    let s = store(ctx, 5);
    let before = s.to_host(ctx).unwrap();
    let missing = dir.join("missing.safetensors");
    assert!(matches!(s.load(ctx, &missing), Err(Error::File { .. })));
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file").unwrap();
    assert!(matches!(s.load(ctx, &garbage), Err(Error::File { .. })));
    // A truncated copy of a good file.
    let good = dir.join("good.safetensors");
    s.save(ctx, &good, &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 7]).unwrap();
    assert!(matches!(s.load(ctx, &truncated), Err(Error::File { .. })));
    // A file from another model: a shape differs, or a tensor is missing.
    let other = ParamStore::new(ctx, &[ParamSpec::new("w", &[5, 3], Init::Zeros)], 0).unwrap();
    let other_path = dir.join("other.safetensors");
    other.save(ctx, &other_path, &BTreeMap::new()).unwrap();
    let err = s.load(ctx, &other_path).unwrap_err();
    assert!(
        err.to_string().contains("shape") || err.to_string().contains("missing"),
        "{err}"
    );
    assert_eq!(
        s.to_host(ctx).unwrap(),
        before,
        "a failed load must not change the parameters"
    );
    // Saving into a directory that does not exist fails cleanly; saving over a good file
    // replaces it whole.
    assert!(matches!(
        s.save(
            ctx,
            &dir.join("no/such/dir/x.safetensors"),
            &BTreeMap::new()
        ),
        Err(Error::File { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A number no other call in this process gets: the CPU and GPU halves of a test run at the
/// same time and must not share a directory.
fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

device_test!(load_map_and_prefixed_files);
fn load_map_and_prefixed_files(ctx: &Context) {
    let a = store(ctx, 3);
    let b = store(ctx, 4);
    // A map of tensors, as to_host gives them (e.g. built by a script or another library).
    b.load_map(ctx, &a.to_host(ctx).unwrap()).unwrap();
    assert_eq!(a.to_host(ctx).unwrap(), b.to_host(ctx).unwrap());
    let before = b.to_host(ctx).unwrap();
    let mut extra = a.to_host(ctx).unwrap();
    extra.insert("typo".into(), (vec![1], vec![0.0]));
    let e = b.load_map(ctx, &extra).unwrap_err().to_string();
    assert!(e.contains("'typo' is not a parameter"), "{e}");
    let mut short = a.to_host(ctx).unwrap();
    short.remove("n");
    let e = b.load_map(ctx, &short).unwrap_err().to_string();
    assert!(e.contains("missing tensor 'n'"), "{e}");
    let mut nan = store(ctx, 9).to_host(ctx).unwrap();
    nan.get_mut("w").unwrap().1[4] = f32::NAN;
    let e = b.load_map(ctx, &nan).unwrap_err().to_string();
    assert!(e.contains("'w' holds a non-finite value"), "{e}");
    assert_eq!(
        b.to_host(ctx).unwrap(),
        before,
        "a refused map changes nothing"
    );

    // A file whose tensors carry a prefix (a whole model's file), with unrelated tensors too.
    let dir = tmpdir("params-prefix");
    let path = dir.join("whole.safetensors");
    let c = store(ctx, 5);
    let host = c.to_host(ctx).unwrap();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = host
        .iter()
        .map(|(n, (s, v))| {
            (
                format!("cell.{n}"),
                s.clone(),
                bytemuck::cast_slice(v).to_vec(),
            )
        })
        .chain([("decoder.w".to_string(), vec![1], vec![0u8; 4])])
        .collect();
    let views: Vec<_> = bytes
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    b.load_prefixed(ctx, &path, "cell.").unwrap();
    assert_eq!(b.to_host(ctx).unwrap(), host);
    let e = b.load(ctx, &path).unwrap_err().to_string();
    assert!(e.contains("missing tensor 'w'"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
