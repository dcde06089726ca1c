//! The one error type of `culla-ingest`: every failure of a source, sink, writer or
//! compaction, with the context (path, topic, partition) a person needs to act on it.

use std::path::PathBuf;

/// Everything that can go wrong while producing, ingesting, replaying or compacting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, `create`, `rename`, …).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Arrow could not build or convert a batch.
    #[error("cannot build an Arrow batch: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A Parquet file could not be written or read.
    #[error("cannot {action} Parquet file {path}: {source}")]
    Parquet {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The Parquet error.
        source: datafusion::parquet::errors::ParquetError,
    },
    /// A file of the data directory could not be read or written.
    #[error(transparent)]
    Layout(#[from] culla_schemas::layout::LayoutError),
    /// A table of the data directory (its Delta log) could not be read or written.
    #[error(transparent)]
    Table(#[from] culla_table::TableError),
    /// The Kafka client failed (B2's `kafka` module uses this).
    #[error("Kafka {context}: {message}")]
    Kafka {
        /// What was being done (`connect to localhost:9092`, `poll`, `commit`, …).
        context: String,
        /// The client's message.
        message: String,
    },
    /// Input given by the user (a file, an option, a log's metadata) is not usable.
    #[error("{0}")]
    BadInput(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds a closure mapping an `io::Error` to [`Error::Io`] for `path`.
pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
