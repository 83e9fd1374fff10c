//! `cargo xtask build-ebpf`: builds the XDP program (`xdp-ebpf/program`) for
//! `bpfel-unknown-none` and copies the object to `target/bpf/irondhcp-xdp.o`,
//! where `xdp-ebpf/loader/build.rs` picks it up and embeds it in the loader
//! (and so in the daemon and the load generator).
//!
//! Building Rust for BPF needs `-Z build-std=core`, i.e. a nightly-capable
//! compiler with the sources of its own standard library, plus `bpf-linker`.
//! Two toolchains are supported, tried in this order:
//!
//! 1. a rustup `nightly` toolchain with the `rust-src` component
//!    (`rustup run nightly cargo build …`), the usual aya set-up;
//! 2. Debian's `rustc-web`/`cargo-web`/`rust-web-src` (`/usr/bin/rustc`,
//!    `/usr/bin/cargo`, sources in `/usr/lib/rustlib/src/rust`) with
//!    `RUSTC_BOOTSTRAP=1`, which is what works on machines where rustup
//!    cannot download `rust-src`.
//!
//! The equivalent shell command for (2), run in `xdp-ebpf/program`, is
//!
//! ```text
//! RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 PATH=$HOME/.cargo/bin:$PATH \
//! CARGO_ENCODED_RUSTFLAGS="$(printf -- '-Cdebuginfo=2\x1f-Clink-arg=--btf')" \
//!   /usr/bin/cargo build --release --target bpfel-unknown-none -Z build-std=core
//! ```

use std::{
    env,
    ffi::{OsStr, OsString},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

/// Rust target of the XDP program (little-endian BPF).
const BPF_TARGET: &str = "bpfel-unknown-none";
/// Binary name of the XDP program crate.
const PROGRAM_BIN: &str = "irondhcp-xdp";
/// Debian's compiler and cargo (packages `rustc-web`, `cargo-web`).
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
/// Sources of Debian's standard library (package `rust-web-src`).
const DEBIAN_RUST_SRC: &str = "/usr/lib/rustlib/src/rust";

/// Which compiler drives the build.
enum Toolchain {
    /// `rustup run nightly cargo`, nightly has `rust-src`.
    RustupNightly,
    /// Debian's `/usr/bin/cargo` + `/usr/bin/rustc` with `RUSTC_BOOTSTRAP=1`.
    Debian,
}

/// Builds the XDP program in release mode and copies the object to
/// `<workspace_root>/target/bpf/irondhcp-xdp.o`, returning that path.
pub fn build_ebpf(workspace_root: &Path) -> Result<PathBuf> {
    let program_dir = workspace_root.join("xdp-ebpf").join("program");
    if !program_dir.join("Cargo.toml").is_file() {
        bail!("{} has no Cargo.toml", program_dir.display());
    }
    let target_dir = program_dir.join("target");

    let bpf_linker_dir = find_bpf_linker()?;
    let toolchain = choose_toolchain()?;

    let mut cmd = match toolchain {
        Toolchain::RustupNightly => {
            let mut cmd = Command::new("rustup");
            cmd.args(["run", "nightly", "cargo"]);
            cmd
        }
        Toolchain::Debian => Command::new(DEBIAN_CARGO),
    };
    // First clear, then set: `env_remove` after `env` would undo it.
    clear_outer_cargo_env(&mut cmd);
    if let Toolchain::Debian = toolchain {
        cmd.env("RUSTC", DEBIAN_RUSTC).env("RUSTC_BOOTSTRAP", "1");
    }
    if let Some(dir) = bpf_linker_dir {
        cmd.env("PATH", path_with(&dir)?);
    }
    // BTF (`--btf`) lets the loader and the verifier report in source terms.
    cmd.env(
        "CARGO_ENCODED_RUSTFLAGS",
        ["-Cdebuginfo=2", "-Clink-arg=--btf"].join("\x1f"),
    );
    cmd.current_dir(&program_dir)
        .args(["build", "--release", "--target", BPF_TARGET])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir);

    eprintln!(
        "building the XDP program with {}: {cmd:?}",
        match toolchain {
            Toolchain::RustupNightly => "rustup nightly + rust-src",
            Toolchain::Debian => "Debian rustc + rust-web-src (RUSTC_BOOTSTRAP=1)",
        }
    );
    let status = cmd
        .status()
        .with_context(|| format!("failed to run {cmd:?}"))?;
    if !status.success() {
        bail!("building the XDP program failed ({status})");
    }

    let built = target_dir
        .join(BPF_TARGET)
        .join("release")
        .join(PROGRAM_BIN);
    let out_dir = workspace_root.join("target").join("bpf");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join("irondhcp-xdp.o");
    fs::copy(&built, &out)
        .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
    eprintln!("XDP program: {}", out.display());
    Ok(out)
}

