//! What the bench reads from Linux's `/proc` about itself and about a relay process: a
//! thread's CPU time, a process's CPU time and memory, the process that has a UDP port, the
//! file system under a path.
//!
//! Every reader returns `None` where `/proc` does not say (another system, a kernel without
//! scheduler statistics): the report then says "unknown" rather than failing the run.

use std::fs;
use std::path::Path;
use std::time::Duration;

/// Clock ticks a second of `/proc/*/stat` times; 100 on every Linux platform urc builds for.
const TICKS_PER_SECOND: u64 = 100;

/// An address as `/proc/net/udp*` writes it: the bytes in memory order, each 32-bit word in
/// hex as the machine holds it.
fn proc_ip(hex: &str) -> Option<std::net::IpAddr> {
    let words: Option<Vec<[u8; 4]>> = (0..hex.len() / 8)
        .map(|k| {
            let w = u32::from_str_radix(hex.get(k * 8..k * 8 + 8)?, 16).ok()?;
            Some(w.to_ne_bytes())
        })
        .collect();
    let bytes: Vec<u8> = words?.concat();
    match bytes.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// CPU time a thread of this process has run so far: nanoseconds from `schedstat` where the
/// kernel keeps them, else user + system ticks from `stat`.
pub(super) fn thread_cpu(tid: u32) -> Option<Duration> {
    let dir = format!("/proc/self/task/{tid}");
    if let Ok(s) = fs::read_to_string(format!("{dir}/schedstat"))
        && let Some(ns) = s.split_whitespace().next().and_then(|f| f.parse().ok())
    {
        return Some(Duration::from_nanos(ns));
    }
    stat_ticks(&fs::read_to_string(format!("{dir}/stat")).ok()?)
}

/// The ids of this process's threads whose name begins with `prefix`.
pub(super) fn threads_named(prefix: &str) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let name = fs::read_to_string(t.path().join("comm")).ok()?;
            name.starts_with(prefix)
                .then(|| t.file_name().to_str()?.parse().ok())
                .flatten()
        })
        .collect()
}

/// A process: this one, or another by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proc {
    /// The bench's own process.
    Own,
    /// Another process (a relay).
    Pid(u32),
}

impl Proc {
    fn path(self, file: &str) -> String {
        match self {
            Proc::Own => format!("/proc/self/{file}"),
            Proc::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }

    /// CPU time it has used so far (all its threads, user + system).
    pub(super) fn cpu(self) -> Option<Duration> {
        stat_ticks(&fs::read_to_string(self.path("stat")).ok()?)
    }

    /// Its peak resident memory (`VmHWM`) in bytes, since it started or the peak was reset.
    pub(super) fn peak_rss(self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// Its resident memory now (`VmRSS`) in bytes.
    pub(super) fn rss(self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// Starts its peak memory afresh from the memory in use now, so that the peak of the
    /// measured phase is not the join phase's. Returns false where the kernel refuses.
    pub(super) fn reset_peak_rss(self) -> bool {
        // "5" resets the peak resident set size (proc(5), /proc/pid/clear_refs).
        fs::write(self.path("clear_refs"), "5").is_ok()
    }

    fn status_kib(self, field: &str) -> Option<u64> {
        let status = fs::read_to_string(self.path("status")).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kib: u64 = line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }
}

/// The process that holds the UDP socket bound to `addr` (or to the wildcard address on its
/// port) on this machine: the socket's inode from `/proc/net/udp` (or `udp6`), then the
/// process with a descriptor on it. `None` when no process can be seen holding it (another
/// user's, without the right to look).
pub(super) fn udp_port_owner(addr: std::net::SocketAddr) -> Option<u32> {
    // An IPv4 address may be served by a dual-stack socket on `[::]` (or its mapped form).
    let mapped = match addr.ip() {
        std::net::IpAddr::V4(v4) => Some(std::net::IpAddr::V6(v4.to_ipv6_mapped())),
        std::net::IpAddr::V6(_) => None,
    };
    // Each socket on the port: (exact address, inode).
    let mut found: Vec<(bool, u64)> = Vec::new();
    let tables: &[&str] = if addr.is_ipv4() {
        &["/proc/net/udp", "/proc/net/udp6"]
    } else {
        &["/proc/net/udp6"]
    };
    for table in tables {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let Some((ip, port)) = f.get(1).and_then(|a| a.split_once(':')) else {
                continue;
            };
            let (Ok(port), Some(ip), Some(Ok(inode))) = (
                u16::from_str_radix(port, 16),
                proc_ip(ip),
                f.get(9).map(|i| i.parse::<u64>()),
            ) else {
                continue;
            };
            let exact = ip == addr.ip() || Some(ip) == mapped;
            if port == addr.port() && (exact || ip.is_unspecified()) {
                found.push((exact, inode));
            }
        }
    }
    // The socket bound to the address itself, else one bound to every address.
    let inode = found.iter().find(|(exact, _)| *exact).or(found.first())?.1;
    let wanted = format!("socket:[{inode}]");
    fs::read_dir("/proc").ok()?.find_map(|p| {
        let p = p.ok()?;
        let pid: u32 = p.file_name().to_str()?.parse().ok()?;
        fs::read_dir(p.path().join("fd"))
            .ok()?
            .filter_map(Result::ok)
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()))
            .then_some(pid)
    })
}

