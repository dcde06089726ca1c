"""Produce culla test events to Kafka with an independent client (confluent-kafka).

Used by the Kafka acceptance tests (tests/kafka_*.rs) so that what culla ingests was
written by a different Kafka client than culla's own. It creates the topics
PREFIX-calls, PREFIX-chats and PREFIX-referrals (PARTITIONS each) and sends, in a
shuffled order keyed by `family`:

  * EVENTS distinct valid v1 events (every type of the contract, docs/EVENTS.md),
    numbered from FIRST so that two runs with different FIRST never share an event;
  * DUPS exact re-sends of some of those events (same bytes, new offsets);
  * MALFORMED messages of each of 12 kinds (12 * MALFORMED in all), each with exactly
    one defect, so the dead-letter reason it must get is known in advance.

It writes the expected outcome (worked out here, from what was sent, not from culla)
to OUT as JSON: the valid event ids, the message count and dead letters per reason.
With --chunks C --pause S it sends in C flushed chunks S seconds apart (a slow, steady
producer for the crash test). Exits non-zero if any delivery is not acknowledged.
"""

import argparse
import hashlib
import json
import random
import sys
import time
import uuid

try:
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:  # pragma: no cover - environment problem, said clearly
    sys.exit("kafka_produce.py needs the confluent-kafka module (pip install confluent-kafka)")

SOURCES = ["milano-020202", "melzo-1000giorni"]
CATEGORIES = ["economic", "health", "education", "childcare", "socialisation", "documents",
              "housing", "work", "psychological", "violence", "other"]
NEED_OUTCOMES = ["informed", "referred", "booked", "no_resource", "waiting_list", "not_eligible"]
CLOSING = ["resolved", "service_unavailable", "waiting_list", "not_eligible", "unreachable",
           "declined"]

# The 12 malformed kinds and the dead-letter reason code each must get (schemas/src/validate.rs).
MALFORMED_KINDS = {
    "not_utf8": "not_utf8",
    "not_json": "not_json",
    "not_object": "not_object",
    "unknown_type": "unknown_type",
    "bad_version": "bad_version",
    "missing_contact_id": "missing_field",
    "v_as_string": "wrong_type",
    "bad_event_id": "bad_event_id",
    "uppercase_family": "bad_family",
    "phone_in_note": "personal_data",
    "no_offset": "no_offset",
    "before_2015": "too_old",
}


def family_key(i):
    return hashlib.sha256(f"family-{i}".encode()).hexdigest()[:32]


def make_event(rng, n):
    """One valid event; `n` makes its ids unique across runs."""
    family = family_key(rng.randrange(400))
    day = rng.randrange(1, 366)
    sec = rng.randrange(8 * 3600, 18 * 3600)
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1704067200 + day * 86400 + sec))
    ev = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "v": 1,
        "at": at + "+01:00",
        "source": rng.choice(SOURCES),
        "contact_id": f"c-{n:07d}",
        "family": family,
    }
    kind = rng.randrange(15)
    if kind == 0:
        ev.update(type="call.received", ivr_path="4-3")
    elif kind == 1:
        ev.update(type="call.answered", operator=f"op-{rng.randrange(20):02d}",
                  wait_s=round(rng.uniform(0, 120), 1))
    elif kind == 2:
        ev.update(type="call.abandoned", wait_s=round(rng.uniform(0, 300), 1))
    elif kind == 3:
        ev.update(type="call.ended", duration_s=round(rng.uniform(20, 1800), 1))
    elif kind == 4:
        ev.update(type="chat.opened", channel=rng.choice(["whatsapp", "webchat"]))
    elif kind == 5:
        ev.update(type="chat.message", direction=rng.choice(["in", "out"]))
    elif kind == 6:
        ev.update(type="chat.closed")
    elif kind == 7:
        ev.update(type="family.profiled",
                  territory={"comune": "015146", "nil": rng.randrange(1, 89),
                             "municipio": rng.randrange(1, 10)},
                  stage=rng.choice(["pregnancy", "0-12m", "12-36m"]),
                  single_parent=rng.random() < 0.3, language=rng.choice(["it", "ar", "es"]))
    elif kind == 8:
        ev.update(type="need.recorded", need_id=f"n-{n}", category=rng.choice(CATEGORIES),
                  outcome=rng.choice(NEED_OUTCOMES))
    elif kind == 9:
        ev.update(type="referral.created", referral_id=f"r-{n}", need_ids=[f"n-{n}"],
                  to="servizio-sociale-municipio-3", urgency=rng.choice(["normal", "urgent"]))
    elif kind == 10:
        ev.update(type="referral.callback", referral_id=f"r-{n}", reached=rng.random() < 0.7)
    elif kind == 11:
        ev.update(type="appointment.booked", appointment_id=f"a-{n}", referral_id=f"r-{n}",
                  service="consultorio-melzo", for_date="2024-06-10")
    elif kind == 12:
        ev.update(type="appointment.attended", appointment_id=f"a-{n}")
    elif kind == 13:
        ev.update(type="appointment.missed", appointment_id=f"a-{n}")
    else:
        ev.update(type="referral.closed", referral_id=f"r-{n}", outcome=rng.choice(CLOSING))
    return ev


