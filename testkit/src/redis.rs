//! A private Redis server for one test: `redis-server` on a Unix socket in
//! a temporary directory, with nothing saved to disk, stopped and removed
//! on drop, even when the test panics. A Unix socket is reachable from
//! every network namespace of the machine, so daemons under test in their
//! own namespaces share it.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::run;

/// A running Redis server.
pub struct RedisServer {
    dir: PathBuf,
    child: Option<Child>,
    /// The network namespace it runs in and the address it listens on
    /// there (port 6379), when it serves over the network too.
    tcp: Option<(String, String)>,
}

/// The TCP port of a server started with [`RedisServer::start_on`].
pub const PORT: u16 = 6379;

impl RedisServer {
    /// Starts a server on a Unix socket only; returns once it answers PING.
    pub fn start() -> io::Result<Self> {
        Self::start_inner(None)
    }

    /// Starts a server in network namespace `netns`, listening on `bind`
    /// port [`PORT`] as well as on its Unix socket (servers reach it over
    /// the network, and can be cut off from it).
    pub fn start_on(netns: &str, bind: &str) -> io::Result<Self> {
        Self::start_inner(Some((netns.to_string(), bind.to_string())))
    }

    fn start_inner(tcp: Option<(String, String)>) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "irondhcp-redis-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir(&dir)?;
        let mut server = Self {
            dir,
            child: None,
            tcp,
        };
        server.restart()?;
        Ok(server)
    }

    /// The server's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// The URL daemons are given.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The URL over the network (a server from [`RedisServer::start_on`]),
    /// else over the Unix socket.
    pub fn network_url(&self) -> String {
        match &self.tcp {
            Some((_, bind)) => format!("redis://{bind}:{PORT}/"),
            None => self.url(),
        }
    }

    /// Starts the (stopped) server again on the same socket; returns once
    /// it answers PING.
    pub fn restart(&mut self) -> io::Result<()> {
        let _ = std::fs::remove_file(self.socket());
        let log = std::fs::File::create(self.dir.join("log"))?;
        let mut cmd = match &self.tcp {
            Some((ns, bind)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "redis-server", "--bind", bind])
                    .args(["--port", &PORT.to_string(), "--protected-mode", "no"]);
                c
            }
            None => {
                let mut c = Command::new("redis-server");
                c.args(["--port", "0"]);
                c
            }
        };
        let child = cmd
            .arg("--unixsocket")
            .arg(self.socket())
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("redis-server: {e} (run `cargo xtask setup`)"),
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cli(&["PING"]).is_ok_and(|o| o == "PONG") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::other(format!(
            "redis-server did not answer within 10 s; log: {}",
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        )))
    }

    /// Kills the server at once (SIGKILL, as in a crash).
    pub fn stop(&mut self) -> io::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Runs one command with `redis-cli` and returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        let out = run(Command::new("redis-cli")
            .arg("-s")
            .arg(self.socket())
            .args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
