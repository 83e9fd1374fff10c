//! Seed inputs of the three targets, written into `fuzz/corpus/<target>/`
//! by `cargo test -p irondhcp-bench --test fuzz_regressions -- --ignored
//! write_seed_corpora` (the captured frames of real clients come from
//! `fuzz/capture.sh` instead). dhcproto encodes options from a hash map,
//! so a regeneration may reorder the options of unchanged frames: commit
//! only the files that were meant to change.
//!
//! * `handler`: the request frames of the handler fixtures
//!   (`wire_support::seed_frames`, every message type and path the handler
//!   distinguishes) plus shapes the fixtures reach only by construction:
//!   oversized option 82 and client id, a full parameter request list,
//!   option 57, non-Ethernet chaddr, foreign and expired leases, another
//!   server's id, plain BOOTP.
//! * `loadgen_reply`: the handler's replies to those frames (every kind of
//!   control-plane decision included), which is what the load generator
//!   reads in a run.
//! * `config`: the example configuration of docs/ and small files that
//!   exercise every option kind, reservations and relayed subnets.

use std::net::Ipv4Addr;

use dhcproto::v4::{self, relay, DhcpOption as O, MessageType as T};
use irondhcp_fastpath::channel::AllocDecision;
use irondhcp_fastpath::counters::WorkerCounters;
use irondhcp_fastpath::handler::{build_decision_reply, handle, HandlerCtx, Verdict};

use super::handler::{NEAR_BOUND_ADDR, NEAR_BOUND_MAC};
use super::wire_support::*;

/// Frames for the `handler` target, named.
pub fn handler() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = seed_frames()
        .into_iter()
        .enumerate()
        .map(|(i, f)| (format!("fixture-{i:02}"), f))
        .collect();
    let a = Ipv4Addr::new(10, 0, 0, 150);
    let foreign = Ipv4Addr::new(10, 0, 0, 152);
    let expired = Ipv4Addr::new(10, 1, 0, 150);
    let outside = Ipv4Addr::new(192, 168, 1, 5);
    let all_codes = prl(&(1..=254).collect::<Vec<u8>>());
    let relayed = |mut m: v4::Message| {
        m.set_giaddr(RELAY_IP);
        m
    };
    let big_relay_info = || {
        let mut info = relay::RelayAgentInformation::default();
        info.insert(relay::RelayInfo::AgentCircuitId(vec![0xc1; 120]));
        info.insert(relay::RelayInfo::AgentRemoteId(vec![0xd2; 131]));
        O::RelayAgentInformation(info)
    };
    let extra: Vec<(&str, v4::Message, Path)> = vec![
        (
            "inform-relayed",
            relayed(with(
                with(msg(T::Inform), all_codes.clone()),
                relay_info(None),
            )),
            Path::relayed(),
        ),
        (
            "renew-via-router-vlan",
            {
                let mut m = msg(T::Request);
                m.set_flags(v4::Flags::default());
                m.set_ciaddr(a);
                m
            },
            Path::unicast(a, ROUTER_MAC).vlan(0x2007),
        ),
        (
            "discover-mms-1500-full-prl-hostname",
            with(
                with(
                    with(msg(T::Discover), O::MaxMessageSize(1500)),
                    all_codes.clone(),
                ),
                O::Hostname("h".repeat(200)),
            ),
            Path::broadcast(),
        ),
        (
            "discover-relayed-255-byte-option-82-long-client-id",
            relayed(with(
                with(msg(T::Discover), big_relay_info()),
                O::ClientIdentifier(vec![0x42; 255]),
            )),
            Path::relayed(),
        ),
        (
            "init-reboot-wrong-network",
            with(msg(T::Request), O::RequestedIpAddress(outside)),
            Path::broadcast(),
        ),
        (
            "selecting-other-server",
            with(
                with(msg(T::Request), O::ServerIdentifier(OTHER_SERVER)),
                O::RequestedIpAddress(a),
            ),
            Path::broadcast(),
        ),
        (
            "decline-relayed",
            relayed(with(
                with(msg(T::Decline), O::RequestedIpAddress(expired)),
                O::ServerIdentifier(SERVER_IP),
            )),
            Path::relayed(),
        ),
        (
            "release-foreign-lease",
            {
                let mut m = with(msg(T::Release), O::ServerIdentifier(SERVER_IP));
                m.set_ciaddr(foreign);
                m
            },
            Path::unicast(foreign, CLIENT_MAC),
        ),
        (
            "rebind-expired-relayed",
            {
                let mut m = relayed(with(msg(T::Request), relay_info(None)));
                m.set_ciaddr(expired);
                m
            },
            Path::relayed(),
        ),
        (
            "discover-link-selection-and-118",
            relayed(with(
                with(
                    msg(T::Discover),
                    relay_info(Some(Ipv4Addr::new(10, 2, 0, 0))),
                ),
                O::SubnetSelection(Ipv4Addr::new(10, 1, 0, 0)),
            )),
            Path::relayed(),
        ),
        (
            "discover-infiniband-chaddr",
            {
                let mut m = with(msg(T::Discover), O::ClientIdentifier(vec![0xff; 20]));
                m.set_flags(v4::Flags::default());
                m.set_htype(v4::HType::Infiniband);
                m.set_chaddr(&[0x11; 16]);
                m
            },
            Path::broadcast(),
        ),
        (
            "renew-near-the-promise-bound",
            {
                let mut m = msg(T::Request);
                m.set_flags(v4::Flags::default());
                m.set_ciaddr(NEAR_BOUND_ADDR);
                m.set_chaddr(&NEAR_BOUND_MAC);
                m
            },
            Path::unicast(NEAR_BOUND_ADDR, NEAR_BOUND_MAC),
        ),
    ];
    for (name, m, p) in extra {
        out.push((name.to_string(), frame(&m, &p)));
    }
    // Plain BOOTP: no option 53 (dropped, but the parse runs to the end).
    let mut bootp = msg(T::Discover);
    bootp.opts_mut().remove(v4::OptionCode::MessageType);
    out.push((
        "bootp-no-message-type".into(),
        frame(&bootp, &Path::broadcast()),
    ));
    out
}

