"""Run model-written Python inside a bubblewrap (``bwrap``) sandbox, for the ``python_runs`` rule.

Stripping the environment is not isolation: a child can still read its parent's API key through
``/proc/PPID/environ``, read what its uid may read, write anywhere it may write, reach servers on
127.0.0.1 and leave a daemon behind. In the sandbox the code gets:

- new pid, network, ipc, uts and cgroup namespaces: no network at all (loopback included), and a fresh
  ``/proc`` that shows only the sandbox's own processes;
- a root of its own, read-only: ``/usr`` (and ``/bin``, ``/lib*``), ``/etc/ld.so.cache`` and the
  interpreter's directories, nothing else — no ``/etc/shadow``, no home, no output directory — plus a
  private 64 MiB tmpfs ``/tmp``, which is also the working directory;
- uid 65534 (nobody): when datamill runs as root, bwrap keeps only CAP_SETUID/CAP_SETGID and the
  launcher drops to nobody before it execs the code (the code never holds a capability); otherwise an
  unprivileged user namespace maps the caller to 65534, with nested user namespaces disabled;
- limits: 5 s of CPU, 512 MiB of address space, 1 MiB per file, 64 processes;
- an end with the call: when the code exits or times out the sandbox's pid 1 dies, and the kernel kills
  every process left in its namespace, daemons included (``--die-with-parent`` covers datamill dying).

Where bwrap is missing or cannot set up namespaces (``problem()`` says why), model code is refused
unless the caller allows running it unisolated.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile

from datamill.errors import DatamillError

log = logging.getLogger("datamill.prefs.sandbox")

NOBODY = 65534
TMP_BYTES = 64 << 20
SYSTEM_TOPS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # mounted whole (or symlinked)
LIMITS = {"RLIMIT_CPU": 5, "RLIMIT_AS": 512 << 20, "RLIMIT_FSIZE": 1 << 20, "RLIMIT_NPROC": 64}
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}  # as for nobody on Debian

# Runs first inside the sandbox. Limits are set here, not before bwrap, so that RLIMIT_NPROC counts the
# sandbox's processes rather than every process of the calling user. Its output goes to /dev/null so that
# bwrap's stderr, which datamill reads, carries only bwrap's own errors.
LAUNCHER = f"""
import os, resource, sys
for name, value in {LIMITS!r}.items():
    resource.setrlimit(getattr(resource, name), (value, value))
if os.getuid() == 0:
    os.setgroups([])
    os.setgid({NOBODY})
    os.setuid({NOBODY})
os.dup2(1, 2)
os.execv(sys.executable, [sys.executable, "-I", "-c", sys.argv[1]])
"""


class SandboxError(DatamillError):
    """The sandbox could not be set up."""


def _interpreter_dirs() -> list[str]:
    """The directories the interpreter needs (venv, base install, the real executable's), both as named and
    resolved, outermost only."""
    named = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    named.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    keep: list[str] = []
    for d in sorted(named | {os.path.realpath(d) for d in named}):
        if d != "/" and not any(_inside(d, k) for k in keep):  # "/" would bind the whole host
            keep.append(d)
    return keep


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _system_args() -> list[str]:
    """Read-only ``/usr`` (and ``/bin``, ``/lib*``), ``/etc/ld.so.cache``, a fresh ``/proc`` and ``/dev``, and a
    private tmpfs ``/tmp``."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return [*args, "--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--perms", "1777", "--tmpfs", "/tmp"]


def _interpreter_args() -> list[str]:
    """The interpreter's directories, read-only, mounted after ``/tmp`` so that a venv under /tmp (a CI clone)
    is still visible inside the sandbox."""
    args: list[str] = []
    made = {"/", "/tmp"}
    for d in _interpreter_dirs():
        if any(_inside(d, top) for top in SYSTEM_TOPS):
            continue
        parts = d.strip("/").split("/")
        for i in range(1, len(parts)):  # bwrap would make missing parents 0700: nobody could not enter them
            parent = "/" + "/".join(parts[:i])
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--ro-bind", d, d]
    return args


def _argv(bwrap: str, code: str, info_fd: int) -> list[str]:
    if os.getuid() == 0:
        user = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        user = ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns"]
    return [
        bwrap,
        *("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"),
        *user,
        *("--die-with-parent", "--new-session", "--info-fd", str(info_fd)),
        *_system_args(),
        *_interpreter_args(),
        *("--remount-ro", "/", "--chdir", "/tmp"),
        *("--", sys.executable, "-I", "-c", LAUNCHER, code),
    ]


def _run_sandboxed(bwrap: str, code: str, timeout: float) -> int | None:
    info_r, info_w = os.pipe()
    try:
        proc = subprocess.Popen(
            _argv(bwrap, code, info_w),
            pass_fds=(info_w,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
        )
    finally:
        os.close(info_w)
    with proc, os.fdopen(info_r, "rb") as info:
        started = info.read()  # once the sandbox exists, bwrap writes the host pid of its pid 1 and closes this
        pid1 = _pidfd(json.loads(started)["child-pid"]) if started else None
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            if pid1 is not None:
                signal.pidfd_send_signal(pid1, signal.SIGKILL)
            proc.communicate()
            return None
        finally:
            proc.kill()  # a no-op once bwrap has exited; before, its death kills pid 1 (--die-with-parent)
            if pid1 is not None:  # bwrap can exit before pid 1 is gone: wait, as its death ends the namespace
                select.select([pid1], [], [])
                os.close(pid1)
    if not started:
        raise SandboxError(f"bwrap could not set up the sandbox: {err.decode(errors='replace').strip()}")
    return proc.returncode


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:  # already gone
        return None


@functools.cache
def problem() -> str | None:
    """Why model code cannot be sandboxed here, or None when it can (checked once per process)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        rc = _run_sandboxed(bwrap, "pass", timeout=60)
    except (OSError, SandboxError) as e:
        return str(e)
    if rc != 0:
        return f"{sys.executable} does not start inside the sandbox (exit {rc})"
    return None


def _limit_child() -> None:  # unisolated runs only, in the child before exec
    import resource

    for name, value in LIMITS.items():
        if name != "RLIMIT_NPROC":  # outside a namespace it would count every process of the user
            resource.setrlimit(getattr(resource, name), (value, value))


def _run_unisolated(code: str, timeout: float) -> int | None:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", code],
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
            preexec_fn=_limit_child if sys.platform != "win32" else None,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            if sys.platform == "win32":
                proc.kill()
            else:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None


@functools.cache
def _warn_unisolated(reason: str) -> None:
    log.warning("running model-written code WITHOUT a sandbox (unsafe_no_sandbox: true): %s", reason)


def run_python(code: str, timeout: float, *, unsafe_no_sandbox: bool = False) -> int | None:
    """The exit status of ``python -I -c code`` in the sandbox; None when it ran past ``timeout`` seconds.

    Without a usable sandbox this raises, unless ``unsafe_no_sandbox`` allows the old unisolated run
    (fresh interpreter, empty environment and temporary directory, the same limits but the process count).
    """
    reason = problem()
    if reason is None:
        return _run_sandboxed(shutil.which("bwrap") or "bwrap", code, timeout)
    if not unsafe_no_sandbox:
        raise SandboxError(
            f"python_runs runs model-written code and needs a sandbox, but {reason}. Make bwrap work "
            "(docs/preference.md), or set unsafe_no_sandbox: true on the rule_score step to run it unisolated "
            "(only inside a throwaway VM or container)"
        )
    _warn_unisolated(reason)
    return _run_unisolated(code, timeout)
