//! The daemon under systemd's service protocol, with systemd played by a
//! datagram socket: READY=1 once it serves, WATCHDOG=1 while its control
//! plane answers, STOPPING=1 on a clean stop.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use irondhcp_testkit::testbed::{require_root, Testbed, TestbedOptions};

use crate::daemon_bin;

#[test]
fn it_tells_systemd_it_is_ready_pets_the_watchdog_and_says_when_it_stops() {
    require_root("this end-to-end test");
    let mut tb = Testbed::new(&TestbedOptions::default()).expect("testbed");
    let path = tb.dir.join("notify.sock");
    let systemd = UnixDatagram::bind(&path).expect("bind the notify socket");
    systemd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // WatchdogSec=1s: petted every half second.
    tb.start_daemon_with_env(
        &daemon_bin(),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    )
    .expect("start irondhcp");
    let mut heard: Vec<String> = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && heard.iter().filter(|m| *m == "WATCHDOG=1").count() < 3 {
        if let Ok(n) = systemd.recv(&mut buf) {
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert_eq!(
        heard.first().map(String::as_str),
        Some("READY=1\nSTATUS=serving"),
        "{heard:?}"
    );
    assert!(
        heard.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3,
        "three watchdog pets in 5 s at a 0.5 s interval: {heard:?}"
    );
    let status = tb.stop_daemon().expect("stop");
    assert!(status.success());
    let mut rest = Vec::new();
    while let Ok(n) = systemd.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.iter().any(|m| m == "STOPPING=1"), "{rest:?}");
}
