"""The run-folder lock, with real concurrent processes: one writer at a time, a second one refused
at once naming the holder's PID, a stale lock (its process killed) taken over with a notice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tinynormact.infra.files import RunNotice
from tinynormact.infra.folder_lock import FolderLocked, folder_lock, lock_path

# A process that takes the lock, says so, and holds it until its stdin closes (or it is killed).
HOLDER = textwrap.dedent(
    """
    import sys
    from tinynormact.infra.folder_lock import folder_lock
    with folder_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()
    """
)


def start_holder(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_process_is_refused_at_once_naming_the_holder_pid(tmp_path) -> None:
    folder = tmp_path / "run"
    holder = start_holder(folder)
    try:
        start = time.monotonic()
        with (
            pytest.raises(FolderLocked, match=f"in use by process {holder.pid}") as info,
            folder_lock(folder),
        ):
            pass
        assert time.monotonic() - start < 1.0  # refused at once: nothing waits for the holder
        assert info.value.pid == holder.pid and str(folder) in str(info.value)
        other = subprocess.run([sys.executable, "-c", HOLDER, str(folder)], capture_output=True, text=True)
        assert other.returncode != 0 and f"in use by process {holder.pid}" in other.stderr
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    assert not lock_path(folder).exists()  # released and removed on a clean exit
    with folder_lock(folder) as path:  # free again
        assert path.read_text().strip() == str(os.getpid())


def test_lock_of_a_killed_process_is_taken_over_with_a_notice(tmp_path) -> None:
    folder = tmp_path / "run"
    holder = start_holder(folder)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock_path(folder).read_text().strip() == str(holder.pid)  # left behind by the crash
    with pytest.warns(RunNotice, match=f"taking over the lock of process {holder.pid}"), folder_lock(folder):
        assert lock_path(folder).read_text().strip() == str(os.getpid())


def test_same_folder_by_another_spelling_is_the_same_lock(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with folder_lock("runs/one"), pytest.raises(FolderLocked), folder_lock(tmp_path / "runs" / "one"):
        pass
    with folder_lock("runs/one"), folder_lock("runs/two"):  # other folders are independent
        pass
