#!/usr/bin/env python3
"""A task's file operations alone, without baton: the way a task used to touch the disk against
the way it does now (bench/RESULTS.md, "What this disk does with a file thrown away").

    python3 bench/file-ops.py FOLDER before|now [TASKS]

FOLDER is made if need be and left behind (remove it yourself: removing files is what this
measures the cost of). Per task: its folder, `prompt`, `task.json`, the inbox entry (an empty
file, or a link to `task.json`), claimed and released, `output` renamed to `result`, two
versions of the agent's status (a temp file renamed over it, or written into the version
replaced last under a lease and swapped in), and `done.json` linked into place.
"""
import ctypes
import fcntl
import os
import signal
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_NOREPLACE, RENAME_EXCHANGE, F_SETLEASE = -100, 1, 2, 1024
signal.signal(signal.SIGIO, lambda *_: None)


def renameat2(old, new, flags):
    if libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags) != 0:
        raise OSError(ctypes.get_errno(), f"renameat2 {old} {new}")


def fresh(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    if data:
        os.write(fd, data)
    os.close(fd)


def main():
    base, how = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1500
    agent, tasks = os.path.join(base, how, "agent"), os.path.join(base, how, "tasks")
    new, cur = os.path.join(agent, "new"), os.path.join(agent, "cur")
    for d in (agent, tasks, new, cur):
        os.makedirs(d, exist_ok=True)
    status, spare = os.path.join(agent, "status.json"), os.path.join(agent, ".spare")
    version = b'{"agent_id":"a","status":"working"' + b"x" * 200 + b"}\n"
    for p in (status, spare):
        with open(p, "wb") as f:
            f.write(version)

    def status_before():
        tmp = os.path.join(agent, ".tmp")
        fresh(tmp, version)
        os.rename(tmp, status)

    def status_now():
        fd = os.open(spare, os.O_RDWR | os.O_NOFOLLOW)
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_WRLCK)
        os.pwrite(fd, version, 0)
        os.ftruncate(fd, len(version))
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_UNLCK)
        os.close(fd)
        renameat2(spare, status, RENAME_EXCHANGE)

    write_status = status_now if how == "now" else status_before
    took = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        task = os.path.join(tasks, f"t{i}")
        os.mkdir(task)
        fresh(os.path.join(task, "prompt"), b"ping")
        fresh(os.path.join(task, "task.json"), b'{"task_id":"t"}' * 10)
        entry = os.path.join(new, f"5-t{i}")
        if how == "now":
            os.link(os.path.join(task, "task.json"), entry)
        else:
            fresh(entry, b"")
        os.rename(entry, os.path.join(cur, f"5-t{i}"))
        fresh(os.path.join(task, "output"), b"ping")
        write_status()
        os.rename(os.path.join(task, "output"), os.path.join(task, "result"))
        write_status()
        tmp = os.path.join(task, ".tmp-done")
        fresh(tmp, version)
        renameat2(tmp, os.path.join(task, "done.json"), RENAME_NOREPLACE)
        os.unlink(os.path.join(cur, f"5-t{i}"))
        took.append(time.perf_counter() - t)
    took.sort()
    mean = (time.perf_counter() - start) / n * 1e3
    print(f"{how}: {n} tasks, mean {mean:.3f} ms, median {took[n // 2] * 1e3:.3f} ms")


main()
