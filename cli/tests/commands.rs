//! The `atomik` command as a user runs it: demo, sync, serve, token.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn atomik() -> Command {
    Command::new(env!("CARGO_BIN_EXE_atomik"))
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = atomik().args(args).output().expect("atomik runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_converges_and_reports_json() {
    let (ok, out, err) = run(&[
        "demo",
        "--devices",
        "3",
        "--rounds",
        "2",
        "--skus",
        "300",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["converged"], true);
    assert_eq!(v["rows"].as_array().unwrap().len(), 3);
    assert!(v["atomik_bytes"].as_u64().unwrap() < v["full_state_bytes"].as_u64().unwrap());
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let (ok, _, err) = run(&["demo", "--drop", "1.5"]);
    assert!(!ok);
    assert!(err.contains("--drop must be between 0 and 0.9"), "{err}");
    let (ok, _, err) = run(&[
        "sync",
        "--db",
        "/nonexistent/device.sqlite",
        "--hub",
        "hub.sqlite",
    ]);
    assert!(!ok);
    assert!(
        err.contains("no database at /nonexistent/device.sqlite"),
        "{err}"
    );
}

/// A directory with a converged two-device demo (a hub and two devices).
fn converged_demo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, _, err) = run(&[
        "demo",
        "--devices",
        "2",
        "--rounds",
        "1",
        "--skus",
        "50",
        "--dir",
        d,
    ]);
    assert!(ok, "{err}");
    dir
}

#[test]
fn sync_a_device_file_directly_and_over_http() {
    let dir = converged_demo();
    let d = dir.path().to_str().unwrap();
    let device = format!("{d}/device-01.sqlite");
    let hub = format!("{d}/hub.sqlite");
    // Everything converged in the demo: a direct sync applies nothing.
    let (ok, out, err) = run(&["sync", "--db", &device, "--hub", &hub]);
    assert!(ok, "{err}");
    assert!(out.contains("0 deltas applied"), "{out}");

    let mut serve = atomik()
        .args(["serve", "--hub", &hub, "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.rsplit(' ').next().unwrap().trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let result = run(&["sync", "--db", &device, "--hub", &url]);
    serve.kill().unwrap();
    serve.wait().unwrap();
    let (ok, out, err) = result;
    assert!(ok, "{err}");
    assert!(out.contains("0 deltas applied"), "{out}");
}

#[test]
fn abench_hashes_agree_across_bank_counts() {
    let (ok, out, err) = run(&["abench", "4099", "0x5EED"]);
    assert!(ok, "{err}");
    assert!(out.contains("runs agree"), "{out}");
    let (ok, _, err) = run(&["abench", "10", "not-a-seed"]);
    assert!(!ok);
    assert!(err.to_lowercase().contains("seed"), "{err}");
}

#[test]
fn an_enrolled_device_syncs_with_its_token_and_no_other() {
    let dir = converged_demo();
    let d = dir.path().to_str().unwrap();
    let (dev1, dev2) = (
        format!("{d}/device-01.sqlite"),
        format!("{d}/device-02.sqlite"),
    );
    let hub = format!("{d}/hub.sqlite");
    let key = format!("{d}/hub.key");
    std::fs::write(&key, b"a dev secret of at least 32 bytes!").unwrap();

    // Without a key, serve stays on loopback.
    let (ok, _, err) = run(&["serve", "--hub", &hub, "--listen", "0.0.0.0:0"]);
    assert!(!ok);
    assert!(err.contains("refusing to listen"), "{err}");
    // An in-flight budget that could never hold a request of --max-body.
    let (ok, _, err) = run(&[
        "serve",
        "--hub",
        &hub,
        "--max-body",
        "4096",
        "--max-in-flight",
        "1024",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--max-in-flight 1024 is below --max-body 4096"),
        "{err}"
    );

    let mut serve = atomik()
        .args(["serve", "--hub", &hub, "--listen", "127.0.0.1:0"])
        .args(["--auth-key", &key])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.rsplit(' ').next().unwrap().trim().to_string();
    let mint = |site_of: &str| {
        let (ok, out, err) = run(&[
            "token",
            "--key",
            &key,
            "--sub",
            "dev1",
            "--site-of",
            site_of,
            "--ttl",
            "600",
        ]);
        assert!(ok, "{err}");
        let file = format!("{site_of}.token");
        std::fs::write(&file, out).unwrap();
        file
    };
    let (token1, token2) = (mint(&dev1), mint(&dev2));
    let no_token = run(&["sync", "--db", &dev1, "--hub", &url]);
    let own = run(&[
        "sync",
        "--db",
        &dev1,
        "--hub",
        &url,
        "--token-file",
        &token1,
    ]);
    let other = run(&[
        "sync",
        "--db",
        &dev1,
        "--hub",
        &url,
        "--token-file",
        &token2,
    ]);
    serve.kill().unwrap();
    serve.wait().unwrap();
    let (ok, _, err) = no_token;
    assert!(!ok);
    assert!(err.contains("(401 unauthenticated)"), "{err}");
    let (ok, out, err) = own;
    assert!(ok, "{err}");
    assert!(out.contains("0 deltas applied"), "{out}");
    let (ok, _, err) = other;
    assert!(!ok);
    assert!(err.contains("(403 forbidden_site)"), "{err}");
}

#[test]
fn inspect_prints_a_message_and_refuses_what_is_not_one() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/fixtures/v2_request_leaf.bin"
    );
    let (ok, out, err) = run(&["inspect", fixture]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("kind     site"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("inventory  qty     add    2              3")),
        "{out}"
    );
    let (ok, out, _) = run(&["inspect", "--json", fixture]);
    assert!(ok);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["kind"], "request");
    assert_eq!(rows[0]["position"], 1234);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"hello").unwrap();
    let (ok, _, err) = run(&["inspect", junk.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("not an atomik message"), "{err}");
}
