//! Kafka as culla's event log: a consumer-group reader, an idempotent producer, topic setup.
//!
//! [`KafkaSource`] is the [`EventSource`] of `culla ingest --brokers`: it joins a consumer
//! group (several ingest processes split the partitions), and on every (re)assignment it
//! seeks each partition to the offset the data directory's tables say comes next for
//! this cluster ([`StartOffsets`], origin `kafka-<cluster id>`), or to the earliest offset
//! when the tables have never seen the partition. A partition whose end (the high
//! watermark of the fetch responses) lies below that offset — the topic was deleted and
//! created again, or the cluster replaced under the same id — stops ingest with one line:
//! the events produced since would otherwise be skipped in silence. The broker's committed group offsets are written only as a hint for
//! monitoring tools ([`EventSource::commit_hint`]); they never decide where reading starts,
//! which is what makes a crash between "Parquet committed" and "offsets committed"
//! harmless. Partitions taken away by a rebalance are reported in [`Polled::revoked`] so
//! the pipeline drops what it buffered for them (the new owner re-reads from the manifest).
//! Each assigned partition is read from its own queue and handed out round-robin, so a
//! small topic cannot run far ahead of a large one; asked to (`IngestOptions::pace`), the
//! pipeline paces the partitions in event time by not reading the ones ahead
//! (`pipeline::Pacer`): their queues fill and librdkafka stops fetching them.
//!
//! [`KafkaSink`] is the [`EventSink`] of `culla produce --brokers`: an idempotent,
//! lz4-compressing, batching producer whose [`EventSink::flush`] waits for every delivery
//! report and fails if any message was not acknowledged, so an event is never lost
//! silently. It creates a missing topic (with [`DEFAULT_PARTITIONS`] partitions) before
//! the first message to it; the reader never creates topics. [`ensure_topics`] creates
//! topics explicitly (tests, setup scripts).
//!
//! Extra librdkafka properties (TLS, SASL, tuning) can be given to every client through
//! the environment variable `CULLA_KAFKA_CONFIG` as `key=value` pairs separated by
//! commas, e.g. `security.protocol=SASL_SSL,sasl.mechanism=PLAIN`.

use crate::{Epoch, Error, EventSink, EventSource, Message, Polled, Result, StartOffsets};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Partitions of a topic created by [`KafkaSink`] when it does not exist yet.
pub const DEFAULT_PARTITIONS: i32 = 3;

/// How long a metadata, watermark or admin request may take before it is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Records a resumed partition is read again before its start offset (and dropped), so
/// that a broker that serves only whole batches from their first offset (tansu 0.6.0)
/// still returns the batch holding the start offset. librdkafka's producers put at most
/// 10,000 records in a batch (`batch.num.messages`).
const REWIND: i64 = 10_000;

/// How often librdkafka reports the high watermarks the reader needs for `caught_up`.
const STATS_INTERVAL: Duration = Duration::from_millis(100);

/// Environment variable with extra librdkafka properties, `key=value,key=value`.
pub const CONFIG_ENV: &str = "CULLA_KAFKA_CONFIG";

fn kafka_err(context: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Kafka {
        context: context.into(),
        message: e.to_string(),
    }
}

/// A librdkafka configuration for the brokers.
fn base_config(brokers: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    // librdkafka logs go through `ClientContext::log` into tracing.
    cfg.set_log_level(RDKafkaLogLevel::Warning);
    cfg
}

/// Applies the `CULLA_KAFKA_CONFIG` overrides, last, so they win over culla's settings.
fn with_overrides(mut cfg: ClientConfig) -> Result<ClientConfig> {
    if let Ok(extra) = std::env::var(CONFIG_ENV) {
        for pair in extra.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(Error::BadInput(format!(
                    "{CONFIG_ENV} entry \"{pair}\" is not of the form key=value"
                )));
            };
            cfg.set(k.trim(), v.trim());
        }
    }
    Ok(cfg)
}

/// Forwards librdkafka's log lines and client errors to `tracing`.
fn forward_log(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "{fac}: {msg}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {msg}"),
    }
}

/// Runs a future to completion on the current thread (the admin API's futures are
/// completed by librdkafka's own threads, so no async runtime is needed).
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Partition counts of the topics that exist among `topics` (one metadata request).
fn existing_topics<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    brokers: &str,
) -> Result<BTreeMap<String, usize>> {
    let md = client
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|e| kafka_err(format!("cannot reach the brokers at {brokers}"), e))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}

