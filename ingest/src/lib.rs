//! culla's ingest side: event logs in, exactly-once Parquet out.
//!
//! Messages come from an [`EventSource`] (Kafka, or the embedded [`locallog`] in
//! `DIR/log/`), are validated by `culla-schemas`, deduplicated by `event_id`, and written
//! by [`pipeline::run`] as zstd Parquet files into the Delta tables `DIR/events/` (bad
//! ones into `DIR/dead_letters/`). Files and consumed offsets move together in one Delta
//! commit per table (`culla-table`), so a crash at any moment neither loses nor
//! duplicates an event: on restart [`recovery`] deletes what the crash left uncommitted
//! and reading resumes at the committed offsets. [`deadletters`] lists and replays rejected messages,
//! [`compact`] merges small files, and [`EventSink`] is what `culla produce` writes to.

pub mod compact;
pub mod deadletters;
pub mod error;
pub mod files;
pub mod ids;
pub mod kafka;
pub mod locallog;
pub mod memory;
pub mod pipeline;
pub mod privacy;
pub mod produce;
pub mod recovery;
pub mod sink;
pub mod source;

pub use error::{Error, Result};
pub use sink::EventSink;
pub use source::{Epoch, EventSource, Message, Polled, StartOffsets};
