"""The runner the Python compatibility suites share: each check is a method
`check_<name>` of a suite object, run in order; a failure prints what was expected
and what was got; the last line printed is `N passed, M failed`, and a summary file
(for tests/compat/run.sh) holds "PASSED FAILED" and then the failed check names."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import traceback


class CheckFailed(Exception):
    pass


def expect_eq(what, expected, got):
    if expected != got:
        raise CheckFailed(f"{what}\n      expected: {expected!r}\n      got:      {got!r}")


def arguments(description: str, more=None) -> argparse.Namespace:
    """The options every suite takes; `more(parser)` adds a suite's own."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default=os.environ.get("QUARRY_COMPAT_ENDPOINT"))
    ap.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID"))
    ap.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    ap.add_argument("--workdir", help="scratch directory for files (default: a temp dir, removed afterwards)")
    ap.add_argument("--summary-file", help='write "PASSED FAILED" and then the failed check names here')
    ap.add_argument("-k", dest="only", help="run only checks whose name contains this")
    if more:
        more(ap)
    args = ap.parse_args()
    if not (args.endpoint and args.access_key and args.secret_key):
        ap.error("need --endpoint, --access-key and --secret-key (or the environment variables)")
    return args


def run_checks(make_suite, checks: list[str], args: argparse.Namespace, script: str, always=(), skip=()) -> int:
    """Runs `check_<name>` of `make_suite(workdir)` for each name; returns the exit status.
    Checks named in `always` run even when -k leaves them out (setup and cleanup); an
    exception of a type in `skip` marks a check not run."""
    tmp = None
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        workdir = args.workdir
    else:
        workdir = tmp = tempfile.mkdtemp(prefix="quarry-compat-")
    suite = make_suite(workdir)
    passed, failed, not_run = 0, [], []
    try:
        for name in checks:
            if args.only and args.only not in name and name not in always:
                continue
            t0 = time.monotonic()
            try:
                getattr(suite, f"check_{name}")()
            except tuple(skip) as e:
                print(f"SKIP  {name:<46} {time.monotonic() - t0:6.1f}s  (not run: {e})", flush=True)
                not_run.append(name)
            except CheckFailed as e:
                print(f"FAIL  {name:<46} {time.monotonic() - t0:6.1f}s\n    {e}", flush=True)
                failed.append(name)
            except Exception as e:  # an unexpected error is a failure too
                tb = traceback.extract_tb(e.__traceback__)
                where = next((f"line {f.lineno}: {f.line}" for f in reversed(tb) if f.filename == script), "")
                print(
                    f"FAIL  {name:<46} {time.monotonic() - t0:6.1f}s\n"
                    f"    unexpected {type(e).__name__} at {where}\n      {e}",
                    flush=True,
                )
                failed.append(name)
            else:
                print(f"PASS  {name:<46} {time.monotonic() - t0:6.1f}s", flush=True)
                passed += 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.summary_file:
        with open(args.summary_file, "w") as f:
            f.write(f"{passed} {len(failed)}\n")
            f.writelines(f"{n}\n" for n in failed)
    if not_run:
        print(f"not run: {', '.join(not_run)}", flush=True)
    print(f"{passed} passed, {len(failed)} failed" + (f", {len(not_run)} skipped" if not_run else ""), flush=True)
    return 1 if failed else 0