/// Creates every topic of `topics` that does not exist yet, with `partitions` partitions
/// (replication factor 1), and waits until the brokers' metadata shows them.
///
/// Topics that already exist are left as they are, whatever their partition count.
pub fn ensure_topics(brokers: &str, topics: &[&str], partitions: i32) -> Result<()> {
    if partitions < 1 {
        return Err(Error::BadInput(format!(
            "a topic needs at least one partition, not {partitions}"
        )));
    }
    let admin: AdminClient<DefaultClientContext> =
        with_overrides(base_config(brokers))?
            .create()
            .map_err(|e| kafka_err(format!("cannot create an admin client for {brokers}"), e))?;
    let have = existing_topics(admin.inner(), brokers)?;
    let missing: Vec<&str> = topics
        .iter()
        .copied()
        .filter(|t| !have.contains_key(*t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = block_on(admin.create_topics(new.iter(), &opts))
        .map_err(|e| kafka_err(format!("cannot create topics {missing:?}"), e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(kafka_err(format!("cannot create topic {topic}"), code));
            }
        }
    }
    // Creation is asynchronous on some brokers: wait until every topic has its partitions.
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let have = existing_topics(admin.inner(), brokers)?;
        if missing.iter().all(|t| have.contains_key(*t)) {
            tracing::info!(topics = ?missing, partitions, "created Kafka topics");
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(kafka_err(
                format!("cannot create topics {missing:?}"),
                "the brokers did not show them within 10 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// How [`KafkaSource`] connects and where it starts.
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Consumer group: ingest processes with the same group split the partitions.
    pub group: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Where each assigned partition starts (the manifest), `None` = earliest offset.
    pub start_offsets: StartOffsets,
}

impl std::fmt::Debug for KafkaSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSourceConfig")
            .field("brokers", &self.brokers)
            .field("group", &self.group)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// What the rebalance callback tells the reader.
#[derive(Default)]
struct Assignment {
    /// Assigned partitions and the offset each was started at (`None` = earliest).
    partitions: BTreeMap<(String, i32), Option<i64>>,
    /// Partitions taken away since the last poll.
    revoked: Vec<(String, i32)>,
    /// Whether the group has assigned partitions (possibly none) at least once.
    assigned_once: bool,
    /// When the current assignment was taken.
    assigned_at: Option<Instant>,
    /// An error from an assignment, surfaced by the next poll.
    error: Option<String>,
}

/// Consumer callbacks: seeks assigned partitions to the tables' offsets.
struct SourceContext {
    start_offsets: StartOffsets,
    /// `kafka-<cluster id>`, set before the consumer subscribes.
    origin: std::sync::OnceLock<String>,
    state: Mutex<Assignment>,
    /// Bumped at the start of every rebalance, before any partition is released, so a
    /// poll can drop what it read before one and the writer can refuse to commit rows
    /// read in an earlier generation ([`EventSource::epoch`]).
    generation: Epoch,
    /// High watermark per partition, from the fetch responses (via librdkafka's
    /// statistics), and when it was seen.
    highs: Mutex<BTreeMap<(String, i32), (i64, Instant)>>,
}

impl SourceContext {
    fn origin(&self) -> &str {
        self.origin.get().map_or("kafka", String::as_str)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Assignment> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }
    // tansu 0.6.0 answers ListOffsets(latest) with the base offset of the last batch + 1,
    // short of the real end; the high watermark of its fetch responses is right, and
    // librdkafka reports it in its statistics.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let now = Instant::now();
        let mut highs = self.highs.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions {
                if partition >= 0 && p.hi_offset >= 0 && p.fetch_state == "active" {
                    highs.insert((name.clone(), partition), (p.hi_offset, now));
                }
            }
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", "consumer: {error}: {reason}");
    }
}

impl ConsumerContext for SourceContext {
    // The eager protocol (librdkafka's default assignors): every rebalance revokes the
    // whole assignment, then assigns a new one.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let parts: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                let mut started = BTreeMap::new();
                let mut failure = None;
                for (topic, partition) in parts {
                    let start = (self.start_offsets)(self.origin(), &topic, partition);
                    // Seek a little before the start and drop what precedes it in `poll`:
                    // tansu 0.6.0 skips the whole batch holding a mid-batch fetch offset.
                    let offset = start.map_or(Offset::Beginning, |o| {
                        Offset::Offset(o.saturating_sub(REWIND).max(0))
                    });
                    if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                        failure = Some(format!("cannot seek {topic}/{partition}: {e}"));
                    }
                    tracing::info!(topic, partition, start = ?start, "partition assigned");
                    started.insert((topic, partition), start);
                }
                let assigned = consumer.assign(tpl);
                let mut st = self.state();
                if let Err(e) = assigned {
                    failure = Some(format!("cannot take the assigned partitions: {e}"));
                }
                st.partitions = started;
                st.assigned_once = true;
                st.assigned_at = Some(Instant::now());
                if failure.is_some() {
                    st.error = failure;
                }
            }
            other => {
                if other != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    tracing::warn!(error = ?other, "rebalance error; dropping the assignment");
                }
                if let Err(e) = consumer.unassign() {
                    tracing::warn!("cannot drop the assignment: {e}");
                }
                let mut st = self.state();
                let gone: Vec<(String, i32)> =
                    std::mem::take(&mut st.partitions).into_keys().collect();
                tracing::info!(partitions = ?gone, "partitions revoked");
                st.revoked.extend(gone);
            }
        }
    }

    // Serve statistics (the high watermarks) often while `poll` waits for messages.
    fn main_queue_min_poll_interval(&self) -> rdkafka::util::Timeout {
        rdkafka::util::Timeout::After(STATS_INTERVAL)
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        // Only a hint for monitoring: a failed commit loses nothing.
        if let Err(e) = result {
            tracing::debug!("offset hint not committed: {e}");
        }
    }
}

