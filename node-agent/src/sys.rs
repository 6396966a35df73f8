//! The few system calls the agent makes itself (everything else goes through aya): joining a
//! network namespace for a piece of work, interface lookup, and file-system type checks.
//!
//! Endpoint interfaces may live in a node's namespace (the lab gives each simulated node one), and
//! interface names, ifindexes and tc/TCX attachment are all per namespace. BPF maps and programs
//! are not, so only the work that names an interface runs there: on a short-lived thread that
//! joins the namespace, so the agent's other threads never change namespace.

use std::{fs::File, os::fd::AsRawFd, path::PathBuf};

/// Where a namespace name (as `ip netns` knows it) or path points.
pub fn path_of(netns: &str) -> PathBuf {
    if netns.starts_with('/') {
        PathBuf::from(netns)
    } else {
        PathBuf::from("/run/netns").join(netns)
    }
}

/// Runs `work` in `netns` (a name under /run/netns or a path), or here when `None`.
pub fn run_in<T: Send>(netns: Option<&str>, work: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    use anyhow::Context as _;
    let Some(netns) = netns else {
        return Ok(work());
    };
    let path = path_of(netns);
    let file =
        File::open(&path).with_context(|| format!("open network namespace {}", path.display()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns only changes this thread's network namespace; the fd is valid for
                // the call (owned by `file`, alive in this scope), and the thread ends right
                // after `work`, so no other code runs in the joined namespace by accident.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error())
                        .with_context(|| format!("join network namespace {}", path.display()));
                }
                Ok(work())
            })
            .join()
            .map_err(|_| {
                anyhow::anyhow!(
                    "worker thread in network namespace {} panicked",
                    path.display()
                )
            })?
    })
}

/// The ifindex of `ifname` in the current thread's namespace.
pub fn ifindex(ifname: &str) -> std::io::Result<u32> {
    let name = std::ffi::CString::new(ifname).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "interface name contains NUL",
        )
    })?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// The file-system magic number of the file system holding `path`.
pub fn statfs_type(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `cpath` is NUL-terminated and `buf` is a writable statfs buffer for the call.
    let rc = unsafe { libc::statfs(cpath.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statfs returned 0, so it filled `buf`.
    Some(unsafe { buf.assume_init() }.f_type as u64)
}

/// Nanoseconds to add to a `CLOCK_BOOTTIME` timestamp (what `bpf_ktime_get_boot_ns` returns) to
/// get nanoseconds since the Unix epoch, measured now.
pub fn boot_to_unix_offset_ns() -> i128 {
    let read = |clock: libc::clockid_t| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the call.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_BOOTTIME)
}

/// Registers the event ring buffer with the tokio reactor for readiness notifications.
pub fn async_ring(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
) -> std::io::Result<tokio::io::unix::AsyncFd<aya::maps::RingBuf<aya::maps::MapData>>> {
    // SAFETY: the RingBuf owns its map's file descriptor for its whole lifetime and always
    // returns that same descriptor from as_raw_fd; the AsyncFd owns the RingBuf, so the
    // descriptor stays open and unchanged until the AsyncFd is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}
