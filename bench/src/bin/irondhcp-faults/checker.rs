//! The fault suite's independent checker: what clients were promised (the
//! load generator's exchange log) against what PostgreSQL holds, and how
//! renewals fared while a fault lasted. Pure functions over the two
//! inputs, so every rule is a unit test.

use std::collections::HashMap;

/// One ended exchange from `irondhcp-loadgen --exchange-log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub start_ms: u64,
    pub end_ms: u64,
    pub kind: String,
    pub mac: String,
    pub address: String,
    pub outcome: String,
    pub lease_secs: u64,
}

/// One lease row of PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub address: String,
    /// The client key, hex.
    pub key: String,
    pub state: String,
    pub expiry: u64,
}

/// Parses the exchange log (CSV with a header line); bad lines are errors.
pub fn parse_log(text: &str) -> Result<Vec<Exchange>, String> {
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |i: usize| -> Result<u64, String> {
                f.get(i)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("bad exchange log line: {l}"))
            };
            if f.len() != 7 {
                return Err(format!("bad exchange log line: {l}"));
            }
            Ok(Exchange {
                start_ms: num(0)?,
                end_ms: num(1)?,
                kind: f[2].to_string(),
                mac: f[3].to_string(),
                address: f[4].to_string(),
                outcome: f[5].to_string(),
                lease_secs: num(6)?,
            })
        })
        .collect()
}

/// Parses `psql -A -t` output of `host(ip), encode(client_key, 'hex'),
/// state, expiry`.
pub fn parse_rows(text: &str) -> Result<Vec<Row>, String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            match f.as_slice() {
                [a, k, s, e] => Ok(Row {
                    address: a.to_string(),
                    key: k.to_string(),
                    state: s.to_string(),
                    expiry: e.parse().map_err(|_| format!("bad row: {l}"))?,
                }),
                _ => Err(format!("bad row: {l}")),
            }
        })
        .collect()
}

/// The key irondhcp stores for a client that sends no option 61: htype 1
/// and its MAC.
pub fn key_of_mac(mac: &str) -> String {
    format!("01{}", mac.replace(':', ""))
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub acks: u64,
    /// Addresses ACKed to two clients whose promised leases overlap.
    pub duplicates: u64,
    /// Clients whose last promise is missing from PostgreSQL or stored
    /// shorter than the promise minus MCLT.
    pub lost: u64,
    /// Examples, for the report.
    pub problems: Vec<String>,
}

fn is_ack(e: &Exchange) -> bool {
    e.outcome == "ack" && matches!(e.kind.as_str(), "REQUEST-ACK" | "RENEW-ACK" | "REBIND-ACK")
}

/// Duplicates and lost leases. `mclt` in seconds.
pub fn check(log: &[Exchange], rows: &[Row], mclt: u64) -> Verdict {
    let mut v = Verdict::default();
    // Promised intervals (seconds) by address, per client.
    let mut by_addr: HashMap<&str, Vec<(u64, u64, &str)>> = HashMap::new();
    // Each client's latest promise: (address, promised end).
    let mut last: HashMap<&str, (&str, u64)> = HashMap::new();
    for e in log.iter().filter(|e| is_ack(e)) {
        v.acks += 1;
        let from = e.end_ms / 1000;
        let until = from + e.lease_secs;
        by_addr
            .entry(&e.address)
            .or_default()
            .push((from, until, &e.mac));
        let l = last.entry(&e.mac).or_insert((&e.address, until));
        if until >= l.1 {
            *l = (&e.address, until);
        }
    }
    for (addr, mut promises) in by_addr {
        promises.sort();
        // Sweep in start order, keeping the furthest promise so far and
        // whose it is: a promise to another client that starts before it
        // ends overlaps it.
        let mut reach: Option<(u64, &str)> = None;
        let mut dup = false;
        for &(from, until, who) in &promises {
            if let Some((end, owner)) = reach {
                dup |= from < end && owner != who;
            }
            if reach.is_none_or(|(end, _)| until > end) {
                reach = Some((until, who));
            }
        }
        if dup {
            v.duplicates += 1;
            if v.problems.len() < 10 {
                v.problems
                    .push(format!("{addr} promised to two clients at once"));
            }
        }
    }
    let rows: HashMap<&str, &Row> = rows.iter().map(|r| (r.address.as_str(), r)).collect();
    let mut clients: Vec<_> = last.into_iter().collect();
    clients.sort();
    for (mac, (addr, until)) in clients {
        let ok = rows.get(addr).is_some_and(|r| {
            r.state == "leased" && r.key == key_of_mac(mac) && r.expiry + mclt >= until
        });
        if !ok {
            v.lost += 1;
            if v.problems.len() < 10 {
                v.problems.push(format!(
                    "{mac}: promised {addr} until {until}, stored {:?}",
                    rows.get(addr)
                ));
            }
        }
    }
    v
}

/// Renewals that started within [from, to) (ms): (answered, all).
pub fn renewals_between(log: &[Exchange], from: u64, to: u64) -> (u64, u64) {
    let r: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.kind == "RENEW-ACK" && e.start_ms >= from && e.start_ms < to)
        .collect();
    (
        r.iter().filter(|e| e.outcome == "ack").count() as u64,
        r.len() as u64,
    )
}