/// Reads the topics of a consumer group, starting each partition where the manifest says.
///
/// Every assigned partition is read from its own librdkafka queue
/// (`split_partition_queue`) into a buffer of its own, bounded by [`BUFFER_BYTES`]; a
/// partition the pipeline pauses is simply not handed out. Once its buffer is full its
/// queue fills to `queued.max.messages.kbytes` and librdkafka stops fetching it, then goes
/// on from where it stopped: nothing is sought or purged, unlike librdkafka's
/// pause/resume (which, with tansu 0.6.0, lost messages: docs/DECISIONS.md). Messages are
/// copied out of librdkafka's queues as they arrive, paused or not, and the queues are
/// kept small: librdkafka's queued memory grew out of proportion to its queue limit
/// (4 MB queues read in place peaked at 670 MB on 10M events; this, at 434 MB unpaced).
pub struct KafkaSource {
    consumer: Arc<BaseConsumer<SourceContext>>,
    brokers: String,
    /// Next offset to read per assigned partition, as far as this reader knows.
    next: BTreeMap<(String, i32), Option<i64>>,
    /// The assigned partitions' own queues, in topic/partition order.
    parts: Vec<PartitionReader>,
    /// Where the next round of reads starts in `parts` (so every partition gets a turn).
    turn: usize,
    /// The context generation `next` and `parts` were built for.
    generation: u64,
    /// The subscribed topics and the group, for `--until-idle`'s look at the partitions
    /// this process does not hold.
    topics: Vec<String>,
    group: String,
    /// Since when a partition held by no live reader of ours has been behind its end,
    /// and when that was last asked.
    unowned_behind: Option<Instant>,
    others_asked: Option<Instant>,
    /// When the assigned partitions' ends were last compared with the tables' offsets.
    short_checked: Option<Instant>,
}

/// How long `--until-idle` waits for a partition this process is not given (another
/// member of the group holds it) to be committed to its end by someone: the session
/// timeout (10 s) plus the rebalance timeout (`max.poll.interval.ms`, 30 s), after which
/// a killed member's seat is free on a broker that expires members.
const UNOWNED_WAIT: Duration = Duration::from_secs(45);

