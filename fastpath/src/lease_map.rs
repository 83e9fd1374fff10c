//! The lock-free lease map: which address is leased to whom, until when.
//!
//! Every worker reads this map for every packet it answers from memory (a
//! renewal, a rebinding, an INFORM), while writes come rarely and only from
//! the control plane and from sync. So the map is built for readers: a read
//! takes no lock, performs no allocation and writes no shared cache line, so
//! readers on different cores never slow each other down. Writers pay for it:
//! they serialise on an internal mutex (never taken by a reader), which keeps
//! the write side simple and correct (one writer at a time per slot and per
//! index bucket).
//!
//! # Slots
//!
//! Every covered address (the pools of all subnets plus single reserved
//! addresses, given as ranges to [`LeaseMap::new`]) has one fixed slot, found
//! by a binary search over the few sorted ranges plus an offset: no hashing,
//! no rehashing, no memory growth at run time. A slot is a seqlock over three
//! atomics (state, owner key hash, expiry). The writer makes the sequence odd,
//! stores the fields, makes it even again; a reader retries when it saw an
//! odd sequence or when the sequence changed under it, so it only ever
//! returns a snapshot that one writer wrote as a whole.
//!
//! A reader does not wait for a writer forever: after [`READ_SPINS`] tries it
//! gives up. A slot stays busy that long only when the writer was preempted
//! in the middle of its handful of stores. Giving up then is safe: the reader
//! reports "busy" ([`LeaseMap::try_get`]), which [`LeaseMap::get`] and
//! [`LeaseMap::find_client`] turn into "nothing known here" — and "nothing
//! known" is never a promise: the fast path hands such a packet to the control
//! plane (or lets the client retransmit). Returning the last, possibly torn,
//! read instead could pair one client's key with another client's expiry, so
//! we never do.
//!
//! # Client index (a hint, not the truth)
//!
//! Finding the address of a client (key hash → address) uses a small
//! set-associative table: buckets of [`WAYS`] entries, each entry a key hash
//! (0 = empty) and an address. It is lossy on purpose: when a bucket is full
//! the writer evicts an entry, so a client may be missing from it. Its entries
//! are also not updated atomically as a pair (key and address are separate
//! atomics), so a reader may see a key with an address that belongs to an
//! older or newer entry.
//!
//! None of that can produce a wrong answer, because a reader never trusts the
//! index: every hit is verified against the slot of the address it names
//! (through the seqlock), and only counts when that slot is not Free and is
//! owned by the same key hash. The answer returned is that verified slot
//! snapshot, so it is exactly as true as [`LeaseMap::get`]. A torn, stale or
//! evicted entry is therefore just a miss, and a miss is safe for the same
//! reason as above: the control plane keeps the authoritative state and
//! handles every client the fast path could not find. What the index buys is
//! speed for the common case (a known client renewing), not correctness.
//!
//! # Memory
//!
//! 32 bytes per slot plus 48 bytes per bucket of four entries, with one bucket
//! per two covered addresses (two entries per address, so a bucket overflows
//! rarely), comes to about 56 bytes per covered address, inside the 64-byte
//! budget of the design. The bucket count is not rounded up to a power of two
//! (which could nearly double the index and break the budget); the bucket is
//! picked from the low 32 bits of the key hash by a multiply-shift range
//! reduction instead of a mask, which costs one multiplication.

use std::net::Ipv4Addr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// State of one address slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LeaseState {
    Free = 0,
    /// Leased to `key_hash` until `expiry`.
    Leased = 1,
    /// Declined by a client; quarantined until `expiry`.
    Declined = 2,
}

impl LeaseState {
    /// Only writers store states, and they only store valid ones; an unknown
    /// value cannot occur, and mapping it to Free (no promise) would be the
    /// safe reading if it did.
    #[inline]
    fn from_u32(v: u32) -> Self {
        match v {
            1 => LeaseState::Leased,
            2 => LeaseState::Declined,
            _ => LeaseState::Free,
        }
    }
}

/// A consistent snapshot of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView {
    pub key_hash: u64,
    /// What the client was promised (seconds since the UNIX epoch).
    pub expiry: u64,
    /// The durable expiry `D(a)` this server knows the store holds: the
    /// promise bound (docs/decisions.md, lease safety) allows a promise of
    /// at most `durable + MCLT`.
    pub durable: u64,
    pub state: LeaseState,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseMapError {
    #[error("address {0} is not covered by any range of the lease map")]
    NotCovered(Ipv4Addr),
    #[error("address ranges overlap or are empty")]
    BadRanges,
}

