//! `atomik serve` run as a real process by the cross-engine tests.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

/// Start `program serve --hub HUB --listen 127.0.0.1:0` plus `extra` and
/// read its first line: the child, the URL it listens on, that line, and
/// the rest of its stderr (which the caller must keep draining).
///
/// # Errors
/// It cannot be started or does not say where it listens (it is stopped
/// then).
pub fn spawn(
    program: &Path,
    hub: &str,
    extra: &[&str],
) -> Result<(Child, String, String, BufReader<std::process::ChildStderr>)> {
    let mut child = Command::new(program)
        .args(["serve", "--hub", hub, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let mut lines = BufReader::new(stderr);
    let mut first = String::new();
    lines.read_line(&mut first)?;
    let Some(url) = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(str::to_string)
    else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("atomik serve did not start: {first:?}");
    };
    Ok((child, url, first, lines))
}

/// `atomik serve` in front of a hub, on a loopback port it picked.
#[derive(Debug)]
pub struct ServeProcess {
    child: Child,
    url: String,
}

impl ServeProcess {
    /// Start `program serve --hub HUB` (plus `extra` arguments) on a
    /// loopback port it picks, and wait until it listens.
    ///
    /// # Errors
    /// It cannot be started or does not say where it listens.
    pub fn start(program: &Path, hub: &str, extra: &[&str]) -> Result<Self> {
        let (child, url, _, lines) = spawn(program, hub, extra)?;
        // Keep draining its stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let mut lines = lines;
            let _ = lines.read_to_string(&mut sink);
        });
        Ok(ServeProcess { child, url })
    }

    /// POST one sync request; the hub's answer, or its refusal as an error.
    ///
    /// # Errors
    /// Transport errors, or a non-200 answer with its reason.
    pub fn exchange(&self, request: &[u8]) -> Result<Vec<u8>> {
        match ureq::post(&format!("{}/sync", self.url))
            .set("Content-Type", "application/octet-stream")
            .send_bytes(request)
        {
            Ok(resp) => {
                let mut body = Vec::new();
                resp.into_reader().read_to_end(&mut body)?;
                Ok(body)
            }
            Err(ureq::Error::Status(code, resp)) => {
                let reason = resp.into_string().unwrap_or_default();
                bail!("atomik serve answered {code}: {}", reason.trim())
            }
            Err(e) => Err(e).context("cannot reach atomik serve"),
        }
    }
}

impl ServeProcess {
    /// `GET /watch?after=N&wait=SECS`: the hub log's position once it is
    /// past `after`, or after `wait` seconds.
    ///
    /// # Errors
    /// Transport errors, a non-200 answer, an answer without a position.
    pub fn watch(&self, after: u64, wait: u64) -> Result<u64> {
        let answer = ureq::get(&format!("{}/watch?after={after}&wait={wait}", self.url))
            .call()
            .map_err(|e| anyhow!("GET /watch: {e}"))?
            .into_string()?;
        let json: serde_json::Value = serde_json::from_str(&answer)?;
        json["position"]
            .as_u64()
            .ok_or_else(|| anyhow!("GET /watch answered {answer:?}"))
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