/// One assigned partition, read through its own queue.
struct PartitionReader {
    topic: String,
    partition: i32,
    /// The partition's queue; `None` when librdkafka could not split it off (its
    /// messages then come through the consumer's queue, into `buffer`).
    queue: Option<PartitionQueue<SourceContext>>,
    /// Messages read from the queue and not handed out yet, in offset order. Messages
    /// that came through the consumer's own queue (fetched between the assignment and
    /// the split) are put here first, so they precede everything in `queue`.
    buffer: VecDeque<Message>,
    /// Payload bytes in `buffer`.
    buffered: usize,
    /// Offsets below this were read only because of [`REWIND`] and are dropped.
    floor: Option<i64>,
    /// Not handed out while paused by the pipeline.
    paused: bool,
}

impl PartitionReader {
    fn push(&mut self, m: Message) {
        if m.offset >= self.floor.unwrap_or(i64::MIN) {
            self.buffered += m.payload.len();
            self.buffer.push_back(m);
        }
    }

    /// Copies what librdkafka has fetched into `buffer`, up to [`BUFFER_BYTES`].
    fn fill(&mut self) {
        let Some(queue) = &self.queue else {
            return;
        };
        let floor = self.floor.unwrap_or(i64::MIN);
        while self.buffered < BUFFER_BYTES {
            match queue.poll(Duration::ZERO) {
                Some(Ok(m)) if m.offset() < floor => {}
                Some(Ok(m)) => {
                    self.buffered += m.payload_len();
                    self.buffer.push_back(to_message(&m));
                }
                Some(Err(e)) => {
                    // Transient (broker restarting, leader moving): librdkafka retries.
                    tracing::warn!(topic = %self.topic, partition = self.partition, "Kafka consumer: {e}");
                    break;
                }
                None => break,
            }
        }
    }

    /// Moves up to `max` buffered messages into `out`.
    fn take(&mut self, out: &mut Vec<Message>, max: usize) -> usize {
        let n = max.min(self.buffer.len());
        for m in self.buffer.drain(..n) {
            self.buffered -= m.payload.len();
            out.push(m);
        }
        n
    }
}

