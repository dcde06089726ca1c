"""Check a culla data directory against what kafka_produce.py sent, with DuckDB.

Reads DIR/events/**/*.parquet and DIR/dead_letters/**/*.parquet with DuckDB (an
independent Parquet reader) and compares them with the expected outcome files written
by kafka_produce.py (one or more, e.g. one per produce run): every valid event exactly
once and nothing else, every malformed message in the dead letters with its reason, no
Kafka message (topic, partition, offset) stored twice, personal data redacted.
Prints a JSON summary; exits 1 with the list of problems if anything differs.
"""

import argparse
import json
import sys
from pathlib import Path

try:
    import duckdb
except ImportError:  # pragma: no cover - environment problem, said clearly
    sys.exit("kafka_check.py needs the duckdb module (pip install duckdb)")


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

    con = duckdb.connect()
    data = Path(args.data)
    events_glob = str(data / "events" / "**" / "*.parquet")
    dead_glob = str(data / "dead_letters" / "**" / "*.parquet")
    problems = []

    rows = con.execute(
        f"SELECT event_id, topic, partition, \"offset\" FROM read_parquet('{events_glob}', "
        "hive_partitioning=true)").fetchall()
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
        f"SELECT count(*) FROM read_parquet('{events_glob}', hive_partitioning=true) "
        "WHERE source IS NULL OR event_date IS NULL").fetchone()[0]
    if hive:
        problems.append(f"{hive} events without the source/event_date hive columns")

    dead_got = {}
    dead_rows = 0
    if any(data.joinpath("dead_letters").rglob("*.parquet")):
        for reason, n in con.execute(
                f"SELECT reason, count(*) FROM read_parquet('{dead_glob}', "
                "hive_partitioning=true) GROUP BY reason").fetchall():
            dead_got[reason] = n
            dead_rows += n
        bad = con.execute(
            f"SELECT count(*) FROM read_parquet('{dead_glob}', hive_partitioning=true) "
            "WHERE detail IS NULL OR detail = '' OR raw IS NULL").fetchone()[0]
        if bad:
            problems.append(f"{bad} dead letters without detail or raw bytes")
        leaked = con.execute(
            f"SELECT count(*) FROM read_parquet('{dead_glob}', hive_partitioning=true) "
            "WHERE raw_text LIKE '%000 000 0000%' OR (reason = 'personal_data' AND NOT redacted)"
        ).fetchone()[0]
        if leaked:
            problems.append(f"{leaked} dead letters keep a phone number unredacted")
        lineage = f"""
            SELECT topic, partition, "offset" FROM read_parquet('{events_glob}', hive_partitioning=true)
            UNION ALL
            SELECT topic, partition, "offset" FROM read_parquet('{dead_glob}', hive_partitioning=true)"""
    else:
        lineage = f"""SELECT topic, partition, "offset" FROM read_parquet('{events_glob}',
            hive_partitioning=true)"""
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
