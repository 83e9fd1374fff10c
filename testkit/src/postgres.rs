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
}

/// `pg_ctl start`'s server options for `port`, sockets in `dir`.
fn server_options(port: u16, dir: &Path) -> String {
    format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1",
        dir.display()
    )
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
    /// Creates and starts a server; returns once it accepts connections.
    pub fn start() -> io::Result<Self> {
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
        let mut server = Self { dir, bin, port: 0 };
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
                &server_options(self.port, &self.dir),
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
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        run(cmd.args(&args[1..]).arg(path).current_dir(&self.dir)).map(drop)
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
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

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        run(Command::new(self.bin.join("psql"))
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url("postgres"))
            .arg("-c")
            .arg(format!("CREATE DATABASE \"{name}\"")))?;
        Ok(self.url(name))
    }

    /// Runs one SQL command in database `db` and returns psql's unaligned,
    /// tuples-only output (fields separated by `|`).
    pub fn query(&self, db: &str, sql: &str) -> io::Result<String> {
        let out = run(Command::new(self.bin.join("psql"))
            .args(["-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
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
