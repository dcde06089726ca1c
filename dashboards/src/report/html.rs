//! Renders [`ReportData`] as one HTML document: inline CSS (screen and A4 print),
//! inline SVG charts, and no scripts, fonts or images from anywhere else.
//!
//! Accessibility (WCAG 2.1 AA, as Legge 4/2004 requires of public bodies): `<html
//! lang>`, a skip link, one `<h1>` and headings in order, every chart a `<figure>`
//! whose `<svg role="img">` has a `<title>` and a `<desc>` summarising it and whose
//! data is also in a table (in `<details>`), tables with `<caption>` and `<th
//! scope>`, text contrast ≥ 4.5:1 and colour-blind-safe palettes. Every count goes
//! through [`Lang::count`], so no table prints a count from 1 to 4.

use super::ReportData;
use crate::data::{Cell, Hidden, Summary, Table};
use crate::i18n::Lang;
use crate::map::nil_map;
use crate::survey::{Row as SurveyRow, Test};
use crate::svg::{self, HiddenLabels, Mark, Series, esc};
use std::collections::BTreeMap;
use std::fmt::Write as _;

const CSS: &str = r#"
:root { --ink: #1a1a1a; --muted: #4d4d4d; --brand: #004d99; --line: #c8c8c8; --bg-alt: #f3f5f8; }
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.5;
  font-family: "Titillium Web", "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; color: var(--brand); padding: .5rem; }
.skip:focus { left: .5rem; }
header.masthead { background: var(--brand); color: #fff; padding: 2rem 2.5rem 1.5rem; }
header.masthead p { margin: .25rem 0; }
header.masthead .eyebrow { text-transform: uppercase; letter-spacing: .08em; font-size: .85rem; }
h1 { font-size: 2.1rem; margin: .25rem 0 .5rem; line-height: 1.2; }
main { max-width: 1000px; margin: 0 auto; padding: 1rem 2.5rem 3rem; }
h2 { font-size: 1.55rem; color: var(--brand); border-bottom: 3px solid var(--brand); padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { font-size: 1.2rem; margin: 1.6rem 0 .4rem; }
nav.toc ol { columns: 2; padding-left: 1.3rem; }
a { color: var(--brand); }
.kpis { display: grid; grid-template-columns: repeat(3, 1fr); gap: .8rem; padding: 0; list-style: none; }
.kpis li { background: var(--bg-alt); border-left: 5px solid var(--brand); padding: .7rem .9rem; }
.kpis .v { display: block; font-size: 1.8rem; font-weight: 700; }
.kpis .k { color: var(--muted); font-size: .92rem; }
.kpis .ok { color: #00603f; font-weight: 600; font-size: .85rem; }
.kpis .ko { color: #a33a00; font-weight: 600; font-size: .85rem; }
figure { margin: 1.2rem 0 1.6rem; break-inside: avoid; page-break-inside: avoid; }
figcaption { font-weight: 700; margin-bottom: .4rem; }
svg.chart { width: 100%; height: auto; display: block; }
svg.map { max-width: 640px; }
details { margin-top: .4rem; }
summary { cursor: pointer; color: var(--brand); font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .92rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 700; padding: .3rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .28rem .5rem; text-align: left; vertical-align: top; }
thead th { background: var(--bg-alt); border-bottom: 2px solid var(--ink); }
td.n, th.n { text-align: right; white-space: nowrap; }
.note { color: var(--muted); font-size: .9rem; }
.sig { font-weight: 700; }
footer { border-top: 1px solid var(--line); margin-top: 3rem; padding: 1rem 2.5rem; color: var(--muted); font-size: .9rem; }
footer .wrap { max-width: 1000px; margin: 0 auto; }
@media (max-width: 700px) { .kpis { grid-template-columns: 1fr; } main { padding: 1rem; } nav.toc ol { columns: 1; } }
@page { size: A4; margin: 16mm 14mm 18mm; }
@media print {
  html { font-size: 10.5pt; }
  header.masthead { background: #fff; color: var(--ink); border-bottom: 4px solid var(--brand); padding: 0 0 1rem; }
  main { max-width: none; padding: 0; }
  section.chapter { break-before: page; page-break-before: always; }
  .skip, nav.toc { display: none; }
  h2, h3, caption { break-after: avoid; page-break-after: avoid; }
  tr, figure, .kpis li { break-inside: avoid; page-break-inside: avoid; }
  a { color: var(--ink); text-decoration: none; }
}
"#;

/// Renders the complete report document.
pub fn render(d: &ReportData, lang: Lang) -> String {
    let mut r = Renderer {
        d,
        lang,
        fig: 0,
        out: String::with_capacity(256 * 1024),
    };
    r.document();
    r.out
}

struct Renderer<'a> {
    d: &'a ReportData,
    lang: Lang,
    fig: usize,
    out: String,
}

/// One HTML table: caption, column headings, rows (first cell is the row heading).
struct Tbl {
    caption: String,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn table_html(t: &Tbl) -> String {
    let mut o = String::from("<table>");
    let _ = write!(o, "<caption>{}</caption><thead><tr>", esc(&t.caption));
    for (i, h) in t.head.iter().enumerate() {
        let class = if i == 0 { "" } else { " class=\"n\"" };
        let _ = write!(o, "<th scope=\"col\"{class}>{}</th>", esc(h));
    }
    o.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        o.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(o, "<th scope=\"row\">{}</th>", esc(c));
            } else {
                let _ = write!(o, "<td class=\"n\">{}</td>", esc(c));
            }
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
    o
}

fn month_num(m: &str) -> Option<u32> {
    m.get(5..7)?.parse().ok()
}

impl Renderer<'_> {
    fn t(&self, id: &str) -> &'static str {
        self.lang.t(id)
    }

    fn count(&self, c: &Cell) -> String {
        self.lang.count(c, self.d.min_count)
    }

    /// The count in column `name` of a result row: `<5` when small, `c` when withheld
    /// as the partner of a small cell.
    fn cnt(&self, t: &Table, r: &[Cell], name: &str) -> String {
        self.lang.count_in(t, r, name, self.d.min_count)
    }

    fn count_u(&self, v: u64) -> String {
        self.lang.count(&Cell::Int(v as i64), self.d.min_count)
    }

    fn share(&self, v: Option<f64>) -> String {
        v.map(|v| self.lang.pct(v)).unwrap_or_else(|| "–".into())
    }

    /// A label for a coded value (`cat.economic`, …), or the value itself.
    fn label(&self, prefix: &str, v: &str) -> String {
        let id = format!("{prefix}.{v}");
        if crate::i18n::MESSAGES.iter().any(|m| m.0 == id) {
            self.t(&id).to_string()
        } else if v == "unknown" || v.is_empty() {
            self.t("word.unknown").to_string()
        } else {
            v.to_string()
        }
    }

    fn months(&self) -> Vec<String> {
        (1..=12)
            .map(|m| format!("{}-{m:02}", self.d.year))
            .collect()
    }

    fn month_labels(&self) -> Vec<String> {
        (1..=12).map(|m| self.lang.month(m).to_string()).collect()
    }

    fn month_label(&self, m: &str) -> String {
        month_num(m)
            .map(|n| format!("{} {}", self.lang.month(n), &m[..4]))
            .unwrap_or_else(|| m.to_string())
    }

    /// Opens a figure with its number and caption; returns its id.
    fn figure(&mut self, caption: &str, svg: &str, data: &Tbl) {
        self.fig += 1;
        let word = self.t("word.figure");
        let table = self.table_block(data);
        let _ = write!(
            self.out,
            "<figure id=\"fig-{n}\"><figcaption>{word} {n}. {}</figcaption>{svg}<details><summary>{}</summary>{table}</details></figure>",
            esc(caption),
            esc(self.t("word.show_data")),
            n = self.fig
        );
    }

    /// A figure whose data table is shown under the chart rather than folded away
    /// (when the table says more than the chart: intervals, tests).
    fn figure_open(&mut self, caption: &str, svg: &str, data: &Tbl) {
        self.fig += 1;
        let word = self.t("word.figure");
        let table = self.table_block(data);
        let _ = write!(
            self.out,
            "<figure id=\"fig-{n}\"><figcaption>{word} {n}. {}</figcaption>{svg}{table}</figure>",
            esc(caption),
            n = self.fig
        );
    }

    /// A table followed by the legend of the disclosure symbols it uses, if any.
    fn table_block(&self, t: &Tbl) -> String {
        let mut o = table_html(t);
        let cells = || t.rows.iter().flat_map(|r| r.iter().skip(1));
        let min = self.d.min_count.to_string();
        let small = format!("<{min}");
        let mut notes = Vec::new();
        if cells().any(|c| c.starts_with(&small)) {
            notes.push(self.lang.f("legend.small", &[&min, &min]));
        }
        if cells().any(|c| c == culla_queries::disclosure::SECONDARY_SYMBOL) {
            notes.push(self.lang.f("legend.partner", &[&min]));
        }
        if !notes.is_empty() {
            let _ = write!(o, "<p class=\"note\">{}</p>", esc(&notes.join(" ")));
        }
        o
    }

    fn document(&mut self) {
        let lang = self.lang;
        let title = lang.f("doc.title", &[&self.d.year.to_string()]);
        let _ = write!(
            self.out,
            "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — culla</title><style>{CSS}</style></head><body>",
            lang.tag(),
            esc(&title)
        );
        let _ = write!(
            self.out,
            "<a class=\"skip\" href=\"#content\">{}</a>",
            esc(self.t("doc.skip"))
        );
        let lines = if self.d.sources.is_empty() {
            self.t("word.source_all").to_string()
        } else {
            self.d.sources.join(", ")
        };
        let _ = write!(
            self.out,
            "<header class=\"masthead\"><p class=\"eyebrow\">culla · {}</p><h1>{}</h1><p>{}</p><p>{}</p></header>",
            esc(&lines),
            esc(&title),
            esc(self.t("doc.subtitle")),
            esc(&lang.f("doc.lines", &[&lines]))
        );
        self.out.push_str("<main id=\"content\">");
        self.toc();
        self.kpis();
        self.contacts_section();
        self.heatmap_section();
        self.escalation_section();
        self.needs_section();
        self.risk_section();
        if self.d.previous.is_some() {
            self.yoy_section();
        }
        if self.d.survey.is_some() {
            self.survey_section();
        }
        self.methods_section();
        let _ = write!(
            self.out,
            "</main><footer><div class=\"wrap\"><p>{} {}</p><p>{}</p></div></footer></body></html>",
            esc(culla_schemas::reference::ATTRIBUTION),
            esc(self.t("s8.software")),
            esc(&lang.f(
                "doc.generated",
                &[&lang.date(chrono::Utc::now().date_naive())]
            ))
        );
    }

    fn toc(&mut self) {
        let mut items = vec![
            ("s1", "s1.heading"),
            ("s2", "s2.heading"),
            ("s3", "s3.heading"),
            ("s4", "s4.heading"),
            ("s5", "s5.heading"),
        ];
        if self.d.previous.is_some() {
            items.push(("s6", "s6.heading"));
        }
        if self.d.survey.is_some() {
            items.push(("s7", "s7.heading"));
        }
        items.push(("s8", "s8.heading"));
        let _ = write!(
            self.out,
            "<nav class=\"toc\" aria-labelledby=\"toc-h\"><h2 id=\"toc-h\">{}</h2><ol>",
            esc(self.t("doc.toc"))
        );
        for (id, h) in items {
            let _ = write!(
                self.out,
                "<li><a href=\"#{id}\">{}</a></li>",
                esc(self.t(h))
            );
        }
        self.out.push_str("</ol></nav>");
    }

    fn kpis(&mut self) {
        let s = &self.d.summary;
        let lang = self.lang;
        let _ = write!(
            self.out,
            "<section aria-labelledby=\"kpi-h\"><h2 id=\"kpi-h\">{}</h2><ul class=\"kpis\">",
            esc(&lang.f("kpi.heading", &[&self.d.year.to_string()]))
        );
        let check = |v: Option<f64>, target: f64| match v {
            Some(v) if v >= target => {
                format!("<span class=\"ok\">✓ {}</span>", esc(lang.t("kpi.met")))
            }
            Some(_) => format!("<span class=\"ko\">✗ {}</span>", esc(lang.t("kpi.below"))),
            None => String::new(),
        };
        let items = [
            (
                self.count_u(s.contacts),
                self.t("kpi.contacts"),
                String::new(),
            ),
            (
                self.count_u(s.families),
                self.t("kpi.families"),
                String::new(),
            ),
            (
                self.share(s.service_level()),
                self.t("kpi.service_level"),
                check(s.service_level(), 0.85),
            ),
            (
                self.share(s.escalation_rate()),
                self.t("kpi.escalation"),
                String::new(),
            ),
            (
                self.share(s.callback_share()),
                self.t("kpi.callback"),
                check(s.callback_share(), 0.95),
            ),
            (
                format!(
                    "{} ({})",
                    self.count_u(s.unmet),
                    self.share(s.unmet_share())
                ),
                self.t("kpi.unmet"),
                String::new(),
            ),
        ];
        for (v, k, extra) in items {
            let _ = write!(
                self.out,
                "<li><span class=\"v\">{}</span><span class=\"k\">{}</span> {extra}</li>",
                esc(&v),
                esc(k)
            );
        }
        self.out.push_str("</ul></section>");
    }

    fn chapter(&mut self, id: &str, heading: &str, intro: &str) {
        let _ = write!(
            self.out,
            "<section class=\"chapter\" id=\"{id}\" aria-labelledby=\"{id}-h\"><h2 id=\"{id}-h\">{}</h2><p>{}</p>",
            esc(heading),
            esc(intro)
        );
    }

    fn contacts_section(&mut self) {
        let lang = self.lang;
        self.chapter("s1", self.t("s1.heading"), self.t("s1.intro"));
        let t = &self.d.contacts_by_month;
        let months = self.months();
        // Contacts per month and channel, summed over lines (suppressed cells left out).
        let mut channels: Vec<String> = t
            .rows
            .iter()
            .map(|r| t.get(r, "channel").as_text())
            .collect();
        channels.sort();
        channels.dedup();
        let series: Vec<Series> = channels
            .iter()
            .map(|ch| Series {
                name: self.label("channel", ch),
                values: months
                    .iter()
                    .map(|m| {
                        // A month with a hidden cell is hidden (a gap), never a smaller bar.
                        t.rows
                            .iter()
                            .filter(|r| {
                                t.get(r, "month").as_text() == *m
                                    && t.get(r, "channel").as_text() == *ch
                            })
                            .map(|r| t.get(r, "contacts").as_f64())
                            .sum::<Option<f64>>()
                    })
                    .collect(),
            })
            .collect();
        let totals: Vec<f64> = (0..12)
            .map(|i| series.iter().filter_map(|s| s.values[i]).sum::<f64>())
            .collect();
        let busiest = totals
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| lang.month(i as u32 + 1).to_string())
            .unwrap_or_default();
        let desc = lang.f(
            "s1.fig_volume_desc",
            &[
                &self.d.year.to_string(),
                &self.count_u(self.d.summary.contacts),
                &busiest,
            ],
        );
        let svg = svg::bar_chart(
            "c-volume",
            self.t("s1.fig_volume"),
            &desc,
            &self.month_labels(),
            &series,
            &|v| lang.int(v),
        );
        let data = Tbl {
            caption: self.t("s1.fig_volume").to_string(),
            head: [
                "col.month",
                "col.source",
                "col.channel",
                "col.contacts",
                "col.families",
                "col.out_of_hours",
            ]
            .iter()
            .map(|h| self.t(h).to_string())
            .collect(),
            rows: t
                .rows
                .iter()
                .map(|r| {
                    vec![
                        self.month_label(&t.get(r, "month").as_text()),
                        t.get(r, "source").as_text(),
                        self.label("channel", &t.get(r, "channel").as_text()),
                        self.cnt(t, r, "contacts"),
                        self.cnt(t, r, "families"),
                        self.cnt(t, r, "out_of_hours"),
                    ]
                })
                .collect(),
        };
        self.figure(self.t("s1.fig_volume"), &svg, &data);

        // Service level and answer rate by month (weighted by calls across lines).
        let sl = &self.d.service_levels_by_month;
        let weighted = |col: &str| -> Vec<Option<f64>> {
            months
                .iter()
                .map(|m| {
                    let (num, den) = sl
                        .rows
                        .iter()
                        .filter(|r| sl.get(r, "month").as_text() == *m)
                        .filter_map(|r| {
                            Some((sl.get(r, col).as_f64()?, sl.get(r, "calls").as_f64()?))
                        })
                        .fold((0.0, 0.0), |(a, b), (v, n)| (a + v * n, b + n));
                    (den > 0.0).then(|| num / den)
                })
                .collect()
        };
        let sl_series = vec![
            Series {
                name: self.t("col.service_level").to_string(),
                values: weighted("service_level"),
            },
            Series {
                name: self.t("col.answer_rate").to_string(),
                values: weighted("answer_rate"),
            },
        ];
        let months_ok = sl_series[0]
            .values
            .iter()
            .flatten()
            .filter(|v| **v >= 0.85)
            .count();
        let months_n = sl_series[0].values.iter().flatten().count();
        let desc = lang.f(
            "s1.fig_sl_desc",
            &[
                &self.share(self.d.summary.service_level()),
                &months_ok.to_string(),
                &months_n.to_string(),
            ],
        );
        let svg = svg::line_chart(
            "c-sl",
            self.t("s1.fig_sl"),
            &desc,
            &self.month_labels(),
            &sl_series,
            Some((0.85, self.t("s1.target_label"))),
            Some(1.0),
            &|v| lang.pct(v),
        );
        let data = self.service_table();
        self.figure(self.t("s1.fig_sl"), &svg, &data);
        self.out.push_str("</section>");
    }

    fn service_table(&self) -> Tbl {
        let sl = &self.d.service_levels_by_month;
        Tbl {
            caption: self.t("s1.fig_sl").to_string(),
            head: [
                "col.month",
                "col.source",
                "col.calls",
                "col.answered",
                "col.abandoned",
                "col.answer_rate",
                "col.abandonment_rate",
                "col.wait_p50",
                "col.wait_p90",
                "col.service_level",
            ]
            .iter()
            .map(|h| self.t(h).to_string())
            .collect(),
            rows: sl
                .rows
                .iter()
                .map(|r| {
                    vec![
                        self.month_label(&sl.get(r, "month").as_text()),
                        sl.get(r, "source").as_text(),
                        self.cnt(sl, r, "calls"),
                        self.cnt(sl, r, "answered"),
                        self.cnt(sl, r, "abandoned"),
                        self.lang.pct_cell(sl.get(r, "answer_rate")),
                        self.lang.pct_cell(sl.get(r, "abandonment_rate")),
                        self.lang.num_cell(sl.get(r, "wait_p50_s"), 0),
                        self.lang.num_cell(sl.get(r, "wait_p90_s"), 0),
                        self.lang.pct_cell(sl.get(r, "service_level")),
                    ]
                })
                .collect(),
        }
    }

    fn heatmap_section(&mut self) {
        let lang = self.lang;
        self.chapter("s2", self.t("s2.heading"), self.t("s2.intro"));
        let t = &self.d.contacts_by_weekday_hour;
        let mut grid: Vec<Vec<Mark>> = vec![vec![Mark::Value(0.0); 24]; 7];
        for r in &t.rows {
            let (Some(wd), Some(h)) = (t.get(r, "weekday").as_f64(), t.get(r, "hour").as_f64())
            else {
                continue;
            };
            let (wd, h) = (wd as usize, h as usize);
            if (1..=7).contains(&wd) && h < 24 {
                let v = match (t.get(r, "contacts").as_f64(), t.hidden(r, "contacts")) {
                    (Some(v), None) => Mark::Value(v),
                    (_, Some(why)) => Mark::Hidden(why),
                    (None, None) => Mark::Hidden(Hidden::Small),
                };
                grid[wd - 1][h] = grid[wd - 1][h] + v;
            }
        }
        let rows: Vec<String> = (1..=7).map(|d| lang.weekday(d).to_string()).collect();
        let cols: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
        let (mut best, mut bd, mut bh) = (-1.0, 0, 0);
        for (d, row) in grid.iter().enumerate() {
            for (h, v) in row.iter().enumerate() {
                if let Some(v) = v.value().filter(|v| *v > best) {
                    (best, bd, bh) = (v, d, h);
                }
            }
        }
        let desc = lang.f(
            "s2.fig_desc",
            &[
                lang.weekday(bd as u32 + 1),
                &format!("{bh:02}"),
                &self.count_u(best.max(0.0) as u64),
            ],
        );
        let svg = svg::heatmap(
            "c-heat",
            self.t("s2.fig"),
            &desc,
            &rows,
            &cols,
            &grid,
            &|v| lang.int(v),
            HiddenLabels {
                small: self.t("word.suppressed"),
                partner: self.t("word.secondary"),
            },
        );
        let data = Tbl {
            caption: self.t("s2.fig").to_string(),
            head: std::iter::once(self.t("col.weekday").to_string())
                .chain(cols.iter().cloned())
                .collect(),
            rows: grid
                .iter()
                .enumerate()
                .map(|(d, row)| {
                    std::iter::once(rows[d].clone())
                        .chain(row.iter().map(|v| match v {
                            Mark::Value(v) => self.count_u(*v as u64),
                            Mark::Hidden(Hidden::Small) => self.count(&Cell::Null),
                            Mark::Hidden(Hidden::Partner) => {
                                culla_queries::disclosure::SECONDARY_SYMBOL.to_string()
                            }
                        }))
                        .collect()
                })
                .collect(),
        };
        self.figure(self.t("s2.fig"), &svg, &data);
        let s = &self.d.summary;
        let _ = write!(
            self.out,
            "<p>{}</p></section>",
            esc(&lang.f(
                "s2.out_of_hours",
                &[
                    &self.count_u(s.out_of_hours),
                    &self.share(s.out_of_hours_share())
                ]
            ))
        );
    }

    fn escalation_section(&mut self) {
        let lang = self.lang;
        self.chapter("s3", self.t("s3.heading"), self.t("s3.intro"));
        let e = &self.d.escalations_by_month;
        let months = self.months();
        let ratio_of = |num: &str, den: &str| -> Vec<Option<f64>> {
            months
                .iter()
                .map(|m| {
                    let (a, b) = e
                        .rows
                        .iter()
                        .filter(|r| e.get(r, "month").as_text() == *m)
                        .filter_map(|r| Some((e.get(r, num).as_f64()?, e.get(r, den).as_f64()?)))
                        .fold((0.0, 0.0), |(x, y), (a, b)| (x + a, y + b));
                    (b > 0.0).then(|| a / b)
                })
                .collect()
        };
        let series = vec![
            Series {
                name: self.t("col.callback_within").to_string(),
                values: ratio_of("callback_within_target", "referrals"),
            },
            Series {
                name: self.t("col.escalation_rate").to_string(),
                values: ratio_of("escalated", "contacts"),
            },
        ];
        let s = &self.d.summary;
        let median = s
            .callback_median_h
            .map(|v| lang.num(v, 1))
            .unwrap_or_else(|| "–".into());
        let desc = lang.f("s3.fig_desc", &[&self.share(s.callback_share()), &median]);
        let svg = svg::line_chart(
            "c-esc",
            self.t("s3.fig"),
            &desc,
            &self.month_labels(),
            &series,
            Some((0.95, self.t("s3.target_label"))),
            Some(1.0),
            &|v| lang.pct(v),
        );
        let data = Tbl {
            caption: self.t("s3.fig").to_string(),
            head: [
                "col.month",
                "col.source",
                "col.contacts",
                "col.escalated",
                "col.escalation_rate",
                "col.referrals",
                "col.callback_p50",
                "col.callback_p90",
                "col.callback_within",
            ]
            .iter()
            .map(|h| self.t(h).to_string())
            .collect(),
            rows: e
                .rows
                .iter()
                .map(|r| {
                    let share = match e.get(r, "callback_within_target_share") {
                        Cell::Null => {
                            match (
                                e.get(r, "callback_within_target").as_f64(),
                                e.get(r, "referrals").as_f64(),
                            ) {
                                (Some(a), Some(b))
                                    if b > 0.0 && !e.get(r, "callback_within_target").is_null() =>
                                {
                                    lang.pct(a / b)
                                }
                                _ => "–".into(),
                            }
                        }
                        c => lang.pct_cell(c),
                    };
                    vec![
                        self.month_label(&e.get(r, "month").as_text()),
                        e.get(r, "source").as_text(),
                        self.cnt(e, r, "contacts"),
                        self.cnt(e, r, "escalated"),
                        lang.pct_cell(e.get(r, "escalation_rate")),
                        self.cnt(e, r, "referrals"),
                        lang.num_cell(e.get(r, "callback_p50_h"), 1),
                        lang.num_cell(e.get(r, "callback_p90_h"), 1),
                        share,
                    ]
                })
                .collect(),
        };
        self.figure(self.t("s3.fig"), &svg, &data);
        self.out.push_str("</section>");
    }

    fn needs_section(&mut self) {
        let lang = self.lang;
        self.chapter("s4", self.t("s4.heading"), self.t("s4.intro"));
        let t = &self.d.needs_by_category;
        // Per category: (needs, unmet, any part suppressed).
        let mut per: BTreeMap<String, (f64, f64, bool)> = BTreeMap::new();
        for r in &t.rows {
            let e = per.entry(t.get(r, "category").as_text()).or_default();
            match t.get(r, "needs").as_f64() {
                Some(v) => e.0 += v,
                None => e.2 = true,
            }
            match t.get(r, "unmet").as_f64() {
                Some(v) => e.1 += v,
                None => e.2 = true,
            }
        }
        let mut cats: Vec<(String, (f64, f64, bool))> = per.into_iter().collect();
        cats.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        let labels: Vec<String> = cats.iter().map(|(c, _)| self.label("cat", c)).collect();
        let hide = |v: f64| {
            (v > 0.0 && v < f64::from(self.d.min_count))
                .then_some(v)
                .map_or(Some(v), |_| None)
        };
        let series = vec![
            Series {
                name: self.t("series.needs").to_string(),
                values: cats.iter().map(|(_, v)| hide(v.0)).collect(),
            },
            Series {
                name: self.t("series.unmet").to_string(),
                values: cats.iter().map(|(_, v)| hide(v.1)).collect(),
            },
        ];
        let s = &self.d.summary;
        let (top, top_n) = cats
            .first()
            .map(|(c, v)| (self.label("cat", c), v.0))
            .unwrap_or_default();
        let desc = lang.f(
            "s4.fig_desc",
            &[
                &top,
                &self.count_u(top_n as u64),
                &self.count_u(s.unmet),
                &self.count_u(s.needs),
            ],
        );
        let svg = svg::hbar_chart("c-needs", self.t("s4.fig"), &desc, &labels, &series, &|v| {
            lang.int(v)
        });
        let data = Tbl {
            caption: self.t("s4.fig").to_string(),
            head: ["col.category", "col.needs", "col.unmet", "col.unmet_share"]
                .iter()
                .map(|h| self.t(h).to_string())
                .collect(),
            rows: cats
                .iter()
                .zip(&labels)
                .map(|((_, (n, u, partial)), label)| {
                    let mark = if *partial { " *" } else { "" };
                    vec![
                        label.clone(),
                        format!("{}{mark}", self.count_u(*n as u64)),
                        format!("{}{mark}", self.count_u(*u as u64)),
                        if *n > 0.0 && !(*partial) && *u >= f64::from(self.d.min_count) {
                            lang.pct(u / n)
                        } else {
                            "–".into()
                        },
                    ]
                })
                .collect(),
        };
        self.figure(self.t("s4.fig"), &svg, &data);
        if cats.iter().any(|c| c.1.2) {
            let _ = write!(
                self.out,
                "<p class=\"note\">{}</p>",
                esc(self.t("legend.partial"))
            );
        }
        // Reasons: category rows, reason columns.
        let rt = &self.d.unmet_needs_by_reason;
        let mut reasons: Vec<String> = rt
            .rows
            .iter()
            .map(|r| rt.get(r, "reason").as_text())
            .collect();
        reasons.sort();
        reasons.dedup();
        let mut rcats: Vec<String> = rt
            .rows
            .iter()
            .map(|r| rt.get(r, "category").as_text())
            .collect();
        rcats.sort();
        rcats.dedup();
        let table = Tbl {
            caption: self.t("s4.reasons").to_string(),
            head: std::iter::once(self.t("col.category").to_string())
                .chain(reasons.iter().map(|x| self.label("reason", x)))
                .collect(),
            rows: rcats
                .iter()
                .map(|c| {
                    std::iter::once(self.label("cat", c))
                        .chain(reasons.iter().map(|reason| {
                            match rt.rows.iter().find(|r| {
                                rt.get(r, "category").as_text() == *c
                                    && rt.get(r, "reason").as_text() == *reason
                            }) {
                                Some(r) => self.cnt(rt, r, "needs"),
                                None => "0".into(),
                            }
                        }))
                        .collect()
                })
                .collect(),
        };
        let block = self.table_block(&table);
        let _ = write!(self.out, "<h3>{}</h3>{}", esc(self.t("s4.reasons")), block);
        self.out.push_str("</section>");
    }

    fn risk_section(&mut self) {
        let lang = self.lang;
        let t = &self.d.isolation_risk_by_nil;
        let births_year = t
            .rows
            .iter()
            .find_map(|r| t.get(r, "births_year").as_f64())
            .map(|y| y as i32)
            .unwrap_or_else(|| culla_schemas::reference::births_year_for(self.d.year));
        let intro = lang.f("s5.intro", &["3", &births_year.to_string()]);
        self.chapter("s5", self.t("s5.heading"), &intro);
        // NIL values: Some(Value(rate)) shown, Some(Hidden(why)) hidden by disclosure
        // control, None no families (or no rate).
        let mut vals: BTreeMap<i32, (Cell, Cell, Cell, Option<Hidden>)> = BTreeMap::new();
        for r in &t.rows {
            if let Ok(nil) = t.get(r, "nil").as_text().parse::<i32>() {
                vals.insert(
                    nil,
                    (
                        t.get(r, "families").clone(),
                        t.get(r, "high_risk").clone(),
                        t.get(r, "high_risk_per_1000_births").clone(),
                        t.hidden(r, "high_risk"),
                    ),
                );
            }
        }
        let shown = |nil: i32| -> Option<Mark> {
            let v = vals.get(&nil)?;
            if v.0.as_f64() == Some(0.0) {
                return None;
            }
            if let Some(why) = v.3 {
                return Some(Mark::Hidden(why));
            }
            match (v.1.as_f64(), v.2.as_f64()) {
                (Some(h), Some(rate)) if h == 0.0 || h >= f64::from(self.d.min_count) => {
                    Some(Mark::Value(rate))
                }
                (Some(_), None) => None,
                _ => Some(Mark::Hidden(Hidden::Small)),
            }
        };
        let map = nil_map();
        let max = svg::nice_max(
            map.shapes
                .iter()
                .filter_map(|s| shown(s.nil).and_then(Mark::value))
                .fold(0.0, f64::max),
        );
        let mut top: Option<(String, f64)> = None;
        let mut suppressed = 0;
        let mut paths = String::new();
        for s in &map.shapes {
            let name = culla_schemas::reference::nils()
                .iter()
                .find(|n| n.nil == s.nil)
                .map(|n| n.name.clone())
                .unwrap_or_else(|| s.name.clone());
            let (fill, label) = match shown(s.nil) {
                Some(Mark::Value(rate)) => {
                    if top.as_ref().is_none_or(|t| rate > t.1) {
                        top = Some((name.clone(), rate));
                    }
                    (
                        svg::SEQUENTIAL[svg::class_of(rate, max)].to_string(),
                        format!(
                            "{name} (NIL {}): {} {}",
                            s.nil,
                            lang.num(rate, 1),
                            self.t("s5.legend")
                        ),
                    )
                }
                Some(Mark::Hidden(why)) => {
                    suppressed += 1;
                    let (pattern, text) = match why {
                        Hidden::Small => ("map-hatch", self.t("word.suppressed")),
                        Hidden::Partner => ("map-check", self.t("word.secondary")),
                    };
                    (
                        format!("url(#{pattern})"),
                        format!("{name} (NIL {}): {text}", s.nil),
                    )
                }
                None => (
                    "#f2f2f2".to_string(),
                    format!("{name} (NIL {}): {}", s.nil, self.t("word.nodata")),
                ),
            };
            let _ = write!(
                paths,
                r##"<path class="nil" data-nil="{}" d="{}" fill="{fill}" stroke="#5a5a5a" stroke-width="0.6"><title>{}</title></path>"##,
                s.nil,
                s.d,
                esc(&label)
            );
        }
        let (top_name, top_rate) = top
            .map(|(n, r)| (n, lang.num(r, 1)))
            .unwrap_or(("–".into(), "–".into()));
        let desc = lang.f(
            "s5.fig_desc",
            &[&top_name, &top_rate, &suppressed.to_string()],
        );
        let legend_h = 26.0 * 8.0 + 20.0;
        let h = map.height.max(legend_h);
        let mut svg_out = String::new();
        let _ = write!(
            svg_out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart map" viewBox="0 0 {} {h}" role="img" aria-labelledby="c-map-t c-map-d" font-size="12"><title id="c-map-t">{}</title><desc id="c-map-d">{}</desc>{}{}<g class="nils">{paths}</g>"#,
            map.width + 190.0,
            esc(self.t("s5.fig")),
            esc(&desc),
            svg::hatch_pattern("map-hatch"),
            svg::check_pattern("map-check"),
        );
        let lx = map.width + 16.0;
        let _ = write!(
            svg_out,
            r#"<text x="{lx}" y="16" font-weight="bold" fill="{}">{}</text>"#,
            svg::INK,
            esc(self.t("s5.legend"))
        );
        for (k, c) in svg::SEQUENTIAL.iter().enumerate() {
            let lo = max * k as f64 / 5.0;
            let hi = max * (k + 1) as f64 / 5.0;
            let y = 28.0 + 26.0 * k as f64;
            let _ = write!(
                svg_out,
                r#"<rect x="{lx}" y="{y}" width="18" height="18" fill="{c}" stroke="{ink}" stroke-width="0.5"/><text x="{}" y="{}" fill="{ink}">{}–{}</text>"#,
                lx + 24.0,
                y + 13.0,
                esc(&lang.num(lo, 1)),
                esc(&lang.num(hi, 1)),
                ink = svg::INK
            );
        }
        let y = 28.0 + 26.0 * 5.0;
        let _ = write!(
            svg_out,
            r##"<rect x="{lx}" y="{y}" width="18" height="18" fill="url(#map-hatch)" stroke="{ink}" stroke-width="0.5"/><text x="{}" y="{}" fill="{ink}">{}</text><rect x="{lx}" y="{}" width="18" height="18" fill="url(#map-check)" stroke="{ink}" stroke-width="0.5"/><text x="{}" y="{}" fill="{ink}">{}</text><rect x="{lx}" y="{}" width="18" height="18" fill="#f2f2f2" stroke="{ink}" stroke-width="0.5"/><text x="{}" y="{}" fill="{ink}">{}</text>"##,
            lx + 24.0,
            y + 13.0,
            esc(self.t("word.suppressed")),
            y + 26.0,
            lx + 24.0,
            y + 39.0,
            esc(self.t("word.secondary")),
            y + 52.0,
            lx + 24.0,
            y + 65.0,
            esc(self.t("word.nodata")),
            ink = svg::INK
        );
        svg_out.push_str("</svg>");
        let nil_rows: Vec<Vec<String>> = t
            .rows
            .iter()
            .map(|r| {
                let nil = t.get(r, "nil").as_text();
                let name = t.get(r, "nil_name").as_text();
                let place = if nil == "unknown" {
                    self.t("word.unknown").to_string()
                } else {
                    format!("{name} ({nil})")
                };
                let mun = t
                    .get(r, "municipio")
                    .as_f64()
                    .map(|m| format!("Municipio {m}"))
                    .unwrap_or_else(|| "–".into());
                vec![
                    place,
                    mun,
                    self.cnt(t, r, "families"),
                    self.cnt(t, r, "high_risk"),
                    lang.num_cell(t.get(r, "high_risk_per_1000_births"), 1),
                    match (t.get(r, "ci_low").as_f64(), t.get(r, "ci_high").as_f64()) {
                        (Some(a), Some(b)) => format!("{}–{}", lang.num(a, 1), lang.num(b, 1)),
                        _ => "–".into(),
                    },
                ]
            })
            .collect();
        let data = Tbl {
            caption: self.t("s5.nil_table").to_string(),
            head: [
                "col.nil",
                "col.municipio",
                "col.families",
                "col.high_risk",
                "col.rate_births",
                "col.ci",
            ]
            .iter()
            .map(|h| self.t(h).to_string())
            .collect(),
            rows: nil_rows,
        };
        self.figure(self.t("s5.fig"), &svg_out, &data);

        // Flags.
        let f = &self.d.isolation_risk_flags;
        let flags = Tbl {
            caption: self.t("s5.flags").to_string(),
            head: ["col.flag", "col.families", "col.share"]
                .iter()
                .map(|h| self.t(h).to_string())
                .collect(),
            rows: f
                .rows
                .iter()
                .map(|r| {
                    vec![
                        self.label("flag", &f.get(r, "flag").as_text()),
                        self.cnt(f, r, "families"),
                        lang.pct_cell(f.get(r, "share")),
                    ]
                })
                .collect(),
        };
        let block = self.table_block(&flags);
        let _ = write!(self.out, "<h3>{}</h3>{}", esc(self.t("s5.flags")), block);

        // Municipi: isolation risk beside unmet needs.
        let im = &self.d.isolation_risk_by_municipio;
        let um = &self.d.unmet_needs_by_municipio;
        let mut keys: Vec<String> = im
            .rows
            .iter()
            .map(|r| im.get(r, "municipio").as_text())
            .chain(um.rows.iter().map(|r| um.get(r, "municipio").as_text()))
            .collect();
        keys.sort_by_key(|k| k.parse::<i32>().unwrap_or(i32::MAX));
        keys.dedup();
        let rows = keys
            .iter()
            .map(|k| {
                let ir = im
                    .rows
                    .iter()
                    .find(|r| im.get(r, "municipio").as_text() == *k);
                let ur = um
                    .rows
                    .iter()
                    .find(|r| um.get(r, "municipio").as_text() == *k);
                let cnt = |t: &Table, r: Option<&Vec<Cell>>, c: &str| {
                    r.map(|r| self.cnt(t, r, c)).unwrap_or_else(|| "0".into())
                };
                let num = |t: &Table, r: Option<&Vec<Cell>>, c: &str| {
                    r.map(|r| lang.num_cell(t.get(r, c), 1))
                        .unwrap_or_else(|| "–".into())
                };
                vec![
                    if k == "unknown" {
                        self.t("word.unknown").to_string()
                    } else {
                        format!("Municipio {k}")
                    },
                    cnt(im, ir, "families"),
                    cnt(im, ir, "high_risk"),
                    num(im, ir, "high_risk_per_1000_births"),
                    cnt(um, ur, "needs"),
                    cnt(um, ur, "unmet"),
                    ur.map(|r| lang.pct_cell(um.get(r, "unmet_share")))
                        .unwrap_or_else(|| "–".into()),
                ]
            })
            .collect();
        let mun = Tbl {
            caption: self.t("s5.municipi").to_string(),
            head: [
                "col.municipio",
                "col.families",
                "col.high_risk",
                "col.rate_births",
                "col.needs",
                "col.unmet",
                "col.unmet_share",
            ]
            .iter()
            .map(|h| self.t(h).to_string())
            .collect(),
            rows,
        };
        let block = self.table_block(&mun);
        let _ = write!(self.out, "<h3>{}</h3>{}", esc(self.t("s5.municipi")), block);
        self.out.push_str("</section>");
    }

    fn yoy_section(&mut self) {
        let Some(prev) = self.d.previous.clone() else {
            return;
        };
        let lang = self.lang;
        let cur = self.d.summary.clone();
        let y0 = prev.year.to_string();
        let y1 = cur.year.to_string();
        self.chapter("s6", self.t("s6.heading"), &lang.f("s6.intro", &[&y0, &y1]));
        let count_row = |id: &str, f: &dyn Fn(&Summary) -> u64| -> Vec<String> {
            let (a, b) = (f(&prev), f(&cur));
            let change = if a >= u64::from(self.d.min_count) && b >= u64::from(self.d.min_count) {
                let c = (b as f64 - a as f64) / a as f64;
                format!("{}{}", if c > 0.0 { "+" } else { "" }, lang.pct(c))
            } else {
                "–".into()
            };
            vec![
                self.t(id).to_string(),
                self.count_u(a),
                self.count_u(b),
                change,
            ]
        };
        let share_row = |id: &str, f: &dyn Fn(&Summary) -> Option<f64>| -> Vec<String> {
            let (a, b) = (f(&prev), f(&cur));
            let change = match (a, b) {
                (Some(a), Some(b)) => lang.pp(b - a),
                _ => "–".into(),
            };
            vec![self.t(id).to_string(), self.share(a), self.share(b), change]
        };
        let rows = vec![
            count_row("yoy.contacts", &|s| s.contacts),
            count_row("yoy.families", &|s| s.families),
            share_row("yoy.service_level", &|s| s.service_level()),
            share_row("yoy.escalation", &|s| s.escalation_rate()),
            share_row("yoy.callback", &|s| s.callback_share()),
            count_row("yoy.needs", &|s| s.needs),
            count_row("yoy.unmet", &|s| s.unmet),
        ];
        let t = Tbl {
            caption: self.t("s6.heading").to_string(),
            head: vec![
                self.t("col.measure").to_string(),
                y0.clone(),
                y1.clone(),
                self.t("s6.change").to_string(),
            ],
            rows,
        };
        let block = self.table_block(&t);
        let _ = write!(self.out, "{block}</section>");
    }

    fn survey_section(&mut self) {
        let Some(sv) = self.d.survey.clone() else {
            return;
        };
        let lang = self.lang;
        let contact_n = sv.rows.first().map(|r| r.contact_n).unwrap_or(0);
        let contact_n = if sv.publication.contact_n_hidden {
            culla_queries::disclosure::SECONDARY_SYMBOL.to_string()
        } else {
            self.count_u(contact_n)
        };
        let intro = lang.f(
            "s7.intro",
            &[
                &self.count_u(sv.families),
                &self.d.year.to_string(),
                &contact_n,
            ],
        );
        self.chapter("s7", self.t("s7.heading"), &intro);
        // A row is shown only when the year's release lets its counts be published.
        let shown: Vec<(String, bool)> = sv
            .rows
            .iter()
            .zip(&sv.publication.rows)
            .map(|(r, ok)| (r.category.clone(), *ok))
            .collect();
        let ok = |r: &SurveyRow| shown.iter().any(|(c, ok)| *c == r.category && *ok);
        let labels: Vec<String> = sv
            .rows
            .iter()
            .map(|r| self.label("cat", &r.category))
            .collect();
        let series = vec![
            Series {
                name: self.t("series.survey").to_string(),
                values: sv
                    .rows
                    .iter()
                    .map(|r| ok(r).then_some(r.survey_share))
                    .collect(),
            },
            Series {
                name: self.t("series.contact").to_string(),
                values: sv
                    .rows
                    .iter()
                    .map(|r| ok(r).then_some(r.contact_share))
                    .collect(),
            },
        ];
        let sig: Vec<String> = sv
            .rows
            .iter()
            .zip(&labels)
            .filter(|(r, _)| r.significant && ok(r))
            .map(|(_, l)| l.clone())
            .collect();
        let sig_text = if sig.is_empty() {
            self.t("s7.none").to_string()
        } else {
            sig.join(", ")
        };
        let desc = lang.f("s7.fig_desc", &[&sig_text]);
        let svg = svg::hbar_chart(
            "c-survey",
            self.t("s7.fig"),
            &desc,
            &labels,
            &series,
            &|v| lang.pct(v),
        );
        let ci =
            |lo: f64, hi: f64| format!("{}–{}", lang.num(lo * 100.0, 1), lang.num(hi * 100.0, 1));
        let p = |v: f64| {
            if v < 0.0001 {
                "< 0,0001".replace(',', if lang == Lang::It { "," } else { "." })
            } else {
                lang.num(v, 4)
            }
        };
        let data = Tbl {
            caption: self.t("s7.fig").to_string(),
            head: [
                "col.category",
                "col.survey_share",
                "col.ci",
                "col.contact_share",
                "col.ci",
                "col.difference",
                "col.test",
                "col.p",
                "col.q",
                "col.significant",
            ]
            .iter()
            .map(|h| self.t(h).to_string())
            .collect(),
            rows: sv
                .rows
                .iter()
                .zip(&labels)
                .map(|(r, l)| {
                    if !ok(r) {
                        let s = self.t("word.suppressed").to_string();
                        return vec![
                            l.clone(),
                            s,
                            "–".into(),
                            "–".into(),
                            "–".into(),
                            "–".into(),
                            "–".into(),
                            "–".into(),
                            "–".into(),
                            "–".into(),
                        ];
                    }
                    vec![
                        l.clone(),
                        lang.pct(r.survey_share),
                        ci(r.survey_ci_low, r.survey_ci_high),
                        lang.pct(r.contact_share),
                        ci(r.contact_ci_low, r.contact_ci_high),
                        lang.pp(r.difference),
                        self.t(match r.test {
                            Test::Fisher => "test.fisher",
                            Test::ChiSquare => "test.chi2",
                        })
                        .to_string(),
                        p(r.p_value),
                        p(r.q_value),
                        if r.significant {
                            self.t("word.yes")
                        } else {
                            self.t("word.no")
                        }
                        .to_string(),
                    ]
                })
                .collect(),
        };
        // The table says more than the chart (intervals, tests): shown once, open.
        self.figure_open(self.t("s7.fig"), &svg, &data);
        self.out.push_str("</section>");
    }

    fn methods_section(&mut self) {
        self.chapter("s8", self.t("s8.heading"), self.t("s8.events"));
        let _ = write!(self.out, "<h3>{}</h3><ul>", esc(self.t("s8.defs")));
        for id in [
            "def.contact",
            "def.answer",
            "def.service_level",
            "def.hours",
            "def.escalation",
            "def.callback",
            "def.unmet",
            "def.risk",
            "def.rates",
        ] {
            let _ = write!(self.out, "<li>{}</li>", esc(self.t(id)));
        }
        let min = self.d.min_count.to_string();
        let _ = write!(
            self.out,
            "</ul><h3>{}</h3><p>{}</p><h3>{}</h3><ul class=\"symbols\"><li>{}</li><li>{}</li><li>{}</li><li>{}</li></ul><h3>{}</h3><p>{}</p><p>{}</p></section>",
            esc(self.t("s8.disclosure")),
            esc(self.t("s8.disclosure_text")),
            esc(self.t("s8.symbols")),
            esc(&self.lang.f("legend.small", &[&min, &min])),
            esc(&self.lang.f("legend.partner", &[&min])),
            esc(self.t("legend.dash")),
            esc(self.t("legend.partial")),
            esc(self.t("s8.sources")),
            esc(self.t("s8.sources_text")),
            esc(culla_schemas::reference::ATTRIBUTION)
        );
    }
}
