//! Loading the irondhcp XDP program and wiring AF_XDP sockets into it.
//!
//! Its own crate so that everything that runs the program — the daemon and
//! the load generator — shares one loader without the load generator
//! depending on the daemon (and its SQLite store).
//!
//! The program (`xdp-ebpf/program`) is built by `cargo xtask build-ebpf` and
//! embedded in this crate by its build script ([`XDP_OBJECT`]). It redirects
//! whole IPv4/UDP datagrams to the steered port that are addressed to us
//! ([`SteerConfig`]: our MAC or broadcast, one of our IPv4 addresses or
//! 255.255.255.255) to the AF_XDP socket registered for the RX queue they
//! arrived on ([`XdpProgram::register_socket`]), and passes everything else
//! — fragments included — to the kernel, whose firewall and sockets then
//! see it. [`XdpProgram::counters`] reads its per-CPU counters.
//!
//! Dropping an [`XdpProgram`] detaches the program from the interface and
//! unloads it.
//!
//! # Network namespaces
//!
//! Interface names and indexes are resolved in the network namespace of the
//! *calling thread*. To attach to an interface in another namespace, call
//! [`XdpProgram::load`] (and drop the program) from a thread that has entered
//! it with `setns(2)` (e.g. `libc::setns` on `/run/netns/NAME` with
//! `CLONE_NEWNET`); the tests in `integration/tests/xdp_fixtures.rs` do
//! that.

use std::{
    fmt,
    net::Ipv4Addr,
    os::fd::{AsFd as _, BorrowedFd, RawFd},
};

use aya::{
    maps::{MapData, MapError, PerCpuArray, XskMap},
    programs::{xdp::XdpLinkId, ProgramError, TestRun as _, TestRunOptions, Xdp},
    Ebpf, EbpfError, EbpfLoader,
};
use irondhcp_xdp_common::{
    COUNTERS_MAP, COUNTER_FRAGMENT, COUNTER_MALFORMED, COUNTER_NOT_OURS, COUNTER_NO_SOCKET,
    COUNTER_PASSED, COUNTER_REDIRECTED, DHCP_SERVER_PORT, PROGRAM_NAME, REDIRECT_PORT_GLOBAL,
    STEER_ANY_IP, STEER_ANY_MAC, STEER_FLAGS_GLOBAL, STEER_IPS_GLOBAL, STEER_IPS_MAX,
    STEER_MAC_GLOBAL, XSKS_MAP, XSKS_MAX_ENTRIES,
};

/// How many unicast IPv4 addresses a [`SteerConfig`] can list.
pub const MAX_STEER_ADDRESSES: usize = STEER_IPS_MAX;

/// The XDP program object (ELF), embedded at build time; empty when the
/// program was not built (see `xdp-ebpf/loader/build.rs`).
pub static XDP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/irondhcp-xdp.o"));

/// How the XDP program is attached to the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// Native (driver) mode: runs in the NIC driver before any allocation.
    /// Fails if the driver has no XDP support.
    Native,
    /// Generic (SKB) mode: runs in the kernel network stack; works on every
    /// interface, slower.
    Generic,
    /// Native mode if the driver supports it, generic mode otherwise.
    #[default]
    Auto,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Auto => "auto",
        })
    }
}

/// Which frames the program steers to AF_XDP: whole IPv4/UDP datagrams to
/// `port` whose destination MAC is `mac` or broadcast and whose destination
/// IPv4 address is one of `ips` or 255.255.255.255. Everything else stays
/// with the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SteerConfig {
    /// UDP destination port: 67 for the server; the load generator steers
    /// 68 (client replies) or 67 (replies to its relay).
    pub port: u16,
    /// Our MAC (the interface's); `None`: any destination MAC, for the load
    /// generator, whose simulated clients each have their own.
    pub mac: Option<[u8; 6]>,
    /// Our unicast IPv4 addresses, at most [`MAX_STEER_ADDRESSES`], none
    /// 0.0.0.0; `None`: any destination address, for the load generator,
    /// whose replies go to every address of the pool.
    pub ips: Option<Vec<Ipv4Addr>>,
}

