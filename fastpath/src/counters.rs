//! Per-worker packet counters.
//!
//! Each worker owns one [`WorkerCounters`] and is its only writer, so a
//! relaxed atomic add costs about what a plain add does and never contends;
//! the control plane sums them across workers when it reports statistics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a frame was dropped without an answer. Every drop is counted under
/// exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DropReason {
    /// Ethernet/IPv4/UDP framing is broken (short, bad lengths, not UDP/67).
    BadFrame = 0,
    /// The BOOTP/DHCP message is malformed (short, options past the end,
    /// hlen > 16, bad op).
    BadDhcp,
    /// No option 53, or a type a server never receives.
    BadMessageType,
    /// No configured subnet matches the link-selection/giaddr/interface.
    NoSubnet,
    /// The message is meant for another server (server id not ours).
    NotForUs,
    /// RFC 2131 requires silence (unknown INIT-REBOOT, not authoritative).
    Silent,
    /// The control-plane channel was full; the client will retransmit.
    ControlBusy,
    /// The write-behind channel was full; the renewal was not ACKed.
    EventBusy,
    /// The TX ring had no room.
    TxFull,
    /// The reply would not fit the output buffer.
    ReplyTooLarge,
    /// A RELEASE or DECLINE that did not come from the lease's client as far
    /// as the server can tell (Ethernet source is not chaddr and, for a
    /// routed unicast, IP source is not the address).
    NotFromClient,
}

impl DropReason {
    pub const COUNT: usize = 11;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::BadFrame,
        DropReason::BadDhcp,
        DropReason::BadMessageType,
        DropReason::NoSubnet,
        DropReason::NotForUs,
        DropReason::Silent,
        DropReason::ControlBusy,
        DropReason::EventBusy,
        DropReason::TxFull,
        DropReason::ReplyTooLarge,
        DropReason::NotFromClient,
    ];

    /// The name used in metrics and `irondhcp-ctl stats`.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::BadFrame => "bad_frame",
            DropReason::BadDhcp => "bad_dhcp",
            DropReason::BadMessageType => "bad_message_type",
            DropReason::NoSubnet => "no_subnet",
            DropReason::NotForUs => "not_for_us",
            DropReason::Silent => "silent",
            DropReason::ControlBusy => "control_busy",
            DropReason::EventBusy => "event_busy",
            DropReason::TxFull => "tx_full",
            DropReason::ReplyTooLarge => "reply_too_large",
            DropReason::NotFromClient => "not_from_client",
        }
    }
}

/// DHCP message types 1..=8 (DISCOVER..INFORM) index `received`/`sent`;
/// slot 0 counts anything else.
pub const MESSAGE_TYPE_NAMES: [&str; 9] = [
    "other", "discover", "offer", "request", "decline", "ack", "nak", "release", "inform",
];

/// Counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub rx_frames: AtomicU64,
    pub tx_frames: AtomicU64,
    /// Requests handed to the control plane.
    pub to_control: AtomicU64,
    /// Requests answered from the lease map without the control plane.
    pub answered_from_map: AtomicU64,
    /// Renewals from memory ACKed with less than the lease time (the
    /// promise bound, durable expiry + MCLT, was nearer).
    pub promise_shortened: AtomicU64,
    /// Renewals sent to the control plane because the promise bound would
    /// have left under half a lease.
    pub promise_deferred: AtomicU64,
    pub received: [AtomicU64; 9],
    pub sent: [AtomicU64; 9],
    pub drops: [AtomicU64; DropReason::COUNT],
}

impl WorkerCounters {
    #[inline]
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn drop(&self, reason: DropReason) {
        Self::bump(&self.drops[reason as usize]);
    }

    #[inline]
    pub fn received_type(&self, msg_type: u8) {
        Self::bump(&self.received[usize::from(msg_type).min(9) % 9]);
    }

    #[inline]
    pub fn sent_type(&self, msg_type: u8) {
        Self::bump(&self.sent[usize::from(msg_type).min(9) % 9]);
    }

    /// A plain copy, for reporting.
    pub fn snapshot(&self) -> CounterSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            rx_frames: load(&self.rx_frames),
            tx_frames: load(&self.tx_frames),
            to_control: load(&self.to_control),
            answered_from_map: load(&self.answered_from_map),
            promise_shortened: load(&self.promise_shortened),
            promise_deferred: load(&self.promise_deferred),
            received: std::array::from_fn(|i| load(&self.received[i])),
            sent: std::array::from_fn(|i| load(&self.sent[i])),
            drops: std::array::from_fn(|i| load(&self.drops[i])),
        }
    }
}

/// A point-in-time copy of [`WorkerCounters`], summable across workers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub to_control: u64,
    pub answered_from_map: u64,
    pub promise_shortened: u64,
    pub promise_deferred: u64,
    pub received: [u64; 9],
    pub sent: [u64; 9],
    pub drops: [u64; DropReason::COUNT],
}

impl CounterSnapshot {
    pub fn add(&mut self, o: &CounterSnapshot) {
        self.rx_frames += o.rx_frames;
        self.tx_frames += o.tx_frames;
        self.to_control += o.to_control;
        self.answered_from_map += o.answered_from_map;
        self.promise_shortened += o.promise_shortened;
        self.promise_deferred += o.promise_deferred;
        for i in 0..9 {
            self.received[i] += o.received[i];
            self.sent[i] += o.sent[i];
        }
        for i in 0..DropReason::COUNT {
            self.drops[i] += o.drops[i];
        }
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}