/// A slot stayed mid-update for all [`READ_SPINS`] tries of a read (its
/// writer was most likely preempted). Nothing is known about the slot; treat
/// it like a miss and let the control plane decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("lease slot busy (a writer is mid-update)")]
pub struct SlotBusy;

/// How many times a reader retries a slot before reporting it busy.
pub const READ_SPINS: u32 = 64;

/// Entries per index bucket: four 8-byte keys fill half a cache line, and
/// four ways keep overflow rare at two entries per address.
pub const WAYS: usize = 4;

/// One address. Atomics only, so concurrent reads and writes are never a
/// data race; the seqlock is what makes the three fields consistent.
#[repr(C)]
struct Slot {
    /// Odd while a writer is mid-update. 32 bits: a reader would have to
    /// stall across 2^31 writes of one slot to be fooled by wrap-around.
    seq: AtomicU32,
    /// A [`LeaseState`] as u32.
    state: AtomicU32,
    key_hash: AtomicU64,
    expiry: AtomicU64,
    durable: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Slot>() <= 32);

/// Raw fields of a slot, as read consistently or as about to be written.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fields {
    state: u32,
    key_hash: u64,
    expiry: u64,
    durable: u64,
}

const FREE: Fields = Fields {
    state: LeaseState::Free as u32,
    key_hash: 0,
    expiry: 0,
    durable: 0,
};

impl Fields {
    #[inline]
    fn view(self) -> Option<LeaseView> {
        match LeaseState::from_u32(self.state) {
            LeaseState::Free => None,
            state => Some(LeaseView {
                key_hash: self.key_hash,
                expiry: self.expiry,
                durable: self.durable,
                state,
            }),
        }
    }

    #[inline]
    fn is_free(self) -> bool {
        self.state == LeaseState::Free as u32
    }
}

impl Slot {
    fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            state: AtomicU32::new(LeaseState::Free as u32),
            key_hash: AtomicU64::new(0),
            expiry: AtomicU64::new(0),
            durable: AtomicU64::new(0),
        }
    }

    /// Seqlock read, for any thread.
    #[inline]
    fn read(&self) -> Result<Fields, SlotBusy> {
        for _ in 0..READ_SPINS {
            // Acquire: the field loads below must not see values older than
            // the writes that preceded this (even) sequence number.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let fields = Fields {
                state: self.state.load(Ordering::Relaxed),
                key_hash: self.key_hash.load(Ordering::Relaxed),
                expiry: self.expiry.load(Ordering::Relaxed),
                durable: self.durable.load(Ordering::Relaxed),
            };
            // The fence keeps the field loads above from moving below the
            // re-check: if any of them saw a store of a newer writer, the
            // re-check sees that writer's odd (or later) sequence number.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return Ok(fields);
            }
            std::hint::spin_loop();
        }
        Err(SlotBusy)
    }

    /// The fields as the (only) writer sees them. Caller holds the writer
    /// mutex, so no store can race these loads.
    #[inline]
    fn read_locked(&self, _w: &Writer<'_>) -> Fields {
        Fields {
            state: self.state.load(Ordering::Relaxed),
            key_hash: self.key_hash.load(Ordering::Relaxed),
            expiry: self.expiry.load(Ordering::Relaxed),
            durable: self.durable.load(Ordering::Relaxed),
        }
    }

    /// Seqlock write. Caller holds the writer mutex: two writers interleaving
    /// on one sequence number would break the odd/even protocol.
    #[inline]
    fn write(&self, _w: &Writer<'_>, f: Fields) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // Release fence: a reader that sees any of the field stores below
        // also sees the odd sequence number stored above.
        fence(Ordering::Release);
        self.state.store(f.state, Ordering::Relaxed);
        self.key_hash.store(f.key_hash, Ordering::Relaxed);
        self.expiry.store(f.expiry, Ordering::Relaxed);
        self.durable.store(f.durable, Ordering::Relaxed);
        // Release: a reader that sees this even number sees all fields.
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }
}

/// One set of the client index. Keys first and together, so a lookup scans
/// one 32-byte run of memory.
#[repr(C)]
struct Bucket {
    /// Key hash of each entry; 0 = empty (key hashes are never 0).
    keys: [AtomicU64; WAYS],
    /// IPv4 address (as u32) of each entry.
    addrs: [AtomicU32; WAYS],
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 48);