/// The handler's replies to `requests`, for the `loadgen_reply` target.
pub fn loadgen_reply(requests: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let cfg = config(true);
    let leases = populated_lease_map();
    let counters = WorkerCounters::default();
    let ctx = HandlerCtx {
        cfg: &cfg,
        leases: &leases,
        counters: &counters,
    };
    let mut out = Vec::new();
    let mut tx = [0u8; super::handler::TX_BUF];
    for (name, f) in requests {
        match handle(&ctx, f, NOW, &mut tx) {
            Verdict::Reply { len, .. } => out.push((format!("reply-{name}"), tx[..len].to_vec())),
            Verdict::Control(meta) => {
                let addr = meta.requested.unwrap_or(Ipv4Addr::new(10, 0, 0, 160));
                let decisions = [
                    (
                        "offer",
                        AllocDecision::Offer {
                            addr,
                            lease_secs: 3600,
                        },
                    ),
                    (
                        "ack",
                        AllocDecision::Ack {
                            addr,
                            lease_secs: 3600,
                        },
                    ),
                    ("nak", AllocDecision::Nak),
                ];
                for (what, d) in decisions {
                    if let Ok((len, _)) = build_decision_reply(&ctx, f, d, &mut tx) {
                        out.push((format!("{what}-{name}"), tx[..len].to_vec()));
                    }
                }
            }
            Verdict::Event(_) | Verdict::Drop(_) => {}
        }
    }
    out
}

