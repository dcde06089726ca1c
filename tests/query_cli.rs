//! `culla query` end to end on bad input (issue #4's acceptance): an unknown question, a
//! date or year that is not one, an empty or missing data directory. Each is one error
//! line on stderr naming what is wrong, nothing on stdout, and a non-zero exit — never a
//! panic or a table of nothing. (A period that ends before it starts is checked where it
//! is decided, `golden::unknown_names_and_bad_periods_are_one_line_errors`.)

use std::process::Command;

/// Runs `culla ARGS` and returns (exit code, stdout, stderr).
fn culla(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_culla"))
        .args(args)
        .output()
        .expect("run culla");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts one error line (`culla: …`, or clap's `error: …` followed only by its hint
/// to try `--help`) that contains every one of `words`, and a failing exit.
fn one_line_error(args: &[&str], words: &[&str]) {
    let (code, stdout, stderr) = culla(args);
    assert!(code.is_some_and(|c| c != 0), "{args:?}: exit {code:?}");
    assert!(stdout.is_empty(), "{args:?}: printed {stdout:?}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("culla: ") || l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: {stderr:?}");
    let other: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !errors.contains(l) && !l.contains("--help"))
        .collect();
    assert!(other.is_empty(), "{args:?}: more than one line: {stderr:?}");
    for w in words {
        assert!(
            errors[0].contains(w),
            "{args:?}: {:?} lacks {w:?}",
            errors[0]
        );
    }
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr:?}");
}

#[test]
fn bad_input_is_one_line_and_a_failing_exit() {
    let empty = tempfile::tempdir().unwrap();
    let e = empty.path().to_str().unwrap();
    one_line_error(
        &["query", "contacts_by_mnth", "--data", e],
        &["unknown query", "contacts_by_mnth", "contacts_by_month"],
    );
    one_line_error(
        &[
            "query",
            "contacts_by_month",
            "--data",
            e,
            "--from",
            "2024-13-01",
        ],
        &["2024-13-01", "--from"],
    );
    one_line_error(
        &[
            "query",
            "contacts_by_month",
            "--data",
            e,
            "--year",
            "twenty",
        ],
        &["twenty", "--year"],
    );
    one_line_error(
        &["query", "contacts_by_month", "--data", e],
        &["no events", e],
    );
    let missing = empty.path().join("not-there");
    let m = missing.to_str().unwrap();
    one_line_error(
        &["query", "contacts_by_month", "--data", m],
        &["no events", m],
    );
}
