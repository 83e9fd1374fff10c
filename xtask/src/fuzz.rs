//! `cargo xtask fuzz [--seconds N] [--runs N] [TARGET...]`: builds the
//! cargo-fuzz targets of `fuzz/` and runs each one, bounded, one after the
//! other; exits non-zero when any target finds a crash (its input is left
//! in `fuzz/artifacts/<target>/`).
//!
//! libFuzzer needs the sanitizer-coverage flags of a nightly rustc; the
//! stable toolchain accepts them with `RUSTC_BOOTSTRAP=1`, which is set
//! here and nowhere else, for the fuzz build only. Each run starts from the
//! committed seeds (`fuzz/corpus/<target>/`, read only) plus a working
//! corpus in `target/fuzz-corpus/<target>/` that libFuzzer grows and that
//! later runs resume from. The figures libFuzzer prints at the end (runs,
//! executions a second, edge coverage `cov`, features `ft`) are summed up
//! per target; docs/reliability.md records the long runs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The targets, in the order they run.
const TARGETS: &[&str] = &["handler", "config", "loadgen_reply"];

/// Installs cargo-fuzz when it is missing (idempotent; part of `setup`).
pub fn install_cargo_fuzz() -> Result<()> {
    if super::cargo_bin_dir().join("cargo-fuzz").is_file() {
        println!("setup: cargo-fuzz present");
        return Ok(());
    }
    println!("setup: installing cargo-fuzz (about a minute, once)");
    super::status(super::cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// What one bounded run reported.
#[derive(Default)]
struct Outcome {
    runs: Option<u64>,
    execs_per_sec: Option<u64>,
    /// The last status line (`#N DONE cov: .. ft: .. corp: ..`).
    last_status: Option<String>,
    crashed: bool,
}

pub fn fuzz(root: &Path, args: &[String]) -> Result<()> {
    let mut seconds: u64 = 45;
    let mut runs: Option<u64> = None;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |what: &str| -> Result<u64> {
            it.next()
                .with_context(|| format!("{what} needs a number"))?
                .parse()
                .with_context(|| format!("{what} needs a number"))
        };
        match a.as_str() {
            "--seconds" => seconds = number("--seconds")?,
            "--runs" => runs = Some(number("--runs")?),
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => bail!(
                "usage: cargo xtask fuzz [--seconds N] [--runs N] [{}...]; unknown {other:?}",
                TARGETS.join("|")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    install_cargo_fuzz()?;

    let started = Instant::now();
    super::status(
        super::cargo()
            .current_dir(root)
            .args(["fuzz", "build"])
            .env("RUSTC_BOOTSTRAP", "1"),
    )?;
    println!("fuzz: build took {} s", started.elapsed().as_secs());
    let bin_dir = root
        .join("fuzz/target")
        .join(host_triple()?)
        .join("release");

    let mut summary = Vec::new();
    for t in &targets {
        let work = root.join("target/fuzz-corpus").join(t);
        std::fs::create_dir_all(&work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        let artifacts = root.join("fuzz/artifacts").join(t);
        std::fs::create_dir_all(&artifacts)
            .with_context(|| format!("cannot create {}", artifacts.display()))?;
        // The binary `cargo fuzz build` made, run directly: `cargo fuzz run`
        // would rebuild first, and a build that breaks then (someone's
        // edit in progress) is no finding of the fuzzer.
        let mut cmd = Command::new(bin_dir.join(t));
        cmd.current_dir(root)
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(format!("-max_total_time={seconds}"))
            // A hang is a finding too, and must not outlast the bound.
            .arg("-timeout=10")
            .arg("-print_final_stats=1")
            // As `cargo fuzz run` sets it: Rust binaries trip the check.
            .env("ASAN_OPTIONS", "detect_odr_violation=0");
        if let Some(n) = runs {
            cmd.arg(format!("-runs={n}"));
        }
        let dict = root.join("fuzz/dict").join(format!("{t}.dict"));
        if dict.is_file() {
            cmd.arg(format!("-dict={}", dict.display()));
        }
        cmd.arg(&work).arg(root.join("fuzz/corpus").join(t));
        println!("fuzz: {t}: {cmd:?}");
        let run_started = Instant::now();
        let outcome = run_libfuzzer(cmd)?;
        summary.push((t.clone(), run_started.elapsed().as_secs(), outcome));
    }

    println!(
        "\nfuzz summary (build + runs: {} s)",
        started.elapsed().as_secs()
    );
    let mut crashed = Vec::new();
    for (t, secs, o) in &summary {
        println!(
            "  {t:<14} {:>6} s  runs {:>12}  exec/s {:>8}  {}{}",
            secs,
            o.runs.map_or("?".into(), |n| n.to_string()),
            o.execs_per_sec.map_or("?".into(), |n| n.to_string()),
            o.last_status.as_deref().unwrap_or("(no status line)"),
            if o.crashed { "  CRASH" } else { "" }
        );
        if o.crashed {
            crashed.push(t.as_str());
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzz: {} found a crash; inputs are in fuzz/artifacts/<target>/ (see docs/reliability.md)",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// The host's target triple, the directory `cargo fuzz build` builds into.
fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host")
}

/// Runs a fuzz target binary, passing libFuzzer's output through, and picks
/// out the final figures.
fn run_libfuzzer(mut cmd: Command) -> Result<Outcome> {
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let mut o = Outcome::default();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines() {
            let line = line.context("reading libFuzzer's output")?;
            eprintln!("{line}");
            let stat = |key: &str| {
                line.strip_prefix(key)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let Some(n) = stat("stat::number_of_executed_units:") {
                o.runs = Some(n);
            } else if let Some(n) = stat("stat::average_exec_per_sec:") {
                o.execs_per_sec = Some(n);
            } else if line.starts_with('#') && line.contains(" cov: ") {
                o.last_status = Some(
                    line.split_whitespace()
                        .skip(1)
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
        }
    }
    let st = child.wait().context("waiting for the fuzz target")?;
    o.crashed = !st.success();
    Ok(o)
}
