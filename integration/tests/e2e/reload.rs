//! Configuration reload with the daemon running: SIGHUP and `irondhcp-ctl
//! reload` change the lease time of the next grant and of a renewal
//! answered from memory, and the options sent, with the XDP program and
//! the workers in place; a change that needs a restart is refused, named,
//! and the running configuration keeps serving. `irondhcp-ctl config
//! check` says what a file would change before anything is applied.

use std::time::Duration;

use dhcproto::v4::{DhcpOption, OptionCode};
use irondhcp_testkit::rawclient::{lease_time, msg_type, RawClient};
use irondhcp_testkit::testbed::{Testbed, TestbedOptions};

use crate::ctl::ctl;
use crate::lease_safety::{bind_ack, renew_with};
use crate::{started, stat};

fn domain(m: &dhcproto::v4::Message) -> Option<String> {
    match m.opts().get(OptionCode::DomainName) {
        Some(DhcpOption::DomainName(d)) => Some(d.clone()),
        _ => None,
    }
}

/// Rewrites the testbed's config file, `from` replaced by `to`.
fn edit(tb: &Testbed, from: &str, to: &str) {
    let text = std::fs::read_to_string(&tb.config).expect("read the config");
    assert!(text.contains(from), "{from:?} not in the config");
    std::fs::write(&tb.config, text.replace(from, to)).expect("write the config");
}

#[test]
fn lease_times_and_options_reload_without_a_restart() {
    let tb = started(&TestbedOptions {
        // The MCLT set, so a shorter lease time leaves it where it is.
        tail: "mclt = 600".into(),
        ..TestbedOptions::default()
    });
    let c = RawClient::open(&tb).expect("raw socket");
    let a_mac = [0x02, 0, 0, 0, 0xd0, 0x01];
    let ack = bind_ack(&c, a_mac, 0x9000);
    assert_eq!(lease_time(&ack), Some(3600));
    assert_eq!(domain(&ack).as_deref(), Some("testbed.example"));

    // A file with a shorter lease and another domain: checked first, then
    // applied by SIGHUP.
    edit(&tb, "lease_time = 3600", "lease_time = 1200");
    edit(&tb, "testbed.example", "reloaded.example");
    let (code, out, err) = ctl(&tb, &["config", "check"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "valid; a reload would change subnet[0].domain_name, subnet[0].lease_time"
    );
    tb.send_signal(libc::SIGHUP).expect("SIGHUP");
    let reloaded = tb.wait_for(Duration::from_secs(10), || {
        tb.log_text().contains("SIGHUP: configuration reloaded")
    });
    assert!(reloaded, "no reload logged:\n{}", tb.log_text());

    // A new client gets the new lease time and domain from the control
    // plane; the bound one, renewing, from a worker's memory.
    let ack = bind_ack(&c, [0x02, 0, 0, 0, 0xd0, 0x02], 0x9100);
    assert_eq!(lease_time(&ack), Some(1200));
    assert_eq!(domain(&ack).as_deref(), Some("reloaded.example"));
    let from_map = stat(&tb, "/packets/answered_from_map");
    let renewed = renew_with(
        &c,
        &tb,
        a_mac,
        ack_addr(&c, a_mac),
        0x9200,
        Duration::from_secs(5),
    )
    .expect("the renewal is answered");
    assert_eq!(msg_type(&renewed), Some(dhcproto::v4::MessageType::Ack));
    assert_eq!(lease_time(&renewed), Some(1200));
    assert_eq!(domain(&renewed).as_deref(), Some("reloaded.example"));
    assert!(
        stat(&tb, "/packets/answered_from_map") > from_map,
        "not answered from memory"
    );

    // A pool change needs a restart: refused and named, nothing applied.
    edit(&tb, "lease_time = 1200", "lease_time = 600");
    edit(&tb, "198.18.255.254", "198.18.255.200");
    let (code, _, err) = ctl(&tb, &["reload"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("need a restart")
            && err.contains("subnet[0].pools")
            && !err.contains("lease_time"),
        "{err}"
    );
    let ack = bind_ack(&c, [0x02, 0, 0, 0, 0xd0, 0x03], 0x9300);
    assert_eq!(
        lease_time(&ack),
        Some(1200),
        "the refused reload changed something"
    );

    // A broken file: one line naming the key; the daemon serves on.
    let broken = tb.dir.join("broken.toml");
    std::fs::write(&broken, "[server]\naddress = \"x\"\n").expect("write");
    let (code, _, err) = ctl(&tb, &["config", "check", broken.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("address"), "{err}");

    // Put the pool back: `irondhcp-ctl reload` applies the lease time.
    edit(&tb, "198.18.255.200", "198.18.255.254");
    let (code, out, err) = ctl(&tb, &["reload"]);
    assert_eq!(
        (code, out.trim()),
        (0, "reloaded: subnet[0].lease_time"),
        "{err}"
    );
    let ack = bind_ack(&c, [0x02, 0, 0, 0, 0xd0, 0x04], 0x9400);
    assert_eq!(lease_time(&ack), Some(600));
}

/// The address `mac` holds (its lease, asked for again: the server offers
/// a client its current lease).
fn ack_addr(c: &RawClient, mac: [u8; 6]) -> std::net::Ipv4Addr {
    use dhcproto::v4::MessageType;
    use irondhcp_testkit::rawclient::{message, Path};
    let offer = c
        .exchange(
            &message(MessageType::Discover, mac, 0x9050),
            &Path::broadcast(mac),
            Duration::from_secs(5),
        )
        .expect("an OFFER");
    offer.yiaddr()
}