fn to_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Message {
    Message {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().unwrap_or_default().to_vec(),
    }
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("brokers", &self.brokers)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Connects to the brokers and subscribes to the topics as a member of the group.
    ///
    /// Fails when the brokers cannot be reached within 10 s. Topics that do not exist
    /// yet are logged and picked up when they appear (the reader never creates topics).
    pub fn new(cfg: KafkaSourceConfig) -> Result<KafkaSource> {
        if cfg.topics.is_empty() {
            return Err(Error::BadInput("no Kafka topic to read".into()));
        }
        let mut conf = base_config(&cfg.brokers);
        conf.set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Only used when a manifest offset is out of range (the topic was recreated):
            // re-reading everything is safe, deduplication drops what is already stored.
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // A restarted process should not wait long for its dead predecessor's seat.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Also the rebalance timeout the coordinator gives every member to rejoin: a
            // killed member keeps its partitions (and a restarted one waits) until it
            // expires, 300 s by default. The reader polls all the time, so 30 s is ample.
            .set("max.poll.interval.ms", "30000")
            // Each partition has its own queue, and this bounds each: memory stays flat
            // whatever the backlog, and a partition not read (paused) stops being fetched.
            .set("queued.max.messages.kbytes", QUEUE_KBYTES.to_string())
            // A full queue postpones the partition's next fetch by this much (librdkafka's
            // default, 1 s, would leave a drained queue empty for most of a second).
            .set("fetch.queue.backoff.ms", "20")
            .set("fetch.wait.max.ms", "100")
            .set("topic.metadata.refresh.interval.ms", "10000")
            .set(
                "statistics.interval.ms",
                STATS_INTERVAL.as_millis().to_string(),
            );
        let conf = with_overrides(conf)?;
        let context = SourceContext {
            start_offsets: cfg.start_offsets,
            origin: std::sync::OnceLock::new(),
            state: Mutex::new(Assignment::default()),
            generation: Arc::new(AtomicU64::new(0)),
            highs: Mutex::new(BTreeMap::new()),
        };
        let consumer: BaseConsumer<SourceContext> = conf
            .create_with_context(context)
            .map_err(|e| kafka_err(format!("cannot create a consumer for {}", cfg.brokers), e))?;
        let have = existing_topics(consumer.client(), &cfg.brokers)?;
        let cluster = consumer.client().fetch_cluster_id(REQUEST_TIMEOUT);
        let origin = cluster_origin(cluster.as_deref());
        if cluster.is_none() {
            tracing::warn!(brokers = %cfg.brokers, "the cluster did not tell its id; offsets are recorded as {origin}");
        }
        let _ = consumer.context().origin.set(origin);
        for t in &cfg.topics {
            if !have.contains_key(t) {
                tracing::warn!(topic = %t, "Kafka topic does not exist yet; it is read once it appears");
            }
        }
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| kafka_err(format!("cannot subscribe to {}", cfg.topics.join(",")), e))?;
        tracing::info!(brokers = %cfg.brokers, group = %cfg.group, topics = ?cfg.topics, "Kafka consumer started");
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            brokers: cfg.brokers,
            next: BTreeMap::new(),
            parts: Vec::new(),
            turn: 0,
            generation: 0,
            topics: cfg.topics,
            group: cfg.group,
            unowned_behind: None,
            others_asked: None,
            short_checked: None,
        })
    }

    /// Whether every partition of the subscribed topics that this process does not hold
    /// is committed to the tables up to its end (by another member, or earlier): what
    /// makes `--until-idle` mean everything, not just this process's share. A partition
    /// still behind after [`UNOWNED_WAIT`] is an error naming the group.
    fn others_committed(&mut self) -> Result<bool> {
        if self
            .others_asked
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Ok(false);
        }
        self.others_asked = Some(Instant::now());
        let have = existing_topics(self.consumer.client(), &self.brokers)?;
        let mut behind: Vec<String> = Vec::new();
        for topic in &self.topics {
            let Some(&n) = have.get(topic) else { continue };
            for partition in 0..n as i32 {
                if self.next.contains_key(&(topic.clone(), partition)) {
                    continue;
                }
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                    .map_err(|e| {
                        kafka_err(format!("cannot read the end of {topic}/{partition}"), e)
                    })?;
                let ctx = self.consumer.context();
                let committed = (ctx.start_offsets)(ctx.origin(), topic, partition);
                if committed.unwrap_or(low).max(low) < high {
                    behind.push(format!("{topic}/{partition}"));
                }
            }
        }
        if behind.is_empty() {
            self.unowned_behind = None;
            return Ok(true);
        }
        let since = *self.unowned_behind.get_or_insert_with(Instant::now);
        tracing::info!(
            partitions = ?behind,
            "waiting for partitions another member of the group holds"
        );
        if since.elapsed() >= UNOWNED_WAIT {
            return Err(Error::BadInput(format!(
                "--until-idle: {} not read to the end after {} s: another member of group {}                  holds them (a `culla ingest` still running in that group, or a stopped one                  whose seat did not expire); stop it or use another --group",
                behind.join(", "),
                UNOWNED_WAIT.as_secs(),
                self.group
            )));
        }
        Ok(false)
    }

    /// After a rebalance: rebuilds `next` from the new assignment and gives each
    /// assigned partition its own queue (an assignment deactivates the earlier queues).
    /// Returns whether anything changed.
    fn sync_assignment(&mut self) -> bool {
        let generation = self.consumer.context().generation.load(Ordering::SeqCst);
        if generation == self.generation {
            return false;
        }
        self.next = self.consumer.context().state().partitions.clone();
        self.parts = self
            .next
            .iter()
            .map(|((topic, partition), start)| {
                let queue = self.consumer.split_partition_queue(topic, *partition);
                if queue.is_none() {
                    tracing::warn!(
                        topic,
                        partition,
                        "cannot read the partition on its own queue"
                    );
                }
                PartitionReader {
                    topic: topic.clone(),
                    partition: *partition,
                    queue,
                    buffer: VecDeque::new(),
                    buffered: 0,
                    floor: *start,
                    paused: false,
                }
            })
            .collect();
        self.turn = 0;
        self.generation = generation;
        true
    }

    /// Serves the consumer's own queue (rebalances, statistics, errors), waiting at most
    /// `wait` for the first event. A message found there (fetched before its partition
    /// was split off) goes to the partition's buffer. Returns whether a rebalance
    /// ran.
    fn serve(&mut self, wait: Duration) -> Result<bool> {
        let mut rebalanced = false;
        let mut wait = wait;
        loop {
            let polled = self.consumer.poll(wait).map(|r| r.map(|m| to_message(&m)));
            wait = Duration::ZERO;
            // A rebalance served inside this poll: the queues are rebuilt first, and a
            // message it returned belongs to the new assignment (librdkafka drops what
            // was fetched for the old one).
            rebalanced |= self.sync_assignment();
            match polled {
                Some(Ok(m)) => {
                    match self
                        .parts
                        .iter_mut()
                        .find(|p| p.partition == m.partition && p.topic == m.topic)
                    {
                        Some(p) => p.push(m),
                        // Not (or no longer) assigned here: the owner reads it from the
                        // manifest's offset.
                        None => {
                            tracing::debug!(topic = %m.topic, partition = m.partition, "message of a partition not assigned here")
                        }
                    }
                }
                Some(Err(e)) => {
                    if let Some((code, reason)) = self.consumer.client().fatal_error() {
                        return Err(kafka_err(
                            format!("consumer of {} failed", self.brokers),
                            format!("{code}: {reason}"),
                        ));
                    }
                    // Transient (broker restarting, topic not created yet): librdkafka retries.
                    tracing::warn!("Kafka consumer: {e}");
                }
                None => return Ok(rebalanced),
            }
        }
    }

    /// One round over the partitions not paused, each giving up to a fair share of `room`.
    fn take_round(&mut self, out: &mut Vec<Message>, room: usize) -> Result<usize> {
        let n = self.parts.len();
        let reading = self.parts.iter().filter(|p| !p.paused).count();
        if n == 0 || reading == 0 || room == 0 {
            return Ok(0);
        }
        for p in &mut self.parts {
            p.fill();
        }
        let share = room.div_ceil(reading).max(MIN_SHARE);
        let mut taken = 0;
        for i in 0..n {
            let p = &mut self.parts[(self.turn + i) % n];
            if p.paused {
                continue;
            }
            let got = p.take(out, share.min(room - taken));
            // Remember how far the partition has been handed out (its messages are in
            // offset order, so the last one taken is the furthest).
            if let Some(last) = out.last().filter(|_| got > 0)
                && let Some(next) = self.next.get_mut(&(p.topic.clone(), p.partition))
                && next.is_none_or(|n| n <= last.offset)
            {
                *next = Some(last.offset + 1);
            }
            taken += got;
            if taken >= room {
                break;
            }
        }
        self.turn = (self.turn + 1) % n;
        Ok(taken)
    }
}

