//! `culla serve`: a local, read-only web dashboard over a data directory.
//!
//! A small synchronous HTTP server (`tiny_http`) answers, one request at a time:
//! - `/` and `/d/<dashboard>`: a self-contained page (inline CSS and JS, no external
//!   resources) drawing the panels of a [`Dashboard`](crate::defs::Dashboard);
//! - `/api/query/<name>?year=&source=&municipio=`: one named query of the registry,
//!   disclosure control always on, as JSON — an unknown name is 404, and parameters are
//!   validated and passed as typed values, never spliced into SQL;
//! - `/api/status`: the manifest sequence number and the years and sources present (the
//!   page polls it every 5 s and re-queries when the sequence moves, so data ingest
//!   commits shows up without a restart);
//! - `/api/dashboards`, `/api/nil-shapes`: the definitions and the projected NIL map.
//!
//! Results are cached per (query, filters, manifest sequence), so polling is cheap and a
//! new commit invalidates everything. It binds 127.0.0.1 unless told otherwise.

use crate::data::{Request, Table, fetch};
use crate::defs::Dashboard;
use crate::i18n::{Lang, MESSAGES};
use crate::svg::esc;
use crate::{Error, Result};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const PAGE_JS: &str = include_str!("page.js");

const PAGE_CSS: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; color: #1a1a1a; background: #fff; line-height: 1.45;
  font-family: "Titillium Web", "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background: #004d99; color: #fff; padding: 1rem 2rem; }
