//! A blocking client of the daemon's management socket (one JSON line out,
//! one JSON line back), so tests need neither tokio nor the daemon crate.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends `{"command": command}` to the socket at `path` and returns the
/// answer; an error if nothing comes back within `timeout`.
pub fn query(path: &Path, command: &str, timeout: Duration) -> io::Result<serde_json::Value> {
    request(path, command, serde_json::Value::Null, timeout)
}

/// As [`query`], with `arguments`.
pub fn request(
    path: &Path,
    command: &str,
    arguments: serde_json::Value,
    timeout: Duration,
) -> io::Result<serde_json::Value> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut req =
        serde_json::to_vec(&serde_json::json!({ "command": command, "arguments": arguments }))?;
    req.push(b'\n');
    stream.write_all(&req)?;
    let mut line = String::new();
    if BufReader::new(stream).read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no response"));
    }
    Ok(serde_json::from_str(&line)?)
}
