//! Parsers of other tools' reports (perfdhcp), shared by the tests that
//! run those tools and the benchmark driver that compares with them.

/// (sent, received, drops) of one exchange block ("DISCOVER-OFFER",
/// "REQUEST-ACK") of perfdhcp's report.
pub fn perfdhcp_counts(report: &str, exchange: &str) -> Option<(u64, u64, u64)> {
    let block = report.split(exchange).nth(1)?;
    let num = |key: &str| -> Option<u64> {
        let line = block.lines().find(|l| l.trim_start().starts_with(key))?;
        line.split(':')
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((
        num("sent packets")?,
        num("received packets")?,
        num("drops")?,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn perfdhcp_report_blocks_are_read() {
        let report = "***Statistics for: DISCOVER-OFFER***\nsent packets: 100\nreceived packets: 98\ndrops: 2\n\
                      ***Statistics for: REQUEST-ACK***\nsent packets: 98\nreceived packets: 98\ndrops: 0\n";
        assert_eq!(
            super::perfdhcp_counts(report, "DISCOVER-OFFER"),
            Some((100, 98, 2))
        );
        assert_eq!(
            super::perfdhcp_counts(report, "REQUEST-ACK"),
            Some((98, 98, 0))
        );
        assert_eq!(super::perfdhcp_counts(report, "SOLICIT-ADVERTISE"), None);
    }
}
