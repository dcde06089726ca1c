//! `KafkaSource`, `KafkaSink` and `ensure_topics` against a real broker.
//!
//! The broker address comes from `CULLA_TEST_BROKERS` (`scripts/broker.sh start` prints
//! it); when it is unset the tests fail, they are never skipped. Each test uses its own
//! topic and group. Expected values follow from what the test itself sent: N messages
//! with known payloads, so every offset 0..n of every partition must come back once.

mod common;

use culla_ingest::kafka::{KafkaSink, KafkaSource, KafkaSourceConfig, ensure_topics};
use culla_ingest::pipeline::{self, IngestOptions, stored_events};
use culla_ingest::{EventSink, EventSource, Message};
use culla_schemas::layout::DataDir;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn brokers() -> String {
    match std::env::var("CULLA_TEST_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "CULLA_TEST_BROKERS is not set: start a broker with `scripts/broker.sh start` \
             and export the CULLA_TEST_BROKERS=… line it prints (see docs/KAFKA.md)"
        ),
    }
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("culla-lib-{name}-{}-{nanos}", std::process::id())
}

/// Sends `n` messages with distinct payloads (one in ten not UTF-8) to `topic`.
fn send(brokers: &str, topic: &str, n: usize) -> BTreeSet<Vec<u8>> {
    let mut sink = KafkaSink::new(brokers).expect("connect the producer");
    let mut sent = BTreeSet::new();
    for i in 0..n {
        let mut payload = format!("message {i}").into_bytes();
        if i % 10 == 0 {
            payload.push(0xff);
        }
        let key = format!("{:032x}", i % 17);
        sink.send(topic, key.as_bytes(), &payload).expect("send");
        sent.insert(payload);
    }
    sink.flush().expect("every message acknowledged");
    assert_eq!(sink.sent(), n as u64);
    sent
}

fn source(brokers: &str, topic: &str, group: &str, start: BTreeMap<i32, i64>) -> KafkaSource {
    KafkaSource::new(KafkaSourceConfig {
        brokers: brokers.to_string(),
        group: group.to_string(),
        topics: vec![topic.to_string()],
        start_offsets: Arc::new(move |_, _, p| start.get(&p).copied()),
    })
    .expect("connect the consumer")
}

/// Polls until `caught_up`, returning everything read; fails after 60 s.
fn drain(src: &mut KafkaSource) -> Vec<Message> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut all = Vec::new();
    loop {
        let polled = src.poll(10_000, Duration::from_millis(200)).expect("poll");
        let got = polled.messages.len();
        all.extend(polled.messages);
        if got == 0 && src.caught_up().expect("caught_up") {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up after 60 s ({} read)",
            all.len()
        );
    }
}

fn by_partition(msgs: &[Message]) -> BTreeMap<i32, Vec<i64>> {
    let mut parts: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for m in msgs {
        parts.entry(m.partition).or_default().push(m.offset);
    }
    parts
}

#[test]
fn reads_everything_once_then_resumes_where_the_manifest_says() {
    let brokers = brokers();
    let topic = unique("resume");
    ensure_topics(&brokers, &[&topic], 3).expect("create the topic");
    let sent = send(&brokers, &topic, 600);

    // A fresh data directory (no manifest offsets) reads from the earliest offset.
    let mut src = source(&brokers, &topic, &unique("g1"), BTreeMap::new());
    // The cluster's id names the log in the tables' transactions.
    assert!(src.origin().starts_with("kafka-"), "{}", src.origin());
    let all = drain(&mut src);
    assert_eq!(all.len(), 600, "every message once");
    let got: BTreeSet<Vec<u8>> = all.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(got, sent, "payload bytes come back unchanged");
    assert!(
        all.iter()
            .all(|m| m.key.as_ref().is_some_and(|k| k.len() == 32))
    );
    let parts = by_partition(&all);
    assert_eq!(parts.len(), 3, "17 keys spread over the 3 partitions");
    for (p, offsets) in &parts {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "partition {p}: offsets 0..n in order");
    }
    let mut assigned = src.assignment();
    assigned.sort();
    assert_eq!(
        assigned,
        (0..3).map(|p| (topic.clone(), p)).collect::<Vec<_>>()
    );
    src.commit_hint(&[(topic.clone(), 0, 1)])
        .expect("a hint never fails");
    drop(src);

    // Another group, with manifest offsets: partition 0 resumes at 5, partition 1 at its
    // end, partition 2 from the start. Expected: (n0 - 5) + 0 + n2 messages.
    let n: BTreeMap<i32, i64> = parts.iter().map(|(p, o)| (*p, o.len() as i64)).collect();
    let start = BTreeMap::from([(0, 5), (1, n[&1])]);
    let mut src = source(&brokers, &topic, &unique("g2"), start);
    let again = drain(&mut src);
    let parts = by_partition(&again);
    assert_eq!(again.len() as i64, n[&0] - 5 + n[&2]);
    assert_eq!(parts[&0], (5..n[&0]).collect::<Vec<_>>());
    assert!(!parts.contains_key(&1));
    assert_eq!(parts[&2], (0..n[&2]).collect::<Vec<_>>());
}

