//! The annual report and the live dashboard in a real headless Chromium.
//!
//! Report: the NIL map has 88 shapes, charts are not empty, no table shows a count
//! from 1 to 4, the console stays silent, and a screenshot is written to
//! `target/browser-shots/` for a person to look at. Dashboard: `culla serve` binds
//! 127.0.0.1 only, answers unknown queries with 404, refuses injected parameters; the
//! page opens in Chromium (with `?refresh=0`, which draws once and stops polling, so
//! the headless run ends) with non-empty charts that agree with the API, the Municipio
//! filter, a weighted "all lines" rate and a silent console; and events ingested by
//! `culla ingest` after the server started show up on a reload, without a restart.

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
    let (dom, console) = dump_dom(&url, None);
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
    screenshot(&url, "report-it", (1280, 4000), None);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `culla serve`, stopped (by its own process id) when dropped.
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

/// Runs the `culla` binary with `args`; panics with its stderr when it fails.
fn culla(args: &[&std::ffi::OsStr]) {
    let out = Command::new(env!("CARGO_BIN_EXE_culla"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "culla {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A query of the dashboard's API as JSON.
fn api(addr: &str, path: &str) -> serde_json::Value {
    let (status, body) = http_get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The values of column `name` in an API answer (null when hidden).
fn column(v: &serde_json::Value, name: &str) -> Vec<serde_json::Value> {
    let i = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[i].clone())
        .collect()
}

/// The sum of the numbers of column `name` (hidden cells left out).
fn total(v: &serde_json::Value, name: &str) -> f64 {
    column(v, name).iter().filter_map(|x| x.as_f64()).sum()
}

/// The `<title>` texts of the elements of panel `panel` whose markup starts with
/// `start` (e.g. `<rect class="bar"`, `<circle`), in document order.
fn titles(dom: &str, panel: &str, start: &str) -> Vec<String> {
    let from = dom
        .find(&format!("id=\"p-{panel}\""))
        .unwrap_or_else(|| panic!("no panel {panel}"));
    let to = dom[from..]
        .find("</figure>")
        .map_or(dom.len(), |i| from + i);
    let mut out = Vec::new();
    for part in dom[from..to].split(start).skip(1) {
        if let (Some(a), Some(b)) = (part.find("<title>"), part.find("</title>"))
            && a < b
        {
            out.push(part[a + 7..b].to_string());
        }
    }
    out
}

/// A number as the Italian page writes it (`1.234`, `12,9%`): the part after the
/// last `": "` of a title, without `%`.
fn it_number(title: &str) -> f64 {
    let v = title.rsplit(": ").next().unwrap().trim_end_matches('%');
    v.replace('.', "")
        .replace(',', ".")
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {title}"))
}

/// The dashboard page's mark that it finished drawing, or gave up with errors.
const LOADED: &str = "body[data-loaded], body[data-errors]";

/// Opens a dashboard page in headless Chromium (drawn once: `refresh=0`), checks it
/// loaded without an error in the page or the console, and returns its DOM.
fn open_page(addr: &str, path: &str) -> String {
    let url = format!("http://{addr}{path}");
    let (dom, console) = dump_dom(&url, Some(LOADED));
    assert!(
        dom.contains("<html lang=\"it\">"),
        "{url}: {}",
        &dom[..dom.len().min(300)]
    );
    assert!(dom.contains("data-loaded="), "{url} did not finish drawing");
    assert!(
        !dom.contains("data-errors="),
        "{url}: the page reported errors"
    );
    assert!(console.is_empty(), "{url} console: {console:?}");
    dom
}

/// Checks the escalation-rate line of the overview: each month combines the lines'
/// rates weighted by their contacts (escalated / contacts summed over lines, worked out
/// here from the API's counts), not their unweighted mean. Returns how many months the
/// two differ by more than 0.15 points (where the check tells them apart).
fn check_weighted_escalation(addr: &str, dom: &str) -> usize {
    let api = api(addr, "/api/query/escalations_by_month?year=2024");
    let (months, contacts, escalated, rates) = (
        column(&api, "month"),
        column(&api, "contacts"),
        column(&api, "escalated"),
        column(&api, "escalation_rate"),
    );
    let points: Vec<(String, f64)> = titles(dom, "callbacks", "<circle")
        .into_iter()
        .filter(|t| t.contains(" · Tasso di invio: "))
        .map(|t| (t.split(" · ").next().unwrap().to_string(), it_number(&t)))
        .collect();
    assert_eq!(points.len(), 12, "{points:?}");
    let month_it = [
        "gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic",
    ];
    let mut telling = 0;
    for (label, shown) in points {
        let m = month_it
            .iter()
            .position(|x| label == format!("{x} 2024"))
            .unwrap_or_else(|| panic!("month label {label}"));
        let month = format!("2024-{:02}", m + 1);
        let (mut e, mut c, mut sum_rates, mut n) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..months.len() {
            if months[i] != month.as_str() {
                continue;
            }
            if let (Some(ei), Some(ci), Some(ri)) = (
                escalated[i].as_f64(),
                contacts[i].as_f64(),
                rates[i].as_f64(),
            ) {
                e += ei;
                c += ci;
                sum_rates += ri;
                n += 1.0;
            }
        }
        let weighted = 100.0 * e / c;
        let unweighted = 100.0 * sum_rates / n;
        assert!(
            (shown - weighted).abs() <= 0.051,
            "{month}: the page shows {shown}%, escalated/contacts over the lines is {weighted:.3}% (unweighted mean {unweighted:.3}%)"
        );
        if (weighted - unweighted).abs() > 0.15 {
            telling += 1;
        }
    }
    telling
}

#[test]
fn dashboard_in_chromium_is_local_named_only_and_live() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    simulate_into(&data, 2024, 7, 5000, "first");
    let port = free_port();
    let _server = Serve(
        Command::new(env!("CARGO_BIN_EXE_culla"))
            .args(["serve", "--port", &port.to_string(), "--data"])
            .arg(&data)
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
    // Protected tables are released per calendar year: without one, refused.
    assert_eq!(http_get(&addr, "/api/query/unmet_needs_by_nil").0, 400);
    let before = total(
        &api(&addr, "/api/query/contacts_by_month?year=2024"),
        "contacts",
    );
    assert!(before > 3000.0, "{before}");

    // The page itself: served, self-contained, with its panels and filters.
    let (s, page) = http_get(&addr, "/");
    assert_eq!(s, 200);
    assert!(page.contains("<html lang=\"it\">") && page.contains("id=\"p-volume\""));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));

    // The console check below can fail: a page that logs is caught.
    let (_, probe) = dump_dom(
        "data:text/html,<p>x</p><script>console.error('culla-probe')</script>",
        None,
    );
    assert!(
        probe.iter().any(|l| l.contains("culla-probe")),
        "Chromium's console is not captured: {probe:?}"
    );

    // In Chromium: the overview draws every chart from the API.
    let dom = open_page(&addr, "/?refresh=0");
    let bars = titles(&dom, "volume", "<rect class=\"bar\"");
    assert!(bars.len() >= 12, "{} bars", bars.len());
    let drawn: f64 = bars.iter().map(|t| it_number(t)).sum();
    assert_eq!(
        drawn, before,
        "the bars do not add up to the API's contacts"
    );
    assert_eq!(titles(&dom, "hours", "<rect class=\"cell\"").len(), 168);
    assert_eq!(
        dom.matches("<path class=\"series\" d=\"M").count(),
        4,
        "two line panels of two series each"
    );
    assert!(titles(&dom, "needs", "<rect class=\"bar\"").len() >= 10);
    // The Municipio filter, with the 9 Municipi.
    assert!(dom.contains("<select id=\"f-municipio\">"));
    for m in 1..=9 {
        assert!(
            dom.contains(&format!("<option value=\"{m}\">Municipio {m}</option>")),
            "Municipio {m}"
        );
    }
    assert!(dom.contains("<option value=\"milano-020202\">"));
    assert_no_small_counts(&dom);
    screenshot(
        &format!("http://{addr}/?refresh=0"),
        "dashboard-overview",
        (1280, 2400),
        Some(LOADED),
    );

    // The territory dashboard: two maps of the 88 NIL and the tables.
    let territory = open_page(&addr, "/d/territory?refresh=0");
    // Drawn NIL shapes (the page's script also holds the markup, with no number).
    let shapes = territory
        .split("<path class=\"nil\" data-nil=\"")
        .skip(1)
        .filter(|s| s.starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(shapes, 2 * 88);
    assert!(
        titles(&territory, "risk-map", "<path class=\"nil\"")
            .iter()
            .any(|t| t.contains("NIL") && !t.ends_with("nessun dato"))
    );
    assert_no_small_counts(&territory);
    screenshot(
        &format!("http://{addr}/d/territory?refresh=0"),
        "dashboard-territory",
        (1280, 2400),
        Some(LOADED),
    );

    // A second line is ingested by `culla ingest` while the server runs.
    let melzo = tmp.path().join("melzo.ndjson");
    let s = |x: &str| std::ffi::OsString::from(x);
    culla(&[
        &s("simulate"),
        &s("--year"),
        &s("2024"),
        &s("--seed"),
        &s("11"),
        &s("--source"),
        &s("melzo-1000giorni"),
        &s("--contacts"),
        &s("600"),
        &s("--out"),
        melzo.as_os_str(),
    ]);
    culla(&[
        &s("produce"),
        &s("--from"),
        melzo.as_os_str(),
        &s("--data"),
        data.as_os_str(),
    ]);
    culla(&[
        &s("ingest"),
        &s("--until-idle"),
        &s("--data"),
        data.as_os_str(),
    ]);
    let after_api = api(&addr, "/api/query/contacts_by_month?year=2024");
    let after = total(&after_api, "contacts");
    assert!(after > before, "before {before}, after {after}");
    assert!(
        column(&after_api, "source")
            .iter()
            .any(|s| s == "melzo-1000giorni")
    );

    // Reloaded (same server, no restart): the new line is in the filter and the charts.
    let dom = open_page(&addr, "/?refresh=0");
    assert!(dom.contains("<option value=\"melzo-1000giorni\">"));
    let drawn: f64 = titles(&dom, "volume", "<rect class=\"bar\"")
        .iter()
        .map(|t| it_number(t))
        .sum();
    assert_eq!(drawn, after, "the bars do not add up to the API's contacts");
    assert!(drawn > before);
    // With two lines, "all lines" rates are weighted by their denominators.
    let telling = check_weighted_escalation(&addr, &dom);
    assert!(
        telling >= 1,
        "no month where weighted and unweighted means differ: the check proves nothing"
    );
    assert_no_small_counts(&dom);
    screenshot(
        &format!("http://{addr}/?refresh=0"),
        "dashboard-overview-two-lines",
        (1280, 2400),
        Some(LOADED),
    );
}

/// The harness itself can fail: a page that logs, throws and breaks WCAG rules is
/// heard on every channel, and a clean page is not.
#[test]
fn harness_hears_console_page_errors_and_accessibility_faults() {
    let bad = open(&Open {
        url: "data:text/html,<p>x</p><img src='data:,'><script>console.warn('culla-warn');throw new Error('culla-throw')</script>",
        axe: true,
        ..Default::default()
    });
    assert!(bad.browser.starts_with("Chrome/"), "{}", bad.browser);
    assert!(
        bad.console.iter().any(|l| l == "warn: culla-warn"),
        "{:?}",
        bad.console
    );
    assert!(
        bad.errors.iter().any(|e| e.contains("culla-throw")),
        "{:?}",
        bad.errors
    );
    let rules: Vec<&str> = bad
        .axe
        .as_ref()
        .unwrap()
        .iter()
        .map(|v| v.id.as_str())
        .collect();
    for rule in ["image-alt", "html-has-lang", "document-title"] {
        assert!(rules.contains(&rule), "axe found {rules:?}");
    }

    let good = open(&Open {
        url: "data:text/html,<!DOCTYPE html><html lang='it'><head><title>t</title></head><body><main><h1>Culla</h1><img src='data:,' alt='vuoto'></main></body></html>",
        axe: true,
        ..Default::default()
    });
    assert!(good.said().is_empty(), "{:?}", good.said());
    assert_eq!(good.axe.as_ref().map(Vec::len), Some(0), "{:?}", good.axe);
    assert!(good.dom.contains("<h1>Culla</h1>"));
}
