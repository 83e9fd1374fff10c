//! A store double for the plane's unit tests: it fails while `down` is
//! set and records every transaction (the real stores are tested on real
//! files).

use std::sync::Mutex;

use crate::store::{LeaseRecord, LeaseStore, LeaseWrite, StoreError, WriteOutcome};

#[derive(Default)]
pub(super) struct FlakyStore {
    pub down: Mutex<bool>,
    pub failures: Mutex<u32>,
    pub committed: Mutex<Vec<LeaseWrite>>,
    /// The size of every transaction applied.
    pub transactions: Mutex<Vec<usize>>,
}

impl LeaseStore for FlakyStore {
    async fn load_each<F: FnMut(LeaseRecord) + Send>(&self, _each: F) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn apply(
        &self,
        writes: &[LeaseWrite],
        _now: u64,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        if *self.down.lock().unwrap() {
            *self.failures.lock().unwrap() += 1;
            return Err(StoreError::BadRow("store is down".into()));
        }
        self.transactions.lock().unwrap().push(writes.len());
        self.committed
            .lock()
            .unwrap()
            .extend(writes.iter().cloned());
        Ok(vec![Some(1); writes.len()])
    }
    async fn close(&self) {}
}
