"""Run an entry point in a process forked from a warm server that imported the heavy libraries once.

A CPU-scale job is a second or two of work behind four or five seconds of
imports (torch, transformers' Trainer, datasets, alpaca_eval), and the default
run starts well over a hundred of them. With ``compute.preload`` on (the CPU
default; off for a cluster, where a job's work dwarfs its imports), a
one-process job runs ``python -m pipeline.preload -m pipeline.train ARGS``
instead of ``python -m pipeline.train ARGS``:

* the client connects to a server for this interpreter and working directory
  (a Unix socket; the first client starts it, and it exits after
  :data:`IDLE_S` seconds without a job), and hands over the module, its
  arguments, environment, working directory and its stdin, stdout and stderr;
* the server forks a child that runs the module as ``python -m`` would, with
  the client's file descriptors (so the rule's ``> {log} 2>&1`` holds) and the
  thread count of the client's ``OMP_NUM_THREADS``, and reports its exit status;
* the client exits with that status; if the client dies (Snakemake cancels the
  job), the server kills the child.

Only third-party libraries are preloaded (:data:`PRELOAD`), never the
project's code, so every job imports the project's modules afresh and an edit
is seen by the next job. When no server can be reached, the client runs the
module itself: the job is slower, never different.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

PRELOAD = ("torch", "transformers", "transformers.trainer", "accelerate", "datasets", "pandas", "trl", "alpaca_eval")
IDLE_S = float(os.environ.get("AAO_PRELOAD_IDLE_S", "60"))  # a server with no job for this long exits
START_TIMEOUT_S = 60.0  # how long a client waits for a server it started
FDS = (0, 1, 2)


def socket_path(cwd: str | None = None) -> Path:
    """One server per (user, interpreter, working directory): another checkout or venv gets its own."""
    key = f"{os.getuid()}\0{sys.executable}\0{os.path.realpath(cwd or os.getcwd())}"
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")
    return base / f"aao-preload-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sock"


# --------------------------------------------------------------------------- client


def run(argv: Sequence[str]) -> int:
    """The client: ``-m MODULE ARGS...`` run by the server (or here, when there is none); returns its status."""
    if len(argv) < 2 or argv[0] != "-m":
        raise SystemExit("usage: python -m pipeline.preload -m MODULE [ARGS ...]")
    module, args = argv[1], list(argv[2:])
    connection = _connect()
    if connection is None:
        return run_module(module, args)
    request = {"module": module, "args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    with connection:
        socket.send_fds(connection, [json.dumps(request).encode() + b"\n"], list(FDS))
        reply = connection.makefile("rb").readline()
    return int(json.loads(reply)["status"]) if reply else 1


def _connect() -> socket.socket | None:
    """A connection to this checkout's server, starting one if none answers; None when that fails."""
    path = socket_path()
    connection = _try_connect(path)
    if connection is not None:
        return connection
    try:
        return _start_and_connect(path)
    except OSError:  # no place for the socket or its lock: the job runs without a server
        return None


def _start_and_connect(path: Path) -> socket.socket | None:
    with open(f"{path}.lock", "w") as lock:  # one client starts the server, the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        connection = _try_connect(path)
        if connection is None:
            subprocess.Popen(
                [sys.executable, "-m", "pipeline.preload", "--serve", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + START_TIMEOUT_S
            while connection is None and time.monotonic() < deadline:
                time.sleep(0.05)
                connection = _try_connect(path)
    return connection


def _try_connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        return None
    return connection


def run_module(module: str, args: Sequence[str]) -> int:
    """Run ``module`` as ``python -m module args`` would, in this process; returns its exit status."""
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # the job failed: its traceback goes to its log, as python -m would write it
        traceback.print_exc()
        return 1
    return 0


# --------------------------------------------------------------------------- server


def serve(path: Path) -> None:
    """Preload, listen, fork a child per request; exit after IDLE_S seconds without a job."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a dead server's socket (the lock keeps live ones from racing here)
    listener.bind(str(path))
    listener.listen(64)
    children: dict[int, socket.socket] = {}  # child pid -> its client's connection
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    last_job = time.monotonic()
    try:
        while children or time.monotonic() - last_job < IDLE_S:
            for key, _ in selector.select(timeout=0.2):
                if key.fileobj is listener:
                    connection, _ = listener.accept()
                    pid = _fork_job(connection, listener)
                    if pid is None:
                        connection.close()
                        continue
                    children[pid] = connection
                    selector.register(connection, selectors.EVENT_READ, pid)
                else:  # a client hung up before its job ended: the job (its whole process group) is cancelled
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(key.data, signal.SIGKILL)
            _reap(children, selector)
            if children:
                last_job = time.monotonic()
    finally:
        selector.close()
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fork_job(connection: socket.socket, listener: socket.socket) -> int | None:
    """Receive a request with its file descriptors and fork the child that runs it; None for a broken request."""
    message, fds, _, _ = socket.recv_fds(connection, 1 << 16, len(FDS))
    while message and not message.endswith(b"\n"):  # a large environment may come in several reads
        more = connection.recv(1 << 16)
        if not more:
            break
        message += more
    if len(fds) != len(FDS) or not message.endswith(b"\n"):
        for fd in fds:
            os.close(fd)
        return None
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:  # the child: become the job
        listener.close()
        connection.close()
        os._exit(_child(request, fds))
    for fd in fds:
        os.close(fd)
    return pid


def _child(request: dict, fds: Sequence[int]) -> int:
    for target, fd in zip(FDS, fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))
    sys.path[0] = request["cwd"]  # as `python -m` puts the working directory first
    status = run_module(request["module"], request["args"])
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return status


def _reap(children: dict[int, socket.socket], selector: selectors.BaseSelector) -> None:
    """Send every finished child's status to its client."""
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            continue
        connection = children.pop(pid)
        selector.unregister(connection)
        code = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            connection.sendall(json.dumps({"status": code if code >= 0 else 128 - code}).encode() + b"\n")
        connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve"]:
        serve(Path(argv[1]))
        return 0
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
