//! The module edges of issue 11, checked on the source text so a stray import fails a test
//! instead of waiting for a review: the store persists domain types from `model` and never
//! reaches into the scheduler; the config loader and the scheduler do not import each
//! other; `model` is the bottom layer and imports no service module.

use std::path::{Path, PathBuf};

/// (files under this path, paths they must not name).
const RULES: &[(&str, &[&str])] = &[
    ("src/store", &["crate::scheduler"]),
    ("src/config.rs", &["crate::scheduler"]),
    ("src/scheduler", &["crate::config"]),
    (
        "src/model",
        &[
            "crate::scheduler",
            "crate::config",
            "crate::store",
            "crate::worker",
            "crate::api",
        ],
    ),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read source dir") {
            rust_files(&entry.expect("dir entry").path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Lines of code (comments dropped) of `text` that name one of `forbidden`, with line
/// numbers. A path can be named in a `use` or inline (`crate::scheduler::x()`); both count.
fn offending(text: &str, forbidden: &[&str]) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            forbidden.iter().any(|f| {
                code.match_indices(f).any(|(i, _)| {
                    // `crate::scheduler` but not `crate::scheduler_bench` and the like.
                    !code[i + f.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .map(|(i, line)| (i + 1, line.trim().to_string()))
        .collect()
}

#[test]
fn no_forbidden_imports_between_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bad = Vec::new();
    for (under, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&root.join(under), &mut files);
        assert!(!files.is_empty(), "{under} has no Rust files");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source file");
            for (line, code) in offending(&text, forbidden) {
                bad.push(format!(
                    "{}:{line}: {code}",
                    file.strip_prefix(root).unwrap_or(&file).display()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "module edges broken (see src/module_edges.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_use_lines_and_inline_paths_but_not_comments() {
    let text = "use crate::scheduler::model::Schedule;\n\
                // crate::scheduler in a comment\n\
                let x = crate::scheduler::cron::parse();\n\
                use crate::scheduler_bench;\n\
                use crate::model::schedule::Schedule;";
    let hits: Vec<usize> = offending(text, &["crate::scheduler"])
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(hits, vec![1, 3]);
}
