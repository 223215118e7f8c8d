//! One op = one shader + one CPU twin + one wrapper + one reference + its tests, under one name
//! (docs/design.md, "Principles" 3 and "Op families and their pieces"). This test fails, naming
//! the family and the missing file, when a piece is missing, and when a wrapper has no shader.

use std::fs;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn exists(rel: &str) -> bool {
    root().join(rel).is_file()
}

/// The names of the `.EXT` files directly in `dir` (without the extension).
fn names(dir: &str, ext: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == ext).then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    out.sort();
    out
}

/// Every file a family NAME needs: the shader, the twin, the wrapper (a file or a folder), the
/// reference and the tests, the tests also declared in tests/ops/main.rs.
fn missing_pieces(name: &str, ops_main: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for rel in [
        format!("shaders/{name}.wgsl"),
        format!("src/kernels/{name}.rs"),
        format!("src/reference/{name}.rs"),
        format!("tests/ops/{name}.rs"),
    ] {
        if !exists(&rel) {
            missing.push(rel);
        }
    }
    if !exists(&format!("src/ops/{name}.rs")) && !exists(&format!("src/ops/{name}/mod.rs")) {
        missing.push(format!("src/ops/{name}.rs (or src/ops/{name}/mod.rs)"));
    }
    if !ops_main.lines().any(|l| l.trim() == format!("mod {name};")) {
        missing.push(format!("`mod {name};` in tests/ops/main.rs"));
    }
    missing
}

#[test]
fn every_op_family_has_all_its_pieces_under_one_name() {
    let ops_main = fs::read_to_string(root().join("tests/ops/main.rs")).unwrap();
    let shaders = names("shaders", "wgsl");
    assert!(shaders.len() >= 13, "found only {shaders:?} in shaders/");
    let mut problems = Vec::new();
    for name in &shaders {
        for piece in missing_pieces(name, &ops_main) {
            problems.push(format!("{name}: no {piece}"));
        }
    }
    // A wrapper without a shader is an op outside the rule (ops/mod.rs is the module itself).
    let mut wrappers = names("src/ops", "rs");
    for entry in fs::read_dir(root().join("src/ops")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            wrappers.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for w in wrappers.iter().filter(|w| *w != "mod") {
        if !shaders.contains(w) {
            problems.push(format!("src/ops/{w}: no shaders/{w}.wgsl"));
        }
    }
    assert!(
        problems.is_empty(),
        "op families with pieces missing:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn a_missing_piece_is_named() {
    let missing = missing_pieces("no_such_family", "mod matmul;\n");
    assert_eq!(missing.len(), 6, "{missing:?}");
    assert!(missing.contains(&"shaders/no_such_family.wgsl".to_string()));
    assert!(missing.contains(&"`mod no_such_family;` in tests/ops/main.rs".to_string()));
    assert!(missing_pieces("matmul", "mod matmul;\n").is_empty());
}
