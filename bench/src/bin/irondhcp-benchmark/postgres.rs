//! The cluster's figures (`--postgres`): irondhcp and Kea on the same
//! PostgreSQL, and 1, 2 and 3 irondhcp servers sharing one.
//!
//! Why a mode of its own: with a shared database the question is not only
//! how fast a server answers but what each lease costs the database, the
//! one part every server shares. So every PostgreSQL trial also reads,
//! over exactly the load generator's measured window (`--window-marks`),
//! the statements PostgreSQL ran for the trial's database
//! (`pg_stat_statements`, BEGIN and COMMIT included) and the CPU time of
//! every PostgreSQL process, and divides both by the exchanges completed.
//!
//! One PostgreSQL server and one Redis serve the whole run, in the
//! machine's namespace; daemons in the testbeds' namespaces reach both
//! over their Unix sockets. Every trial gets a database of its own, made
//! by the server's own migrations (irondhcp) or `kea-admin db-init pgsql`
//! (Kea), dropped after the trial.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use irondhcp_bench::loadgen::marks::WindowMarks;
use irondhcp_testkit::postgres::PgServer;
use irondhcp_testkit::redis::RedisServer;
use irondhcp_testkit::testbed::Testbed;
use serde_json::{json, Value};

use crate::kea::KeaStore;
use crate::search::{self, Scenario, Server};
use crate::{Args, Bins};

/// The PostgreSQL server and Redis of a run.
pub struct PgBench {
    pg: PgServer,
    redis: RedisServer,
    seq: AtomicU32,
}

impl PgBench {
    /// Starts PostgreSQL with `pg_stat_statements` loaded, and Redis.
    pub fn start() -> Result<Self> {
        let pg = PgServer::start_with(
            None,
            "127.0.0.1",
            &[
                "shared_preload_libraries=pg_stat_statements",
                "pg_stat_statements.track=all",
                "pg_stat_statements.max=10000",
            ],
        )
        .context("start PostgreSQL (cargo xtask setup installs it)")?;
        pg.query("postgres", "CREATE EXTENSION pg_stat_statements")
            .context("pg_stat_statements (package postgresql-contrib)")?;
        let redis = RedisServer::start().context("start redis-server")?;
        Ok(Self {
            pg,
            redis,
            seq: AtomicU32::new(0),
        })
    }

    /// A fresh database for one trial; for Kea with Kea's schema.
    pub fn database(&self, for_kea: bool) -> Result<TrialDb<'_>> {
        let name = format!("bench{}", self.seq.fetch_add(1, Ordering::Relaxed));
        self.pg.create_database(&name)?;
        let db = TrialDb { bench: self, name };
        if for_kea {
            let out = Command::new("kea-admin")
                .args(["db-init", "pgsql", "-u", "postgres", "-p", "unused"])
                .args(["-n", &db.name, "-h"])
                .arg(self.pg.socket_dir())
                .args(["-P", &self.pg.port().to_string()])
                .output()
                .context("run kea-admin (package kea-admin)")?;
            if !out.status.success() {
                bail!(
                    "kea-admin db-init pgsql failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(db)
    }

    /// The `[cluster]` table every irondhcp server of the run gets.
    pub fn cluster_toml(&self) -> String {
        format!("[cluster]\nredis_url = \"{}\"\n", self.redis.url())
    }
}

/// One trial's database, dropped with it.
pub struct TrialDb<'a> {
    bench: &'a PgBench,
    pub name: String,
}

/// What PostgreSQL had done at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgReading {
    /// Statements run in the trial's database.
    pub statements: u64,
    /// CPU time of every PostgreSQL process, µs.
    pub cpu_us: u64,
}

