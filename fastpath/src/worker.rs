//! The per-queue worker: one OS thread, pinned to one core, that moves
//! frames between its AF_XDP socket, the [`handler`](crate::handler) and the
//! control plane.
//!
//! The loop never awaits and never blocks on the control plane: requests and
//! write-behind events go out with `try_send`, and a full channel drops the
//! packet and counts it (the client retransmits). Decisions come back on the
//! worker's own reply channel; the control plane writes the worker's eventfd
//! after sending one so that an idle worker, asleep in `poll(2)` on its
//! socket and that eventfd, wakes at once instead of on a timer. Between
//! batches an idle worker spins, naps or sleeps by the recent frame rate
//! ([`crate::idle`]); a napping worker serves replies when the nap ends.
//!
//! Per batch the only syscalls are the TX kick (`sendto`), one ring of the
//! control plane's doorbell when the batch queued anything for it, and, when
//! there is nothing to do, the `poll` or the nap that puts the thread to
//! sleep.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::channel::{AllocReply, AllocRequest, FastEvent, FrameBuf};
use crate::config::FastConfig;
use crate::counters::{DropReason, WorkerCounters};
use crate::handler::{self, HandlerCtx, Verdict};
use crate::idle::{self, Idle, RateEstimate};
use crate::lease_map::LeaseMap;
use crate::xsk::{wait_readable, RxDesc, XskSocket};

/// Frames taken off the RX ring per batch.
const BATCH: usize = 64;
/// Queued write-behind events that make the worker ring the control plane.
const EVENT_BELL_BACKLOG: usize = 256;
/// How long an idle worker sleeps before re-checking its stop flag.
const IDLE_POLL_MS: i32 = 200;

/// A Linux eventfd used as a doorbell from the control plane to a worker.
#[derive(Debug)]
pub struct Doorbell(OwnedFd);

impl Doorbell {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain eventfd(2); the descriptor is owned right after.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor nobody else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes the worker (one 8-byte write).
    pub fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to an eventfd.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
    }

    /// Consumes the pending rings (non-blocking).
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes into a live u64; non-blocking.
        unsafe {
            libc::read(
                self.0.as_raw_fd(),
                &mut v as *mut u64 as *mut libc::c_void,
                8,
            )
        };
    }

    pub fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// What a worker shares with the control plane for its whole life.
#[derive(Debug)]
pub struct WorkerShared {
    pub id: u16,
    pub counters: WorkerCounters,
    pub doorbell: Doorbell,
    stop: AtomicBool,
    /// The worker is (about to be) asleep in poll(2) and needs the doorbell
    /// to see a reply; a spinning or napping worker finds replies itself, so
    /// ringing it would only cost two syscalls.
    listening: AtomicBool,
    /// A new configuration (a reload) for the worker to take before its
    /// next frame; `cfg_waiting` says one is there, so the worker looks at
    /// one atomic per turn and takes the lock only after a reload.
    next_cfg: Mutex<Option<Arc<FastConfig>>>,
    cfg_waiting: AtomicBool,
    /// The worker's queue and a second handle on its AF_XDP socket, for
    /// reading the kernel's drop counters off the worker's thread.
    socket: std::sync::OnceLock<(u32, std::os::fd::OwnedFd)>,
}

impl WorkerShared {
    pub fn new(id: u16) -> io::Result<Self> {
        Ok(Self {
            id,
            counters: WorkerCounters::default(),
            doorbell: Doorbell::new()?,
            stop: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            next_cfg: Mutex::new(None),
            cfg_waiting: AtomicBool::new(false),
            socket: std::sync::OnceLock::new(),
        })
    }

    /// Records the worker's queue and socket (once, before it starts).
    pub fn watch_socket(&self, queue: u32, fd: std::os::fd::OwnedFd) {
        let _ = self.socket.set((queue, fd));
    }

    /// The worker's queue and its AF_XDP socket's kernel statistics (a
    /// getsockopt: for reports, never on the packet path).
    pub fn socket_statistics(&self) -> Option<(u32, libc::xdp_statistics)> {
        use std::os::fd::AsFd;
        let (queue, fd) = self.socket.get()?;
        Some((*queue, crate::xsk::statistics_of(fd.as_fd())?))
    }

    /// Gives the worker a new configuration (a reload): it answers every
    /// frame it takes after this with `cfg`. Nothing is dropped meanwhile.
    pub fn reconfigure(&self, cfg: Arc<FastConfig>) {
        if let Ok(mut next) = self.next_cfg.lock() {
            *next = Some(cfg);
        }
        self.cfg_waiting.store(true, Ordering::Release);
    }

    /// The configuration a reload left for the worker, if any.
    fn take_config(&self) -> Option<Arc<FastConfig>> {
        // A plain load each turn: the line stays shared in every cache
        // until a reload writes it (a swap each turn would write it).
        if !self.cfg_waiting.load(Ordering::Relaxed)
            || !self.cfg_waiting.swap(false, Ordering::Acquire)
        {
            return None;
        }
        self.next_cfg.lock().ok().and_then(|mut next| next.take())
    }

