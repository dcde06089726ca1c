"""DuckDB answering culla's questions with culla's own SQL, for the query benchmark.

Reads a JSON spec written by `queries/benches/queries.rs`:
  {"data": DIR, "nil": NIL.parquet, "births": BIRTHS.parquet,
   "projections": [[name, sql], ...], "queries": [[name, sql], ...],
   "events_file": null or COPY.parquet, "base_files": {} or {name: FILE.parquet}}
where every SQL text is already rendered for the period (the same text culla runs).
Translates the few DataFusion spellings DuckDB lacks (listed in DIALECT below), then
times each question the way culla is timed: a fresh connection, the projections as
views over the same Parquet files (the hive partitions of DIR/events, or, with
`events_file`, culla's consolidated copy of them, which has `source` and `event_date`
as columns), the question run to the last row. With `base_files`, the projections
named there are read from those Parquet files (culla's persisted base projections)
instead of being folded from the events.

It times one run per line read from stdin (a question's name) and prints `ms rows`
for it (`- 0` if DuckDB failed, the error on stderr): the bench alternates DuckDB's
runs with culla's, question by question, so both see the same machine load.
"""

import json
import re
import sys
import time

import duckdb
from scipy.stats import chi2

# DataFusion spelling -> DuckDB spelling. Only rewrites, never changes a definition.
DIALECT = [
    # microseconds since the epoch
    (re.compile(r"arrow_cast\(([\w.]+), 'Int64'\)"), r"epoch_us(\1)"),
    # a microsecond instant (a literal or a column) as a timestamp
    (
        re.compile(r"arrow_cast\((-?\d+|[\w.]+), 'Timestamp\(Microsecond, Some\(\"UTC\"\)\)'\)"),
        r"make_timestamp(\1)::TIMESTAMPTZ",
    ),
    (re.compile(r"\bto_char\("), "strftime("),
    # ordered aggregate "last value"
    (re.compile(r"\blast_value\("), "last("),
    (re.compile(r"\bmake_array\("), "list_value("),
    # culla's exact percentile (linear interpolation) is DuckDB's quantile_cont
    (re.compile(r"\bpercentile_exact\("), "quantile_cont("),
    # DataFusion names generate_series' column `value`
    (re.compile(r"generate_series\((\d+), (\d+)\) (\w+)\b"), r"generate_series(\1, \2) \3(value)"),
    # `at` is a reserved word in DuckDB 2.0: quote the column (no SQL here has it in a string)
    (re.compile(r"(?<![\w\"'])at(?![\w\"'])"), '"at"'),
]


def dialect(sql: str) -> str:
    lines = [l for l in sql.splitlines() if not l.lstrip().startswith("--")]
    sql = "\n".join(lines)
    for pattern, repl in DIALECT:
        sql = pattern.sub(repl, sql)
    return sql


def poisson_low(k):
    return None if k is None else (0.0 if k == 0 else float(chi2.ppf(0.025, 2 * k) / 2))


def poisson_high(k):
    return None if k is None else float(chi2.ppf(0.975, 2 * k + 2) / 2)


def connect(spec):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.create_function("poisson_ci_low", poisson_low, ["BIGINT"], "DOUBLE")
    con.create_function("poisson_ci_high", poisson_high, ["BIGINT"], "DOUBLE")
    d = spec["data"]
    if spec.get("events_file"):
        con.execute(
            f"CREATE VIEW events AS SELECT * FROM read_parquet('{spec['events_file']}')"
        )
    else:
        con.execute(
            "CREATE VIEW events AS SELECT * FROM read_parquet("
            f"'{d}/events/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)"
        )
    con.execute(f"CREATE VIEW nil AS SELECT * FROM read_parquet('{spec['nil']}')")
    con.execute(f"CREATE VIEW births AS SELECT * FROM read_parquet('{spec['births']}')")
    base = spec.get("base_files") or {}
    for name, sql in spec["projections"]:
        if name in base:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{base[name]}')")
        else:
            con.execute(f"CREATE VIEW {name} AS {dialect(sql)}")
    return con


def time_once(spec, q):
    """One fresh connection, views and question run to the last row: (ms, rows)."""
    start = time.perf_counter()
    con = connect(spec)
    rows = len(con.execute(q).fetchall())
    ms = (time.perf_counter() - start) * 1000.0
    con.close()
    return ms, rows


def serve(spec):
    queries = {name: dialect(sql) for name, sql in spec["queries"]}
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        try:
            ms, rows = time_once(spec, queries[name])
            print(f"{ms:.3f} {rows}", flush=True)
        except Exception as e:  # reported, and the bench goes on without this figure
            print(f"{name}: {e}", file=sys.stderr, flush=True)
            print("- 0", flush=True)


def main():
    serve(json.load(open(sys.argv[1])))


if __name__ == "__main__":
    main()
