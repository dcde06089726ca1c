//! Kafka → Parquet throughput and peak memory, beside a raw rdkafka consumer that only
//! counts the same messages (the limit), measured in the same run.
//!
//! Needs a broker: `CULLA_TEST_BROKERS` (e.g. `scripts/broker.sh start`); when it is
//! unset, this bench starts its own in-memory tansu with `scripts/broker.sh start --port
//! 29102` and stops it at the end (and says so). It simulates one realistic year of
//! Milan's line sized to `CULLA_BENCH_EVENTS` events (default 1,000,000; the same data as
//! the local-log bench), produces them with culla's producer (`KafkaSink`: idempotent,
//! lz4) into three fresh 3-partition topics named for this run, and then measures, in
//! this order:
//!
//! 1. a raw rdkafka `BaseConsumer` (same group protocol: subscribe) that only counts the
//!    messages until it has seen every one produced — the limit;
//! 2. `culla ingest --until-idle` (the library path the command runs: `KafkaSource` +
//!    `pipeline::run`) in a child process of this binary, so the child's peak RSS
//!    (`VmHWM`) measures ingest alone;
//! 3. the raw consumer again (the broker is shared and noisy: the limit is bracketed).
//!
//! Afterwards the events table's live rows must equal the distinct valid events
//! (worked out from the input with `parse_event`, not from culla's output). Prints a
//! Markdown table. Figures are recorded in docs/bench-ingest-kafka.md.
//!
//! Run: `cargo bench -p culla-ingest --bench kafka` (`CULLA_BENCH_EVENTS=100000` for a
//! quick run).

mod common;

use common::{batch_options, bench_events, report_child, run_child, simulated, tune_allocator};
use culla_ingest::EventSink;
use culla_ingest::kafka::{KafkaSink, KafkaSource, KafkaSourceConfig, ensure_topics};
use culla_ingest::pipeline;
use culla_ingest::produce::route;
use culla_table::{DataDir, Snapshot, TABLE_EVENTS};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD: &str = "CULLA_BENCH_KAFKA_CHILD";
const OWN_PORT: &str = "29102";

fn topics(prefix: &str) -> Vec<String> {
    ["calls", "chats", "referrals"]
        .iter()
        .map(|t| format!("{prefix}-{t}"))
        .collect()
}

/// The child: `culla ingest --brokers B --topics … --data DIR --until-idle`.
fn child(spec: &str) {
    let mut it = spec.splitn(4, '\t');
    let (brokers, prefix, group, dir) = (
        it.next().expect("brokers"),
        it.next().expect("prefix"),
        it.next().expect("group"),
        it.next().expect("dir"),
    );
    let dir = DataDir::new(dir);
    common::init_logs();
    let t = Instant::now();
    let mut src = KafkaSource::new(KafkaSourceConfig {
        brokers: brokers.to_string(),
        group: group.to_string(),
        topics: topics(prefix),
        start_offsets: pipeline::start_offsets(&dir),
    })
    .expect("connect the consumer");
    let opts = batch_options();
    let s = pipeline::run(&mut src, &dir, &opts, &AtomicBool::new(false)).expect("ingest");
    report_child(&s, t.elapsed().as_secs_f64());
}

/// A raw consumer in its own group that counts messages until it has seen `total`.
fn raw_count(brokers: &str, prefix: &str, total: u64) -> (u64, f64) {
    let t = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{prefix}-raw-{}", nanos()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()
        .expect("create the raw consumer");
    let names = topics(prefix);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    consumer.subscribe(&refs).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut n = 0u64;
    let mut bytes = 0u64;
    while n < total {
        assert!(
            Instant::now() < deadline,
            "raw consumer: only {n} of {total}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => eprintln!("raw consumer: {e}"),
            None => {}
        }
    }
    assert!(bytes > 0);
    (n, t.elapsed().as_secs_f64())
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Stops the broker this bench started, also when an assertion fails.
struct OwnBroker(PathBuf);
impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new(&self.0)
            .args(["stop", "--port", OWN_PORT, "--dir"])
            .arg(format!("/tmp/culla-bench-broker-{OWN_PORT}"))
            .status();
    }
}

