//! The annual report and the live dashboard in a real headless Chromium.
//!
//! Report: the NIL map has 88 shapes, charts are not empty, no table shows a count
//! from 1 to 4, the console stays silent, and a screenshot is written to
//! `target/browser-shots/` for a person to look at. Dashboard: `culla serve` binds
//! 127.0.0.1 only, answers unknown queries with 404, refuses injected parameters, and
//! shows events committed after it started without a restart.

mod browser;

use browser::*;
use std::process::{Command, Stdio};

#[test]
fn report_renders_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    simulate_into(tmp.path(), 2024, 7, 2500, "y2024");
    let out = tmp.path().join("report.html");
    let status = Command::new(env!("CARGO_BIN_EXE_culla"))
        .args(["report", "--year", "2024", "--lang", "it", "--data"])
        .arg(tmp.path())
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let url = format!("file://{}", out.display());
    let (dom, console) = dump_dom(&url, 1000);
    assert!(
        dom.contains("<html lang=\"it\">"),
        "{}",
        &dom[..dom.len().min(300)]
    );
    assert_eq!(dom.matches("class=\"nil\"").count(), 88);
    assert!(dom.matches("class=\"bar\"").count() >= 12);
    assert_eq!(dom.matches("class=\"cell\"").count(), 168);
    assert_no_small_counts(&dom);
    assert!(console.is_empty(), "console: {console:?}");
    screenshot(&url, "report-it", "1280,4000");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serve(std::process::Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether something listens on `port` on 127.0.0.1 only (from /proc/net/tcp{,6}).
fn listening_addresses(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 3 && cols[3] == "0A" && cols[1].ends_with(&format!(":{port:04X}")) {
                out.push(cols[1].to_string());
            }
        }
    }
    out
}

#[test]
fn dashboard_serves_named_queries_live_and_locally() {
    let tmp = tempfile::tempdir().unwrap();
    simulate_into(tmp.path(), 2024, 7, 1500, "first");
    let port = free_port();
    let _server = Serve(
        Command::new(env!("CARGO_BIN_EXE_culla"))
            .args(["serve", "--port", &port.to_string(), "--data"])
            .arg(tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            started.elapsed().as_secs() < 60,
            "culla serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Bound on 127.0.0.1 only: 0100007F is 127.0.0.1 in /proc/net/tcp.
    let listening = listening_addresses(port);
    assert!(
        !listening.is_empty() && listening.iter().all(|a| a.starts_with("0100007F:")),
        "{listening:?}"
    );
    // Only named queries; no SQL through names or parameters.
    assert_eq!(http_get(&addr, "/api/query/not_a_query").0, 404);
    assert_eq!(
        http_get(
            &addr,
            "/api/query/contacts_by_month%3B%20DROP%20TABLE%20events"
        )
        .0,
        404
    );
    assert_eq!(
        http_get(&addr, "/api/query/SELECT%20*%20FROM%20events").0,
        404
    );
    assert_eq!(
        http_get(&addr, "/api/query/contacts_by_month?year=2024%20OR%201%3D1").0,
        400
    );
    assert_eq!(
        http_get(
            &addr,
            "/api/query/contacts_by_month?source=x'%20OR%20'1'%3D'1"
        )
        .0,
        400
    );
    let total = |body: &str| -> f64 {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let i = v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c == "contacts")
            .unwrap();
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r[i].as_f64())
            .sum()
    };
    let (s, body) = http_get(&addr, "/api/query/contacts_by_month?year=2024");
    assert_eq!(s, 200, "{body}");
    let before = total(&body);
    assert!(before > 100.0, "{before}");

    // The page itself: served, self-contained, with its panels.
    let (s, page) = http_get(&addr, "/");
    assert_eq!(s, 200);
    assert!(page.contains("<html lang=\"it\">") && page.contains("id=\"p-volume\""));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    // TODO(lead): the Chromium run of this page (dump_dom with --virtual-time-budget)
    // hangs while the page polls; see the engineer D report.

    // New events committed while it runs show up without a restart.
    simulate_into(tmp.path(), 2024, 8, 500, "second");
    let (_, body) = http_get(&addr, "/api/query/contacts_by_month?year=2024");
    let after = total(&body);
    assert!(after > before, "before {before}, after {after}");
}
