//! A private PostgreSQL server for one test: `initdb` into a temporary
//! directory, `pg_ctl start` on a free loopback port, stopped and removed on
//! drop, even when the test panics. Tests get a real server without
//! touching (or needing) the machine's own cluster, and never share state.
//!
//! Debian's PostgreSQL (`cargo xtask setup` installs it) refuses to run as
//! root, so as root the server runs as the `postgres` user.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::netns::run;

/// A running PostgreSQL server, trusting local connections.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The network namespace it runs in (None: the machine's) and the
    /// address it listens on there.
    netns: Option<String>,
    listen: String,
    /// Extra `-c name=value` server settings.
    settings: Vec<String>,
}

/// `pg_ctl start`'s server options for `port` on `listen`, sockets in `dir`,
/// and `settings` (`name=value` each).
fn server_options(port: u16, dir: &Path, listen: &str, settings: &[String]) -> String {
    let mut o = format!(
        "-p {port} -k {} -c listen_addresses={listen}",
        dir.display()
    );
    for s in settings {
        o.push_str(" -c ");
        o.push_str(s);
    }
    o
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> io::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).ok_or_else(|| {
        io::Error::other("no /usr/lib/postgresql/*/bin/initdb: run `cargo xtask setup`")
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl PgServer {
    /// Creates and starts a server on 127.0.0.1; returns once it accepts
    /// connections.
    pub fn start() -> io::Result<Self> {
        Self::start_on(None, "127.0.0.1")
    }

    /// Creates and starts a server in network namespace `netns` listening
    /// on `listen` (and on its Unix socket), trusting every client: for
    /// clusters whose servers reach it over the network (and can be cut
    /// off from it).
    pub fn start_on(netns: Option<&str>, listen: &str) -> io::Result<Self> {
        Self::start_with(netns, listen, &[])
    }

    /// [`PgServer::start_on`] with extra server settings (`name=value`,
    /// e.g. `shared_preload_libraries=pg_stat_statements` for counting
    /// statements in a benchmark).
    pub fn start_with(netns: Option<&str>, listen: &str, settings: &[&str]) -> io::Result<Self> {
        let bin = bin_dir()?;
        let dir = std::env::temp_dir().join(format!(
            "irondhcp-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir(&dir)?;
        if is_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        }
        let data = dir.join("data");
        let mut server = Self {
            dir,
            bin,
            port: 0,
            netns: netns.map(str::to_string),
            listen: listen.to_string(),
            settings: settings.iter().map(|s| s.to_string()).collect(),
        };
        server.pg(
            &[
                "initdb",
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "-D",
            ],
            &data,
        )?;
        if server.netns.is_some() {
            // Clients come from other namespaces, over the network.
            let hba = data.join("pg_hba.conf");
            let mut text = std::fs::read_to_string(&hba)?;
            text.push_str("host all all 0.0.0.0/0 trust\n");
            std::fs::write(&hba, text)?;
        }
        // A port nobody listens on now (a race with another process taking
        // it in between only fails this test's start, loudly).
        server.port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        server.restart()?;
        Ok(server)
    }

    /// Starts the (stopped) server again on the same port and directory;
    /// returns once it accepts connections.
    pub fn restart(&self) -> io::Result<()> {
        let log = self.dir.join("log");
        self.pg(
            &[
                "pg_ctl",
                "-w",
                "-l",
                &log.to_string_lossy(),
                "-o",
                &server_options(self.port, &self.dir, &self.listen, &self.settings),
                "start",
                "-D",
            ],
            &self.dir.join("data"),
        )
    }

    /// Stops the server at once (`-m immediate`: no checkpoint, clients cut
    /// off, as in a crash of the database host).
    pub fn stop(&self) -> io::Result<()> {
        self.pg(
            &["pg_ctl", "-m", "immediate", "-w", "stop", "-D"],
            &self.dir.join("data"),
        )
    }

    /// Runs a PostgreSQL program (first of `args`) with `args` and `path`
    /// last, as `postgres` when we are root.
    fn pg(&self, args: &[&str], path: &Path) -> io::Result<()> {
        let program = self.bin.join(args[0]);
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c
            }
            None => Command::new(if is_root() { "runuser" } else { "env" }),
        };
        if self.netns.is_some() {
            cmd.arg(if is_root() { "runuser" } else { "env" });
        }
        if is_root() {
            cmd.args(["-u", "postgres", "--"]);
        }
        cmd.arg(program);
        run(cmd.args(&args[1..]).arg(path).current_dir(&self.dir)).map(drop)
    }

    /// The TCP port it listens on.
    /// The postmaster's pid (the first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> io::Result<u32> {
        let text = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("postmaster.pid: {text:?}")))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this server, over TCP (from its own
    /// namespace, or over the network when it listens on one).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{}:{}/{db}", self.listen, self.port)
    }

    /// The URL of database `db` over the server's Unix socket: reachable
    /// from every network namespace of the machine (a daemon under test in
    /// its own namespace has a loopback of its own).
    pub fn socket_url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}&port={}",
            self.dir.display(),
            self.port
        )
    }

    /// The directory holding its Unix socket (libpq's `host` for it).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        run(Command::new(self.bin.join("psql"))
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.socket_url("postgres"))
            .arg("-c")
            .arg(format!("CREATE DATABASE \"{name}\"")))?;
        Ok(self.url(name))
    }

    /// Runs one SQL command in database `db` and returns psql's unaligned,
    /// tuples-only output (fields separated by `|`).
    pub fn query(&self, db: &str, sql: &str) -> io::Result<String> {
        let out = run(Command::new(self.bin.join("psql"))
            .args(["-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.socket_url(db))
            .arg("-c")
            .arg(sql))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
