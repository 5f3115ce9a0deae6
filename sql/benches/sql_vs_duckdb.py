"""The DuckDB side of sql/benches/sql_vs_duckdb.rs.

One in-memory DuckDB connection for the whole run. Reads one JSON request per line on
stdin and answers each with one JSON line on stdout:

  {"op": "exec", "sql": ["...", ...]}  ->  {"ok": true}            (untimed setup)
  {"op": "time", "sql": "..."}         ->  {"ms": 12.3, "rows": [[...], ...]}
  {"op": "info"}                       ->  {"version": "...", "threads": 2}

A "time" request runs the query once and fetches every row; the clock (perf_counter)
covers parsing, planning, reading the Parquet files and fetching the result. Errors are
answered as {"error": "..."}.
"""

import json
import sys
import time

import duckdb


def main():
    con = duckdb.connect()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            op = request["op"]
            if op == "info":
                threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
                answer = {"version": duckdb.__version__, "threads": threads}
            elif op == "exec":
                for statement in request["sql"]:
                    con.execute(statement)
                answer = {"ok": True}
            elif op == "time":
                started = time.perf_counter()
                rows = con.execute(request["sql"]).fetchall()
                elapsed = time.perf_counter() - started
                answer = {"ms": elapsed * 1000.0, "rows": [list(row) for row in rows]}
            else:
                answer = {"error": f"unknown op {op!r}"}
        except Exception as e:  # reported to the bench, which stops
            answer = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