header h1 { margin: 0; font-size: 1.6rem; }
header nav a { color: #fff; margin-right: 1rem; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem 2rem 3rem; }
form.filters { display: flex; gap: 1.5rem; flex-wrap: wrap; align-items: end; background: #f3f5f8; padding: .8rem 1rem; margin-bottom: .5rem; }
form.filters label { display: block; font-weight: 600; font-size: .9rem; }
form.filters select { font: inherit; padding: .25rem .4rem; min-width: 10rem; border: 1px solid #4d4d4d; }
#status { color: #4d4d4d; font-size: .9rem; }
.panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1.5rem; }
figure { margin: 0; border: 1px solid #c8c8c8; padding: .8rem 1rem; }
figcaption { font-weight: 700; font-size: 1.05rem; margin-bottom: .4rem; }
svg.chart { width: 100%; height: auto; display: block; }
summary { cursor: pointer; color: #004d99; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 700; }
th, td { border-bottom: 1px solid #c8c8c8; padding: .2rem .4rem; text-align: left; }
td.n, th.n { text-align: right; }
tbody th, td.n { white-space: nowrap; }
.vh { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.note { color: #4d4d4d; font-size: .85rem; }
footer { color: #4d4d4d; font-size: .85rem; border-top: 1px solid #c8c8c8; margin-top: 2rem; padding-top: .6rem; }
a:focus, select:focus, summary:focus { outline: 3px solid #D55E00; outline-offset: 2px; }
"#;

/// How to run the dashboard server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Data directory.
    pub data: PathBuf,
    /// Address to bind (127.0.0.1 by default).
    pub bind: String,
    /// Port (0 picks a free one).
    pub port: u16,
    /// Dashboards to serve; the first is the home page.
    pub dashboards: Vec<Dashboard>,
    /// Language of the pages.
    pub lang: Lang,
    /// Disclosure threshold.
    pub min_count: u32,
}

/// A bound dashboard server; [`Server::run`] answers requests until the process ends.
pub struct Server {
    http: tiny_http::Server,
    opts: ServeOptions,
    rt: tokio::runtime::Runtime,
    cache: HashMap<String, String>,
    cache_seq: u64,
}

/// An HTTP answer: status, content type, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            body: v.to_string(),
        }
    }
    fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({ "error": message }))
    }
}

/// The data directory's version: grows with every commit to its tables (0 when none).
pub fn manifest_seq(data: &Path) -> u64 {
    culla_table::data_version(&culla_table::DataDir::new(data)).unwrap_or(0)
}

/// Years and sources present in `events/` (from the partition directory names).
pub fn years_and_sources(data: &Path) -> (Vec<i32>, Vec<String>) {
    let events = culla_schemas::layout::DataDir::new(data).events_dir();
    let mut years = std::collections::BTreeSet::new();
    let mut sources = std::collections::BTreeSet::new();
    let Ok(rd) = std::fs::read_dir(&events) else {
        return (Vec::new(), Vec::new());
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(source) = name.strip_prefix("source=") else {
            continue;
        };
        sources.insert(source.to_string());
        if let Ok(days) = std::fs::read_dir(e.path()) {
            for d in days.filter_map(|d| d.ok()) {
                let dn = d.file_name().to_string_lossy().to_string();
                if let Some(y) = dn
                    .strip_prefix("event_date=")
                    .and_then(|s| s.get(..4))
                    .and_then(|s| s.parse().ok())
                {
                    years.insert(y);
                }
            }
        }
    }
    (years.into_iter().collect(), sources.into_iter().collect())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parsed and validated filters of an API request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Year.
    pub year: Option<i32>,
    /// Source (service line).
    pub source: Option<String>,
    /// Municipio (`1`–`9` or `unknown`).
    pub municipio: Option<String>,
}

/// Parses `year=&source=&municipio=` (unknown keys are ignored; bad values are errors).
pub fn parse_filters(query: &str) -> std::result::Result<Filters, String> {
    let mut f = Filters::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        if v.is_empty() {
            continue;
        }
        match k {
            "year" => {
                let y: i32 = v.parse().map_err(|_| format!("year {v:?} is not a year"))?;
                if !(2015..=9998).contains(&y) {
                    return Err(format!("year {y} is outside 2015–9998"));
                }
                f.year = Some(y);
            }
            "source" => {
                if v.len() > 64
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    return Err("source must be lowercase letters, digits and '-'".into());
                }
                f.source = Some(v);
            }
            "municipio" => {
                let ok = v == "unknown" || matches!(v.parse::<u8>(), Ok(1..=9));
                if !ok {
                    return Err(format!("municipio {v:?} is not 1–9 or unknown"));
                }
                f.municipio = Some(v);
            }
            _ => {}
        }
    }
    Ok(f)
}

impl Server {
    /// Binds the server (port 0 picks a free port; see [`Server::addr`]).
    pub fn bind(opts: ServeOptions) -> Result<Server> {
        let addr = format!("{}:{}", opts.bind, opts.port);
        if opts.dashboards.is_empty() {
            return Err(Error::Definition {
                file: "(none)".into(),
                message: "no dashboard to serve".into(),
            });
        }
        let http = tiny_http::Server::http(&addr).map_err(|e| Error::Listen {
            addr: addr.clone(),
            message: e.to_string(),
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Listen {
                addr,
                message: e.to_string(),
            })?;
        Ok(Server {
            http,
            opts,
            rt,
            cache: HashMap::new(),
            cache_seq: u64::MAX,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.http.server_addr().to_ip()
    }

    /// Answers requests until the process ends.
    pub fn run(mut self) -> Result<()> {
        loop {
            let req = match self.http.recv() {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a request");
                    continue;
                }
            };
            let started = std::time::Instant::now();
            let method = req.method().clone();
            let url = req.url().to_string();
            let reply = if method == tiny_http::Method::Get || method == tiny_http::Method::Head {
                self.handle(&url)
            } else {
                Reply::error(405, "this server is read-only: only GET is allowed")
            };
            tracing::info!(%method, %url, status = reply.status, ms = started.elapsed().as_millis() as u64, "request");
            let mut resp =
                tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
            for (k, v) in [
                ("Content-Type", reply.content_type),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
                (
                    "Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
                ),
            ] {
                if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                    resp.add_header(h);
                }
            }
            if let Err(e) = req.respond(resp) {
                tracing::debug!(error = %e, "client went away");
            }
        }
    }

    /// Answers one GET for `url` (path and query string).
    pub fn handle(&mut self, url: &str) -> Reply {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let lang = query
            .split('&')
            .find_map(|p| p.strip_prefix("lang="))
            .and_then(Lang::parse)
            .unwrap_or(self.opts.lang);
        match path {
            "/" => self.page(0, lang),
            "/api/status" => self.status(),
            "/api/dashboards" => Reply::json(200, &json!(self.opts.dashboards)),
            "/api/nil-shapes" => Reply::json(200, &json!(crate::map::nil_map())),
            "/favicon.ico" => Reply {
                status: 204,
                content_type: "image/x-icon",
                body: String::new(),
            },
            p => {
                if let Some(name) = p.strip_prefix("/d/") {
                    match self.opts.dashboards.iter().position(|d| d.name == name) {
                        Some(i) => self.page(i, lang),
                        None => Reply::error(404, "no dashboard has that name"),
                    }
                } else if let Some(name) = p.strip_prefix("/api/query/") {
                    self.query(&percent_decode(name), query)
                } else {
                    Reply::error(404, "not found")
                }
            }
        }
    }

    fn status(&self) -> Reply {
        let (years, sources) = years_and_sources(&self.opts.data);
        Reply::json(
            200,
            &json!({ "seq": manifest_seq(&self.opts.data), "years": years, "sources": sources }),
        )
    }

    fn query(&mut self, name: &str, query: &str) -> Reply {
        let Some(info) = culla_queries::find(name) else {
            return Reply::error(404, "no query of the registry has that name");
        };
        let filters = match parse_filters(query) {
            Ok(f) => f,
            Err(e) => return Reply::error(400, &e),
        };
        if info.protected && filters.year.is_none() {
            return Reply::error(
                400,
                "give a year: public tables by territory, need or family characteristic are released per calendar year",
            );
        }
        let seq = manifest_seq(&self.opts.data);
        if seq != self.cache_seq {
            self.cache.clear();
            self.cache_seq = seq;
        }
        let key = format!(
            "{name}|{:?}|{:?}|{:?}",
            filters.year, filters.source, filters.municipio
        );
        if let Some(body) = self.cache.get(&key) {
            return Reply {
                status: 200,
                content_type: "application/json; charset=utf-8",
                body: body.clone(),
            };
        }
        let req = Request {
            data: self.opts.data.clone(),
            year: filters.year,
            source: filters.source.clone(),
            min_count: self.opts.min_count,
        };
        let table: Result<Table> = self.rt.block_on(fetch(name, &req));
        let table = match table {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(query = name, error = %e, "query failed");
                return Reply::error(500, &e.to_string());
            }
        };
        let (table, applied) = match &filters.municipio {
            Some(m) if table.col("municipio").is_some() => {
                (table.filter_eq("municipio", m), "applied")
            }
            Some(_) => (table, "not_applicable"),
            None => (table, "none"),
        };
        let v = json!({
            "query": name,
            "title_it": info.title_it,
            "title_en": info.title_en,
            "seq": seq,
            "year": filters.year,
            "source": filters.source,
            "municipio": filters.municipio,
            "municipio_filter": applied,
            "counts": info.counts,
            "columns": table.columns,
            "rows": table.rows,
        });
        let body = v.to_string();
        self.cache.insert(key, body.clone());
        Reply {
            status: 200,
            content_type: "application/json; charset=utf-8",
            body,
        }
    }

    fn page(&self, i: usize, lang: Lang) -> Reply {
        let d = &self.opts.dashboards[i];
        Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: page_html(d, &self.opts.dashboards, lang, self.opts.min_count),
        }
    }
}

