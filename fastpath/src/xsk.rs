//! One AF_XDP socket with its own UMEM, written against the kernel ABI
//! (`linux/if_xdp.h`) through `libc` alone.
//!
//! Why not a crate: the pure-Rust crates that work here either carry a
//! licence we would rather not ship (EUPL) or an API shaped for other needs;
//! the kernel interface is four mmap'ed single-producer/single-consumer rings
//! and a handful of socket options, small enough to own and to test.
//!
//! Layout: the UMEM is split in two halves. RX frames live in the fill ring
//! (handed to the kernel) or in the worker's hands between `poll_rx` and
//! `recycle_rx`; TX frames live on a free stack, in the TX ring, or in the
//! completion ring until `reap_completions` returns them to the stack. A
//! frame is therefore never owned by two parties, which is what makes the
//! disjoint `&[u8]`/`&mut [u8]` views of [`XskSocket::rx_and_tx`] sound.
//!
//! Pitfalls this module handles (docs/decisions.md): the fill ring is filled
//! before `bind`, so the first packets have somewhere to land; in copy mode
//! the kernel only transmits inside `sendto`, so [`XskSocket::flush_tx`]
//! kicks after every batch and retries on `EAGAIN`/`EBUSY`; completions are
//! reaped on every loop; UMEM is pinned memory and counts against
//! `RLIMIT_MEMLOCK`, so its size is explicit in [`XskConfig`].

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

/// Sizes of one socket's UMEM and rings.
#[derive(Debug, Clone, Copy)]
pub struct XskConfig {
    /// Frames in the UMEM (half RX, half TX). Power of two.
    pub frame_count: u32,
    /// Bytes per frame: 2048 or 4096.
    pub frame_size: u32,
    /// Entries in each of the four rings. Power of two, ≤ frame_count / 2.
    pub ring_size: u32,
    /// Force copy mode (`XDP_COPY`); otherwise the kernel picks zero-copy
    /// when the driver supports it.
    pub force_copy: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        // 4 MiB of UMEM: half of the default 8 MiB RLIMIT_MEMLOCK.
        Self {
            frame_count: 2048,
            frame_size: 2048,
            ring_size: 1024,
            force_copy: false,
        }
    }
}

