//! The workspace's binaries for tests that run them from another crate
//! (cargo only hands `CARGO_BIN_EXE_*` to a package's own tests).
//!
//! Each binary is built on first use with the cargo that builds the tests,
//! so a test never runs a stale daemon; cargo answers at once when it is up
//! to date. `IRONDHCP_BIN_DIR` points at a directory of prebuilt binaries
//! instead (to run the suite against another build, e.g. an older commit).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The workspace root (this crate lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Path of binary `bin` of package `package`, built (debug profile) if it
/// is missing or out of date. Panics with cargo's message if the build
/// fails: every caller is a test.
pub fn binary(package: &str, bin: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("IRONDHCP_BIN_DIR") {
        return PathBuf::from(dir).join(bin);
    }
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(p) = built.get(bin) {
        return p.clone();
    }
    let out = Command::new(env!("CARGO"))
        .args(["build", "-p", package, "--bin", bin])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p {package} --bin {bin} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The last artifact message names the executable.
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("executable")?.as_str().map(PathBuf::from))
        .next_back()
        .unwrap_or_else(|| panic!("cargo build named no executable for {bin}"));
    built.insert(bin.to_string(), exe.clone());
    exe
}

/// The daemon, `irondhcp`.
pub fn daemon() -> PathBuf {
    binary("irondhcp-control", "irondhcp")
}

/// The management client, `irondhcp-ctl`.
pub fn ctl() -> PathBuf {
    binary("irondhcp-control", "irondhcp-ctl")
}

/// The load generator, `irondhcp-loadgen`.
pub fn loadgen() -> PathBuf {
    binary("irondhcp-bench", "irondhcp-loadgen")
}

/// Where a running example's binaries are: examples live in
/// `target/<profile>/examples`, the binaries one level up.
pub fn beside_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

/// The directory of the running binary: where its sibling binaries are
/// (`target/release/` for a tool run from there).
pub fn beside_self() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_default()
}