impl TrialDb<'_> {
    /// The URL irondhcp is given (the Unix socket).
    pub fn url(&self) -> String {
        self.bench.pg.socket_url(&self.name)
    }

    /// Where Kea finds it.
    pub fn kea_store(&self) -> KeaStore {
        KeaStore::Postgres {
            socket_dir: self.bench.pg.socket_dir().to_path_buf(),
            port: self.bench.pg.port(),
            name: self.name.clone(),
        }
    }

    /// Reads the counters. The query runs in the `postgres` database, so
    /// it is not counted; its backend's CPU time is (a few ms).
    pub fn read(&self) -> Result<PgReading> {
        let statements: u64 = self
            .bench
            .pg
            .query(
                "postgres",
                &format!(
                    "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s \
                     JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '{}'",
                    self.name
                ),
            )?
            .parse()
            .context("pg_stat_statements' sum")?;
        Ok(PgReading {
            statements,
            cpu_us: postgres_cpu_us(self.bench.pg.postmaster_pid()?),
        })
    }

    /// Runs `load` while watching for the generator's window marks at
    /// `marks`; returns what `load` returned and PostgreSQL's work over
    /// the window (None if the window never opened and closed).
    pub fn over_window<T>(
        &self,
        marks: &Path,
        load: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Option<(PgReading, PgReading)>)> {
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let watcher = s.spawn(|| -> Result<Option<(PgReading, PgReading)>> {
                let start = WindowMarks::path(marks, ".start");
                let end = WindowMarks::path(marks, ".end");
                let mut first = None;
                loop {
                    if first.is_none() && start.exists() {
                        first = Some(self.read()?);
                    }
                    if let Some(a) = first {
                        if end.exists() {
                            return Ok(Some((a, self.read()?)));
                        }
                    }
                    if done.load(Ordering::Acquire) {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            let out = load();
            done.store(true, Ordering::Release);
            let window = watcher
                .join()
                .map_err(|_| anyhow::anyhow!("the PostgreSQL watcher panicked"))??;
            Ok((out?, window))
        })
    }
}

impl Drop for TrialDb<'_> {
    fn drop(&mut self) {
        let _ = self.bench.pg.query(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// CPU time (user + system) of this run's PostgreSQL, µs: its postmaster
/// and the processes it started (backends, WAL writer, checkpointer), not
/// any other PostgreSQL on the machine.
fn postgres_cpu_us(postmaster: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            *pid == postmaster
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|st| parent_of(&st))
                    == Some(postmaster)
        })
        .filter_map(|pid| irondhcp_bench::loadgen::cpu::process_cpu_us(pid).ok())
        .sum()
}

