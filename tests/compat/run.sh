#!/usr/bin/env bash
# Real-client compatibility suite for Quarry.
#
# Starts a fresh `quarry serve` on a free loopback port with an empty data dir,
# then drives it with the real AWS CLI (v1, from PyPI), with s3cmd (from PyPI:
# ACLs, bucket policies), with boto3
# (tests/compat/boto3_suite.py), with minio-py (tests/compat/minio_suite.py:
# versioning, tags, object lock, bucket policies), with rclone and restic (Debian's packages, installed
# when missing: versioning, --s3-versions, cleanup; backup, restore, prune), and with boto3's S3 Select, pyarrow's
# S3FileSystem and `quarry sql` (tests/compat/analytics_suite.py), all from a
# private, pinned venv; then with aws-sdk-js v3 at its defaults (virtual-hosted
# style, CRC32 checksums, aws-chunked trailers: tests/compat/js/sdk_js_suite.mjs),
# installed with npm at the versions pinned in tests/compat/js/package-lock.json.
#
# Usage:
#   bash tests/compat/run.sh [PATH/TO/quarry]
#
# Environment:
#   QUARRY_BIN           server binary to test (same as the argument); when
#                        neither is given, `cargo build -p quarry` is run and
#                        the debug binary of the cargo target dir is used.
#   QUARRY_COMPAT_VENV   venv location (default ~/.cache/quarry/compat-venv);
#                        rebuilt when requirements.txt or the Python changes.
#   QUARRY_COMPAT_PYTHON Python used to create the venv (default python3).
#   QUARRY_COMPAT_KEEP=1 keep the temp dir (server data + logs) afterwards.
#
# Exit status is non-zero if anything failed; the last line is
# `N passed, M failed`.

set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
REQUIREMENTS=$HERE/requirements.txt
KNOWN_FAILURES=$HERE/known-failures.txt
VENV=${QUARRY_COMPAT_VENV:-$HOME/.cache/quarry/compat-venv}
BOOT_PYTHON=${QUARRY_COMPAT_PYTHON:-python3}

ACCESS_KEY=quarry-compat-access
SECRET_KEY=quarry-compat-secret-0123456789abcdef
STARTUP_TIMEOUT=60   # seconds for the listening line, then again for /health
BUCKET=compat-cli

WORK=
SERVER_PID=
TLS_SERVER_PID=
SERVER_LOG_SHOWN=
PASSED=0
FAILED=0
FAILED_NAMES=()
PASSED_NAMES=()

log() { printf '[compat %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
    printf '[compat %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
    exit 1
}

show_server_log() {
    [[ -n $SERVER_LOG_SHOWN || -z $WORK ]] && return 0
    SERVER_LOG_SHOWN=1
    local f shown=
    for f in "$WORK/server.stdout" "$WORK/server.stderr"; do
        [[ -s $f ]] || continue
        printf -- '----- last 60 lines of %s -----\n' "${f##*/}" >&2
        tail -n 60 "$f" | sed $'s/\e\\[[0-9;]*m//g' >&2 # without colour codes
        shown=1
    done
    if [[ -n $shown ]]; then
        printf -- '----- end of server log -----\n' >&2
    else
        printf -- '(the server printed nothing on stdout or stderr)\n' >&2
    fi
}

# stop_server PID -- SIGTERM the server's process group (see launch_server), SIGKILL
# after 10 s.
stop_server() {
    local pid=$1 i
    if kill -0 -- "-$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 -- "-$pid" 2>/dev/null; then
            log "server (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT
    local pid
    for pid in "$SERVER_PID" "$TLS_SERVER_PID"; do
        [[ -n $pid ]] && stop_server "$pid"
    done
    if ((rc != 0)); then
        show_server_log
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ ${QUARRY_COMPAT_KEEP:-} == 1 ]]; then
            log "keeping $WORK (QUARRY_COMPAT_KEEP=1)"
        else
            rm -rf -- "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# venv with the pinned clients
# ---------------------------------------------------------------------------

ensure_venv() {
    command -v "$BOOT_PYTHON" >/dev/null || die "'$BOOT_PYTHON' not found (set QUARRY_COMPAT_PYTHON)"
    [[ -f $REQUIREMENTS ]] || die "missing $REQUIREMENTS"
    local key stamp
    key=$({
        cat "$REQUIREMENTS"
        "$BOOT_PYTHON" -c 'import sys; print(sys.version, sys.executable)'
    } | sha256sum | cut -d' ' -f1)
    stamp=$VENV/.quarry-requirements.sha256

    mkdir -p "$(dirname "$VENV")"
    # Serialise concurrent runs sharing one venv.
    exec 9>"$VENV.lock"
    if command -v flock >/dev/null; then
        flock 9
    fi

    if [[ -f $stamp && $(<"$stamp") == "$key" ]] &&
        "$VENV/bin/python" -c 'import boto3, awscli, pyarrow' 2>/dev/null; then
        log "reusing venv $VENV (requirements hash ${key:0:12})"
    else
        if [[ -e $VENV ]]; then
            # Refuse to delete something that is not a venv (e.g. a mistyped path).
            if [[ -f $VENV/pyvenv.cfg ]] || [[ -d $VENV && -z $(ls -A "$VENV") ]]; then
                rm -rf -- "$VENV"
            else
                die "$VENV exists and is not a venv; refusing to delete it"
            fi
        fi
        log "creating venv $VENV (requirements hash ${key:0:12})"
        "$BOOT_PYTHON" -m venv "$VENV" || die "could not create a venv with $BOOT_PYTHON"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install \
            --no-input --quiet -r "$REQUIREMENTS" ||
            die "pip install -r $REQUIREMENTS failed"
        printf '%s\n' "$key" >"$stamp"
    fi
    exec 9>&-

    PY=$VENV/bin/python
    AWS_BIN=$VENV/bin/aws
    [[ -x $AWS_BIN ]] || die "venv has no aws executable at $AWS_BIN"
    log "clients: $("$AWS_BIN" --version 2>&1 | head -n1); $("$PY" -c 'import boto3, pyarrow; print(f"boto3 {boto3.__version__}, pyarrow {pyarrow.__version__}")')"
}

# ensure_node_modules -- install tests/compat/js's pinned packages (npm ci) unless
# node_modules already matches package-lock.json.
ensure_node_modules() {
    local js=$HERE/js stamp=$HERE/js/node_modules/.quarry-lock-hash key
    command -v node >/dev/null || die "node is not installed (the aws-sdk-js v3 checks need Node.js >= 20 and npm)"
    key=$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)
    if [[ -f $stamp && $(<"$stamp") == "$key" ]]; then
        log "reusing $js/node_modules (lock hash ${key:0:12})"
    else
        log "npm ci in $js (lock hash ${key:0:12})"
        (cd "$js" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $js failed"
        printf '%s\n' "$key" >"$stamp"
    fi
    log "node $(node --version), @aws-sdk/client-s3 $(node -p "require('$js/node_modules/@aws-sdk/client-s3/package.json').version")"
}

# ---------------------------------------------------------------------------
# server binary and process
# ---------------------------------------------------------------------------

