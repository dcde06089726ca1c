//! Helpers for tests in a real headless Chromium: find the browser, dump the DOM after
//! scripts ran, take screenshots, collect console messages, and build a fixture data
//! directory from a simulated year.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Chromium binary: `$CULLA_CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
pub fn chromium() -> String {
    if let Ok(c) = std::env::var("CULLA_CHROMIUM") {
        return c;
    }
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new("which")
            .arg(c)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            return c.to_string();
        }
    }
    panic!("headless Chromium is needed: apt-get install -y chromium (or set CULLA_CHROMIUM)");
}

/// Runs Chromium headless with `args` then `url`; returns (stdout, stderr).
pub fn run(url: &str, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start chromium");
    let pid = child.id();
    // Read the pipes while it runs (a large DOM would fill them and block Chromium).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => {
            let out = out.unwrap();
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("chromium did not finish within 120 s for {url}");
        }
    }
}

/// The DOM after scripts ran for `budget_ms` of virtual time, and the console lines.
pub fn dump_dom(url: &str, budget_ms: u32) -> (String, Vec<String>) {
    let (dom, err) = run(
        url,
        &[&format!("--virtual-time-budget={budget_ms}"), "--dump-dom"],
    );
    (dom, console_lines(&err))
}

/// Console messages Chromium logged (any message is a failure for these pages).
pub fn console_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// Takes a screenshot into `target/browser-shots/<name>.png` (kept out of git).
pub fn screenshot(url: &str, name: &str, size: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-shots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    run(
        url,
        &[
            &format!("--screenshot={}", path.display()),
            &format!("--window-size={size}"),
            "--hide-scrollbars",
            "--virtual-time-budget=4000",
        ],
    );
    assert!(path.exists(), "no screenshot written for {url}");
    path
}

/// Writes a simulated year of Milan's line (`contacts` contacts) into `data`.
pub fn simulate_into(data: &Path, year: i32, seed: u64, contacts: u32, tag: &str) -> usize {
    let cfg = culla_simulate::SimConfig {
        year,
        seed,
        contacts: Some(contacts),
        ..Default::default()
    };
    let lines = culla_simulate::simulate(&cfg);
    culla_dashboards::fixture::write_events(data, lines.iter().map(|l| l.bytes.as_slice()), tag)
        .unwrap()
        .events
}

pub use culla_dashboards::fixture::cells;

/// Asserts no table cell is a count from 1 to 4.
pub fn assert_no_small_counts(html: &str) {
    for c in cells(html) {
        assert!(
            !matches!(c.as_str(), "1" | "2" | "3" | "4"),
            "a table shows the count {c}"
        );
    }
}

/// A minimal HTTP GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    // tiny_http answers small bodies with Content-Length; chunked bodies are de-chunked here.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body.as_str();
        while let Some((len, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n.min(tail.len())]);
            rest = tail.get(n + 2..).unwrap_or("");
        }
        out
    } else {
        body
    };
    (status, body)
}
