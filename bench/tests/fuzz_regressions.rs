//! The fuzz targets' inputs as ordinary tests: every file of
//! `fuzz/regressions/<target>/` (inputs that once crashed a target, kept
//! after the fix) and of the committed seed corpora `fuzz/corpus/<target>/`
//! runs through the same code the fuzzer runs (`fuzz/src/`, included here),
//! so a finding stays fixed without libFuzzer or a nightly feature.
//!
//! It lives in the bench crate because that is the one crate that depends
//! on all three fuzzed parts: the fast path's handler, the control plane's
//! config parser and the load generator's reply parser.
//!
//! `write_seed_corpora` (ignored) regenerates the seed corpora from the
//! handler fixtures; see docs/reliability.md.

#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted; none when it is absent.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Runs every regression and corpus input of `target` through `run` and
/// fails naming each input that panics.
fn replay(target: &str, run: fn(&[u8])) {
    let corpus = inputs("corpus", target);
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ is empty or missing"
    );
    let all = inputs("regressions", target).into_iter().chain(corpus);
    let mut failed = Vec::new();
    let mut n = 0;
    for (path, bytes) in all {
        n += 1;
        if catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {n} inputs fail: {failed:#?}",
        failed.len()
    );
}

#[test]
fn handler_inputs() {
    replay("handler", fuzz::handler::run);
}

#[test]
fn config_inputs() {
    replay("config", fuzz::config::run);
}

#[test]
fn loadgen_reply_inputs() {
    replay("loadgen_reply", fuzz::loadgen_reply::run);
}

/// Writes the generated seeds into `fuzz/corpus/<target>/` (the captures of
/// real clients stay as they are).
#[test]
#[ignore = "writes fuzz/corpus/; run by hand to regenerate the seeds"]
fn write_seed_corpora() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/irondhcp.example.toml"),
    )
    .expect("docs/irondhcp.example.toml");
    let handler = fuzz::seeds::handler();
    let sets = [
        ("loadgen_reply", fuzz::seeds::loadgen_reply(&handler)),
        ("config", fuzz::seeds::config_files(&example)),
        ("handler", handler),
    ];
    for (target, seeds) in sets {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).expect("write a seed");
        }
    }
}
