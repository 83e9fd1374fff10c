//! `irondhcp-loadgen`: a DHCPv4 client simulator that can saturate a DHCP
//! server, and reports latency percentiles per exchange type.
//!
//! * [`cli`]: flags and their validation.
//! * [`scenario`]: scenarios, exchange types, `--mix`.
//! * [`frame`]: request frames written in place from a template.
//! * [`reply`]: the bounds-checked BOOTREPLY parser.
//! * [`pacer`]: open-loop rate control.
//! * [`engine`]: the per-thread loop (client state, timers, matching).
//! * [`addrtable`]: duplicate detection across threads.
//! * [`stats`]: counters, HDR histograms, the send phase as measured
//!   (achieved rate, generator-bound), the JSON report and the table.
//! * [`cpu`]: the server's CPU time from `/proc/PID/stat` (`--server-pid`).
//! * [`io`]: AF_XDP (our `XskSocket` + XDP program) or AF_PACKET.
//! * [`arp`]: server MAC resolution (relay) and the ARP responder for the
//!   simulated clients' addresses.
//!
//! [`run`] wires them: it loads the XDP program on the interface steering
//! the replies ([`reply_steering`]), opens one socket per thread, starts
//! the threads, prints a progress line once a second, and merges the
//! threads' statistics into a [`stats::Report`].

pub mod addrtable;
pub mod arp;
pub mod cli;
pub mod cpu;
pub mod engine;
pub mod exlog;
pub mod frame;
pub mod io;
pub mod marks;
pub mod pacer;
pub mod reply;
pub mod scenario;
pub mod stats;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use crossbeam_channel::{bounded, Receiver, Sender};
use irondhcp_xdp_loader::{SteerConfig, XdpMode, XdpProgram};

use self::addrtable::AddrTable;
use self::cli::{Args, IoKind, XdpModeArg};
use self::engine::{
    share, Engine, EngineConfig, Forwarded, Progress, Shared, ThreadPlan, ThreadResult,
};
use self::io::{Io, PacketIo, XdpIo};
use self::scenario::{Action, ExType, Mix, Scenario};
use self::stats::{ReportHead, Stats};

pub use self::stats::Report;

/// Set by SIGINT: end the send phase now and report what was measured.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Whether the user asked to stop (Ctrl-C once; twice kills).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

fn catch_sigint() {
    // SAFETY: installs an async-signal-safe handler (one atomic store);
    // SA_RESETHAND makes a second Ctrl-C terminate as usual.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as usize;
        sa.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}

/// What the XDP program steers to the generator's sockets: replies to the
/// `reply_port`. As clients, replies go to each simulated client's own MAC
/// (or broadcast) and to any address of the server's pool, so neither is
/// checked. As a relay (`relay`: giaddr, relay IP, relay MAC), replies go to
/// the relay's MAC and its giaddr; the relay IP is steered too.
fn reply_steering(reply_port: u16, relay: Option<([u8; 4], [u8; 4], [u8; 6])>) -> SteerConfig {
    match relay {
        Some((giaddr, relay_ip, relay_mac)) => SteerConfig {
            port: reply_port,
            mac: Some(relay_mac),
            ips: Some(vec![giaddr.into(), relay_ip.into()]),
        },
        None => SteerConfig {
            port: reply_port,
            mac: None,
            ips: None,
        },
    }
}