/// Configuration files for the `config` target; `example` is the text of
/// docs/irondhcp.example.toml.
pub fn config_files(example: &str) -> Vec<(String, Vec<u8>)> {
    let minimal = r#"[server]
address = "10.0.0.1"
interface = "eth1"

[[subnet]]
id = 1
cidr = "10.0.0.0/24"
pools = ["10.0.0.100-10.0.0.199"]
"#;
    let every_option = r#"[server]
id = "fz"
address = "10.0.0.1"
interface = "eth1"
queues = [0, 1]
cores = [0, 1]
control_cores = [0]
idle_spin_us = 0
xdp_mode = "generic"
authoritative = false
offer_lifetime = 5
decline_probation = 60
write_behind_ms = 10000
reclaim_grace = 5
reclaim_interval = 1
control_socket = "/tmp/c.sock"
channel_capacity = 16

[storage]
url = "sqlite:/tmp/l.sqlite3"

[[subnet]]
id = 7
cidr = "10.0.0.0/22"
pools = ["10.0.0.10-10.0.0.20", "10.0.1.1 - 10.0.3.254"]
lease_time = 40
renew_time = 20
rebind_time = 35
mclt = 20
routers = ["10.0.0.1", "10.0.0.2"]
dns_servers = ["10.0.0.53"]
domain_name = "a.example"
[[subnet.option]]
code = 15
text = "search.example"
[[subnet.option]]
code = 2
u32 = 4294967295
always_send = true
[[subnet.option]]
code = 26
u16 = 9000
[[subnet.option]]
code = 19
u8 = 1
[[subnet.option]]
code = 43
hex = "01:04:de-ad be ef"
[[subnet.option]]
code = 4
ips = []
[[subnet.reservation]]
hw_address = "02-00-00-00-00-01"
address = "10.0.0.30"
[[subnet.reservation]]
client_id = "ff00000007"
address = "10.0.0.15"

[[subnet]]
id = 8
cidr = "172.16.0.0/30"
pools = ["172.16.0.1-172.16.0.2"]
"#;
    let inline_tables = r#"server = { address = "10.9.0.1", interface = "veth0", queues = [0] }
storage = { url = "sqlite://l.db" }
subnet = [
  { id = 1, cidr = "10.9.0.0/16", pools = ["10.9.0.2-10.9.255.254"], lease_time = 10 },
  { id = 2, cidr = "10.10.0.0/16", reservation = [{ client_id = "01", address = "10.10.0.1" }] },
]
"#;
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("example".into(), example.as_bytes().to_vec()),
        ("minimal".into(), minimal.as_bytes().to_vec()),
        ("every-option".into(), every_option.as_bytes().to_vec()),
        ("inline-tables".into(), inline_tables.as_bytes().to_vec()),
    ];
    // The minimal file plus one feature each: small inputs keep the
    // mutations on the feature (a byte-level fuzzer rarely reaches a
    // value deep inside a 3 KB file, such as a reservation's hex).
    let features = [
        ("hw-reservation", "[[subnet.reservation]]\nhw_address = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\n"),
        ("id-reservation", "[[subnet.reservation]]\nclient_id = \"01:02\"\naddress = \"10.0.0.6\"\n"),
        ("hex-option", "[[subnet.option]]\ncode = 43\nhex = \"0a0b\"\n"),
        ("text-option", "[[subnet.option]]\ncode = 15\ntext = \"x\"\nalways_send = true\n"),
        ("ips-option", "[[subnet.option]]\ncode = 42\nips = [\"10.0.0.9\"]\n"),
        ("int-options", "[[subnet.option]]\ncode = 2\nu32 = 7\n[[subnet.option]]\ncode = 26\nu16 = 1500\n[[subnet.option]]\ncode = 19\nu8 = 0\n"),
        ("times", "lease_time = 60\nrenew_time = 20\nrebind_time = 50\nmclt = 30\n"),
        ("second-subnet", "[[subnet]]\nid = 2\ncidr = \"10.1.0.0/30\"\npools = [\"10.1.0.1-10.1.0.2\"]\n"),
        ("named-subnet-fields", "routers = [\"10.0.0.1\"]\ndns_servers = [\"10.0.0.53\"]\ndomain_name = \"d\"\n"),
    ];
    for (name, tail) in features {
        files.push((name.into(), format!("{minimal}{tail}").into_bytes()));
    }
    let server = minimal.replace(
        "interface = \"eth1\"\n",
        "interface = \"eth1\"\nqueues = [0]\ncores = [1]\ncontrol_cores = [0]\nxdp_mode = \"native\"\nauthoritative = false\nwrite_behind_ms = 1\nchannel_capacity = 16\n",
    );
    files.push(("server-keys".into(), server.into_bytes()));
    files
}
