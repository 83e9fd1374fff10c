//! Fuzz target `loadgen_reply`: bytes → the load generator's reply parser
//! (`irondhcp_bench::loadgen::reply::parse`), which reads every frame the
//! generator's interface receives, the server's and anybody else's.
//!
//! Each input is parsed as it would arrive on port 68 (a client) and 67
//! (the generator acting as a relay). Beyond "no panic": a frame is to one
//! port, so it is never ours on both; and a parsed reply carries an OFFER,
//! ACK or NAK whose xid, yiaddr and chaddr are the bytes at the BOOTP
//! offsets of the frame (checked against an offset walk written here).

use irondhcp_bench::loadgen::reply::{parse, Parsed};

/// Runs one input; panics on a finding.
pub fn run(frame: &[u8]) {
    let a = parse(frame, 68);
    let b = parse(frame, 67);
    assert!(
        matches!(a, Parsed::NotOurs) || matches!(b, Parsed::NotOurs),
        "one frame is ours on two ports: {a:?} / {b:?}"
    );
    for p in [a, b] {
        if let Parsed::Reply(r) = p {
            assert!(
                matches!(r.msg_type, 2 | 5 | 6),
                "message type {}",
                r.msg_type
            );
            let bootp = bootp_offset(frame).expect("a parsed reply has a BOOTP payload");
            let m = &frame[bootp..];
            assert_eq!(r.xid.to_be_bytes(), m[4..8], "xid");
            assert_eq!(r.yiaddr, m[16..20], "yiaddr");
            assert_eq!(r.chaddr, m[28..34], "chaddr");
            assert_eq!(r.src_mac, frame[6..12], "source MAC");
        }
    }
}

/// Where the UDP payload starts: Ethernet, an optional 802.1Q tag, IPv4
/// with its IHL, 8 bytes of UDP.
fn bootp_offset(frame: &[u8]) -> Option<usize> {
    let l3 = if frame.get(12..14)? == [0x81, 0x00] {
        18
    } else {
        14
    };
    let ihl = usize::from(frame.get(l3)? & 0x0f) * 4;
    let at = l3 + ihl + 8;
    (frame.len() >= at + 240).then_some(at)
}
