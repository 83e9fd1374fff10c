//! `cargo xtask deb`: the Debian package, built with dpkg-deb from the
//! release binaries (no cargo-deb to install on a fresh machine).
//!
//! It holds `irondhcp`, `irondhcp-ctl` and `irondhcp-loadgen` (the XDP
//! program is inside the daemon), the systemd unit
//! (`packaging/irondhcp.service`), the example configuration as a
//! conffile in /etc/irondhcp, and the operator's docs. The postinst
//! creates the `irondhcp` system user and its state directory; the service
//! is enabled but not started, since the configuration must first name the
//! interface to serve. `--bin-dir DIR` packages binaries built elsewhere
//! (the packaging test uses the debug build).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const BINARIES: [&str; 3] = ["irondhcp", "irondhcp-ctl", "irondhcp-loadgen"];
const DOCS: [&str; 6] = [
    "README.md",
    "docs/operations.md",
    "docs/ha.md",
    "docs/reliability.md",
    "docs/benchmarks.md",
    "docs/openapi.json",
];

const POSTINST: &str = r#"#!/bin/sh
# irondhcp postinst: the system user and its state directory.
set -e
if [ "$1" = configure ]; then
    if ! getent passwd irondhcp >/dev/null; then
        adduser --system --group --no-create-home --home /var/lib/irondhcp irondhcp >/dev/null
    fi
    install -d -o irondhcp -g irondhcp -m 0750 /var/lib/irondhcp
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
        # Enabled, not started: /etc/irondhcp/irondhcp.toml must name the
        # interface first (irondhcp --check --config ... to test it).
        systemctl enable irondhcp.service >/dev/null || true
    fi
fi
exit 0
"#;

const PRERM: &str = r#"#!/bin/sh
# irondhcp prerm: stop the service before its files go.
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop irondhcp.service >/dev/null || true
    systemctl disable irondhcp.service >/dev/null || true
fi
exit 0
"#;

const POSTRM: &str = r#"#!/bin/sh
# irondhcp postrm: a purge removes the lease store too.
set -e
if [ "$1" = purge ]; then
    rm -rf /var/lib/irondhcp
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
fi
exit 0
"#;

/// The workspace's version (`[workspace.package] version`).
fn version(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml"))?;
    text.lines()
        .find_map(|l| {
            let v = l.trim().strip_prefix("version = \"")?;
            Some(v.trim_end_matches('"').to_string())
        })
        .context("no version in Cargo.toml")
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    place(to, mode, || {
        std::fs::copy(from, to).with_context(|| format!("copy {}", from.display()))?;
        Ok(())
    })
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    place(to, mode, || Ok(std::fs::write(to, text)?))
}

/// Makes `to`'s directory, lets `fill` create `to`, then sets its mode.
fn place(to: &Path, mode: u32, fill: impl FnOnce() -> Result<()>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    fill()?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Builds `target/deb/irondhcp_<version>_amd64.deb` from the binaries in
/// `bins` and returns its path.
pub fn build_deb(root: &Path, bins: &Path) -> Result<PathBuf> {
    let version = version(root)?;
    let name = format!("irondhcp_{version}_amd64");
    let out = root.join("target/deb");
    let stage = out.join(&name);
    let _ = std::fs::remove_dir_all(&stage);
    for b in BINARIES {
        let to = stage.join("usr/bin").join(b);
        copy(&bins.join(b), &to, 0o755)?;
        // Debug info stays in the build tree: the package is a tenth of
        // the size without it.
        let _ = Command::new("strip").arg("--strip-debug").arg(&to).status();
    }
    copy(
        &root.join("packaging/irondhcp.service"),
        &stage.join("lib/systemd/system/irondhcp.service"),
        0o644,
    )?;
    copy(
        &root.join("docs/irondhcp.example.toml"),
        &stage.join("etc/irondhcp/irondhcp.toml"),
        0o640,
    )?;
    for d in DOCS {
        let file = Path::new(d).file_name().context("doc name")?;
        copy(
            &root.join(d),
            &stage.join("usr/share/doc/irondhcp").join(file),
            0o644,
        )?;
    }
    let size_kib: u64 = walk_size(&stage)? / 1024;
    write(
        &stage.join("DEBIAN/control"),
        &format!(
            "Package: irondhcp\nVersion: {version}\nArchitecture: amd64\nMaintainer: irondhcp developers <irondhcp@example.org>\n\
Section: net\nPriority: optional\nDepends: libc6, adduser\nInstalled-Size: {size_kib}\n\
Description: DHCPv4 server on XDP and AF_XDP\n irondhcp answers renewals from a lock-free lease map on pinned cores and\n commits new leases to SQLite or, for an active/active cluster, PostgreSQL.\n Includes irondhcp-ctl (pools, leases, monitoring checks) and\n irondhcp-loadgen (a DHCP load generator).\n"
        ),
        0o644,
    )?;
    write(
        &stage.join("DEBIAN/conffiles"),
        "/etc/irondhcp/irondhcp.toml\n",
        0o644,
    )?;
    write(&stage.join("DEBIAN/postinst"), POSTINST, 0o755)?;
    write(&stage.join("DEBIAN/prerm"), PRERM, 0o755)?;
    write(&stage.join("DEBIAN/postrm"), POSTRM, 0o755)?;
    let deb = out.join(format!("{name}.deb"));
    let st = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&stage)
        .arg(&deb)
        // Its progress line goes to stderr: stdout is the package's path.
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .context("run dpkg-deb")?;
    if !st.success() {
        bail!("dpkg-deb --build failed ({st})");
    }
    Ok(deb)
}

fn walk_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        total += if meta.is_dir() {
            walk_size(&e.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
