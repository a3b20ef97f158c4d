//! The report: machine and run metadata, the headline ratios, and writing
//! `bench.json`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// Where and when the figures were measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// `model name` of /proc/cpuinfo, if readable.
    pub cpu_model: Option<String>,
    /// `std::env::consts::OS` / `ARCH`.
    pub os: String,
}

impl Machine {
    /// Describe this machine.
    pub fn detect() -> Self {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            }),
            os: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// One headline figure: a ratio (or a yes/no as 1/0) with what it compares.
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    /// Suite: W1, W2, density, W5-sqlite, W5-pg, W3.
    pub suite: String,
    /// What is compared, e.g. "full-state bytes / atomik bytes".
    pub figure: String,
    /// The value (median where repeated).
    pub value: f64,
}

impl Headline {
    pub(crate) fn new(suite: &str, figure: impl Into<String>, value: f64) -> Self {
        Headline {
            suite: suite.to_string(),
            figure: figure.into(),
            value,
        }
    }
}

/// The current commit (`git rev-parse --short HEAD`), if any.
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_string(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian).
pub fn utc_string(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Write `value` as pretty JSON to `path`.
///
/// # Errors
/// Serialization or file errors.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc() {
        assert_eq!(super::utc_string(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc_string(951_827_696), "2000-02-29T12:34:56Z");
    }
}
