//! Scenarios, exchange types and the `--mix` proportions.

use std::fmt;
use std::str::FromStr;

/// What the generator simulates (`--scenario`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Full four-way exchanges, each by a new client.
    Dora,
    /// DISCOVERs only: the exchange ends with the OFFER (no REQUEST), the
    /// flood a server must survive. With `--clients N` the N clients are
    /// reused round-robin for as long as the run lasts.
    Discover,
    /// Bound clients renew (unicast REQUEST in RENEWING state).
    Renew,
    /// Bound clients rebind (broadcast REQUEST in REBINDING state).
    Rebind,
    /// Bound clients release their lease.
    Release,
    /// A mix of the above (`--mix`).
    Mixed,
    /// A relay agent forwarding four-way exchanges of new subscribers.
    Relay,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Dora => "dora",
            Self::Discover => "discover",
            Self::Renew => "renew",
            Self::Rebind => "rebind",
            Self::Release => "release",
            Self::Mixed => "mixed",
            Self::Relay => "relay",
        }
    }

    /// Whether the scenario needs a warm-up that gives the `--clients`
    /// clients a lease first.
    pub fn needs_bound_clients(self, mix: &Mix) -> bool {
        match self {
            Self::Renew | Self::Rebind | Self::Release => true,
            Self::Mixed => {
                mix.weight(Action::Renew) + mix.weight(Action::Rebind) + mix.weight(Action::Release)
                    > 0
            }
            Self::Dora | Self::Discover | Self::Relay => false,
        }
    }

    /// Whether an OFFER completes the exchange (no REQUEST follows) and the
    /// `--clients` clients are reused round-robin once all have sent.
    pub fn discover_only(self) -> bool {
        self == Self::Discover
    }
}

/// A measured exchange type, as named in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExType {
    DiscoverOffer = 0,
    RequestAck = 1,
    RenewAck = 2,
    RebindAck = 3,
    Release = 4,
}

impl ExType {
    pub const COUNT: usize = 5;
    pub const ALL: [ExType; Self::COUNT] = [
        Self::DiscoverOffer,
        Self::RequestAck,
        Self::RenewAck,
        Self::RebindAck,
        Self::Release,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::DiscoverOffer => "DISCOVER-OFFER",
            Self::RequestAck => "REQUEST-ACK",
            Self::RenewAck => "RENEW-ACK",
            Self::RebindAck => "REBIND-ACK",
            Self::Release => "RELEASE",
        }
    }

    /// Whether an answer is expected (everything but RELEASE).
    pub fn timed(self) -> bool {
        self != Self::Release
    }

    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ExType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One scheduled exchange (what the rate counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Dora = 0,
    Renew = 1,
    Rebind = 2,
    Release = 3,
}

impl Action {
    const ALL: [Action; 4] = [Self::Dora, Self::Renew, Self::Rebind, Self::Release];

    fn name(self) -> &'static str {
        match self {
            Self::Dora => "dora",
            Self::Renew => "renew",
            Self::Rebind => "rebind",
            Self::Release => "release",
        }
    }
}

/// Proportions of `--mix`, e.g. `renew=80,dora=15,release=5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 4],
    total: u32,
}

/// A `--mix` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad --mix {spec:?}: {why} (expected e.g. renew=80,dora=15,release=5; names: dora, renew, rebind, release)")]
pub struct MixError {
    spec: String,
    why: String,
}

impl Mix {
    /// A mix of one action only.
    pub fn only(a: Action) -> Self {
        let mut weights = [0; 4];
        weights[a as usize] = 1;
        Self { weights, total: 1 }
    }

    pub fn weight(&self, a: Action) -> u32 {
        self.weights[a as usize]
    }

    /// The action of the `n`-th scheduled exchange: a low-discrepancy
    /// sequence (the fractional parts of n·φ), so every window of the run
    /// has close to the configured proportions, without state.
    #[inline]
    pub fn pick(&self, n: u64) -> Action {
        let frac = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let mut p = ((frac * u64::from(self.total)) >> 32) as u32;
        for a in Action::ALL {
            let w = self.weights[a as usize];
            if p < w {
                return a;
            }
            p -= w;
        }
        Action::Renew
    }

    /// The exchange types this mix reports.
    pub fn types(&self) -> Vec<ExType> {
        let mut v = Vec::new();
        if self.weight(Action::Dora) > 0 {
            v.extend([ExType::DiscoverOffer, ExType::RequestAck]);
        }
        if self.weight(Action::Renew) > 0 {
            v.push(ExType::RenewAck);
        }
        if self.weight(Action::Rebind) > 0 {
            v.push(ExType::RebindAck);
        }
        if self.weight(Action::Release) > 0 {
            v.push(ExType::Release);
        }
        v
    }
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(spec: &str) -> Result<Self, MixError> {
        let err = |why: String| MixError {
            spec: spec.to_owned(),
            why,
        };
        let mut weights = [0u32; 4];
        let mut seen = [false; 4];
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| err(format!("{part:?} is not name=weight")))?;
            let a = Action::ALL
                .into_iter()
                .find(|a| a.name() == name.trim())
                .ok_or_else(|| err(format!("unknown exchange {:?}", name.trim())))?;
            if seen[a as usize] {
                return Err(err(format!("{} given twice", a.name())));
            }
            seen[a as usize] = true;
            weights[a as usize] = value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| {
                    err(format!(
                        "weight {:?} is not an integer 0..=1000000",
                        value.trim()
                    ))
                })?;
        }
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return Err(err("all weights are zero".into()));
        }
        Ok(Self { weights, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_mix() {
        let m: Mix = "renew=80,dora=15,release=5".parse().unwrap();
        assert_eq!(m.weight(Action::Renew), 80);
        assert_eq!(m.weight(Action::Dora), 15);
        assert_eq!(m.weight(Action::Release), 5);
        assert_eq!(m.weight(Action::Rebind), 0);
        assert_eq!(
            m.types(),
            vec![
                ExType::DiscoverOffer,
                ExType::RequestAck,
                ExType::RenewAck,
                ExType::Release
            ]
        );
        let spaced: Mix = " dora = 1 , rebind=3 ".parse().unwrap();
        assert_eq!(spaced.weight(Action::Rebind), 3);
    }

    #[test]
    fn rejects_bad_mixes() {
        for bad in [
            "",
            "renew",
            "renew=x",
            "renew=-1",
            "foo=3",
            "renew=1,renew=2",
            "renew=0,dora=0",
            "renew=99999999",
        ] {
            assert!(bad.parse::<Mix>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn picks_follow_the_proportions_in_every_window() {
        let m: Mix = "renew=80,dora=15,release=5".parse().unwrap();
        for start in [0u64, 12_345] {
            let mut counts = [0u32; 4];
            for n in start..start + 1000 {
                counts[m.pick(n) as usize] += 1;
            }
            assert!(
                (790..=810).contains(&counts[Action::Renew as usize]),
                "{counts:?}"
            );
            assert!(
                (140..=160).contains(&counts[Action::Dora as usize]),
                "{counts:?}"
            );
            assert!(
                (40..=60).contains(&counts[Action::Release as usize]),
                "{counts:?}"
            );
            assert_eq!(counts[Action::Rebind as usize], 0);
        }
        let only = Mix::only(Action::Rebind);
        assert!((0..100).all(|n| only.pick(n) == Action::Rebind));
    }
}