    /// Tells the worker that replies were queued for it: rings the doorbell
    /// only if the worker sleeps in poll(2). Call after queueing.
    pub fn wake(&self) {
        // Pairs with the fence in `Worker::sleep_until_readable`: either
        // the worker sees the queued reply before it sleeps, or this sees
        // it listening and rings.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.listening.load(Ordering::SeqCst) {
            self.doorbell.ring();
        }
    }

    /// Asks the worker to finish its current batch and exit.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.doorbell.ring();
    }
}

/// Everything a worker thread owns.
pub struct Worker {
    pub socket: XskSocket,
    pub cfg: Arc<FastConfig>,
    pub leases: Arc<LeaseMap>,
    pub shared: Arc<WorkerShared>,
    /// Core to pin to (`None`: leave it to the scheduler).
    pub core: Option<usize>,
    pub to_control: Sender<AllocRequest>,
    pub events: Sender<FastEvent>,
    pub replies: Receiver<AllocReply>,
    /// The control plane's doorbell, rung once per batch that queued
    /// anything for it (not once per message).
    pub control_bell: Arc<Doorbell>,
    /// Something was queued for the control plane since the last ring.
    pub bell_pending: bool,
    /// How long an idle worker spins, at most, when frames come fast.
    pub idle_spin: Duration,
    /// How long an idle worker naps, at most, to serve frames in batches
    /// when they come steadily (see [`crate::idle`]).
    pub coalesce: Duration,
}

impl Worker {
    /// Starts the worker on its own thread.
    pub fn spawn(self) -> io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("irondhcp-q{}", self.shared.id))
            .spawn(move || self.run())
    }

    fn run(mut self) {
        if let Some(core) = self.core {
            if let Err(e) = pin_to_core(core) {
                tracing::warn!(worker = self.shared.id, core, error = %e, "could not pin worker to core");
            }
        }
        tracing::info!(worker = self.shared.id, queue = self.socket.queue, core = ?self.core, "worker started");
        let mut descs = [RxDesc::default(); BATCH];
        let mut idle_since: Option<Instant> = None;
        let mut rate = RateEstimate::new(Instant::now());
        while !self.shared.stop.load(Ordering::Acquire) {
            if let Some(cfg) = self.shared.take_config() {
                self.cfg = cfg;
                tracing::info!(
                    worker = self.shared.id,
                    "worker took the reloaded configuration"
                );
            }
            let now = crate::unix_now();
            let n = self.socket.poll_rx(&mut descs);
            for d in &descs[..n] {
                self.handle_frame(d, now);
            }
            if n > 0 {
                self.socket.recycle_rx(&descs[..n]);
            }
            let replies = self.send_decisions();
            self.socket.flush_tx();
            if std::mem::take(&mut self.bell_pending) {
                self.control_bell.ring();
            }
            let now = Instant::now();
            if n > 0 || replies > 0 {
                rate.record((n + replies) as u32, now);
                idle_since = None;
                if n == BATCH {
                    // More is waiting: no idling at all.
                    continue;
                }
            }
            // Nothing more to do now: spin, nap or sleep, by the recent
            // frame rate (crate::idle).
            match idle::policy(rate.gap(now), self.idle_spin, self.coalesce) {
                Idle::Spin(budget) => {
                    let since = *idle_since.get_or_insert(now);
                    if now.duration_since(since) < budget {
                        std::hint::spin_loop();
                        continue;
                    }
                    idle_since = None;
                    self.sleep_until_readable();
                }
                Idle::Nap(d) => {
                    self.socket.reap_completions();
                    std::thread::sleep(d);
                }
                Idle::Sleep => self.sleep_until_readable(),
            }
        }
        tracing::info!(worker = self.shared.id, "worker stopped");
    }

    /// Sleeps in poll(2) until a frame or a doorbell comes (or the stop
    /// flag's re-check is due).
    fn sleep_until_readable(&mut self) {
        self.socket.reap_completions();
        self.shared.listening.store(true, Ordering::SeqCst);
        // A reply queued before the flag went up got no ring: look again
        // (pairs with the fence in `WorkerShared::wake`).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.replies.is_empty() {
            wait_readable(
                &[self.socket.fd(), self.shared.doorbell.raw_fd()],
                IDLE_POLL_MS,
            );
        }
        self.shared.listening.store(false, Ordering::SeqCst);
        self.shared.doorbell.drain();
    }

    fn handle_frame(&mut self, d: &RxDesc, now: u64) {
        let counters = &self.shared.counters;
        WorkerCounters::bump(&counters.rx_frames);
        let Some(tx_addr) = self.socket.alloc_tx() else {
            counters.drop(DropReason::TxFull);
            return;
        };
        let (rx, tx) = self.socket.rx_and_tx(d, tx_addr);
        let ctx = HandlerCtx {
            cfg: &self.cfg,
            leases: &self.leases,
            counters,
        };
        match handler::handle(&ctx, rx, now, tx) {
            Verdict::Reply {
                len,
                msg_type,
                event,
            } => {
                if let Some(ev) = event {
                    if self.events.try_send(ev).is_err() {
                        // Without the write-behind the extension could be
                        // lost, so the ACK must not go out.
                        counters.drop(DropReason::EventBusy);
                        self.socket.free_tx(tx_addr);
                        return;
                    }
                    note_event(&self.events, &mut self.bell_pending);
                }
                WorkerCounters::bump(&counters.answered_from_map);
                self.transmit(tx_addr, len, msg_type);
            }
            Verdict::Event(ev) => {
                self.socket.free_tx(tx_addr);
                if self.events.try_send(ev).is_err() {
                    counters.drop(DropReason::EventBusy);
                } else {
                    note_event(&self.events, &mut self.bell_pending);
                }
            }
            Verdict::Control(meta) => {
                let frame = FrameBuf::copy_from(rx);
                self.socket.free_tx(tx_addr);
                let Some(frame) = frame else {
                    counters.drop(DropReason::BadFrame);
                    return;
                };
                let req = AllocRequest {
                    worker: self.shared.id,
                    kind: meta.kind,
                    subnet: meta.subnet,
                    client_key: meta.client_key,
                    hw_addr: meta.hw_addr,
                    requested: meta.requested,
                    frame,
                };
                match self.to_control.try_send(req) {
                    Ok(()) => {
                        WorkerCounters::bump(&counters.to_control);
                        self.bell_pending = true;
                    }
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        counters.drop(DropReason::ControlBusy)
                    }
                }
            }
            Verdict::Drop(reason) => {
                self.socket.free_tx(tx_addr);
                counters.drop(reason);
            }
        }
    }

    /// Builds and queues the replies for decisions the control plane made.
    fn send_decisions(&mut self) -> usize {
        let mut sent = 0;
        while let Ok(rep) = self.replies.try_recv() {
            sent += 1;
            let counters = &self.shared.counters;
            let Some(tx_addr) = self.socket.alloc_tx() else {
                counters.drop(DropReason::TxFull);
                continue;
            };
            let ctx = HandlerCtx {
                cfg: &self.cfg,
                leases: &self.leases,
                counters,
            };
            let tx = self.socket.tx_buf(tx_addr);
            match handler::build_decision_reply(&ctx, rep.frame.as_slice(), rep.decision, tx) {
                Ok((len, msg_type)) => self.transmit(tx_addr, len, msg_type),
                Err(reason) => {
                    self.socket.free_tx(tx_addr);
                    self.shared.counters.drop(reason);
                }
            }
        }
        sent
    }

    fn transmit(&mut self, tx_addr: u64, len: usize, msg_type: u8) {
        let counters = &self.shared.counters;
        if self.socket.submit_tx(tx_addr, len) {
            WorkerCounters::bump(&counters.tx_frames);
            counters.sent_type(msg_type);
        } else {
            counters.drop(DropReason::TxFull);
        }
    }
}

