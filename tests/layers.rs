//! The layers import only downward (docs/design.md, "Layers").
//!
//! Reads every `src/**/*.rs` as text (comments and string literals blanked out) and finds each
//! path into another module: `crate::NAME`, `crate::{NAME, ..}`, `super::` where it climbs to the
//! crate root, and in the binary `rims::NAME` and `super::ITEM`/`crate::ITEM` for items of
//! `main.rs`. Each such path is classified by the layer of the file it is in and the layer it
//! names, and the test fails, naming file and line, when the rule of docs/design.md forbids it.
//!
//! `#[cfg(test)]` modules of the library are checked like the rest (a `super::` inside one only
//! names its own file and is not followed); in the binary, test modules are not checked (a
//! subcommand's tests may parse the whole command line with main.rs's `Cli`). Known exceptions are listed in `ALLOWED`, each with the reason; an
//! entry that no longer matches anything also fails the test, so a fixed exception is removed
//! from the list.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Exceptions to the rule: (file, the layer it reaches up to, why). None remain (issue 14
/// removed the last); an entry added here must also be named in docs/design.md's "Layers".
const ALLOWED: &[(&str, &str, &str)] = &[];

/// The stack, bottom to top (docs/design.md): a layer may use its own and those below.
const STACK: &[&str] = &[
    "kernels", "device", "tensor", "ops", "tape", "nn", "train", "interop", "bin",
];
// `rl` is not in the stack's line: it sits above `train`, beside `interop` (see `allowed`).

/// The layer of a top-level module of the library.
fn layer_of_module(module: &str) -> &'static str {
    match module {
        "kernels" => "kernels",
        "device" => "device",
        "tensor" => "tensor",
        "ops" => "ops",
        "tape" => "tape",
        "nn" => "nn",
        "train" => "train",
        "interop" => "interop",
        "rl" => "rl",
        "data" => "data",
        "reference" => "reference",
        "verify" => "verify",
        "error" | "rng" | "io" | "layout" | "spec" => "utilities",
        other => {
            panic!("src/lib.rs declares module `{other}`, which has no layer in tests/layers.rs")
        }
    }
}

fn rank(layer: &str) -> Option<usize> {
    STACK.iter().position(|l| *l == layer)
}

/// Whether a file of layer `from` may use layer `to` (docs/design.md, "Layers").
fn allowed(from: &str, to: &str) -> bool {
    if from == to || to == "utilities" {
        return true;
    }
    match (from, to) {
        // The utilities use only each other.
        ("utilities", _) => false,
        // The reference depends on nothing but the utilities, and only verify (and tests and
        // benches, outside the crate) may use it.
        ("reference", _) => false,
        (_, "reference") => from == "verify",
        // data uses only the utilities; train and bin use it.
        ("data", _) => false,
        (_, "data") => from == "train" || from == "bin",
        // rl sits above train, beside interop (neither uses the other); only bin uses it.
        ("rl", t) => rank(t).is_some_and(|r| r <= rank("train").unwrap()),
        (_, "rl") => from == "bin",
        // verify sits at the level of nn; bin uses it.
        ("verify", t) => rank(t).is_some_and(|r| r <= rank("nn").unwrap()),
        (_, "verify") => from == "bin",
        // The binary's subcommands do not reach into main.rs.
        (_, "bin/main") => false,
        (f, t) => match (rank(f), rank(t)) {
            (Some(f), Some(t)) => t <= f,
            _ => false,
        },
    }
}

/// The layer a file of the library or binary is in.
fn layer_of_file(rel: &str) -> &'static str {
    if rel.starts_with("src/bin/") {
        return "bin";
    }
    let rest = rel.strip_prefix("src/").unwrap();
    let first = rest.split('/').next().unwrap().trim_end_matches(".rs");
    layer_of_module(first)
}

/// The module path of a library file: `src/ops/cell.rs` is `[ops, cell]`, `src/ops/mod.rs` is
/// `[ops]`.
fn module_path(rel: &str) -> Vec<String> {
    let rest = rel.strip_prefix("src/").unwrap().trim_end_matches(".rs");
    let mut parts: Vec<String> = rest.split('/').map(str::to_string).collect();
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts
}