def topic_of(event_type):
    if event_type.startswith("call."):
        return "calls"
    if event_type.startswith("chat."):
        return "chats"
    return "referrals"


def make_malformed(rng, kind, n):
    """(topic suffix, key, value bytes) of one message with exactly one defect."""
    ev = make_event(rng, n)
    key = ev["family"].encode()
    topic = topic_of(ev["type"])
    if kind == "not_utf8":
        return topic, key, b"\xff\xfe" + json.dumps(ev).encode()
    if kind == "not_json":
        return topic, key, b'{"event_id": "' + ev["event_id"].encode()
    if kind == "not_object":
        return topic, key, b"[1, 2, 3]"
    if kind == "unknown_type":
        ev["type"] = "call.teleported"
    elif kind == "bad_version":
        ev["v"] = 2
    elif kind == "missing_contact_id":
        del ev["contact_id"]
    elif kind == "v_as_string":
        ev["v"] = "1"
    elif kind == "bad_event_id":
        ev["event_id"] = f"evt-{n}"
    elif kind == "uppercase_family":
        ev["family"] = ev["family"].upper()
    elif kind == "phone_in_note":
        # A made-up, all-zero number: the shape of a phone number, nobody's number.
        ev["note"] = "richiamare al 000 000 0000"
    elif kind == "no_offset":
        ev["at"] = ev["at"][:-6]
    elif kind == "before_2015":
        ev["at"] = "2014-06-01T10:00:00+02:00"
    return topic, key, json.dumps(ev).encode()


def ensure_topics(brokers, names, partitions):
    admin = AdminClient({"bootstrap.servers": brokers})
    existing = set(admin.list_topics(timeout=10).topics)
    new = [NewTopic(t, num_partitions=partitions, replication_factor=1)
           for t in names if t not in existing]
    if not new:
        return
    for topic, fut in admin.create_topics(new, operation_timeout=10).items():
        try:
            fut.result()
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
    deadline = time.time() + 10
    while time.time() < deadline:
        md = admin.list_topics(timeout=10).topics
        if all(t in md and md[t].partitions for t in names):
            return
        time.sleep(0.1)
    sys.exit(f"topics {names} did not appear within 10 s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--prefix", required=True, help="topic prefix, unique per test")
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--first", type=int, default=0, help="number of the first event")
    ap.add_argument("--dups", type=int, default=0)
    ap.add_argument("--malformed", type=int, default=0, help="messages per malformed kind")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chunks", type=int, default=1)
    ap.add_argument("--pause", type=float, default=0.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    rng = random.Random(args.seed * 1_000_003 + args.first)
    topics = {s: f"{args.prefix}-{s}" for s in ("calls", "chats", "referrals")}
    ensure_topics(args.brokers, list(topics.values()), args.partitions)

    messages = []  # (topic, key, value)
    valid = []
    for n in range(args.first, args.first + args.events):
        ev = make_event(rng, n)
        valid.append(ev["event_id"])
        messages.append((topics[topic_of(ev["type"])], ev["family"].encode(),
                         json.dumps(ev).encode()))
    for i in rng.sample(range(len(messages)), args.dups):
        messages.append(messages[i])
    dead = {}
    n = args.first + args.events
    for kind, reason in MALFORMED_KINDS.items():
        for _ in range(args.malformed):
            suffix, key, value = make_malformed(rng, kind, n)
            n += 1
            messages.append((topics[suffix], key, value))
            dead[reason] = dead.get(reason, 0) + 1
    rng.shuffle(messages)

    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    producer = Producer({"bootstrap.servers": args.brokers, "linger.ms": 5, "acks": "all",
                         "message.timeout.ms": 120000})
    size = max(1, -(-len(messages) // max(args.chunks, 1)))
    for c in range(0, len(messages), size):
        for topic, key, value in messages[c:c + size]:
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(180)
        if args.pause and c + size < len(messages):
            time.sleep(args.pause)
    left = producer.flush(180)
    if failures or left:
        sys.exit(f"{len(failures)} deliveries failed, {left} unacknowledged: {failures[:3]}")
    with open(args.out, "w") as f:
        json.dump({"valid_ids": valid, "messages": len(messages), "dead_by_reason": dead,
                   "topics": list(topics.values())}, f)
    print(f"produced {len(messages)} messages: {len(valid)} valid, {args.dups} duplicates, "
          f"{sum(dead.values())} malformed")


if __name__ == "__main__":
    main()