#[test]
fn caught_up_sees_messages_produced_after_the_start() {
    let brokers = brokers();
    let topic = unique("tail");
    ensure_topics(&brokers, &[&topic], 1).expect("create the topic");
    let mut src = source(&brokers, &topic, &unique("g"), BTreeMap::new());
    assert!(
        !src.caught_up().expect("caught_up"),
        "not caught up before an assignment"
    );
    assert!(drain(&mut src).is_empty(), "an empty topic");
    send(&brokers, &topic, 250);
    // More messages exist now: not caught up until all 250 are read.
    let deadline = Instant::now() + Duration::from_secs(30);
    while src.caught_up().expect("caught_up") {
        assert!(Instant::now() < deadline, "never saw the new messages");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(drain(&mut src).len(), 250);
}

#[test]
fn a_second_member_takes_partitions_and_the_first_hears_of_it() {
    let brokers = brokers();
    let topic = unique("group");
    ensure_topics(&brokers, &[&topic], 3).expect("create the topic");
    send(&brokers, &topic, 30);
    let group = unique("g");
    let mut a = source(&brokers, &topic, &group, BTreeMap::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.assignment().len() < 3 {
        a.poll(1000, Duration::from_millis(100)).expect("poll a");
        assert!(
            Instant::now() < deadline,
            "the first member never got the partitions"
        );
    }
    let mut b = source(&brokers, &topic, &group, BTreeMap::new());
    let mut revoked = Vec::new();
    while b.assignment().is_empty() || a.assignment().len() == 3 {
        revoked.extend(
            a.poll(1000, Duration::from_millis(100))
                .expect("poll a")
                .revoked,
        );
        b.poll(1000, Duration::from_millis(100)).expect("poll b");
        assert!(
            Instant::now() < deadline,
            "the second member never got a partition"
        );
    }
    revoked.extend(
        a.poll(1000, Duration::from_millis(100))
            .expect("poll a")
            .revoked,
    );
    assert!(
        !revoked.is_empty(),
        "the first member was told what it lost"
    );
    let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (
        a.assignment().into_iter().collect(),
        b.assignment().into_iter().collect(),
    );
    assert!(
        sa.is_disjoint(&sb),
        "a partition has one owner: {sa:?} {sb:?}"
    );
}

#[test]
fn unreachable_brokers_are_one_clear_error() {
    // Port 1 on localhost: nothing listens there.
    let err = KafkaSink::new("127.0.0.1:1").expect_err("no broker there");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot reach the brokers at 127.0.0.1:1"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn ensure_topics_creates_once_and_keeps_existing_topics() {
    let brokers = brokers();
    let topic = unique("ensure");
    ensure_topics(&brokers, &[&topic], 2).expect("create");
    ensure_topics(&brokers, &[&topic], 5).expect("exists already: nothing to do");
    // Still 2 partitions: messages keyed over many keys land in partitions 0 and 1 only.
    send(&brokers, &topic, 100);
    let mut src = source(&brokers, &topic, &unique("g"), BTreeMap::new());
    let parts = by_partition(&drain(&mut src));
    assert_eq!(parts.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert!(
        ensure_topics(&brokers, &[&topic], 0).is_err(),
        "zero partitions is refused"
    );
}

#[test]
fn a_paused_partition_is_not_read_then_resumes_where_it_stopped() {
    let brokers = brokers();
    let topic = unique("pause");
    ensure_topics(&brokers, &[&topic], 3).expect("create the topic");
    send(&brokers, &topic, 3000);
    let mut src = source(&brokers, &topic, &unique("g"), BTreeMap::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut all = Vec::new();
    while src.assignment().len() < 3 {
        all.extend(
            src.poll(100, Duration::from_millis(200))
                .expect("poll")
                .messages,
        );
        assert!(Instant::now() < deadline, "no assignment after 60 s");
    }
    // Partition 0 paused: two polls in a row that find nothing mean partitions 1 and 2
    // are read to their end, and none of it may come from partition 0.
    src.set_paused(&[(topic.clone(), 0)], true).expect("pause");
    let before = all.iter().filter(|m| m.partition == 0).count();
    let mut empty = 0;
    while empty < 2 {
        let got = src
            .poll(500, Duration::from_millis(300))
            .expect("poll")
            .messages;
        assert!(
            got.iter().all(|m| m.partition != 0),
            "a paused partition was read"
        );
        empty = if got.is_empty() { empty + 1 } else { 0 };
        all.extend(got);
        assert!(
            Instant::now() < deadline,
            "partitions 1 and 2 never ran dry"
        );
    }
    assert_eq!(all.iter().filter(|m| m.partition == 0).count(), before);
    assert!(
        !src.caught_up().expect("caught_up"),
        "partition 0 is not read to its end"
    );
    // Resumed, it goes on from where it stopped: every offset of every partition once,
    // in order, 3,000 in all.
    src.set_paused(&[(topic.clone(), 0)], false)
        .expect("resume");
    all.extend(drain(&mut src));
    assert_eq!(all.len(), 3000);
    for (p, offsets) in by_partition(&all) {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "partition {p}: offsets 0..n once, in order"
        );
    }
}

#[test]
fn kafka_partitions_read_in_step_write_fewer_files_and_every_event_once() {
    // As the local log's test of the same name: read in turns of equal message counts,
    // the chats (a tenth of the calls) run through the 120 days in the first commits,
    // so those commits hold a file for nearly every day; paced, the chats partition is
    // left unread while it is more than 3 days ahead of the calls.
    let brokers = brokers();
    let mut files = Vec::new();
    for pace in [false, true] {
        let (calls, chats) = (unique("calls"), unique("chats"));
        ensure_topics(&brokers, &[&calls, &chats], 1).expect("create the topics");
        let mut sink = KafkaSink::new(&brokers).expect("connect the producer");
        let n = common::two_paces(|topic, line| {
            let topic = if topic == "calls" { &calls } else { &chats };
            sink.send(topic, b"k", line.as_bytes()).expect("send");
        });
        sink.flush().expect("every message acknowledged");
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let mut src = KafkaSource::new(KafkaSourceConfig {
            brokers: brokers.clone(),
            group: unique("pace"),
            topics: vec![calls, chats],
            start_offsets: pipeline::start_offsets(&dir),
        })
        .expect("connect the consumer");
        let opts = IngestOptions {
            until_idle: true,
            max_file_bytes: 30_000,
            poll_max: 8,
            flush_interval: Duration::from_secs(60),
            pace: Some(pace),
            ..IngestOptions::default()
        };
        let s = pipeline::run(&mut src, &dir, &opts, &AtomicBool::new(false)).expect("ingest");
        assert_eq!(s.events as usize, n, "{s}");
        common::assert_each_once(
            stored_events(&dir).unwrap().into_iter().map(|e| e.event_id),
            n,
        );
        files.push(s.files);
    }
    common::assert_fewer_files(files[0], files[1]);
}

#[test]
fn a_partition_shorter_than_the_tables_offsets_stops_the_reader() {
    let brokers = brokers();
    let topic = unique("short");
    ensure_topics(&brokers, &[&topic], 1).expect("create the topic");
    send(&brokers, &topic, 20);
    // The tables say 500 were read: the topic was deleted and created again.
    let mut src = source(&brokers, &topic, &unique("g"), BTreeMap::from([(0, 500)]));
    let deadline = Instant::now() + Duration::from_secs(60);
    let err = loop {
        match src.poll(1_000, Duration::from_millis(200)) {
            Ok(p) => assert!(p.messages.is_empty(), "nothing at or past 500 exists"),
            Err(e) => break e.to_string(),
        }
        assert!(Instant::now() < deadline, "no error after 60 s");
    };
    assert!(err.contains(&format!("{topic}/0")), "{err}");
    assert!(err.contains("ends at offset 20"), "{err}");
    assert!(err.contains("up to offset 500"), "{err}");
}
