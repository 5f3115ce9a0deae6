#!/usr/bin/env python3
"""boto3 compatibility checks for Quarry.

Run by tests/compat/run.sh against a fresh server; can also be pointed at any
running endpoint:

    python boto3_suite.py --endpoint http://127.0.0.1:9000 \
        --access-key KEY --secret-key SECRET

(defaults: $QUARRY_COMPAT_ENDPOINT, $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY).

Every check is a function run in order (later checks use objects made by
earlier ones). A failure prints what was expected and what was got. The last
line printed is `N passed, M failed`; the exit status is non-zero on failure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
import requests
import checklib
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MiB = 1024 * 1024
BUCKET = "compat-boto3"
OTHER_BUCKET = "compat-boto3-other"


CheckFailed = checklib.CheckFailed
expect_eq = checklib.expect_eq


def expect_true(what, cond, got):
    if not cond:
        raise CheckFailed(f"{what}\n      got:      {got!r}")


def expect_bytes(what, expected: bytes, got: bytes):
    if expected != got:
        first = next(
            (i for i, (a, b) in enumerate(zip(expected, got)) if a != b),
            min(len(expected), len(got)),
        )
        raise CheckFailed(
            f"{what}\n      expected: {len(expected)} bytes (sha256 {sha256(expected)[:16]}…)"
            f"\n      got:      {len(got)} bytes (sha256 {sha256(got)[:16]}…), first difference at byte {first}"
        )


def expect_client_error(what, fn, code, status):
    """fn() must raise a ClientError with this error code and HTTP status."""
    try:
        result = fn()
    except ClientError as e:
        got_code = e.response.get("Error", {}).get("Code")
        got_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if (got_code, got_status) != (code, status):
            raise CheckFailed(
                f"{what}\n      expected: error {code} (HTTP {status})"
                f"\n      got:      error {got_code} (HTTP {got_status}): {e}"
            ) from None
        return
    raise CheckFailed(
        f"{what}\n      expected: error {code} (HTTP {status})\n      got:      success: {summarize(result)}"
    )


def summarize(resp):
    if isinstance(resp, dict):
        return {k: v for k, v in resp.items() if k not in ("ResponseMetadata", "Body")}
    return resp


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def multipart_etag(data: bytes, part_size: int) -> str:
    digests = [hashlib.md5(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)]
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def status(resp) -> int:
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def recent(what, when: dt.datetime, slack=dt.timedelta(minutes=10)):
    now = dt.datetime.now(dt.timezone.utc)
    expect_true(
        f"{what} is a timezone-aware time within {slack} of now ({now:%Y-%m-%dT%H:%M:%SZ})",
        isinstance(when, dt.datetime) and when.tzinfo is not None and abs(now - when) < slack,
        when,
    )


class Suite:
    def __init__(self, endpoint, access_key, secret_key, workdir):
        self.endpoint = endpoint.rstrip("/")
        self.access_key = access_key
        self.secret_key = secret_key
        self.workdir = workdir
        self.s3 = self.client(access_key, secret_key)
        # shared state between checks
        self.hello_key = "objects/hello.bin"
        self.hello = os.urandom(1500)
        self.hello_type = "application/x-quarry-compat"
        self.hello_meta = {"color": "blue", "answer": "42", "with-dash": "Value, with: punctuation; & spaces"}
        self.listing_keys = sorted(
            [f"listing/k{i:02d}" for i in range(20)] + [f"listing/sub/x{i}" for i in range(3)]
        )

    def client(self, access_key, secret_key):
        cfg = Config(
            region_name="us-east-1",
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
            connect_timeout=10,
            read_timeout=120,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=cfg,
        )

    def path(self, name):
        return os.path.join(self.workdir, name)

    def write_random(self, name, size):
        p = self.path(name)
        with open(p, "wb") as f:
            remaining = size
            while remaining:
                n = min(remaining, 4 * MiB)
                f.write(os.urandom(n))
                remaining -= n
        return p

    def check_virtual_hosted_style(self):
        """addressing_style="virtual" against http://localhost:PORT: <bucket>.localhost is the
        bucket. *.localhost need not resolve here, so the server is also the HTTP proxy (the
        request keeps its Host header). The empty PUT + DELETE once created and deleted a bucket
        named after the key."""
        port = urllib.parse.urlsplit(self.endpoint).port
        cfg = Config(
            region_name="us-east-1",
            signature_version="s3v4",
            s3={"addressing_style": "virtual"},
            proxies={"http": self.endpoint},
            retries={"total_max_attempts": 1},
            connect_timeout=10,
            read_timeout=60,
        )
        vh = boto3.session.Session().client(
            "s3",
            endpoint_url=f"http://localhost:{port}",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=cfg,
        )
        bucket = "compat-vhost"
        vh.create_bucket(Bucket=bucket)
        try:
            vh.put_object(Bucket=bucket, Key="marker", Body=b"")
            vh.put_object(Bucket=bucket, Key="dir/data.bin", Body=b"virtual")
            expect_bytes("GET dir/data.bin (virtual)", b"virtual", vh.get_object(Bucket=bucket, Key="dir/data.bin")["Body"].read())
            keys = sorted(o["Key"] for o in vh.list_objects_v2(Bucket=bucket).get("Contents", []))
            expect_eq("ListObjectsV2 (virtual)", ["dir/data.bin", "marker"], keys)
            vh.delete_object(Bucket=bucket, Key="marker")
            names = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
            expect_true("no bucket named marker", "marker" not in names, names)
            url = vh.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/data.bin"}, ExpiresIn=300)
            expect_true("presigned URL is virtual-hosted", url.startswith(f"http://{bucket}.localhost:{port}/"), url)
            vh.delete_object(Bucket=bucket, Key="dir/data.bin")
        finally:
            vh.delete_bucket(Bucket=bucket)

    # ------------------------------------------------------------------ checks

    def check_create_bucket(self):
        resp = self.s3.create_bucket(Bucket=BUCKET)
        expect_eq("CreateBucket HTTP status", 200, status(resp))
        expect_eq("HeadBucket HTTP status", 200, status(self.s3.head_bucket(Bucket=BUCKET)))
        buckets = self.s3.list_buckets()["Buckets"]
        mine = [b for b in buckets if b["Name"] == BUCKET]
        expect_eq(f"ListBuckets entries named {BUCKET}", 1, len(mine))
        recent("CreationDate of the new bucket", mine[0]["CreationDate"])

    def check_put_object_and_head(self):
        resp = self.s3.put_object(
            Bucket=BUCKET,
            Key=self.hello_key,
            Body=self.hello,
            ContentType=self.hello_type,
            Metadata=self.hello_meta,
        )
        expect_eq("PutObject ETag (MD5 of the body)", f'"{md5(self.hello)}"', resp["ETag"])
        head = self.s3.head_object(Bucket=BUCKET, Key=self.hello_key)
        expect_eq("HeadObject ContentLength", len(self.hello), head["ContentLength"])
        expect_eq("HeadObject ETag", f'"{md5(self.hello)}"', head["ETag"])
        expect_eq("HeadObject ContentType", self.hello_type, head["ContentType"])
        expect_eq("HeadObject Metadata", self.hello_meta, head["Metadata"])
        recent("HeadObject LastModified", head["LastModified"])

    def check_get_object_round_trip(self):
        resp = self.s3.get_object(Bucket=BUCKET, Key=self.hello_key)
        body = resp["Body"].read()
        expect_bytes("GetObject body", self.hello, body)
        expect_eq("GetObject ContentLength", len(self.hello), resp["ContentLength"])
        expect_eq("GetObject ETag", f'"{md5(self.hello)}"', resp["ETag"])
        expect_eq("GetObject ContentType", self.hello_type, resp["ContentType"])
        expect_eq("GetObject Metadata", self.hello_meta, resp["Metadata"])

    def check_ranged_get(self):
        resp = self.s3.get_object(Bucket=BUCKET, Key=self.hello_key, Range="bytes=10-19")
        expect_eq("HTTP status of GetObject Range=bytes=10-19", 206, status(resp))
        expect_eq("ContentRange", f"bytes 10-19/{len(self.hello)}", resp.get("ContentRange"))
        expect_eq("ContentLength", 10, resp["ContentLength"])
        expect_bytes("ranged body", self.hello[10:20], resp["Body"].read())

    def check_ranged_get_open_and_suffix(self):
        n = len(self.hello)
        resp = self.s3.get_object(Bucket=BUCKET, Key=self.hello_key, Range=f"bytes={n - 10}-")
        expect_eq(f"HTTP status of Range=bytes={n - 10}-", 206, status(resp))
        expect_eq("ContentRange (open-ended range)", f"bytes {n - 10}-{n - 1}/{n}", resp.get("ContentRange"))
        expect_bytes("open-ended range body", self.hello[n - 10 :], resp["Body"].read())
        resp = self.s3.get_object(Bucket=BUCKET, Key=self.hello_key, Range="bytes=-7")
        expect_eq("HTTP status of Range=bytes=-7", 206, status(resp))
        expect_eq("ContentRange (suffix range)", f"bytes {n - 7}-{n - 1}/{n}", resp.get("ContentRange"))
        expect_bytes("suffix range body", self.hello[n - 7 :], resp["Body"].read())

    def check_ranged_get_unsatisfiable(self):
        expect_client_error(
            "GetObject Range beyond the end of the object",
            lambda: self.s3.get_object(Bucket=BUCKET, Key=self.hello_key, Range="bytes=5000-6000"),
            "InvalidRange",
            416,
        )

    def check_user_metadata_round_trip(self):
        key = "objects/meta-only"
        meta = {"a": "1", "multi-word-key": "multi word value", "empty": "", "json": '{"k": [1, 2]}'}
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"", Metadata=meta)
        expect_eq("HeadObject Metadata", meta, self.s3.head_object(Bucket=BUCKET, Key=key)["Metadata"])
        resp = self.s3.get_object(Bucket=BUCKET, Key=key)
        expect_eq("GetObject Metadata", meta, resp["Metadata"])
        expect_bytes("GetObject body of an empty object", b"", resp["Body"].read())
        expect_eq("ETag of an empty object", f'"{md5(b"")}"', resp["ETag"])
        expect_eq("ContentLength of an empty object", 0, resp["ContentLength"])

    def check_standard_headers_round_trip(self):
        key = "objects/headers.txt"
        hdrs = {
            "CacheControl": "max-age=3600, public",
            "ContentDisposition": 'attachment; filename="report.txt"',
            "ContentLanguage": "en-GB",
        }
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"hello headers", ContentType="text/plain", **hdrs)
        head = self.s3.head_object(Bucket=BUCKET, Key=key)
        for name, value in hdrs.items():
            expect_eq(f"HeadObject {name}", value, head.get(name))
        expect_eq("HeadObject ContentType", "text/plain", head.get("ContentType"))

    def check_overwrite_object(self):
        key = "objects/overwrite"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"first version")
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"second")
        resp = self.s3.get_object(Bucket=BUCKET, Key=key)
        expect_bytes("body after overwrite", b"second", resp["Body"].read())
        expect_eq("ETag after overwrite", f'"{md5(b"second")}"', resp["ETag"])

    def check_missing_object_and_bucket_errors(self):
        expect_client_error(
            "HeadObject of a missing key",
            lambda: self.s3.head_object(Bucket=BUCKET, Key="no/such/key"),
            "404",
            404,
        )
        expect_client_error(
            "GetObject of a missing key",
            lambda: self.s3.get_object(Bucket=BUCKET, Key="no/such/key"),
            "NoSuchKey",
            404,
        )
        expect_client_error(
            "GetObject in a missing bucket",
            lambda: self.s3.get_object(Bucket="no-such-bucket-compat", Key="k"),
            "NoSuchBucket",
            404,
        )
        expect_client_error(
            "HeadBucket of a missing bucket",
            lambda: self.s3.head_bucket(Bucket="no-such-bucket-compat"),
            "404",
            404,
        )

    def check_upload_file_multipart(self):
        size = 12 * MiB + 12345
        src = self.write_random("mp-upload.bin", size)
        cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
        key = "multipart/upload_file.bin"
        self.s3.upload_file(src, BUCKET, key, Config=cfg, ExtraArgs={"Metadata": {"via": "upload_file"}})
        with open(src, "rb") as f:
            data = f.read()
        head = self.s3.head_object(Bucket=BUCKET, Key=key)
        expect_eq("ContentLength after multipart upload_file", size, head["ContentLength"])
        expect_eq("multipart ETag (md5 of part md5s, -3)", multipart_etag(data, 5 * MiB), head["ETag"])
        expect_eq("Metadata set on a multipart upload", {"via": "upload_file"}, head["Metadata"])
        dst = self.path("mp-download.bin")
        self.s3.download_file(BUCKET, key, dst, Config=cfg)  # ranged, concurrent GETs
        with open(dst, "rb") as f:
            expect_bytes("download_file of the multipart object", data, f.read())
        expect_bytes(
            "get_object of the multipart object", data, self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        )

    def check_multipart_low_level(self):
        key = "multipart/low-level.bin"
        parts_data = {1: os.urandom(5 * MiB), 2: os.urandom(5 * MiB), 3: os.urandom(1234)}
        up = self.s3.create_multipart_upload(
            Bucket=BUCKET, Key=key, ContentType="application/x-parts", Metadata={"kind": "low-level"}
        )
        upload_id = up["UploadId"]
        expect_true("CreateMultipartUpload returns an UploadId", bool(upload_id), up)
        etags = {}
        for n in (3, 1, 2):  # out of order on purpose
            r = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=n, Body=parts_data[n])
            expect_eq(f"UploadPart {n} ETag", f'"{md5(parts_data[n])}"', r["ETag"])
            etags[n] = r["ETag"]
        listed = self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)
        expect_eq(
            "ListParts (PartNumber, Size, ETag)",
            [(n, len(parts_data[n]), etags[n]) for n in (1, 2, 3)],
            [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed.get("Parts", [])],
        )
        done = self.s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]},
        )
        data = parts_data[1] + parts_data[2] + parts_data[3]
        expected_etag = f'"{hashlib.md5(b"".join(hashlib.md5(parts_data[n]).digest() for n in (1, 2, 3))).hexdigest()}-3"'
        expect_eq("CompleteMultipartUpload ETag", expected_etag, done["ETag"])
        head = self.s3.head_object(Bucket=BUCKET, Key=key)
        expect_eq("ContentType from CreateMultipartUpload", "application/x-parts", head["ContentType"])
        expect_eq("Metadata from CreateMultipartUpload", {"kind": "low-level"}, head["Metadata"])
        expect_eq("ContentLength of the completed upload", len(data), head["ContentLength"])
        expect_bytes("body of the completed upload", data, self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        # a part of the completed object, read by part boundary-crossing range
        r = self.s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={5 * MiB - 5}-{5 * MiB + 4}")
        expect_bytes("range across the part 1/2 boundary", data[5 * MiB - 5 : 5 * MiB + 5], r["Body"].read())

    def check_multipart_abort(self):
        key = "multipart/aborted.bin"
        upload_id = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=os.urandom(1000))
        resp = self.s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)
        expect_eq("AbortMultipartUpload HTTP status", 204, status(resp))
        expect_client_error(
            "ListParts after abort",
            lambda: self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id),
            "NoSuchUpload",
            404,
        )
        expect_client_error(
            "HeadObject of the aborted upload's key",
            lambda: self.s3.head_object(Bucket=BUCKET, Key=key),
            "404",
            404,
        )

    def _put_listing_objects(self):
        for i, key in enumerate(self.listing_keys):
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * i)

    def check_list_objects_v2_paginator(self):
        self._put_listing_objects()
        pages = list(
            self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=BUCKET, Prefix="listing/", PaginationConfig={"PageSize": 5}
            )
        )
        keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
        expect_eq("keys from the list_objects_v2 paginator (PageSize=5)", self.listing_keys, keys)
        expect_eq("number of pages for 23 keys at 5 per page", 5, len(pages))
        for i, p in enumerate(pages):
            last = i == len(pages) - 1
            expect_eq(f"page {i + 1} IsTruncated", not last, p.get("IsTruncated"))
            expect_eq(f"page {i + 1} KeyCount", len(p.get("Contents", [])), p.get("KeyCount"))
            expect_eq(f"page {i + 1} MaxKeys", 5, p.get("MaxKeys"))
            if not last:
                expect_true(f"page {i + 1} has a NextContinuationToken", p.get("NextContinuationToken"), p)
        sizes = {o["Key"]: o["Size"] for p in pages for o in p.get("Contents", [])}
        expect_eq("listed sizes", {k: i for i, k in enumerate(self.listing_keys)}, sizes)
        etags = {o["Key"]: o["ETag"] for p in pages for o in p.get("Contents", [])}
        expect_eq("listed ETags", {k: f'"{md5(b"x" * i)}"' for i, k in enumerate(self.listing_keys)}, etags)

    def check_list_objects_v2_delimiter_and_start_after(self):
        resp = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="listing/", Delimiter="/")
        expect_eq(
            "Contents with Delimiter='/'",
            [k for k in self.listing_keys if "/sub/" not in k],
            [o["Key"] for o in resp.get("Contents", [])],
        )
        expect_eq(
            "CommonPrefixes with Delimiter='/'",
            ["listing/sub/"],
            [p["Prefix"] for p in resp.get("CommonPrefixes", [])],
        )
        expect_eq("KeyCount with Delimiter='/' (keys + prefixes)", 21, resp.get("KeyCount"))
        resp = self.s3.list_objects_v2(Bucket=BUCKET, Delimiter="/")
        expect_eq(
            "top-level CommonPrefixes",
            ["listing/", "multipart/", "objects/"],
            [p["Prefix"] for p in resp.get("CommonPrefixes", [])],
        )
        resp = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="listing/", StartAfter="listing/k17")
        expect_eq(
            "keys with StartAfter=listing/k17",
            [k for k in self.listing_keys if k > "listing/k17"],
            [o["Key"] for o in resp.get("Contents", [])],
        )

    def check_list_objects_v1_paginator(self):
        pages = list(
            self.s3.get_paginator("list_objects").paginate(
                Bucket=BUCKET, Prefix="listing/", PaginationConfig={"PageSize": 6}
            )
        )
        keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
        expect_eq("keys from the list_objects (v1) paginator (PageSize=6)", self.listing_keys, keys)
        expect_eq("number of v1 pages for 23 keys at 6 per page", 4, len(pages))

    def check_versions_of_an_unversioned_bucket(self):
        # No bucket is versioned: an empty configuration, each object once as "null".
        expect_eq("versioning Status of a bucket never versioned", None,
                  self.s3.get_bucket_versioning(Bucket=BUCKET).get("Status"))
        pages = list(
            self.s3.get_paginator("list_object_versions").paginate(
                Bucket=BUCKET, Prefix="listing/", PaginationConfig={"PageSize": 7}
            )
        )
        versions = [v for p in pages for v in p.get("Versions", [])]
        expect_eq("keys from the list_object_versions paginator (PageSize=7)", self.listing_keys,
                  [v["Key"] for v in versions])
        expect_eq("version ids", {"null"}, {v["VersionId"] for v in versions})
        expect_eq("IsLatest", {True}, {v["IsLatest"] for v in versions})
        expect_eq("delete markers", [], [m for p in pages for m in p.get("DeleteMarkers", [])])

    def check_versioning(self):
        # Its own bucket: versions, a delete marker and its removal, then emptied by version.
        bucket = "compat-boto3-versions"
        self.s3.create_bucket(Bucket=bucket)
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        expect_eq("versioning Status after enabling", "Enabled",
                  self.s3.get_bucket_versioning(Bucket=bucket).get("Status"))
        ids = [self.s3.put_object(Bucket=bucket, Key="k", Body=body)["VersionId"] for body in (b"one", b"two")]
        expect_eq("two distinct version ids", 2, len(set(ids) - {"null"}))
        old = self.s3.get_object(Bucket=bucket, Key="k", VersionId=ids[0])["Body"].read()
        expect_eq("GET of the first version", b"one", old)
        marker = self.s3.delete_object(Bucket=bucket, Key="k")
        expect_eq("DELETE makes a delete marker", True, marker.get("DeleteMarker"))
        expect_client_error("GET behind a delete marker", lambda: self.s3.get_object(Bucket=bucket, Key="k"),
                            "NoSuchKey", 404)
        pages = list(self.s3.get_paginator("list_object_versions").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 1}))
        versions = [v["VersionId"] for p in pages for v in p.get("Versions", [])]
        markers = [m["VersionId"] for p in pages for m in p.get("DeleteMarkers", [])]
        expect_eq("versions listed one a page, newest first", list(reversed(ids)), versions)
        expect_eq("the delete marker listed", [marker["VersionId"]], markers)
        self.s3.delete_object(Bucket=bucket, Key="k", VersionId=marker["VersionId"])
        expect_eq("deleting the marker restores the newest version", b"two",
                  self.s3.get_object(Bucket=bucket, Key="k")["Body"].read())
        resp = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": v} for v in ids]})
        expect_eq("DeleteObjects by version id: errors", [], resp.get("Errors", []))
        self.s3.delete_bucket(Bucket=bucket)

    def check_tagging(self):
        key = "tagging/object"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"tagged", Tagging="project=quarry&team=storage")
        tags = self.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
        expect_eq("tags from x-amz-tagging", {"project": "quarry", "team": "storage"},
                  {t["Key"]: t["Value"] for t in tags})
        expect_eq("x-amz-tagging-count on HEAD", 2, self.s3.head_object(Bucket=BUCKET, Key=key).get("TagCount"))
        self.s3.put_object_tagging(Bucket=BUCKET, Key=key, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
        expect_eq("tags after PutObjectTagging", [{"Key": "k", "Value": "v"}],
                  self.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"])
        too_many = {"TagSet": [{"Key": f"t{i}", "Value": ""} for i in range(11)]}
        expect_client_error("PutObjectTagging of 11 tags",
                            lambda: self.s3.put_object_tagging(Bucket=BUCKET, Key=key, Tagging=too_many),
                            "InvalidTag", 400)
        self.s3.delete_object_tagging(Bucket=BUCKET, Key=key)
        expect_eq("tags after DeleteObjectTagging", [], self.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"])
        self.s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "env", "Value": "test"}]})
        expect_eq("bucket tags", [{"Key": "env", "Value": "test"}],
                  self.s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"])
        self.s3.delete_bucket_tagging(Bucket=BUCKET)
        expect_client_error("GetBucketTagging without tags", lambda: self.s3.get_bucket_tagging(Bucket=BUCKET),
                            "NoSuchTagSet", 404)
        self.s3.delete_object(Bucket=BUCKET, Key=key)

    def check_special_character_keys(self):
        keys = sorted(
            [
                "special/with space.txt",
                "special/plus+sign.txt",
                "special/ünïcödé ключ 鍵.txt",
                "special/a=b&c;d,e.txt",
                "special/percent%2Fslash.txt",
                "special/tilde~star*paren(1).txt",
            ]
        )
        for k in keys:
            self.s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
        resp = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="special/")
        expect_eq("listed keys with special characters", keys, [o["Key"] for o in resp.get("Contents", [])])
        for k in keys:
            expect_bytes(f"body of {k!r}", k.encode(), self.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())
        resp = self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})
        expect_eq("DeleteObjects Errors for special keys", [], resp.get("Errors", []))
        expect_eq("DeleteObjects Deleted for special keys", keys, sorted(d["Key"] for d in resp.get("Deleted", [])))

    def check_copy_object(self):
        dst = "objects/hello-copy.bin"
        resp = self.s3.copy_object(Bucket=BUCKET, Key=dst, CopySource={"Bucket": BUCKET, "Key": self.hello_key})
        expect_eq("CopyObject result ETag", f'"{md5(self.hello)}"', resp["CopyObjectResult"]["ETag"])
        got = self.s3.get_object(Bucket=BUCKET, Key=dst)
        expect_bytes("body of the copy", self.hello, got["Body"].read())
        expect_eq("Metadata of the copy (MetadataDirective COPY)", self.hello_meta, got["Metadata"])
        expect_eq("ContentType of the copy", self.hello_type, got["ContentType"])
        # replace metadata in place (the usual way to edit metadata)
        self.s3.copy_object(
            Bucket=BUCKET,
            Key=dst,
            CopySource={"Bucket": BUCKET, "Key": dst},
            MetadataDirective="REPLACE",
            Metadata={"replaced": "yes"},
            ContentType="application/json",
        )
        head = self.s3.head_object(Bucket=BUCKET, Key=dst)
        expect_eq("Metadata after copy-onto-itself with REPLACE", {"replaced": "yes"}, head["Metadata"])
        expect_eq("ContentType after REPLACE", "application/json", head["ContentType"])
        expect_bytes("body after REPLACE", self.hello, self.s3.get_object(Bucket=BUCKET, Key=dst)["Body"].read())
        # the source is untouched
        head = self.s3.head_object(Bucket=BUCKET, Key=self.hello_key)
        expect_eq("source Metadata after copies", self.hello_meta, head["Metadata"])

    def check_copy_object_cross_bucket(self):
        self.s3.create_bucket(Bucket=OTHER_BUCKET)
        try:
            self.s3.copy_object(
                Bucket=OTHER_BUCKET, Key="from-other.bin", CopySource={"Bucket": BUCKET, "Key": self.hello_key}
            )
            got = self.s3.get_object(Bucket=OTHER_BUCKET, Key="from-other.bin")
            expect_bytes("body copied into another bucket", self.hello, got["Body"].read())
            expect_eq("Metadata copied into another bucket", self.hello_meta, got["Metadata"])
            expect_client_error(
                "CopyObject from a missing source key",
                lambda: self.s3.copy_object(
                    Bucket=OTHER_BUCKET, Key="x", CopySource={"Bucket": BUCKET, "Key": "no/such/key"}
                ),
                "NoSuchKey",
                404,
            )
        finally:
            try:
                self.s3.delete_object(Bucket=OTHER_BUCKET, Key="from-other.bin")
                self.s3.delete_bucket(Bucket=OTHER_BUCKET)
            except ClientError:
                pass
        expect_client_error(
            "HeadBucket of the deleted second bucket",
            lambda: self.s3.head_bucket(Bucket=OTHER_BUCKET),
            "404",
            404,
        )

    def check_delete_objects(self):
        objs = [{"Key": k} for k in self.listing_keys] + [{"Key": "listing/never-existed"}]
        resp = self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": objs, "Quiet": False})
        expect_eq("DeleteObjects Errors", [], resp.get("Errors", []))
        expect_eq(
            "DeleteObjects Deleted keys (a missing key also counts as deleted)",
            sorted(o["Key"] for o in objs),
            sorted(d["Key"] for d in resp.get("Deleted", [])),
        )
        resp = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="listing/")
        expect_eq("KeyCount under listing/ after DeleteObjects", 0, resp.get("KeyCount"))
        expect_eq("Contents under listing/ after DeleteObjects", [], resp.get("Contents", []))

    def check_delete_object(self):
        key = "objects/hello-copy.bin"
        resp = self.s3.delete_object(Bucket=BUCKET, Key=key)
        expect_eq("DeleteObject HTTP status", 204, status(resp))
        expect_client_error("HeadObject after DeleteObject", lambda: self.s3.head_object(Bucket=BUCKET, Key=key), "404", 404)
        resp = self.s3.delete_object(Bucket=BUCKET, Key=key)
        expect_eq("DeleteObject of an already-deleted key HTTP status", 204, status(resp))

    def _urlopen(self, req):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def check_presigned_get(self):
        url = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": self.hello_key}, ExpiresIn=300
        )
        expect_true("presigned URL is path-style", url.startswith(f"{self.endpoint}/{BUCKET}/{self.hello_key}?"), url)
        expect_true("presigned URL is SigV4", "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url, url)
        code, body = self._urlopen(url)
        expect_eq("HTTP status of the presigned GET", 200, code)
        expect_bytes("body of the presigned GET", self.hello, body)
        head, _, sig = url.partition("X-Amz-Signature=")
        bad = head + "X-Amz-Signature=" + ("1" if sig[0] == "0" else "0") + sig[1:]
        code, body = self._urlopen(bad)
        expect_eq(f"HTTP status of a presigned GET with an altered signature (body {body[:200]!r})", 403, code)

    def check_presigned_put(self):
        key = "objects/presigned-put.bin"
        data = os.urandom(4321)
        url = self.s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300)
        req = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"})
        code, body = self._urlopen(req)
        expect_eq(f"HTTP status of the presigned PUT (body {body[:200]!r})", 200, code)
        expect_bytes("object written by the presigned PUT", data, self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def check_presigned_post_form_upload(self):
        # What a browser sends: a multipart form with the policy boto3 signed.
        post = self.s3.generate_presigned_post(
            BUCKET,
            "forms/${filename}",
            Fields={"success_action_status": "201"},
            Conditions=[["starts-with", "$key", "forms/"], ["content-length-range", 1, 1024], {"success_action_status": "201"}],
            ExpiresIn=300,
        )
        fields = dict(post["fields"], key="forms/hello.txt")
        r = requests.post(post["url"], data=fields, files={"file": ("hello.txt", b"hello from a form")}, timeout=60)
        expect_eq(f"HTTP status of the form upload (body {r.text[:300]!r})", 201, r.status_code)
        expect_true("the 201 answer names the key", "<Key>forms/hello.txt</Key>" in r.text, r.text)
        quoted = f'"{md5(b"hello from a form")}"'
        expect_true("the 201 answer's ETag is quoted", quoted in r.text.replace("&quot;", '"'), r.text)
        # success_action_redirect: 303 to the page, with bucket, key and the quoted ETag.
        redirect = self.s3.generate_presigned_post(
            BUCKET, "forms/redirected.txt",
            Fields={"success_action_redirect": "http://example.com/done?from=form"},
            Conditions=[{"success_action_redirect": "http://example.com/done?from=form"}],
            ExpiresIn=300,
        )
        r = requests.post(redirect["url"], data=redirect["fields"], files={"file": ("r.txt", b"hello from a form")},
                          timeout=60, allow_redirects=False)
        expect_eq(f"HTTP status of a form upload with success_action_redirect (body {r.text[:300]!r})", 303, r.status_code)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(r.headers.get("Location", "")).query)
        expect_eq("the redirect's query", {"from": ["form"], "bucket": [BUCKET], "key": ["forms/redirected.txt"],
                                           "etag": [quoted]}, query)
        got = self.s3.get_object(Bucket=BUCKET, Key="forms/hello.txt")["Body"].read()
        expect_bytes("the object the form uploaded", b"hello from a form", got)
        # A file past the policy's content-length-range, and a key outside its prefix.
        r = requests.post(post["url"], data=fields, files={"file": ("big.bin", b"x" * 2048)}, timeout=60)
        expect_eq(f"HTTP status of a form upload over the size range (body {r.text[:300]!r})", 400, r.status_code)
        expect_true("EntityTooLarge", "EntityTooLarge" in r.text, r.text)
        elsewhere = dict(fields, key="elsewhere/x.txt")
        r = requests.post(post["url"], data=elsewhere, files={"file": ("x.txt", b"x")}, timeout=60)
        expect_eq(f"HTTP status of a form upload breaking a condition (body {r.text[:300]!r})", 403, r.status_code)
        expect_true("AccessDenied", "AccessDenied" in r.text, r.text)

    def check_bad_credentials_rejected(self):
        bad_secret = self.client(self.access_key, self.secret_key + "-wrong")
        expect_client_error(
            "ListBuckets with a wrong secret key", bad_secret.list_buckets, "SignatureDoesNotMatch", 403
        )
        expect_client_error(
            "PutObject with a wrong secret key",
            lambda: bad_secret.put_object(Bucket=BUCKET, Key="objects/forbidden", Body=b"no"),
            "SignatureDoesNotMatch",
            403,
        )
        unknown = self.client("AKIDQUARRYCOMPATUNKNOWN", self.secret_key)
        expect_client_error("ListBuckets with an unknown access key", unknown.list_buckets, "InvalidAccessKeyId", 403)
        expect_client_error(
            "HeadObject of the object a rejected PUT tried to write",
            lambda: self.s3.head_object(Bucket=BUCKET, Key="objects/forbidden"),
            "404",
            404,
        )

    def check_server_side_encryption_customer_key(self):
        """SSE-C through upload_file/download_file (multipart, ranged GETs) over HTTPS; over
        plain HTTP the key is refused (400 InvalidRequest), as S3 refuses it. run.sh runs
        this check again against its TLS server (AWS_CA_BUNDLE names the certificate)."""
        key = b"K" * 32  # boto3 base64-encodes the key and adds its MD5
        sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
        bucket = "compat-sse-c"
        self.s3.create_bucket(Bucket=bucket)
        if not self.endpoint.startswith("https://"):
            expect_client_error(
                "PutObject with an SSE-C key over plain HTTP",
                lambda: self.s3.put_object(Bucket=bucket, Key="c.bin", Body=b"secret", **sse_c),
                "InvalidRequest",
                400,
            )
            self.s3.delete_bucket(Bucket=bucket)
            return
        expect_client_error(
            "PutObject with SSE-C together with SSE AES256",
            lambda: self.s3.put_object(Bucket=bucket, Key="both", Body=b"x", ServerSideEncryption="AES256", **sse_c),
            "InvalidArgument",
            400,
        )
        size = 11 * MiB + 7
        src = self.write_random("sse-c.bin", size)
        cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
        self.s3.upload_file(src, bucket, "c.bin", Config=cfg, ExtraArgs=sse_c)
        expect_client_error(
            "GetObject of an SSE-C object without its key",
            lambda: self.s3.get_object(Bucket=bucket, Key="c.bin"),
            "InvalidRequest",
            400,
        )
        dst = self.path("sse-c-download.bin")
        self.s3.download_file(bucket, "c.bin", dst, Config=cfg, ExtraArgs=sse_c)
        with open(src, "rb") as f, open(dst, "rb") as g:
            expect_bytes("download_file of the SSE-C object", f.read(), g.read())
        self.s3.delete_object(Bucket=bucket, Key="c.bin")
        self.s3.delete_bucket(Bucket=bucket)

    def check_server_side_encryption_kms(self):
        """SSE-KMS reported back."""
        put = self.s3.put_object(
            Bucket=BUCKET, Key="sse/kms.txt", Body=b"kms", ServerSideEncryption="aws:kms", SSEKMSKeyId="compat-key"
        )
        expect_eq("PutObject SSE-KMS key id", "compat-key", put.get("SSEKMSKeyId"))
        got = self.s3.get_object(Bucket=BUCKET, Key="sse/kms.txt")
        expect_eq("GetObject ServerSideEncryption", "aws:kms", got.get("ServerSideEncryption"))
        expect_bytes("GetObject of the SSE-KMS object", b"kms", got["Body"].read())
        self.s3.delete_object(Bucket=BUCKET, Key="sse/kms.txt")

    def check_unsupported_features_refused(self):
        """Features Quarry lacks get AWS's error, never a 200 that drops them."""
        bucket = "compat-strict"
        expect_client_error(
            "CreateBucket with ACL public-read",
            lambda: self.s3.create_bucket(Bucket=bucket, ACL="public-read"),
            "InvalidBucketAclWithObjectOwnership",
            400,
        )
        self.s3.create_bucket(Bucket=bucket)
        refused = [
            ("ACL public-read", {"ACL": "public-read"}, "AccessControlListNotSupported", 400),
            ("SSE aws:kms:dsse", {"ServerSideEncryption": "aws:kms:dsse"}, "NotImplemented", 501),
            ("a tag key twice", {"Tagging": "a=b&a=c"}, "InvalidTag", 400),
            ("storage class FAST", {"StorageClass": "FAST"}, "InvalidStorageClass", 400),
        ]
        for what, extra, code, http_status in refused:
            expect_client_error(
                f"PutObject with {what}",
                lambda extra=extra: self.s3.put_object(Bucket=bucket, Key="k", Body=b"x", **extra),
                code,
                http_status,
            )
        expect_client_error("HeadObject after refused PUTs", lambda: self.s3.head_object(Bucket=bucket, Key="k"), "404", 404)
        # Storage classes S3 defines are kept and reported as given.
        self.s3.put_object(Bucket=bucket, Key="ia", Body=b"x", StorageClass="STANDARD_IA")
        expect_eq("HeadObject StorageClass", "STANDARD_IA", self.s3.head_object(Bucket=bucket, Key="ia").get("StorageClass"))
        listed = self.s3.list_objects_v2(Bucket=bucket)["Contents"]
        expect_eq("ListObjectsV2 StorageClass", ["STANDARD_IA"], [o["StorageClass"] for o in listed])
        self.s3.delete_object(Bucket=bucket, Key="ia")
        self.s3.delete_bucket(Bucket=bucket)

    def check_delete_bucket(self):
        expect_client_error(
            "DeleteBucket of a non-empty bucket", lambda: self.s3.delete_bucket(Bucket=BUCKET), "BucketNotEmpty", 409
        )
        keys = [
            o["Key"]
            for p in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in p.get("Contents", [])
        ]
        if keys:
            resp = self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
            expect_eq("DeleteObjects (Quiet) Errors while emptying the bucket", [], resp.get("Errors", []))
        resp = self.s3.delete_bucket(Bucket=BUCKET)
        expect_eq("DeleteBucket HTTP status", 204, status(resp))
        expect_client_error("HeadBucket after DeleteBucket", lambda: self.s3.head_bucket(Bucket=BUCKET), "404", 404)
        names = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        expect_true(f"ListBuckets after DeleteBucket does not list {BUCKET}", BUCKET not in names, names)


