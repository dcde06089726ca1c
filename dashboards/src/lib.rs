//! culla's published outputs: the annual report, the live dashboard and the survey
//! comparison.
//!
//! Data flows one way: [`data`] runs the named queries of `culla-queries` (always with
//! disclosure control on) and turns their Arrow batches into small [`data::Table`]s;
//! [`report`] renders those into one self-contained, printable, accessible HTML file
//! with inline SVG charts ([`svg`], [`map`]) in Italian or English ([`i18n`]);
//! [`defs`] loads the dashboard definitions of `dashboards/defs/` and [`serve`] answers
//! a local, read-only web dashboard from them; [`survey`] compares a family survey with
//! the families in contact, with the statistics of [`stats`].

pub mod data;
pub mod defs;
pub mod fixture;
pub mod i18n;
pub mod map;
pub mod report;
pub mod serve;
pub mod stats;
pub mod survey;
pub mod svg;

use std::path::PathBuf;

/// Everything that can go wrong producing a report, a dashboard or a survey comparison.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A named query failed.
    #[error("query {name} failed: {message}")]
    Query {
        /// Registry name of the query.
        name: String,
        /// What the query library said.
        message: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A dashboard definition is invalid.
    #[error("dashboard definition {file}: {message}")]
    Definition {
        /// The definition file (or built-in name).
        file: String,
        /// What is wrong with it.
        message: String,
    },
    /// The survey file is not in the documented CSV format.
    #[error("survey file {file}, line {line}: {message}")]
    Survey {
        /// The survey file.
        file: String,
        /// 1-based line number (1 is the header).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The data directory holds nothing to report on.
    #[error("{0}")]
    NoData(String),
    /// The HTTP server could not start.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// Address asked for.
        addr: String,
        /// Why it failed.
        message: String,
    },
    /// Internal Arrow/DataFusion failure while reading query results.
    #[error("cannot read query results: {0}")]
    Arrow(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