/// The smallest run of messages taken from one partition in a round.
const MIN_SHARE: usize = 256;

/// Prefetched kilobytes per partition queue (`queued.max.messages.kbytes`), beside the
/// partition's buffer.
const QUEUE_KBYTES: usize = 2048;

/// Payload bytes a partition's buffer holds at most.
const BUFFER_BYTES: usize = 4 << 20;

/// How long a poll waits on the consumer's queue before looking at the partitions' again.
const WAIT_STEP: Duration = Duration::from_millis(5);

/// `kafka-<cluster id>`, the id kept to the characters of Kafka's own ids.
fn cluster_origin(cluster: Option<&str>) -> String {
    match cluster {
        Some(id) if !id.is_empty() => {
            let id: String = id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("kafka-{id}")
        }
        _ => "kafka".to_string(),
    }
}

impl KafkaSource {
    /// Fails when an assigned partition ends, as a fetch response after the assignment
    /// reported it, before the offset the tables have read it up to.
    fn check_not_short(&mut self) -> Result<()> {
        // Once a second is enough: the watermarks come with statistics every 100 ms, and
        // the poll loop is the hot path.
        if self
            .short_checked
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Ok(());
        }
        self.short_checked = Some(Instant::now());
        let ctx = self.consumer.context();
        let (starts, assigned_at) = {
            let st = ctx.state();
            (st.partitions.clone(), st.assigned_at)
        };
        let Some(assigned_at) = assigned_at else {
            return Ok(());
        };
        let fresh_after = assigned_at + 3 * STATS_INTERVAL;
        let highs = ctx.highs.lock().unwrap_or_else(PoisonError::into_inner);
        for ((topic, partition), start) in &starts {
            if let (Some(start), Some(&(high, seen))) =
                (start, highs.get(&(topic.clone(), *partition)))
                && seen >= fresh_after
                && high < *start
            {
                return Err(Error::BadInput(format!(
                    "Kafka partition {topic}/{partition} on {} ends at offset {high}, but the tables have read it up to offset {start}: the topic was deleted and created again (or the cluster replaced under the same id), and what was produced to it since would be skipped; ingest it into a new data directory (--data)",
                    self.brokers
                )));
            }
        }
        Ok(())
    }
}

