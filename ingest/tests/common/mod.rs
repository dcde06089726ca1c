//! Event lines shared by the ingest tests of the local log and of Kafka.

/// A `call.received` line with id number `i` on day `day` of 2024 (0 = 1 January).
pub fn on_day(i: u32, day: u32) -> String {
    let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new(day.into());
    format!(
        r#"{{"event_id":"00000000-0000-4000-8000-{i:012x}","type":"call.received","v":1,"at":"{date}T10:00:00+01:00","source":"milano-020202","contact_id":"c-{i}","family":"{:016x}","ivr_path":"4-3"}}"#,
        0xabc0_0000_u64 + u64::from(i % 17)
    )
}

/// Sends a year's start in two paces through `append(topic, line)`: `calls` 10 events a
/// day and `chats` one, over 120 days in time order. Returns the event count.
pub fn two_paces(mut append: impl FnMut(&str, &str)) -> usize {
    let mut n = 0;
    for day in 0..120u32 {
        for k in 0..10 {
            append("calls", &on_day(day * 10 + k, day));
            n += 1;
        }
        append("chats", &on_day(100_000 + day, day));
        n += 1;
    }
    n
}

/// Asserts that `ids` (the stored events' ids) hold `n` distinct ids, each once.
pub fn assert_each_once(ids: impl IntoIterator<Item = String>, n: usize) {
    let mut once: std::collections::BTreeMap<String, usize> = Default::default();
    for id in ids {
        *once.entry(id).or_default() += 1;
    }
    assert_eq!(once.len(), n);
    assert!(once.values().all(|c| *c == 1), "an event stored twice");
}

/// Asserts that reading in step wrote at least a fifth fewer files than not.
pub fn assert_fewer_files(unpaced: u64, paced: u64) {
    eprintln!("files: paced {paced}, unpaced {unpaced}");
    assert!(
        paced * 10 < unpaced * 8,
        "paced {paced} files, unpaced {unpaced}"
    );
}