impl SteerConfig {
    /// The server's steering: UDP/67 to `mac` or broadcast, and to one of
    /// `ips` or 255.255.255.255.
    pub fn server(mac: [u8; 6], ips: &[Ipv4Addr]) -> Self {
        Self {
            port: DHCP_SERVER_PORT,
            mac: Some(mac),
            ips: Some(ips.to_vec()),
        }
    }

    /// The program's globals for this configuration, checked.
    fn globals(&self) -> Result<SteerGlobals, XdpError> {
        let mut flags = 0u8;
        let mac = match self.mac {
            Some(mac) => mac,
            None => {
                flags |= STEER_ANY_MAC;
                [0; 6]
            }
        };
        let mut slots = [0u32; STEER_IPS_MAX];
        match &self.ips {
            None => flags |= STEER_ANY_IP,
            Some(ips) => {
                if ips.len() > STEER_IPS_MAX {
                    return Err(XdpError::TooManyAddresses {
                        given: ips.len(),
                        max: STEER_IPS_MAX,
                    });
                }
                for (slot, ip) in slots.iter_mut().zip(ips) {
                    if ip.is_unspecified() {
                        return Err(XdpError::UnspecifiedAddress);
                    }
                    // The program compares the wire bytes read natively.
                    *slot = u32::from_ne_bytes(ip.octets());
                }
            }
        }
        Ok(SteerGlobals {
            port: self.port,
            mac,
            ips: slots,
            flags,
        })
    }
}

/// [`SteerConfig`] as the program's globals hold it.
#[derive(Debug, PartialEq, Eq)]
struct SteerGlobals {
    port: u16,
    mac: [u8; 6],
    ips: [u32; STEER_IPS_MAX],
    flags: u8,
}

/// The program's counters, summed over all CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// DHCP frames redirected to an AF_XDP socket.
    pub redirected: u64,
    /// Frames not for the DHCP server, passed to the kernel.
    pub passed: u64,
    /// Frames with truncated or inconsistent headers, passed to the kernel.
    pub malformed: u64,
    /// DHCP frames on an RX queue without a registered socket, passed to the
    /// kernel.
    pub no_socket: u64,
    /// UDP frames to the steered port addressed to another MAC or IPv4
    /// address, passed to the kernel.
    pub not_ours: u64,
    /// IPv4 fragments (any protocol), passed to the kernel.
    pub fragments: u64,
}

/// What can go wrong loading, attaching or talking to the XDP program.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// [`SteerConfig::ips`] lists more addresses than the program holds.
    #[error("the XDP program steers at most {max} IPv4 addresses, {given} given")]
    TooManyAddresses {
        /// Addresses given.
        given: usize,
        /// Slots in the program.
        max: usize,
    },
    /// [`SteerConfig::ips`] lists 0.0.0.0, which is no one's address.
    #[error("0.0.0.0 cannot be an address to steer")]
    UnspecifiedAddress,
    /// The binary was built without the eBPF toolchain.
    #[error(
        "this binary was built without the XDP program; run `cargo xtask build-ebpf`, \
         then rebuild (or point IRONDHCP_XDP_OBJ at a built irondhcp-xdp.o)"
    )]
    NotBuilt,
    /// The kernel refused the object (maps, BTF) — usually missing privileges.
    #[error(
        "loading the XDP object into the kernel failed (root or CAP_BPF + CAP_NET_ADMIN \
         needed): {0}"
    )]
    Load(#[source] Box<EbpfError>),
    /// The object does not contain what this loader expects (stale build?).
    #[error(
        "the XDP object has no {what} named `{name}`; rebuild it with `cargo xtask build-ebpf`"
    )]
    Missing {
        /// "program" or "map".
        what: &'static str,
        /// The name looked up.
        name: &'static str,
    },
    /// The program was rejected by the verifier or could not be loaded.
    #[error("the kernel rejected the XDP program: {0}")]
    Verify(#[source] Box<ProgramError>),
    /// A map has an unexpected type (stale build?).
    #[error("the XDP map `{name}` is unusable: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// Underlying error.
        #[source]
        source: Box<MapError>,
    },
    /// No such interface (in this thread's network namespace).
    #[error("network interface `{0}` not found")]
    UnknownInterface(String),
    /// Attaching failed in the requested mode.
    #[error("attaching XDP in {mode} mode to `{iface}` failed: {source}")]
    Attach {
        /// Interface name.
        iface: String,
        /// Mode tried (native or generic).
        mode: XdpMode,
        /// Underlying error.
        #[source]
        source: Box<ProgramError>,
    },
    /// [`XdpMode::Auto`]: native and generic both failed.
    #[error(
        "attaching XDP to `{iface}` failed in native mode ({native}) and in generic mode \
         ({generic})"
    )]
    AttachAuto {
        /// Interface name.
        iface: String,
        /// Error in native mode.
        native: Box<ProgramError>,
        /// Error in generic mode.
        generic: Box<ProgramError>,
    },
    /// The RX queue has no slot in the socket map.
    #[error("RX queue {queue} is out of range: the XDP program serves queues 0..{max}")]
    QueueOutOfRange {
        /// Queue asked for.
        queue: u32,
        /// Number of queues the map holds.
        max: u32,
    },
    /// The kernel refused the socket for the map (not an AF_XDP socket, or
    /// not bound).
    #[error("registering the AF_XDP socket for RX queue {queue} failed: {source}")]
    RegisterSocket {
        /// Queue.
        queue: u32,
        /// Underlying error.
        #[source]
        source: Box<MapError>,
    },
    /// Reading the counters failed.
    #[error("reading the XDP counters failed: {0}")]
    Counters(#[source] Box<MapError>),
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("test run of the XDP program failed: {0}")]
    TestRun(#[source] Box<ProgramError>),
}

