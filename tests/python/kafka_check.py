"""Check a culla data directory against what kafka_produce.py sent, with independent readers.

Reads the Delta tables DIR/events and DIR/dead_letters with DuckDB's `delta_scan` (the
delta extension from the duckdb-ext-delta wheel) and compares them with the expected
outcome files written by kafka_produce.py (one or more, e.g. one per produce run): every
valid event exactly once and nothing else, every malformed message in the dead letters
with its reason, no Kafka message (topic, partition, offset) stored twice, personal data
redacted. Python `deltalake` must read the same event ids and dead-letter count, and a
plain Parquet glob of the data files (what a folder import does) the same rows.
Prints a JSON summary; exits 1 with the list of problems if anything differs.
"""

import argparse
import json
import sys
from pathlib import Path

try:
    import duckdb
    import duckdb_ext
    import deltalake
except ImportError as e:  # pragma: no cover - environment problem, said clearly
    sys.exit(f"kafka_check.py needs duckdb, duckdb-ext-delta and deltalake ({e})")


def connect():
    """A DuckDB connection with the delta extension of the installed wheel loaded."""
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    root = Path(list(duckdb_ext.__path__)[0])
    ext = next(root.glob(f"extensions/v{duckdb.__version__}/*/delta.duckdb_extension"))
    con.execute(f"LOAD '{ext}'")
    return con


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("expected", nargs="+")
    args = ap.parse_args()

    valid, dead, topics = set(), {}, set()
    for path in args.expected:
        exp = json.loads(Path(path).read_text())
        valid.update(exp["valid_ids"])
        topics.update(exp["topics"])
        for reason, n in exp["dead_by_reason"].items():
            dead[reason] = dead.get(reason, 0) + n

    con = connect()
    data = Path(args.data)
    events = f"delta_scan('{data / 'events'}')"
    dead_table = f"delta_scan('{data / 'dead_letters'}')"
    problems = []

    rows = con.execute(
        f"SELECT event_id, topic, partition, \"offset\" FROM {events}").fetchall()
    ids = [r[0] for r in rows]
    got = set(ids)
    missing = sorted(valid - got)
    unexpected = sorted(got - valid)
    repeated = len(ids) - len(got)
    if missing:
        problems.append(f"{len(missing)} valid events missing, e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected event ids, e.g. {unexpected[:3]}")
    if repeated:
        problems.append(f"{repeated} events stored more than once")
    if any(r[1] not in topics for r in rows):
        problems.append("events carry a topic that was not produced to")
    hive = con.execute(
        f"SELECT count(*) FROM {events} WHERE source IS NULL OR event_date IS NULL").fetchone()[0]
    if hive:
        problems.append(f"{hive} events without the source/event_date partition columns")

    dead_got = {}
    dead_rows = 0
    for reason, n in con.execute(
            f"SELECT reason, count(*) FROM {dead_table} GROUP BY reason").fetchall():
        dead_got[reason] = n
        dead_rows += n
    bad = con.execute(
        f"SELECT count(*) FROM {dead_table} "
        "WHERE detail IS NULL OR detail = '' OR raw IS NULL").fetchone()[0]
    if bad:
        problems.append(f"{bad} dead letters without detail or raw bytes")
    leaked = con.execute(
        f"SELECT count(*) FROM {dead_table} "
        "WHERE raw_text LIKE '%000 000 0000%' OR (reason = 'personal_data' AND NOT redacted)"
    ).fetchone()[0]
    if leaked:
        problems.append(f"{leaked} dead letters keep a phone number unredacted")
    lineage = f"""
        SELECT topic, partition, "offset" FROM {events}
        UNION ALL
        SELECT topic, partition, "offset" FROM {dead_table}"""

    # The second independent reader, and the plain files as a folder import sees them.
    dl_ids = deltalake.DeltaTable(str(data / "events")).to_pyarrow_table(
        columns=["event_id"]).column("event_id").to_pylist()
    if sorted(dl_ids) != sorted(ids):
        problems.append(f"Python deltalake reads {len(dl_ids)} events, delta_scan {len(ids)}")
    dl_dead = deltalake.DeltaTable(str(data / "dead_letters")).to_pyarrow_table(
        columns=["reason"]).num_rows
    if dl_dead != dead_rows:
        problems.append(f"Python deltalake reads {dl_dead} dead letters, delta_scan {dead_rows}")
    globbed = con.execute(
        f"SELECT count(*) FROM read_parquet('{data / 'events'}/*/*/*.parquet')").fetchone()[0]
    if globbed != len(ids):
        problems.append(f"a glob of the data files reads {globbed} events, the table {len(ids)}")
    if dead_got != dead:
        problems.append(f"dead letters by reason {dead_got}, expected {dead}")
    twice = con.execute(
        f"SELECT count(*) FROM (SELECT topic, partition, \"offset\" FROM ({lineage}) "
        "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
    if twice:
        problems.append(f"{twice} Kafka messages (topic, partition, offset) stored twice")

    print(json.dumps({"events": len(ids), "distinct": len(got), "expected": len(valid),
                      "dead_letters": dead_rows, "dead_by_reason": dead_got,
                      "problems": problems}))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