impl EventSource for KafkaSource {
    fn origin(&self) -> &str {
        self.consumer.context().origin()
    }

    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Polled> {
        let deadline = Instant::now() + timeout;
        let mut messages: Vec<Message> = Vec::with_capacity(max.min(8192));
        self.serve(Duration::ZERO)?;
        self.check_not_short()?;
        let mut batch_generation = self.generation;
        loop {
            let room = max - messages.len();
            let taken = self.take_round(&mut messages, room)?;
            if messages.len() >= max || (taken == 0 && !messages.is_empty()) {
                break;
            }
            let now = Instant::now();
            if taken == 0 && now >= deadline {
                break;
            }
            // Block only until the first message; then take what is already fetched.
            let wait = if taken == 0 {
                WAIT_STEP.min(deadline - now)
            } else {
                Duration::ZERO
            };
            if self.serve(wait)? {
                // A rebalance: everything read before it belongs to a revoked
                // assignment and is re-read from the manifest's offsets.
                messages.clear();
                batch_generation = self.generation;
            }
        }
        let (revoked, error) = {
            let mut st = self.consumer.context().state();
            (std::mem::take(&mut st.revoked), st.error.take())
        };
        if let Some(e) = error {
            return Err(kafka_err(format!("rebalance on {}", self.brokers), e));
        }
        Ok(Polled {
            messages,
            revoked,
            epoch: batch_generation,
        })
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.consumer
            .context()
            .state()
            .partitions
            .keys()
            .cloned()
            .collect()
    }

    fn caught_up(&mut self) -> Result<bool> {
        self.sync_assignment();
        let Some(assigned_at) = ({
            let st = self.consumer.context().state();
            if !st.assigned_once {
                return Ok(false);
            }
            st.assigned_at
        }) else {
            return Ok(false);
        };
        // A watermark counts only if a fetch response after the assignment reported it.
        let fresh_after = assigned_at + 3 * STATS_INTERVAL;
        let highs = self
            .consumer
            .context()
            .highs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // First the local check (the fetched watermarks, no request to the broker): while
        // there is a backlog this answers "no" at once, so polling is never slowed down.
        let mut fetched_highs = Vec::with_capacity(self.next.len());
        for ((topic, partition), next) in &self.next {
            let fetched = match highs.get(&(topic.clone(), *partition)) {
                Some(&(high, seen)) if seen >= fresh_after => high,
                _ => return Ok(false),
            };
            if next.is_some_and(|n| n < fetched) {
                return Ok(false);
            }
            fetched_highs.push(fetched);
        }
        // Then the broker's answer for every partition, asked all at once: each request
        // waits behind the connection's long-polling fetch (up to `fetch.wait.max.ms`),
        // so asked one after the other, nine partitions took 0.9 s at the end of a run.
        let asked = Instant::now();
        let consumer = &self.consumer;
        // (A partition whose thread cannot start is asked on this one.)
        let listed: Vec<rdkafka::error::KafkaResult<(i64, i64)>> = std::thread::scope(|s| {
            let asks: Vec<_> = self
                .next
                .keys()
                .map(|(topic, partition)| {
                    let ask = move || consumer.fetch_watermarks(topic, *partition, REQUEST_TIMEOUT);
                    std::thread::Builder::new()
                        .name("culla-watermarks".into())
                        .spawn_scoped(s, ask)
                        .map_err(|_| ask)
                })
                .collect();
            asks.into_iter()
                .map(|a| match a {
                    Ok(thread) => thread
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    Err(ask) => ask(),
                })
                .collect()
        });
        for ((((topic, partition), next), fetched), listed) in
            self.next.iter().zip(fetched_highs).zip(listed)
        {
            let (low, listed) = listed
                .map_err(|e| kafka_err(format!("cannot read the end of {topic}/{partition}"), e))?;
            if next.unwrap_or(low).max(low) < fetched.max(listed) {
                tracing::debug!(
                    topic,
                    partition,
                    ?next,
                    low,
                    fetched,
                    listed,
                    "not caught up"
                );
                return Ok(false);
            }
        }
        tracing::debug!(
            partitions = self.next.len(),
            ms = asked.elapsed().as_secs_f64() * 1e3,
            "every assigned partition read to its end"
        );
        self.others_committed()
    }

