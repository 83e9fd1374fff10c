//! The per-thread loop: receive and match replies, fire retransmission and
//! drop timers, start new exchanges on the pacer's schedule, transmit.
//!
//! Client state lives in a preallocated array: the `--clients` clients a
//! warm-up gave a lease ("fixed" clients, renewed/released round-robin)
//! come first, then a ring of slots for new clients (each DORA uses the next
//! unused client index; the ring is sized for every exchange that can be
//! outstanding at the offered rate, and an occupant still outstanding when
//! its slot comes round again is counted lost). `--scenario discover` ends
//! each exchange at the OFFER and, once its `--clients` clients have all
//! sent, starts again from the first of them (round-robin), so a flood can
//! outlast its MACs; the k-th start of a thread uses client `k mod N` and
//! slot `k mod ring`, the ring being at most N long. Thread `t` of `T` owns the
//! clients whose index `i` satisfies `(i − offset) mod T = t`; a reply that
//! arrives on another thread's queue is forwarded to the owner over a
//! bounded channel of small `Copy` messages.
//!
//! Timers are two FIFO queues (retransmission and drop), which are in due
//! order because every entry has the same delay; an entry carries the
//! slot's generation and is ignored when the exchange has moved on.
//!
//! Nothing here allocates per packet: the queues and the pending list are
//! reserved up front, frames are written in place into the socket's TX
//! buffers, and histograms are preallocated.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::addrtable::{AckOutcome, AddrTable};
use super::cpu::CpuProbe;
use super::frame::{self, client_mac, mac_index, FrameSpec, Template, BROADCAST_IP, BROADCAST_MAC};
use super::io::Io;
use super::pacer::Pacer;
use super::reply::{self, Parsed, Reply};
use super::scenario::{Action, ExType, Mix, Scenario};
use super::stats::Stats;

/// New exchanges started per loop at most.
const NEW_BATCH: u64 = 64;
/// Frames transmitted between two kicks at most.
const TX_KICK_EVERY: usize = 128;

/// Run-wide settings every thread reads.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub scenario: Scenario,
    pub mix: Mix,
    pub threads: usize,
    pub client_offset: u64,
    pub client_id: bool,
    pub broadcast_flag: bool,
    pub retransmit_ns: u64,
    pub tries: u8,
    pub drop_ns: u64,
    /// UDP port replies arrive at: 68, or 67 for a relay.
    pub reply_port: u16,
    /// Unicast target for renewals and releases (default: the lease's
    /// server identifier).
    pub server_ip: Option<[u8; 4]>,
    /// Its MAC (default: the source MAC of the server's replies).
    pub server_mac: Option<[u8; 6]>,
    /// Relay mode: (giaddr, relay source IP, relay source MAC).
    pub relay: Option<([u8; 4], [u8; 4], [u8; 6])>,
    /// Keep an [`ExchangeRecord`] of every exchange that ends, warm-up
    /// included (`--exchange-log`, for the fault suite's checker).
    pub log_exchanges: bool,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ack,
    Nak,
    Lost,
}

/// One ended exchange, for `--exchange-log`.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeRecord {
    /// First transmission and end, on the shared clock (ns).
    pub start_ns: u64,
    pub end_ns: u64,
    pub kind: ExType,
    /// The client's global index (its MAC is `frame::client_mac(client)`).
    pub client: u64,
    /// The address ACKed, or the one held (renewals) or asked for.
    pub addr: [u8; 4],
    pub outcome: Outcome,
    /// Option 51 of the ACK (0 otherwise).
    pub lease_secs: u32,
}

/// Live counters of one thread, read by the progress line.
#[derive(Default)]
pub struct Progress {
    /// 0 warm-up, 1 timed, 2 done.
    pub phase: AtomicU8,
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub lost: AtomicU64,
    /// Clients bound at the end of the warm-up.
    pub bound: AtomicU64,
}

/// What all threads share.
pub struct Shared {
    pub cfg: EngineConfig,
    pub clock: Instant,
    /// `clock`'s start as UNIX time (ns), for logs read by other programs.
    pub wall0_ns: u64,
    pub table: Arc<AddrTable>,
    pub progress: Vec<Progress>,
    /// Threads that finished their warm-up.
    pub ready: AtomicUsize,
    /// Start of the timed phase (0 until every thread is ready).
    pub start_ns: AtomicU64,
    /// Threads that finished the timed phase.
    pub finished: AtomicUsize,
    /// Threads whose timed send phase is over (the last one closes the
    /// CPU window).
    pub sending_done: AtomicUsize,
    /// CPU time of the server under test (`--server-pid`).
    pub server_cpu: Option<CpuProbe>,
    /// Files marking the same window for a harness (`--window-marks`).
    pub window_marks: Option<super::marks::WindowMarks>,
}

impl Shared {
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }
}

/// What one thread is asked to do.
#[derive(Debug, Clone)]
pub struct ThreadPlan {
    pub thread: usize,
    /// Fixed clients of this thread (warmed up; local indexes 0..n).
    pub fixed: u64,
    /// First local index of new clients.
    pub fresh_base: u64,
    /// How many new clients this thread may use.
    pub fresh_limit: u64,
    /// Slots in the ring of new clients.
    pub ring: u64,
    /// Exchanges per second of this thread (timed phase, warm-up).
    pub rate: f64,
    pub warmup_rate: f64,
    pub duration_ns: Option<u64>,
    pub count: Option<u64>,
}

/// A reply handed to the thread that owns its client.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded {
    pub reply: Reply,
    pub local: u64,
    pub rx_ns: u64,
}