impl Bucket {
    fn new() -> Self {
        Self {
            keys: std::array::from_fn(|_| AtomicU64::new(0)),
            addrs: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// One covered range, with the index of its first slot.
struct Range {
    first: u32,
    count: u32,
    base: usize,
}

/// Proof that the writer mutex is held.
struct Writer<'a> {
    _guard: MutexGuard<'a, ()>,
}

/// Lease state of every covered address, readable without locks. See the
/// module documentation.
pub struct LeaseMap {
    /// Sorted, disjoint, never empty; adjacent ranges merged.
    ranges: Box<[Range]>,
    slots: Box<[Slot]>,
    index: Box<[Bucket]>,
    /// Non-Free slots; maintained by writers.
    used: AtomicUsize,
    writer: Mutex<()>,
}

impl std::fmt::Debug for LeaseMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseMap")
            .field("ranges", &self.ranges.len())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl LeaseMap {
    /// A map covering `ranges` (first address, number of addresses), all
    /// Free. Ranges may come in any order; an empty range, one that overlaps
    /// another or runs past 255.255.255.255 is refused.
    pub fn new(ranges: &[(Ipv4Addr, u32)]) -> Result<Self, LeaseMapError> {
        let mut sorted: Vec<(u32, u32)> = ranges
            .iter()
            .map(|&(first, count)| (u32::from(first), count))
            .collect();
        sorted.sort_unstable();

        let mut merged: Vec<Range> = Vec::with_capacity(sorted.len());
        let mut total: usize = 0;
        // One past the last address of the previous range, in u64 so that a
        // range ending at 255.255.255.255 does not wrap.
        let mut prev_end: u64 = 0;
        for (first, count) in sorted {
            let end = u64::from(first) + u64::from(count);
            if count == 0 || end > 1 << 32 {
                return Err(LeaseMapError::BadRanges);
            }
            match merged.last_mut() {
                Some(_) if u64::from(first) < prev_end => return Err(LeaseMapError::BadRanges),
                // Adjacent: one range fewer to search. (Only a merge spanning
                // the whole address space overflows u32; keep two then.)
                Some(last) if u64::from(first) == prev_end => match last.count.checked_add(count) {
                    Some(c) => last.count = c,
                    None => merged.push(Range {
                        first,
                        count,
                        base: total,
                    }),
                },
                _ => merged.push(Range {
                    first,
                    count,
                    base: total,
                }),
            }
            total += count as usize;
            prev_end = end;
        }

        let slots: Box<[Slot]> = (0..total).map(|_| Slot::new()).collect();
        let buckets = total.div_ceil(WAYS / 2).max(1);
        let index: Box<[Bucket]> = (0..buckets).map(|_| Bucket::new()).collect();
        Ok(Self {
            ranges: merged.into_boxed_slice(),
            slots,
            index,
            used: AtomicUsize::new(0),
            writer: Mutex::new(()),
        })
    }

    /// The slot index of `addr`, if covered: a dense index in
    /// `0..capacity()`, so other tables (the control plane's owner table) can
    /// be laid out parallel to the map.
    #[inline]
    pub fn slot_index(&self, addr: Ipv4Addr) -> Option<usize> {
        let a = u32::from(addr);
        let i = self.ranges.partition_point(|r| r.first <= a);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        let off = a - r.first;
        (off < r.count).then_some(r.base + off as usize)
    }

    /// The address of slot `index` (the inverse of [`LeaseMap::slot_index`]).
    pub fn slot_address(&self, index: usize) -> Option<Ipv4Addr> {
        let i = self.ranges.partition_point(|r| r.base <= index);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        let off = u32::try_from(index - r.base).ok()?;
        (off < r.count).then(|| Ipv4Addr::from(r.first + off))
    }

    #[inline]
    fn slot(&self, addr: Ipv4Addr) -> Option<&Slot> {
        self.slot_index(addr).map(|i| &self.slots[i])
    }

    /// Whether `addr` has a slot in this map.
    #[inline]
    pub fn covers(&self, addr: Ipv4Addr) -> bool {
        self.slot_index(addr).is_some()
    }

    /// The lease on `addr`; `None` when the address is not covered, is Free,
    /// or stayed busy for a whole bounded read (see [`LeaseMap::try_get`]).
    /// Lock-free and allocation-free.
    #[inline]
    pub fn get(&self, addr: Ipv4Addr) -> Option<LeaseView> {
        self.try_get(addr).ok().flatten()
    }

    /// Like [`LeaseMap::get`], but tells "busy" apart from "Free or not
    /// covered", for callers that want to count or retry.
    #[inline]
    pub fn try_get(&self, addr: Ipv4Addr) -> Result<Option<LeaseView>, SlotBusy> {
        match self.slot(addr) {
            None => Ok(None),
            Some(slot) => Ok(slot.read()?.view()),
        }
    }

    /// The bucket of a key: multiply-shift range reduction of its low 32
    /// bits (uniform for a well-mixed hash, and works for any bucket count).
    #[inline]
    fn bucket(&self, key_hash: u64) -> &Bucket {
        let low = key_hash & 0xffff_ffff;
        let i = (low * self.index.len() as u64) >> 32;
        &self.index[i as usize]
    }

    /// The address leased to (or declined by) `key_hash`, with its slot
    /// snapshot. Lock-free and allocation-free. Every hit of the index is
    /// verified against the slot, so the answer is always true at the time
    /// of that slot read; `None` may also mean the index lost the client
    /// (see the module documentation), so a miss must go to the control
    /// plane, never be taken as "this client has no lease". The view may be
    /// Declined (the client declined that address): check its state.
    #[inline]
    pub fn find_client(&self, key_hash: u64) -> Option<(Ipv4Addr, LeaseView)> {
        if key_hash == 0 {
            return None;
        }
        let b = self.bucket(key_hash);
        for i in 0..WAYS {
            // Acquire pairs with the writer's Release store of the key, so
            // a freshly inserted entry is seen with its address.
            if b.keys[i].load(Ordering::Acquire) != key_hash {
                continue;
            }
            let addr = Ipv4Addr::from(b.addrs[i].load(Ordering::Relaxed));
            if let Ok(Some(view)) = self.try_get(addr) {
                if view.key_hash == key_hash {
                    return Some((addr, view));
                }
            }
        }
        None
    }

    fn lock(&self) -> Writer<'_> {
        // The mutex guards no data, only the right to write; a writer that
        // panicked left every slot consistent (its seqlock section cannot
        // panic), so a poisoned lock is safe to take over.
        let guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        Writer { _guard: guard }
    }

    /// Stores `lease` on `addr` (state Free clears it). Leased and Declined
    /// slots are (re)indexed under their key hash. Writer: takes the
    /// internal mutex.
    pub fn set(&self, addr: Ipv4Addr, lease: LeaseView) -> Result<(), LeaseMapError> {
        let slot = self.slot(addr).ok_or(LeaseMapError::NotCovered(addr))?;
        let new = match lease.state {
            LeaseState::Free => FREE,
            state => Fields {
                state: state as u32,
                key_hash: lease.key_hash,
                expiry: lease.expiry,
                durable: lease.durable,
            },
        };
        let w = self.lock();
        self.store(&w, slot, addr, new);
        Ok(())
    }

    /// Extends the lease on `addr` to `expiry` if it is Leased by
    /// `key_hash`; the expiry never moves backwards (a late, older renewal
    /// cannot shorten a lease another server may already have promised).
    /// Returns false (and changes nothing) when the address is not covered,
    /// not Leased, or leased to another client. Writer.
    pub fn extend(&self, addr: Ipv4Addr, key_hash: u64, expiry: u64) -> bool {
        let Some(slot) = self.slot(addr) else {
            return false;
        };
        let w = self.lock();
        let old = slot.read_locked(&w);
        if old.state != LeaseState::Leased as u32 || old.key_hash != key_hash {
            return false;
        }
        if expiry > old.expiry {
            slot.write(&w, Fields { expiry, ..old });
        }
        // A renewing client is worth (re)indexing if eviction dropped it.
        self.index_insert(&w, key_hash, u32::from(addr));
        true
    }

    /// Raises the durable expiry of the lease on `addr` to `durable` if it is
    /// Leased by `key_hash` (called once the store has committed an
    /// extension). Like [`LeaseMap::extend`], it only moves forward, and the
    /// promised expiry is raised with it (a durable expiry is a promise the
    /// store keeps). Returns false when nothing matched. Writer.
    pub fn set_durable(&self, addr: Ipv4Addr, key_hash: u64, durable: u64) -> bool {
        let Some(slot) = self.slot(addr) else {
            return false;
        };
        let w = self.lock();
        let old = slot.read_locked(&w);
        if old.state != LeaseState::Leased as u32 || old.key_hash != key_hash {
            return false;
        }
        if durable > old.durable {
            slot.write(
                &w,
                Fields {
                    durable,
                    expiry: old.expiry.max(durable),
                    ..old
                },
            );
        }
        true
    }

    /// Frees `addr`. Returns whether it held a lease (Leased or Declined).
    /// Writer.
    pub fn clear(&self, addr: Ipv4Addr) -> bool {
        let Some(slot) = self.slot(addr) else {
            return false;
        };
        let w = self.lock();
        self.store(&w, slot, addr, FREE) != FREE
    }

    /// Writes `new` into `slot` and keeps the counter and the index in step;
    /// returns the old fields.
    fn store(&self, w: &Writer<'_>, slot: &Slot, addr: Ipv4Addr, new: Fields) -> Fields {
        let old = slot.read_locked(w);
        if old == new {
            // Nothing for readers to see; but re-setting a lease is a chance
            // to win back an index entry lost to eviction.
            if !new.is_free() {
                self.index_insert(w, new.key_hash, u32::from(addr));
            }
            return old;
        }
        // Slot first, index second: a reader following the new index entry
        // then finds the new slot contents, and one following the old entry
        // fails verification instead of finding a stale owner.
        slot.write(w, new);
        match (old.is_free(), new.is_free()) {
            (true, false) => {
                self.used.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                self.used.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let a = u32::from(addr);
        if !old.is_free() && (new.is_free() || old.key_hash != new.key_hash) {
            self.index_remove(w, old.key_hash, a);
        }
        if !new.is_free() {
            self.index_insert(w, new.key_hash, a);
        }
        old
    }

    /// Whether the writer-side slot of `addr` is held by `key_hash`.
    fn owned_by(&self, w: &Writer<'_>, addr: u32, key_hash: u64) -> bool {
        self.slot(Ipv4Addr::from(addr)).is_some_and(|s| {
            let f = s.read_locked(w);
            !f.is_free() && f.key_hash == key_hash
        })
    }

    fn index_insert(&self, w: &Writer<'_>, key_hash: u64, addr: u32) {
        if key_hash == 0 {
            // 0 marks an empty entry; such a lease is reachable by address only.
            return;
        }
        let b = self.bucket(key_hash);
        let keys: [u64; WAYS] = std::array::from_fn(|i| b.keys[i].load(Ordering::Relaxed));
        if let Some(i) = keys.iter().position(|&k| k == key_hash) {
            b.addrs[i].store(addr, Ordering::Release);
            return;
        }
        // An empty entry, else one whose slot no longer backs it, else the
        // first: the index is a hint, losing an entry only costs a miss.
        let victim = keys
            .iter()
            .position(|&k| k == 0)
            .or_else(|| {
                (0..WAYS).find(|&i| !self.owned_by(w, b.addrs[i].load(Ordering::Relaxed), keys[i]))
            })
            .unwrap_or(0);
        b.addrs[victim].store(addr, Ordering::Relaxed);
        // Release: a reader that sees the key sees the address stored above
        // (or a later one, which verification catches).
        b.keys[victim].store(key_hash, Ordering::Release);
    }

    fn index_remove(&self, _w: &Writer<'_>, key_hash: u64, addr: u32) {
        if key_hash == 0 {
            return;
        }
        let b = self.bucket(key_hash);
        for i in 0..WAYS {
            if b.keys[i].load(Ordering::Relaxed) == key_hash
                && b.addrs[i].load(Ordering::Relaxed) == addr
            {
                b.keys[i].store(0, Ordering::Release);
            }
        }
    }

    /// Number of addresses that are not Free.
    #[inline]
    pub fn len(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of covered addresses.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Heap and inline bytes held by the map (slots, index, ranges).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + std::mem::size_of_val::<[Slot]>(&self.slots)
            + std::mem::size_of_val::<[Bucket]>(&self.index)
            + std::mem::size_of_val::<[Range]>(&self.ranges)
    }

    /// Calls `f` for every non-Free address, in address order, with a
    /// consistent snapshot of its slot. Meant for statistics and the reclaim
    /// scan, off the packet path: unlike [`LeaseMap::get`] it waits out a
    /// busy slot (yielding) rather than skip it, so no lease is missed. Takes
    /// no lock; a slot written during the walk is seen before or after that
    /// write.
    pub fn for_each(&self, mut f: impl FnMut(Ipv4Addr, LeaseView)) {
        for r in self.ranges.iter() {
            let slots = &self.slots[r.base..r.base + r.count as usize];
            for (off, slot) in (0u32..).zip(slots) {
                let fields = loop {
                    match slot.read() {
                        Ok(fields) => break fields,
                        // The writer was preempted mid-update; it finishes
                        // once it runs again (its section cannot block).
                        Err(SlotBusy) => std::thread::yield_now(),
                    }
                };
                if let Some(view) = fields.view() {
                    f(Ipv4Addr::from(r.first + off), view);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn leased(key_hash: u64, expiry: u64) -> LeaseView {
        LeaseView {
            key_hash,
            expiry,
            durable: expiry,
            state: LeaseState::Leased,
        }
    }

    fn small() -> LeaseMap {
        LeaseMap::new(&[(ip("10.0.1.10"), 100), (ip("10.0.0.1"), 1)]).unwrap()
    }

    #[test]
    fn slot_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }

    #[test]
    fn new_rejects_empty_and_overlapping_ranges() {
        assert_eq!(
            LeaseMap::new(&[(ip("10.0.0.1"), 0)]).unwrap_err(),
            LeaseMapError::BadRanges
        );
        assert_eq!(
            LeaseMap::new(&[(ip("10.0.0.10"), 10), (ip("10.0.0.1"), 10)]).unwrap_err(),
            LeaseMapError::BadRanges
        );
        assert_eq!(
            LeaseMap::new(&[(ip("10.0.0.1"), 5), (ip("10.0.0.1"), 1)]).unwrap_err(),
            LeaseMapError::BadRanges
        );
        assert_eq!(
            LeaseMap::new(&[(ip("255.255.255.250"), 7)]).unwrap_err(),
            LeaseMapError::BadRanges
        );
        // Adjacent is fine, and so is the very last address.
        let m = LeaseMap::new(&[
            (ip("10.0.0.10"), 10),
            (ip("10.0.0.1"), 9),
            (ip("255.255.255.255"), 1),
        ])
        .unwrap();
        assert_eq!(m.capacity(), 20);
        assert_eq!(m.ranges.len(), 2, "adjacent ranges are merged");
        assert!(m.covers(ip("255.255.255.255")));
        // No ranges at all: an empty map.
        assert_eq!(LeaseMap::new(&[]).unwrap().capacity(), 0);
    }

    #[test]
    fn slot_index_and_address_are_inverse() {
        let m = LeaseMap::new(&[(ip("10.0.0.10"), 5), (ip("10.1.0.0"), 3)]).unwrap();
        for i in 0..m.capacity() {
            let a = m.slot_address(i).unwrap();
            assert_eq!(m.slot_index(a), Some(i));
        }
        assert_eq!(m.slot_address(m.capacity()), None);
        assert_eq!(m.slot_index(ip("10.0.0.9")), None);
    }

    #[test]
    fn covers_exactly_the_ranges() {
        let m = small();
        assert!(m.covers(ip("10.0.0.1")));
        assert!(!m.covers(ip("10.0.0.0")));
        assert!(!m.covers(ip("10.0.0.2")));
        assert!(!m.covers(ip("10.0.1.9")));
        assert!(m.covers(ip("10.0.1.10")));
        assert!(m.covers(ip("10.0.1.109")));
        assert!(!m.covers(ip("10.0.1.110")));
        assert!(!m.covers(ip("0.0.0.0")));
        assert!(!m.covers(ip("255.255.255.255")));
    }

    #[test]
    fn get_set_clear_round_trip() {
        let m = small();
        let a = ip("10.0.1.20");
        assert_eq!(m.get(a), None);
        m.set(a, leased(7, 1000)).unwrap();
        assert_eq!(m.get(a), Some(leased(7, 1000)));
        assert_eq!(m.try_get(a), Ok(Some(leased(7, 1000))));
        let declined = LeaseView {
            key_hash: 7,
            expiry: 2000,
            durable: 2000,
            state: LeaseState::Declined,
        };
        m.set(a, declined).unwrap();
        assert_eq!(m.get(a), Some(declined));
        assert!(m.clear(a));
        assert_eq!(m.get(a), None);
        assert!(!m.clear(a), "already free");
        m.set(a, leased(7, 1000)).unwrap();
        m.set(
            a,
            LeaseView {
                state: LeaseState::Free,
                ..leased(7, 1000)
            },
        )
        .unwrap();
        assert_eq!(m.get(a), None);

        let out = ip("10.0.2.1");
        assert_eq!(m.get(out), None);
        assert_eq!(
            m.set(out, leased(1, 1)),
            Err(LeaseMapError::NotCovered(out))
        );
        assert!(!m.clear(out));
        assert!(!m.extend(out, 1, 5));
    }

    #[test]
    fn find_client_follows_set_and_clear() {
        let m = small();
        let (a, b) = (ip("10.0.1.20"), ip("10.0.0.1"));
        assert_eq!(m.find_client(7), None);
        assert_eq!(m.find_client(0), None);
        m.set(a, leased(7, 1000)).unwrap();
        assert_eq!(m.find_client(7), Some((a, leased(7, 1000))));
        // Cleared: a miss.
        assert!(m.clear(a));
        assert_eq!(m.find_client(7), None);
        // Address given to another key: the old key misses, the new one hits.
        m.set(a, leased(7, 1000)).unwrap();
        m.set(a, leased(8, 1500)).unwrap();
        assert_eq!(m.find_client(7), None);
        assert_eq!(m.find_client(8), Some((a, leased(8, 1500))));
        // A client moved to another address is found there.
        m.set(b, leased(8, 1600)).unwrap();
        assert_eq!(m.find_client(8), Some((b, leased(8, 1600))));
    }

    #[test]
    fn find_client_never_trusts_a_stale_entry() {
        let m = small();
        let a = ip("10.0.1.20");
        m.set(a, leased(7, 1000)).unwrap();
        // Forge a stale entry behind the writer's back: key 9 → a.
        let b = m.bucket(9);
        let i = (0..WAYS)
            .find(|&i| b.keys[i].load(Ordering::Relaxed) == 0)
            .unwrap();
        b.addrs[i].store(u32::from(a), Ordering::Relaxed);
        b.keys[i].store(9, Ordering::Relaxed);
        assert_eq!(m.find_client(9), None);
    }

    #[test]
    fn index_overflow_evicts_but_never_lies() {
        // Keys whose low 32 bits are 0 all land in bucket 0: 200 clients
        // fight for its four entries.
        let first = u32::from(ip("10.0.1.0"));
        let m = LeaseMap::new(&[(Ipv4Addr::from(first), 256)]).unwrap();
        let key = |k: u64| k << 32;
        for k in 1..=200u64 {
            let a = Ipv4Addr::from(first + k as u32);
            m.set(a, leased(key(k), k)).unwrap();
            // The newest insert always gets a place.
            assert_eq!(m.find_client(key(k)), Some((a, leased(key(k), k))));
        }
        let mut hits = 0;
        for k in 1..=200u64 {
            if let Some((a, v)) = m.find_client(key(k)) {
                assert_eq!(a, Ipv4Addr::from(first + k as u32));
                assert_eq!(v, leased(key(k), k));
                hits += 1;
            }
        }
        assert_eq!(hits, WAYS, "the bucket holds the last {WAYS} clients");
        assert_eq!(m.len(), 200, "evicting a hint loses no lease");
        // A renewal (or re-set) wins the evicted client its entry back.
        let a1 = Ipv4Addr::from(first + 1);
        assert_eq!(m.find_client(key(1)), None);
        assert!(m.extend(a1, key(1), 500));
        let extended = LeaseView {
            durable: 1,
            ..leased(key(1), 500)
        };
        assert_eq!(m.find_client(key(1)), Some((a1, extended)));
        let a2 = Ipv4Addr::from(first + 2);
        m.set(a2, leased(key(2), 2)).unwrap();
        assert_eq!(m.find_client(key(2)), Some((a2, leased(key(2), 2))));

        // Entries that no longer match their slot are evicted first.
        let m = LeaseMap::new(&[(Ipv4Addr::from(first), 8)]).unwrap();
        for k in 1..=4u64 {
            m.set(Ipv4Addr::from(first + k as u32), leased(key(k), k))
                .unwrap();
        }
        // Bypass the writer to make entry 2 stale (as a lost update would).
        let b = m.bucket(key(1));
        b.keys[2].store(key(99), Ordering::Relaxed);
        m.set(Ipv4Addr::from(first + 5), leased(key(5), 5)).unwrap();
        assert_eq!(m.find_client(key(1)).map(|(_, v)| v.expiry), Some(1));
        assert_eq!(m.find_client(key(5)).map(|(_, v)| v.expiry), Some(5));
        assert_eq!(b.keys[2].load(Ordering::Relaxed), key(5));
    }

    #[test]
    fn extend_is_monotonic_and_owner_only() {
        let m = small();
        let a = ip("10.0.1.30");
        assert!(!m.extend(a, 7, 100), "free slot");
        m.set(a, leased(7, 1000)).unwrap();
        assert!(m.extend(a, 7, 2000));
        assert_eq!(m.get(a).unwrap().expiry, 2000);
        assert!(m.extend(a, 7, 1500), "owner, but expiry stays");
        assert_eq!(m.get(a).unwrap().expiry, 2000);
        assert!(!m.extend(a, 8, 9000), "another key");
        assert_eq!(
            m.get(a),
            Some(LeaseView {
                durable: 1000,
                ..leased(7, 2000)
            }),
            "extend moves the promise, not the durable expiry"
        );
        assert!(m.set_durable(a, 7, 1500));
        assert_eq!(m.get(a).unwrap().durable, 1500);
        assert!(m.set_durable(a, 7, 1200), "owner, but durable stays");
        assert_eq!(m.get(a).unwrap().durable, 1500);
        assert!(!m.set_durable(a, 8, 9000), "another key");
        assert!(m.set_durable(a, 7, 2500));
        assert_eq!(
            (m.get(a).unwrap().durable, m.get(a).unwrap().expiry),
            (2500, 2500),
            "a durable expiry is a promise too"
        );
        m.set(
            a,
            LeaseView {
                key_hash: 7,
                expiry: 3000,
                durable: 3000,
                state: LeaseState::Declined,
            },
        )
        .unwrap();
        assert!(!m.extend(a, 7, 9000), "declined, not leased");
        assert_eq!(m.get(a).unwrap().expiry, 3000);
    }

    #[test]
    fn len_capacity_and_for_each() {
        let m = small();
        assert_eq!(m.capacity(), 101);
        assert!(m.is_empty());
        m.set(ip("10.0.1.12"), leased(1, 10)).unwrap();
        m.set(ip("10.0.0.1"), leased(2, 20)).unwrap();
        m.set(ip("10.0.1.11"), leased(3, 30)).unwrap();
        m.set(ip("10.0.1.11"), leased(4, 40)).unwrap();
        assert_eq!(m.len(), 3);
        assert!(m.clear(ip("10.0.1.12")));
        assert_eq!(m.len(), 2);
        let mut seen = Vec::new();
        m.for_each(|a, v| seen.push((a, v)));
        assert_eq!(
            seen,
            vec![
                (ip("10.0.0.1"), leased(2, 20)),
                (ip("10.0.1.11"), leased(4, 40)),
            ]
        );
    }

    fn per_lease(n: u32) -> f64 {
        let m = LeaseMap::new(&[(ip("10.0.0.0"), n)]).unwrap();
        assert_eq!(m.capacity(), n as usize);
        m.memory_bytes() as f64 / m.capacity() as f64
    }

    #[test]
    fn memory_within_budget() {
        // Odd sizes too: the index is not rounded up to a power of two, so
        // no size pays for nearly double the buckets. (Tiny maps are
        // dominated by the fixed struct and are not meaningful here.)
        for n in [1_000, 1_000_000, 1_025, 65_537] {
            let b = per_lease(n);
            eprintln!("{n} addresses: {b:.2} bytes per lease");
            assert!(b <= 64.0, "{n} addresses: {b} bytes per lease");
        }
        let b = per_lease(1_000_000);
        assert!(b <= 56.5, "1M addresses: {b} bytes per lease");
    }

    /// Readers must only ever see one of the two states the writer writes,
    /// never a mix of both.
    #[test]
    fn readers_never_see_torn_slots() {
        const KEY_A: u64 = 0xA5A5_A5A5_0000_0001;
        const KEY_B: u64 = 0x5A5A_5A5A_0000_0002;
        let m = Arc::new(LeaseMap::new(&[(ip("10.0.0.1"), 4)]).unwrap());
        let (x, y) = (ip("10.0.0.2"), ip("10.0.0.3"));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (m, stop) = (m.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut good = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for a in [x, y] {
                            if let Some(v) = m.get(a) {
                                assert!(
                                    v == leased(KEY_A, 100) || v == leased(KEY_B, 200),
                                    "torn read {v:?}"
                                );
                                good += 1;
                            }
                        }
                        if let Some((a, v)) = m.find_client(KEY_A) {
                            assert!(a == x || a == y);
                            assert_eq!(v, leased(KEY_A, 100));
                        }
                        if let Some((a, v)) = m.find_client(KEY_B) {
                            assert!(a == x || a == y);
                            assert_eq!(v, leased(KEY_B, 200));
                        }
                    }
                    good
                })
            })
            .collect();
        let start = Instant::now();
        let mut flips = 0u64;
        while start.elapsed() < Duration::from_millis(200) && flips < 1_000_000 {
            let (p, q) = if flips.is_multiple_of(2) {
                (x, y)
            } else {
                (y, x)
            };
            m.set(p, leased(KEY_A, 100)).unwrap();
            m.set(q, leased(KEY_B, 200)).unwrap();
            flips += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let good: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(flips > 0 && good > 0, "flips {flips}, good reads {good}");
        assert_eq!(m.len(), 2);
    }
}
