//! The Internet checksum (RFC 1071) for IPv4 headers and UDP.
//!
//! Replies are whole frames written by the worker (docs/decisions.md, 1), and
//! an AF_XDP frame gets no checksum offload, so both checksums are computed
//! here in software. The sum is accumulated in a `u64` and folded once at the
//! end: a frame is far too short for the accumulator to overflow, and folding
//! once keeps the per-byte loop to an add.

/// Adds `data` as big-endian 16-bit words to `acc` (an odd final byte is
/// padded with zero, as RFC 1071 specifies).
#[inline]
pub fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    // Eight bytes per step keeps the debug-build fuzz loop fast; the four
    // words of each chunk are summed exactly as the two-byte loop would.
    let mut wide = data.chunks_exact(8);
    for c in &mut wide {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let mut pairs = wide.remainder().chunks_exact(2);
    for c in &mut pairs {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds the carries of an accumulated sum into 16 bits (not complemented).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum to store in a header whose checksum field is zero.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(accumulate(0, data))
}

/// The UDP checksum of `udp` (header with a zero checksum field, then the
/// payload) over the IPv4 pseudo-header. A computed zero is returned as
/// `0xffff`, because zero on the wire means "no checksum" (RFC 768).
#[inline]
pub fn udp_checksum(src: [u8; 4], dst: [u8; 4], udp: &[u8]) -> u16 {
    let mut acc = accumulate(0, &src);
    acc = accumulate(acc, &dst);
    acc += u64::from(super::frame::IPPROTO_UDP);
    acc += udp.len() as u64;
    let c = !fold(accumulate(acc, udp));
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// Whether `data`, which includes its own checksum field, sums correctly.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    fold(accumulate(0, data)) == 0xffff
}

/// Whether the UDP datagram `udp` (checksum field included) is correct over
/// the pseudo-header; a zero checksum field means none was sent and passes.
#[inline]
pub fn verify_udp(src: [u8; 4], dst: [u8; 4], udp: &[u8]) -> bool {
    if udp.get(6..8) == Some(&[0, 0][..]) {
        return true;
    }
    let mut acc = accumulate(0, &src);
    acc = accumulate(acc, &dst);
    acc += u64::from(super::frame::IPPROTO_UDP);
    acc += udp.len() as u64;
    fold(accumulate(acc, udp)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-pair reference implementation to compare the wide loop with.
    fn slow(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for (i, b) in data.iter().enumerate() {
            acc += if i % 2 == 0 {
                u64::from(*b) << 8
            } else {
                u64::from(*b)
            };
        }
        !fold(acc)
    }

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 §3: sum 0xddf2, checksum 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn wide_loop_matches_pairwise_for_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(checksum(&data[..n]), slow(&data[..n]), "len {n}");
        }
    }

    #[test]
    fn known_ipv4_header() {
        // A textbook header (Wikipedia "IPv4 header checksum"): 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(&h));
    }

    #[test]
    fn udp_zero_becomes_ffff_and_verifies() {
        let mut udp = [0u8; 12];
        udp[0..2].copy_from_slice(&67u16.to_be_bytes());
        udp[2..4].copy_from_slice(&68u16.to_be_bytes());
        udp[4..6].copy_from_slice(&12u16.to_be_bytes());
        let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let c = udp_checksum(src, dst, &udp);
        assert_ne!(c, 0);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(verify_udp(src, dst, &udp));
        udp[11] ^= 1;
        assert!(!verify_udp(src, dst, &udp));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut udp = [0u8; 12];
        udp[4..6].copy_from_slice(&12u16.to_be_bytes());
        let pseudo = accumulate(accumulate(0, &src), &dst) + 17 + 12;
        // Pick the last word so that the sum is 0xffff: its complement is 0.
        let w = 0xffff - fold(accumulate(pseudo, &udp));
        udp[10..12].copy_from_slice(&w.to_be_bytes());
        assert_eq!(udp_checksum(src, dst, &udp), 0xffff);
        udp[6..8].copy_from_slice(&[0xff, 0xff]);
        assert!(verify_udp(src, dst, &udp));
    }
}