/// Errors opening an AF_XDP socket.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("invalid AF_XDP configuration: {0}")]
    Config(&'static str),
    #[error("no network interface named {0:?}")]
    NoInterface(String),
    #[error("{what} failed: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

fn sys(what: &'static str) -> XskError {
    XskError::Sys {
        what,
        source: io::Error::last_os_error(),
    }
}

/// A received frame: its offset in the UMEM and its length.
#[derive(Debug, Clone, Copy, Default)]
pub struct RxDesc {
    pub addr: u64,
    pub len: u32,
}

/// One mmap'ed ring. `T` is `u64` (fill/completion) or `xdp_desc` (rx/tx).
struct Ring<T> {
    map: *mut libc::c_void,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    mask: u32,
    size: u32,
    /// Local copies of the indexes, refreshed from shared memory only when
    /// the cached view says the ring is empty/full (fewer cache misses).
    cached_prod: u32,
    cached_cons: u32,
}

impl<T: Copy> Ring<T> {
    /// Maps a ring of `size` entries at page offset `pgoff`.
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: libc::off_t,
    ) -> Result<Self, XskError> {
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: mapping a kernel ring of the length the kernel told us; the
        // result is checked for MAP_FAILED before use.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(sys("mmap of an AF_XDP ring"));
        }
        let base = map as *mut u8;
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS and lie inside the map.
        unsafe {
            Ok(Self {
                map,
                map_len,
                producer: base.add(off.producer as usize) as *const AtomicU32,
                consumer: base.add(off.consumer as usize) as *const AtomicU32,
                flags: base.add(off.flags as usize) as *const AtomicU32,
                descs: base.add(off.desc as usize) as *mut T,
                mask: size - 1,
                size,
                cached_prod: 0,
                cached_cons: 0,
            })
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping, which outlives &self.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as above.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // --- producer side (fill, tx) ---

    /// Free entries, refreshing the consumer index only when needed.
    fn free(&mut self, want: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    fn write(&mut self, i: u32, v: T) {
        // SAFETY: the index is masked into the ring.
        unsafe {
            self.descs
                .add(((self.cached_prod.wrapping_add(i)) & self.mask) as usize)
                .write(v)
        }
    }

    fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    // --- consumer side (rx, completion) ---

    fn available(&mut self) -> u32 {
        let avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail > 0 {
            return avail;
        }
        self.cached_prod = self.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    fn read(&self, i: u32) -> T {
        // SAFETY: the index is masked into the ring.
        unsafe {
            self.descs
                .add(((self.cached_cons.wrapping_add(i)) & self.mask) as usize)
                .read()
        }
    }

    fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.consumer().store(self.cached_cons, Ordering::Release);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// An AF_XDP socket bound to one queue of one interface.
pub struct XskSocket {
    fd: OwnedFd,
    umem: *mut u8,
    umem_len: usize,
    frame_size: u32,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    /// TX frames not in flight.
    tx_free: Vec<u64>,
    /// TX descriptors submitted since the last kick.
    tx_pending: u32,
    /// RX frames waiting to go back to the fill ring (when it was full).
    fill_backlog: Vec<u64>,
    pub ifindex: u32,
    pub queue: u32,
}

// SAFETY: the raw pointers point into memory owned by this socket; moving the
// socket to its worker thread moves that ownership. It is not Sync.
unsafe impl Send for XskSocket {}

impl XskSocket {
    /// Creates the UMEM and rings, fills the fill ring and binds to
    /// `ifname`/`queue`.
    pub fn open(ifname: &str, queue: u32, cfg: &XskConfig) -> Result<Self, XskError> {
        if !cfg.frame_count.is_power_of_two() || !cfg.ring_size.is_power_of_two() {
            return Err(XskError::Config(
                "frame_count and ring_size must be powers of two",
            ));
        }
        if cfg.frame_size != 2048 && cfg.frame_size != 4096 {
            return Err(XskError::Config("frame_size must be 2048 or 4096"));
        }
        if cfg.ring_size > cfg.frame_count / 2 {
            return Err(XskError::Config(
                "ring_size must be at most frame_count / 2",
            ));
        }
        let cname = CString::new(ifname).map_err(|_| XskError::NoInterface(ifname.into()))?;
        // SAFETY: plain libc call with a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(XskError::NoInterface(ifname.into()));
        }

        // SAFETY: plain socket(2); the fd is owned right after the check.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(sys("socket(AF_XDP)"));
        }
        // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let umem_len = cfg.frame_count as usize * cfg.frame_size as usize;
        // SAFETY: anonymous mapping, checked below.
        let umem = unsafe {
            libc::mmap(
                ptr::null_mut(),
                umem_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(sys("mmap of the UMEM"));
        }
        let umem = umem as *mut u8;
        // From here on, an early return must unmap the UMEM: a guard does it.
        struct UmemGuard(*mut u8, usize);
        impl Drop for UmemGuard {
            fn drop(&mut self) {
                // SAFETY: unmapping the mapping created above.
                unsafe { libc::munmap(self.0 as *mut libc::c_void, self.1) };
            }
        }
        let guard = UmemGuard(umem, umem_len);

        let reg = libc::xdp_umem_reg {
            addr: umem as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(
            &fd,
            libc::XDP_UMEM_REG,
            &reg,
            "XDP_UMEM_REG (is RLIMIT_MEMLOCK too low?)",
        )?;
        setsockopt(
            &fd,
            libc::XDP_UMEM_FILL_RING,
            &cfg.ring_size,
            "XDP_UMEM_FILL_RING",
        )?;
        setsockopt(
            &fd,
            libc::XDP_UMEM_COMPLETION_RING,
            &cfg.ring_size,
            "XDP_UMEM_COMPLETION_RING",
        )?;
        setsockopt(&fd, libc::XDP_RX_RING, &cfg.ring_size, "XDP_RX_RING")?;
        setsockopt(&fd, libc::XDP_TX_RING, &cfg.ring_size, "XDP_TX_RING")?;

        // SAFETY: all-zero is a valid value of this plain C struct.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut optlen = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: getsockopt into a correctly sized struct.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                &mut off as *mut _ as *mut libc::c_void,
                &mut optlen,
            )
        };
        if rc != 0 {
            return Err(sys("getsockopt(XDP_MMAP_OFFSETS)"));
        }
        let raw_fd = fd.as_raw_fd();
        let mut fill = Ring::<u64>::map(
            raw_fd,
            &off.fr,
            cfg.ring_size,
            libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
        )?;
        let comp = Ring::<u64>::map(
            raw_fd,
            &off.cr,
            cfg.ring_size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
        )?;
        let rx =
            Ring::<libc::xdp_desc>::map(raw_fd, &off.rx, cfg.ring_size, libc::XDP_PGOFF_RX_RING)?;
        let tx =
            Ring::<libc::xdp_desc>::map(raw_fd, &off.tx, cfg.ring_size, libc::XDP_PGOFF_TX_RING)?;

        // Frames [0, half) are RX, [half, count) TX.
        let half = cfg.frame_count / 2;
        let fs = u64::from(cfg.frame_size);
        let mut fill_backlog: Vec<u64> = (0..u64::from(half)).map(|i| i * fs).collect();
        let n = fill.free(cfg.ring_size).min(fill_backlog.len() as u32);
        for i in 0..n {
            let addr = fill_backlog.pop().unwrap_or(0);
            fill.write(i, addr);
        }
        fill.submit(n);
        let tx_free: Vec<u64> = (u64::from(half)..u64::from(cfg.frame_count))
            .map(|i| i * fs)
            .collect();

        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_USE_NEED_WAKEUP | if cfg.force_copy { libc::XDP_COPY } else { 0 },
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: bind with a correctly sized sockaddr_xdp.
        let rc = unsafe {
            libc::bind(
                raw_fd,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(sys("bind(AF_XDP) to the interface queue"));
        }
        std::mem::forget(guard);
        Ok(Self {
            fd,
            umem,
            umem_len,
            frame_size: cfg.frame_size,
            fill,
            comp,
            rx,
            tx,
            tx_free,
            tx_pending: 0,
            fill_backlog,
            ifindex,
            queue,
        })
    }

    /// The socket descriptor, to register in the XDP program's XSKMAP.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Takes up to `out.len()` received frames off the RX ring. Each must be
    /// handed back with [`XskSocket::recycle_rx`] once handled.
    pub fn poll_rx(&mut self, out: &mut [RxDesc]) -> usize {
        let n = self.rx.available().min(out.len() as u32);
        for i in 0..n {
            let d = self.rx.read(i);
            out[i as usize] = RxDesc {
                addr: d.addr,
                len: d.len,
            };
        }
        if n > 0 {
            self.rx.release(n);
        }
        n as usize
    }

    /// Returns handled RX frames to the kernel through the fill ring.
    pub fn recycle_rx(&mut self, descs: &[RxDesc]) {
        let fs = u64::from(self.frame_size);
        self.fill_backlog
            .extend(descs.iter().map(|d| d.addr - d.addr % fs));
        let n = self
            .fill
            .free(self.fill_backlog.len() as u32)
            .min(self.fill_backlog.len() as u32);
        for i in 0..n {
            let addr = self.fill_backlog.pop().unwrap_or(0);
            self.fill.write(i, addr);
        }
        if n > 0 {
            self.fill.submit(n);
        }
    }

    fn check_span(&self, addr: u64, len: usize) -> Option<usize> {
        let start = usize::try_from(addr).ok()?;
        (start.checked_add(len)? <= self.umem_len).then_some(start)
    }

    /// The bytes of a received frame.
    pub fn rx_frame(&self, d: &RxDesc) -> &[u8] {
        match self.check_span(d.addr, d.len as usize) {
            // SAFETY: the span lies inside the UMEM (checked) and the frame is
            // owned by us between poll_rx and recycle_rx.
            Some(start) => unsafe {
                std::slice::from_raw_parts(self.umem.add(start), d.len as usize)
            },
            None => &[],
        }
    }

    /// Takes a free TX frame, if any (reaping completions first when none).
    pub fn alloc_tx(&mut self) -> Option<u64> {
        if self.tx_free.is_empty() {
            self.reap_completions();
        }
        self.tx_free.pop()
    }

    /// Gives back a TX frame that was allocated but not submitted.
    pub fn free_tx(&mut self, addr: u64) {
        self.tx_free.push(addr);
    }

    /// A received frame and a TX frame at once: the handler reads one and
    /// writes the other.
    pub fn rx_and_tx(&mut self, d: &RxDesc, tx_addr: u64) -> (&[u8], &mut [u8]) {
        let fs = self.frame_size as usize;
        let rx = self.check_span(d.addr, d.len as usize);
        let tx = self.check_span(tx_addr, fs);
        match (rx, tx) {
            // SAFETY: both spans are inside the UMEM; RX and TX frames come
            // from disjoint halves of it and each is owned by us right now,
            // so the shared and the exclusive view never overlap.
            (Some(r), Some(t)) => unsafe {
                (
                    std::slice::from_raw_parts(self.umem.add(r), d.len as usize),
                    std::slice::from_raw_parts_mut(self.umem.add(t), fs),
                )
            },
            (None, Some(t)) => (
                &[],
                // SAFETY: inside the UMEM; the TX frame is owned by us until
                // submitted.
                unsafe { std::slice::from_raw_parts_mut(self.umem.add(t), fs) },
            ),
            _ => (&[], &mut []),
        }
    }

    /// The whole buffer of a TX frame.
    pub fn tx_buf(&mut self, tx_addr: u64) -> &mut [u8] {
        let fs = self.frame_size as usize;
        match self.check_span(tx_addr, fs) {
            // SAFETY: inside the UMEM; the TX frame is owned by us until submitted.
            Some(t) => unsafe { std::slice::from_raw_parts_mut(self.umem.add(t), fs) },
            None => &mut [],
        }
    }

    /// Queues `len` bytes of TX frame `addr` for sending. Returns false (and
    /// frees the frame) when the TX ring is full.
    pub fn submit_tx(&mut self, addr: u64, len: usize) -> bool {
        if self.tx.free(1) == 0 {
            self.tx_free.push(addr);
            return false;
        }
        self.tx.write(
            0,
            libc::xdp_desc {
                addr,
                len: len as u32,
                options: 0,
            },
        );
        self.tx.submit(1);
        self.tx_pending += 1;
        true
    }

    /// Kicks the kernel to transmit what was submitted. In copy mode the
    /// kernel sends only inside this `sendto`, so it is called after every
    /// batch; `EAGAIN`/`EBUSY` mean "try again" and are retried a few times.
    pub fn flush_tx(&mut self) {
        if self.tx_pending == 0 {
            return;
        }
        for _ in 0..8 {
            // SAFETY: sendto with no buffer is the documented AF_XDP TX kick.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null(),
                    0,
                )
            };
            if rc >= 0 {
                break;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => {
                    self.reap_completions();
                    continue;
                }
                _ => break,
            }
        }
        self.tx_pending = 0;
        // The kernel may leave the ring half-sent if it asks to be woken.
        let _ = self.tx.needs_wakeup();
        self.reap_completions();
    }

    /// Moves completed TX frames back to the free stack.
    pub fn reap_completions(&mut self) {
        let n = self.comp.available();
        for i in 0..n {
            let addr = self.comp.read(i);
            self.tx_free.push(addr);
        }
        if n > 0 {
            self.comp.release(n);
        }
    }

    /// Whether the kernel asks for a wakeup before it refills from the fill
    /// ring (need_wakeup mode).
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Kernel statistics of this socket (drops for a full RX ring, empty
    /// fill ring, invalid descriptors).
    pub fn statistics(&self) -> Option<libc::xdp_statistics> {
        statistics_of(self.fd.as_fd())
    }

    /// A second handle on this socket, for reading its statistics from
    /// another thread ([`statistics_of`]) while the worker owns the socket.
    pub fn stats_handle(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }
}

/// Kernel statistics of the AF_XDP socket `fd`.
pub fn statistics_of(fd: std::os::fd::BorrowedFd<'_>) -> Option<libc::xdp_statistics> {
    // SAFETY: zeroed plain C struct.
    let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: getsockopt into a correctly sized struct, on a valid fd.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            &mut st as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0).then_some(st)
}

impl Drop for XskSocket {
    fn drop(&mut self) {
        // Rings unmap themselves; the socket fd closes after this body.
        // SAFETY: unmapping the UMEM mapped in `open`.
        unsafe { libc::munmap(self.umem as *mut libc::c_void, self.umem_len) };
    }
}

fn setsockopt<T>(
    fd: &OwnedFd,
    opt: libc::c_int,
    val: &T,
    what: &'static str,
) -> Result<(), XskError> {
    // SAFETY: setsockopt with a pointer to a live value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(sys(what));
    }
    Ok(())
}