/// Runs the load described by `args` and returns its report.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    args.validate().map_err(anyhow::Error::msg)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("irondhcp-loadgen needs root (raw AF_XDP/AF_PACKET sockets, loading XDP, promiscuous mode)");
    }
    let ifindex = io::ifindex(&args.iface)?;
    let iface_mac =
        io::iface_mac(&args.iface).with_context(|| format!("reading the MAC of {}", args.iface))?;
    if args.io == IoKind::Xdp {
        if let Some(q) = io::rx_queues(&args.iface) {
            if (args.threads as u32) > q {
                bail!(
                    "--threads {} needs {} RX queues but {} has {q} (thread i uses queue i; see `ethtool -l {}`)",
                    args.threads,
                    args.threads,
                    args.iface,
                    args.iface
                );
            }
        }
    }
    // UMEM is pinned memory.
    let _ = irondhcp_fastpath::xsk::raise_memlock_limit();

    let relay = args.scenario == Scenario::Relay;
    let reply_port = if relay {
        frame::SERVER_PORT
    } else {
        frame::CLIENT_PORT
    };
    let mix = match args.scenario {
        Scenario::Dora | Scenario::Discover | Scenario::Relay => Mix::only(Action::Dora),
        Scenario::Renew => Mix::only(Action::Renew),
        Scenario::Rebind => Mix::only(Action::Rebind),
        Scenario::Release => Mix::only(Action::Release),
        Scenario::Mixed => args.mix,
    };
    let fixed_total = args.fixed_clients();
    let planned = args.planned_exchanges();
    // Nothing is ACKed in a DISCOVER flood: no address to remember.
    let acked = if args.scenario.discover_only() {
        0
    } else {
        fixed_total + planned
    };
    let table = Arc::new(AddrTable::new(acked));

    // The ARP socket also keeps the interface promiscuous for the run.
    let arp = arp::ArpResponder::start(ifindex, table.clone(), !args.no_arp)
        .context("opening the ARP socket")?;

    let mut server_mac = args.server_mac;
    let relay_cfg = if relay {
        let (giaddr, relay_ip, server) = (
            args.giaddr.expect("validated").octets(),
            args.relay_ip.expect("validated").octets(),
            args.server.expect("validated").octets(),
        );
        if server_mac.is_none() {
            server_mac =
                arp::resolve(ifindex, iface_mac, relay_ip, server).context("ARP for the server")?;
            if server_mac.is_none() {
                bail!(
                    "the server {} does not answer ARP from {} on {}; give --server-mac",
                    engine::ip(server),
                    engine::ip(relay_ip),
                    args.iface
                );
            }
        }
        Some((giaddr, relay_ip, iface_mac))
    } else {
        None
    };

    catch_sigint();
    let threads = args.threads;
    let cfg = EngineConfig {
        scenario: args.scenario,
        mix,
        threads,
        client_offset: args.client_offset,
        client_id: args.client_id,
        broadcast_flag: args.broadcast_flag,
        retransmit_ns: args.retransmit_ms * 1_000_000,
        tries: args.tries,
        drop_ns: args.drop_time_ms * 1_000_000,
        reply_port,
        server_ip: args.server.map(|s| s.octets()),
        server_mac,
        relay: relay_cfg,
        log_exchanges: args.exchange_log.is_some(),
    };
    let shared = Arc::new(Shared {
        cfg,
        clock: Instant::now(),
        wall0_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        table,
        progress: (0..threads).map(|_| Progress::default()).collect(),
        ready: AtomicUsize::new(0),
        start_ns: AtomicU64::new(0),
        finished: AtomicUsize::new(0),
        sending_done: AtomicUsize::new(0),
        server_cpu: args.server_pid.map(cpu::CpuProbe::new),
        window_marks: args.window_marks.clone().map(marks::WindowMarks::new),
    });
    let plans = plans(args, &mix, fixed_total);

    let mut inboxes: Vec<Receiver<Forwarded>> = Vec::new();
    let mut senders: Vec<Sender<Forwarded>> = Vec::new();
    for _ in 0..threads {
        let (tx, rx) = bounded(65_536);
        senders.push(tx);
        inboxes.push(rx);
    }

    // Sockets first (errors are reported before any thread starts).
    let mut xdp: Option<XdpProgram> = None;
    let mut handles: Vec<JoinHandle<ThreadResult>> = Vec::new();
    match args.io {
        IoKind::Xdp => {
            let mode = match args.xdp_mode {
                XdpModeArg::Native => XdpMode::Native,
                XdpModeArg::Generic => XdpMode::Generic,
                XdpModeArg::Auto => XdpMode::Auto,
            };
            let steer = reply_steering(reply_port, relay_cfg);
            let mut prog = XdpProgram::load(&args.iface, mode, &steer)
                .with_context(|| format!("loading the XDP program on {}", args.iface))?;
            let mut socks = Vec::new();
            for q in 0..threads as u32 {
                let s = XdpIo::open(&args.iface, q).with_context(|| {
                    format!("opening an AF_XDP socket on {} queue {q}", args.iface)
                })?;
                prog.register_socket(q, s.fd())?;
                socks.push(s);
            }
            xdp = Some(prog);
            for (s, (plan, inbox)) in socks.into_iter().zip(plans.into_iter().zip(inboxes)) {
                handles.push(spawn(s, &shared, plan, inbox, &senders, args)?);
            }
        }
        IoKind::Packet => {
            let group = (std::process::id() & 0xffff) as u16;
            let mut socks = Vec::new();
            for _ in 0..threads {
                socks.push(
                    PacketIo::open(ifindex, group).with_context(|| {
                        format!("opening an AF_PACKET socket on {}", args.iface)
                    })?,
                );
            }
            for (s, (plan, inbox)) in socks.into_iter().zip(plans.into_iter().zip(inboxes)) {
                handles.push(spawn(s, &shared, plan, inbox, &senders, args)?);
            }
        }
    }
    drop(senders);

    progress_loop(&shared, &handles, args, fixed_total);
    let mut results = Vec::new();
    for h in handles {
        results.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("a load generator thread panicked"))?,
        );
    }
    drop(xdp);
    arp.stop();

    if let Some(path) = &args.exchange_log {
        exlog::write(path, shared.wall0_ns, &results)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut total = Stats::default();
    let mut warm = Stats::default();
    let mut bound = 0;
    let mut fresh = 0;
    let mut send_end = 0;
    let mut early = false;
    let mut rx_dropped = Some(0u64);
    for r in &results {
        rx_dropped = rx_dropped.zip(r.rx_dropped).map(|(a, b)| a + b);
        total.merge(&r.stats);
        warm.merge(&r.warm);
        bound += r.bound_after_warmup;
        fresh += r.fresh_used;
        send_end = send_end.max(r.send_end_ns);
        early |= r.ended_early;
    }
    let start = shared.start_ns.load(Ordering::Acquire);
    let actual = send_end.saturating_sub(start) as f64 / 1e9;
    // Rates divide by the send phase as measured from the send times; this
    // length is used only when too few exchanges went out to measure one.
    let fallback_s = match args.duration_s() {
        Some(d) if !early => d,
        _ => actual,
    };
    if fixed_total > 0 && !args.quiet {
        let w = &warm.types;
        eprintln!(
            "warm-up: {bound} of {fixed_total} clients bound (lost {} DISCOVER, {} REQUEST; {} NAKs)",
            w[ExType::DiscoverOffer.index()].lost,
            w[ExType::RequestAck.index()].lost,
            w[ExType::RequestAck.index()].naks
        );
    }
    if early && !args.quiet {
        if interrupted() {
            eprintln!("note: interrupted: the send phase ended after {actual:.2} s");
        } else {
            eprintln!("note: the send phase ended early after {actual:.2} s: no client left to use (see --clients)");
        }
    }
    let mut types = match args.scenario {
        Scenario::Dora | Scenario::Relay => vec![ExType::DiscoverOffer, ExType::RequestAck],
        Scenario::Discover => vec![ExType::DiscoverOffer],
        Scenario::Renew => vec![ExType::RenewAck],
        Scenario::Rebind => vec![ExType::RebindAck],
        Scenario::Release => vec![ExType::Release],
        Scenario::Mixed => mix.types(),
    };
    // Unexpected traffic shows up under its type too.
    for t in ExType::ALL {
        let s = &total.types[t.index()];
        if !types.contains(&t) && (s.sent > 0 || s.invalid > 0) {
            types.push(t);
        }
    }
    let head = ReportHead {
        scenario: args.scenario.name().to_owned(),
        io: args.io.name().to_owned(),
        rate: args.rate,
        nominal_duration_s: args.duration_s(),
        clients: fixed_total + fresh,
    };
    let mut report = total.report(head, &types, fallback_s);
    report.rx_dropped = rx_dropped;
    if let Some(probe) = &shared.server_cpu {
        report.server_cpu = probe.result(report.exchanges_done());
        if report.server_cpu.is_none() {
            eprintln!(
                "warning: could not read /proc/{}/stat at both ends of the send phase (did the server exit?)",
                probe.pid
            );
        }
    }
    if report.generator_bound && !args.quiet {
        eprintln!(
            "note: generator-bound: sent {:.0}/s of the {:.0}/s offered; the figures measure this generator, not the server (try --threads, or a lower --rate)",
            report.achieved_rate, args.rate
        );
    }
    Ok(report)
}

