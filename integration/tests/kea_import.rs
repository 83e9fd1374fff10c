//! `irondhcp-ctl import-kea` on every example configuration Kea ships
//! (Debian's kea-doc, installed by `cargo xtask setup`): each imports, or
//! says in one line why it cannot; every skipped key is named; and every
//! imported file passes `irondhcp --check`.

use std::path::{Path, PathBuf};
use std::process::Command;

const EXAMPLES: &str = "/usr/share/doc/kea/examples/kea4";

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(EXAMPLES)
        .unwrap_or_else(|e| panic!("{EXAMPLES}: {e} (cargo xtask setup installs kea-doc)"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

fn import(file: &Path, out: &Path) -> (bool, String) {
    let o = Command::new(irondhcp_testkit::bins::ctl())
        .arg("import-kea")
        .arg(file)
        .arg("--output")
        .arg(out)
        .output()
        .expect("run irondhcp-ctl import-kea");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn every_kea_example_imports_or_says_why_and_passes_the_check() {
    let files = examples();
    assert!(
        files.len() >= 20,
        "only {} examples in {EXAMPLES}",
        files.len()
    );
    let dir = std::env::temp_dir().join(format!("irondhcp-kea-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let daemon = irondhcp_testkit::bins::daemon();
    let mut imported = 0;
    let mut refused = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let out = dir.join(format!("{name}.toml"));
        let (ok, err) = import(f, &out);
        if !ok {
            // One line that names the file and the reason.
            assert_eq!(err.lines().count(), 1, "{name}: {err}");
            assert!(
                err.starts_with(&format!("irondhcp-ctl: {}: ", f.display())),
                "{err}"
            );
            refused.push(name);
            continue;
        }
        imported += 1;
        // Every line is a skipped key, a value to check, or the summary.
        for l in err.lines() {
            assert!(
                l.starts_with("skipped Dhcp4")
                    || l.starts_with("skipped ")
                    || l.starts_with("check ")
                    || l.starts_with("imported "),
                "{name}: {l}"
            );
        }
        assert!(
            err.lines().last().unwrap().starts_with("imported "),
            "{name}: {err}"
        );
        let check = Command::new(&daemon)
            .arg("--check")
            .arg("--config")
            .arg(&out)
            .output()
            .expect("run irondhcp --check");
        assert!(
            check.status.success(),
            "{name}: the imported file fails the check: {}\n{}",
            String::from_utf8_lossy(&check.stderr),
            std::fs::read_to_string(&out).unwrap_or_default()
        );
    }
    // Only the file whose subnets live in a configuration backend cannot
    // come over.
    assert_eq!(refused, ["config-backend.json"], "refused: {refused:?}");
    assert_eq!(imported, files.len() - 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn what_the_single_subnet_example_becomes() {
    let dir = std::env::temp_dir().join(format!("irondhcp-kea-one-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("single.toml");
    let (ok, err) = import(&Path::new(EXAMPLES).join("single-subnet.json"), &out);
    assert!(ok, "{err}");
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["server"]["interface"].as_str(), Some("eth0"));
    assert_eq!(v["subnet"][0]["cidr"].as_str(), Some("192.0.2.0/24"));
    assert_eq!(
        v["subnet"][0]["pools"][0].as_str(),
        Some("192.0.2.1-192.0.2.200")
    );
    assert_eq!(v["subnet"][0]["lease_time"].as_integer(), Some(4000));
    assert!(err.contains("skipped Dhcp4.loggers: "), "{err}");
    assert!(err.contains("check server.address: "), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
