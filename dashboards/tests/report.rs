//! The report and the dashboard API on a simulated year (small: 2,000 contacts of
//! Milan's line in 2024, 600 in 2023), checked for structure, disclosure control and
//! self-containment.

use culla_dashboards::fixture::write_events;
use culla_dashboards::i18n::Lang;
use culla_dashboards::report::{ReportOptions, generate};

fn fixture(dir: &std::path::Path) {
    for (year, contacts) in [(2024, 2000), (2023, 600)] {
        let cfg = culla_simulate::SimConfig {
            year,
            seed: 7,
            contacts: Some(contacts),
            ..Default::default()
        };
        let lines = culla_simulate::simulate(&cfg);
        write_events(
            dir,
            lines.iter().map(|l| l.bytes.as_slice()),
            &year.to_string(),
        )
        .unwrap();
    }
}

use culla_dashboards::fixture::cells;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_is_complete_self_contained_and_disclosure_controlled() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    for lang in [Lang::It, Lang::En] {
        let html = generate(&ReportOptions {
            data: tmp.path().to_path_buf(),
            year: 2024,
            lang,
            source: None,
            survey: None,
            min_count: 5,
        })
        .await
        .unwrap();
        assert!(html.starts_with(&format!("<!DOCTYPE html><html lang=\"{}\">", lang.tag())));
        // 88 NIL shapes, each with a title.
        assert_eq!(html.matches("<path class=\"nil\"").count(), 88);
        // Charts are drawn: bars, lines and the 7 × 24 heatmap.
        assert!(html.matches("class=\"bar\"").count() >= 12);
        assert!(html.matches("class=\"series\"").count() >= 2);
        assert_eq!(html.matches("class=\"cell\"").count(), 168);
        // Previous year present → year-on-year section.
        assert!(html.contains("id=\"s6\""));
        // Self-contained: no scripts, stylesheets, images or fonts from elsewhere.
        for bad in [
            "<script",
            "<link",
            "@import",
            "src=\"http",
            "href=\"http",
            "url(http",
        ] {
            assert!(!html.contains(bad), "{bad} in the report");
        }
        // Every figure has a text alternative.
        assert_eq!(
            html.matches("<figure").count(),
            html.matches("role=\"img\"").count()
        );
        // No table cell is a count from 1 to 4.
        for c in cells(&html) {
            assert!(
                !matches!(c.as_str(), "1" | "2" | "3" | "4"),
                "a table shows the count {c}"
            );
        }
    }
    // No 2022 in the data: the 2023 report has no year-on-year section.
    let html = generate(&ReportOptions {
        data: tmp.path().to_path_buf(),
        year: 2023,
        lang: Lang::En,
        source: None,
        survey: None,
        min_count: 5,
    })
    .await
    .unwrap();
    assert!(html.contains("id=\"s5\""));
    assert!(!html.contains("id=\"s6\""));
}
