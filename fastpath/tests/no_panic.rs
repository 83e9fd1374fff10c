//! Packet input never panics (docs/decisions.md, 6).
//!
//! A deterministic loop feeds over a million generated frames through
//! `handle()` (and `build_decision_reply()` for every frame handed to the
//! control plane): random bytes, random payloads behind valid headers, and
//! mutations of valid requests of every type (bit flips, truncations,
//! corrupted length fields, overwritten and spliced options). A simple
//! xorshift generator keeps it reproducible without extra dependencies, and
//! the loop reuses one input and one output buffer so that it stays fast
//! even in a debug build. A proptest adds shrinking for anything it finds.

use irondhcp_testkit::fixtures as wire_support;

use std::time::Instant;

use irondhcp_fastpath::channel::AllocDecision;
use irondhcp_fastpath::counters::WorkerCounters;
use irondhcp_fastpath::handler::{build_decision_reply, handle, HandlerCtx, Verdict};
use proptest::prelude::*;
use wire_support::*;

/// xorshift64* (Vigna): tiny, fast and good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

const ITERATIONS: usize = 3_000_000;
const BUF: usize = 1600;

/// Offsets of the length fields an attacker would corrupt, for an untagged
/// frame; a tagged one shifts them by four.
const IP_TOTAL: usize = 16;
const UDP_LEN: usize = 38;
const BOOTP: usize = 42;

/// Writes one generated frame into `buf` and returns its length.
fn generate(rng: &mut Rng, seeds: &[Vec<u8>], buf: &mut [u8; BUF]) -> usize {
    let seed = &seeds[rng.below(seeds.len())];
    let tag = if seed[12] == 0x81 { 4 } else { 0 };
    match rng.below(10) {
        // Pure noise.
        0 => {
            let n = rng.below(700);
            buf[..n].iter_mut().for_each(|b| *b = rng.byte());
            n
        }
        // Valid headers, random BOOTP body (with the cookie half the time).
        1 => {
            let n = seed.len();
            buf[..n].copy_from_slice(seed);
            let start = BOOTP + tag + if rng.below(2) == 0 { 240 } else { 0 };
            buf[start..n].iter_mut().for_each(|b| *b = rng.byte());
            n
        }
        // Bit flips anywhere.
        2 => {
            let n = seed.len();
            buf[..n].copy_from_slice(seed);
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(n);
                buf[i] ^= 1 << rng.below(8);
            }
            n
        }
        // Truncation.
        3 => {
            let n = rng.below(seed.len() + 1);
            buf[..n].copy_from_slice(&seed[..n]);
            n
        }
        // Corrupted length fields: IHL, IP total, UDP length, hlen.
        4 => {
            let n = seed.len();
            buf[..n].copy_from_slice(seed);
            match rng.below(4) {
                0 => buf[14 + tag] = 0x40 | rng.byte() & 0x0f,
                1 => buf[IP_TOTAL + tag..IP_TOTAL + tag + 2]
                    .copy_from_slice(&(rng.next() as u16).to_be_bytes()),
                2 => buf[UDP_LEN + tag..UDP_LEN + tag + 2]
                    .copy_from_slice(&(rng.next() as u16).to_be_bytes()),
                _ => buf[BOOTP + tag + 2] = rng.byte(),
            }
            n
        }
        // Corrupted option bytes (codes and lengths alike).
        5 | 6 => {
            let n = seed.len();
            buf[..n].copy_from_slice(seed);
            let opts = BOOTP + tag + 240;
            for _ in 0..1 + rng.below(4) {
                let i = opts + rng.below(n - opts);
                buf[i] = rng.byte();
            }
            n
        }
        // Random options spliced in after the message type, lengths fixed up
        // so the frame still parses as far as the options.
        7 | 8 => {
            let opts = BOOTP + tag + 240;
            let n0 = seed.len();
            buf[..opts + 3].copy_from_slice(&seed[..opts + 3]);
            let mut at = opts + 3;
            for _ in 0..rng.below(6) {
                let code = [50, 54, 55, 57, 61, 82, 118, 12, 52, 1][rng.below(10)];
                let len = rng.below(12);
                if at + 2 + len >= BUF - 400 {
                    break;
                }
                buf[at] = code;
                buf[at + 1] = len as u8;
                buf[at + 2..at + 2 + len]
                    .iter_mut()
                    .for_each(|b| *b = rng.byte());
                at += 2 + len;
            }
            let rest = &seed[opts + 3..n0];
            buf[at..at + rest.len()].copy_from_slice(rest);
            let n = at + rest.len();
            let ip_len = (n - 14 - tag) as u16;
            buf[IP_TOTAL + tag..IP_TOTAL + tag + 2].copy_from_slice(&ip_len.to_be_bytes());
            buf[UDP_LEN + tag..UDP_LEN + tag + 2].copy_from_slice(&(ip_len - 20).to_be_bytes());
            n
        }
        // The seed itself, unchanged.
        _ => {
            buf[..seed.len()].copy_from_slice(seed);
            seed.len()
        }
    }
}

