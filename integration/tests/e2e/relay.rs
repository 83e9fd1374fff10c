//! A relayed exchange: a relay agent (a UDP socket on port 67 in the client
//! namespace) forwards DISCOVER and REQUEST with giaddr and option 82; the
//! server picks the relay's subnet, answers the relay at port 67, and echoes
//! option 82 verbatim as the last option.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use dhcproto::v4::{self, relay, DhcpOption, Message, MessageType};
use dhcproto::{Decodable, Encodable};
use irondhcp_testkit::testbed::{TestbedOptions, RELAY_GIADDR, SERVER_IP};

use crate::{db_row, started};

const CIRCUIT: &[u8] = b"eth0/1/7:vlan100";
const REMOTE: &[u8] = b"subscriber-42";

fn relayed(kind: MessageType, xid: u32, requested: Option<Ipv4Addr>) -> Vec<u8> {
    let mac = [0x02, 0x42, 0, 0, 0, 0x07];
    let mut m = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        RELAY_GIADDR,
        &mac,
    );
    m.set_hops(1);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    if let Some(r) = requested {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(r));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER_IP));
    }
    let mut info = relay::RelayAgentInformation::default();
    info.insert(relay::RelayInfo::AgentCircuitId(CIRCUIT.to_vec()));
    info.insert(relay::RelayInfo::AgentRemoteId(REMOTE.to_vec()));
    m.opts_mut().insert(DhcpOption::RelayAgentInformation(info));
    m.to_vec().expect("encode")
}

/// The option codes of a raw DHCP message, in wire order.
fn option_codes(raw: &[u8]) -> Vec<u8> {
    let mut codes = Vec::new();
    let mut i = 240;
    while i < raw.len() {
        let c = raw[i];
        if c == 0 {
            i += 1;
            continue;
        }
        if c == 255 {
            break;
        }
        codes.push(c);
        i += 2 + *raw.get(i + 1).unwrap_or(&0) as usize;
    }
    codes
}

/// The raw value of option 82 in a message.
fn option_82(raw: &[u8]) -> Option<Vec<u8>> {
    let mut i = 240;
    while i + 1 < raw.len() {
        let (c, l) = (raw[i], raw[i + 1] as usize);
        if c == 0 {
            i += 1;
            continue;
        }
        if c == 255 {
            return None;
        }
        if c == 82 {
            return raw.get(i + 2..i + 2 + l).map(<[u8]>::to_vec);
        }
        i += 2 + l;
    }
    None
}

#[test]
fn relayed_exchange_gets_relay_subnet_and_option_82_echoed() {
    let tb = started(&TestbedOptions {
        relay_subnet: true,
        ..TestbedOptions::default()
    });
    // The relay: its address on the server link plus its giaddr.
    tb.add_relay_address().expect("relay address");
    tb.client
        .exec(&[
            "ip",
            "addr",
            "add",
            &format!("{RELAY_GIADDR}/24"),
            "dev",
            &tb.cli_if,
        ])
        .expect("giaddr");

    let (discover, offer, request, ack) = tb
        .client
        .run_inside(|| {
            let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67))
                .expect("bind relay port 67");
            sock.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let server = SocketAddrV4::new(SERVER_IP, 67);
            let mut buf = [0u8; 1500];
            let mut exchange = |frame: &[u8], xid: u32| -> Vec<u8> {
                for _ in 0..5 {
                    sock.send_to(frame, server).expect("send to server");
                    while let Ok((n, _)) = sock.recv_from(&mut buf) {
                        if Message::from_bytes(&buf[..n])
                            .is_ok_and(|m| m.xid() == xid && m.opcode() == v4::Opcode::BootReply)
                        {
                            return buf[..n].to_vec();
                        }
                    }
                }
                panic!("no reply to xid {xid:#x}");
            };
            let discover = relayed(MessageType::Discover, 0x1001, None);
            let offer = exchange(&discover, 0x1001);
            let yiaddr = Message::from_bytes(&offer).expect("decode offer").yiaddr();
            let request = relayed(MessageType::Request, 0x1002, Some(yiaddr));
            let ack = exchange(&request, 0x1002);
            (discover, offer, request, ack)
        })
        .expect("run the relay in the client namespace");

    for (sent, raw, kind) in [
        (&discover, &offer, MessageType::Offer),
        (&request, &ack, MessageType::Ack),
    ] {
        let m = Message::from_bytes(raw).expect("decode");
        assert_eq!(m.opts().msg_type(), Some(kind));
        assert_eq!(m.giaddr(), RELAY_GIADDR);
        let y = m.yiaddr();
        assert!(
            y.octets()[..3] == [198, 19, 0],
            "{y} is not in the relay's subnet 198.19.0.0/24"
        );
        assert!(
            matches!(m.opts().get(v4::OptionCode::Router), Some(DhcpOption::Router(r)) if r == &vec![RELAY_GIADDR])
        );
        let codes = option_codes(raw);
        assert_eq!(
            codes.last(),
            Some(&82),
            "option 82 must be the last option: {codes:?}"
        );
        let echoed = option_82(raw).expect("option 82 echoed");
        let sent = option_82(sent).expect("option 82 sent");
        assert_eq!(echoed, sent, "option 82 must be echoed verbatim");
    }
    let y = Message::from_bytes(&ack)
        .expect("decode")
        .yiaddr()
        .to_string();
    let row = db_row(&tb.db, &y).expect("relayed lease in the lease file");
    assert_eq!((row.1.as_str(), row.3), ("leased", 2));
    // The relay's circuit-id and remote-id are stored with the lease, for
    // operators' lookups by the port a subscriber sits behind.
    let out = std::process::Command::new("sqlite3")
        .arg("-readonly")
        .arg(&tb.db)
        .arg(format!(
            "SELECT hex(circuit_id), hex(remote_id) FROM leases WHERE address = '{y}'"
        ))
        .output()
        .expect("run sqlite3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{}|{}", hex(CIRCUIT), hex(REMOTE)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And found by them: the circuit-id as the relay's text, the remote-id
    // as hex; a circuit nobody is behind finds nothing.
    let remote = REMOTE
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let circuit = String::from_utf8_lossy(CIRCUIT).into_owned();
    let (code, found, err) = crate::ctl::ctl(
        &tb,
        &["leases", "--circuit-id", &circuit, "--remote-id", &remote],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = found.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{found}");
    assert!(rows[0].starts_with(&y), "{found}");
    let (_, none, _) = crate::ctl::ctl(&tb, &["leases", "--circuit-id", "no-such-port"]);
    assert_eq!(none.lines().count(), 1, "only the header: {none}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}