/// The longest a renewal started within [from, to) waited for its ACK
/// (ms; retransmissions included), 0 when none was answered.
pub fn slowest_renewal_ms(log: &[Exchange], from: u64, to: u64) -> u64 {
    log.iter()
        .filter(|e| {
            e.kind == "RENEW-ACK" && e.outcome == "ack" && e.start_ms >= from && e.start_ms < to
        })
        .map(|e| e.end_ms.saturating_sub(e.start_ms))
        .max()
        .unwrap_or(0)
}

/// How long after `fault_ms` renewals kept failing: the start of the last
/// renewal after it that got no ACK, within `window_ms` (0 when none
/// failed).
pub fn blackout_ms(log: &[Exchange], fault_ms: u64, window_ms: u64) -> u64 {
    log.iter()
        .filter(|e| {
            e.kind == "RENEW-ACK"
                && e.outcome != "ack"
                && e.start_ms >= fault_ms
                && e.start_ms < fault_ms + window_ms
        })
        .map(|e| e.start_ms - fault_ms)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(t_s: u64, mac: &str, addr: &str, lease: u64) -> Exchange {
        Exchange {
            start_ms: t_s * 1000 - 5,
            end_ms: t_s * 1000,
            kind: "REQUEST-ACK".into(),
            mac: mac.into(),
            address: addr.into(),
            outcome: "ack".into(),
            lease_secs: lease,
        }
    }

    fn row(addr: &str, mac: &str, expiry: u64) -> Row {
        Row {
            address: addr.into(),
            key: key_of_mac(mac),
            state: "leased".into(),
            expiry,
        }
    }

    #[test]
    fn parses_both_inputs() {
        let log = parse_log(
            "start_ms,end_ms,type,mac,address,outcome,lease_secs\n1000,1002,RENEW-ACK,02:00:00:00:00:01,10.0.0.5,ack,600\n",
        )
        .unwrap();
        assert_eq!(log[0].lease_secs, 600);
        assert_eq!(log[0].kind, "RENEW-ACK");
        assert!(parse_log("h\n1,2,x\n").is_err());
        let rows = parse_rows("10.0.0.5|01020000000001|leased|1600\n").unwrap();
        assert_eq!(rows[0], row("10.0.0.5", "02:00:00:00:00:01", 1600));
        assert!(parse_rows("10.0.0.5|x\n").is_err());
    }

    #[test]
    fn a_clean_run_has_no_duplicates_and_no_lost_leases() {
        let log = vec![
            ack(100, "02:00:00:00:00:01", "10.0.0.5", 600),
            ack(150, "02:00:00:00:00:01", "10.0.0.5", 600),
            ack(120, "02:00:00:00:00:02", "10.0.0.6", 600),
        ];
        let rows = vec![
            row("10.0.0.5", "02:00:00:00:00:01", 750),
            row("10.0.0.6", "02:00:00:00:00:02", 720),
        ];
        let v = check(&log, &rows, 300);
        assert_eq!(
            (v.acks, v.duplicates, v.lost),
            (3, 0, 0),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn overlapping_promises_to_two_clients_are_duplicates() {
        let log = vec![
            ack(100, "02:00:00:00:00:01", "10.0.0.5", 600),
            ack(200, "02:00:00:00:00:02", "10.0.0.5", 600),
            // Another address, reused only after the first promise ended.
            ack(100, "02:00:00:00:00:03", "10.0.0.7", 60),
            ack(170, "02:00:00:00:00:04", "10.0.0.7", 60),
        ];
        let v = check(&log, &[], 300);
        assert_eq!(v.duplicates, 1, "{:?}", v.problems);
    }

    #[test]
    fn missing_short_or_foreign_rows_are_lost_leases() {
        let log = vec![
            ack(100, "02:00:00:00:00:01", "10.0.0.5", 600),
            ack(100, "02:00:00:00:00:02", "10.0.0.6", 600),
            ack(100, "02:00:00:00:00:03", "10.0.0.7", 600),
            ack(100, "02:00:00:00:00:04", "10.0.0.8", 600),
        ];
        let rows = vec![
            // Stored until 350: promised 700 − MCLT 300 = 400 > 350.
            row("10.0.0.5", "02:00:00:00:00:01", 350),
            // Another client's key.
            row("10.0.0.6", "02:00:00:00:00:09", 700),
            // Stored until 400: exactly promise − MCLT, kept.
            row("10.0.0.8", "02:00:00:00:00:04", 400),
        ];
        let v = check(&log, &rows, 300);
        assert_eq!(v.lost, 3, "{:?}", v.problems);
    }

    #[test]
    fn renewals_during_a_fault_and_the_blackout() {
        let mut log = Vec::new();
        for (t, outcome) in [
            (1000, "ack"),
            (2100, "lost"),
            (2600, "lost"),
            (3000, "ack"),
            (9000, "lost"),
        ] {
            log.push(Exchange {
                start_ms: t,
                end_ms: t + 1,
                kind: "RENEW-ACK".into(),
                mac: "m".into(),
                address: "a".into(),
                outcome: outcome.into(),
                lease_secs: 0,
            });
        }
        assert_eq!(renewals_between(&log, 2000, 4000), (1, 3));
        log[3].end_ms = 3900;
        assert_eq!(slowest_renewal_ms(&log, 2000, 4000), 900);
        assert_eq!(blackout_ms(&log, 2000, 5000), 600);
        assert_eq!(blackout_ms(&log, 5000, 1000), 0);
    }
}