/// Runs one frame and checks every reply it produces.
fn exercise(ctx: &HandlerCtx, frame: &[u8], tx: &mut [u8], pick: u64) -> Verdict {
    let v = handle(ctx, frame, NOW, tx);
    match &v {
        Verdict::Reply { len, .. } => {
            assert!(*len <= tx.len());
            assert!(
                checksums_ok(&tx[..*len]),
                "bad checksums for input {frame:02x?}"
            );
        }
        Verdict::Control(meta) => {
            let addr = meta
                .requested
                .unwrap_or(std::net::Ipv4Addr::new(10, 0, 0, 160));
            let decision = match pick % 4 {
                0 => AllocDecision::Offer {
                    addr,
                    lease_secs: (pick >> 8) as u32,
                },
                1 => AllocDecision::Ack {
                    addr,
                    lease_secs: 3600,
                },
                2 => AllocDecision::Nak,
                _ => AllocDecision::Ignore,
            };
            if let Ok((len, _)) = build_decision_reply(ctx, frame, decision, tx) {
                assert!(len <= tx.len());
                assert!(
                    checksums_ok(&tx[..len]),
                    "bad checksums for decision on {frame:02x?}"
                );
            }
        }
        _ => {}
    }
    v
}

#[test]
fn a_million_generated_frames_never_panic() {
    let cfg = config(true);
    let leases = populated_lease_map();
    let counters = WorkerCounters::default();
    let ctx = HandlerCtx {
        cfg: &cfg,
        leases: &leases,
        counters: &counters,
    };
    let seeds = seed_frames();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut input = [0u8; BUF];
    let mut tx = [0u8; 2048];
    let (mut replies, mut control, mut events) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        let n = generate(&mut rng, &seeds, &mut input);
        // Mostly a full UMEM frame, sometimes a buffer too small for a reply.
        let tx_len = if rng.below(16) == 0 {
            rng.below(400)
        } else {
            tx.len()
        };
        let pick = rng.next();
        match exercise(&ctx, &input[..n], &mut tx[..tx_len], pick) {
            Verdict::Reply { .. } => replies += 1,
            Verdict::Control(_) => control += 1,
            Verdict::Event(_) => events += 1,
            Verdict::Drop(_) => {}
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{ITERATIONS} frames in {elapsed:.2?}: {replies} replies, {control} to control, {events} events"
    );
    // The mutations must reach deep into the handler, not just the parser.
    assert!(replies > ITERATIONS / 20, "replies {replies}");
    assert!(control > ITERATIONS / 50, "control {control}");
    assert!(events > ITERATIONS / 200, "events {events}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600), tx_len in 0usize..2048) {
        let cfg = config(false);
        let leases = populated_lease_map();
        let counters = WorkerCounters::default();
        let ctx = HandlerCtx { cfg: &cfg, leases: &leases, counters: &counters };
        let mut tx = vec![0u8; tx_len];
        exercise(&ctx, &bytes, &mut tx, 0);
    }

    #[test]
    fn mutated_requests_never_panic(
        seed in any::<usize>(),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8),
        cut in any::<u16>(),
        pick in any::<u64>(),
    ) {
        let cfg = config(true);
        let leases = populated_lease_map();
        let counters = WorkerCounters::default();
        let ctx = HandlerCtx { cfg: &cfg, leases: &leases, counters: &counters };
        let seeds = seed_frames();
        let mut f = seeds[seed % seeds.len()].clone();
        for (pos, b) in edits {
            let i = usize::from(pos) % f.len();
            f[i] = b;
        }
        f.truncate(f.len() - usize::from(cut) % 64);
        let mut tx = vec![0u8; 2048];
        exercise(&ctx, &f, &mut tx, pick);
    }
}
