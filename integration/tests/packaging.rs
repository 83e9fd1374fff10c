//! The service unit and the Debian package as an operator installs them:
//! the unit passes `systemd-analyze verify`; the .deb holds the binaries,
//! the unit and the configuration (a conffile); its daemon accepts its own
//! example configuration; its maintainer scripts parse.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    irondhcp_testkit::bins::workspace_root()
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run a command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A private directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("irondhcp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let daemon = irondhcp_testkit::bins::daemon();
    let dir = scratch("unit");
    // verify checks that ExecStart's binary exists: point it at the build.
    let unit = std::fs::read_to_string(root().join("packaging/irondhcp.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    for cap in ["CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK"] {
        assert!(unit.contains(cap), "AmbientCapabilities lacks {cap}");
    }
    let here = dir.join("irondhcp.service");
    std::fs::write(
        &here,
        unit.replace("/usr/bin/irondhcp", &daemon.display().to_string()),
    )
    .unwrap();
    let (ok, _, err) = run(Command::new("systemd-analyze").arg("verify").arg(&here));
    assert!(ok && err.trim().is_empty(), "systemd-analyze verify: {err}");
    // The check can fail: an unknown key is reported.
    std::fs::write(
        &here,
        std::fs::read_to_string(&here)
            .unwrap()
            .replace("[Service]", "[Service]\nTypo=1"),
    )
    .unwrap();
    let (_, _, err) = run(Command::new("systemd-analyze").arg("verify").arg(&here));
    assert!(err.contains("Unknown key"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let (ok, out, err) = run(Command::new("dpkg-deb").args(args).arg(deb));
    assert!(ok, "dpkg-deb {args:?}: {err}");
    out
}

#[test]
fn the_deb_holds_the_service_and_its_daemon_accepts_its_config() {
    // The same binaries the other tests run, packaged.
    let daemon = irondhcp_testkit::bins::daemon();
    irondhcp_testkit::bins::ctl();
    irondhcp_testkit::bins::loadgen();
    let bins = daemon.parent().unwrap();
    let (ok, out, err) = run(Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["run", "-q", "-p", "xtask", "--", "deb", "--bin-dir"])
        .arg(bins));
    assert!(ok, "cargo xtask deb: {err}");
    let deb = PathBuf::from(out.trim());
    assert!(deb.extension().is_some_and(|e| e == "deb"), "{out}");
    assert_eq!(
        dpkg_deb(&["--field"], &deb).lines().next(),
        Some("Package: irondhcp")
    );
    let contents = dpkg_deb(&["--contents"], &deb);
    for f in [
        "./usr/bin/irondhcp",
        "./usr/bin/irondhcp-ctl",
        "./usr/bin/irondhcp-loadgen",
        "./lib/systemd/system/irondhcp.service",
        "./etc/irondhcp/irondhcp.toml",
        "./usr/share/doc/irondhcp/operations.md",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(f)),
            "{f} not in the package:\n{contents}"
        );
    }
    let dir = scratch("deb");
    let (ok, _, err) = run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.join("root")));
    assert!(ok, "{err}");
    let (ok, _, err) = run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(dir.join("DEBIAN")));
    assert!(ok, "{err}");
    // The packaged daemon accepts the packaged configuration.
    let (ok, out, err) = run(Command::new(dir.join("root/usr/bin/irondhcp"))
        .arg("--check")
        .arg("--config")
        .arg(dir.join("root/etc/irondhcp/irondhcp.toml")));
    assert!(ok, "irondhcp --check on the packaged config: {out}{err}");
    let conffiles = std::fs::read_to_string(dir.join("DEBIAN/conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/irondhcp/irondhcp.toml");
    for script in ["postinst", "prerm", "postrm"] {
        let (ok, _, err) = run(Command::new("sh")
            .arg("-n")
            .arg(dir.join("DEBIAN").join(script)));
        assert!(ok, "{script} does not parse: {err}");
    }
    let postinst = std::fs::read_to_string(dir.join("DEBIAN/postinst")).unwrap();
    assert!(postinst.contains("install -d -o irondhcp -g irondhcp -m 0750 /var/lib/irondhcp"));
    std::fs::remove_dir_all(&dir).unwrap();
}