/// The messages of one language as a JSON object for the page's script, with month and
/// weekday names.
fn messages_json(lang: Lang) -> Value {
    let mut m = serde_json::Map::new();
    for (id, _, _) in MESSAGES {
        m.insert(id.to_string(), json!(lang.t(id)));
    }
    m.insert(
        "months".into(),
        json!((1..=12).map(|i| lang.month(i)).collect::<Vec<_>>()),
    );
    m.insert(
        "weekdays".into(),
        json!((1..=7).map(|i| lang.weekday(i)).collect::<Vec<_>>()),
    );
    Value::Object(m)
}

/// JSON safe inside a `<script>` element (no `</script>` or `<!--` can appear).
fn script_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The dashboard page: filters, one figure per panel, and the inline script.
pub fn page_html(d: &Dashboard, all: &[Dashboard], lang: Lang, min_count: u32) -> String {
    let title = |it: &str, en: &str| {
        if lang == Lang::It {
            it.to_string()
        } else {
            en.to_string()
        }
    };
    let dash_title = title(&d.title_it, &d.title_en);
    let mut panels = String::new();
    let mut js_panels = Vec::new();
    for p in &d.panels {
        let pt = title(&p.title_it, &p.title_en);
        panels.push_str(&format!(
            "<figure class=\"panel\" id=\"p-{id}\" aria-labelledby=\"p-{id}-c\"><figcaption id=\"p-{id}-c\">{}</figcaption><div class=\"chart-area\"></div><details><summary>{}</summary><div class=\"data-area\"></div></details><p class=\"note\"></p></figure>",
            esc(&pt),
            esc(lang.t("word.show_data")),
            id = esc(&p.id)
        ));
        let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut v {
            o.insert("title".into(), json!(pt));
        }
        js_panels.push(v);
    }
    let nav: String = all
        .iter()
        .map(|x| {
            let cur = if x.name == d.name {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!(
                "<a href=\"/d/{}?lang={}\"{cur}>{}</a>",
                esc(&x.name),
                lang.tag(),
                esc(&title(&x.title_it, &x.title_en))
            )
        })
        .collect();
    let dash = json!({ "name": d.name, "panels": js_panels });
    format!(
        "<!DOCTYPE html><html lang=\"{tag}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{dt} — culla</title><style>{PAGE_CSS}</style></head><body>\
<header><h1>culla · {dt}</h1><nav aria-label=\"{other}\">{nav}</nav></header><main id=\"content\">\
<form class=\"filters\" aria-label=\"{filters}\" onsubmit=\"return false\">\
<div><label for=\"f-year\">{year}</label><select id=\"f-year\"></select></div>\
<div><label for=\"f-source\">{source}</label><select id=\"f-source\"></select></div>\
<div><label for=\"f-municipio\">{mun}</label><select id=\"f-municipio\"></select></div></form>\
<p id=\"status\" role=\"status\" aria-live=\"polite\"></p><div class=\"panels\">{panels}</div>\
<footer><p>{disclosure}</p><p>{attribution}</p></footer></main>\
<script>window.CULLA_DASH={dash};window.CULLA_T={t};window.CULLA_LANG=\"{tag}\";window.CULLA_MIN_COUNT={min_count};</script>\
<script>{PAGE_JS}</script></body></html>",
        tag = lang.tag(),
        dt = esc(&dash_title),
        other = esc(lang.t("dash.other")),
        filters = esc(lang.t("dash.filters")),
        year = esc(lang.t("dash.year")),
        source = esc(lang.t("dash.source")),
        mun = esc(lang.t("dash.municipio")),
        disclosure = esc(lang.t("s8.disclosure_text")),
        attribution = esc(culla_schemas::reference::ATTRIBUTION),
        dash = script_json(&dash),
        t = script_json(&messages_json(lang)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_validated() {
        assert_eq!(
            parse_filters("year=2024&source=milano-020202&municipio=3").unwrap(),
            Filters {
                year: Some(2024),
                source: Some("milano-020202".into()),
                municipio: Some("3".into())
            }
        );
        assert_eq!(parse_filters("year=&source=").unwrap(), Filters::default());
        assert!(parse_filters("year=2024%3B%20DROP%20TABLE%20events").is_err());
        assert!(parse_filters("source=x'%20OR%20'1'='1").is_err());
        assert!(parse_filters("municipio=10").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%3B"), ";");
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        let s = script_json(&json!({"x": "</script><script>alert(1)</script>"}));
        assert!(!s.contains("</script>"));
    }
}