    fn epoch(&self) -> Option<Epoch> {
        Some(self.consumer.context().generation.clone())
    }

    fn can_pause(&self) -> bool {
        true
    }

    // Read round-robin from the partitions' own queues, a 1M-event year already writes
    // 1,100–1,384 files (librdkafka's shared queue: ~1,850); pacing cut that to 742–831
    // at the same speed (paired runs paced/unpaced: 0.68/0.65, 0.70/0.70, 0.80/0.81× the
    // raw consumer) and raised the peak on 10M events from 434 MB to 480–502 MB, next to
    // the 500 MB goal (docs/bench-ingest-kafka.md, session 8).
    fn paces_by_default(&self) -> bool {
        false
    }

    fn set_paused(&mut self, parts: &[(String, i32)], paused: bool) -> Result<()> {
        for p in &mut self.parts {
            if parts
                .iter()
                .any(|(t, n)| *n == p.partition && *t == p.topic)
            {
                p.paused = paused;
            }
        }
        Ok(())
    }

    fn commit_hint(&mut self, next_offsets: &[(String, i32, i64)]) -> Result<()> {
        let assigned = self.consumer.context().state().partitions.clone();
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in next_offsets {
            if assigned.contains_key(&(topic.clone(), *partition)) {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    .map_err(|e| kafka_err(format!("cannot hint {topic}/{partition}"), e))?;
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            // Only a hint (the manifest is the truth): never fail ingest for it.
            tracing::debug!("cannot commit the offset hint: {e}");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// Producer callbacks: counts failed deliveries so `flush` can report them.
#[derive(Default)]
struct SinkContext {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", "producer: {error}: {reason}");
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            self.failed.fetch_add(1, Ordering::SeqCst);
            let mut first = self
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if first.is_none() {
                *first = Some(format!("{}/{}: {e}", m.topic(), m.partition()));
            }
        }
    }
}

/// Writes events to Kafka: idempotent, lz4, batched; `flush` waits for every ack.
pub struct KafkaSink {
    producer: ThreadedProducer<SinkContext>,
    brokers: String,
    known_topics: HashSet<String>,
    sent: u64,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.brokers)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Connects an idempotent producer to the brokers; fails when they cannot be reached
    /// within 10 s.
    pub fn new(brokers: &str) -> Result<KafkaSink> {
        let mut conf = base_config(brokers);
        conf.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "131072")
            // Long enough to ride out a broker restart; a message not acknowledged by
            // then is reported by `flush`.
            .set("message.timeout.ms", "120000");
        let conf = with_overrides(conf)?;
        let producer: ThreadedProducer<SinkContext> = conf
            .create_with_context(SinkContext::default())
            .map_err(|e| kafka_err(format!("cannot create a producer for {brokers}"), e))?;
        let known_topics = existing_topics(producer.client(), brokers)?
            .into_keys()
            .collect();
        Ok(KafkaSink {
            producer,
            brokers: brokers.to_string(),
            known_topics,
            sent: 0,
        })
    }

    /// Messages handed to the producer so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

impl EventSink for KafkaSink {
    fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) -> Result<()> {
        if !self.known_topics.contains(topic) {
            ensure_topics(&self.brokers, &[topic], DEFAULT_PARTITIONS)?;
            self.known_topics.insert(topic.to_string());
        }
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The local queue is full: wait for deliveries to make room.
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    return Err(kafka_err(format!("cannot send to topic {topic}"), e));
                }
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.producer
            .flush(Duration::from_secs(180))
            .map_err(|e| kafka_err(format!("cannot deliver to {}", self.brokers), e))?;
        let ctx = self.producer.context();
        let failed = ctx.failed.swap(0, Ordering::SeqCst);
        if failed > 0 {
            let first = ctx
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            return Err(kafka_err(
                format!("delivery to {}", self.brokers),
                format!("{failed} message(s) were not acknowledged (first: {first})"),
            ));
        }
        Ok(())
    }
}