/// The loaded XDP program with its maps; attached to an interface unless
/// created by [`XdpProgram::load_unattached`]. Detached and unloaded on drop.
pub struct XdpProgram {
    /// Owns the program (and detaches its links when dropped).
    ebpf: Ebpf,
    /// `XSKS`: AF_XDP sockets by RX queue.
    xsks: XskMap<MapData>,
    /// `COUNTERS`: per-CPU counters.
    counters: PerCpuArray<MapData, u64>,
    /// Where and how the program is attached, if it is.
    attachment: Option<Attachment>,
}

/// An attachment of the program to an interface.
struct Attachment {
    iface: String,
    mode: XdpMode,
    link: XdpLinkId,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("interface", &self.interface())
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads the program steering what `steer` says and attaches it to
    /// `iface` in `mode` ([`XdpMode::Auto`]: native, falling back to
    /// generic).
    pub fn load(iface: &str, mode: XdpMode, steer: &SteerConfig) -> Result<Self, XdpError> {
        let mut this = Self::load_unattached(steer)?;
        this.attach(iface, mode)?;
        Ok(this)
    }

    /// Loads the program and its maps into the kernel without attaching it
    /// anywhere: for [`XdpProgram::test_run`] and [`XdpProgram::program_fd`].
    pub fn load_unattached(steer: &SteerConfig) -> Result<Self, XdpError> {
        let globals = steer.globals()?;
        if XDP_OBJECT.is_empty() {
            return Err(XdpError::NotBuilt);
        }
        raise_memlock_limit();
        let mut ebpf = EbpfLoader::new()
            .override_global(REDIRECT_PORT_GLOBAL, &globals.port, true)
            .override_global(STEER_MAC_GLOBAL, &globals.mac, true)
            .override_global(STEER_IPS_GLOBAL, &globals.ips, true)
            .override_global(STEER_FLAGS_GLOBAL, &globals.flags, true)
            .load(XDP_OBJECT)
            .map_err(|e| XdpError::Load(Box::new(e)))?;
        program_mut(&mut ebpf)?
            .load()
            .map_err(|e| XdpError::Verify(Box::new(e)))?;

        let xsks = ebpf.take_map(XSKS_MAP).ok_or(XdpError::Missing {
            what: "map",
            name: XSKS_MAP,
        })?;
        let xsks = XskMap::try_from(xsks).map_err(|source| XdpError::Map {
            name: XSKS_MAP,
            source: Box::new(source),
        })?;
        let counters = ebpf.take_map(COUNTERS_MAP).ok_or(XdpError::Missing {
            what: "map",
            name: COUNTERS_MAP,
        })?;
        let counters = PerCpuArray::try_from(counters).map_err(|source| XdpError::Map {
            name: COUNTERS_MAP,
            source: Box::new(source),
        })?;
        Ok(Self {
            ebpf,
            xsks,
            counters,
            attachment: None,
        })
    }