/// Prefers a rustup nightly with `rust-src`, else Debian's toolchain; fails
/// naming whatever is missing.
fn choose_toolchain() -> Result<Toolchain> {
    let nightly_has_src = Command::new("rustup")
        .args(["+nightly", "component", "list", "--installed"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .map(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|line| line.starts_with("rust-src"))
        })
        .unwrap_or(false);
    if nightly_has_src {
        return Ok(Toolchain::RustupNightly);
    }

    let mut missing = Vec::new();
    if !Path::new(DEBIAN_RUSTC).is_file() {
        missing.push(format!("{DEBIAN_RUSTC} (Debian package rustc-web)"));
    }
    if !Path::new(DEBIAN_CARGO).is_file() {
        missing.push(format!("{DEBIAN_CARGO} (Debian package cargo-web)"));
    }
    if !Path::new(DEBIAN_RUST_SRC)
        .join("library")
        .join("core")
        .is_dir()
    {
        missing.push(format!("{DEBIAN_RUST_SRC} (Debian package rust-web-src)"));
    }
    if !missing.is_empty() {
        bail!(
            "no toolchain can build the XDP program: no rustup nightly with rust-src, \
             and Debian's toolchain is incomplete; missing: {}",
            missing.join(", ")
        );
    }
    Ok(Toolchain::Debian)
}

/// Finds `bpf-linker`. `Ok(None)`: already on `PATH`; `Ok(Some(dir))`: found
/// in cargo's bin directory, which must be added to `PATH`.
fn find_bpf_linker() -> Result<Option<PathBuf>> {
    if let Some(path) = env::var_os("PATH") {
        if env::split_paths(&path).any(|dir| dir.join("bpf-linker").is_file()) {
            return Ok(None);
        }
    }
    let cargo_bin = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin"));
    match cargo_bin {
        Some(dir) if dir.join("bpf-linker").is_file() => Ok(Some(dir)),
        _ => bail!(
            "bpf-linker not found on PATH nor in $CARGO_HOME/bin; install it with \
             `cargo install bpf-linker` (against Debian's LLVM: \
             `LLVM_PREFIX=/usr/lib/llvm-22 PATH=/usr/lib/llvm-22/bin:$PATH \
             cargo install bpf-linker --no-default-features --features llvm-22`)"
        ),
    }
}

/// `PATH` with `dir` appended.
fn path_with(dir: &Path) -> Result<OsString> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(dir.to_path_buf());
    env::join_paths(dirs).context("PATH contains an invalid entry")
}

/// Removes what the outer `cargo run -p xtask` exported and what would make
/// the inner build use the wrong compiler, flags or target directory.
/// Registry, network and terminal settings are kept.
fn clear_outer_cargo_env(cmd: &mut Command) {
    const KEEP_PREFIXES: &[&str] = &[
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    const REMOVE: &[&str] = &[
        "CARGO",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTDOC",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTUP_TOOLCHAIN",
        "RUSTC_BOOTSTRAP",
    ];
    for (key, _) in env::vars_os() {
        let Some(name) = key.to_str() else { continue };
        let outer_cargo =
            name.starts_with("CARGO_") && !KEEP_PREFIXES.iter().any(|p| name.starts_with(p));
        if outer_cargo || REMOVE.contains(&name) {
            cmd.env_remove(OsStr::new(name));
        }
    }
}
