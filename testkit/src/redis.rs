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
}

impl RedisServer {
    /// Starts a server; returns once it answers PING.
    pub fn start() -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "irondhcp-redis-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir(&dir)?;
        let mut server = Self { dir, child: None };
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

    /// Starts the (stopped) server again on the same socket; returns once
    /// it answers PING.
    pub fn restart(&mut self) -> io::Result<()> {
        let _ = std::fs::remove_file(self.socket());
        let log = std::fs::File::create(self.dir.join("log"))?;
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
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
