//! What /proc says about a process tree: CPU time and memory.
//!
//! nginx and HAProxy serve from worker processes under a master, so the
//! cost of a target is the sum over its whole tree.

use std::fs;
use std::io;

/// CPU seconds (user + system) a process has used, all its threads.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (utime, stime, _) = parse_stat(&stat)
        .ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))?;
    Ok((utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// (utime, stime, ppid) from a /proc/PID/stat line. The command name is
/// in parentheses and may hold spaces, so fields count from the last ')'.
pub fn parse_stat(stat: &str) -> Option<(u64, u64, u32)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    Some((
        f.get(11)?.parse().ok()?,
        f.get(12)?.parse().ok()?,
        f.get(1)?.parse().ok()?,
    ))
}

/// `pid` and all its descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) {
                if let Some((_, _, ppid)) = parse_stat(&stat) {
                    parent_of.push((p, ppid));
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// CPU seconds of a whole process tree (processes that exit in between
/// are missed; targets keep their workers for the whole run).
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| cpu_seconds(p).ok())
        .sum()
}

/// Memory of a process tree, KiB: (resident now, peak resident).
pub fn tree_rss_kib(pid: u32) -> (u64, u64) {
    let mut rss = 0;
    let mut hwm = 0;
    for p in tree(pid) {
        if let Ok(status) = fs::read_to_string(format!("/proc/{p}/status")) {
            rss += status_kib(&status, "VmRSS:");
            hwm += status_kib(&status, "VmHWM:");
        }
    }
    (rss, hwm)
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How many TCP connections to `addr` (IPv4) are established, from
/// /proc/net/tcp: the client ends only, as the remote address says.
pub fn established_to(addr: std::net::SocketAddrV4) -> u64 {
    fs::read_to_string("/proc/net/tcp").map_or(0, |t| count_established(&t, addr))
}

fn count_established(table: &str, addr: std::net::SocketAddrV4) -> u64 {
    // The kernel prints the address as the u32 it holds, in host order
    // (little-endian here): 127.0.0.1 is 0100007F. State 01: ESTABLISHED.
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(addr.ip().octets()),
        addr.port()
    );
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            f.get(2) == Some(&want.as_str()) && f.get(3) == Some(&"01")
        })
        .count() as u64
}

/// Busy and total jiffies of some CPUs, from /proc/stat.
pub fn cpu_jiffies(cpus: &[usize]) -> (u64, u64) {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let (mut busy, mut total) = (0, 0);
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut f = rest.split_ascii_whitespace();
        let Some(Ok(n)) = f.next().map(str::parse::<usize>) else {
            continue;
        };
        if !cpus.contains(&n) {
            continue;
        }
        let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        let all: u64 = v.iter().take(8).sum();
        busy += all - idle;
        total += all;
    }
    (busy, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_connections_to_an_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            panic!("IPv4 asked");
        };
        assert_eq!(established_to(addr), 0);
        let conns: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        assert_eq!(
            established_to(addr),
            3,
            "the client ends, not the accepted ones"
        );
        drop(conns);
        let table = "  sl  local_address rem_address   st\n   0: 0100007F:9C40 0100007F:1F90 01 0\n   1: 0100007F:9C41 0100007F:1F90 06 0\n";
        let at = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(count_established(table, at), 1, "TIME_WAIT is not counted");
    }

    #[test]
    fn stat_with_spaces_in_the_name() {
        let line = "1234 (my (odd) proc) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_stat(line), Some((250, 30, 77)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process() {
        let me = std::process::id();
        assert!(cpu_seconds(me).unwrap() >= 0.0);
        let (rss, hwm) = tree_rss_kib(me);
        assert!(rss > 0 && hwm >= rss, "{rss} {hwm}");
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let t = tree(me);
        let mut child = child;
        assert!(t.contains(&child.id()), "{t:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        let (busy, total) = cpu_jiffies(&[0]);
        assert!(total > 0 && busy <= total);
    }
}
