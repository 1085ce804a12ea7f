"""Timing and peak memory of one command run, for the benchmark scripts.

Shared by bench/detect-routes.py and bench/preflight-scale.py.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path


class SetupError(Exception):
    pass


# The spawned program's peak RSS comes from wait4()'s ru_maxrss, but Linux keeps
# the high-water mark of the memory image a process exec()s away from. A child
# forked (or vforked, as subprocess does) from this Python process would report
# at least Python's own peak RSS, tens of MiB once the route batch was built.
# So the measured command is started by a throwaway /bin/sh (a few hundred KiB)
# as a background job; the sh exits at once, and this process, made a child
# subreaper, adopts and reaps the command itself.
PR_SET_CHILD_SUBREAPER = 36
LAUNCH = 'e=$1; shift; "$@" </dev/null >/dev/null 2>"$e" & echo $!'


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SetupError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def measure(cmd: list[str], errfile: str, ok_codes: tuple[int, ...] = (0,)) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run of cmd, stdout discarded."""
    t0 = time.perf_counter()
    sh = subprocess.Popen(["/bin/sh", "-c", LAUNCH, "sh", errfile, *cmd], stdout=subprocess.PIPE)
    out = sh.stdout.read()
    sh.stdout.close()
    if sh.wait() != 0 or not out.strip().isdigit():
        raise SetupError(f"/bin/sh could not start {shlex.join(cmd)}")
    pid = int(out)
    try:
        _, status, usage = os.wait4(pid, 0)
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
            os.wait4(pid, 0)
        except OSError:
            pass
        raise
    elapsed = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in ok_codes:
        err = Path(errfile).read_text(errors="replace").strip()[:2000]
        raise SetupError(f"{shlex.join(cmd)} exited {code}: {err}")
    return elapsed, usage.ru_maxrss
