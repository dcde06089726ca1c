//! `culla produce`: NDJSON lines onto the event log (Kafka or the local log).
//!
//! Produce sends what it is given, byte for byte: validation is ingest's job, so a bad
//! line still reaches the log and ends up, counted, in the dead letters. It only reads
//! enough of each line to route it: the topic comes from the `type` field
//! (`EventType::topic`), and a line without a readable known type goes to the default
//! topic; the key is the `family` field when it is a pseudonymous hex key, so one
//! family's events stay in order (anything else gets an empty key, so no personal data
//! ever travels as a key).

use crate::Result;
use crate::error::io_err;
use crate::sink::EventSink;
use culla_schemas::EventType;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;
use std::path::Path;

/// What a produce run sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceSummary {
    /// Messages sent.
    pub sent: u64,
    /// Messages by topic.
    pub by_topic: BTreeMap<String, u64>,
    /// Lines with no readable known `type`, sent to the default topic.
    pub unrouted: u64,
    /// Blank lines skipped.
    pub blank: u64,
}

impl fmt::Display for ProduceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .by_topic
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        write!(f, "{} messages sent ({})", self.sent, parts.join(", "))?;
        if self.unrouted > 0 {
            write!(
                f,
                "; {} without a known type went to the default topic",
                self.unrouted
            )?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    family: Option<std::borrow::Cow<'a, str>>,
}

/// The topic and key of one line, and whether its type was known (else: default topic).
pub fn route<'a>(line: &[u8], default_topic: &'a str) -> (&'a str, Vec<u8>, bool) {
    match serde_json::from_slice::<Head<'_>>(line) {
        Ok(h) => {
            let topic = h
                .kind
                .as_deref()
                .and_then(EventType::parse)
                .map(|t| t.topic().as_str());
            let key = h
                .family
                .filter(|f| {
                    (16..=64).contains(&f.len())
                        && f.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
                .map(|f| f.as_bytes().to_vec())
                .unwrap_or_default();
            (topic.unwrap_or(default_topic), key, topic.is_some())
        }
        Err(_) => (default_topic, Vec::new(), false),
    }
}

/// Sends every non-blank line of `input` to `sink`, then flushes it.
pub fn produce(
    input: &mut dyn BufRead,
    sink: &mut dyn EventSink,
    default_topic: &str,
) -> Result<ProduceSummary> {
    let mut sum = ProduceSummary::default();
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(io_err("read", Path::new("the input")))?;
        if n == 0 {
            break;
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            sum.blank += 1;
            continue;
        }
        let (topic, key, routed) = route(&line, default_topic);
        if !routed {
            sum.unrouted += 1;
        }
        sink.send(topic, &key, &line)?;
        sum.sent += 1;
        *sum.by_topic.entry(topic.to_string()).or_default() += 1;
    }
    sink.flush()?;
    Ok(sum)
}
