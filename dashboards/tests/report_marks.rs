//! The report's rendering of disclosure-controlled cells and of the survey section, on
//! hand-made query results (no data directory): a count hidden as the partner of a
//! small one prints `c`, not `<5`, with a legend in both languages; the survey
//! comparison table appears once.

use culla_dashboards::data::{Cell, Table};
use culla_dashboards::fixture::cells;
use culla_dashboards::i18n::Lang;
use culla_dashboards::report::html::render;
use culla_dashboards::report::{ReportData, SurveySection};
use culla_dashboards::survey::{Row, Test};

fn text(s: &str) -> Cell {
    Cell::Text(s.into())
}

/// `contacts_by_weekday_hour` as disclosure control leaves it: Sunday 07:00 had 3
/// contacts (primary, `<5`), Saturday 07:00 had 250 and was hidden as its partner
/// (secondary, `c`), Monday 07:00 shows 180; every other cell is absent (0).
fn heat() -> Table {
    let mut t = Table::new(&[
        "weekday",
        "hour",
        "contacts",
        "suppressed",
        "suppressed_secondary",
    ]);
    t.rows = vec![
        vec![
            Cell::Int(1),
            Cell::Int(7),
            Cell::Int(180),
            Cell::Null,
            Cell::Null,
        ],
        vec![
            Cell::Int(6),
            Cell::Int(7),
            Cell::Null,
            text("contacts"),
            text("contacts"),
        ],
        vec![
            Cell::Int(7),
            Cell::Int(7),
            Cell::Null,
            text("contacts"),
            Cell::Null,
        ],
    ];
    t
}

/// `contacts_by_month` with one month: phone 2 (primary), WhatsApp 70 withheld as its
/// partner, web chat 300.
fn volume() -> Table {
    let mut t = Table::new(&[
        "month",
        "source",
        "channel",
        "contacts",
        "families",
        "out_of_hours",
        "suppressed",
        "suppressed_secondary",
    ]);
    for (ch, c, sup, sec) in [
        ("phone", None, Some("contacts"), None),
        ("whatsapp", None, Some("contacts"), Some("contacts")),
        ("webchat", Some(300), None, None),
    ] {
        t.rows.push(vec![
            text("2024-01"),
            text("milano-020202"),
            text(ch),
            c.map(Cell::Int).unwrap_or(Cell::Null),
            Cell::Int(40),
            Cell::Int(0),
            sup.map(text).unwrap_or(Cell::Null),
            sec.map(text).unwrap_or(Cell::Null),
        ]);
    }
    t
}

fn survey_row(category: &str) -> Row {
    Row {
        category: category.into(),
        survey_yes: 30,
        survey_n: 87,
        survey_share: 30.0 / 87.0,
        survey_ci_low: 0.2534,
        survey_ci_high: 0.4494,
        contact_yes: 120,
        contact_n: 600,
        contact_share: 0.2,
        contact_ci_low: 0.17,
        contact_ci_high: 0.23,
        difference: 30.0 / 87.0 - 0.2,
        test: Test::ChiSquare,
        chi2: Some(9.5),
        p_value: 0.002,
        q_value: 0.004,
        significant: true,
    }
}

fn data() -> ReportData {
    ReportData {
        year: 2024,
        min_count: 5,
        sources: vec!["milano-020202".into()],
        contacts_by_month: volume(),
        contacts_by_weekday_hour: heat(),
        survey: Some(SurveySection {
            families: 87,
            rows: vec![survey_row("economic"), survey_row("health")],
            publication: culla_dashboards::survey::Publication {
                rows: vec![true, true],
                contact_n_hidden: false,
            },
        }),
        ..Default::default()
    }
}

/// Every table row of `html` in document order, as the text of its cells in order
/// (`&lt;` and friends unescaped).
fn rows(html: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for tr in html.split("<tr>").skip(1) {
        let tr = &tr[..tr.find("</tr>").unwrap_or(tr.len())];
        let mut row = Vec::new();
        for cell in tr.split("<t").skip(1) {
            let (Some(gt), Some(end)) = (cell.find('>'), cell.find("</t")) else {
                continue;
            };
            row.push(
                cell[gt + 1..end]
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&"),
            );
        }
        out.push(row);
    }
    out
}