/// Raises `RLIMIT_MEMLOCK` to unlimited (UMEM and BPF maps are pinned
/// memory). Needs CAP_SYS_RESOURCE; harmless when already high enough.
pub fn raise_memlock_limit() -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `fd` is readable or `timeout_ms` passes (poll(2) on up to two
/// descriptors, e.g. the socket and the worker's wake-up eventfd).
pub fn wait_readable(fds: &[RawFd], timeout_ms: i32) {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 2];
    for (p, fd) in pfds.iter_mut().zip(fds) {
        p.fd = *fd;
    }
    // SAFETY: poll over a stack array of valid pollfd entries.
    unsafe {
        libc::poll(
            pfds.as_mut_ptr(),
            fds.len().min(2) as libc::nfds_t,
            timeout_ms,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_rejects_bad_sizes() {
        let bad = XskConfig {
            frame_count: 1000,
            ..XskConfig::default()
        };
        assert!(matches!(
            XskSocket::open("lo", 0, &bad),
            Err(XskError::Config(_))
        ));
        let bad = XskConfig {
            ring_size: 4096,
            ..XskConfig::default()
        };
        assert!(matches!(
            XskSocket::open("lo", 0, &bad),
            Err(XskError::Config(_))
        ));
        assert!(matches!(
            XskSocket::open("no-such-if0", 0, &XskConfig::default()),
            Err(XskError::NoInterface(_))
        ));
    }
}