fn spawn<I: Io + Send + 'static>(
    io: I,
    shared: &Arc<Shared>,
    plan: ThreadPlan,
    inbox: Receiver<Forwarded>,
    senders: &[Sender<Forwarded>],
    args: &Args,
) -> anyhow::Result<JoinHandle<ThreadResult>> {
    let core = (!args.cores.is_empty()).then(|| args.cores[plan.thread % args.cores.len()]);
    let shared = shared.clone();
    let senders = senders.to_vec();
    let t = plan.thread;
    Ok(std::thread::Builder::new()
        .name(format!("loadgen-{t}"))
        .spawn(move || {
            if let Some(c) = core {
                if let Err(e) = irondhcp_fastpath::worker::pin_to_core(c) {
                    eprintln!("warning: could not pin thread {t} to core {c}: {e}");
                }
            }
            Engine::new(io, shared, plan, inbox, senders).run()
        })?)
}

/// Splits the run over the threads.
fn plans(args: &Args, mix: &Mix, fixed_total: u64) -> Vec<ThreadPlan> {
    let threads = args.threads;
    let fresh_base = fixed_total.div_ceil(threads as u64);
    let dora_share = f64::from(mix.weight(Action::Dora)) / {
        let m = mix;
        f64::from(
            m.weight(Action::Dora)
                + m.weight(Action::Renew)
                + m.weight(Action::Rebind)
                + m.weight(Action::Release),
        )
    };
    let rate_t = args.rate / threads as f64;
    (0..threads)
        .map(|t| {
            let count = args.count.map(|c| share(c, threads, t));
            // discover reuses its clients round-robin past the limit; dora
            // and relay end their send phase there.
            let fresh_limit = match args.scenario {
                Scenario::Dora | Scenario::Discover | Scenario::Relay => match args.clients {
                    Some(n) => share(n, threads, t),
                    None => u64::MAX,
                },
                Scenario::Mixed => u64::MAX,
                _ => 0,
            };
            // Every DORA alive within two drop times (DISCOVER then REQUEST;
            // one for a lone DISCOVER) at the offered rate, with room to
            // spare.
            let drops = if args.scenario.discover_only() {
                1.0
            } else {
                2.0
            };
            let ring = if dora_share > 0.0 {
                let live =
                    rate_t * dora_share * (drops * args.drop_time_ms as f64 / 1000.0 + 1.0) * 2.0;
                let mut r = (live.ceil() as u64).max(64).next_power_of_two();
                if let Some(c) = count {
                    r = r.min(c.max(1));
                }
                if fresh_limit != u64::MAX {
                    r = r.min(fresh_limit.max(1));
                }
                r
            } else {
                0
            };
            ThreadPlan {
                thread: t,
                fixed: share(fixed_total, threads, t),
                fresh_base,
                fresh_limit,
                ring,
                rate: rate_t,
                warmup_rate: args.warmup_rate / threads as f64,
                duration_ns: args.duration_s().map(|d| (d * 1e9) as u64),
                count,
            }
        })
        .collect()
}