/// The text with comments and the contents of string and char literals replaced by spaces
/// (newlines kept, so line numbers hold).
fn blank(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let keep = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(keep(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
            && (i == 0 || !is_ident(c[i - 1]))
        {
            // A raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            for _ in i..=j {
                out.push(' ');
            }
            i = j + 1;
            while i < c.len() {
                if c[i] == '"' && (0..hashes).all(|h| c.get(i + 1 + h) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(keep(c[i]));
                i += 1;
            }
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < c.len() {
                    out.push(keep(c[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            if c.get(i + 1) == Some(&'\\') {
                out.push(' ');
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    out.push(' ');
                    i += 1;
                    if c[i - 1] == '\\' && i < c.len() {
                        out.push(' ');
                        i += 1;
                    }
                }
                out.push(' ');
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(c[i]);
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Byte offsets of the lines inside `#[cfg(test)]` modules.
fn test_lines(text: &str) -> BTreeSet<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut inside = BTreeSet::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            // The next non-attribute line opens the module (or is an item we skip).
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim().starts_with("#[") {
                j += 1;
            }
            if j < lines.len()
                && lines[j].trim_start().starts_with("mod ")
                && lines[j].contains('{')
            {
                let mut depth: i64 = 0;
                let mut k = j;
                loop {
                    inside.insert(k);
                    depth += lines[k].matches('{').count() as i64;
                    depth -= lines[k].matches('}').count() as i64;
                    if depth <= 0 || k + 1 >= lines.len() {
                        break;
                    }
                    k += 1;
                }
                i = k + 1;
                continue;
            }
        }
        i += 1;
    }
    inside
}

/// One path out of a file: its 1-based line, the text shown, and the name after the prefix.
struct Reference {
    line: usize,
    shown: String,
    name: String,
}

/// Every `PREFIX::NAME` and `PREFIX::{NAME, ..}` in `text` (the first segment of each path).
fn paths_after(text: &str, prefix: &str) -> Vec<Reference> {
    let bytes = text.as_bytes();
    let line_of = |pos: usize| text[..pos].matches('\n').count() + 1;
    let needle = format!("{prefix}::");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(off) = text[from..].find(&needle) {
        let start = from + off;
        from = start + needle.len();
        if start > 0 && is_ident(bytes[start - 1] as char) {
            continue;
        }
        // `super::super::x` is handled by the caller; here take what follows the prefix.
        let mut p = from;
        while p < bytes.len() && (bytes[p] as char).is_whitespace() {
            p += 1;
        }
        if p < bytes.len() && bytes[p] == b'{' {
            // The first segment of each item of the group.
            let mut depth = 0;
            let mut expect = true;
            let mut q = p;
            while q < bytes.len() {
                let ch = bytes[q] as char;
                match ch {
                    '{' => {
                        depth += 1;
                        if depth == 1 {
                            expect = true;
                        }
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect = true,
                    c if expect && depth == 1 && is_ident(c) => {
                        let e = q + text[q..].find(|c: char| !is_ident(c)).unwrap_or(0);
                        found.push(Reference {
                            line: line_of(q),
                            shown: format!("{prefix}::{{{}..}}", &text[q..e]),
                            name: text[q..e].to_string(),
                        });
                        expect = false;
                        q = e;
                        continue;
                    }
                    _ => {}
                }
                q += 1;
            }
        } else {
            let e = p + text[p..]
                .find(|c: char| !is_ident(c))
                .unwrap_or(text.len() - p);
            if e > p {
                let end = text[e..]
                    .find(|c: char| !(is_ident(c) || c == ':'))
                    .map_or(text.len(), |x| e + x);
                found.push(Reference {
                    line: line_of(start),
                    shown: text[start..end].trim_end_matches(':').to_string(),
                    name: text[p..e].to_string(),
                });
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate root's modules and its re-exports (`pub use device::{Context, ..}`): name → module.
fn root_names(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in lib.lines() {
        let line = line.trim();
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            names.insert(m.to_string(), m.to_string());
        } else if let Some(rest) = line
            .strip_prefix("pub use ")
            .and_then(|l| l.strip_suffix(';'))
        {
            let (module, items) = rest.split_once("::").unwrap();
            let items = items.trim_start_matches('{').trim_end_matches('}');
            for item in items.split(',') {
                let item = item.trim().rsplit("::").next().unwrap().trim();
                if !item.is_empty() {
                    names.insert(item.to_string(), module.to_string());
                }
            }
        }
    }
    names
}

/// A use of layer `to` from a file.
struct Use {
    file: String,
    line: usize,
    shown: String,
    to: &'static str,
}

fn scan() -> Vec<Use> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = blank(&fs::read_to_string(root.join("src/lib.rs")).unwrap());
    let names = root_names(&lib);
    let layer_of_name = |name: &str, file: &str, line: usize| -> &'static str {
        let module = names.get(name).unwrap_or_else(|| {
            panic!("{file}:{line}: `{name}` is neither a module of the crate root nor a re-export")
        });
        layer_of_module(module)
    };

    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let bin_dir = root.join("src/bin/rims");
    let bin_modules: BTreeSet<String> = fs::read_dir(&bin_dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            p.file_stem().map(|s| s.to_string_lossy().into_owned())
        })
        .filter(|s| s != "main")
        .collect();

    let mut uses = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "src/lib.rs" {
            continue;
        }
        let text = blank(&fs::read_to_string(path).unwrap());
        let tests = test_lines(&text);
        let in_test = |line: usize| tests.contains(&(line - 1));
        let mut push = |line: usize, shown: String, to: &'static str| {
            uses.push(Use {
                file: rel.clone(),
                line,
                shown,
                to,
            })
        };
        if rel.starts_with("src/bin/") {
            // The binary: `rims::NAME` is the library; `crate::ITEM`/`super::ITEM` outside
            // main.rs name main.rs unless ITEM is a sibling module.
            for r in paths_after(&text, "rims") {
                push(r.line, r.shown, layer_of_name(&r.name, &rel, r.line));
            }
            if !rel.ends_with("/main.rs") {
                // How deep the file's module sits below main.rs: 1 for `viz.rs` or
                // `viz/mod.rs`, 2 for `viz/curves.rs`, whose `super::` is `viz`, not main.rs.
                let depth = module_path(&rel).len() - 2;
                for prefix in ["crate", "super"] {
                    for r in paths_after(&text, prefix) {
                        if in_test(r.line) {
                            // A subcommand's unit tests may parse the whole command line
                            // (`crate::Cli`); `super` there is the file itself.
                            continue;
                        }
                        if r.name == "super" || bin_modules.contains(&r.name) {
                            continue;
                        }
                        let line_text = text.lines().nth(r.line - 1).unwrap_or("");
                        let ups = line_text.matches("super::").count().max(1);
                        if prefix == "super" && depth > ups {
                            continue; // inside the subcommand's own module
                        }
                        push(r.line, r.shown, "bin/main");
                    }
                }
            }
            continue;
        }
        for r in paths_after(&text, "crate") {
            if r.name == "self" {
                continue;
            }
            push(r.line, r.shown, layer_of_name(&r.name, &rel, r.line));
        }
        // `super::` climbing to the crate root names a top-level module.
        let here = module_path(&rel);
        for r in paths_after(&text, "super") {
            if r.name == "super" || in_test(r.line) {
                // Counted at the last `super::` of a chain; inside tests `super` is the file.
                continue;
            }
            let line_text = text.lines().nth(r.line - 1).unwrap_or("");
            let ups = line_text.matches("super::").count().max(1);
            if here.len() > ups {
                continue; // still inside the file's own top-level module
            }
            push(r.line, r.shown, layer_of_name(&r.name, &rel, r.line));
        }
    }
    uses
}

#[test]
fn imports_run_only_downward() {
    let uses = scan();
    assert!(
        uses.len() > 100,
        "found only {} cross-module paths in src/; is the scanner broken?",
        uses.len()
    );
    let mut violations = Vec::new();
    let mut used_exceptions = BTreeSet::new();
    for u in &uses {
        let from = layer_of_file(&u.file);
        if allowed(from, u.to) {
            continue;
        }
        if let Some(i) = ALLOWED
            .iter()
            .position(|(f, t, _)| *f == u.file && *t == u.to)
        {
            used_exceptions.insert(i);
            continue;
        }
        violations.push(format!(
            "{}:{}: `{}` runs up from layer {} to layer {}",
            u.file, u.line, u.shown, from, u.to
        ));
    }
    let stale: Vec<String> = ALLOWED
        .iter()
        .enumerate()
        .filter(|(i, _)| !used_exceptions.contains(i))
        .map(|(_, (f, t, why))| format!("{f} -> {t} ({why})"))
        .collect();
    assert!(
        violations.is_empty(),
        "imports that run up the layers (docs/design.md, \"Layers\"):\n  {}",
        violations.join("\n  ")
    );
    assert!(
        stale.is_empty(),
        "exceptions in tests/layers.rs's ALLOWED that no longer occur; remove them (and from \
         docs/design.md's \"The test, and no exceptions\"):\n  {}",
        stale.join("\n  ")
    );
}

#[test]
fn the_scanner_sees_groups_and_skips_comments() {
    let text = blank(
        "use crate::{device::Context, ops::{a, b}};\n// use crate::train::x;\nlet s = \"crate::nn\";\n\
         let c = '\"'; use crate::tape::Tape;\n",
    );
    let names: Vec<(usize, String)> = paths_after(&text, "crate")
        .into_iter()
        .map(|r| (r.line, r.name))
        .collect();
    assert_eq!(
        names,
        vec![
            (1, "device".to_string()),
            (1, "ops".to_string()),
            (4, "tape".to_string())
        ]
    );
    assert!(!allowed("ops", "nn"));
    assert!(allowed("nn", "ops"));
    assert!(!allowed("ops", "reference"));
    assert!(allowed("verify", "reference"));
    assert!(!allowed("reference", "ops"));
    assert!(allowed("train", "data"));
    assert!(!allowed("nn", "data"));
    assert!(allowed("rl", "train"));
    assert!(allowed("rl", "utilities"));
    assert!(allowed("bin", "rl"));
    assert!(!allowed("train", "rl"));
    assert!(!allowed("interop", "rl"));
    assert!(!allowed("rl", "interop"));
    assert!(!allowed("rl", "bin"));
}
