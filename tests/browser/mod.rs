//! Helpers for tests in a real headless Chromium, driven over the DevTools protocol by
//! `tests/browser/driver.mjs` (puppeteer-core): the DOM after scripts ran, console
//! messages and page errors, screenshots and axe-core's accessibility checks; and a
//! fixture data directory from a simulated year.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What the DevTools-protocol driver (`tests/browser/driver.mjs`) saw of one page.
#[derive(Debug, serde::Deserialize)]
pub struct Page {
    /// The browser's own version string, e.g. `Chrome/156.0.8078.129`.
    pub browser: String,
    /// The DOM after the page loaded and its scripts ran.
    pub dom: String,
    /// Console messages, `type: text`.
    pub console: Vec<String>,
    /// Uncaught page errors, and the driver's own if loading or waiting failed.
    pub errors: Vec<String>,
    /// axe-core's WCAG 2.1 A/AA violations, when asked for.
    pub axe: Option<Vec<Violation>>,
}

/// One axe-core rule the page breaks, with the elements that break it.
#[derive(Debug, serde::Deserialize)]
pub struct Violation {
    /// The rule, e.g. `color-contrast`.
    pub id: String,
    /// `minor` to `critical`.
    pub impact: Option<String>,
    /// What the rule asks for.
    pub help: String,
    /// CSS selectors of the offending elements.
    pub nodes: Vec<String>,
}

impl Page {
    /// Everything the page said: console messages, then page errors (any is a
    /// failure for culla's pages).
    pub fn said(&self) -> Vec<String> {
        self.console
            .iter()
            .chain(self.errors.iter())
            .cloned()
            .collect()
    }
}

/// How to open a page: what to wait for, and what to take from it.
#[derive(Debug, Default, serde::Serialize)]
pub struct Open<'a> {
    /// The page.
    pub url: &'a str,
    /// A CSS selector to wait for after the load event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<&'a str>,
    /// A screenshot: `{ path, width, height }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<serde_json::Value>,
    /// Run axe-core's WCAG 2.1 A/AA rules.
    pub axe: bool,
}

/// Opens a page in Debian's chromium through the DevTools protocol (puppeteer-core,
/// installed in `tests/browser/node_modules` by `scripts/setup.sh`).
pub fn open(req: &Open) -> Page {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        here.join("node_modules/puppeteer-core").is_dir(),
        "the browser driver is not installed: run scripts/setup.sh (npm ci in tests/browser)"
    );
    let node = std::env::var("CULLA_NODE").unwrap_or_else(|_| "node".into());
    let child = Command::new(node)
        .arg(here.join("driver.mjs"))
        .arg(serde_json::to_string(req).unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node (apt-get install -y nodejs, or set CULLA_NODE)");
    let pid = child.id();
    // Read the pipes while it runs (a large DOM would fill them and block the driver).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!(
                "the browser driver did not finish within 180 s for {}",
                req.url
            );
        }
    };
    assert!(
        out.status.success(),
        "the browser driver failed for {}: {}",
        req.url,
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Page = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the browser driver's answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("browser: {} for {}", page.browser, req.url);
    page
}

/// The DOM once the page loaded (and `wait_for` appeared), with everything it said.
pub fn dump_dom(url: &str, wait_for: Option<&str>) -> (String, Vec<String>) {
    let page = open(&Open {
        url,
        wait_for,
        ..Default::default()
    });
    let said = page.said();
    (page.dom, said)
}

/// Takes a screenshot into `target/browser-shots/<name>.png` (kept out of git).
pub fn screenshot(
    url: &str,
    name: &str,
    (width, height): (u32, u32),
    wait_for: Option<&str>,
) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-shots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    open(&Open {
        url,
        wait_for,
        screenshot: Some(serde_json::json!({
            "path": path, "width": width, "height": height,
        })),
        ..Default::default()
    });
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
