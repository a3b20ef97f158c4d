//! A device as a child process (`w4-device`): one SQLite file driven over
//! stdin/stdout, one command per line, so that the test can SIGKILL it in
//! the middle of any call and start it again.
//!
//! The line protocol (hex for bytes):
//!
//! | command | answer |
//! |---|---|
//! | `W id key:col:delta,…` | `ok` — one transaction: the deltas and ledger id |
//! | `L id` | `ok 1` if ledger id committed, else `ok 0` |
//! | `Q` | `ok HEX` — `atomik_sync_request()` |
//! | `S HEX` | `ok HEX` — `atomik_sync(request)` |
//! | `F HEX` | `ok N` — `atomik_sync_finish(response)` |
//! | `R` | `ok key:HEX:HEX,…` — every row |
//! | `D` | `ok DN DF` — digests |
//! | `P` | `ok N` — parked deltas |
//!
//! Any failure answers `err MESSAGE` on one line.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::node::{fixed17, Node, Row};
use crate::schema::{Column, Delta};
use crate::sqlite_node::SqliteNode;

/// Encode deltas for a `W` command.
pub fn encode_deltas(deltas: &[Delta]) -> String {
    deltas
        .iter()
        .map(|d| format!("{}:{}:{}", d.key, d.column.name(), d.delta))
        .collect::<Vec<_>>()
        .join(",")
}

/// Decode the deltas of a `W` command.
///
/// # Errors
/// Malformed text.
pub fn decode_deltas(text: &str) -> Result<Vec<Delta>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            let mut parts = item.split(':');
            let (Some(k), Some(c), Some(d), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                bail!("bad delta {item:?}: expected key:column:delta");
            };
            let column = match c {
                "n" => Column::N,
                "f" => Column::F,
                _ => bail!("bad column {c:?} in {item:?}"),
            };
            Ok(Delta {
                key: k.parse().with_context(|| format!("bad key in {item:?}"))?,
                column,
                delta: d
                    .parse()
                    .with_context(|| format!("bad delta in {item:?}"))?,
            })
        })
        .collect()
}

/// Run one command of the line protocol against `node`; the answer
/// without the `ok ` prefix.
///
/// # Errors
/// The command's error, or a malformed command.
pub fn execute(node: &mut SqliteNode, line: &str) -> Result<String> {
    let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
    let bytes = || hex::decode(arg).context("argument is not hex");
    Ok(match cmd {
        "W" => {
            let (id, deltas) = arg.split_once(' ').unwrap_or((arg, ""));
            node.write(id.parse()?, &decode_deltas(deltas)?)?;
            String::new()
        }
        "L" => u8::from(node.has_written(arg.parse()?)?).to_string(),
        "Q" => hex::encode(node.sync_request()?),
        "S" => hex::encode(node.serve_sync(&bytes()?)?),
        "F" => node.finish_sync(&bytes()?)?.to_string(),
        "R" => node
            .rows()?
            .iter()
            .map(|(k, n, f)| format!("{k}:{}:{}", hex::encode(n), hex::encode(f)))
            .collect::<Vec<_>>()
            .join(","),
        "D" => {
            let (n, f) = node.digests()?;
            format!("{n} {f}")
        }
        "P" => node.parked()?.to_string(),
        _ => bail!("unknown command {cmd:?}"),
    })
}

/// The child's main loop: read commands until stdin closes.
///
/// # Errors
/// The database cannot be opened, or stdout is gone.
pub fn serve_stdio(path: &Path) -> Result<()> {
    let mut node = SqliteNode::open(path)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        match execute(&mut node, line.trim_end()) {
            Ok(answer) => writeln!(out, "ok {answer}")?,
            Err(e) => writeln!(out, "err {}", format!("{e:#}").replace('\n', " "))?,
        }
        out.flush()?;
    }
    Ok(())
}

