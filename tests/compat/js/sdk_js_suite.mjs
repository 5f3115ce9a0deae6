// aws-sdk-js v3 (@aws-sdk/client-s3) against a running Quarry, with the SDK's defaults:
// virtual-hosted-style addressing (<bucket>.localhost:PORT) and flexible checksums (CRC32
// on every upload; a stream body goes out aws-chunked with the checksum as a trailer).
//
// Usage: node sdk_js_suite.mjs --workdir DIR --summary-file FILE
// Environment: QUARRY_COMPAT_ENDPOINT (http://127.0.0.1:PORT), AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY. Prints "PASS  name" / "FAIL  name" per check, and writes
// "PASSED FAILED" and then the failed check names to the summary file.

import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { createHash } from "node:crypto";
import dns from "node:dns";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({ options: { workdir: { type: "string" }, "summary-file": { type: "string" } } });
const endpoint = process.env.QUARRY_COMPAT_ENDPOINT;
if (!endpoint) throw new Error("QUARRY_COMPAT_ENDPOINT is not set");
const port = new URL(endpoint).port;
const BUCKET = "compat-js";

// *.localhost is loopback (RFC 6761), as browsers and systemd-resolved have it; glibc
// here does not resolve it, so the agent does.
function lookup(hostname, options, callback) {
  if (hostname === "localhost" || hostname.endsWith(".localhost")) {
    return options.all ? callback(null, [{ address: "127.0.0.1", family: 4 }]) : callback(null, "127.0.0.1", 4);
  }
  return dns.lookup(hostname, options, callback);
}

const requests = [];
const agent = new http.Agent({ keepAlive: true, lookup });
const s3 = new S3Client({
  endpoint: `http://localhost:${port}`,
  region: "us-east-1",
  credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY },
  requestHandler: new NodeHttpHandler({ httpAgent: agent, connectionTimeout: 10_000, requestTimeout: 60_000 }),
  maxAttempts: 1,
});
// Remember where each request went and how its body was framed, for the checks below.
s3.middlewareStack.add(
  (next) => async (input) => {
    const { hostname, path, headers } = input.request;
    requests.push({ hostname, path, headers: { ...headers } });
    return next(input);
  },
  { step: "finalizeRequest", priority: "low", name: "quarryRecordRequests" },
);

function expectEq(what, expected, got) {
  const e = JSON.stringify(expected);
  const g = JSON.stringify(got);
  if (e !== g) throw new Error(`${what}: expected ${e}, got ${g}`);
}

function expectTrue(what, condition, detail) {
  if (!condition) throw new Error(`${what}: ${JSON.stringify(detail)}`);
}

const md5 = (bytes) => createHash("md5").update(bytes).digest("hex");
const lastRequest = () => requests[requests.length - 1];

async function bodyBytes(response) {
  return Buffer.from(await response.Body.transformToByteArray());
}

