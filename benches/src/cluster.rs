//! A throwaway PostgreSQL 15 cluster for the PostgreSQL suites, run as the
//! `postgres` user (PostgreSQL refuses root) in a temporary directory under
//! `/tmp`, on a private port with its own Unix socket directory, stopped by
//! its data directory afterwards — also when the work inside fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// `pg_config`: `$PG_CONFIG`, else PostgreSQL 15's, else the one on `PATH`.
pub fn pg_config() -> PathBuf {
    if let Some(p) = std::env::var_os("PG_CONFIG") {
        return PathBuf::from(p);
    }
    let pg15 = PathBuf::from("/usr/lib/postgresql/15/bin/pg_config");
    if pg15.exists() {
        pg15
    } else {
        PathBuf::from("pg_config")
    }
}

/// One line of `pg_config --<what>`.
///
/// # Errors
/// When `pg_config` cannot be run.
pub fn pg_config_value(what: &str) -> Result<PathBuf> {
    let pc = pg_config();
    let out = Command::new(&pc)
        .arg(format!("--{what}"))
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (PostgreSQL 15 server binaries needed)",
                pc.display()
            )
        })?;
    if !out.status.success() {
        bail!("{} --{what} failed", pc.display());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Fail with a clear message unless `pg_atomik` is installed into the
/// PostgreSQL that `pg_config` describes.
///
/// # Errors
/// When the extension's control file is missing.
pub fn check_pg_atomik_installed() -> Result<()> {
    let control = pg_config_value("sharedir")?.join("extension/pg_atomik.control");
    if !control.exists() {
        bail!(
            "pg_atomik is not installed ({} is missing): build and install it first, \
             e.g. with pg_atomik/test.sh (or `cargo pgrx install` in pg_atomik/)",
            control.display()
        );
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Run a PostgreSQL program as `postgres` when we are root.
fn as_pg(program: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    Ok(out)
}

fn checked(what: &str, out: Output) -> Result<()> {
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn chown_to_postgres(path: &Path) -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let id = |flag: &str| -> Result<u32> {
        let o = Command::new("id").args([flag, "postgres"]).output()?;
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .context("no postgres user")
    };
    std::os::unix::fs::chown(path, Some(id("-u")?), Some(id("-g")?))
        .with_context(|| format!("cannot chown {}", path.display()))
}

/// Stops the server of a data directory when dropped.
struct Running {
    pg_ctl: PathBuf,
    data: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let data = self.data.to_string_lossy().into_owned();
            if let Err(e) = as_pg(&self.pg_ctl, &["-D", &data, "-m", "fast", "-w", "stop"]) {
                eprintln!("warning: could not stop the cluster in {data}: {e}");
            }
        }
    }
}

/// Create a PostgreSQL 15 cluster in a temporary directory under `/tmp`,
/// start it on `port` (Unix socket only), call `f` with its libpq conninfo
/// (`host=SOCKETDIR port=PORT user=postgres dbname=postgres`), then stop it
/// and delete it, whether `f` succeeded or not.
///
/// The cluster keeps `fsync` on (so `synchronous_commit` means what it
/// says), allows 200 connections (W3 runs pgbench with 128 clients), and
/// preloads pg_atomik so that its background worker folds the deferred
/// deltas of database `postgres` (W3's `atomik-deferred`), with autovacuum
/// waking every second as pg_atomik/README.md recommends for that buffer.
///
/// # Errors
/// When `pg_atomik` is not installed (with a hint to `pg_atomik/test.sh`),
/// when the cluster cannot be created or started, or whatever `f` returns.
pub fn with_throwaway_cluster<T>(port: u16, f: impl FnOnce(&str) -> Result<T>) -> Result<T> {
    check_pg_atomik_installed()?;
    let bin = pg_config_value("bindir")?;
    let dir = tempfile::Builder::new()
        .prefix("atomik-bench-pg-")
        .tempdir_in("/tmp")
        .context("cannot create a temporary directory under /tmp")?;
    chown_to_postgres(dir.path())?;
    let data = dir.path().join("data");
    let sock = dir.path().join("sock");
    std::fs::create_dir(&sock)?;
    chown_to_postgres(&sock)?;
    let data_s = data.to_string_lossy().into_owned();
    checked(
        "initdb",
        as_pg(
            &bin.join("initdb"),
            &["-D", &data_s, "--auth=trust", "-U", "postgres", "--no-sync"],
        )?,
    )?;
    let conf = format!(
        "\nlisten_addresses = ''\nport = {port}\nunix_socket_directories = '{}'\n\
         max_connections = 200\nshared_buffers = 256MB\n\
         shared_preload_libraries = 'pg_atomik'\nautovacuum_naptime = 1s\n",
        sock.display()
    );
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))?;
        file.write_all(conf.as_bytes())?;
    }
    let log = dir.path().join("server.log");
    // From here on the server is stopped when `running` drops.
    let running = Running {
        pg_ctl: bin.join("pg_ctl"),
        data: data.clone(),
    };
    let started = as_pg(
        &running.pg_ctl,
        &["-D", &data_s, "-l", &log.to_string_lossy(), "-w", "start"],
    )?;
    if !started.status.success() {
        let server_log = std::fs::read_to_string(&log).unwrap_or_default();
        bail!(
            "cannot start PostgreSQL on port {port}: {}{}",
            String::from_utf8_lossy(&started.stderr),
            server_log
        );
    }
    let conninfo = format!(
        "host={} port={port} user=postgres dbname=postgres",
        sock.display()
    );
    let out = f(&conninfo);
    // A crashed backend (for instance: the extension's library replaced
    // while the server ran) shows only as "connection closed" to clients;
    // say so, with the server's own lines.
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    let crashes: Vec<&str> = server_log
        .lines()
        .filter(|l| l.contains("terminated by signal") || l.contains("PANIC"))
        .collect();
    if !crashes.is_empty() {
        eprintln!(
            "warning: a PostgreSQL server process crashed during the run:\n{}",
            crashes.join("\n")
        );
    }
    drop(running);
    drop(dir);
    out
}
