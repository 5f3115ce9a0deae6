#!/usr/bin/env python3
"""minio-py compatibility checks for Quarry: versioning, object versions, tags, object
lock, bucket policies.

Run by tests/compat/run.sh against a fresh server; can also be pointed at any
running endpoint:

    python minio_suite.py --endpoint http://127.0.0.1:9000 --access-key KEY --secret-key SECRET
"""

from __future__ import annotations

import io
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import minio
from minio import Minio
from minio.commonconfig import ENABLED, Tags
from minio.error import S3Error
from minio.objectlockconfig import DAYS, GOVERNANCE, ObjectLockConfig
from minio.versioningconfig import SUSPENDED, VersioningConfig

from checklib import CheckFailed, arguments, expect_eq, run_checks

BUCKET = "compat-minio"


def bucket_tags(pairs: dict) -> Tags:
    tags = Tags.new_bucket_tags()
    tags.update(pairs)
    return tags


def object_tags(pairs: dict) -> Tags:
    tags = Tags.new_object_tags()
    tags.update(pairs)
    return tags


class Suite:
    def __init__(self, endpoint: str, access_key: str, secret_key: str):
        url = urllib.parse.urlparse(endpoint)
        self.endpoint = endpoint.rstrip("/")
        self.mc = Minio(url.netloc, access_key=access_key, secret_key=secret_key, secure=url.scheme == "https")

    def put(self, key: str, data: bytes, **kwargs):
        return self.mc.put_object(BUCKET, key, io.BytesIO(data), len(data), **kwargs)

    def read(self, key: str, version_id=None) -> bytes:
        response = self.mc.get_object(BUCKET, key, version_id=version_id)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def check_versioning_status(self):
        self.mc.make_bucket(BUCKET)
        expect_eq("status of a bucket never versioned", None, self.mc.get_bucket_versioning(BUCKET).status)
        self.mc.set_bucket_versioning(BUCKET, VersioningConfig(ENABLED))
        expect_eq("status after enabling", ENABLED, self.mc.get_bucket_versioning(BUCKET).status)

    def check_versions(self):
        first = self.put("doc", b"first").version_id
        second = self.put("doc", b"second").version_id
        expect_eq("distinct version ids", True, first != second and None not in (first, second))
        expect_eq("GET of the first version", b"first", self.read("doc", first))
        expect_eq("stat of the second version", second, self.mc.stat_object(BUCKET, "doc", version_id=second).version_id)
        self.mc.remove_object(BUCKET, "doc")  # a delete marker
        try:
            self.mc.stat_object(BUCKET, "doc")
            raise CheckFailed("stat of a key behind a delete marker succeeded")
        except S3Error as e:
            expect_eq("stat behind a delete marker", "NoSuchKey", e.code)
        listed = list(self.mc.list_objects(BUCKET, prefix="doc", include_version=True))
        # Quarry's XML lists a page's versions before its delete markers (S3 interleaves
        # them in key order): compare each kind on its own.
        versions = [(o.version_id, o.is_latest) for o in listed if not o.is_delete_marker]
        markers = [(o.version_id, o.is_latest) for o in listed if o.is_delete_marker]
        expect_eq("versions listed, newest first", [(second, "false"), (first, "false")], versions)
        expect_eq("one delete marker, the latest", ["true"], [latest for _, latest in markers])
        marker = markers[0][0]
        self.mc.remove_object(BUCKET, "doc", version_id=marker)
        expect_eq("GET after the marker is removed", b"second", self.read("doc"))
        for version in (first, second):
            self.mc.remove_object(BUCKET, "doc", version_id=version)
        expect_eq("no versions left", [], list(self.mc.list_objects(BUCKET, prefix="doc", include_version=True)))

    def check_suspended(self):
        self.mc.set_bucket_versioning(BUCKET, VersioningConfig(SUSPENDED))
        expect_eq("status after suspending", SUSPENDED, self.mc.get_bucket_versioning(BUCKET).status)
        self.put("null", b"one")
        self.put("null", b"two")
        listed = list(self.mc.list_objects(BUCKET, prefix="null", include_version=True))
        expect_eq("a suspended bucket keeps one null version", ["null"], [o.version_id for o in listed])
        self.mc.remove_object(BUCKET, "null", version_id="null")

    def check_object_tags(self):
        self.put("tagged", b"x", tags=object_tags({"project": "quarry"}))
        expect_eq("tags given on PUT", {"project": "quarry"}, dict(self.mc.get_object_tags(BUCKET, "tagged")))
        self.mc.set_object_tags(BUCKET, "tagged", object_tags({"a": "1", "b": "2"}))
        expect_eq("tags after set_object_tags", {"a": "1", "b": "2"}, dict(self.mc.get_object_tags(BUCKET, "tagged")))
        self.mc.delete_object_tags(BUCKET, "tagged")
        expect_eq("tags after delete_object_tags", None, self.mc.get_object_tags(BUCKET, "tagged"))
        self.mc.remove_object(BUCKET, "tagged", version_id="null")

    def check_bucket_tags(self):
        expect_eq("tags of a bucket without any", None, self.mc.get_bucket_tags(BUCKET))
        self.mc.set_bucket_tags(BUCKET, bucket_tags({"env": "test"}))
        expect_eq("bucket tags", {"env": "test"}, dict(self.mc.get_bucket_tags(BUCKET)))
        self.mc.delete_bucket_tags(BUCKET)
        self.mc.remove_bucket(BUCKET)


    def check_object_lock_config(self):
        bucket = "compat-minio-lock"
        self.mc.make_bucket(bucket, object_lock=True)
        self.mc.set_object_lock_config(bucket, ObjectLockConfig(GOVERNANCE, 1, DAYS))
        config = self.mc.get_object_lock_config(bucket)
        expect_eq("default retention", (GOVERNANCE, 1, DAYS), (config.mode, config.duration, config.duration_unit))
        data = b"locked"
        written = self.mc.put_object(bucket, "k", io.BytesIO(data), len(data))
        expect_eq("the version's retention mode", GOVERNANCE, self.mc.get_object_retention(bucket, "k").mode)
        try:
            self.mc.remove_object(bucket, "k", version_id=written.version_id)
            raise CheckFailed("a GOVERNANCE version was deleted without the bypass")
        except S3Error as e:
            expect_eq("deleting a GOVERNANCE version without the bypass", "AccessDenied", e.code)

    def check_bucket_policy(self):
        bucket = "compat-minio-policy"
        self.mc.make_bucket(bucket)
        data = b"for everyone"
        self.mc.put_object(bucket, "public/readme.txt", io.BytesIO(data), len(data))
        self.mc.put_object(bucket, "private/diary.txt", io.BytesIO(data), len(data))
        policy = json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
                           "Resource": [f"arn:aws:s3:::{bucket}/public/*"]}],
        })
        try:
            self.mc.set_bucket_policy(bucket, policy)
            raise CheckFailed("a public policy was accepted under the default Block Public Access")
        except S3Error as e:
            expect_eq("a public policy under Block Public Access", "AccessDenied", e.code)
        # minio-py has no call for DeletePublicAccessBlock: its signed request helper sends it.
        self.mc._execute("DELETE", bucket, query_params={"publicAccessBlock": ""})
        self.mc.set_bucket_policy(bucket, policy)
        expect_eq("get_bucket_policy", json.loads(policy), json.loads(self.mc.get_bucket_policy(bucket)))
        base = self.endpoint
        expect_eq("anonymous GET under public/", 200, anonymous_get(f"{base}/{bucket}/public/readme.txt"))
        expect_eq("anonymous GET elsewhere", 403, anonymous_get(f"{base}/{bucket}/private/diary.txt"))
        self.mc.delete_bucket_policy(bucket)
        expect_eq("anonymous GET once the policy is deleted", 403, anonymous_get(f"{base}/{bucket}/public/readme.txt"))


def anonymous_get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


CHECKS = ["versioning_status", "versions", "suspended", "object_tags", "bucket_tags", "object_lock_config", "bucket_policy"]


def main() -> int:
    args = arguments(__doc__)
    print(f"minio-py {minio.__version__}, endpoint {args.endpoint}", flush=True)
    return run_checks(lambda _workdir: Suite(args.endpoint, args.access_key, args.secret_key), CHECKS, args, __file__)


if __name__ == "__main__":
    sys.exit(main())