/// Prints a progress line on stderr once a second until every thread ends.
fn progress_loop(
    shared: &Shared,
    handles: &[JoinHandle<ThreadResult>],
    args: &Args,
    fixed_total: u64,
) {
    let mut last_tick = Instant::now();
    let mut last_sent = 0u64;
    let mut last_t = 0.0f64;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        if args.quiet || last_tick.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_tick = Instant::now();
        let p = &shared.progress;
        let start = shared.start_ns.load(Ordering::Acquire);
        let mut err = std::io::stderr().lock();
        if start == 0 || shared.now_ns() < start {
            // During the warm-up, "answered" counts REQUEST-ACKs: leases.
            let bound: u64 = p.iter().map(|x| x.answered.load(Ordering::Relaxed)).sum();
            let _ = writeln!(
                err,
                "warm-up: {:.0} s, {bound} of {fixed_total} clients bound",
                shared.clock.elapsed().as_secs_f64()
            );
            continue;
        }
        let t = (shared.now_ns() - start) as f64 / 1e9;
        let sent: u64 = p.iter().map(|x| x.sent.load(Ordering::Relaxed)).sum();
        let answered: u64 = p.iter().map(|x| x.answered.load(Ordering::Relaxed)).sum();
        let lost: u64 = p.iter().map(|x| x.lost.load(Ordering::Relaxed)).sum();
        let rate = if t > last_t {
            (sent - last_sent.min(sent)) as f64 / (t - last_t)
        } else {
            0.0
        };
        let _ = writeln!(
            err,
            "[{t:6.1} s] sent {sent} ({rate:.0}/s)  answered {answered}  lost {lost}"
        );
        last_sent = sent;
        last_t = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn plan_of(extra: &[&str]) -> Vec<ThreadPlan> {
        let mut v = vec!["irondhcp-loadgen", "--iface", "eth0"];
        v.extend_from_slice(extra);
        let args = Args::try_parse_from(v).unwrap();
        args.validate().unwrap();
        let mix = Mix::only(Action::Dora);
        plans(&args, &mix, args.fixed_clients())
    }

    #[test]
    fn a_discover_flood_plans_its_clients_for_reuse() {
        // 4,000 DISCOVERs from 500 clients over two threads: 250 each, and
        // a ring no longer than that (a reused client finds its slot).
        let p = plan_of(&[
            "--scenario",
            "discover",
            "--clients",
            "500",
            "--rate",
            "2000",
            "--duration",
            "2",
            "--threads",
            "2",
        ]);
        assert_eq!(p.len(), 2);
        for t in &p {
            assert_eq!((t.fixed, t.fresh_limit), (0, 250));
            assert!(t.ring >= 1 && t.ring <= 250, "ring {}", t.ring);
            assert_eq!(t.rate, 1000.0);
            assert_eq!(t.count, None);
        }
        // Without --clients: a new MAC for every DISCOVER, as for dora.
        let p = plan_of(&["--scenario", "discover", "--rate", "2000"]);
        assert_eq!(p[0].fresh_limit, u64::MAX);
        // A lone DISCOVER lives one drop time, a DORA two: a smaller ring.
        let dora = plan_of(&["--scenario", "dora", "--rate", "20000"]);
        let discover = plan_of(&["--scenario", "discover", "--rate", "20000"]);
        assert!(discover[0].ring < dora[0].ring);
    }
}