CHECKS = [
    "create_bucket",
    "put_object_and_head",
    "get_object_round_trip",
    "ranged_get",
    "ranged_get_open_and_suffix",
    "ranged_get_unsatisfiable",
    "user_metadata_round_trip",
    "standard_headers_round_trip",
    "overwrite_object",
    "missing_object_and_bucket_errors",
    "upload_file_multipart",
    "multipart_low_level",
    "multipart_abort",
    "list_objects_v2_paginator",
    "list_objects_v2_delimiter_and_start_after",
    "list_objects_v1_paginator",
    "versions_of_an_unversioned_bucket",
    "versioning",
    "tagging",
    "special_character_keys",
    "copy_object",
    "copy_object_cross_bucket",
    "delete_objects",
    "delete_object",
    "presigned_get",
    "presigned_put",
    "presigned_post_form_upload",
    "bad_credentials_rejected",
    "server_side_encryption_customer_key",
    "server_side_encryption_kms",
    "unsupported_features_refused",
    "virtual_hosted_style",
    "delete_bucket",
]


def main() -> int:
    args = checklib.arguments(__doc__)
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}, endpoint {args.endpoint}", flush=True)
    make_suite = lambda workdir: Suite(args.endpoint, args.access_key, args.secret_key, workdir)  # noqa: E731
    return checklib.run_checks(make_suite, CHECKS, args, __file__)


if __name__ == "__main__":
    sys.exit(main())
