//! `cargo xtask`: the project's own set-up, build, demo and test driver.
//!
//! Everything a fresh machine lacks is installed by `setup` (idempotently:
//! a second run only checks), so the README's two commands and CI need
//! nothing but this repository and a Rust toolchain:
//!
//! * `cargo xtask demo` — builds everything and runs the demo testbed.
//! * `cargo xtask test` — builds the XDP program and runs the whole suite.
//!
//! Other commands: `setup`, `build-ebpf`, `build`, `lint`, `bench`
//! (irondhcp and Kea side by side, written into docs/benchmarks.md),
//! `fuzz` (the cargo-fuzz targets, bounded) and `deb` (the Debian
//! package).

mod build_ebpf;
mod deb;
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages the project needs: the eBPF toolchain (Debian's Rust
/// with library sources, LLVM 22 for bpf-linker), the test peers (real DHCP
/// clients, perfdhcp, Kea for comparison, packet tools) and SQLite's shell.
const PACKAGES: &[&str] = &[
    "iproute2",
    "ethtool",
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "isc-dhcp-client",
    "udhcpc",
    "dhcpcd-base",
    "kea-admin",
    "kea-dhcp4-server",
    // Kea's example configurations: `irondhcp-ctl import-kea` is tested
    // on every one.
    "kea-doc",
    // `irondhcp-ctl top` is tested in a terminal multiplexer.
    "tmux",
    "tcpdump",
    "python3-scapy",
    "sqlite3",
    // The cluster's lease store; tests start private servers from its
    // binaries (testkit::postgres).
    "postgresql",
    // The cluster's lease events (pub/sub); tests start private servers
    // (testkit::redis).
    "redis-server",
    // The anycast cluster's testbed: BGP on the router and every server,
    // a DHCP relay on the router (testkit::cluster).
    "bird2",
    "isc-dhcp-relay",
    // The fault suite cuts a server off from PostgreSQL or Redis.
    "nftables",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root()?;
    match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("build-ebpf") => {
            ensure_setup()?;
            build_ebpf::build_ebpf(&root).map(drop)
        }
        Some("build") => build(&root),
        Some("demo") => demo(&root, &args[1..]),
        Some("cluster-demo") => cluster_demo(&root, &args[1..]),
        Some("faults") => faults(&root, &args[1..]),
        Some("test") => test(&root, &args[1..]),
        Some("bench") => bench(&root, &args[1..]),
        Some("lint") => lint(&root),
        Some("fuzz") => fuzz::fuzz(&root, &args[1..]),
        Some("deb") => {
            let bins = match args.get(1).map(String::as_str) {
                Some("--bin-dir") => PathBuf::from(args.get(2).context("--bin-dir DIR")?),
                Some(other) => bail!("deb takes [--bin-dir DIR], not {other:?}"),
                None => {
                    build(&root)?;
                    root.join("target/release")
                }
            };
            let deb = deb::build_deb(&root, &bins)?;
            println!("{}", deb.display());
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  setup       install what this machine lacks (idempotent)\n  build-ebpf  build the XDP program into target/bpf/\n  build       build-ebpf, then the release binaries\n  demo        run the demo testbed (root)\n  cluster-demo  three servers behind BGP anycast, one killed (root)\n  faults      the cluster fault suite with its checker (root): [--faults kill,pause,...]\n  test        run the whole test suite (root)\n  bench       irondhcp vs Kea side by side; writes docs/benchmarks.md (root)\n  lint        cargo fmt --check and clippy -D warnings\n  fuzz        build the fuzz targets, run each bounded: [--seconds N] [--runs N] [TARGET...]\n  deb         build target/deb/irondhcp_<version>_amd64.deb (release binaries): [--bin-dir DIR]"
            );
            bail!("no command given")
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf())
}

fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn package_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo")
        })
        .join("bin")
}

fn bpf_linker_installed() -> bool {
    cargo_bin_dir().join("bpf-linker").is_file()
}

fn missing_packages() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect()
}

