//! Files the generator creates when its measured window opens and closes
//! (`--window-marks PATH`: `PATH.start`, `PATH.end`).
//!
//! Why: a harness sometimes needs its own readings over exactly the window
//! the generator's figures cover — a database's statement counters, the
//! CPU time of processes the generator cannot name (every PostgreSQL
//! backend) — and the window opens only after a warm-up whose length the
//! harness does not know. Each file is created once, by whichever thread
//! opens or closes the window; it is one syscall per run, not per packet.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub struct WindowMarks {
    base: PathBuf,
    opened: AtomicBool,
    closed: AtomicBool,
}

impl WindowMarks {
    pub fn new(base: PathBuf) -> Self {
        Self {
            base,
            opened: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// `base` with `suffix` appended (`.start`, `.end`).
    pub fn path(base: &std::path::Path, suffix: &str) -> PathBuf {
        let mut s = base.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    }

    fn create(&self, flag: &AtomicBool, suffix: &str) {
        if !flag.swap(true, Ordering::AcqRel) {
            let path = Self::path(&self.base, suffix);
            if let Err(e) = std::fs::write(&path, b"") {
                eprintln!("irondhcp-loadgen: cannot write {}: {e}", path.display());
            }
        }
    }

    /// The timed phase has started (first call wins).
    pub fn open(&self) {
        self.create(&self.opened, ".start");
    }

    /// The last new exchange has been sent (first call wins).
    pub fn close(&self) {
        self.create(&self.closed, ".end");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mark_is_written_once_beside_the_base() {
        let dir = std::env::temp_dir().join(format!("marks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("trial");
        let m = WindowMarks::new(base.clone());
        assert!(!WindowMarks::path(&base, ".start").exists());
        m.open();
        assert!(WindowMarks::path(&base, ".start").exists());
        assert!(!WindowMarks::path(&base, ".end").exists());
        // A second open does not write again (the harness may have
        // removed it after reading).
        std::fs::remove_file(WindowMarks::path(&base, ".start")).unwrap();
        m.open();
        assert!(!WindowMarks::path(&base, ".start").exists());
        m.close();
        assert!(WindowMarks::path(&base, ".end").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
