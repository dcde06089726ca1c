//! The reading side of an event log, shared by Kafka and the embedded local log.
//!
//! [`crate::pipeline::run`] only sees an [`EventSource`]: it polls [`Message`]s, learns
//! which partitions were taken away by a rebalance, and asks whether everything assigned
//! has been read (`--until-idle`). Where each partition starts is decided by the
//! tables' transactions ([`StartOffsets`]), never by the broker: the broker's committed
//! offsets are only a hint for monitoring tools.
//!
//! Every source names the log it reads ([`EventSource::origin`]): `log-<id>` for an
//! embedded log (its `log-id` file), `kafka-<cluster id>` for a Kafka cluster. The
//! origin is part of each committed offset, so a log that was deleted and started anew
//! is read from its beginning instead of from the old log's offsets, and a log that is
//! shorter than what the tables have read from it stops ingest with one line.
//!
//! A source whose partitions can be taken away (Kafka) also shares an [`Epoch`]: a
//! counter it bumps at the very start of every rebalance, before the partitions are
//! released. Each [`Polled`] says which epoch its messages were read in, and the writer
//! commits a partition's rows only while the epoch is unchanged (checked under the data
//! directory's commit lock), so rows read before a hand-over are never committed after it.

use crate::Result;

/// One message as read from a log (Kafka or the local log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic it was read from.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Message key (the `family` field, by convention), if any.
    pub key: Option<Vec<u8>>,
    /// The message bytes: one JSON event, if the producer kept the contract.
    pub payload: Vec<u8>,
}

/// Where to start reading a partition of a log: `(origin, topic, partition)` → the
/// tables' next offset for it, or None (= earliest).
pub type StartOffsets = std::sync::Arc<dyn Fn(&str, &str, i32) -> Option<i64> + Send + Sync>;

/// What one poll returned.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    /// Messages, in offset order within each partition.
    pub messages: Vec<Message>,
    /// partitions taken away since the last poll (rebalance)
    pub revoked: Vec<(String, i32)>,
    /// The [`Epoch`] value the messages were read in (0 for sources without one).
    pub epoch: u64,
}

/// A counter bumped by every rebalance of a source (see the module documentation).
pub type Epoch = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// A readable event log. Implementations seek each newly assigned partition with `StartOffsets`.
pub trait EventSource: Send {
    /// The log read: `log-<id>` or `kafka-<cluster id>` (`OffsetRange.origin` in the
    /// tables' transactions).
    fn origin(&self) -> &str;
    /// Returns up to `max` messages, waiting at most `timeout` when none is ready.
    fn poll(&mut self, max: usize, timeout: std::time::Duration) -> Result<Polled>;
    /// The partitions currently assigned to this reader.
    fn assignment(&self) -> Vec<(String, i32)>;
    /// true when every assigned partition has been read to its end (for --until-idle);
    /// false while no partition is assigned yet.
    fn caught_up(&mut self) -> Result<bool>;
    /// Tell the broker what is committed (only a hint; the tables' transactions are the truth).
    fn commit_hint(&mut self, next_offsets: &[(String, i32, i64)]) -> Result<()>;
    /// The rebalance counter, for sources whose partitions can be taken away; `None`
    /// (the default) when they never are (the local log).
    fn epoch(&self) -> Option<Epoch> {
        None
    }
    /// Whether [`EventSource::set_paused`] does anything (ingest paces only such sources).
    fn can_pause(&self) -> bool {
        false
    }
    /// Whether ingest paces this source unless told otherwise (`IngestOptions::pace`).
    fn paces_by_default(&self) -> bool {
        self.can_pause()
    }
    /// Stops (`true`) or restarts (`false`) reading `parts`: ingest pauses partitions
    /// that run ahead of the others in event time (see `pipeline::Pacer`). The default
    /// ignores it.
    fn set_paused(&mut self, _parts: &[(String, i32)], _paused: bool) -> Result<()> {
        Ok(())
    }
}
