//! The machine and its load: CPU model, caches, load average, and the CPU time other
//! processes take while a case runs (/proc/stat less this process and its Python child).

use std::process::Command;
use std::time::Instant;

/// `model name` of /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The caches of cpu0, e.g. "L1 48K, L1i 32K, L2 2048K, L3 ...".
pub fn caches() -> String {
    (0..5)
        .filter_map(|i| {
            let d = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
            let rd = |f: &str| {
                std::fs::read_to_string(format!("{d}/{f}"))
                    .ok()
                    .map(|s| s.trim().to_string())
            };
            Some(format!(
                "L{}{} {}",
                rd("level")?,
                if rd("type")? == "Instruction" {
                    "i"
                } else {
                    ""
                },
                rd("size")?
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// stdout of a command, trimmed ("" if it cannot run).
pub fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// /proc/loadavg.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Busy and steal clock ticks of the whole machine so far (/proc/stat).
pub fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

/// utime + stime clock ticks of a process (all its threads), or 0 if it is gone.
pub fn process_ticks(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that closes the command name: state is field 3; utime 14, stime 15.
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let at = |i: usize| {
        f.get(i - 3)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    if f.len() < 13 {
        0
    } else {
        at(14) + at(15)
    }
}

/// Clock ticks per second (getconf CLK_TCK, else 100).
pub fn clk_tck() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| sh("getconf", &["CLK_TCK"]).parse().unwrap_or(100.0))
}

/// Logical CPUs of the machine (/proc/cpuinfo; not the calling thread's affinity mask,
/// which the bench narrows in 2-thread cases).
pub fn cpus() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        let n = std::fs::read_to_string("/proc/cpuinfo")
            .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
            .unwrap_or(0);
        if n > 0 {
            n
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    })
}

/// CPU use of the machine and of this bench (itself and its children `pids`) since a start.
pub struct Probe {
    t: Instant,
    machine: u64,
    mine: u64,
}

impl Probe {
    /// Start measuring now.
    pub fn now(pids: &[u32]) -> Probe {
        Probe {
            t: Instant::now(),
            machine: machine_ticks().0,
            mine: process_ticks("self")
                + pids
                    .iter()
                    .map(|p| process_ticks(&p.to_string()))
                    .sum::<u64>(),
        }
    }

    /// Percent of the machine's capacity (all CPUs) used by other processes since `self`.
    pub fn others(&self, pids: &[u32]) -> f64 {
        let now = Probe::now(pids);
        let other = now.machine as f64 - self.machine as f64 - (now.mine as f64 - self.mine as f64);
        let secs = now.t.duration_since(self.t).as_secs_f64().max(1e-9);
        (100.0 * other / clk_tck() / (cpus() as f64 * secs)).max(0.0)
    }
}

/// CPU time (ns) used so far by all threads of this process and of the processes `pids`
/// (/proc/<pid>/task/*/schedstat; 0 where that is not available).
pub fn busy_ns(pids: &[u32]) -> u64 {
    let mut total = 0;
    let procs = std::iter::once("self".to_string()).chain(pids.iter().map(u32::to_string));
    for p in procs {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// Wait until this process and `pids` are idle: less than 10 % of a core over a 5 ms
/// window (workers that spin after their work — ggml's pool polls for about 0.1 s after a
/// graph, libgomp for about a millisecond after a parallel region — would otherwise take
/// a core from whatever is timed next). At most `max`; returns the time waited.
pub fn quiesce(pids: &[u32], max: std::time::Duration) -> std::time::Duration {
    let t0 = Instant::now();
    let window = std::time::Duration::from_millis(5);
    loop {
        let a = busy_ns(pids);
        std::thread::sleep(window);
        let b = busy_ns(pids);
        if b.saturating_sub(a) < window.as_nanos() as u64 / 10 || t0.elapsed() >= max {
            return t0.elapsed();
        }
    }
}

/// Pin the calling thread to one CPU (Linux sched_setaffinity); threads it creates later
/// inherit the mask, so create every worker pool first.
pub fn pin_current_thread(cpu: usize) -> Result<(), String> {
    set_affinity(&[cpu])
}

/// Let the calling thread run on every CPU again.
pub fn unpin_current_thread() -> Result<(), String> {
    set_affinity(&(0..cpus()).collect::<Vec<_>>())
}

#[cfg(target_os = "linux")]
fn set_affinity(cpus: &[usize]) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // touch that local set; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
            Ok(())
        } else {
            Err(format!(
                "sched_setaffinity({cpus:?}): {}",
                std::io::Error::last_os_error()
            ))
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn set_affinity(cpus: &[usize]) -> Result<(), String> {
    Err(format!("cannot pin to cpus {cpus:?}: not Linux"))
}
