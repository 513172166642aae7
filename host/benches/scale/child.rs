//! One sync by the real `baton-segment` binary in a child process, measured from outside:
//! wall time, and from `wait4` the child's peak RSS and CPU time (the host's own, not the
//! bench's or the fake's).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the child did.
#[derive(Debug)]
pub struct Measured {
    pub spawned: Instant,
    pub wall: Duration,
    /// Exit code; `None` when it was killed (by a signal, or by the bench's time limit).
    pub exit: Option<i32>,
    pub timed_out: bool,
    pub peak_rss_bytes: u64,
    pub cpu: Duration,
    /// The last lines the child wrote to stderr (its logs), for a failed run.
    pub stderr_tail: String,
    /// The child's CPU time so far, sampled every 100 ms while it ran.
    pub cpu_samples: Vec<(Instant, Duration)>,
}

impl Measured {
    /// The child's CPU time between two instants (from the nearest samples).
    pub fn cpu_between(&self, from: Instant, to: Instant) -> Duration {
        let at = |t: Instant| {
            self.cpu_samples
                .iter()
                .min_by_key(|(s, _)| if *s > t { *s - t } else { t - *s })
                .map_or(Duration::ZERO, |(_, cpu)| *cpu)
        };
        at(to).saturating_sub(at(from))
    }
}

pub struct Sync<'a> {
    pub binary: &'a Path,
    pub base_url: String,
    pub token: &'a str,
    pub concurrency: u16,
    pub work_dir: &'a Path,
    pub cache_dir: &'a Path,
    pub time_limit: Duration,
}

impl Sync<'_> {
    pub fn output(&self) -> PathBuf {
        self.work_dir.join("sync.c1z")
    }

    /// Runs the sync to its end (or the time limit). Blocks: call it off the fake's runtime.
    pub fn run(&self) -> std::io::Result<Measured> {
        let stderr_path = self.work_dir.join("stderr.log");
        let started = Instant::now();
        let child = Command::new(self.binary)
            .arg("--base-url")
            .arg(&self.base_url)
            .arg("--file")
            .arg(self.output())
            .arg("--concurrency")
            .arg(self.concurrency.to_string())
            .args(["--log-level", "warn", "--log-format", "json"])
            .env("BATON_TOKEN", self.token)
            .env("BATON_CACHE_DIR", self.cache_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path)?)
            .spawn()?;
        let pid = child.id() as libc::pid_t;
        // The child is reaped by `wait4` below, never by `Child`.
        drop(child);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let reaped = wait4(pid);
            let _ = done_tx.send(());
            reaped
        });
        let mut cpu_samples = vec![];
        let deadline = started + self.time_limit;
        let timed_out = loop {
            // Read before the child is reaped (the waiter signals only after reaping).
            if let Some(cpu) = cpu_time(pid) {
                cpu_samples.push((Instant::now(), cpu));
            }
            match done_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => break false,
                Err(_) if Instant::now() >= deadline => break true,
                Err(_) => {}
            }
        };
        if timed_out {
            // Not reaped yet (the waiter has not returned), so the pid is still the child's.
            // SAFETY: kill(2) with a pid we spawned and have not reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let (status, usage) = waiter
            .join()
            .map_err(|_| std::io::Error::other("the waiting thread panicked"))??;
        let wall = started.elapsed();
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        let exit = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        Ok(Measured {
            spawned: started,
            wall,
            exit,
            timed_out,
            // Linux reports ru_maxrss in KiB.
            peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
            cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
            stderr_tail: tail(&stderr_path, 3),
            cpu_samples,
        })
    }
}

fn wait4(pid: libc::pid_t) -> std::io::Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to a c_int and a rusage for the duration of the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// User + system CPU time of a live process, from `/proc/PID/stat`.
fn cpu_time(pid: libc::pid_t) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
