//! The daemon binary refuses a broken configuration at start: a message that
//! names the key and the problem, and a non-zero exit code.

use std::process::Command;

fn check(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("irondhcp.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_irondhcp"))
        .arg("--check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run irondhcp");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

const GOOD: &str = r#"
[server]
address = "198.18.0.1"
interface = "eth0"
[[subnet]]
id = 1
cidr = "198.18.0.0/16"
pools = ["198.18.1.0-198.18.1.255"]
"#;

#[test]
fn good_config_passes_check() {
    let (code, err) = check(GOOD);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn broken_configs_are_refused_naming_the_key() {
    for (bad, key) in [
        (
            GOOD.replace("198.18.1.0-198.18.1.255", "198.18.1.255-198.18.1.0"),
            "subnet[0].pools[0]",
        ),
        (GOOD.replace("/16", "/40"), "subnet[0].cidr"),
        (
            GOOD.replace("interface = \"eth0\"", "interface = \"eth0\"\nqueues = []"),
            "server.queues",
        ),
        (GOOD.replace("id = 1", "id = \"one\""), "id"),
        (
            GOOD.replace("[server]", "[server]\ncolour = \"blue\""),
            "colour",
        ),
        ("this is [not toml".to_string(), "TOML"),
    ] {
        let (code, err) = check(&bad);
        assert_eq!(code, 2, "expected exit 2 for {key}: {err}");
        assert!(err.contains(key), "message should name {key}: {err}");
    }
    let (code, err) = check_missing();
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
}

fn check_missing() -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_irondhcp"))
        .args(["--check", "--config", "/nonexistent/irondhcp.toml"])
        .output()
        .expect("run irondhcp");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