/// The row of the heatmap's data table for `day` (the day, then hours 00 to 23).
fn heat_row(html: &str, day: &str) -> Vec<String> {
    let start = html.find("id=\"s2\"").expect("heatmap section");
    let end = html[start..].find("</section>").unwrap() + start;
    rows(&html[start..end])
        .into_iter()
        .find(|r| r.first().map(String::as_str) == Some(day))
        .unwrap_or_else(|| panic!("no row {day}"))
}

#[test]
fn a_withheld_partner_prints_c_and_a_small_cell_prints_under_five() {
    for (lang, sat, sun, legend) in [
        (Lang::It, "sab", "dom", "c: dato riservato"),
        (Lang::En, "Sat", "Sun", "c: withheld"),
    ] {
        let html = render(&data(), lang);
        // 07:00 is the 9th cell of a row (the day, then hours 00..).
        let sat_row = heat_row(&html, sat);
        let sun_row = heat_row(&html, sun);
        assert_eq!(sat_row[8], "c", "{sat_row:?}");
        assert_eq!(sun_row[8], "<5", "{sun_row:?}");
        assert_eq!(sun_row[9], "0");
        assert_eq!(heat_row(&html, lang.weekday(1))[8], "180");
        // The SVG cells say which is which, by pattern and by text.
        assert!(html.contains(&format!("{sat} 07: {}</title>", lang.t("word.secondary"))));
        assert!(html.contains(&format!(
            "{sun} 07: {}</title>",
            lang.t("word.suppressed").replace('<', "&lt;")
        )));
        assert!(html.contains("fill=\"url(#c-heat-check)\""));
        // The volume table (month, line, channel, contacts, …): phone `<5`, WhatsApp
        // `c`, web chat 300.
        let all_rows = rows(&html);
        let contacts_of = |channel: &str| {
            all_rows
                .iter()
                .find(|r| r.len() == 6 && r[2] == channel)
                .map(|r| r[3].clone())
                .unwrap_or_else(|| panic!("no row for {channel}"))
        };
        assert_eq!(contacts_of(lang.t("channel.phone")), "<5");
        assert_eq!(contacts_of(lang.t("channel.whatsapp")), "c");
        assert_eq!(contacts_of(lang.t("channel.webchat")), "300");
        let all = cells(&html);
        // Tables using the symbols explain them; the methods list every symbol.
        assert!(html.contains(legend), "{lang:?}: no legend for c");
        assert!(html.contains(&format!("<h3>{}</h3>", lang.t("s8.symbols"))));
        // No table prints a count from 1 to 4.
        assert!(
            !all.iter()
                .any(|c| matches!(c.as_str(), "1" | "2" | "3" | "4"))
        );
    }
}

#[test]
fn the_survey_table_appears_once() {
    for lang in [Lang::It, Lang::En] {
        let html = render(&data(), lang);
        let caption = format!("<caption>{}</caption>", lang.t("s7.fig"));
        assert_eq!(html.matches(&caption).count(), 1, "{lang:?}");
        // …and it is shown, not folded away: the survey section has no <details>.
        let s7 = &html[html.find("id=\"s7\"").unwrap()..];
        let s7 = &s7[..s7.find("</section>").unwrap()];
        assert!(!s7.contains("<details>"));
        assert_eq!(s7.matches("<figure").count(), 1);
        assert_eq!(s7.matches("role=\"img\"").count(), 1);
        // Wilson 30/87: 25.3%–44.9%, as the survey statistics give it.
        let ci = match lang {
            Lang::It => "25,3–44,9",
            Lang::En => "25.3–44.9",
        };
        assert_eq!(s7.matches(ci).count(), 2);
    }
}

#[test]
fn every_message_is_used_in_both_languages_without_a_missing_id() {
    // A missing id renders as "?" (and a warning); neither language may show one.
    for lang in [Lang::It, Lang::En] {
        let html = render(&data(), lang);
        for c in cells(&html) {
            assert_ne!(c, "?", "{lang:?}: a table shows a missing message");
        }
        assert!(!html.contains(">?<"), "{lang:?}: a missing message");
    }
}