resolve_binary() {
    local bin=${1:-${QUARRY_BIN:-}}
    if [[ -n $bin ]]; then
        [[ $bin == /* ]] || bin=$PWD/$bin
        [[ -f $bin && -x $bin ]] || die "server binary '$bin' is not an executable file"
        SERVER_BIN=$bin
        log "using server binary $SERVER_BIN"
        return
    fi
    command -v cargo >/dev/null || die "no QUARRY_BIN given and cargo not found"
    log "no server binary given: cargo build -p quarry"
    (cd "$REPO_ROOT" && cargo build -p quarry) || die "cargo build -p quarry failed"
    local target_dir
    target_dir=$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps |
        "$BOOT_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') ||
        die "could not find the cargo target dir (cargo metadata failed)"
    SERVER_BIN=$target_dir/debug/quarry
    [[ -x $SERVER_BIN ]] || die "cargo build -p quarry succeeded but $SERVER_BIN is missing"
    log "using server binary $SERVER_BIN"
}

# launch_server NAME SCHEME [QUARRY SERVE FLAGS...] -- start a server with an empty data
# dir ($WORK/NAME-data; logs $WORK/NAME.stdout and .stderr), wait for its listening line
# (SCHEME://IP:PORT) and GET /health; sets LAUNCHED_PID and LAUNCHED_ENDPOINT. curl
# trusts $CURL_CA (a CA file) when set.
launch_server() {
    local name=$1 scheme=$2
    shift 2
    local out=$WORK/$name.stdout
    mkdir -p "$WORK/$name-data"
    log "starting: quarry serve --address 127.0.0.1:0 --data-dir $WORK/$name-data $*"
    # Own process group (job control on just for this launch), so cleanup also
    # reaches children if QUARRY_BIN is a wrapper script.
    set -m
    QUARRY_ACCESS_KEY=$ACCESS_KEY QUARRY_SECRET_KEY=$SECRET_KEY \
        "$SERVER_BIN" serve --address 127.0.0.1:0 --data-dir "$WORK/$name-data" "$@" \
        </dev/null >"$out" 2>"$WORK/$name.stderr" &
    LAUNCHED_PID=$!
    set +m

    local deadline=$((SECONDS + STARTUP_TIMEOUT)) line='' rc
    while :; do
        line=$(grep -m1 -E '^quarry listening on ' "$out" || true)
        [[ -n $line ]] && break
        if ! kill -0 "$LAUNCHED_PID" 2>/dev/null; then
            rc=0
            wait "$LAUNCHED_PID" || rc=$?
            die "$name server exited with status $rc before printing 'quarry listening on $scheme://IP:PORT'"
        fi
        ((SECONDS < deadline)) ||
            die "expected the line 'quarry listening on $scheme://IP:PORT' on stdout within ${STARTUP_TIMEOUT}s; got none"
        sleep 0.1
    done
    local re="^quarry listening on $scheme://([0-9.]+):([0-9]+)\$"
    [[ $line =~ $re ]] ||
        die "expected the listening line to match $re; got: $line"
    local ip=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
    ((port > 0)) || die "expected the real port in the listening line; got port $port"
    LAUNCHED_ENDPOINT=$scheme://$ip:$port
    log "$name server pid $LAUNCHED_PID listening on $LAUNCHED_ENDPOINT"

    local code=
    deadline=$((SECONDS + STARTUP_TIMEOUT))
    while :; do
        code=$(curl -s ${CURL_CA:+--cacert "$CURL_CA"} -o /dev/null -w '%{http_code}' --max-time 2 \
            "$LAUNCHED_ENDPOINT/health" || true)
        [[ $code == 200 ]] && break
        kill -0 "$LAUNCHED_PID" 2>/dev/null || die "$name server exited while waiting for GET /health"
        ((SECONDS < deadline)) ||
            die "expected GET $LAUNCHED_ENDPOINT/health -> 200 within ${STARTUP_TIMEOUT}s; got HTTP '${code:-no response}'"
        sleep 0.2
    done
    log "GET $LAUNCHED_ENDPOINT/health -> 200"
}

start_server() {
    launch_server server http
    SERVER_PID=$LAUNCHED_PID
    ENDPOINT=$LAUNCHED_ENDPOINT
}

# A second server serving HTTPS with a fresh self-signed certificate for 127.0.0.1
# (openssl, Debian's package); TLS_CA is the certificate, for the clients to trust.
start_tls_server() {
    ensure_debian_package openssl
    TLS_CA=$WORK/tls/cert.pem
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
        -keyout "$WORK/tls/key.pem" -out "$TLS_CA" >"$WORK/tls/openssl.log" 2>&1 ||
        die "openssl could not make a certificate: $(cat "$WORK/tls/openssl.log")"
    CURL_CA=$TLS_CA launch_server tls https --tls-cert "$TLS_CA" --tls-key "$WORK/tls/key.pem"
    TLS_SERVER_PID=$LAUNCHED_PID
    TLS_ENDPOINT=$LAUNCHED_ENDPOINT
}

# ---------------------------------------------------------------------------
# check helpers
# ---------------------------------------------------------------------------

# fail WHAT EXPECTED GOT  -- print a readable mismatch and return 1
fail() {
    local nl=$'\n' pad=$'\n                '
    {
        printf '    %s\n' "$1"
        printf '      expected: %s\n' "${2//$nl/$pad}"
        printf '      got:      %s\n' "${3//$nl/$pad}"
    } >&2
    return 1
}

expect_eq() { # WHAT EXPECTED GOT
    [[ $2 == "$3" ]] || fail "$1" "$2" "$3"
}

quote_cmd() { printf '%q ' "$@" | sed 's/ $//'; }

show_output() { # FILE...
    local f
    for f in "$@"; do
        [[ -s $f ]] && head -n 40 "$f" | sed 's/^/      | /' >&2
    done
    return 0
}

# must CMD... -- run CMD; on success print its stdout, on failure report and return 1
must() {
    local rc=0
    "$@" >"$WORK/cmd.out" 2>"$WORK/cmd.err" || rc=$?
    if ((rc != 0)); then
        fail "command: $(quote_cmd "$@")" "exit status 0" "exit status $rc; its output:" || true
        show_output "$WORK/cmd.out" "$WORK/cmd.err"
        return 1
    fi
    cat "$WORK/cmd.out"
}

# must_fail PATTERN CMD... -- CMD must exit non-zero with PATTERN (ERE) in its output
must_fail() {
    local pattern=$1 rc=0
    shift
    "$@" >"$WORK/cmd.out" 2>"$WORK/cmd.err" || rc=$?
    if ((rc == 0)); then
        fail "command: $(quote_cmd "$@")" "a non-zero exit status (error matching /$pattern/)" "exit status 0; its output:" || true
        show_output "$WORK/cmd.out" "$WORK/cmd.err"
        return 1
    fi
    if ! cat "$WORK/cmd.out" "$WORK/cmd.err" | grep -Eq -- "$pattern"; then
        fail "command: $(quote_cmd "$@")" "an error matching /$pattern/" "exit status $rc with output:" || true
        show_output "$WORK/cmd.out" "$WORK/cmd.err"
        return 1
    fi
}

expect_same_file() { # WHAT EXPECTED_FILE GOT_FILE
    if ! cmp -s -- "$2" "$3"; then
        local detail
        detail=$(cmp -- "$2" "$3" 2>&1 || true)
        fail "$1" "$(wc -c <"$2") bytes identical to $2" "$(wc -c <"$3" 2>/dev/null || echo missing) bytes; $detail"
    fi
}

aws() { "$AWS_BIN" --endpoint-url "$ENDPOINT" "$@"; }

http_status() { # URL [OUTFILE] -- HTTP status of a plain GET ("000" if no response)
    curl -s -o "${2:-/dev/null}" -w '%{http_code}' --max-time 60 "$1" || true
}

head_field() { # KEY FIELD -- one field of `aws s3api head-object` for $BUCKET
    must aws s3api head-object --bucket "$BUCKET" --key "$1" --query "$2" --output text
}

# Keys and sizes under a prefix, "KEY<TAB>SIZE" per line, C-sorted, prefix stripped.
remote_listing() { # PREFIX
    local out
    out=$(must aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "$1" \
        --query 'Contents[].[Key, Size]' --output json)
    "$PY" -c '
import json, sys
prefix = sys.argv[1]
rows = json.loads(sys.stdin.read()) or []
for key, size in rows:
    assert key.startswith(prefix), key
    print(f"{key[len(prefix):]}\t{size}")
' "$1" <<<"$out" | LC_ALL=C sort
}

local_listing() { # DIR
    (cd "$1" && find . -type f -printf '%P\t%s\n') | LC_ALL=C sort
}

md5_of() { md5sum -- "$1" | cut -d' ' -f1; }

# S3 multipart ETag of FILE uploaded in PART_SIZE parts: md5(concat(md5(part)))-N
multipart_etag() { # FILE PART_SIZE
    "$PY" - "$1" "$2" <<'EOF'
import hashlib, sys
path, part = sys.argv[1], int(sys.argv[2])
digests = []
with open(path, "rb") as f:
    while chunk := f.read(part):
        digests.append(hashlib.md5(chunk).digest())
print(f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"')
EOF
}

run_check() { # NAME FUNCTION
    local name=$1 fn=$2 rc=0 t0=$EPOCHREALTIME
    set +e
    (
        set -e
        "$fn"
    )
    rc=$?
    set -e
    local dt
    dt=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    if ((rc == 0)); then
        PASSED=$((PASSED + 1))
        PASSED_NAMES+=("$name")
        printf 'PASS  %-46s %6ss\n' "$name" "$dt"
    else
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$name")
        printf 'FAIL  %-46s %6ss  (exit status %s)\n' "$name" "$dt" "$rc"
    fi
}

# ---------------------------------------------------------------------------
# test data
# ---------------------------------------------------------------------------

SMALL_SIZE=1024
BIG_SIZE=$((100 * 1024 * 1024))
AWSCLI_CHUNK=$((8 * 1024 * 1024)) # awscli default multipart_chunksize

make_data() {
    mkdir -p "$WORK/up" "$WORK/dl"
    head -c "$SMALL_SIZE" /dev/urandom >"$WORK/up/small.bin"
    head -c "$BIG_SIZE" /dev/urandom >"$WORK/up/big.bin"
    head -c 300000 /dev/urandom >"$WORK/up/stream.bin"
    SMALL_MD5=$(md5_of "$WORK/up/small.bin")
    BIG_ETAG=$(multipart_etag "$WORK/up/big.bin" "$AWSCLI_CHUNK")

    # A deterministic tree: nested dirs, ~50 files from 0 bytes to 9 MiB (one
    # file above the 8 MiB multipart threshold), a few awkward names. mtimes are
    # set an hour back so a re-sync must transfer nothing.
    "$PY" - "$WORK/tree" <<'EOF'
import os, random, sys, time
root = sys.argv[1]
rng = random.Random(20240607)
dirs = ["", "a", "a/b", "a/b/c", "a/b/c/d", "docs", "docs/with space", "x/y/z", "unicode-ü"]
sizes = [0, 1, 2, 17, 100, 511, 512, 1000, 1023, 1024, 1025, 4095, 4096, 4097,
         10000, 65535, 65536, 65537, 100000, 262144, 1 << 20, (1 << 20) + 3,
         3 * (1 << 20) + 11]
paths = []
for i in range(44):
    paths.append((os.path.join(dirs[i % len(dirs)], f"file-{i:02d}.bin"), sizes[i % len(sizes)]))
paths += [
    ("big/nine-mib.bin", 9 * (1 << 20) + 7),
    ("docs/with space/name with spaces.txt", 321),
    ("docs/plus+sign.txt", 222),
    ("unicode-ü/ünïcödé-ファイル.txt", 123),
    ("a/equals=and&amp;semi.txt", 77),
    (".hidden", 5),
]
old = time.time() - 3600
for rel, size in paths:
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(rng.randbytes(size))
    os.utime(p, (old, old))
print(len(paths))
EOF
}

# ---------------------------------------------------------------------------
# aws cli checks (run in order; later checks use earlier state)
# ---------------------------------------------------------------------------

check_mb() {
    out=$(must aws s3 mb "s3://$BUCKET")
    expect_eq "output of aws s3 mb" "make_bucket: $BUCKET" "$out"
    must aws s3api head-bucket --bucket "$BUCKET" >/dev/null
}

check_ls_buckets() {
    out=$(must aws s3 ls)
    # Fresh server: exactly our bucket, as "YYYY-MM-DD HH:MM:SS NAME".
    re="^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} $BUCKET\$"
    [[ $out =~ $re ]] || fail "aws s3 ls (bucket list) on a fresh server" "one line 'DATE TIME $BUCKET'" "$out"
}

check_cp_small_up() {
    must aws s3 cp --no-progress "$WORK/up/small.bin" "s3://$BUCKET/single/small.bin" >/dev/null
    expect_eq "ContentLength of single/small.bin" "$SMALL_SIZE" "$(head_field single/small.bin ContentLength)"
    expect_eq "ETag of single/small.bin (MD5 of the bytes)" "\"$SMALL_MD5\"" "$(head_field single/small.bin ETag)"
}

check_cp_big_up_multipart() {
    must aws s3 cp --no-progress "$WORK/up/big.bin" "s3://$BUCKET/single/big.bin" >/dev/null
    expect_eq "ContentLength of single/big.bin" "$BIG_SIZE" "$(head_field single/big.bin ContentLength)"
    etag=$(head_field single/big.bin ETag)
    [[ $etag =~ ^\"[0-9a-f]{32}-[0-9]+\"$ ]] ||
        fail "ETag of single/big.bin has the multipart form" '"<32 hex>-N"' "$etag"
    expect_eq "ETag of single/big.bin (md5 of the 8 MiB part md5s, -13)" "$BIG_ETAG" "$etag"
}

check_ls_objects() {
    out=$(must aws s3 ls "s3://$BUCKET/single/")
    got=$(awk '{ print $3, $4 }' <<<"$out" | LC_ALL=C sort)
    expected=$(printf '%s\n' "$BIG_SIZE big.bin" "$SMALL_SIZE small.bin" | LC_ALL=C sort)
    expect_eq "sizes and names from aws s3 ls s3://$BUCKET/single/" "$expected" "$got"
    out=$(must aws s3 ls "s3://$BUCKET/")
    expect_eq "aws s3 ls s3://$BUCKET/ (one common prefix)" "PRE single/" "$(awk '{ $1 = $1 } 1' <<<"$out")"
}

check_cp_down() {
    must aws s3 cp --no-progress "s3://$BUCKET/single/small.bin" "$WORK/dl/small.bin" >/dev/null
    expect_same_file "downloaded single/small.bin" "$WORK/up/small.bin" "$WORK/dl/small.bin"
    must aws s3 cp --no-progress "s3://$BUCKET/single/big.bin" "$WORK/dl/big.bin" >/dev/null
    expect_same_file "downloaded single/big.bin" "$WORK/up/big.bin" "$WORK/dl/big.bin"
    rm -f "$WORK/dl/big.bin"
}

check_cp_stream() {
    must aws s3 cp - "s3://$BUCKET/stream/obj.bin" <"$WORK/up/stream.bin" >/dev/null
    must aws s3 cp "s3://$BUCKET/stream/obj.bin" - >"$WORK/dl/stream.bin"
    expect_same_file "stdin upload read back to stdout" "$WORK/up/stream.bin" "$WORK/dl/stream.bin"
}

check_sync_up() {
    must aws s3 sync --no-progress "$WORK/tree" "s3://$BUCKET/tree/" >/dev/null
    expect_eq "keys and sizes under tree/ after sync up" \
        "$(local_listing "$WORK/tree")" "$(remote_listing tree/)"
}

check_sync_up_again_is_noop() {
    out=$(must aws s3 sync --no-progress "$WORK/tree" "s3://$BUCKET/tree/")
    expect_eq "output of a second, identical aws s3 sync up (nothing to transfer)" "" "$out"
}

check_sync_down() {
    must aws s3 sync --no-progress "s3://$BUCKET/tree/" "$WORK/tree-down" >/dev/null
    if ! d=$(diff -r "$WORK/tree" "$WORK/tree-down" 2>&1); then
        fail "diff -r of the uploaded tree and the tree synced back" "no differences" "$d"
    fi
}

check_sync_down_again_is_noop() {
    out=$(must aws s3 sync --no-progress "s3://$BUCKET/tree/" "$WORK/tree-down")
    expect_eq "output of a second, identical aws s3 sync down (nothing to transfer)" "" "$out"
}

check_mv_small() {
    must aws s3 mv --no-progress "s3://$BUCKET/single/small.bin" "s3://$BUCKET/moved/small.bin" >/dev/null
    must_fail '(404|Not Found)' aws s3api head-object --bucket "$BUCKET" --key single/small.bin
    expect_eq "ContentLength of moved/small.bin" "$SMALL_SIZE" "$(head_field moved/small.bin ContentLength)"
    must aws s3 cp --no-progress "s3://$BUCKET/moved/small.bin" "$WORK/dl/moved-small.bin" >/dev/null
    expect_same_file "moved/small.bin read back" "$WORK/up/small.bin" "$WORK/dl/moved-small.bin"
}

check_mv_big_multipart_copy() {
    # Above the multipart threshold the CLI copies server-side with UploadPartCopy.
    must aws s3 mv --no-progress "s3://$BUCKET/single/big.bin" "s3://$BUCKET/moved/big.bin" >/dev/null
    must_fail '(404|Not Found)' aws s3api head-object --bucket "$BUCKET" --key single/big.bin
    expect_eq "ContentLength of moved/big.bin" "$BIG_SIZE" "$(head_field moved/big.bin ContentLength)"
    must aws s3 cp --no-progress "s3://$BUCKET/moved/big.bin" "$WORK/dl/moved-big.bin" >/dev/null
    expect_same_file "moved/big.bin read back" "$WORK/up/big.bin" "$WORK/dl/moved-big.bin"
    rm -f "$WORK/dl/moved-big.bin"
}

check_rm_recursive() {
    n_tree=$(remote_listing tree/ | wc -l)
    ((n_tree > 0)) || fail "objects under tree/ before aws s3 rm --recursive" "some (from the sync checks)" "none"
    others=$(remote_listing "" | grep -v '^tree/' || true)
    out=$(must aws s3 rm --recursive "s3://$BUCKET/tree/")
    expect_eq "number of 'delete:' lines from aws s3 rm --recursive" "$n_tree" "$(grep -c '^delete: ' <<<"$out" || true)"
    expect_eq "keys left under tree/ after aws s3 rm --recursive" "" "$(remote_listing tree/)"
    expect_eq "keys outside tree/ after aws s3 rm --recursive (untouched)" "$others" "$(remote_listing "")"
}

check_presign() {
    url=$(must aws s3 presign "s3://$BUCKET/moved/small.bin" --expires-in 600)
    [[ $url == "$ENDPOINT/$BUCKET/moved/small.bin?"* ]] ||
        fail "presigned URL is path-style" "$ENDPOINT/$BUCKET/moved/small.bin?..." "$url"
    [[ $url == *X-Amz-Algorithm=AWS4-HMAC-SHA256* && $url == *X-Amz-Signature=* ]] ||
        fail "presigned URL is SigV4" "X-Amz-Algorithm=AWS4-HMAC-SHA256 and X-Amz-Signature=" "$url"
    code=$(http_status "$url" "$WORK/dl/presigned.bin")
    expect_eq "HTTP status of curl on the presigned URL" 200 "$code"
    expect_same_file "body fetched by curl from the presigned URL" "$WORK/up/small.bin" "$WORK/dl/presigned.bin"
}

check_presign_rejects_tampering_and_expiry() {
    url=$(must aws s3 presign "s3://$BUCKET/moved/small.bin" --expires-in 600)
    sig=${url##*X-Amz-Signature=}
    sig=${sig%%&*}
    # flip the first hex digit of the signature
    if [[ ${sig:0:1} == 0 ]]; then first=1; else first=0; fi
    bad_url=${url/X-Amz-Signature=$sig/X-Amz-Signature=$first${sig:1}}
    code=$(http_status "$bad_url")
    expect_eq "HTTP status for a presigned URL with an altered signature" 403 "$code"
    bad_url=${url/moved\/small.bin/moved\/big.bin}
    code=$(http_status "$bad_url")
    expect_eq "HTTP status for a presigned URL reused for another key" 403 "$code"
    url=$(must aws s3 presign "s3://$BUCKET/moved/small.bin" --expires-in 1)
    sleep 2.5
    code=$(http_status "$url")
    expect_eq "HTTP status for an expired presigned URL (--expires-in 1, fetched 2.5s later)" 403 "$code"
}

check_auth_rejected() {
    code=$(http_status "$ENDPOINT/$BUCKET/moved/small.bin")
    expect_eq "HTTP status of an unsigned GET of a private object" 403 "$code"
    must_fail 'SignatureDoesNotMatch' env AWS_SECRET_ACCESS_KEY=wrong-secret-key \
        "$AWS_BIN" --endpoint-url "$ENDPOINT" s3 ls "s3://$BUCKET/"
    must_fail 'InvalidAccessKeyId' env AWS_ACCESS_KEY_ID=AKIDUNKNOWNCOMPAT \
        "$AWS_BIN" --endpoint-url "$ENDPOINT" s3 ls "s3://$BUCKET/"
}

check_rb_nonempty_fails() {
    must_fail 'BucketNotEmpty' aws s3 rb "s3://$BUCKET"
    must aws s3api head-bucket --bucket "$BUCKET" >/dev/null
}

check_rb() {
    must aws s3 rm --recursive "s3://$BUCKET/" >/dev/null
    out=$(must aws s3 rb "s3://$BUCKET")
    expect_eq "output of aws s3 rb" "remove_bucket: $BUCKET" "$out"
    must_fail '(404|Not Found|NoSuchBucket)' aws s3api head-bucket --bucket "$BUCKET"
    out=$(must aws s3 ls)
    if grep -q " $BUCKET\$" <<<"$out"; then
        fail "aws s3 ls after aws s3 rb" "no line for $BUCKET" "$out"
    fi
}

# --- aws s3api: versioning, tags, object lock ----------------------------------

check_s3api_versioning_and_tags() {
    local b=compat-cli-versions v1 v2
    echo one >"$WORK/version-1"
    echo two >"$WORK/version-2"
    must aws s3api create-bucket --bucket "$b" >/dev/null
    must aws s3api put-bucket-versioning --bucket "$b" --versioning-configuration Status=Enabled >/dev/null
    expect_eq "get-bucket-versioning" "Enabled" \
        "$(must aws s3api get-bucket-versioning --bucket "$b" --query Status --output text)"
    v1=$(must aws s3api put-object --bucket "$b" --key k --body "$WORK/version-1" --query VersionId --output text)
    v2=$(must aws s3api put-object --bucket "$b" --key k --body "$WORK/version-2" --query VersionId --output text)
    must aws s3api get-object --bucket "$b" --key k --version-id "$v1" "$WORK/version-1.out" >/dev/null
    expect_eq "get-object --version-id of the first version" "one" "$(cat "$WORK/version-1.out")"
    expect_eq "list-object-versions, newest first" "$v2"$'\t'"$v1" \
        "$(must aws s3api list-object-versions --bucket "$b" --query 'Versions[].VersionId' --output text)"
    must aws s3api put-object-tagging --bucket "$b" --key k --tagging 'TagSet=[{Key=project,Value=quarry}]' >/dev/null
    expect_eq "get-object-tagging" "project"$'\t'"quarry" \
        "$(must aws s3api get-object-tagging --bucket "$b" --key k --query 'TagSet[0].[Key,Value]' --output text)"
    must aws s3api delete-object --bucket "$b" --key k --version-id "$v1" >/dev/null
    must aws s3api delete-object --bucket "$b" --key k --version-id "$v2" >/dev/null
    must aws s3api delete-bucket --bucket "$b" >/dev/null
}

check_s3api_object_lock() {
    local b=compat-cli-lock v
    echo locked >"$WORK/locked"
    must aws s3api create-bucket --bucket "$b" --object-lock-enabled-for-bucket >/dev/null
    must aws s3api put-object-lock-configuration --bucket "$b" \
        --object-lock-configuration 'ObjectLockEnabled=Enabled,Rule={DefaultRetention={Mode=GOVERNANCE,Days=1}}' >/dev/null
    v=$(must aws s3api put-object --bucket "$b" --key k --body "$WORK/locked" --query VersionId --output text)
    expect_eq "the retention the bucket's default gave" "GOVERNANCE" \
        "$(must aws s3api get-object-retention --bucket "$b" --key k --query Retention.Mode --output text)"
    must_fail 'AccessDenied' aws s3api delete-object --bucket "$b" --key k --version-id "$v"
    must aws s3api delete-object --bucket "$b" --key k --version-id "$v" --bypass-governance-retention >/dev/null
    must aws s3api delete-bucket --bucket "$b" >/dev/null
}

# --- users and keys made at run time (quarry admin), used by the aws cli ---------

quarry_admin() {
    QUARRY_ACCESS_KEY=$ACCESS_KEY QUARRY_SECRET_KEY=$SECRET_KEY "$SERVER_BIN" admin "$@" --endpoint "$ENDPOINT"
}

check_runtime_user_with_aws_cli() {
    local key_json access secret
    must quarry_admin user create compat-dora >/dev/null
    key_json=$(must quarry_admin key create compat-dora)
    access=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_key"])' <<<"$key_json")
    secret=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["secret_key"])' <<<"$key_json")
    echo "dora's" >"$WORK/dora.txt"
    AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret must aws s3 mb s3://compat-dora >/dev/null
    AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret must aws s3 cp "$WORK/dora.txt" s3://compat-dora/d.txt >/dev/null
    # Her bucket is hers (anonymous is refused), and her key stops working once disabled.
    must_fail 'AccessDenied' aws s3api get-object --bucket compat-dora --key d.txt --no-sign-request "$WORK/dora.out"
    must quarry_admin key disable "$access" >/dev/null
    AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret must_fail 'InvalidAccessKeyId' aws s3 ls s3://compat-dora
    must quarry_admin key enable "$access" >/dev/null
    AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret must aws s3 rm s3://compat-dora/d.txt >/dev/null
    AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret must aws s3 rb s3://compat-dora >/dev/null
    must quarry_admin key delete "$access" >/dev/null
    must quarry_admin user delete compat-dora >/dev/null
}

# --- server-side encryption with the aws cli -------------------------------------

SSE_C_KEY=0123456789abcdef0123456789abcdef # 32 bytes: the aws cli sends it base64'd, with its MD5

check_cp_server_side_encryption() {
    must aws s3 cp --no-progress --sse AES256 "$WORK/up/small.bin" "s3://$BUCKET/sse/s3.bin" >/dev/null
    local head
    head=$(must aws s3api head-object --bucket "$BUCKET" --key sse/s3.bin)
    grep -q '"ServerSideEncryption": "AES256"' <<<"$head" || fail "head-object of an --sse AES256 upload" '"ServerSideEncryption": "AES256"' "$head"
    must aws s3 cp --no-progress "s3://$BUCKET/sse/s3.bin" "$WORK/dl/sse-s3.bin" >/dev/null
    cmp -s "$WORK/up/small.bin" "$WORK/dl/sse-s3.bin" || fail "aws s3 cp down of the --sse AES256 object" "the bytes uploaded" "different bytes"
    # A customer key over plain HTTP is refused, as S3 refuses it (the TLS checks use it).
    must_fail 'InvalidRequest|secure connection' \
        aws s3 cp --no-progress --sse-c AES256 --sse-c-key "$SSE_C_KEY" "$WORK/up/small.bin" "s3://$BUCKET/sse/c.bin"
    must aws s3 rm --recursive --quiet "s3://$BUCKET/sse/" >/dev/null
}

# --- HTTPS (a second server with --tls-cert/--tls-key) --------------------------

TLS_BUCKET=compat-tls

aws_tls() { "$AWS_BIN" --endpoint-url "$TLS_ENDPOINT" --ca-bundle "$TLS_CA" "$@"; }

check_tls_cli_round_trip_sse_c() {
    # SSE-C on the multipart path (the 100 MiB file), over TLS as S3 requires.
    must aws_tls s3 mb "s3://$TLS_BUCKET" >/dev/null
    must aws_tls s3 cp --no-progress --sse-c AES256 --sse-c-key "$SSE_C_KEY" "$WORK/up/big.bin" "s3://$TLS_BUCKET/c.bin" >/dev/null
    must_fail 'Bad Request|400' aws_tls s3api head-object --bucket "$TLS_BUCKET" --key c.bin
    must aws_tls s3 cp --no-progress --sse-c AES256 --sse-c-key "$SSE_C_KEY" "s3://$TLS_BUCKET/c.bin" "$WORK/dl/tls-sse-c.bin" >/dev/null
    cmp -s "$WORK/up/big.bin" "$WORK/dl/tls-sse-c.bin" || fail "aws s3 cp --sse-c down over TLS" "the bytes uploaded" "different bytes"
    must aws_tls s3 rb --force "s3://$TLS_BUCKET" >/dev/null
}

check_tls_http2_presigned_get() {
    # ALPN: curl negotiates HTTP/2; a presigned URL is served over it.
    echo "over h2" >"$WORK/tls-h2.txt"
    must aws_tls s3 mb "s3://$TLS_BUCKET-h2" >/dev/null
    must aws_tls s3 cp --no-progress "$WORK/tls-h2.txt" "s3://$TLS_BUCKET-h2/h2.txt" >/dev/null
    local url got
    url=$(must aws_tls s3 presign "s3://$TLS_BUCKET-h2/h2.txt" --expires-in 300)
    got=$(curl -s --cacert "$TLS_CA" --http2 -o "$WORK/tls-h2.out" -w '%{http_version} %{http_code}' "$url" || true)
    expect_eq "HTTP version and status of a presigned GET with curl --http2" "2 200" "$got"
    expect_same_file "the object fetched over HTTP/2" "$WORK/tls-h2.txt" "$WORK/tls-h2.out"
    must aws_tls s3 rb --force "s3://$TLS_BUCKET-h2" >/dev/null
}

check_tls_refuses_untrusted_and_plain_clients() {
    # Without the CA the aws cli refuses the self-signed certificate; plain HTTP gets no answer.
    local no_ca=("$AWS_BIN" --endpoint-url "$TLS_ENDPOINT")
    must_fail 'SSL|certificate|CERTIFICATE' "${no_ca[@]}" s3 ls
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://${TLS_ENDPOINT#https://}/health" || true)
    [[ $code != 200 ]] || fail "plain-HTTP GET /health on the TLS port" "no HTTP answer" "HTTP 200"
}

# --- s3cmd (PyPI): ACLs and bucket policies -----------------------------------

S3CMD_BUCKET=compat-s3cmd

# s3cmd with a config file for the server (path-style, SigV4, plain http).
s3cmd_q() {
    if [[ ! -f $WORK/s3cmd.cfg ]]; then
        local hostport=${ENDPOINT#http://}
        printf '[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\nuse_https = False\nsignature_v2 = False\n' \
            "$ACCESS_KEY" "$SECRET_KEY" "$hostport" "$hostport" >"$WORK/s3cmd.cfg"
    fi
    "$VENV/bin/s3cmd" -c "$WORK/s3cmd.cfg" --no-progress "$@"
}

# An ACL-enabled bucket (ObjectWriter) with the default public block lifted.
check_s3cmd_acl_public() {
    echo "public words" >"$WORK/s3cmd-public.txt"
    must aws s3api create-bucket --bucket "$S3CMD_BUCKET" --object-ownership ObjectWriter >/dev/null
    must aws s3api delete-public-access-block --bucket "$S3CMD_BUCKET" >/dev/null
    must s3cmd_q put --acl-public "$WORK/s3cmd-public.txt" "s3://$S3CMD_BUCKET/pub.txt" >/dev/null
    expect_eq "anonymous curl of an object put with --acl-public" 200 \
        "$(http_status "$ENDPOINT/$S3CMD_BUCKET/pub.txt" "$WORK/s3cmd-public.out")"
    expect_same_file "the object curl fetched" "$WORK/s3cmd-public.txt" "$WORK/s3cmd-public.out"
    must s3cmd_q info "s3://$S3CMD_BUCKET/pub.txt" | grep -Eq 'ACL: +\*anon\*: READ' ||
        fail "s3cmd info" "an ACL line '*anon*: READ'" "$(cat "$WORK/cmd.out")"
}

check_s3cmd_setacl() {
    must s3cmd_q setacl --acl-private "s3://$S3CMD_BUCKET/pub.txt" >/dev/null
    expect_eq "anonymous curl after setacl --acl-private" 403 "$(http_status "$ENDPOINT/$S3CMD_BUCKET/pub.txt")"
    must s3cmd_q setacl --acl-public "s3://$S3CMD_BUCKET/pub.txt" >/dev/null
    expect_eq "anonymous curl after setacl --acl-public" 200 "$(http_status "$ENDPOINT/$S3CMD_BUCKET/pub.txt")"
}

check_s3cmd_setpolicy() {
    echo "private words" >"$WORK/s3cmd-private.txt"
    must s3cmd_q put "$WORK/s3cmd-private.txt" "s3://$S3CMD_BUCKET/open/doc.txt" >/dev/null
    expect_eq "anonymous curl of a private object" 403 "$(http_status "$ENDPOINT/$S3CMD_BUCKET/open/doc.txt")"
    printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::%s/open/*"}]}' \
        "$S3CMD_BUCKET" >"$WORK/policy.json"
    must s3cmd_q setpolicy "$WORK/policy.json" "s3://$S3CMD_BUCKET" >/dev/null
    expect_eq "anonymous curl under a policy's public prefix" 200 "$(http_status "$ENDPOINT/$S3CMD_BUCKET/open/doc.txt")"
    must s3cmd_q delpolicy "s3://$S3CMD_BUCKET" >/dev/null
    expect_eq "anonymous curl once the policy is deleted" 403 "$(http_status "$ENDPOINT/$S3CMD_BUCKET/open/doc.txt")"
}

# --- restic (Debian's package): a backup repository in a bucket -----------------

# restic against the server; the repository's password is fixed (restic encrypts
# client-side: the server only ever sees ciphertext).
restic_q() {
    env -u AWS_CA_BUNDLE AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY" \
        RESTIC_REPOSITORY="s3:$ENDPOINT/compat-restic" RESTIC_PASSWORD=compat-restic-password \
        RESTIC_CACHE_DIR="$WORK/restic-cache" restic --quiet "$@"
}

# A tree to back up: random files around restic's pack size, a small text and an
# empty file; changed later by check_restic_forget_prune.
make_restic_tree() {
    mkdir -p "$WORK/restic-src/sub/deeper"
    head -c 9000000 /dev/urandom >"$WORK/restic-src/big.bin"
    head -c 300000 /dev/urandom >"$WORK/restic-src/sub/medium.bin"
    echo "restic words" >"$WORK/restic-src/sub/deeper/small.txt"
    : >"$WORK/restic-src/empty"
}

check_restic_backup_restore() {
    make_restic_tree
    must restic_q init >/dev/null
    must restic_q backup "$WORK/restic-src" >/dev/null
    rm -rf "$WORK/restic-restore"
    must restic_q restore latest --target "$WORK/restic-restore" >/dev/null
    diff -r "$WORK/restic-src" "$WORK/restic-restore$WORK/restic-src" >"$WORK/cmd.out" 2>&1 ||
        fail "diff -r of the tree and its restic restore" "no differences" "$(head -n 20 "$WORK/cmd.out")"
    must restic_q check --read-data >/dev/null
}

check_restic_forget_prune() {
    # a second snapshot with one file changed and one new, then the first forgotten
    # and pruned with --max-unused 0: the old medium.bin's blobs are dropped, so packs
    # are rewritten and deleted, and fewer bytes stay in the bucket.
    head -c 2000000 /dev/urandom >"$WORK/restic-src/sub/medium.bin"
    echo "new" >"$WORK/restic-src/new.txt"
    must restic_q backup "$WORK/restic-src" >/dev/null
    local listing before after snaps
    listing=$(must aws s3 ls --recursive "s3://compat-restic/data/") || return 1
    before=$(awk '{ s += $3 } END { print s }' <<<"$listing")
    must restic_q forget --keep-last 1 --prune --max-unused 0 >/dev/null || return 1
    listing=$(must aws s3 ls --recursive "s3://compat-restic/data/") || return 1
    after=$(awk '{ s += $3 } END { print s }' <<<"$listing")
    ((after < before - 200000)) ||
        fail "bytes of the packs under data/ after forget --prune (the old 300 kB medium.bin gone)" \
            "at most $((before - 200000)) (before: $before)" "$after"
    snaps=$(must restic_q snapshots --json) || return 1
    snaps=$("$PY" -c 'import json, sys; print(len(json.load(sys.stdin)))' <<<"$snaps")
    expect_eq "restic snapshots after forget --keep-last 1" "1" "$snaps"
    must restic_q check --read-data >/dev/null
    rm -rf "$WORK/restic-restore"
    must restic_q restore latest --target "$WORK/restic-restore" >/dev/null
    diff -r "$WORK/restic-src" "$WORK/restic-restore$WORK/restic-src" >"$WORK/cmd.out" 2>&1 ||
        fail "diff -r of the changed tree and its restic restore after the prune" "no differences" "$(head -n 20 "$WORK/cmd.out")"
}

# --- rclone (Debian's package): versioning -------------------------------------

RCLONE_BUCKET=compat-rclone

# ensure_debian_package COMMAND -- install the Debian package of that name when the
# command is missing (the machine's package manager; root).
ensure_debian_package() {
    local pkg=$1
    command -v "$pkg" >/dev/null && return 0
    command -v apt-get >/dev/null || die "$pkg is missing and there is no apt-get to install it"
    log "installing $pkg (Debian package)"
    if ! apt-get install -y -q "$pkg" >"$WORK/apt.log" 2>&1; then
        apt-get update -q >>"$WORK/apt.log" 2>&1 || true
        apt-get install -y -q "$pkg" >>"$WORK/apt.log" 2>&1 || {
            cat "$WORK/apt.log" >&2
            die "could not install $pkg with apt-get"
        }
    fi
}

# rclone against the server, configured by environment only. Debian's rclone 1.60
# fails on AWS_CA_BUNDLE ("LoadCustomCABundleError ... unsupported transport") even for
# plain http, so it is left out of rclone's environment.
rclone_q() {
    env -u AWS_CA_BUNDLE RCLONE_CONFIG_Q_TYPE=s3 RCLONE_CONFIG_Q_PROVIDER=Other \
        RCLONE_CONFIG_Q_ENDPOINT="$ENDPOINT" RCLONE_CONFIG_Q_ACCESS_KEY_ID="$ACCESS_KEY" \
        RCLONE_CONFIG_Q_SECRET_ACCESS_KEY="$SECRET_KEY" RCLONE_CONFIG_Q_FORCE_PATH_STYLE=true \
        rclone --config /dev/null -q "$@"
}

check_rclone_versioning() {
    mkdir -p "$WORK/rclone"
    echo one >"$WORK/rclone/doc.txt"
    must rclone_q mkdir "q:$RCLONE_BUCKET" >/dev/null
    expect_eq "rclone backend versioning of a new bucket" "Unversioned" "$(must rclone_q backend versioning "q:$RCLONE_BUCKET")"
    expect_eq "rclone backend versioning Enabled" "Enabled" "$(must rclone_q backend versioning "q:$RCLONE_BUCKET" Enabled)"
    must rclone_q copy "$WORK/rclone" "q:$RCLONE_BUCKET" >/dev/null
    echo two >"$WORK/rclone/doc.txt"
    must rclone_q copy "$WORK/rclone" "q:$RCLONE_BUCKET" >/dev/null
    local listed
    listed=$(must rclone_q lsf --s3-versions "q:$RCLONE_BUCKET")
    if ! grep -qx 'doc.txt' <<<"$listed" || ! grep -Eqx 'doc-v[0-9-]+\.txt' <<<"$listed"; then
        fail "rclone lsf --s3-versions" "doc.txt and one doc-v<time>.txt" "$listed"
    fi
    expect_eq "rclone cat of the latest version" "two" "$(must rclone_q cat "q:$RCLONE_BUCKET/doc.txt")"
}

check_rclone_cleanup() {
    # Quiet: no "Failed to read versioning status" or any other complaint.
    must rclone_q cleanup "q:$RCLONE_BUCKET" >/dev/null
    expect_eq "what rclone cleanup printed (-q shows errors only)" "" "$(cat "$WORK/cmd.err")"
    must rclone_q backend cleanup-hidden "q:$RCLONE_BUCKET" >/dev/null
    expect_eq "rclone lsf --s3-versions after cleanup-hidden" "doc.txt" "$(must rclone_q lsf --s3-versions "q:$RCLONE_BUCKET")"
    must rclone_q purge "q:$RCLONE_BUCKET" >/dev/null
}

# --- S3 Select through the aws cli (objects under select/ in $BUCKET) -----------

# select_cli KEY SQL INPUT_SERIALIZATION OUTPUT_SERIALIZATION OUTFILE
select_cli() {
    must aws s3api select-object-content --bucket "$BUCKET" --key "$1" \
        --expression "$2" --expression-type SQL \
        --input-serialization "$3" --output-serialization "$4" "$5" >/dev/null
}

# expect_file_text WHAT EXPECTED_TEXT FILE -- FILE holds exactly EXPECTED_TEXT
# (a mismatch is shown as `od -c` characters, so delimiters and quotes are visible)
expect_file_text() {
    printf '%s' "$2" >"$WORK/expected.txt"
    if [[ ! -f $3 ]]; then
        fail "$1" "a file holding: $(show_chars "$WORK/expected.txt")" "no file $3"
        return
    fi
    cmp -s -- "$WORK/expected.txt" "$3" ||
        fail "$1" "$(show_chars "$WORK/expected.txt")" "$(show_chars "$3")"
}

show_chars() { od -An -c -- "$1" | tr -d '\n' | tr -s ' ' | head -c 600; }

make_select_data() {
    # The same people as tests/compat/analytics_suite.py: a mixed-case header, a
    # quoted field holding the delimiter, doubled quotes, an empty last field.
    printf '%s\n' 'Name,Age,City' 'Alice,34,Paris' 'Bob,25,New York' 'Carol,41,"Rome, Italy"' \
        'Dan,30,"The ""Big"" Town"' 'Eve,52,Berlin' 'Frank,19,' >"$WORK/up/people.csv"
    gzip -9 -n -c "$WORK/up/people.csv" >"$WORK/up/people.csv.gz"
    "$PY" - "$WORK/up/numbers.parquet" <<'EOF_PY'
import sys
import pyarrow as pa, pyarrow.parquet as pq
n = 5000
pq.write_table(pa.table({"id": pa.array(range(n), pa.int64()),
                         "label": pa.array([f"item-{i}" for i in range(n)])}),
               sys.argv[1], row_group_size=1000)
EOF_PY
}

check_select_cli_csv() {
    must aws s3 cp --no-progress "$WORK/up/people.csv" "s3://$BUCKET/select/people.csv" >/dev/null
    select_cli select/people.csv "SELECT s.name, s.city FROM S3Object s WHERE CAST(s.age AS INT) > 30" \
        '{"CSV":{"FileHeaderInfo":"USE"}}' '{"CSV":{}}' "$WORK/dl/select.csv"
    expect_file_text "out.csv of select-object-content ... WHERE CAST(s.age AS INT) > 30" \
        $'Alice,Paris\nCarol,"Rome, Italy"\nEve,Berlin\n' "$WORK/dl/select.csv"
    select_cli select/people.csv "SELECT s._1, s._2 FROM S3Object s LIMIT 2" \
        '{"CSV":{"FileHeaderInfo":"IGNORE"}}' '{"CSV":{"FieldDelimiter":"|","QuoteFields":"ALWAYS"}}' "$WORK/dl/select.csv"
    expect_file_text "out.csv of s._1, s._2 ... LIMIT 2 (header IGNORE; '|', QuoteFields ALWAYS)" \
        $'"Alice"|"34"\n"Bob"|"25"\n' "$WORK/dl/select.csv"
}

check_select_cli_json_aggregate() {
    select_cli select/people.csv "SELECT count(*), sum(CAST(s.age AS INT)) FROM S3Object s" \
        '{"CSV":{"FileHeaderInfo":"USE"}}' '{"JSON":{}}' "$WORK/dl/select.json"
    expect_file_text "JSON output of count(*), sum(age)" $'{"_1":6,"_2":201}\n' "$WORK/dl/select.json"
}

check_select_cli_gzip() {
    must aws s3 cp --no-progress "$WORK/up/people.csv.gz" "s3://$BUCKET/select/people.csv.gz" >/dev/null
    select_cli select/people.csv.gz "SELECT s.name FROM S3Object s WHERE s.city = ''" \
        '{"CSV":{"FileHeaderInfo":"USE"},"CompressionType":"GZIP"}' '{"CSV":{}}' "$WORK/dl/select.csv"
    expect_file_text "out.csv of a select over the gzip-compressed CSV" $'Frank\n' "$WORK/dl/select.csv"
}

check_select_cli_parquet() {
    must aws s3 cp --no-progress "$WORK/up/numbers.parquet" "s3://$BUCKET/select/numbers.parquet" >/dev/null
    select_cli select/numbers.parquet "SELECT s.id, s.label FROM S3Object s WHERE s.id BETWEEN 2998 AND 3001" \
        '{"Parquet":{}}' '{"CSV":{}}' "$WORK/dl/select.csv"
    local got
    got=$(LC_ALL=C sort "$WORK/dl/select.csv") # (object order is checked in analytics_suite.py)
    expect_eq "rows of the Parquet select (sorted)" \
        "$(printf '%s\n' 2998,item-2998 2999,item-2999 3000,item-3000 3001,item-3001)" "$got"
    select_cli select/numbers.parquet "SELECT count(*) FROM S3Object" '{"Parquet":{}}' '{"CSV":{}}' "$WORK/dl/select.csv"
    expect_file_text "count(*) of the Parquet object" $'5000\n' "$WORK/dl/select.csv"
}

check_select_cli_bad_sql() {
    rm -f "$WORK/dl/bad.csv"
    must_fail '\(Parse[A-Za-z]*\)' aws s3api select-object-content --bucket "$BUCKET" --key select/people.csv \
        --expression "SELEC * FROM S3Object" --expression-type SQL \
        --input-serialization '{"CSV":{"FileHeaderInfo":"USE"}}' --output-serialization '{"CSV":{}}' "$WORK/dl/bad.csv"
    must_fail '\(NoSuchKey\)' aws s3api select-object-content --bucket "$BUCKET" --key select/missing.csv \
        --expression "SELECT * FROM S3Object" --expression-type SQL \
        --input-serialization '{"CSV":{}}' --output-serialization '{"CSV":{}}' "$WORK/dl/bad.csv"
}

check_server_alive() {
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server process after the checks" "still running" "exited"
    code=$(http_status "$ENDPOINT/health")
    expect_eq "GET /health after the checks" 200 "$code"
}

# run_python_suite LABEL SCRIPT [ARGS...] -- run one of the Python suites against the
# server; adds its counts to PASSED / FAILED (and SUITE_PASSED / SUITE_FAILED).
run_python_suite() {
    local label=$1 script=$2
    shift 2
    run_suite "$label" "$PY" "$HERE/$script" "$@"
}

# run_suite LABEL COMMAND... -- run a suite that takes --workdir and --summary-file,
# prints PASS/FAIL lines and writes "PASSED FAILED" + failed names to the summary.
run_suite() {
    local label=$1 rc=0 v
    shift
    # (pipefail: rc is the suite's exit status; its output is kept to find what passed)
    QUARRY_COMPAT_ENDPOINT=$ENDPOINT "$@" \
        --workdir "$WORK/$label" --summary-file "$WORK/$label.summary" |
        tee "$WORK/$label.out" || rc=$?
    while IFS= read -r v; do PASSED_NAMES+=("$label: $v"); done < <(
        sed -nE 's/^PASS  ([^ ]+) .*/\1/p' "$WORK/$label.out"
    )
    # Summary file: "PASSED FAILED" on line 1, then one failed check name per line.
    SUITE_PASSED=0
    SUITE_FAILED=0
    if [[ -f $WORK/$label.summary ]] && read -r SUITE_PASSED SUITE_FAILED <"$WORK/$label.summary"; then
        while IFS= read -r v; do FAILED_NAMES+=("$label: $v"); done < <(tail -n +2 "$WORK/$label.summary")
        if ((rc != 0 && SUITE_FAILED == 0)); then
            SUITE_FAILED=1
            FAILED_NAMES+=("$label suite exited with status $rc")
        fi
    else
        SUITE_PASSED=0
        SUITE_FAILED=1
        FAILED_NAMES+=("$label suite crashed (exit status $rc, no summary)")
    fi
    PASSED=$((PASSED + SUITE_PASSED))
    FAILED=$((FAILED + SUITE_FAILED))
}

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

main() {
    ensure_venv
    ensure_node_modules
    resolve_binary "${1:-}"

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/quarry-compat.XXXXXX")

    # Clients talk only to our server, with only our settings.
    local v
    while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^AWS_' || true)
    export NO_PROXY=127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}
    export no_proxy=$NO_PROXY
    export PYTHONUTF8=1 PYTHONIOENCODING=utf-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
    mkdir -p "$WORK/aws"
    cat >"$WORK/aws/config" <<'EOF'
[default]
region = us-east-1
max_attempts = 1
s3 =
    addressing_style = path
    signature_version = s3v4
EOF
    export AWS_CONFIG_FILE=$WORK/aws/config
    export AWS_SHARED_CREDENTIALS_FILE=$WORK/aws/credentials-none
    export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY
    export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_PAGER=

    start_server

    log "generating test data in $WORK"
    make_data >/dev/null
    make_select_data

    log "aws cli checks ($("$AWS_BIN" --version 2>&1 | cut -d' ' -f1))"
    run_check "aws s3 mb" check_mb
    run_check "aws s3 ls (buckets)" check_ls_buckets
    run_check "aws s3 cp up 1 KiB" check_cp_small_up
    run_check "aws s3 cp up 100 MiB (multipart ETag)" check_cp_big_up_multipart
    run_check "aws s3 ls (objects, common prefix)" check_ls_objects
    run_check "aws s3 cp down + cmp" check_cp_down
    run_check "aws s3 cp stdin -> stdout" check_cp_stream
    run_check "aws s3 cp --sse AES256; --sse-c over http refused" check_cp_server_side_encryption
    run_check "aws s3 sync up (tree)" check_sync_up
    run_check "aws s3 sync up again transfers nothing" check_sync_up_again_is_noop
    run_check "aws s3 sync down + diff -r" check_sync_down
    run_check "aws s3 sync down again transfers nothing" check_sync_down_again_is_noop
    run_check "aws s3 mv 1 KiB (CopyObject)" check_mv_small
    run_check "aws s3 mv 100 MiB (UploadPartCopy)" check_mv_big_multipart_copy
    run_check "aws s3 rm --recursive" check_rm_recursive
    run_check "aws s3 presign + curl" check_presign
    run_check "presigned URL tampered/expired -> 403" check_presign_rejects_tampering_and_expiry
    run_check "unsigned / bad-key requests rejected" check_auth_rejected
    run_check "aws s3api select-object-content CSV" check_select_cli_csv
    run_check "select-object-content JSON aggregate" check_select_cli_json_aggregate
    run_check "select-object-content GZIP CSV" check_select_cli_gzip
    run_check "select-object-content Parquet" check_select_cli_parquet
    run_check "select-object-content bad SQL -> Parse*" check_select_cli_bad_sql
    run_check "aws s3 rb of non-empty bucket fails" check_rb_nonempty_fails
    run_check "aws s3 rb" check_rb
    run_check "aws s3api versioning and tags" check_s3api_versioning_and_tags
    run_check "aws s3api object lock (governance)" check_s3api_object_lock
    run_check "quarry admin user/key + aws cli as that user" check_runtime_user_with_aws_cli
    run_check "s3cmd put --acl-public + anonymous curl" check_s3cmd_acl_public
    run_check "s3cmd setacl" check_s3cmd_setacl
    run_check "s3cmd setpolicy / delpolicy" check_s3cmd_setpolicy
    run_check "server alive after aws cli checks" check_server_alive
    local cli_passed=$PASSED cli_failed=$FAILED

    ensure_debian_package rclone
    log "rclone checks ($(rclone version 2>/dev/null | head -n 1))"
    run_check "rclone versioning (--s3-versions)" check_rclone_versioning
    run_check "rclone cleanup quiet, cleanup-hidden" check_rclone_cleanup
    ensure_debian_package restic
    log "restic checks ($(restic version 2>/dev/null | head -n 1))"
    run_check "restic init, backup, restore + diff, check --read-data" check_restic_backup_restore
    run_check "restic forget --prune deletes packs, restore + diff" check_restic_forget_prune
    local r_passed=$((PASSED - cli_passed)) r_failed=$((FAILED - cli_failed))

    log "boto3 checks (tests/compat/boto3_suite.py)"
    run_python_suite boto3 boto3_suite.py
    local b_passed=$SUITE_PASSED b_failed=$SUITE_FAILED
    run_check "server alive after boto3 checks" check_server_alive

    log "minio-py checks (tests/compat/minio_suite.py)"
    run_python_suite minio minio_suite.py
    local m_passed=$SUITE_PASSED m_failed=$SUITE_FAILED
    run_check "server alive after minio-py checks" check_server_alive

    log "S3 Select, pyarrow and quarry sql checks (tests/compat/analytics_suite.py)"
    run_python_suite analytics analytics_suite.py --quarry-bin "$SERVER_BIN"
    local a_passed=$SUITE_PASSED a_failed=$SUITE_FAILED
    run_check "server alive after analytics checks" check_server_alive

    log "HTTPS checks (a second server with --tls-cert/--tls-key)"
    start_tls_server
    local t_before_passed=$PASSED t_before_failed=$FAILED
    run_check "aws s3 cp --sse-c (multipart) over TLS" check_tls_cli_round_trip_sse_c
    run_check "TLS: presigned GET with curl --http2" check_tls_http2_presigned_get
    run_check "TLS: untrusted cert and plain HTTP refused" check_tls_refuses_untrusted_and_plain_clients
    ENDPOINT=$TLS_ENDPOINT AWS_CA_BUNDLE=$TLS_CA run_python_suite boto3-tls boto3_suite.py -k customer_key
    local t_passed=$((PASSED - t_before_passed)) t_failed=$((FAILED - t_before_failed))

    log "aws-sdk-js v3 checks (tests/compat/js/sdk_js_suite.mjs)"
    NODE_NO_WARNINGS=1 run_suite sdk-js node "$HERE/js/sdk_js_suite.mjs"
    local j_passed=$SUITE_PASSED j_failed=$SUITE_FAILED
    run_check "server alive after aws-sdk-js checks" check_server_alive

    echo
    log "aws cli: $cli_passed ok / $cli_failed failing; rclone and restic: $r_passed ok / $r_failed failing;" \
        "boto3: $b_passed ok / $b_failed failing; minio-py: $m_passed ok / $m_failed failing;" \
        "analytics: $a_passed ok / $a_failed failing; https: $t_passed ok / $t_failed failing;" \
        "aws-sdk-js: $j_passed ok / $j_failed failing"
    # Failures of checks listed in known-failures.txt (known server bugs) are still
    # failures and printed as such; only the exit status ignores them.
    local -A known=()
    local name why unexpected=() known_failed=() now_passing=()
    if [[ -f $KNOWN_FAILURES ]]; then
        while IFS= read -r v; do
            [[ $v =~ ^[[:space:]]*(#|$) ]] && continue
            name=${v%%#*}
            name=${name%"${name##*[![:space:]]}"} # trim trailing blanks
            why=
            [[ $v == *#* ]] && why=${v#*#}
            known[$name]=${why# }
        done <"$KNOWN_FAILURES"
    fi
    for name in "${FAILED_NAMES[@]}"; do
        if [[ -v known[$name] ]]; then
            known_failed+=("$name   FAILED (known server bug: ${known[$name]})")
        else
            unexpected+=("$name")
        fi
    done
    for name in "${PASSED_NAMES[@]}"; do
        [[ -v known[$name] ]] && now_passing+=("$name")
    done
    if ((FAILED > 0)); then
        log "failed checks:"
        ((${#unexpected[@]} == 0)) || printf '  - %s\n' "${unexpected[@]}"
        ((${#known_failed[@]} == 0)) || printf '  - %s\n' "${known_failed[@]}"
        ((${#unexpected[@]} == 0)) || show_server_log
    fi
    if ((${#now_passing[@]} > 0)); then
        log "listed in tests/compat/known-failures.txt but passing now (delete their lines):"
        printf '  - %s\n' "${now_passing[@]}"
    fi
    if ((${#known_failed[@]} > 0)); then
        log "${#known_failed[@]} of the $FAILED failures are known server bugs (tests/compat/known-failures.txt):" \
            "they do not change the exit status"
    fi
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    ((${#unexpected[@]} == 0 && ${#now_passing[@]} == 0))
}

main "$@"
