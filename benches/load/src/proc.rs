//! The server's CPU time and memory, read from `/proc/PID` (Linux).

use anyhow::{Context, Result};

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is the server running?)"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc stat line")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks as f64 / clock_ticks())
}

/// Resident memory in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    Ok(memory(pid)?.resident)
}

/// A process's memory, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// All of it that is resident (`VmRSS`).
    pub resident: u64,
    /// The resident part that is the process's own (`RssAnon`: heap,
    /// stacks), without the pages of its binary and libraries. The pages of
    /// code a run first touches are no one participant's memory; counted,
    /// they moved a server's figure per participant by up to 50 KiB in 30
    /// participants from run to run.
    pub anonymous: u64,
}

/// Reads `pid`'s [`Memory`] from `/proc/<pid>/status`.
pub fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .with_context(|| format!("no {field} in /proc status"))
    };
    Ok(Memory {
        resident: kib("VmRSS:")?,
        anonymous: kib("RssAnon:")?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`); 100 on every Linux this runs on.
fn clock_ticks() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let me = std::process::id();
        let start = cpu_seconds(me).unwrap();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(me).unwrap() >= start);
        assert!(rss_bytes(me).unwrap() > 1024 * 1024);
        let m = memory(me).unwrap();
        assert!(m.anonymous > 0 && m.anonymous < m.resident);
    }
}

/// The cores this machine offers (1 when it cannot tell).
fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Which cores the server runs on and which the load tool runs on, so the
/// load peers never take the server's time (or the other way round): the
/// server on the first core, the tool on the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    /// Both anywhere, sharing every core.
    Shared,
    /// The server on core 0, the tool on cores 1 and up.
    Apart,
}

impl Pinning {
    /// Moves this process (and every thread it starts later) off the
    /// server's core. Call before any thread starts.
    pub fn pin_tool(self) -> Result<()> {
        if self == Pinning::Shared {
            return Ok(());
        }
        let cores = machine_cores();
        if cores < 2 {
            anyhow::bail!("--pin needs two cores: this machine offers {cores}");
        }
        let status = std::process::Command::new("taskset")
            .args(["-p", "-c", &format!("1-{}", cores - 1)])
            .arg(std::process::id().to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .context("running taskset (util-linux)")?;
        anyhow::ensure!(status.success(), "taskset could not pin the load tool");
        Ok(())
    }

    /// How many cores the server may run on: one when pinned, else every
    /// core. A server sized to its cores (Janus's `event_loops`) is told
    /// this many.
    pub fn server_cores(self) -> usize {
        match self {
            Pinning::Shared => machine_cores(),
            Pinning::Apart => 1,
        }
    }

    /// The command line (never empty) that starts `program` on the
    /// server's core: `taskset` replaces itself with the program, so the
    /// process id is the server's.
    pub fn server_command(self, program: impl AsRef<std::ffi::OsStr>) -> Vec<std::ffi::OsString> {
        let program = program.as_ref().to_owned();
        match self {
            Pinning::Shared => vec![program],
            Pinning::Apart => vec!["taskset".into(), "-c".into(), "0".into(), program],
        }
    }
}
