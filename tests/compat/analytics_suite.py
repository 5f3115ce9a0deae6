#!/usr/bin/env python3
"""S3 Select, pyarrow and `quarry sql` compatibility checks for Quarry.

Run by tests/compat/run.sh against a fresh server, after boto3_suite.py; can also
be pointed at any running endpoint:

    python analytics_suite.py --endpoint http://127.0.0.1:9000 \
        --access-key KEY --secret-key SECRET [--quarry-bin target/debug/quarry]

(defaults: $QUARRY_COMPAT_ENDPOINT, $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY,
$QUARRY_BIN). Without --quarry-bin the `quarry sql` checks are not run (and
are listed as not run, not as passed).

* S3 Select through boto3's select_object_content: CSV (FileHeaderInfo USE,
  IGNORE, NONE; delimiters and quotes), JSON (LINES, DOCUMENT, FROM paths), Parquet,
  GZIP and BZIP2, ScanRange, CSV and JSON output settings, aggregates, errors.
  Every call's event stream is checked too: Records, then exactly one Stats,
  then End last; Progress only when asked for; BytesReturned equals the bytes
  of the Records payloads.
* pyarrow: pyarrow.fs.S3FileSystem pointed at the server reads a Parquet
  object written by boto3, writes Parquet objects (single PUT and multipart)
  and reads them back, and reads datasets of several objects (flat and
  hive-partitioned).
* DuckDB (its httpfs extension, from PyPI) and polars (its own Rust S3 client):
  read the pyarrow-written objects (globs, hive partitions, ranged reads of
  Parquet, CSV), write Parquet to the server, and the results are read back
  with pyarrow.
* `quarry sql` (the CLI and the POST /?sql endpoint) against the objects the
  checks above wrote: inventory counts, read_parquet aggregates compared with
  pyarrow's (flat and hive-partitioned), every output format, errors.

Expected values are S3's documented behaviour or computed independently in
Python (or pyarrow), never taken from the server. The last line printed is
`N passed, M failed`; the exit status is non-zero on failure.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import math
import os
import random
import subprocess
import sys
import urllib.error
import urllib.request

import boto3
import checklib
import botocore
import duckdb
import duckdb_extension_httpfs
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from botocore.config import Config
from botocore.exceptions import ClientError

MiB = 1024 * 1024
BUCKET = "compat-analytics"

# --------------------------------------------------------------------------- data

# Mixed-case header (unquoted names in SQL match it case-insensitively), a quoted
# field with the delimiter, one with doubled quotes, and an empty last field.
PEOPLE_CSV = (
    b"Name,Age,City\n"
    b"Alice,34,Paris\n"
    b"Bob,25,New York\n"
    b'Carol,41,"Rome, Italy"\n'
    b'Dan,30,"The ""Big"" Town"\n'
    b"Eve,52,Berlin\n"
    b"Frank,19,\n"
)
PEOPLE = [  # (name, age, city) as the CSV above holds them
    ("Alice", 34, "Paris"),
    ("Bob", 25, "New York"),
    ("Carol", 41, "Rome, Italy"),
    ("Dan", 30, 'The "Big" Town'),
    ("Eve", 52, "Berlin"),
    ("Frank", 19, ""),
]

FRUIT_CSV = b"1,apple,0.5\n2,banana,0.25\n3,cherry,3.0\n"  # no header

JSON_ROWS = [
    {"id": 1, "name": "Alice", "score": 9.5, "active": True, "address": {"city": "Paris"}},
    {"id": 2, "name": "Bob", "score": 4.0, "active": False, "address": {"city": "Oslo"}},
    {"id": 3, "name": "Carol", "score": 7.25, "active": True, "address": {"city": "Rome"}},
    {"id": 4, "name": "Dan", "score": 5.0, "active": False, "address": {"city": "Lima"}},
]


def orders_csv(rows: int) -> tuple[bytes, list[tuple[int, int, str]]]:
    """A deterministic CSV with a header: id,qty,region."""
    rng = random.Random(4242)
    regions = ["eu", "us", "ap", "sa"]
    data = [(i, rng.randrange(0, 1000), regions[rng.randrange(len(regions))]) for i in range(1, rows + 1)]
    text = "id,qty,region\n" + "".join(f"{i},{q},{r}\n" for i, q, r in data)
    return text.encode(), data


def scores_table(rows: int = 1000, seed: int = 7) -> pa.Table:
    """id, name (some nulls), score, flag, day: several types and row groups' worth."""
    rng = random.Random(seed)
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": pa.array([None if i % 11 == 5 else f"name-{i:04d}" for i in range(rows)], pa.string()),
            "score": pa.array([float(i % 100) + 0.5 for i in range(rows)], pa.float64()),
            "flag": pa.array([i % 3 == 0 for i in range(rows)], pa.bool_()),
            "qty": pa.array([rng.randrange(-500, 500) for _ in range(rows)], pa.int32()),
        }
    )


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue()


# --------------------------------------------------------------------------- checks' helpers


CheckFailed = checklib.CheckFailed
expect_eq = checklib.expect_eq


class NotRun(Exception):
    """The check could not run here (e.g. no quarry binary given): reported, not passed."""


def expect_true(what, cond, got):
    if not cond:
        raise CheckFailed(f"{what}\n      got:      {got!r}")


def expect_close(what, expected: float, got: float, rel=1e-9):
    if not (isinstance(got, (int, float)) and math.isclose(expected, got, rel_tol=rel, abs_tol=1e-12)):
        raise CheckFailed(f"{what}\n      expected: {expected!r} (relative tolerance {rel})\n      got:      {got!r}")


def expect_table(what, expected: pa.Table, got: pa.Table):
    if expected.schema != got.schema:
        raise CheckFailed(f"{what}: schema\n      expected: {expected.schema}\n      got:      {got.schema}")
    if not expected.equals(got):
        detail = f"{got.num_rows} rows"
        if expected.num_rows == got.num_rows:
            for name in expected.column_names:
                a, b = expected[name].to_pylist(), got[name].to_pylist()
                bad = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
                if bad is not None:
                    detail += f"; column {name!r} differs first at row {bad}: expected {a[bad]!r}, got {b[bad]!r}"
                    break
        raise CheckFailed(f"{what}\n      expected: {expected.num_rows} rows equal to the table written\n      got:      {detail}")


def json_lines(what, data: bytes, delimiter: bytes = b"\n") -> list:
    text = data.decode("utf-8")
    d = delimiter.decode()
    if text and not text.endswith(d):
        raise CheckFailed(f"{what}: JSON records end with {d!r}\n      got:      {text[-80:]!r}")
    try:
        return [json.loads(line) for line in text.split(d)[:-1]]
    except json.JSONDecodeError as e:
        raise CheckFailed(f"{what}: every record is one JSON object\n      got:      {text[:400]!r} ({e})") from None


def error_of(e: ClientError) -> tuple[str | None, int | None]:
    return e.response.get("Error", {}).get("Code"), e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


class SelectResult:
    def __init__(self, events: list[dict]):
        self.events = events
        self.kinds = [next(iter(e)) for e in events]
        self.records = b"".join(e["Records"]["Payload"] for e in events if "Records" in e)
        stats = [e["Stats"]["Details"] for e in events if "Stats" in e]
        self.stats = stats[0] if stats else None
        self.progress = [e["Progress"]["Details"] for e in events if "Progress" in e]


# --------------------------------------------------------------------------- the suite


