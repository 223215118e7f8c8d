//! Every WGSL file in shaders/ parses and validates with naga, with no device, and is the file
//! the engine embeds (so nothing on disk is dead and nothing embedded is stale).

use std::path::Path;

use rims::device::registry::validate_wgsl;
use rims::kernels::SHADERS;

#[test]
fn every_shader_file_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let resolved = rims::kernels::resolve_includes(&source).unwrap();
        if let Err(message) = validate_wgsl(&resolved) {
            panic!("{}:\n{message}", path.display());
        }
        let name = path.file_stem().unwrap().to_str().unwrap();
        let embedded = SHADERS.iter().find(|(n, _)| *n == name);
        assert!(
            embedded.is_some(),
            "{name}.wgsl is not listed in kernels::SHADERS"
        );
        assert_eq!(
            embedded.unwrap().1,
            source,
            "{name}.wgsl differs from the embedded copy"
        );
        checked += 1;
    }
    assert_eq!(checked, SHADERS.len(), "every embedded shader has its file");
    assert!(checked >= 5);
}

#[test]
fn every_library_validates_on_its_own() {
    for (name, source) in rims::kernels::LIBRARIES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("shaders/lib")
            .join(format!("{name}.wgsl"));
        assert_eq!(
            &std::fs::read_to_string(&path).unwrap(),
            source,
            "{name} differs from its file"
        );
        // With what it includes (gates includes common).
        let resolved = rims::kernels::resolve_includes(source).unwrap();
        validate_wgsl(&resolved).unwrap_or_else(|e| panic!("lib/{name}.wgsl: {e}"));
    }
}

#[test]
fn specialisations_validate() {
    // The tile sizes and layouts the engine can ask for.
    for (rows, cols) in [(16, 16), (8, 16), (16, 8), (8, 8), (4, 4)] {
        for (ak, bn) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let spec = [
                ("TM", rows),
                ("TN", cols),
                ("A_K_CONTIG", ak),
                ("B_N_CONTIG", bn),
            ];
            let source = rims::device::registry::specialise("matmul", &spec).unwrap();
            validate_wgsl(&source).unwrap_or_else(|e| panic!("matmul {spec:?}: {e}"));
        }
    }
    assert!(rims::device::registry::specialise("matmul", &[("NOT_A_CONSTANT", 1)]).is_err());
}
