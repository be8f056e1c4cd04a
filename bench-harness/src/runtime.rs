//! Threads for the harness's own servers and clients: one monoio runtime
//! per thread, pinned, io_uring with the same ring flags as the proxy so
//! the harness costs as little CPU per request as the thing it measures.

use std::io;
use std::str::FromStr;

/// Which IO driver the harness threads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// io_uring, falling back to epoll.
    #[default]
    Auto,
    Uring,
    Epoll,
}

impl FromStr for IoMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(IoMode::Auto),
            "uring" | "io_uring" => Ok(IoMode::Uring),
            "epoll" => Ok(IoMode::Epoll),
            other => Err(format!(
                "unknown io mode {other:?} (expected auto, uring or epoll)"
            )),
        }
    }
}

pub type Runtime = monoio::FusionRuntime<
    monoio::time::TimeDriver<monoio::IoUringDriver>,
    monoio::time::TimeDriver<monoio::LegacyDriver>,
>;

/// Submission queue entries: room for thousands of idle connections'
/// reads plus a burst of writes.
const URING_ENTRIES: u32 = 16384;

fn tuned_ring() -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun();
    b
}

/// Build this thread's runtime. Returns it and whether it is io_uring.
pub fn build(io: IoMode) -> io::Result<(Runtime, bool)> {
    let uring = |tuned: bool| {
        let b = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().with_entries(URING_ENTRIES);
        let b = if tuned {
            b.uring_builder(tuned_ring())
        } else {
            b
        };
        b.enable_timer().build().map(|rt| (Runtime::from(rt), true))
    };
    let epoll = || {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|rt| (Runtime::from(rt), false))
    };
    match io {
        IoMode::Uring => uring(true).or_else(|_| uring(false)),
        IoMode::Epoll => epoll(),
        IoMode::Auto => uring(true).or_else(|_| uring(false)).or_else(|_| epoll()),
    }
}

/// Run `f` to completion on a fresh runtime on this thread.
pub fn block_on<F, Fut>(io: IoMode, f: F) -> io::Result<Fut::Output>
where
    F: FnOnce(bool) -> Fut,
    Fut: std::future::Future,
{
    let (rt, uring) = build(io)?;
    Ok(match rt {
        monoio::FusionRuntime::Uring(mut rt) => rt.block_on(f(uring)),
        monoio::FusionRuntime::Legacy(mut rt) => rt.block_on(f(uring)),
    })
}

/// Pin the calling thread to `cpus` (all of them: the scheduler picks).
pub fn pin_current(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    let mut set = rustix::thread::CpuSet::new();
    for &cpu in cpus {
        if cpu >= rustix::thread::CpuSet::MAX_CPU {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is out of range"),
            ));
        }
        set.set(cpu);
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(io::Error::from)
}

/// The CPU thread `i` of a group pinned to `cpus` gets: round robin.
pub fn cpu_for(cpus: &[usize], i: usize) -> Option<usize> {
    (!cpus.is_empty()).then(|| cpus[i % cpus.len()])
}

/// Parse a CPU list like `0`, `0,2` or `0-3`.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad CPU number {x:?} in {s:?}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("bad CPU range {part:?} in {s:?}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

/// A CPU list as a command-line value (`0`, `0,2`, `1-3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl FromStr for CpuList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_cpus(s).map(CpuList)
    }
}

/// CPUs this process may run on.
pub fn available_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0").unwrap(), vec![0]);
        assert_eq!(parse_cpus("0,2").unwrap(), vec![0, 2]);
        assert_eq!(parse_cpus("1-3").unwrap(), vec![1, 2, 3]);
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("x").is_err());
        assert_eq!(cpu_for(&[4, 5], 3), Some(5));
        assert_eq!(cpu_for(&[], 3), None);
    }
}