class Suite:
    def __init__(self, endpoint, access_key, secret_key, workdir, quarry_bin):
        self.endpoint = endpoint.rstrip("/")
        self.access_key = access_key
        self.secret_key = secret_key
        self.workdir = workdir
        self.quarry_bin = quarry_bin
        cfg = Config(
            region_name="us-east-1",
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
            connect_timeout=10,
            read_timeout=120,
        )
        self.s3 = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key, config=cfg
        )
        host = self.endpoint.split("://", 1)[1]
        self.fs = pafs.S3FileSystem(
            endpoint_override=host,
            scheme="http",
            access_key=access_key,
            secret_key=secret_key,
            region="us-east-1",
            connect_timeout=10,
            request_timeout=120,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        )
        # state shared between checks
        self.orders_raw, self.orders = orders_csv(20000)
        self.scores = scores_table()
        self.dataset_parts: list[pa.Table] = []

    def put(self, key, body: bytes):
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    def select(
        self,
        key,
        sql,
        input_serialization,
        output_serialization=None,
        scan_range=None,
        progress=False,
        scanned=None,
        processed=None,
    ) -> SelectResult:
        """select_object_content, its whole event stream read and checked for shape.

        `scanned` / `processed`: the BytesScanned / BytesProcessed the Stats event must
        report (S3: object bytes read; uncompressed bytes processed)."""
        kwargs = dict(
            Bucket=BUCKET,
            Key=key,
            Expression=sql,
            ExpressionType="SQL",
            InputSerialization=input_serialization,
            OutputSerialization=output_serialization or {"CSV": {}},
        )
        if scan_range is not None:
            kwargs["ScanRange"] = scan_range
        if progress:
            kwargs["RequestProgress"] = {"Enabled": True}
        resp = self.s3.select_object_content(**kwargs)
        expect_eq(f"HTTP status of SelectObjectContent {sql!r}", 200, resp["ResponseMetadata"]["HTTPStatusCode"])
        result = SelectResult(list(resp["Payload"]))
        what = f"event stream of {sql!r} on {key}"
        expect_true(f"{what}: the last event is End (got these event types)", result.kinds[-1:] == ["End"], result.kinds)
        expect_eq(f"{what}: number of End events", 1, result.kinds.count("End"))
        expect_eq(f"{what}: number of Stats events", 1, result.kinds.count("Stats"))
        expect_true(
            f"{what}: Stats comes after every Records event (got these event types)",
            "Records" not in result.kinds[result.kinds.index("Stats") :],
            result.kinds,
        )
        if not progress:
            expect_eq(f"{what}: Progress events without RequestProgress", [], result.progress)
        unknown = [k for k in result.kinds if k not in ("Records", "Stats", "Progress", "End", "Cont")]
        expect_eq(f"{what}: unknown event types", [], unknown)
        stats = result.stats
        expect_eq(f"{what}: Stats BytesReturned (bytes of the Records payloads)", len(result.records), stats.get("BytesReturned"))
        if scanned is not None:
            expect_eq(f"{what}: Stats BytesScanned", scanned, stats.get("BytesScanned"))
        if processed is not None:
            expect_eq(f"{what}: Stats BytesProcessed", processed, stats.get("BytesProcessed"))
        return result

    def select_error(self, key, sql, input_serialization, output_serialization=None, **kwargs):
        """The select must fail; returns (code, HTTP status) from the HTTP error or the error event."""
        try:
            result = self.select(key, sql, input_serialization, output_serialization, **kwargs)
        except botocore.exceptions.EventStreamError as e:  # an error event after the 200
            code, _ = error_of(e)
            return code, "error event"
        except ClientError as e:
            return error_of(e)
        raise CheckFailed(
            f"SelectObjectContent {sql!r} on {key}\n      expected: an error"
            f"\n      got:      success, records {result.records[:200]!r}"
        )

    def expect_select_error(self, what, key, sql, input_serialization, code_check, describe, output_serialization=None):
        code, status = self.select_error(key, sql, input_serialization, output_serialization)
        if not (code_check(code) and status == 400):
            raise CheckFailed(
                f"{what}: {sql!r}\n      expected: {describe} (HTTP 400)\n      got:      error {code} ({'HTTP ' + str(status) if isinstance(status, int) else status})"
            )

    # ------------------------------------------------------------------ S3 Select, CSV

    def check_setup_bucket(self):
        self.s3.create_bucket(Bucket=BUCKET)
        expect_eq("HeadBucket HTTP status", 200, self.s3.head_bucket(Bucket=BUCKET)["ResponseMetadata"]["HTTPStatusCode"])
        self.put("csv/people.csv", PEOPLE_CSV)
        self.put("csv/fruit.csv", FRUIT_CSV)

    def check_select_csv_header_use_where_cast(self):
        use = {"CSV": {"FileHeaderInfo": "USE"}}
        n = len(PEOPLE_CSV)
        r = self.select("csv/people.csv", "SELECT s.name, s.city FROM S3Object s WHERE CAST(s.age AS INT) > 30", use,
                        scanned=n, processed=n)
        expected = "".join(
            f'{name},{city if "," not in city else chr(34) + city + chr(34)}\n' for name, age, city in PEOPLE if age > 30
        )
        expect_eq("records of WHERE CAST(s.age AS INT) > 30 (unquoted names match Name/Age/City)", expected.encode(), r.records)
        r = self.select(
            "csv/people.csv",
            'SELECT s."Name", s.AGE FROM S3Object s WHERE CAST(s.Age AS INT) BETWEEN 25 AND 34',
            use,
        )
        expect_eq('records of s."Name" (exact) and s.AGE, BETWEEN 25 AND 34', b"Alice,34\nBob,25\nDan,30\n", r.records)
        r = self.select("csv/people.csv", "SELECT * FROM S3Object s WHERE s.City = 'The \"Big\" Town'", use)
        expect_eq("SELECT * of the row with doubled quotes (re-quoted on output)", b'Dan,30,"The ""Big"" Town"\n', r.records)
        r = self.select("csv/people.csv", "SELECT s.name, s.city FROM S3Object s WHERE CAST(s.age AS INT) < 20", use)
        expect_eq("a row whose last field is empty", b"Frank,\n", r.records)
        r = self.select("csv/people.csv", "SELECT s.name FROM S3Object s LIMIT 2", use)
        expect_eq("LIMIT 2 (the first two records, in object order)", b"Alice\nBob\n", r.records)
        r = self.select("csv/people.csv", "SELECT * FROM S3Object", use)
        expect_eq("SELECT * FROM S3Object (every record, in object order)", PEOPLE_CSV.split(b"\n", 1)[1], r.records)

    def check_select_csv_positional_header_none_and_ignore(self):
        none = {"CSV": {"FileHeaderInfo": "NONE"}}
        n = len(FRUIT_CSV)
        r = self.select("csv/fruit.csv", "SELECT s._2, s._3 FROM S3Object s WHERE CAST(s._1 AS INT) >= 2", none,
                        scanned=n, processed=n)
        expect_eq("s._2, s._3 WHERE CAST(s._1 AS INT) >= 2 (FileHeaderInfo NONE)", b"banana,0.25\ncherry,3.0\n", r.records)
        r = self.select("csv/fruit.csv", "SELECT _1 FROM S3Object", none)
        expect_eq("unqualified _1 (FileHeaderInfo NONE)", b"1\n2\n3\n", r.records)
        ignore = {"CSV": {"FileHeaderInfo": "IGNORE"}}
        r = self.select("csv/people.csv", "SELECT s._1, s._3 FROM S3Object s WHERE CAST(s._2 AS INT) > 40", ignore)
        expect_eq("s._1, s._3 with FileHeaderInfo IGNORE", b'Carol,"Rome, Italy"\nEve,Berlin\n', r.records)
        r = self.select("csv/people.csv", "SELECT count(*) FROM S3Object", ignore)
        expect_eq("count(*) with FileHeaderInfo IGNORE (header row not counted)", b"6\n", r.records)
        r = self.select("csv/people.csv", "SELECT count(*) FROM S3Object", none)
        expect_eq("count(*) with FileHeaderInfo NONE (header row counted)", b"7\n", r.records)

    def check_select_csv_custom_delimiters_and_output(self):
        # Tab-separated, ' quotes; then ';'-separated records.
        tsv = b"id\tlabel\n1\t'a\tb'\n2\tplain\n3\t'x,y'\n"
        self.put("csv/custom.tsv", tsv)
        inp = {"CSV": {"FileHeaderInfo": "USE", "FieldDelimiter": "\t", "QuoteCharacter": "'"}}
        r = self.select("csv/custom.tsv", "SELECT s.label FROM S3Object s WHERE s.id <> '2'", inp)
        # Default output: ',' separated, quoted as needed (a tab needs no quotes, a comma does).
        expect_eq("labels from a tab-separated object with ' quotes (default CSV output)", b'a\tb\n"x,y"\n', r.records)
        semi = b"id,label;1,one;2,two;3,three"
        self.put("csv/semicolon-records.csv", semi)
        inp = {"CSV": {"FileHeaderInfo": "USE", "RecordDelimiter": ";"}}
        r = self.select("csv/semicolon-records.csv", "SELECT s.label FROM S3Object s WHERE CAST(s.id AS INT) > 1", inp)
        expect_eq("labels from an object with RecordDelimiter ';' (no final delimiter)", b"two\nthree\n", r.records)
        out = {"CSV": {"FieldDelimiter": ";", "RecordDelimiter": "\r\n", "QuoteFields": "ALWAYS"}}
        r = self.select("csv/fruit.csv", "SELECT s._1, s._2 FROM S3Object s", {"CSV": {}}, out)
        expect_eq(
            "CSV output with FieldDelimiter ';', RecordDelimiter CRLF, QuoteFields ALWAYS",
            b'"1";"apple"\r\n"2";"banana"\r\n"3";"cherry"\r\n',
            r.records,
        )
        out = {"JSON": {"RecordDelimiter": ","}}
        r = self.select("csv/fruit.csv", "SELECT s._2 AS fruit FROM S3Object s", {"CSV": {}}, out)
        expect_eq(
            "JSON output with RecordDelimiter ','",
            [{"fruit": "apple"}, {"fruit": "banana"}, {"fruit": "cherry"}],
            json_lines("JSON output", r.records, b","),
        )

    def check_select_aggregates_json_output(self):
        use = {"CSV": {"FileHeaderInfo": "USE"}}
        ages = [a for _, a, _ in PEOPLE]
        r = self.select(
            "csv/people.csv",
            "SELECT count(*), sum(CAST(s.age AS INT)), min(CAST(s.age AS INT)), max(CAST(s.age AS INT)) FROM S3Object s",
            use,
            {"JSON": {}},
        )
        expect_eq(
            "count(*), sum, min, max as JSON (unnamed items are _1, _2, ...)",
            [{"_1": len(ages), "_2": sum(ages), "_3": min(ages), "_4": max(ages)}],
            json_lines("aggregate output", r.records),
        )
        r = self.select("csv/people.csv", "SELECT count(*) AS n FROM S3Object s WHERE CAST(s.age AS INT) > 30", use, {"JSON": {}})
        expect_eq("count(*) AS n with WHERE, as JSON", [{"n": sum(1 for a in ages if a > 30)}], json_lines("output", r.records))
        r = self.select("csv/people.csv", "SELECT avg(CAST(s.age AS INT)) FROM S3Object s", use, {"JSON": {}})
        rows = json_lines("avg output", r.records)
        expect_eq("keys of the avg(...) record", [["_1"]], [list(x) for x in rows])
        expect_close("avg(CAST(s.age AS INT))", sum(ages) / len(ages), float(rows[0]["_1"]))
        r = self.select("csv/people.csv", "SELECT count(*) FROM S3Object s", use)
        expect_eq("count(*) as CSV", f"{len(ages)}\n".encode(), r.records)

    # ------------------------------------------------------------------ S3 Select, JSON input

    def check_select_json_lines(self):
        body = "".join(json.dumps(row) + "\n" for row in JSON_ROWS).encode()
        self.put("json/rows.jsonl", body)
        lines = {"JSON": {"Type": "LINES"}}
        r = self.select("json/rows.jsonl", "SELECT s.id, s.name FROM S3Object s WHERE s.score > 5", lines, {"JSON": {}},
                        scanned=len(body), processed=len(body))
        expect_eq(
            "s.id, s.name WHERE s.score > 5 (JSON LINES in, JSON out)",
            [{"id": x["id"], "name": x["name"]} for x in JSON_ROWS if x["score"] > 5],
            json_lines("output", r.records),
        )
        r = self.select("json/rows.jsonl", "SELECT s.name FROM S3Object s WHERE s.active = true", lines)
        expect_eq("s.name WHERE s.active = true (CSV out)",
                  "".join(x["name"] + "\n" for x in JSON_ROWS if x["active"]).encode(), r.records)
        r = self.select("json/rows.jsonl", "SELECT s.address.city FROM S3Object s WHERE s.id = 2", lines)
        expect_eq("nested field s.address.city", b"Oslo\n", r.records)
        r = self.select("json/rows.jsonl", "SELECT count(*), sum(s.id) FROM S3Object s", lines, {"JSON": {}})
        expect_eq("count(*), sum(s.id) over JSON LINES", [{"_1": len(JSON_ROWS), "_2": sum(x["id"] for x in JSON_ROWS)}],
                  json_lines("output", r.records))

    def check_select_json_document(self):
        # Pretty-printed objects, each over several lines.
        body = "".join(json.dumps(row, indent=2) + "\n" for row in JSON_ROWS).encode()
        self.put("json/rows.json", body)
        doc = {"JSON": {"Type": "DOCUMENT"}}
        r = self.select("json/rows.json", "SELECT s.name FROM S3Object s WHERE s.id >= 2", doc)
        expect_eq("s.name WHERE s.id >= 2 (JSON DOCUMENT, multi-line objects)",
                  "".join(x["name"] + "\n" for x in JSON_ROWS if x["id"] >= 2).encode(), r.records)

    def check_select_json_from_path(self):
        # A CloudTrail-style log: one document whose Records array holds the events.
        events = [
            {"eventSource": "s3.amazonaws.com", "eventName": "PutObject", "userIdentity": {"userName": "alice"}},
            {"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "userIdentity": {"userName": "bob"}},
            {"eventSource": "s3.amazonaws.com", "eventName": "DeleteObject", "userIdentity": {"userName": "carol"}},
        ]
        self.put("json/trail.json", json.dumps({"Records": events}, indent=2).encode())
        doc = {"JSON": {"Type": "DOCUMENT"}}
        sql = ("SELECT r.eventName, r.userIdentity.userName FROM S3Object[*].Records[*] r "
               "WHERE r.eventSource = 's3.amazonaws.com'")
        r = self.select("json/trail.json", sql, doc, {"JSON": {}})
        want = [{"eventName": e["eventName"], "userName": e["userIdentity"]["userName"]}
                for e in events if e["eventSource"] == "s3.amazonaws.com"]
        expect_eq(f"{sql} over a CloudTrail-style document", want, json_lines("output", r.records))
        # The S3 Select reference's example: an empty record where the path finds nothing.
        rules = (b'{ "Rules": [ {"id": "1"}, {"expr": "y > x"}, {"id": "2", "expr": "z = DEBUG"} ]}\n'
                 b'{ "created": "June 27", "modified": "July 6" }\n')
        self.put("json/rules.json", rules)
        r = self.select("json/rules.json", "SELECT id FROM S3Object[*].Rules[*].id", doc, {"JSON": {}})
        expect_eq("SELECT id FROM S3Object[*].Rules[*].id (the S3 documentation's example output)",
                  b'{"id":"1"}\n{}\n{"id":"2"}\n{}\n', r.records)
        r = self.select("json/rules.json", "SELECT id FROM S3Object[*].Rules[*].id WHERE id IS NOT MISSING", doc, {"JSON": {}})
        expect_eq("... WHERE id IS NOT MISSING", b'{"id":"1"}\n{"id":"2"}\n', r.records)
        # The reference's list example: a 0-based index, the field named after itself.
        susan = {"name": "Susan Smith", "org": "engineering",
                 "projects": [{"project_name": "project1", "completed": False},
                              {"project_name": "project2", "completed": True}]}
        self.put("json/susan.json", json.dumps(susan, indent=2).encode())
        r = self.select("json/susan.json", "Select s.projects[0].project_name from S3Object s", doc, {"JSON": {}})
        expect_eq("Select s.projects[0].project_name (the S3 documentation's example output)",
                  b'{"project_name":"project1"}\n', r.records)

    # ------------------------------------------------------------------ S3 Select, compression

    def _check_compressed(self, key, compressed: bytes, compression: str):
        self.put(key, compressed)
        inp = {"CSV": {"FileHeaderInfo": "USE"}, "CompressionType": compression}
        raw = len(self.orders_raw)
        r = self.select(
            key,
            "SELECT count(*), sum(CAST(s.qty AS INT)) FROM S3Object s WHERE s.region = 'eu'",
            inp,
            {"JSON": {}},
            scanned=len(compressed),
            processed=raw,
        )
        eu = [q for _, q, region in self.orders if region == "eu"]
        expect_eq(f"count and sum of qty for region 'eu' ({compression}, 20000 rows)", [{"_1": len(eu), "_2": sum(eu)}],
                  json_lines("output", r.records))
        r = self.select(key, "SELECT * FROM S3Object s", inp, scanned=len(compressed), processed=raw)
        body = self.orders_raw.split(b"\n", 1)[1]
        if r.records != body:
            got_lines, want_lines = r.records.split(b"\n"), body.split(b"\n")
            first = next((i for i, (a, b) in enumerate(zip(want_lines, got_lines)) if a != b), min(len(got_lines), len(want_lines)))
            raise CheckFailed(
                f"SELECT * over the {compression} object: every record, in order\n"
                f"      expected: {len(body)} bytes, {len(want_lines) - 1} records\n"
                f"      got:      {len(r.records)} bytes, {len(got_lines) - 1} records; first difference at record {first}: "
                f"{got_lines[first] if first < len(got_lines) else None!r} instead of {want_lines[first] if first < len(want_lines) else None!r}"
            )

    def check_select_gzip_csv(self):
        self._check_compressed("csv/orders.csv.gz", gzip.compress(self.orders_raw, mtime=0), "GZIP")

    def check_select_bzip2_csv(self):
        self._check_compressed("csv/orders.csv.bz2", bz2.compress(self.orders_raw), "BZIP2")

    def check_select_progress_events(self):
        inp = {"CSV": {"FileHeaderInfo": "USE"}, "CompressionType": "GZIP"}
        r = self.select("csv/orders.csv.gz", "SELECT count(*) FROM S3Object s", inp, progress=True)
        expect_true("Progress events with RequestProgress Enabled (event types)", len(r.progress) >= 1, r.kinds)
        expect_true("every Progress event comes before Stats (event types)",
                    r.kinds.index("Stats") > max(i for i, k in enumerate(r.kinds) if k == "Progress"), r.kinds)
        for p in r.progress:
            for field in ("BytesScanned", "BytesProcessed", "BytesReturned"):
                expect_true(f"Progress {field} is at most the final Stats {field} ({r.stats[field]})",
                            isinstance(p.get(field), int) and p[field] <= r.stats[field], p)

    # ------------------------------------------------------------------ S3 Select, Parquet

    def check_select_parquet(self):
        data = parquet_bytes(self.scores, row_group_size=300)
        self.put("parquet/scores.parquet", data)
        inp = {"Parquet": {}}
        r = self.select("parquet/scores.parquet", "SELECT s.id, s.name FROM S3Object s WHERE s.score > 97", inp, {"JSON": {}})
        t = self.scores.filter(pc.greater(self.scores["score"], 97))
        expected = [{"id": i, "name": n} for i, n in zip(t["id"].to_pylist(), t["name"].to_pylist())]
        got = json_lines("output", r.records)
        # S3 Select leaves a null field out of a JSON record; accept it written as null too.
        got = [{"id": x.get("id"), "name": x.get("name")} for x in got]
        # (the order of the records is select_records_in_object_order's business)
        expect_eq("s.id, s.name WHERE s.score > 97 (Parquet, 4 row groups), sorted by id", expected,
                  sorted(got, key=lambda x: x["id"] if isinstance(x["id"], int) else -1))
        r = self.select("parquet/scores.parquet", "SELECT count(*), sum(s.qty), max(s.id) FROM S3Object s", inp, {"JSON": {}})
        expect_eq(
            "count(*), sum(s.qty), max(s.id) over Parquet",
            [{"_1": self.scores.num_rows, "_2": pc.sum(self.scores["qty"]).as_py(), "_3": self.scores.num_rows - 1}],
            json_lines("output", r.records),
        )
        r = self.select("parquet/scores.parquet", "SELECT s.name, s.flag FROM S3Object s WHERE s.id = 42", inp)
        expect_eq("s.name, s.flag WHERE s.id = 42 (CSV out)", b"name-0042,true\n", r.records)

    def check_select_parquet_stats(self):
        # S3: BytesScanned is the object bytes scanned: never more than the object holds,
        # and not 0 when the answer came from the object (even count(*) reads its
        # footer). BytesProcessed is the bytes processed: not 0 when column data had to
        # be read (a WHERE on a column, SELECT *).
        data = parquet_bytes(self.scores, row_group_size=300)
        self.put("parquet/scores.parquet", data)
        problems = []
        for sql, reads_columns in (("SELECT count(*) FROM S3Object s", False),
                                   ("SELECT s.name FROM S3Object s WHERE s.id = 42", True),
                                   ("SELECT * FROM S3Object s", True)):
            r = self.select("parquet/scores.parquet", sql, {"Parquet": {}})
            st = r.stats
            if not 0 < st["BytesScanned"] <= len(data):
                problems.append(f"{sql!r}: BytesScanned {st['BytesScanned']}, not in 1..{len(data)} (the object's size)")
            if reads_columns and not st["BytesProcessed"] > 0:
                problems.append(f"{sql!r}: BytesProcessed {st['BytesProcessed']} though column data of "
                                f"{self.scores.num_rows} rows was read")
        if problems:
            raise CheckFailed("Stats of selects over a Parquet object\n      expected: 0 < BytesScanned <= object size; "
                              "BytesProcessed > 0 when columns are read\n      got:      " + "\n                ".join(problems))

    def check_select_records_in_object_order(self):
        # S3 Select scans an object from start to end and returns the records in that
        # order, so `... WHERE ... LIMIT n` gives the first n matches. Each query runs
        # three times: an order that changes from run to run is caught too.
        csv_in = {"CSV": {"FileHeaderInfo": "USE"}}
        self.put("order/orders.csv", self.orders_raw)
        jsonl = "".join(json.dumps({"id": i, "qty": q, "region": r}) + "\n" for i, q, r in self.orders).encode()
        self.put("order/orders.jsonl", jsonl)
        t = pa.table({"id": pa.array([i for i, _, _ in self.orders], pa.int64()),
                      "qty": pa.array([q for _, q, _ in self.orders], pa.int64()),
                      "region": pa.array([r for _, _, r in self.orders])})
        self.put("order/orders.parquet", parquet_bytes(t, row_group_size=2500))
        eu = [i for i, _, r in self.orders if r == "eu"]
        cases = [
            ("order/orders.csv", csv_in, "CSV, 20000 records"),
            ("order/orders.jsonl", {"JSON": {"Type": "LINES"}}, "JSON LINES, 20000 records"),
            ("order/orders.parquet", {"Parquet": {}}, "Parquet, 8 row groups"),
        ]
        problems = []
        for key, inp, what in cases:
            for attempt in range(3):
                r = self.select(key, "SELECT s.id FROM S3Object s WHERE s.region = 'eu'", inp)
                got = [int(x) for x in r.records.split()]
                if sorted(got) != eu:
                    problems.append(f"{what}: WHERE region = 'eu' gave {len(got)} ids, not the {len(eu)} expected")
                elif got != eu:
                    first = next(i for i, (a, b) in enumerate(zip(eu, got)) if a != b)
                    problems.append(f"{what}, run {attempt + 1}: WHERE region = 'eu' out of object order from match "
                                    f"{first} on: {got[first:first + 4]}... instead of {eu[first:first + 4]}...")
                r = self.select(key, "SELECT s.id FROM S3Object s WHERE s.region = 'eu' LIMIT 3", inp)
                got = [int(x) for x in r.records.split()]
                if got != eu[:3]:
                    problems.append(f"{what}, run {attempt + 1}: WHERE region = 'eu' LIMIT 3 gave {got}, not the first "
                                    f"three matches {eu[:3]}")
        if problems:
            raise CheckFailed("records in object order\n      expected: every match in the object's order, every time"
                              "\n      got:      " + "\n                ".join(problems))

    # ------------------------------------------------------------------ S3 Select, ScanRange

    def _scan_object(self):
        """Records of varied lengths; returns (body, [(start offset, name)])."""
        names = [f"r{i:02d}-" + "x" * ((i * 7) % 13) for i in range(30)]
        offsets, pos = [], 0
        for n in names:
            offsets.append(pos)
            pos += len(n) + len(",1\n")
        body = "".join(f"{n},1\n" for n in names).encode()
        return body, list(zip(offsets, names))

    def _scan(self, key, scan_range, inp=None):
        r = self.select(key, "SELECT s._1 FROM S3Object s", inp or {"CSV": {"FileHeaderInfo": "NONE"}}, scan_range=scan_range)
        return [x for x in r.records.decode().split("\n") if x]

    def check_select_scan_range_start_and_suffix(self):
        body, recs = self._scan_object()
        self.put("scan/records.csv", body)
        size = len(body)

        def starting_in(lo, hi):  # records whose first byte is in [lo, hi], S3's definition
            return [n for off, n in recs if lo <= off <= hi]

        mid = recs[5][0] + 2  # inside record 5
        expect_eq(f"ScanRange Start={mid} (inside record 5): the records starting at or after it",
                  starting_in(mid, size - 1), self._scan("scan/records.csv", {"Start": mid}))
        at = recs[7][0]
        expect_eq(f"ScanRange Start={at} (the first byte of record 7)", starting_in(at, size - 1),
                  self._scan("scan/records.csv", {"Start": at}))
        expect_eq("ScanRange End=40 alone (the records starting in the last 40 bytes)",
                  starting_in(size - 40, size - 1), self._scan("scan/records.csv", {"End": 40}))
        lo, hi = recs[3][0] + 1, recs[9][0] - 2  # neither end on a record start
        expect_eq(f"ScanRange Start={lo} End={hi} (both inside records)", starting_in(lo, hi),
                  self._scan("scan/records.csv", {"Start": lo, "End": hi}))
        # JSON LINES too
        jbody = "".join(json.dumps({"n": n}) + "\n" for _, n in recs).encode()
        self.put("scan/records.jsonl", jbody)
        joffs, pos = [], 0
        for _, n in recs:
            joffs.append((pos, n))
            pos += len(json.dumps({"n": n})) + 1
        lo = joffs[4][0] + 3
        r = self.select("scan/records.jsonl", "SELECT s.n FROM S3Object s", {"JSON": {"Type": "LINES"}},
                        scan_range={"Start": lo})
        expect_eq(f"ScanRange Start={lo} on JSON LINES (inside record 4)", [n for off, n in joffs if off >= lo],
                  [x for x in r.records.decode().split("\n") if x])

    def check_select_scan_range_end_is_inclusive(self):
        # S3: "process only the records starting between the bytes 50 and 100
        # (inclusive, counting from zero)"; End defaults to size - 1.
        body, recs = self._scan_object()
        self.put("scan/records.csv", body)
        size = len(body)

        def starting_in(lo, hi):
            return [n for off, n in recs if lo <= off <= hi]

        failures = []
        lo, hi = recs[2][0], recs[4][0]  # End is the first byte of record 4
        try:
            expect_eq(f"ScanRange Start={lo} End={hi}, End = the first byte of record 4 (records 2, 3 and 4)",
                      starting_in(lo, hi), self._scan("scan/records.csv", {"Start": lo, "End": hi}))
        except CheckFailed as e:
            failures.append(str(e))
        # Adjacent inclusive ranges, as a parallel reader splits an object, must give
        # every record exactly once; some boundaries fall on record starts.
        cuts = sorted({0, recs[6][0], recs[6][0] + 1, recs[10][0] + 1, recs[13][0], recs[21][0] - 1, size})
        got = []
        for a, b in zip(cuts, cuts[1:]):
            got += self._scan("scan/records.csv", {"Start": a, "End": b - 1})
        want = [n for _, n in recs]
        try:
            expect_eq(f"records of the adjacent ranges [a, b-1] for cuts {cuts} (each record exactly once, in order); "
                      f"missing {[n for n in want if n not in got]}", want, got)
        except CheckFailed as e:
            failures.append(str(e))
        if failures:
            raise CheckFailed("\n    ".join(failures))

    # ------------------------------------------------------------------ S3 Select, errors

    def check_select_errors(self):
        use = {"CSV": {"FileHeaderInfo": "USE"}}
        parse = lambda c: bool(c) and c.startswith("Parse")  # noqa: E731
        self.expect_select_error("misspelt keyword", "csv/people.csv", "SELEC * FROM S3Object", use, parse, "a Parse* error")
        self.expect_select_error("WHERE without a condition", "csv/people.csv", "SELECT s.name FROM S3Object s WHERE", use,
                                 parse, "a Parse* error")
        self.expect_select_error("unbalanced parenthesis", "csv/people.csv",
                                 "SELECT count(* FROM S3Object s", use, parse, "a Parse* error")
        client = lambda c: bool(c) and c != "InternalError"  # noqa: E731
        self.expect_select_error("unknown column", "csv/people.csv", "SELECT s.nosuchcolumn FROM S3Object s", use, client,
                                 "a client error code, not InternalError")
        self.expect_select_error("positional column past the last one", "csv/fruit.csv", "SELECT s._9 FROM S3Object s",
                                 {"CSV": {}}, lambda c: c == "InvalidColumnIndex", "InvalidColumnIndex")
        self.expect_select_error("a table other than S3Object", "csv/people.csv", "SELECT * FROM elsewhere", use, client,
                                 "a client error code, not InternalError")
        # a CAST that fails on the data may surface as an HTTP error or as an error event
        code, status = self.select_error("csv/people.csv", "SELECT CAST(s.name AS INT) FROM S3Object s", use)
        expect_true("CAST('Alice' AS INT): error CastFailed (HTTP 400 or an error event)",
                    code == "CastFailed" and status in (400, "error event"), (code, status))
        # a plain object declared GZIP
        code, status = self.select_error("csv/people.csv", "SELECT * FROM S3Object",
                                         {"CSV": {"FileHeaderInfo": "USE"}, "CompressionType": "GZIP"})
        expect_true("a plain CSV object with CompressionType GZIP: a client error, not InternalError / 500",
                    code not in (None, "InternalError") and status in (400, "error event"), (code, status))
        try:
            self.s3.select_object_content(
                Bucket=BUCKET, Key="csv/no-such-key.csv", Expression="SELECT * FROM S3Object", ExpressionType="SQL",
                InputSerialization=use, OutputSerialization={"CSV": {}},
            )
        except ClientError as e:
            expect_eq("SelectObjectContent of a missing key", ("NoSuchKey", 404), error_of(e))
        else:
            raise CheckFailed("SelectObjectContent of a missing key\n      expected: NoSuchKey (404)\n      got:      success")
        # the server is still answering selects after the errors
        r = self.select("csv/fruit.csv", "SELECT count(*) FROM S3Object", {"CSV": {}})
        expect_eq("count(*) after the failed selects", b"3\n", r.records)

    # ------------------------------------------------------------------ pyarrow S3FileSystem

    def check_pyarrow_read_table(self):
        # The object check_select_parquet wrote with boto3 (written again if run alone).
        path = f"{BUCKET}/parquet/scores.parquet"
        data = parquet_bytes(self.scores, row_group_size=300)
        self.put("parquet/scores.parquet", data)
        info = self.fs.get_file_info(path)
        expect_eq(f"pyarrow get_file_info({path!r}) type", pafs.FileType.File, info.type)
        expect_eq(f"pyarrow get_file_info({path!r}) size", len(data), info.size)
        expect_table("pq.read_table through S3FileSystem", self.scores, pq.read_table(path, filesystem=self.fs))
        got = pq.read_table(path, filesystem=self.fs, columns=["id", "score"], filters=[("id", ">=", 900)])
        want = self.scores.select(["id", "score"]).filter(pc.greater_equal(self.scores["id"], 900))
        expect_table("pq.read_table with columns and a row filter (ranged reads of some row groups)", want, got)
        meta = pq.ParquetFile(self.fs.open_input_file(path)).metadata
        expect_eq("row groups seen through S3FileSystem", 4, meta.num_row_groups)

    def check_pyarrow_write_table_round_trip(self):
        small = f"{BUCKET}/pyarrow/written-small.parquet"
        pq.write_table(self.scores, small, filesystem=self.fs)
        expect_table("small table written by pq.write_table(filesystem=S3FileSystem), read back", self.scores,
                     pq.read_table(small, filesystem=self.fs))
        # ~16 MiB of incompressible doubles: S3FileSystem uploads it in parts.
        rng = random.Random(99)
        big = pa.table({"v": pa.array([rng.random() for _ in range(2_000_000)], pa.float64()),
                        "k": pa.array(range(2_000_000), pa.int64())})
        path = f"{BUCKET}/pyarrow/written-big.parquet"
        pq.write_table(big, path, filesystem=self.fs, compression="none", row_group_size=500_000)
        head = self.s3.head_object(Bucket=BUCKET, Key="pyarrow/written-big.parquet")
        expect_true("ContentLength of the big pyarrow-written object (> 10 MiB, so a multipart upload)",
                    head["ContentLength"] > 10 * MiB, head["ContentLength"])
        expect_true("ETag of the big pyarrow-written object has the multipart form \"<md5>-N\"",
                    head["ETag"].rstrip('"').rpartition("-")[2].isdigit(), head["ETag"])
        expect_eq("pyarrow get_file_info size = HeadObject ContentLength", head["ContentLength"],
                  self.fs.get_file_info(path).size)
        expect_table("big table written through S3FileSystem, read back through it", big, pq.read_table(path, filesystem=self.fs))
        body = self.s3.get_object(Bucket=BUCKET, Key="pyarrow/written-big.parquet")["Body"].read()
        expect_table("big table written through S3FileSystem, fetched with boto3 get_object", big, pq.read_table(io.BytesIO(body)))

    def check_pyarrow_dataset_of_several_objects(self):
        parts = [scores_table(rows=400 + 50 * i, seed=i) for i in range(4)]
        offset = 0
        for i, t in enumerate(parts):  # distinct ids across parts
            t = t.set_column(0, "id", pc.add(t["id"], offset))
            offset += t.num_rows
            parts[i] = t
            if i % 2 == 0:
                pq.write_table(t, f"{BUCKET}/dataset/part-{i}.parquet", filesystem=self.fs)
            else:
                self.put(f"dataset/part-{i}.parquet", parquet_bytes(t))
        self.dataset_parts = parts
        everything = pa.concat_tables(parts)
        d = ds.dataset(f"{BUCKET}/dataset/", filesystem=self.fs, format="parquet")
        expect_eq("files of ds.dataset over dataset/", sorted(f"{BUCKET}/dataset/part-{i}.parquet" for i in range(4)),
                  sorted(d.files))
        expect_eq("count_rows of the dataset", everything.num_rows, d.count_rows())
        got = d.to_table().sort_by("id")
        expect_table("ds.dataset(...).to_table() sorted by id = the parts written", everything.sort_by("id"), got)
        got = d.to_table(columns=["id", "qty"], filter=pc.field("qty") > 400).sort_by("id")
        want = everything.select(["id", "qty"]).filter(pc.greater(everything["qty"], 400)).sort_by("id")
        expect_table("dataset scan with a projection and a filter (qty > 400)", want, got)

    def ensure_dataset(self):
        """The objects under dataset/ (when run with -k, without the check that writes them)."""
        if not self.dataset_parts:
            self.check_pyarrow_dataset_of_several_objects()

    def check_pyarrow_dataset_hive_partitioned(self):
        t = scores_table(rows=900, seed=3)
        t = t.append_column("region", pa.array([["eu", "us", "ap"][i % 3] for i in range(t.num_rows)]))
        base = f"{BUCKET}/hive"
        ds.write_dataset(t, base, filesystem=self.fs, format="parquet", partitioning=["region"], partitioning_flavor="hive")
        files = sorted(
            f.path for f in self.fs.get_file_info(pafs.FileSelector(base, recursive=True)) if f.type == pafs.FileType.File
        )
        expect_true("files written by ds.write_dataset: one or more under each region=... directory",
                    {p.split("/")[2] for p in files if p.endswith(".parquet")} == {"region=ap", "region=eu", "region=us"}, files)
        d = ds.dataset(base, filesystem=self.fs, format="parquet", partitioning="hive")
        got = d.to_table(filter=pc.field("region") == "eu")
        want = t.filter(pc.equal(t["region"], "eu"))
        expect_table("hive partition region=eu read back (partition column from the key)",
                     want.sort_by("id"), got.select(want.column_names).cast(want.schema).sort_by("id"))
        expect_eq("rows of the whole hive dataset", t.num_rows, d.count_rows())

    def check_pyarrow_listing_matches_boto3(self):
        sel = pafs.FileSelector(f"{BUCKET}/dataset", recursive=True)
        got = sorted((f.path, f.size) for f in self.fs.get_file_info(sel) if f.type == pafs.FileType.File)
        resp = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="dataset/")
        want = sorted((f"{BUCKET}/{o['Key']}", o["Size"]) for o in resp.get("Contents", []))
        expect_eq("files and sizes under dataset/ from pyarrow = from boto3 list_objects_v2", want, got)
        expect_eq("pyarrow get_file_info of a missing key", pafs.FileType.NotFound,
                  self.fs.get_file_info(f"{BUCKET}/dataset/missing.parquet").type)

    def check_select_parquet_written_by_pyarrow(self):
        # S3 Select over an object pyarrow's S3FileSystem wrote.
        self.ensure_dataset()
        t = self.dataset_parts[0]
        r = self.select("dataset/part-0.parquet", "SELECT count(*), sum(s.qty) FROM S3Object s WHERE s.flag = true",
                        {"Parquet": {}}, {"JSON": {}})
        f = t.filter(t["flag"])
        expect_eq("count(*), sum(qty) WHERE flag over a pyarrow-written object",
                  [{"_1": f.num_rows, "_2": pc.sum(f["qty"]).as_py()}], json_lines("output", r.records))

    # ------------------------------------------------------------------ DuckDB and polars

    def duckdb(self):
        """A DuckDB connection with the httpfs extension (the PyPI wheel's copy) and a
        secret for the server: path-style addressing over plain HTTP."""
        con = duckdb.connect()
        ext_dir = os.path.join(os.path.dirname(duckdb_extension_httpfs.__file__), "extensions", f"v{duckdb.__version__}")
        con.execute(f"LOAD '{os.path.join(ext_dir, 'httpfs.duckdb_extension')}'")
        host = self.endpoint.split("://", 1)[1]
        con.execute(
            f"CREATE SECRET quarry (TYPE s3, KEY_ID '{self.access_key}', SECRET '{self.secret_key}', "
            f"ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')"
        )
        return con

    def polars_options(self) -> dict:
        return {
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_endpoint_url": self.endpoint,
            "aws_region": "us-east-1",
            "aws_allow_http": "true",
        }

    def check_duckdb_reads_objects_others_wrote(self):
        self.ensure_dataset()
        t = pa.concat_tables(self.dataset_parts)
        con = self.duckdb()
        n, s, lo, hi = con.execute(
            f"SELECT count(*), sum(qty), min(id), max(id) FROM read_parquet('s3://{BUCKET}/dataset/*.parquet')"
        ).fetchone()
        expect_eq("DuckDB count(*), sum(qty), min(id), max(id) over dataset/*.parquet (pyarrow's values)",
                  (t.num_rows, pc.sum(t["qty"]).as_py(), pc.min(t["id"]).as_py(), pc.max(t["id"]).as_py()), (n, s, lo, hi))
        got = con.execute(f"SELECT id, name FROM read_parquet('s3://{BUCKET}/dataset/*.parquet') WHERE id < 30 ORDER BY id").to_arrow_table()
        want = t.filter(pc.less(t["id"], 30)).select(["id", "name"]).sort_by("id")
        expect_table("DuckDB SELECT id, name WHERE id < 30 (a filter pushed into ranged reads)", want, got.cast(want.schema))
        files = sorted(r[0] for r in con.execute(f"SELECT file FROM glob('s3://{BUCKET}/dataset/*')").fetchall())
        expect_eq("DuckDB glob('s3://.../dataset/*') (a listing)", [f"s3://{BUCKET}/dataset/part-{i}.parquet" for i in range(4)], files)
        self.put("csv/orders-duckdb.csv", self.orders_raw)
        n, s = con.execute(f"SELECT count(*), sum(qty) FROM read_csv('s3://{BUCKET}/csv/orders-duckdb.csv', header = true)").fetchone()
        expect_eq("DuckDB count(*), sum(qty) of a CSV object", (len(self.orders), sum(q for _, q, _ in self.orders)), (n, s))
        if not self.s3.list_objects_v2(Bucket=BUCKET, Prefix="hive/").get("KeyCount"):
            self.check_pyarrow_dataset_hive_partitioned()
        hive = ds.dataset(f"{BUCKET}/hive", filesystem=self.fs, format="parquet", partitioning="hive").to_table()
        want = [(r, hive.filter(pc.equal(hive["region"], r)).num_rows) for r in sorted(set(hive["region"].to_pylist()))]
        got = con.execute(
            f"SELECT region, count(*) FROM read_parquet('s3://{BUCKET}/hive/**/*.parquet', hive_partitioning = true) "
            "GROUP BY region ORDER BY region"
        ).fetchall()
        expect_eq("DuckDB rows per region= partition of the hive dataset (pyarrow's counts)", want, got)

    def check_duckdb_writes_parquet(self):
        con = self.duckdb()
        rows = 400_000  # about 11 MiB
        con.execute(
            f"COPY (SELECT range AS k, hash(range) AS h, 'row-' || range AS s FROM range({rows})) "
            f"TO 's3://{BUCKET}/duckdb/written.parquet' (FORMAT parquet, COMPRESSION uncompressed)"
        )
        head = self.s3.head_object(Bucket=BUCKET, Key="duckdb/written.parquet")
        got = pq.read_table(io.BytesIO(self.s3.get_object(Bucket=BUCKET, Key="duckdb/written.parquet")["Body"].read()))
        expect_eq("rows of the object DuckDB wrote, read by pyarrow", rows, got.num_rows)
        expect_eq("ContentLength of the object DuckDB wrote = bytes fetched", head["ContentLength"],
                  self.fs.get_file_info(f"{BUCKET}/duckdb/written.parquet").size)
        expect_eq("k column of the object DuckDB wrote", list(range(rows)), got["k"].to_pylist())
        expect_eq("s column, first and last", ["row-0", f"row-{rows - 1}"], [got["s"][0].as_py(), got["s"][rows - 1].as_py()])
        n, = con.execute(f"SELECT count(DISTINCT h) FROM read_parquet('s3://{BUCKET}/duckdb/written.parquet')").fetchone()
        expect_eq("DuckDB reads back what it wrote: count(DISTINCT h)", len(set(got["h"].to_pylist())), n)

    def check_polars_reads_and_writes(self):
        self.ensure_dataset()
        t = pa.concat_tables(self.dataset_parts)
        opts = self.polars_options()
        df = pl.read_parquet(f"s3://{BUCKET}/dataset/part-1.parquet", storage_options=opts)
        expect_table("pl.read_parquet of one pyarrow-written object", self.dataset_parts[1], df.to_arrow().cast(self.dataset_parts[1].schema))
        got = (
            pl.scan_parquet(f"s3://{BUCKET}/dataset/*.parquet", storage_options=opts)
            .filter(pl.col("qty") > 400)
            .select(["id", "qty"])
            .sort("id")
            .collect()
        )
        want = t.select(["id", "qty"]).filter(pc.greater(t["qty"], 400)).sort_by("id")
        expect_table("pl.scan_parquet over dataset/*.parquet, filter qty > 400", want, got.to_arrow().cast(want.schema))
        self.put("csv/orders-polars.csv", self.orders_raw)
        df = pl.read_csv(f"s3://{BUCKET}/csv/orders-polars.csv", storage_options=opts)
        expect_eq("pl.read_csv: rows and sum(qty)", (len(self.orders), sum(q for _, q, _ in self.orders)), (df.height, df["qty"].sum()))
        out = pl.DataFrame({"a": list(range(50_000)), "b": [f"v{i % 7}" for i in range(50_000)]})
        out.write_parquet(f"s3://{BUCKET}/polars/written.parquet", storage_options=opts)
        back = pq.read_table(io.BytesIO(self.s3.get_object(Bucket=BUCKET, Key="polars/written.parquet")["Body"].read()))
        expect_table("the DataFrame pl.write_parquet put, fetched with boto3 and read by pyarrow", out.to_arrow(), back.cast(out.to_arrow().schema))

    # ------------------------------------------------------------------ quarry sql

    def quarry_sql(self, sql, fmt="csv", secret=None, expect_ok=True):
        if not self.quarry_bin:
            raise NotRun("no quarry binary (--quarry-bin / $QUARRY_BIN)")
        env = dict(os.environ, QUARRY_ACCESS_KEY=self.access_key, QUARRY_SECRET_KEY=secret or self.secret_key)
        env.pop("QUARRY_ENDPOINT", None)
        cmd = [self.quarry_bin, "sql", "--endpoint", self.endpoint, "--format", fmt, sql]
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
        if expect_ok and p.returncode != 0:
            raise CheckFailed(
                f"quarry sql --format {fmt} {sql!r}\n      expected: exit status 0"
                f"\n      got:      exit status {p.returncode}; stderr: {p.stderr.decode(errors='replace')[:600]}"
            )
        return p

    def sql_csv(self, sql) -> list[dict]:
        out = self.quarry_sql(sql, "csv").stdout.decode()
        return list(csv.DictReader(io.StringIO(out)))

    def check_quarry_sql_inventory_counts(self):
        self.quarry_sql("SELECT 1")  # NotRun without a binary
        bucket = "compat-analytics-inv"
        self.s3.create_bucket(Bucket=bucket)
        sizes = {f"k/{i:03d}": 100 + i for i in range(37)}
        for k, n in sizes.items():
            self.s3.put_object(Bucket=bucket, Key=k, Body=b"z" * n)
        self.s3.delete_object(Bucket=bucket, Key="k/000")
        self.s3.put_object(Bucket=bucket, Key="k/001", Body=b"rewritten")
        sizes.pop("k/000")
        sizes["k/001"] = len(b"rewritten")
        # The endpoint brings the catalog up to date before answering: no waiting.
        rows = self.sql_csv(f"SELECT count(*) AS n, sum(size) AS total FROM inventory WHERE bucket = '{bucket}'")
        expect_eq(f"count(*), sum(size) of inventory for {bucket} right after the writes (a delete and an overwrite included)",
                  [{"n": str(len(sizes)), "total": str(sum(sizes.values()))}], rows)
        listed = [o["Key"] for p in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for o in p.get("Contents", [])]
        rows = self.sql_csv("SELECT bucket, count(*) AS n FROM inventory GROUP BY bucket ORDER BY bucket")
        got = {r["bucket"]: int(r["n"]) for r in rows}
        expect_eq(f"inventory count for {BUCKET} = keys listed by boto3", len(listed), got.get(BUCKET))
        expect_eq(f"inventory count for {bucket}", len(sizes), got.get(bucket))
        for k in sizes:
            self.s3.delete_object(Bucket=bucket, Key=k)
        self.s3.delete_bucket(Bucket=bucket)
        rows = self.sql_csv(f"SELECT count(*) AS n FROM inventory WHERE bucket = '{bucket}'")
        expect_eq(f"inventory count for {bucket} after deleting every key", [{"n": "0"}], rows)

    def check_quarry_sql_read_parquet_matches_pyarrow(self):
        self.quarry_sql("SELECT 1")
        self.ensure_dataset()
        t = pa.concat_tables(self.dataset_parts)
        src = f"read_parquet('s3://{BUCKET}/dataset/')"
        rows = self.sql_csv(f"SELECT count(*) AS n, sum(qty) AS s, avg(score) AS a, min(id) AS lo, max(id) AS hi FROM {src}")
        expect_eq("one row from the aggregate", 1, len(rows))
        row = rows[0]
        expect_eq("count(*) over dataset/ (pyarrow: num_rows)", t.num_rows, int(row["n"]))
        expect_eq("sum(qty) over dataset/ (pyarrow: pc.sum)", pc.sum(t["qty"]).as_py(), int(row["s"]))
        expect_close("avg(score) over dataset/ (pyarrow: pc.mean)", pc.mean(t["score"]).as_py(), float(row["a"]))
        expect_eq("min(id), max(id)", (pc.min(t["id"]).as_py(), pc.max(t["id"]).as_py()), (int(row["lo"]), int(row["hi"])))
        rows = self.sql_csv(f"SELECT flag, count(*) AS n FROM {src} GROUP BY flag ORDER BY flag")
        want = [{"flag": str(v).lower(), "n": str(t.filter(pc.equal(t["flag"], v)).num_rows)} for v in (False, True)]
        expect_eq("GROUP BY flag over dataset/", want, rows)
        # one object, by its full key
        one = self.dataset_parts[1]
        rows = self.sql_csv(f"SELECT count(*) AS n FROM read_parquet('s3://{BUCKET}/dataset/part-1.parquet')")
        expect_eq("count(*) of one object named by its key", [{"n": str(one.num_rows)}], rows)

    def check_quarry_sql_read_parquet_hive_partitions(self):
        self.quarry_sql("SELECT 1")
        base = "hive"
        if not self.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{base}/").get("KeyCount"):
            self.check_pyarrow_dataset_hive_partitioned()
        # pyarrow reads the partition column from the keys too: the reference.
        t = ds.dataset(f"{BUCKET}/{base}", filesystem=self.fs, format="parquet", partitioning="hive").to_table()
        want = [
            {"region": region, "n": str(part.num_rows), "s": str(pc.sum(part["qty"]).as_py())}
            for region in sorted(set(t["region"].to_pylist()))
            for part in [t.filter(pc.equal(t["region"], region))]
        ]
        sql = (f"SELECT region, count(*) AS n, sum(qty) AS s FROM read_parquet('s3://{BUCKET}/{base}/') "
               "GROUP BY region ORDER BY region")
        expect_eq(f"{sql} (the region= directories as a column) = pyarrow's hive dataset", want, self.sql_csv(sql))

    def check_quarry_sql_formats(self):
        self.quarry_sql("SELECT 1")
        self.ensure_dataset()
        t = pa.concat_tables(self.dataset_parts)
        want = t.filter(pc.less(t["id"], 25)).select(["id", "name", "score"]).sort_by("id")
        sql = f"SELECT id, name, score FROM read_parquet('s3://{BUCKET}/dataset/') WHERE id < 25 ORDER BY id"
        got = pq.read_table(io.BytesIO(self.quarry_sql(sql, "parquet").stdout))
        expect_table("--format parquet result (read by pyarrow)", want, got.cast(want.schema))
        got = pa.ipc.open_stream(self.quarry_sql(sql, "arrow").stdout).read_all()
        expect_table("--format arrow result (an Arrow IPC stream, read by pyarrow)", want, got.cast(want.schema))
        lines = json_lines("--format json result", self.quarry_sql(sql, "json").stdout)
        expect_eq("--format json result (one object per row; a null field may be left out)",
                  want.to_pylist(), [{"id": x.get("id"), "name": x.get("name"), "score": x.get("score")} for x in lines])
        rows = self.sql_csv(sql)
        expect_eq("--format csv result", [str(i) for i in want["id"].to_pylist()], [r["id"] for r in rows])
        table = self.quarry_sql(f"SELECT count(*) AS n FROM read_parquet('s3://{BUCKET}/dataset/')", "table").stdout.decode()
        expect_true(f"--format table shows the count ({t.num_rows}) and '1 row'",
                    f"| {t.num_rows}" in table and table.rstrip().endswith("1 row"), table)

    def check_quarry_sql_errors(self):
        p = self.quarry_sql("SELEC 1", expect_ok=False)
        err = p.stderr.decode(errors="replace")
        expect_true("quarry sql 'SELEC 1': non-zero exit and InvalidQuery on stderr", p.returncode != 0 and "InvalidQuery" in err,
                    (p.returncode, err[:400]))
        p = self.quarry_sql("SELECT count(*) FROM no_such_table", expect_ok=False)
        err = p.stderr.decode(errors="replace")
        expect_true("quarry sql of an unknown table: non-zero exit and InvalidQuery", p.returncode != 0 and "InvalidQuery" in err,
                    (p.returncode, err[:400]))
        p = self.quarry_sql("SELECT 1", secret=self.secret_key + "-wrong", expect_ok=False)
        err = p.stderr.decode(errors="replace")
        expect_true("quarry sql with a wrong secret key: non-zero exit and SignatureDoesNotMatch",
                    p.returncode != 0 and "SignatureDoesNotMatch" in err, (p.returncode, err[:400]))
        # the endpoint itself refuses an unsigned query
        req = urllib.request.Request(f"{self.endpoint}/?sql&format=csv", data=b"SELECT 1", method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=60) as r:
                code, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, body = e.code, e.read()
        expect_eq(f"HTTP status of an unsigned POST /?sql (body {body[:200]!r})", 403, code)

    def check_cleanup(self):
        keys = [o["Key"] for p in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for o in p.get("Contents", [])]
        for i in range(0, len(keys), 1000):
            resp = self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True})
            expect_eq("DeleteObjects Errors while emptying the bucket", [], resp.get("Errors", []))
        expect_eq("DeleteBucket HTTP status", 204, self.s3.delete_bucket(Bucket=BUCKET)["ResponseMetadata"]["HTTPStatusCode"])