    /// Attaches the loaded program to `iface` (at most once).
    fn attach(&mut self, iface: &str, mode: XdpMode) -> Result<(), XdpError> {
        let program = program_mut(&mut self.ebpf)?;
        let attach = |program: &mut Xdp, mode: XdpMode| {
            let aya_mode = match mode {
                XdpMode::Native | XdpMode::Auto => aya::programs::XdpMode::Driver,
                XdpMode::Generic => aya::programs::XdpMode::Skb,
            };
            program
                .attach(iface, aya_mode)
                .map_err(|source| match source {
                    ProgramError::UnknownInterface { name } => XdpError::UnknownInterface(name),
                    source => XdpError::Attach {
                        iface: iface.to_owned(),
                        mode,
                        source: Box::new(source),
                    },
                })
        };
        let (link, mode) = match mode {
            XdpMode::Native | XdpMode::Generic => (attach(program, mode)?, mode),
            XdpMode::Auto => match attach(program, XdpMode::Native) {
                Ok(link) => (link, XdpMode::Native),
                Err(XdpError::Attach { source: native, .. }) => {
                    match attach(program, XdpMode::Generic) {
                        Ok(link) => {
                            tracing::warn!(
                                iface,
                                error = %native,
                                "native XDP unavailable, attached in generic mode"
                            );
                            (link, XdpMode::Generic)
                        }
                        Err(XdpError::Attach {
                            source: generic, ..
                        }) => {
                            return Err(XdpError::AttachAuto {
                                iface: iface.to_owned(),
                                native,
                                generic,
                            })
                        }
                        Err(other) => return Err(other),
                    }
                }
                Err(other) => return Err(other),
            },
        };
        tracing::info!(iface, %mode, "XDP program attached");
        self.attachment = Some(Attachment {
            iface: iface.to_owned(),
            mode,
            link,
        });
        Ok(())
    }