/// A running device process and the file it keeps.
#[derive(Debug)]
pub struct DeviceProcess {
    program: PathBuf,
    path: PathBuf,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl DeviceProcess {
    /// Start `program` (the `w4-device` binary) on the database at `path`.
    ///
    /// # Errors
    /// The process cannot be started.
    pub fn start(program: &Path, path: &Path) -> Result<Self> {
        let mut child = Command::new(program)
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        Ok(DeviceProcess {
            program: program.to_path_buf(),
            path: path.to_path_buf(),
            child,
            stdin,
            stdout,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&mut self, line: &str) -> Result<()> {
        self.stdin.write_all(line.as_bytes())?;
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()?;
        Ok(())
    }

    fn receive(&mut self) -> Result<String> {
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer)? == 0 {
            bail!("device {} exited", self.path.display());
        }
        let answer = answer.trim_end();
        match answer.split_once(' ').unwrap_or((answer, "")) {
            ("ok", rest) => Ok(rest.to_string()),
            ("err", why) => Err(anyhow!("{why}")),
            _ => bail!("device {} answered {answer:?}", self.path.display()),
        }
    }

    /// Send one command and wait for its answer.
    ///
    /// # Errors
    /// The command's error.
    pub fn call(&mut self, line: &str) -> Result<String> {
        self.send(line)?;
        self.receive()
    }

    /// Send one command, let it run for `after`, then kill the process
    /// (SIGKILL) and start a new one on the same file. Whether the command
    /// committed is unknown to the caller; that is the point.
    ///
    /// # Errors
    /// The process cannot be restarted.
    pub fn kill_during(&mut self, line: &str, after: Duration) -> Result<()> {
        self.send(line)?;
        if !after.is_zero() {
            std::thread::sleep(after);
        }
        self.restart()
    }

    /// Kill the process and start a new one on the same file.
    ///
    /// # Errors
    /// The process cannot be restarted.
    pub fn restart(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = DeviceProcess::start(&self.program, &self.path)?;
        Ok(())
    }

    /// Whether the write with ledger id `id` committed.
    ///
    /// # Errors
    /// The device's error.
    pub fn has_written(&mut self, id: u64) -> Result<bool> {
        Ok(self.call(&format!("L {id}"))? == "1")
    }
}

impl Drop for DeviceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unhex(text: &str) -> Result<Vec<u8>> {
    hex::decode(text).context("device answered with bad hex")
}

impl Node for DeviceProcess {
    fn write(&mut self, id: u64, deltas: &[Delta]) -> Result<()> {
        self.call(&format!("W {id} {}", encode_deltas(deltas)))
            .map(drop)
    }

    fn make_relay(&mut self) -> Result<()> {
        anyhow::bail!("W4 devices are not relays")
    }

    fn sync_request(&mut self) -> Result<Vec<u8>> {
        unhex(&self.call("Q")?)
    }

    fn serve_sync(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        unhex(&self.call(&format!("S {}", hex::encode(request)))?)
    }

    fn finish_sync(&mut self, response: &[u8]) -> Result<u64> {
        Ok(self
            .call(&format!("F {}", hex::encode(response)))?
            .parse()?)
    }

    fn rows(&mut self) -> Result<Vec<Row>> {
        let text = self.call("R")?;
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(|item| {
                let mut parts = item.split(':');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(k), Some(n), Some(f)) => {
                        Ok((k.parse()?, fixed17(unhex(n)?)?, fixed17(unhex(f)?)?))
                    }
                    _ => bail!("bad row {item:?}"),
                }
            })
            .collect()
    }

    fn digests(&mut self) -> Result<(i64, i64)> {
        let text = self.call("D")?;
        let (n, f) = text
            .split_once(' ')
            .ok_or_else(|| anyhow!("bad digests {text:?}"))?;
        Ok((n.parse()?, f.parse()?))
    }

    fn parked(&mut self) -> Result<i64> {
        Ok(self.call("P")?.parse()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_round_trip_through_text() {
        let deltas = vec![
            Delta {
                key: 7,
                column: Column::N,
                delta: u64::MAX,
            },
            Delta {
                key: -3,
                column: Column::F,
                delta: 0,
            },
        ];
        assert_eq!(decode_deltas(&encode_deltas(&deltas)).unwrap(), deltas);
        assert!(decode_deltas("1:x:2").is_err());
        assert!(decode_deltas("1:n").is_err());
        assert!(decode_deltas("1:n:2:3").is_err());
    }

    #[test]
    fn commands_run_against_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = SqliteNode::open(&dir.path().join("d.sqlite")).unwrap();
        assert_eq!(execute(&mut node, "W 9 1:n:5,1:f:3").unwrap(), "");
        assert_eq!(execute(&mut node, "L 9").unwrap(), "1");
        assert_eq!(execute(&mut node, "L 10").unwrap(), "0");
        let rows = execute(&mut node, "R").unwrap();
        assert!(rows.starts_with("1:11"), "{rows}");
        assert!(execute(&mut node, "Z").is_err());
        assert!(execute(&mut node, "F zz").is_err());
    }
}
