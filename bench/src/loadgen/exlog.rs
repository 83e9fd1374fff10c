//! `--exchange-log`: every exchange that ended, as CSV, for programs that
//! check a server against what its clients were promised (the cluster
//! fault suite's checker). Written once, after the run, from the records
//! the threads kept.

/// Writes every thread's ended exchanges as CSV, in start order.
pub fn write(
    path: &std::path::Path,
    wall0_ns: u64,
    results: &[super::engine::ThreadResult],
) -> std::io::Result<()> {
    use std::io::Write;
    let mut all: Vec<&super::engine::ExchangeRecord> =
        results.iter().flat_map(|r| r.exchanges.iter()).collect();
    all.sort_by_key(|e| e.start_ns);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "start_ms,end_ms,type,mac,address,outcome,lease_secs")?;
    for e in all {
        let m = super::frame::client_mac(e.client);
        writeln!(
            out,
            "{},{},{},{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x},{},{},{}",
            (wall0_ns + e.start_ns) / 1_000_000,
            (wall0_ns + e.end_ns) / 1_000_000,
            e.kind.name(),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            super::engine::ip(e.addr),
            match e.outcome {
                super::engine::Outcome::Ack => "ack",
                super::engine::Outcome::Nak => "nak",
                super::engine::Outcome::Lost => "lost",
            },
            e.lease_secs
        )?;
    }
    out.flush()
}