/// User + system time from a `stat` line (fields 14 and 15, counted after the command name,
/// which may itself hold spaces and parentheses).
fn stat_ticks(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")" come field 3 (state) onwards: utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

/// The type of the file system that holds `path` (`ext4`, `tmpfs`…), from `/proc/self/mounts`.
pub(super) fn fs_type(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_past_a_command_name_with_spaces() {
        let line = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0";
        assert_eq!(stat_ticks(line), Some(Duration::from_secs(2)));
    }

    #[test]
    fn addresses_are_read_as_proc_writes_them() {
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        assert_eq!(proc_ip(&format!("{lo:08X}")), Some([127, 0, 0, 1].into()));
        let v6 = std::net::Ipv6Addr::LOCALHOST.octets();
        let hex: String = v6
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes(c.try_into().unwrap())))
            .collect();
        assert_eq!(proc_ip(&hex), Some(std::net::Ipv6Addr::LOCALHOST.into()));
        assert_eq!(proc_ip("zz"), None);
    }

    #[test]
    fn the_owner_of_a_udp_port_is_found() {
        if !Path::new("/proc/net/udp").exists() {
            return;
        }
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        assert_eq!(udp_port_owner(addr), Some(std::process::id()));
        // Another address on the same port is not this socket's.
        let other = std::net::SocketAddr::new([127, 0, 0, 2].into(), addr.port());
        assert_eq!(udp_port_owner(other), None);
        drop(socket);
        assert_eq!(udp_port_owner(addr), None);
    }

    #[test]
    fn named_threads_and_the_process_are_measured() {
        if !Path::new("/proc/self/task").exists() {
            return;
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (ready, started) = std::sync::mpsc::channel::<()>();
        let busy = std::thread::Builder::new()
            .name("measure-me-0".into())
            .spawn(move || {
                // A thread names itself once it runs.
                ready.send(()).ok();
                stopped.recv().ok()
            })
            .expect("a thread");
        started.recv().expect("the thread started");
        let tids = threads_named("measure-me-");
        assert_eq!(tids.len(), 1, "{tids:?}");
        assert!(thread_cpu(tids[0]).is_some());
        stop.send(()).ok();
        busy.join().ok();
        assert!(threads_named("no-thread-has-this-name").is_empty());
        assert!(Proc::Own.cpu().is_some());
        assert!(Proc::Own.peak_rss().is_some());
        assert!(Proc::Pid(std::process::id()).rss().is_some());
        assert!(fs_type(Path::new("/")).is_some());
    }
}