/// Cheap check used by the other commands: run `setup` only if needed.
fn ensure_setup() -> Result<()> {
    if missing_packages().is_empty() && bpf_linker_installed() {
        return Ok(());
    }
    setup()
}

/// Installs the Debian packages and bpf-linker that are missing.
fn setup() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        println!("setup: all {} Debian packages present", PACKAGES.len());
    } else {
        println!("setup: installing {}", missing.join(" "));
        status(Command::new("apt-get").arg("update").arg("-qq"))?;
        status(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    if bpf_linker_installed() {
        println!("setup: bpf-linker present");
    } else {
        // Built against Debian's LLVM 22, the LLVM of Debian's rustc-web.
        println!("setup: building bpf-linker against LLVM 22 (a few minutes, once)");
        let path = format!(
            "/usr/lib/llvm-22/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        status(
            Command::new("cargo")
                .args([
                    "install",
                    "--locked",
                    "bpf-linker",
                    "--no-default-features",
                    "--features",
                    "llvm-22",
                ])
                .env("PATH", path)
                .env("LLVM_PREFIX", "/usr/lib/llvm-22"),
        )?;
    }
    fuzz::install_cargo_fuzz()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Builds the XDP program and returns the env that embeds it.
fn ebpf(root: &Path) -> Result<PathBuf> {
    ensure_setup()?;
    build_ebpf::build_ebpf(root)
}

/// Release builds of everything that runs: the daemon, irondhcp-ctl, the
/// demo, the load generator and the benchmark driver, with the XDP program
/// embedded.
fn build(root: &Path) -> Result<()> {
    let obj = ebpf(root)?;
    status(
        cargo()
            .current_dir(root)
            .args([
                "build",
                "--release",
                "-p",
                "irondhcp-control",
                "-p",
                "irondhcp-bench",
            ])
            .args(["--bins", "--examples"])
            .env("IRONDHCP_XDP_OBJ", &obj),
    )
}

fn require_root(what: &str) -> Result<()> {
    let out = Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        bail!("{what} needs root: network namespaces, veth pairs and XDP");
    }
    Ok(())
}

/// The side-by-side benchmark: release builds of the daemon, the load
/// generator and the benchmark driver, then the driver (which writes
/// docs/benchmarks.md and docs/benchmarks.json).
fn bench(root: &Path, extra: &[String]) -> Result<()> {
    require_root("the benchmark")?;
    build(root)?;
    status(
        Command::new(root.join("target/release/irondhcp-benchmark"))
            .arg("--root")
            .arg(root)
            .args(extra),
    )
}

fn demo(root: &Path, extra: &[String]) -> Result<()> {
    require_root("the demo")?;
    build(root)?;
    status(Command::new(root.join("target/release/examples/demo")).args(extra))
}

fn cluster_demo(root: &Path, extra: &[String]) -> Result<()> {
    require_root("the cluster demo")?;
    build(root)?;
    status(Command::new(root.join("target/release/examples/cluster_demo")).args(extra))
}

fn faults(root: &Path, extra: &[String]) -> Result<()> {
    require_root("the fault suite")?;
    build(root)?;
    status(Command::new(root.join("target/release/irondhcp-faults")).args(extra))
}

fn test(root: &Path, extra: &[String]) -> Result<()> {
    require_root("the test suite")?;
    let obj = ebpf(root)?;
    // `--workspace` takes in the integration crate (outside the default
    // members); with `-p` it would override the package chosen.
    let chosen = extra
        .iter()
        .any(|a| a.starts_with("-p") || a.starts_with("--package"));
    let mut cmd = cargo();
    cmd.current_dir(root).arg("test");
    if !chosen {
        cmd.arg("--workspace");
    }
    status(cmd.args(extra).env("IRONDHCP_XDP_OBJ", &obj))
}

fn lint(root: &Path) -> Result<()> {
    status(
        cargo()
            .current_dir(root)
            .args(["fmt", "--all", "--", "--check"]),
    )?;
    status(cargo().current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}