const checks = {
  async create_bucket_virtual_hosted() {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    expectEq("CreateBucket went to the bucket's host", `${BUCKET}.localhost`, lastRequest().hostname);
    const names = (await s3.send(new ListBucketsCommand({}))).Buckets.map((b) => b.Name);
    expectTrue(`ListBuckets has ${BUCKET}`, names.includes(BUCKET), names);
  },

  async empty_object_is_an_object_not_a_bucket() {
    // Once, Host: compat-js.localhost with an empty PUT created a bucket named after the key.
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "marker", Body: "" }));
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "marker" }));
    expectEq("HeadObject marker ContentLength", 0, head.ContentLength);
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "marker" }));
    const names = (await s3.send(new ListBucketsCommand({}))).Buckets.map((b) => b.Name);
    expectTrue("no bucket named marker", !names.includes("marker"), names);
    expectEq("bucket still there", true, names.includes(BUCKET));
  },

  async put_buffer_with_crc32_header() {
    const body = Buffer.from("hello from aws-sdk-js v3\n");
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "dir/hello.txt", Body: body, ContentType: "text/plain" }));
    expectEq("PutObject ETag", `"${md5(body)}"`, put.ETag);
    expectTrue("the SDK sent a CRC32", "x-amz-checksum-crc32" in lastRequest().headers, lastRequest().headers);
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "dir/hello.txt", ChecksumMode: "ENABLED" }));
    expectEq("GetObject bytes", body.toString(), (await bodyBytes(got)).toString());
    expectEq("GetObject ContentType", "text/plain", got.ContentType);
  },

  async put_stream_aws_chunked_with_trailer() {
    const size = 3 * 1024 * 1024 + 17;
    const body = Buffer.alloc(size, 0);
    for (let i = 0; i < size; i++) body[i] = (i * 31 + 7) & 0xff;
    const stream = Readable.from([body.subarray(0, 1_000_000), body.subarray(1_000_000)]);
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "dir/stream.bin", Body: stream, ContentLength: size }));
    const headers = lastRequest().headers;
    expectEq("stream upload framing", "aws-chunked", headers["content-encoding"]);
    expectEq("stream upload trailer", "x-amz-checksum-crc32", headers["x-amz-trailer"]);
    expectEq("PutObject ETag", `"${md5(body)}"`, put.ETag);
    const got = await bodyBytes(await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "dir/stream.bin" })));
    expectEq("GetObject length", size, got.length);
    expectEq("GetObject md5", md5(body), md5(got));
  },

  async multipart_upload() {
    const partSize = 5 * 1024 * 1024;
    const parts = [Buffer.alloc(partSize, 0x61), Buffer.from("tail")];
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "dir/multi.bin" }));
    const done = [];
    for (const [i, part] of parts.entries()) {
      const { ETag } = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: "dir/multi.bin", UploadId, PartNumber: i + 1, Body: part }));
      expectEq(`part ${i + 1} ETag`, `"${md5(part)}"`, ETag);
      done.push({ ETag, PartNumber: i + 1 });
    }
    const complete = await s3.send(
      new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: "dir/multi.bin", UploadId, MultipartUpload: { Parts: done } }),
    );
    const partMd5s = Buffer.concat(parts.map((p) => createHash("md5").update(p).digest()));
    expectEq("multipart ETag", `"${md5(partMd5s)}-2"`, complete.ETag);
    const got = await bodyBytes(await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "dir/multi.bin" })));
    expectEq("multipart object md5", md5(Buffer.concat(parts)), md5(got));
  },

  async list_objects_v2_with_delimiter() {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "top.txt", Body: "t" }));
    const page = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Delimiter: "/" }));
    expectEq("keys at the top", ["top.txt"], (page.Contents ?? []).map((o) => o.Key));
    expectEq("common prefixes", ["dir/"], (page.CommonPrefixes ?? []).map((p) => p.Prefix));
    const all = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "dir/", MaxKeys: 2 }));
    expectEq("first page", ["dir/hello.txt", "dir/multi.bin"], all.Contents.map((o) => o.Key));
    expectEq("truncated", true, all.IsTruncated);
    const rest = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "dir/", ContinuationToken: all.NextContinuationToken }),
    );
    expectEq("second page", ["dir/stream.bin"], rest.Contents.map((o) => o.Key));
  },

  async missing_key_is_no_such_key() {
    try {
      await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "nope" }));
    } catch (e) {
      expectEq("error name", "NoSuchKey", e.name);
      expectEq("HTTP status", 404, e.$metadata.httpStatusCode);
      return;
    }
    throw new Error("GetObject of a missing key succeeded");
  },

  async delete_objects_and_bucket() {
    for (const key of ["dir/hello.txt", "dir/stream.bin", "dir/multi.bin", "top.txt"]) {
      await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    }
    await s3.send(new DeleteBucketCommand({ Bucket: BUCKET }));
    const names = (await s3.send(new ListBucketsCommand({}))).Buckets.map((b) => b.Name);
    expectTrue(`${BUCKET} is gone`, !names.includes(BUCKET), names);
  },
};

const pkg = JSON.parse(readFileSync(new URL("./node_modules/@aws-sdk/client-s3/package.json", import.meta.url)));
console.log(`aws-sdk-js v3 @aws-sdk/client-s3 ${pkg.version}, node ${process.version}, endpoint ${endpoint}`);
let passed = 0;
const failed = [];
for (const [name, check] of Object.entries(checks)) {
  const started = Date.now();
  const seconds = () => ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  try {
    await check();
    passed++;
    console.log(`PASS  ${name.padEnd(46)} ${seconds()}s`);
  } catch (e) {
    failed.push(name);
    console.log(`FAIL  ${name.padEnd(46)} ${seconds()}s\n    ${e.name}: ${e.message}`);
  }
}
console.log(`${passed} passed, ${failed.length} failed`);
if (args["summary-file"]) writeFileSync(args["summary-file"], [`${passed} ${failed.length}`, ...failed].join("\n") + "\n");
agent.destroy();
process.exit(failed.length ? 1 : 0);