/// Highest core number a `cpu_set_t` can name (libc's CPU_SET panics past it).
const MAX_CORES: usize = 8 * std::mem::size_of::<libc::cpu_set_t>();

fn check_cores(cores: &[usize]) -> io::Result<()> {
    match cores.iter().find(|c| **c >= MAX_CORES) {
        Some(c) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "core {c} is past the largest CPU number ({})",
                MAX_CORES - 1
            ),
        )),
        None => Ok(()),
    }
}

/// The cores this process may run on (its affinity mask).
pub fn allowed_cores() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it, and
    // CPU_ISSET is only asked about indexes inside the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..MAX_CORES)
            .filter(|c| libc::CPU_ISSET(*c, &set))
            .collect())
    }
}

/// Restricts the calling thread (and the threads it spawns later) to
/// `cores`.
pub fn pin_to_cores(cores: &[usize]) -> io::Result<()> {
    check_cores(cores)?;
    // SAFETY: cpu_set_t is plain data; every core was checked to fit it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for c in cores {
            libc::CPU_SET(*c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Write-behind events are not urgent (the control plane also drains them on
/// its write-behind timer): ring for them only once a backlog builds up, so a
/// renewal storm does not wake the control plane for every batch and take CPU
/// from everything else.
fn note_event(events: &Sender<FastEvent>, bell_pending: &mut bool) {
    if events.len() >= EVENT_BELL_BACKLOG {
        *bell_pending = true;
    }
}

/// Pins the calling thread to `core`.
pub fn pin_to_core(core: usize) -> io::Result<()> {
    check_cores(&[core])?;
    // SAFETY: cpu_set_t is plain data; the core was checked to fit it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