    /// Puts the AF_XDP socket `fd`, bound to RX queue `queue` of the
    /// interface, into the socket map, so steered frames received on that
    /// queue go to it.
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        self.check_queue(queue)?;
        self.xsks
            .set(queue, fd, 0)
            .map_err(|source| XdpError::RegisterSocket {
                queue,
                source: Box::new(source),
            })
    }

    /// Removes the socket of RX queue `queue`; its DHCP frames go to the
    /// kernel again.
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        self.check_queue(queue)?;
        self.xsks
            .unset(queue)
            .map_err(|source| XdpError::RegisterSocket {
                queue,
                source: Box::new(source),
            })
    }

    fn check_queue(&self, queue: u32) -> Result<(), XdpError> {
        if queue >= XSKS_MAX_ENTRIES {
            return Err(XdpError::QueueOutOfRange {
                queue,
                max: XSKS_MAX_ENTRIES,
            });
        }
        Ok(())
    }

    /// The program's counters, summed over all CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let sum = |index: u32| -> Result<u64, XdpError> {
            let values = self
                .counters
                .get(&index, 0)
                .map_err(|e| XdpError::Counters(Box::new(e)))?;
            Ok(values.iter().fold(0u64, |acc, v| acc.wrapping_add(*v)))
        };
        Ok(XdpCounters {
            redirected: sum(COUNTER_REDIRECTED)?,
            passed: sum(COUNTER_PASSED)?,
            malformed: sum(COUNTER_MALFORMED)?,
            no_socket: sum(COUNTER_NO_SOCKET)?,
            not_ours: sum(COUNTER_NOT_OURS)?,
            fragments: sum(COUNTER_FRAGMENT)?,
        })
    }

    /// The mode the program is attached in: [`XdpMode::Native`] or
    /// [`XdpMode::Generic`]; [`XdpMode::Auto`] only when not attached
    /// ([`XdpProgram::load_unattached`]).
    pub fn mode(&self) -> XdpMode {
        self.attachment.as_ref().map_or(XdpMode::Auto, |a| a.mode)
    }

    /// The interface the program is attached to, if any.
    pub fn interface(&self) -> Option<&str> {
        self.attachment.as_ref().map(|a| a.iface.as_str())
    }

    /// The file descriptor of the loaded program (e.g. for
    /// `BPF_PROG_TEST_RUN` or `bpftool`).
    pub fn program_fd(&self) -> Result<BorrowedFd<'_>, XdpError> {
        let program = program(&self.ebpf)?;
        program
            .fd()
            .map(|fd| fd.as_fd())
            .map_err(|e| XdpError::Verify(Box::new(e)))
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` (RX queue
    /// 0) and returns the XDP action (`XDP_PASS` = 2, `XDP_REDIRECT` = 4, …).
    /// Counters are updated as for a received frame. `frame` must be at
    /// least an Ethernet header (14 bytes) long.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, XdpError> {
        let program = program(&self.ebpf)?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat: 1,
            ..TestRunOptions::default()
        };
        program
            .test_run(opts)
            .map(|result| result.return_value)
            .map_err(|e| XdpError::TestRun(Box::new(e)))
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // aya detaches remaining links when the program is dropped; detach
        // explicitly anyway so a failure is reported.
        let Some(Attachment { iface, link, .. }) = self.attachment.take() else {
            return;
        };
        let result = program_mut(&mut self.ebpf).and_then(|program| {
            program
                .detach(link)
                .map_err(|e| XdpError::Verify(Box::new(e)))
        });
        match result {
            Ok(()) => tracing::info!(iface, "XDP program detached"),
            Err(error) => tracing::warn!(iface, %error, "detaching the XDP program failed"),
        }
    }
}

fn program(ebpf: &Ebpf) -> Result<&Xdp, XdpError> {
    ebpf.program(PROGRAM_NAME)
        .and_then(|p| p.try_into().ok())
        .ok_or(XdpError::Missing {
            what: "program",
            name: PROGRAM_NAME,
        })
}

fn program_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    ebpf.program_mut(PROGRAM_NAME)
        .and_then(|p| p.try_into().ok())
        .ok_or(XdpError::Missing {
            what: "program",
            name: PROGRAM_NAME,
        })
}

/// Lifts `RLIMIT_MEMLOCK`, which kernels before 5.11 charge BPF maps and
/// programs against. Newer kernels use memory cgroups instead, so failing
/// (no `CAP_SYS_RESOURCE`) is only worth a debug message.
fn raise_memlock_limit() {
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer to a local.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) };
    if ret != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "could not raise RLIMIT_MEMLOCK; fine on kernels >= 5.11"
        );
    }
}

#[cfg(test)]
mod tests {
    use irondhcp_xdp_common::DHCP_CLIENT_PORT;

    use super::*;

    #[test]
    fn server_steering_sets_mac_and_addresses_and_no_any_flag() {
        let mac = [2, 0, 0, 0, 0, 2];
        let g = SteerConfig::server(mac, &[Ipv4Addr::new(192, 0, 2, 1)])
            .globals()
            .expect("valid");
        assert_eq!(
            g,
            SteerGlobals {
                port: 67,
                mac,
                ips: [u32::from_ne_bytes([192, 0, 2, 1]), 0, 0, 0],
                flags: 0,
            }
        );
    }

    #[test]
    fn none_means_any_and_sets_the_flags() {
        let steer = SteerConfig {
            port: DHCP_CLIENT_PORT,
            mac: None,
            ips: None,
        };
        let g = steer.globals().expect("valid");
        assert_eq!(g.flags, STEER_ANY_MAC | STEER_ANY_IP);
        assert_eq!(g.port, 68);
        assert_eq!(g.ips, [0; STEER_IPS_MAX]);
    }

    #[test]
    fn empty_address_list_steers_broadcast_only_not_any() {
        let g = SteerConfig::server([2; 6], &[]).globals().expect("valid");
        assert_eq!(g.flags, 0);
        assert_eq!(g.ips, [0; STEER_IPS_MAX]);
    }

    #[test]
    fn too_many_or_unspecified_addresses_are_refused_before_loading() {
        let five: Vec<Ipv4Addr> = (1..=5).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let four = &five[..MAX_STEER_ADDRESSES];
        assert!(SteerConfig::server([2; 6], four).globals().is_ok());
        assert!(matches!(
            XdpProgram::load_unattached(&SteerConfig::server([2; 6], &five)),
            Err(XdpError::TooManyAddresses { given: 5, max: 4 })
        ));
        assert!(matches!(
            XdpProgram::load_unattached(&SteerConfig::server(
                [2; 6],
                &[Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::UNSPECIFIED]
            )),
            Err(XdpError::UnspecifiedAddress)
        ));
    }
}
