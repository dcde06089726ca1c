//! The writing side of an event log, used by `culla produce`: Kafka or the local log.

use crate::Result;

/// Where `culla produce` writes: topic by event type, key = family.
pub trait EventSink {
    /// Queues one message for `topic` with its key.
    fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) -> Result<()>;
    /// Makes everything sent so far durable (fsync, or acknowledged by the broker).
    fn flush(&mut self) -> Result<()>;
}