/// What a thread reports when done.
pub struct ThreadResult {
    pub stats: Stats,
    /// Warm-up counters (not reported as measurements).
    pub warm: Stats,
    pub bound_after_warmup: u64,
    /// When the send phase ended, relative to the shared clock.
    pub send_end_ns: u64,
    /// Whether it ended before its duration/count (no client left).
    pub ended_early: bool,
    /// New clients used (each counted once, however often it was reused).
    pub fresh_used: u64,
    /// Replies this thread's socket dropped during the timed phase (None:
    /// the socket type does not say).
    pub rx_dropped: Option<u64>,
    /// Every exchange that ended, when `log_exchanges` is set.
    pub exchanges: Vec<ExchangeRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum St {
    /// Slot never used.
    #[default]
    Empty,
    /// No lease.
    Idle,
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
}

impl St {
    #[inline]
    fn outstanding(self) -> bool {
        matches!(
            self,
            St::Selecting | St::Requesting | St::Renewing | St::Rebinding
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Client {
    local: u64,
    first_ns: u64,
    xid: u32,
    gen: u32,
    addr: [u8; 4],
    server_id: [u8; 4],
    server_mac: [u8; 6],
    state: St,
    kind: ExType,
    tries: u8,
    /// The xid of this client's previous exchange in this slot (a
    /// `discover` client reused before an answer to it came): a reply
    /// with it is late, not invalid.
    prev_xid: Option<u32>,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            local: 0,
            first_ns: 0,
            xid: 0,
            gen: 0,
            addr: [0; 4],
            server_id: [0; 4],
            server_mac: BROADCAST_MAC,
            state: St::Empty,
            kind: ExType::DiscoverOffer,
            tries: 0,
            prev_xid: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tx {
    First,
    Retransmit,
    Release,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    slot: u32,
    gen: u32,
    what: Tx,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    slot: u32,
    gen: u32,
    due: u64,
}

enum Start {
    Started,
    /// Nothing to do for this one (no bound client right now).
    Skipped,
    /// No client will ever be available again: end the send phase.
    Exhausted,
}

/// Everything but the socket (so a receive callback can borrow it while
/// the socket is borrowed too).
struct Core {
    shared: Arc<Shared>,
    plan: ThreadPlan,
    tmpl: Template,
    clients: Vec<Client>,
    fixed: usize,
    /// New exchanges started on new (or, with `discover_only`, reused)
    /// clients.
    fresh_started: u64,
    /// `--scenario discover`: an OFFER completes the exchange, and the new
    /// clients are reused round-robin once `fresh_limit` have been used.
    discover_only: bool,
    rr: usize,
    outstanding: u64,
    rto_q: VecDeque<Timer>,
    drop_q: VecDeque<Timer>,
    pending: Vec<Pending>,
    stats: Stats,
    default_type: ExType,
    rng: u64,
    forward: Vec<Sender<Forwarded>>,
    /// Ended exchanges (`log_exchanges`); reserved up front.
    exchanges: Vec<ExchangeRecord>,
}

/// One thread's engine over socket type `I`.
pub struct Engine<I: Io> {
    io: I,
    core: Core,
    inbox: Receiver<Forwarded>,
}

impl<I: Io> Engine<I> {
    pub fn new(
        io: I,
        shared: Arc<Shared>,
        plan: ThreadPlan,
        inbox: Receiver<Forwarded>,
        forward: Vec<Sender<Forwarded>>,
    ) -> Self {
        let mut plan = plan;
        if shared.cfg.scenario.discover_only() {
            // A reused client must come back to its own slot or to one it
            // has left (see the module docs).
            plan.ring = plan.ring.min(plan.fresh_limit);
        }
        let fixed = plan.fixed as usize;
        let slots = fixed + plan.ring as usize;
        // Timers: up to `tries` retransmission entries and one drop entry
        // per exchange alive within a drop time, plus the warm-up bursts.
        let rate = plan.rate.max(plan.warmup_rate);
        let window = (rate * (shared.cfg.drop_ns as f64 / 1e9 + 1.0)).ceil() as usize;
        let cap = (window * 2 + fixed / 4 + 1024).min(1 << 24);
        let cfg = &shared.cfg;
        let default_type = match cfg.scenario {
            Scenario::Dora | Scenario::Relay => ExType::RequestAck,
            Scenario::Discover => ExType::DiscoverOffer,
            Scenario::Renew => ExType::RenewAck,
            Scenario::Rebind => ExType::RebindAck,
            Scenario::Release => ExType::Release,
            Scenario::Mixed => cfg
                .mix
                .types()
                .into_iter()
                .find(|t| *t != ExType::DiscoverOffer)
                .unwrap_or(ExType::DiscoverOffer),
        };
        let seed = shared.clock.elapsed().as_nanos() as u64
            ^ ((plan.thread as u64 + 1) * 0x9E37_79B9_7F4A_7C15)
            ^ u64::from(std::process::id());
        let core = Core {
            tmpl: Template::new(),
            clients: vec![Client::default(); slots],
            fixed,
            fresh_started: 0,
            discover_only: cfg.scenario.discover_only(),
            rr: 0,
            outstanding: 0,
            rto_q: VecDeque::with_capacity(cap * usize::from(cfg.tries.max(1))),
            drop_q: VecDeque::with_capacity(cap),
            pending: Vec::with_capacity(4 * NEW_BATCH as usize + 2 * super::io::RX_BATCH + 16),
            stats: Stats::default(),
            default_type,
            rng: seed | 1,
            forward,
            exchanges: if cfg.log_exchanges {
                Vec::with_capacity(slots * 4)
            } else {
                Vec::new()
            },
            shared,
            plan,
        };
        Self { io, core, inbox }
    }

    /// Warm-up (when the scenario needs bound clients), the start barrier,
    /// the timed phase, and the end barrier.
    pub fn run(mut self) -> ThreadResult {
        let shared = self.core.shared.clone();
        let me = self.core.plan.thread;
        let threads = shared.cfg.threads;
        let mut warm = Stats::default();
        let mut bound = 0;
        if self.core.plan.fixed > 0 {
            let start = shared.now_ns();
            self.phase(true, start);
            bound = self.core.clients[..self.core.fixed]
                .iter()
                .filter(|c| c.state == St::Bound)
                .count() as u64;
            shared.progress[me].bound.store(bound, Ordering::Relaxed);
            warm = std::mem::take(&mut self.core.stats);
        }
        // Start together: the last thread to arrive sets the start time;
        // everyone keeps forwarding replies while waiting.
        if shared.ready.fetch_add(1, Ordering::AcqRel) + 1 == threads {
            let now = shared.now_ns();
            if let Some(p) = &shared.server_cpu {
                p.mark_start(now);
            }
            if let Some(m) = &shared.window_marks {
                m.open();
            }
            shared.start_ns.store(now + 1_000_000, Ordering::Release);
        }
        let start = self.service_until(|| {
            let s = shared.start_ns.load(Ordering::Acquire);
            (s != 0).then_some(s)
        });
        self.core.stats = Stats::default();
        let rx_dropped_before = self.io.rx_dropped();
        shared.progress[me].phase.store(1, Ordering::Relaxed);
        let (send_end_ns, ended_early) = self.phase(false, start);
        shared.progress[me].phase.store(2, Ordering::Relaxed);
        shared.finished.fetch_add(1, Ordering::AcqRel);
        self.service_until(|| (shared.finished.load(Ordering::Acquire) == threads).then_some(()));
        let rx_dropped = match (rx_dropped_before, self.io.rx_dropped()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        ThreadResult {
            rx_dropped,
            stats: std::mem::take(&mut self.core.stats),
            warm,
            bound_after_warmup: bound,
            send_end_ns,
            ended_early,
            fresh_used: self.core.fresh_started.min(self.core.plan.fresh_limit),
            exchanges: std::mem::take(&mut self.core.exchanges),
        }
    }

    /// Keeps receiving (and forwarding) until `cond` yields.
    fn service_until<T>(&mut self, mut cond: impl FnMut() -> Option<T>) -> T {
        loop {
            if let Some(v) = cond() {
                return v;
            }
            let now = self.core.shared.now_ns();
            let n = self.receive(now);
            self.transmit(now);
            if n == 0 {
                self.io.wait(200_000);
            }
        }
    }

    fn receive(&mut self, now: u64) -> usize {
        let core = &mut self.core;
        let mut n = self.io.recv(|f| core.on_frame(f, now));
        while let Ok(f) = self.inbox.try_recv() {
            self.core.handle(f.reply, f.local, f.rx_ns);
            n += 1;
        }
        n
    }

    /// One phase; returns when its send phase ended and whether it ended
    /// early.
    fn phase(&mut self, warm: bool, start: u64) -> (u64, bool) {
        let shared = self.core.shared.clone();
        let cfg = &shared.cfg;
        let plan = self.core.plan.clone();
        let mut pacer = if warm {
            Pacer::new(plan.warmup_rate, start, None, Some(plan.fixed))
        } else {
            Pacer::new(
                plan.rate,
                start,
                plan.duration_ns.map(|d| start + d),
                plan.count,
            )
        };
        let progress = &shared.progress[plan.thread];
        let multi = cfg.threads > 1;
        let mut seq = 0u64;
        let mut send_end: Option<u64> = None;
        let mut ended_early = false;
        let mut last_publish = 0u64;
        loop {
            let now = shared.now_ns();
            let got = self.receive(now);
            let now = shared.now_ns();
            self.core.timers(now);
            if send_end.is_none() && super::interrupted() {
                pacer.stop();
                ended_early = true;
            }
            if send_end.is_none() {
                let n = pacer.take(now, NEW_BATCH);
                for i in 0..n {
                    let r = if warm {
                        let local = pacer.sent() - n + i;
                        self.core.begin_dora(local as usize, local);
                        Start::Started
                    } else {
                        let a = cfg.mix.pick(seq);
                        seq += 1;
                        self.core.start(a)
                    };
                    match r {
                        Start::Started => {}
                        Start::Skipped => self.core.stats.skipped += 1,
                        Start::Exhausted => {
                            pacer.untake(n - i - 1);
                            pacer.stop();
                            ended_early = true;
                            break;
                        }
                    }
                }
                let behind = pacer.target(now).saturating_sub(pacer.sent());
                if behind > 0 {
                    let lag = (behind as f64 / plan.rate.max(1e-9) * 1e9) as u64;
                    self.core.stats.max_lag_ns = self.core.stats.max_lag_ns.max(lag);
                }
                if pacer.done(now) {
                    send_end = Some(now);
                    if !warm
                        && shared.sending_done.fetch_add(1, Ordering::AcqRel) + 1 == cfg.threads
                    {
                        if let Some(p) = &shared.server_cpu {
                            p.mark_end(now);
                        }
                        if let Some(m) = &shared.window_marks {
                            m.close();
                        }
                    }
                }
            }
            let sent = self.transmit(now);
            if now - last_publish > 50_000_000 || send_end.is_some() {
                self.core.publish(progress);
                last_publish = now;
            }
            if let Some(end) = send_end {
                if self.core.outstanding == 0 {
                    break;
                }
                if now > end + cfg.drop_ns + 1_000_000_000 {
                    // Drop timers should have resolved everything by now.
                    self.core.lose_all();
                    break;
                }
            }
            if got == 0 && sent == 0 {
                let mut next = now + if multi { 1_000_000 } else { 50_000_000 };
                if let Some(d) = pacer.next_due_ns(now) {
                    next = next.min(d);
                }
                for q in [&self.core.rto_q, &self.core.drop_q] {
                    if let Some(t) = q.front() {
                        next = next.min(t.due);
                    }
                }
                if next > now + 20_000 {
                    self.io.wait(next - now);
                }
            }
        }
        self.core.publish(progress);
        (send_end.unwrap_or_else(|| shared.now_ns()), ended_early)
    }

    /// Transmits the pending list; returns how many frames.
    fn transmit(&mut self, now: u64) -> usize {
        let n = self.core.pending.len();
        for i in 0..n {
            let p = self.core.pending[i];
            let c = self.core.clients[p.slot as usize];
            if c.gen != p.gen {
                continue;
            }
            let core = &self.core;
            let ok = self.io.send(|buf| core.build(&c, p.what, buf, now));
            self.core.after_send(p, ok, now);
            if i % TX_KICK_EVERY == TX_KICK_EVERY - 1 {
                self.io.flush();
            }
        }
        self.core.pending.clear();
        self.io.flush();
        n
    }
}

impl Core {
    #[inline]
    fn cfg(&self) -> &EngineConfig {
        &self.shared.cfg
    }

    #[inline]
    fn global(&self, local: u64) -> u64 {
        self.cfg().client_offset + self.plan.thread as u64 + self.cfg().threads as u64 * local
    }

    #[inline]
    fn xid(&mut self) -> u32 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    fn slot_of(&self, local: u64) -> Option<usize> {
        if local < self.plan.fixed {
            return Some(local as usize);
        }
        let n = local.checked_sub(self.plan.fresh_base)?;
        let limit = self.plan.fresh_limit;
        if n >= self.fresh_started || n >= limit || self.plan.ring == 0 {
            return None;
        }
        // The last start that used client n: the largest k below
        // fresh_started with k ≡ n (mod limit); k = n unless reused.
        let k = n + (self.fresh_started - 1 - n) / limit * limit;
        Some(self.fixed + (k % self.plan.ring) as usize)
    }

    fn publish(&self, p: &Progress) {
        let (mut sent, mut answered, mut lost) = (0, 0, 0);
        for t in ExType::ALL {
            let s = &self.stats.types[t.index()];
            if t != ExType::RequestAck {
                sent += s.sent;
            }
            if t != ExType::DiscoverOffer {
                answered += s.answered;
                lost += s.lost;
            }
        }
        // A DORA counts once: sent as a DISCOVER, answered by its ACK; a
        // lost OFFER loses the DORA. Without a REQUEST, the OFFER answers.
        let offers = &self.stats.types[ExType::DiscoverOffer.index()];
        lost += offers.lost;
        if self.discover_only {
            answered += offers.answered;
        }
        p.sent.store(sent, Ordering::Relaxed);
        p.answered.store(answered, Ordering::Relaxed);
        p.lost.store(lost, Ordering::Relaxed);
    }

    fn on_frame(&mut self, frame: &[u8], now: u64) {
        match reply::parse(frame, self.cfg().reply_port) {
            Parsed::NotOurs => {}
            Parsed::Invalid => {
                let t = self.default_type;
                self.stats.of(t).invalid += 1;
            }
            Parsed::Reply(r) => self.dispatch(r, now),
        }
    }

    fn type_of(&self, r: &Reply) -> ExType {
        if r.msg_type == frame::OFFER {
            ExType::DiscoverOffer
        } else {
            self.default_type
        }
    }

    fn dispatch(&mut self, r: Reply, now: u64) {
        let offset = self.cfg().client_offset;
        let threads = self.cfg().threads as u64;
        let Some(rel) = mac_index(&r.chaddr).and_then(|g| g.checked_sub(offset)) else {
            let t = self.type_of(&r);
            self.stats.of(t).invalid += 1;
            return;
        };
        let owner = (rel % threads) as usize;
        let local = rel / threads;
        if owner == self.plan.thread {
            self.handle(r, local, now);
        } else if self.forward[owner]
            .try_send(Forwarded {
                reply: r,
                local,
                rx_ns: now,
            })
            .is_err()
        {
            // The owner's inbox is full: the reply is lost to it.
            let t = self.type_of(&r);
            self.stats.of(t).invalid += 1;
        }
    }

    fn handle(&mut self, r: Reply, local: u64, now: u64) {
        let Some(slot) = self.slot_of(local) else {
            let t = self.type_of(&r);
            self.stats.of(t).invalid += 1;
            return;
        };
        let c = self.clients[slot];
        if c.state == St::Empty || c.local != local || c.xid != r.xid {
            if c.state != St::Empty && c.local == local && c.prev_xid == Some(r.xid) {
                // Answers an exchange this client gave up on (reused).
                self.stats.late += 1;
                return;
            }
            let t = if c.state == St::Empty {
                self.type_of(&r)
            } else {
                c.kind
            };
            self.stats.of(t).invalid += 1;
            return;
        }
        let latency = now.saturating_sub(c.first_ns);
        match (c.state, r.msg_type) {
            (St::Selecting, frame::OFFER) => {
                self.stats.of(ExType::DiscoverOffer).answer(latency);
                if self.discover_only {
                    // The exchange is complete; the client is done (idle)
                    // until it is reused.
                    let c = &mut self.clients[slot];
                    c.state = St::Idle;
                    c.gen = c.gen.wrapping_add(1);
                    self.outstanding -= 1;
                    return;
                }
                let server_id = if r.server_id == [0; 4] {
                    r.src_ip
                } else {
                    r.server_id
                };
                let gen = c.gen.wrapping_add(1);
                let c = &mut self.clients[slot];
                c.addr = r.yiaddr;
                c.server_id = server_id;
                c.server_mac = r.src_mac;
                c.state = St::Requesting;
                c.kind = ExType::RequestAck;
                c.tries = 0;
                c.gen = gen;
                self.pending.push(Pending {
                    slot: slot as u32,
                    gen,
                    what: Tx::First,
                });
            }
            (St::Requesting | St::Renewing | St::Rebinding, frame::ACK) => {
                let t = c.kind;
                self.stats.of(t).answer(latency);
                if c.state == St::Requesting {
                    self.stats.dora_completed += 1;
                }
                let g32 = self.global(local) as u32;
                if let AckOutcome::Duplicate { .. } =
                    self.shared.table.ack(u32::from_be_bytes(r.yiaddr), g32)
                {
                    self.stats.of(t).duplicates += 1;
                }
                self.record(slot, now, r.yiaddr, Outcome::Ack, r.lease_secs);
                let c = &mut self.clients[slot];
                c.addr = r.yiaddr;
                if r.server_id != [0; 4] {
                    c.server_id = r.server_id;
                }
                c.server_mac = r.src_mac;
                c.state = St::Bound;
                c.gen = c.gen.wrapping_add(1);
                self.outstanding -= 1;
            }
            (St::Requesting | St::Renewing | St::Rebinding, frame::NAK) => {
                self.stats.of(c.kind).naks += 1;
                self.record(slot, now, c.addr, Outcome::Nak, 0);
                if c.state != St::Requesting {
                    let g32 = self.global(local) as u32;
                    self.shared.table.release(u32::from_be_bytes(c.addr), g32);
                }
                let c = &mut self.clients[slot];
                c.state = St::Idle;
                c.gen = c.gen.wrapping_add(1);
                self.outstanding -= 1;
            }
            _ => self.stats.late += 1,
        }
    }

    /// Logs how the exchange in `slot` ended (when asked to).
    fn record(&mut self, slot: usize, now: u64, addr: [u8; 4], outcome: Outcome, lease_secs: u32) {
        if !self.cfg().log_exchanges {
            return;
        }
        let c = self.clients[slot];
        let client = self.global(c.local);
        self.exchanges.push(ExchangeRecord {
            start_ns: c.first_ns,
            end_ns: now,
            kind: c.kind,
            client,
            addr,
            outcome,
            lease_secs,
        });
    }

    /// Counts the exchange in `slot` lost and resolves it.
    fn lose(&mut self, slot: usize) {
        let now = self.shared.now_ns();
        let addr = self.clients[slot].addr;
        self.record(slot, now, addr, Outcome::Lost, 0);
        let c = &mut self.clients[slot];
        self.stats.types[c.kind.index()].lost += 1;
        c.state = match c.state {
            St::Renewing | St::Rebinding => St::Bound,
            _ => St::Idle,
        };
        c.gen = c.gen.wrapping_add(1);
        self.outstanding -= 1;
    }

    fn lose_all(&mut self) {
        for i in 0..self.clients.len() {
            if self.clients[i].state.outstanding() {
                self.lose(i);
            }
        }
    }

    fn timers(&mut self, now: u64) {
        let max_tries = self.cfg().tries;
        let drop_ns = self.cfg().drop_ns;
        while let Some(t) = self.rto_q.front().copied() {
            if t.due > now {
                break;
            }
            self.rto_q.pop_front();
            let c = &self.clients[t.slot as usize];
            if c.gen == t.gen
                && c.state.outstanding()
                && c.tries < max_tries
                && now < c.first_ns + drop_ns
            {
                self.pending.push(Pending {
                    slot: t.slot,
                    gen: t.gen,
                    what: Tx::Retransmit,
                });
            }
        }
        while let Some(t) = self.drop_q.front().copied() {
            if t.due > now {
                break;
            }
            self.drop_q.pop_front();
            let c = &self.clients[t.slot as usize];
            if c.gen == t.gen && c.state.outstanding() {
                self.lose(t.slot as usize);
            }
        }
    }

    /// Starts a four-way exchange for client `local` in `slot`.
    fn begin_dora(&mut self, slot: usize, local: u64) {
        if self.clients[slot].state.outstanding() {
            self.lose(slot);
        }
        let xid = self.xid();
        let c = &mut self.clients[slot];
        c.prev_xid = (c.state != St::Empty && c.local == local).then_some(c.xid);
        c.local = local;
        c.xid = xid;
        c.state = St::Selecting;
        c.kind = ExType::DiscoverOffer;
        c.tries = 0;
        c.addr = [0; 4];
        c.gen = c.gen.wrapping_add(1);
        let gen = c.gen;
        self.outstanding += 1;
        self.pending.push(Pending {
            slot: slot as u32,
            gen,
            what: Tx::First,
        });
    }

    /// Starts one scheduled exchange of the timed phase.
    fn start(&mut self, a: Action) -> Start {
        match a {
            Action::Dora => {
                let limit = self.plan.fresh_limit;
                if limit == 0
                    || self.plan.ring == 0
                    || (self.fresh_started >= limit && !self.discover_only)
                {
                    return Start::Exhausted;
                }
                let k = self.fresh_started;
                self.fresh_started += 1;
                let slot = self.fixed + (k % self.plan.ring) as usize;
                self.begin_dora(slot, self.plan.fresh_base + k % limit);
                Start::Started
            }
            Action::Renew | Action::Rebind | Action::Release => {
                let Some(slot) = self.next_bound() else {
                    // Pure release runs end when everybody has released.
                    return if self.cfg().scenario == Scenario::Release || self.fixed == 0 {
                        Start::Exhausted
                    } else {
                        Start::Skipped
                    };
                };
                if self.clients[slot].state.outstanding() {
                    // Its previous renewal is still unanswered: superseded.
                    self.lose(slot);
                }
                if a == Action::Release {
                    let g32 = self.global(self.clients[slot].local) as u32;
                    let addr = u32::from_be_bytes(self.clients[slot].addr);
                    self.shared.table.release(addr, g32);
                    let c = &mut self.clients[slot];
                    c.state = St::Idle;
                    c.kind = ExType::Release;
                    c.gen = c.gen.wrapping_add(1);
                    let gen = c.gen;
                    self.pending.push(Pending {
                        slot: slot as u32,
                        gen,
                        what: Tx::Release,
                    });
                    return Start::Started;
                }
                let xid = self.xid();
                let c = &mut self.clients[slot];
                c.xid = xid;
                (c.state, c.kind) = if a == Action::Renew {
                    (St::Renewing, ExType::RenewAck)
                } else {
                    (St::Rebinding, ExType::RebindAck)
                };
                c.tries = 0;
                c.gen = c.gen.wrapping_add(1);
                let gen = c.gen;
                self.outstanding += 1;
                self.pending.push(Pending {
                    slot: slot as u32,
                    gen,
                    what: Tx::First,
                });
                Start::Started
            }
        }
    }

    /// The next fixed client (round-robin) that holds a lease.
    fn next_bound(&mut self) -> Option<usize> {
        for _ in 0..self.fixed {
            let slot = self.rr;
            self.rr = (self.rr + 1) % self.fixed;
            if matches!(
                self.clients[slot].state,
                St::Bound | St::Renewing | St::Rebinding
            ) {
                return Some(slot);
            }
        }
        None
    }

    /// Writes the frame for client `c` into `buf`.
    fn build(&self, c: &Client, what: Tx, buf: &mut [u8], now: u64) -> usize {
        let cfg = self.cfg();
        let g = self.global(c.local);
        let mac = client_mac(g);
        let secs = if what == Tx::First {
            0
        } else {
            (now.saturating_sub(c.first_ns) / 1_000_000_000).min(u64::from(u16::MAX)) as u16
        };
        let server_ip = cfg.server_ip.unwrap_or(c.server_id);
        let server_mac = cfg.server_mac.unwrap_or(c.server_mac);
        let mut s = FrameSpec::client(frame::REQUEST, c.xid, mac);
        s.client_id = cfg.client_id;
        s.secs = secs;
        match (what, c.state) {
            (Tx::Release, _) => {
                s.msg_type = frame::RELEASE;
                s.ciaddr = c.addr;
                s.ip_src = c.addr;
                s.ip_dst = server_ip;
                s.eth_dst = server_mac;
                s.server_id = Some(c.server_id);
            }
            (_, St::Selecting | St::Requesting) => {
                if c.state == St::Selecting {
                    s.msg_type = frame::DISCOVER;
                } else {
                    s.requested = Some(c.addr);
                    s.server_id = Some(c.server_id);
                }
                s.broadcast = cfg.broadcast_flag;
                if let Some((giaddr, relay_ip, relay_mac)) = cfg.relay {
                    s.eth_src = relay_mac;
                    s.eth_dst = server_mac;
                    s.ip_src = relay_ip;
                    s.ip_dst = server_ip;
                    s.src_port = frame::SERVER_PORT;
                    s.hops = 1;
                    s.giaddr = giaddr;
                    s.broadcast = false;
                    s.relay_subscriber = Some(g);
                }
            }
            (_, St::Renewing) => {
                s.ciaddr = c.addr;
                s.ip_src = c.addr;
                s.ip_dst = server_ip;
                s.eth_dst = server_mac;
            }
            (_, St::Rebinding) => {
                s.ciaddr = c.addr;
                s.ip_src = c.addr;
                s.ip_dst = BROADCAST_IP;
                s.eth_dst = BROADCAST_MAC;
            }
            _ => return 0,
        }
        frame::build(buf, &self.tmpl, &s)
    }

    fn after_send(&mut self, p: Pending, ok: bool, now: u64) {
        if !ok {
            // Counted as sent and left to the timers, like a frame lost on
            // the wire.
            self.stats.tx_errors += 1;
        }
        let c = &self.clients[p.slot as usize];
        let new_exchange = match p.what {
            Tx::First => c.kind != ExType::RequestAck,
            Tx::Release => true,
            Tx::Retransmit => false,
        };
        if ok && new_exchange {
            self.stats.sends.record(now);
        }
        let (rto, drop, max_tries) = (
            self.cfg().retransmit_ns,
            self.cfg().drop_ns,
            self.cfg().tries,
        );
        let c = &mut self.clients[p.slot as usize];
        match p.what {
            Tx::Release => {
                self.stats.types[ExType::Release.index()].sent += 1;
                return;
            }
            Tx::First => {
                c.first_ns = now;
                c.tries = 1;
                self.stats.types[c.kind.index()].sent += 1;
                self.drop_q.push_back(Timer {
                    slot: p.slot,
                    gen: p.gen,
                    due: now + drop,
                });
            }
            Tx::Retransmit => {
                c.tries += 1;
                self.stats.retransmits += 1;
            }
        }
        if c.tries < max_tries && now + rto < c.first_ns + drop {
            self.rto_q.push_back(Timer {
                slot: p.slot,
                gen: p.gen,
                due: now + rto,
            });
        }
    }
}

/// Splits `total` items over `threads` threads by index: thread `t` gets
/// indexes `t, t + T, t + 2T, …` below `total`.
pub fn share(total: u64, threads: usize, t: usize) -> u64 {
    let threads = threads as u64;
    let t = t as u64;
    if total <= t {
        0
    } else {
        (total - t).div_ceil(threads)
    }
}

/// Formats an IPv4 address from its octets (for messages).
pub fn ip(o: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::frame::{ACK, NAK, OFFER};
    use crate::loadgen::stats::Stats;
    use std::collections::VecDeque as Q;

    /// An in-memory socket: frames sent are kept, frames to receive are
    /// queued by the test (a scripted server).
    #[derive(Default)]
    struct Loop {
        sent: Vec<Vec<u8>>,
        inbox: Q<Vec<u8>>,
    }

    impl Io for Loop {
        fn recv(&mut self, mut f: impl FnMut(&[u8])) -> usize {
            let mut n = 0;
            while let Some(fr) = self.inbox.pop_front() {
                f(&fr);
                n += 1;
            }
            n
        }
        fn send(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> bool {
            let mut b = vec![0u8; 2048];
            let n = f(&mut b);
            b.truncate(n);
            self.sent.push(b);
            n > 0
        }
        fn flush(&mut self) {}
        fn wait(&mut self, _: u64) {}
    }

    fn cfg(scenario: Scenario) -> EngineConfig {
        EngineConfig {
            scenario,
            mix: Mix::only(Action::Renew),
            threads: 1,
            client_offset: 100,
            client_id: false,
            broadcast_flag: false,
            retransmit_ns: 1_000_000_000,
            tries: 3,
            drop_ns: 2_000_000_000,
            reply_port: 68,
            server_ip: None,
            server_mac: None,
            relay: None,
            log_exchanges: true,
        }
    }

    fn engine(scenario: Scenario, fixed: u64) -> Engine<Loop> {
        engine_with(scenario, fixed, 8, 4)
    }

    /// An engine with `fresh_limit` new clients and a ring of `ring` slots.
    fn engine_with(scenario: Scenario, fixed: u64, fresh_limit: u64, ring: u64) -> Engine<Loop> {
        let shared = Arc::new(Shared {
            cfg: cfg(scenario),
            clock: Instant::now(),
            wall0_ns: 0,
            table: Arc::new(AddrTable::new(100)),
            progress: vec![Progress::default()],
            ready: AtomicUsize::new(0),
            start_ns: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            sending_done: AtomicUsize::new(0),
            server_cpu: None,
            window_marks: None,
        });
        let plan = ThreadPlan {
            thread: 0,
            fixed,
            fresh_base: fixed,
            fresh_limit,
            ring,
            rate: 100.0,
            warmup_rate: 100.0,
            duration_ns: None,
            count: Some(8),
        };
        let (tx, rx) = crossbeam_channel::bounded(16);
        Engine::new(Loop::default(), shared, plan, rx, vec![tx])
    }

    /// A reply frame answering the request frame `req`.
    fn answer(req: &[u8], msg_type: u8, yiaddr: [u8; 4]) -> Vec<u8> {
        let mut f = req.to_vec();
        f[6..12].copy_from_slice(&[0x0e, 0, 0, 0, 0, 1]);
        f[26..30].copy_from_slice(&[198, 18, 0, 1]);
        f[34..38].copy_from_slice(&[0, 67, 0, 68]);
        let b = frame::BOOTP_OFF;
        f[b] = 2;
        f[b + 16..b + 20].copy_from_slice(&yiaddr);
        let o = frame::OPTIONS_OFF;
        f[o..o + 10].copy_from_slice(&[53, 1, msg_type, 54, 4, 198, 18, 0, 1, 255]);
        f
    }

    fn msg_type(f: &[u8]) -> u8 {
        f[frame::OPTIONS_OFF + 2]
    }

    #[test]
    fn dora_then_renew_then_nak_and_invalid() {
        let mut e = engine(Scenario::Renew, 2);
        // Warm-up-like DORA of fixed client 1.
        e.core.begin_dora(1, 1);
        e.transmit(10);
        assert_eq!(e.io.sent.len(), 1);
        let discover = e.io.sent.pop().unwrap();
        assert_eq!(msg_type(&discover), frame::DISCOVER);
        assert_eq!(&discover[6..12], &client_mac(101));
        e.io.inbox
            .push_back(answer(&discover, OFFER, [198, 18, 1, 5]));
        e.receive(1_000_010);
        assert_eq!(e.core.stats.of(ExType::DiscoverOffer).answered, 1);
        e.transmit(1_000_020);
        let request = e.io.sent.pop().unwrap();
        assert_eq!(msg_type(&request), frame::REQUEST);
        // The DISCOVER started an exchange; its REQUEST did not.
        assert_eq!(
            e.core.stats.sends,
            crate::loadgen::stats::SendTimes {
                count: 1,
                first_ns: 10,
                last_ns: 10
            }
        );
        assert_eq!(&request[4..8], &discover[4..8]);
        // Same xid for the REQUEST (RFC 2131).
        assert_eq!(
            &request[frame::BOOTP_OFF + 4..frame::BOOTP_OFF + 8],
            &discover[frame::BOOTP_OFF + 4..frame::BOOTP_OFF + 8]
        );
        // A reply with a wrong xid is invalid; a late OFFER is late.
        let mut bad = answer(&request, ACK, [198, 18, 1, 5]);
        bad[frame::BOOTP_OFF + 4] ^= 1;
        e.io.inbox.push_back(bad);
        e.io.inbox
            .push_back(answer(&discover, OFFER, [198, 18, 1, 5]));
        e.io.inbox.push_back(answer(&request, ACK, [198, 18, 1, 5]));
        e.receive(3_000_000);
        let s: &Stats = &e.core.stats;
        assert_eq!(s.types[ExType::RequestAck.index()].invalid, 1);
        assert_eq!(s.late, 1);
        assert_eq!(s.types[ExType::RequestAck.index()].answered, 1);
        assert_eq!(s.dora_completed, 1);
        assert_eq!(e.core.outstanding, 0);
        // The ACK's latency is from the REQUEST's first transmission.
        assert_eq!(s.types[ExType::RequestAck.index()].hist.max() / 100, 19);

        // Renew: unicast from the lease to the server's MAC, ciaddr set.
        assert!(matches!(e.core.start(Action::Renew), Start::Started));
        e.transmit(4_000_000);
        let renew = e.io.sent.pop().unwrap();
        assert_eq!(&renew[0..6], &[0x0e, 0, 0, 0, 0, 1]);
        assert_eq!(e.core.stats.sends.count, 2);
        assert_eq!(e.core.stats.sends.last_ns, 4_000_000);
        assert_eq!(&renew[26..34], &[198, 18, 1, 5, 198, 18, 0, 1]);
        assert_eq!(
            &renew[frame::BOOTP_OFF + 12..frame::BOOTP_OFF + 16],
            &[198, 18, 1, 5]
        );
        e.io.inbox.push_back(answer(&renew, NAK, [0; 4]));
        e.receive(5_000_000);
        assert_eq!(e.core.stats.of(ExType::RenewAck).naks, 1);
        // The client lost its lease: nobody left to renew.
        assert!(matches!(e.core.start(Action::Renew), Start::Skipped));
        // The exchange log has the DORA's ACK and the renewal's NAK.
        let log: Vec<(ExType, [u8; 4], Outcome, u64)> = e
            .core
            .exchanges
            .iter()
            .map(|x| (x.kind, x.addr, x.outcome, x.client))
            .collect();
        assert_eq!(
            log,
            vec![
                (ExType::RequestAck, [198, 18, 1, 5], Outcome::Ack, 101),
                (ExType::RenewAck, [198, 18, 1, 5], Outcome::Nak, 101),
            ]
        );
        assert_eq!(e.core.exchanges[1].start_ns, 4_000_000);
    }

    #[test]
    fn retransmits_then_loses() {
        let mut e = engine(Scenario::Dora, 0);
        assert!(matches!(e.core.start(Action::Dora), Start::Started));
        e.transmit(0);
        e.core.timers(999_999_999);
        assert!(e.core.pending.is_empty());
        e.core.timers(1_000_000_000);
        assert_eq!(e.core.pending.len(), 1);
        e.transmit(1_000_000_000);
        assert_eq!(e.io.sent.len(), 2);
        assert_eq!(
            e.io.sent[0][frame::BOOTP_OFF + 4..frame::BOOTP_OFF + 8],
            e.io.sent[1][frame::BOOTP_OFF + 4..frame::BOOTP_OFF + 8]
        );
        assert_eq!(e.core.stats.retransmits, 1);
        // A retransmission is not a new exchange.
        assert_eq!(
            (e.core.stats.sends.count, e.core.stats.sends.last_ns),
            (1, 0)
        );
        // The third try would be at the drop time: not sent; lost at 2 s.
        e.core.timers(2_000_000_000);
        assert!(e.core.pending.is_empty());
        assert_eq!(e.core.stats.of(ExType::DiscoverOffer).lost, 1);
        assert_eq!(e.core.outstanding, 0);
        assert_eq!(e.core.exchanges.len(), 1);
        assert_eq!(e.core.exchanges[0].outcome, Outcome::Lost);
        // A reply now is late (nothing outstanding), not invalid.
        let f = answer(&e.io.sent[0].clone(), OFFER, [198, 18, 1, 9]);
        e.io.inbox.push_back(f);
        e.receive(2_100_000_000);
        assert_eq!(e.core.stats.late, 1);
    }

    #[test]
    fn fresh_clients_wrap_the_ring_and_run_out() {
        let mut e = engine(Scenario::Dora, 0);
        for _ in 0..8 {
            assert!(matches!(e.core.start(Action::Dora), Start::Started));
        }
        // Four ring slots: the first four were evicted while outstanding.
        assert_eq!(e.core.stats.of(ExType::DiscoverOffer).lost, 4);
        assert_eq!(e.core.outstanding, 4);
        assert!(matches!(e.core.start(Action::Dora), Start::Exhausted));
        e.transmit(0);
        assert_eq!(e.io.sent.len(), 4);
        // Client 0's slot now holds client 4 (a reply to 0 is invalid);
        // client 8 was never started.
        assert_eq!(e.core.slot_of(0), Some(0));
        assert_eq!(e.core.clients[0].local, 4);
        assert_eq!(e.core.slot_of(7), Some(3));
        assert_eq!(e.core.slot_of(8), None);
    }

    /// The client index (MAC) of a request frame.
    fn client_of(f: &[u8]) -> u64 {
        mac_index(f[6..12].try_into().unwrap()).unwrap()
    }

    #[test]
    fn discover_ends_at_the_offer_without_a_request() {
        let mut e = engine(Scenario::Discover, 0);
        assert_eq!(e.core.default_type, ExType::DiscoverOffer);
        assert!(matches!(e.core.start(Action::Dora), Start::Started));
        e.transmit(10);
        let discover = e.io.sent.pop().unwrap();
        assert_eq!(msg_type(&discover), frame::DISCOVER);
        assert_eq!(client_of(&discover), 100);
        assert_eq!(e.core.outstanding, 1);
        e.io.inbox
            .push_back(answer(&discover, OFFER, [198, 18, 1, 5]));
        e.receive(1_000_010);
        let offers = &e.core.stats.types[ExType::DiscoverOffer.index()];
        assert_eq!((offers.sent, offers.answered, offers.lost), (1, 1, 0));
        assert_eq!(offers.hist.max() / 100, 10, "latency from the DISCOVER");
        // No REQUEST follows; the client is done.
        e.transmit(1_000_020);
        assert!(e.io.sent.is_empty(), "sent {} frames", e.io.sent.len());
        assert_eq!(e.core.outstanding, 0);
        assert_eq!(e.core.clients[0].state, St::Idle);
        assert_eq!(e.core.stats.types[ExType::RequestAck.index()].sent, 0);
        assert_eq!(e.core.stats.dora_completed, 0);
        assert_eq!(e.core.stats.sends.count, 1);
        // Neither retransmitted nor lost when its timers come due.
        e.core.timers(5_000_000_000);
        assert!(e.core.pending.is_empty());
        assert_eq!(e.core.stats.of(ExType::DiscoverOffer).lost, 0);
        // A second OFFER (to a retransmission) is late; the progress line
        // counts the OFFER as the answer.
        e.io.inbox
            .push_back(answer(&discover, OFFER, [198, 18, 1, 5]));
        e.receive(5_000_000_000);
        assert_eq!(e.core.stats.late, 1);
        assert_eq!(e.core.stats.of(ExType::DiscoverOffer).answered, 1);
        let p = Progress::default();
        e.core.publish(&p);
        assert_eq!(p.sent.load(Ordering::Relaxed), 1);
        assert_eq!(p.answered.load(Ordering::Relaxed), 1);
        // In a DORA, the same OFFER is followed by a REQUEST.
        let mut d = engine(Scenario::Dora, 0);
        assert!(matches!(d.core.start(Action::Dora), Start::Started));
        d.transmit(10);
        let discover = d.io.sent.pop().unwrap();
        d.io.inbox
            .push_back(answer(&discover, OFFER, [198, 18, 1, 5]));
        d.receive(20);
        d.transmit(30);
        assert_eq!(msg_type(&d.io.sent.pop().unwrap()), frame::REQUEST);
        let p = Progress::default();
        d.core.publish(&p);
        assert_eq!(
            p.answered.load(Ordering::Relaxed),
            0,
            "a DORA ends at its ACK"
        );
    }

    #[test]
    fn discover_reuses_its_clients_round_robin() {
        // Three clients, a ring of four slots: the ring shrinks to three.
        let mut e = engine_with(Scenario::Discover, 0, 3, 4);
        assert_eq!(e.core.plan.ring, 3);
        let mut clients = Vec::new();
        for k in 0..8u64 {
            assert!(
                matches!(e.core.start(Action::Dora), Start::Started),
                "start {k}"
            );
            e.transmit(k * 1000);
            let d = e.io.sent.pop().unwrap();
            clients.push(client_of(&d));
            e.io.inbox.push_back(answer(&d, OFFER, [198, 18, 1, 5]));
            e.receive(k * 1000 + 500);
        }
        assert_eq!(clients, vec![100, 101, 102, 100, 101, 102, 100, 101]);
        let offers = &e.core.stats.types[ExType::DiscoverOffer.index()];
        assert_eq!((offers.sent, offers.answered), (8, 8));
        assert_eq!((offers.lost, offers.invalid), (0, 0));
        assert_eq!(e.core.outstanding, 0);

        // Reused before its OFFER came: the old exchange is lost, and its
        // OFFER, when it comes, is late, not invalid.
        assert!(matches!(e.core.start(Action::Dora), Start::Started));
        e.transmit(9_000);
        let first = e.io.sent.pop().unwrap();
        assert_eq!(client_of(&first), 102);
        for _ in 0..3 {
            assert!(matches!(e.core.start(Action::Dora), Start::Started));
        }
        e.transmit(10_000);
        let again = e.io.sent.pop().unwrap();
        assert_eq!(client_of(&again), 102);
        assert_eq!(e.core.stats.of(ExType::DiscoverOffer).lost, 1);
        e.io.inbox.push_back(answer(&first, OFFER, [198, 18, 1, 5]));
        e.io.inbox.push_back(answer(&again, OFFER, [198, 18, 1, 5]));
        e.receive(11_000);
        assert_eq!(e.core.stats.late, 1);
        assert_eq!(e.core.stats.of(ExType::DiscoverOffer).invalid, 0);
        assert_eq!(e.core.stats.of(ExType::DiscoverOffer).answered, 9);
        // Each client counted once, however often it sent.
        assert_eq!(e.core.fresh_started, 12);
        assert_eq!(e.core.fresh_started.min(e.core.plan.fresh_limit), 3);
    }

    #[test]
    fn reused_clients_are_found_with_a_ring_shorter_than_the_clients() {
        // Six clients over four slots: start k uses client k mod 6 and slot
        // k mod 4, and answers still find their client after the wrap.
        let mut e = engine_with(Scenario::Discover, 0, 6, 4);
        for _ in 0..9 {
            assert!(matches!(e.core.start(Action::Dora), Start::Started));
        }
        e.transmit(0);
        let sent: Vec<u64> = e.io.sent.iter().map(|f| client_of(f)).collect();
        // Frames of evicted exchanges are not sent (their slot moved on).
        assert_eq!(sent, vec![105, 100, 101, 102]);
        assert_eq!(e.core.slot_of(5), Some(1));
        assert_eq!(e.core.slot_of(0), Some(2));
        assert_eq!(e.core.slot_of(2), Some(0));
        assert_eq!(e.core.slot_of(6), None);
        let frames = std::mem::take(&mut e.io.sent);
        for f in &frames {
            e.io.inbox.push_back(answer(f, OFFER, [198, 18, 1, 5]));
        }
        e.receive(1_000);
        let offers = &e.core.stats.types[ExType::DiscoverOffer.index()];
        assert_eq!((offers.answered, offers.invalid), (4, 0));
        assert_eq!(offers.lost, 5);
        assert_eq!(e.core.outstanding, 0);
    }

    #[test]
    fn dora_does_not_reuse_its_clients() {
        let mut e = engine_with(Scenario::Dora, 0, 3, 4);
        for _ in 0..3 {
            assert!(matches!(e.core.start(Action::Dora), Start::Started));
        }
        assert!(matches!(e.core.start(Action::Dora), Start::Exhausted));
    }

    #[test]
    fn shares_split_indexes() {
        assert_eq!(
            (0..3).map(|t| share(10, 3, t)).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
        assert_eq!(share(1, 4, 2), 0);
        assert_eq!(share(8, 1, 0), 8);
    }
}