/// The parent pid in a `/proc/PID/stat` line (the field after the state,
/// which follows the parenthesised command name).
fn parent_of(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// PostgreSQL's work over a window, per exchange completed in it.
pub fn per_exchange(window: Option<(PgReading, PgReading)>, exchanges: u64) -> Value {
    let Some((a, b)) = window else {
        return Value::Null;
    };
    let statements = b.statements.saturating_sub(a.statements);
    let cpu_us = b.cpu_us.saturating_sub(a.cpu_us);
    let per = |v: u64| (exchanges > 0).then(|| v as f64 / exchanges as f64);
    json!({
        "statements": statements,
        "cpu_us": cpu_us,
        "exchanges": exchanges,
        "statements_per_exchange": per(statements),
        "cpu_us_per_exchange": per(cpu_us),
    })
}

/// The side-by-side on PostgreSQL and the 1/2/3-server runs.
pub fn run(bins: &Bins, args: &Args) -> Result<Value> {
    let mut out = search::searches(bins, args, &Server::POSTGRES)?;
    let equal = search::equal_load(
        bins,
        args,
        &Server::POSTGRES,
        [
            (Scenario::Renew, args.pg_renew_rate),
            (Scenario::Dora, args.pg_dora_rate),
        ],
        "irondhcp-pg and kea-pg",
    )?;
    out["equal_load"] = equal;
    let mut scaling = Vec::new();
    for n in 1..=3 {
        for (scenario, rate) in [
            (Scenario::Dora, args.pg_cluster_dora_rate),
            (Scenario::Renew, args.pg_cluster_renew_rate),
        ] {
            eprintln!(
                "== {n} irondhcp server(s) on one PostgreSQL: {} at {rate:.0}/s each",
                scenario.name()
            );
            scaling.push(cluster_trial(bins, args, n, scenario, rate)?);
        }
    }
    out["scaling"] = Value::Array(scaling);
    Ok(out)
}

/// `n` irondhcp servers, each in a testbed of its own with a generator
/// offering `per_server`, all on one database and one Redis: the servers
/// share the pool through address blocks, as a cluster does. PostgreSQL's
/// work is read over the first generator's window (they start together).
pub fn cluster_trial(
    bins: &Bins,
    args: &Args,
    n: usize,
    scenario: Scenario,
    per_server: f64,
) -> Result<Value> {
    let bench = bins.pg()?;
    let db = bench.database(false)?;
    let mut beds = Vec::new();
    for _ in 0..n {
        let mut opts = search::testbed_options();
        opts.storage_url = Some(db.url());
        opts.tail = bench.cluster_toml();
        let mut tb = Testbed::new(&opts).context("create a testbed")?;
        tb.start_daemon(&bins.irondhcp).context("start irondhcp")?;
        beds.push(tb);
    }
    // The load starts once the blocks are shared out: every block owned,
    // every server holding its share (else grants from blocks still being
    // handed over are refused, and the others borrow). A share is
    // ⌈blocks / servers⌉, so the last server to claim may hold up to
    // n − 1 fewer than total / n.
    let settled = || {
        let owned: Option<Vec<(u64, u64)>> = beds
            .iter()
            .map(|tb| {
                let v = tb.ctl("stats").ok()?;
                let live = v.pointer("/blocks/live_servers")?.as_u64()?;
                (live == n as u64).then_some(())?;
                Some((
                    v.pointer("/blocks/owned")?.as_u64()?,
                    v.pointer("/blocks/total")?.as_u64()?,
                ))
            })
            .collect();
        owned.is_some_and(|o| {
            let total = o[0].1;
            o.iter().map(|x| x.0).sum::<u64>() == total
                && o.iter().all(|x| x.0 + n as u64 > total / n as u64)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !settled() {
        if Instant::now() > deadline {
            bail!("{n} servers did not share the blocks within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let rate = per_server * n as f64;
    let secs = load_secs(args, scenario, rate);
    let clients = match scenario {
        Scenario::Dora | Scenario::Relay => ((per_server * secs * 1.1) as u64).max(100),
        Scenario::Renew => args.renew_clients,
    };
    let marks = beds[0].dir.join("window");
    let mut cmds = Vec::new();
    for (i, tb) in beds.iter().enumerate() {
        let pid = search::server_pid(&tb.server.name, "irondhcp")?;
        let mut cmd = tb.client.command(&bins.loadgen);
        search::loadgen_args(&mut cmd, tb, scenario, per_server, secs, clients, pid);
        // Distinct clients on every server: one client set per generator.
        cmd.args(["--client-offset", &(i as u64 * clients).to_string()]);
        if i == 0 {
            cmd.arg("--window-marks").arg(&marks);
        }
        cmds.push(cmd);
    }
    let (reports, window) = db.over_window(&marks, || {
        let children: Vec<_> = cmds
            .iter_mut()
            .map(|c| c.stdout(std::process::Stdio::piped()).spawn())
            .collect::<std::io::Result<_>>()
            .context("run irondhcp-loadgen")?;
        let mut reports = Vec::new();
        for c in children {
            let out = c.wait_with_output()?;
            if !out.status.success() {
                bail!("irondhcp-loadgen failed ({})", out.status);
            }
            reports.push(serde_json::from_slice::<Value>(&out.stdout)?);
        }
        Ok(reports)
    })?;
    let exchanges: u64 = reports
        .iter()
        .map(|r| {
            r.pointer("/server_cpu/exchanges")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        })
        .sum();
    let server_cpu: u64 = reports
        .iter()
        .map(|r| {
            r.pointer("/server_cpu/cpu_us")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        })
        .sum();
    // The first generator's exchanges over its window, for PostgreSQL's
    // per-exchange figures: the window is that generator's, and the others
    // ran alongside at the same rate, so scale by n.
    let first = reports[0]
        .pointer("/server_cpu/exchanges")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let stats: Vec<Value> = beds
        .iter()
        .map(|tb| tb.ctl("stats").unwrap_or(Value::Null))
        .collect();
    let trials: Vec<_> = reports.iter().map(search::classify).collect();
    for (i, t) in trials.iter().enumerate() {
        search::log_trial(
            &format!("irondhcp #{i} of {n}"),
            scenario.name(),
            per_server,
            t,
        );
    }
    let pg = per_exchange(window, first * n as u64);
    eprintln!(
        "   PostgreSQL: {} statements, {:.1} per exchange; servers' CPU {:.1} µs per exchange",
        pg["statements"],
        pg["statements_per_exchange"].as_f64().unwrap_or(f64::NAN),
        server_cpu as f64 / exchanges.max(1) as f64
    );
    Ok(json!({
        "servers": n,
        "scenario": scenario.name(),
        "rate": rate,
        "rate_per_server": per_server,
        "generator_bound": trials.iter().any(|t| t.outcome == search::Outcome::Generator),
        "loss_ratio": trials.iter().map(|t| t.loss).fold(0.0, f64::max),
        "achieved_rate": trials.iter().map(|t| t.achieved).sum::<f64>(),
        "exchanges": exchanges,
        "servers_cpu_us": server_cpu,
        "servers_cpu_us_per_exchange": (exchanges > 0).then(|| server_cpu as f64 / exchanges as f64),
        "postgres": pg,
        "server_stats": stats,
        "reports": reports,
    }))
}

/// How long a trial's load runs: a DORA trial must not run out of
/// addresses.
pub fn load_secs(args: &Args, scenario: Scenario, rate: f64) -> f64 {
    match scenario {
        Scenario::Dora | Scenario::Relay => args.trial_secs.min(search::POOL_SIZE * 0.9 / rate),
        Scenario::Renew => args.trial_secs,
    }
}

/// Where the window marks of a trial in `dir` go.
pub fn marks_in(dir: &Path) -> PathBuf {
    dir.join("window")
}

#[cfg(test)]
mod tests {
    use super::parent_of;

    #[test]
    fn the_parent_follows_the_command_name_whatever_it_holds() {
        let stat = "4242 (postgres: walwriter ) S 4200 4200 4200 0 -1 4194624 99 0 0 0 1 2 0 0";
        assert_eq!(parent_of(stat), Some(4200));
        assert_eq!(parent_of("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parent_of("garbage"), None);
    }

    /// The processes counted are the postmaster's children: this test's
    /// own process is counted under its parent and not under another pid.
    #[test]
    fn a_process_s_parent_is_read_from_proc() {
        let me = std::process::id();
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let parent = parent_of(&stat).unwrap();
        assert_eq!(parent, std::os::unix::process::parent_id());
    }
}
