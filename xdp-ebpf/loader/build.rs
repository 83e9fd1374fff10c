//! Embeds the XDP program object into the loader, and so into every binary
//! that uses it (the daemon, the load generator).
//!
//! Source, in order: `$IRONDHCP_XDP_OBJ`, else `<workspace>/target/bpf/irondhcp-xdp.o`
//! (written by `cargo xtask build-ebpf`). When neither exists an empty file is
//! embedded instead, so a plain `cargo build` works without the eBPF
//! toolchain; `XdpProgram::load` then refuses with a message that says how
//! to build the program.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

/// Errors end the build with their message (std only: no build-dependencies).
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Name of the object in `OUT_DIR`, included by `src/lib.rs`.
const OBJECT_NAME: &str = "irondhcp-xdp.o";

fn main() -> Result<()> {
    println!("cargo:rerun-if-env-changed=IRONDHCP_XDP_OBJ");
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR not set")?).join(OBJECT_NAME);

    let source = match env::var_os("IRONDHCP_XDP_OBJ") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            let manifest_dir = PathBuf::from(
                env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR not set")?,
            );
            // xdp-ebpf/loader -> the workspace root.
            manifest_dir
                .ancestors()
                .nth(2)
                .ok_or("xdp-ebpf/loader/ has no grandparent directory")?
                .join("target")
                .join("bpf")
                .join(OBJECT_NAME)
        }
    };
    // Also tracks the file appearing later (cargo re-runs us while it is missing).
    println!("cargo:rerun-if-changed={}", source.display());

    let bytes = if source.is_file() {
        fs::read(&source).map_err(|e| format!("reading {}: {e}", source.display()))?
    } else {
        Vec::new()
    };
    write_if_changed(&out, &bytes)
}

/// Writes `bytes` to `path` unless it already holds them, so an unchanged
/// object does not make cargo recompile the crate.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()).into())
}