CHECKS = [
    "setup_bucket",
    "select_csv_header_use_where_cast",
    "select_csv_positional_header_none_and_ignore",
    "select_csv_custom_delimiters_and_output",
    "select_aggregates_json_output",
    "select_json_lines",
    "select_json_document",
    "select_json_from_path",
    "select_gzip_csv",
    "select_bzip2_csv",
    "select_progress_events",
    "select_parquet",
    "select_parquet_stats",
    "select_records_in_object_order",
    "select_scan_range_start_and_suffix",
    "select_scan_range_end_is_inclusive",
    "select_errors",
    "pyarrow_read_table",
    "pyarrow_write_table_round_trip",
    "pyarrow_dataset_of_several_objects",
    "pyarrow_dataset_hive_partitioned",
    "pyarrow_listing_matches_boto3",
    "select_parquet_written_by_pyarrow",
    "duckdb_reads_objects_others_wrote",
    "duckdb_writes_parquet",
    "polars_reads_and_writes",
    "quarry_sql_inventory_counts",
    "quarry_sql_read_parquet_matches_pyarrow",
    "quarry_sql_read_parquet_hive_partitions",
    "quarry_sql_formats",
    "quarry_sql_errors",
    "cleanup",
]


def main() -> int:
    def more(ap):
        ap.add_argument("--quarry-bin", default=os.environ.get("QUARRY_BIN"), help="the quarry binary, for the `quarry sql` checks")

    args = checklib.arguments(__doc__, more)
    print(f"boto3 {boto3.__version__}, pyarrow {pa.__version__}, duckdb {duckdb.__version__}, polars {pl.__version__}, endpoint {args.endpoint}, "
          f"quarry {args.quarry_bin or '(none: quarry sql checks not run)'}", flush=True)
    make_suite = lambda workdir: Suite(args.endpoint, args.access_key, args.secret_key, workdir, args.quarry_bin)  # noqa: E731
    return checklib.run_checks(make_suite, CHECKS, args, __file__, always=("setup_bucket", "cleanup"), skip=(NotRun,))


if __name__ == "__main__":
    sys.exit(main())