fn main() {
    tune_allocator();
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    let want = bench_events();
    let mut _own = None;
    let brokers = match std::env::var("CULLA_TEST_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/broker.sh");
            println!(
                "CULLA_TEST_BROKERS is not set: starting an in-memory tansu on 127.0.0.1:{OWN_PORT} \
                 with scripts/broker.sh (stopped at the end)"
            );
            let ok = Command::new(&script)
                .args(["start", "--port", OWN_PORT, "--storage", "memory", "--dir"])
                .arg(format!("/tmp/culla-bench-broker-{OWN_PORT}"))
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot start a broker with {}", script.display());
            _own = Some(OwnBroker(script));
            format!("127.0.0.1:{OWN_PORT}")
        }
    };
    let prefix = format!("culla-bench-{}-{}", std::process::id(), nanos());
    let names = topics(&prefix);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    ensure_topics(&brokers, &refs, 3).expect("create the topics");

    let sim = simulated(want);
    let (lines, cfg, distinct, invalid, gen_secs) =
        (sim.lines, sim.cfg, sim.distinct, sim.invalid, sim.secs);

    let t = Instant::now();
    let mut sink = KafkaSink::new(&brokers).expect("connect the producer");
    let mut bytes = 0usize;
    for l in &lines {
        let (topic, key, _) = route(&l.bytes, "calls");
        sink.send(&format!("{prefix}-{topic}"), &key, &l.bytes)
            .expect("send");
        bytes += l.bytes.len();
    }
    sink.flush().expect("every message acknowledged");
    drop(sink);
    let put_secs = t.elapsed().as_secs_f64();
    drop(lines);
    println!(
        "simulated {want} events of {} ({} contacts, {distinct} distinct valid, {invalid} \
         invalid, {:.0} MB) in {gen_secs:.1} s; produced to {brokers} (topics {prefix}-*, \
         3 partitions) at {:.0} events/s",
        cfg.year,
        cfg.contacts.unwrap_or(0),
        bytes as f64 / 1e6,
        want as f64 / put_secs
    );

    let total = want as u64;
    let (n1, raw1) = raw_count(&brokers, &prefix, total);
    println!("raw consumer: {n1} messages in {raw1:.2} s");

    let tmp = tempfile::tempdir().expect("temp dir");
    let group = format!("{prefix}-ingest");
    let spec = format!("{brokers}\t{prefix}\t{group}\t{}", tmp.path().display());
    let r = run_child(CHILD, spec);
    let (messages, secs, rss, files) = (r.messages, r.secs, r.rss, r.files);

    let (n2, raw2) = raw_count(&brokers, &prefix, total);
    println!("raw consumer again: {n2} messages in {raw2:.2} s");

    let snap = Snapshot::load(&DataDir::new(tmp.path())).expect("read the tables");
    let written: u64 = snap.live_files(TABLE_EVENTS).map(|f| f.rows).sum();
    assert_eq!(messages as u64, total, "ingest read every message once");
    assert_eq!(
        written as usize, distinct,
        "rows written must equal the distinct valid events"
    );

    let ingest_rate = messages / secs;
    let raw_rate = |s: f64| total as f64 / s;
    let best_raw = raw_rate(raw1.min(raw2));
    println!();
    println!("| what | messages | seconds | events/s | peak RSS | ingest ÷ this |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| raw rdkafka consumer, counting (before) | {n1} | {raw1:.2} | {:.0} | — | {:.2} |",
        raw_rate(raw1),
        ingest_rate / raw_rate(raw1)
    );
    println!(
        "| culla ingest --until-idle (Kafka → Parquet) | {messages:.0} read, {written} written, {files:.0} files | {secs:.2} | {ingest_rate:.0} | {rss:.0} MB | 1.00 |"
    );
    println!(
        "| raw rdkafka consumer, counting (after) | {n2} | {raw2:.2} | {:.0} | — | {:.2} |",
        raw_rate(raw2),
        ingest_rate / raw_rate(raw2)
    );
    println!();
    println!(
        "ratio to the faster raw run: {:.2} (goal ≥ 0.8, target 0.9); peak RSS {rss:.0} MB (goal < 500 MB)",
        ingest_rate / best_raw
    );
    println!(
        "ingest's CPU: {:.2} s user + {:.2} s system = {:.2} s (steadier than the wall-clock ratio on a shared machine)",
        r.cpu_user,
        r.cpu_sys,
        r.cpu_user + r.cpu_sys
    );
}
