//! This process's resident memory, open file descriptors and CPU time, from `/proc/self`
//! (Linux; elsewhere nothing is reported).

/// Clock ticks per second of `/proc/self/stat`'s CPU times: USER_HZ, 100 on every Linux
/// architecture (the kernel scales its internal tick to it for userspace).
const USER_HZ: f64 = 100.0;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct ProcessStats {
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub cpu_seconds: f64,
}

/// Reads `/proc/self`; None where it does not exist.
pub(crate) fn read() -> Option<ProcessStats> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(ProcessStats {
        resident_bytes: resident_kib(&status)? * 1024,
        open_fds,
        max_fds: max_open_files(&limits),
        cpu_seconds: cpu_ticks(&stat)? as f64 / USER_HZ,
    })
}

/// `VmRSS:   1234 kB` of /proc/self/status.
fn resident_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of /proc/self/stat: fields 14 and 15, counted after the command name,
/// which is in parentheses and may itself hold spaces.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// The soft limit of `Max open files` in /proc/self/limits.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_field_by_field() {
        let stat = "4242 (talk connect) S 1 4242 4242 0 -1 4194560 2370 0 0 0 150 25 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(175));
        let status = "Name:\ttalkconnect\nVmPeak:\t  99 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(resident_kib(status), Some(20480));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory_and_files() {
        let stats = read().unwrap();
        assert!(stats.resident_bytes > 1024 * 1024, "{stats:?}");
        assert!(stats.open_fds >= 3, "{stats:?}");
    }
}
