"""Run folders under real use, with real processes and signals: concurrent writers, Ctrl-C at any
moment, resuming as printed, checkpoint generations, NaN never saved, stale temporary files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import default_sigint
from tests.test_train import _stop_at, small
from tinynormact.data import load_dataset
from tinynormact.infra import files
from tinynormact.infra.files import RunNotice
from tinynormact.train import CheckpointError, ConfigError, TrainConfig, Trainer, TrainingDiverged, train
from tinynormact.train.checkpoint import previous_path

COMMAND = str(Path(sys.executable).with_name("tinynormact"))  # the installed console script
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# 3 steps per epoch, a few milliseconds each: a run of many epochs lasts long enough to be caught
TINY = "--dataset spirals --dataset-option n_train=120 --dataset-option n_test=60 --batch-size 40"
TINY = [*TINY.split(), "--depth", "2", "--width", "8", "--activation", "tanh", "--lr", "0.02"]


def start(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [COMMAND, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        preexec_fn=default_sigint,
    )


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, *argv], capture_output=True, text=True, env=ENV, timeout=300)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def wait_until_numpy_loads(process: subprocess.Popen) -> None:
    """Return once NumPy's compiled module is mapped into ``process`` (Linux: /proc/PID/maps)."""
    maps = Path(f"/proc/{process.pid}/maps")
    if not maps.exists():
        pytest.skip("needs /proc/PID/maps (Linux) to tell when the process is importing")
    deadline = time.monotonic() + 60
    while "_multiarray_umath" not in maps.read_text():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)


def without_times(result: dict) -> tuple:
    history = {k: v for k, v in result["history"].items() if k != "seconds"}
    return history, result["step_losses"]


# ----- item 1: one writer per folder ---------------------------------------------------------------


def test_second_writer_of_a_running_folder_is_refused_naming_the_pid(tmp_path) -> None:
    """Before: a --resume (or a second run) started while the first was running wrote into the
    same folder and both exited 0, leaving one run's config next to the other's checkpoint."""
    out = tmp_path / "run"
    first = start("train", *TINY, "--epochs", "100000", "--out", str(out))
    try:
        wait_for(out / "checkpoint.npz", first)
        for extra in (["--resume"], ["--activation", "relu"]):
            begun = time.monotonic()
            second = run("train", *TINY, "--epochs", "100000", "--out", str(out), *extra)
            assert second.returncode == 2, second.stderr
            assert f"in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
            assert time.monotonic() - begun < 60  # at once, not after the first run's 100000 epochs
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert json.loads((out / "config.json").read_text())["activation"] == "tanh"
    assert json.loads((out / "result.json").read_text())["config"]["activation"] == "tanh"


# ----- items 6 and 7: Ctrl-C and resuming as printed -------------------------------------------------


def test_ctrl_c_mid_run_prints_a_resume_command_that_works(tmp_path) -> None:
    """Before: the printed "--out X --resume" rebuilt the default configuration and failed with
    shape mismatches. Now it reads the saved config.json, and the resumed run is bit-identical
    to an uninterrupted one."""
    for epochs in (300, 3000, 30000):  # a few milliseconds each: longer when the run beat the signal
        out = tmp_path / f"run{epochs}"
        process = start("train", *TINY, "--epochs", str(epochs), "--out", str(out))
        wait_for(out / "checkpoint.npz", process)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        if process.returncode != 0:  # 0: it finished before the signal came
            break
    assert process.returncode == 130 and "Traceback" not in err, err
    hint = err.strip().splitlines()[-1]
    assert hint.endswith(f"continue with: tinynormact train --out {out} --resume"), hint
    assert json.loads((out / "result.json").read_text())["status"] == "interrupted"
    resumed = run(*hint.split("continue with: tinynormact ")[1].split())
    assert resumed.returncode == 0, resumed.stderr
    config = TrainConfig.from_file(out / "config.json")
    uninterrupted = train(config, progress=False).to_dict()
    assert without_times(json.loads((out / "result.json").read_text())) == without_times(uninterrupted)


def _send_ctrl_c_to_this_process(*args: object, **kwargs: object) -> None:
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_while_a_command_loads_what_it_needs_prints_one_line(tmp_path, monkeypatch, capsys) -> None:
    """Each command imports its modules as its options are built, after the launcher's guarded
    imports: a Ctrl-C there (sent here by the code, as the train options are built) ends with
    one line and 130, not a traceback, and nothing is written."""
    from tinynormact import cli
    from tinynormact.cli import options

    help_text, build_train_options = options.COMMANDS["train"]

    def interrupt_then_build(parser: object) -> None:
        _send_ctrl_c_to_this_process()
        build_train_options(parser)

    monkeypatch.setitem(options.COMMANDS, "train", (help_text, interrupt_then_build))
    assert cli.main(["train", *TINY, "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == "tinynormact: error: interrupted while starting; nothing was done\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_while_a_completed_run_is_being_saved_completes_it(tmp_path, monkeypatch, capsys) -> None:
    """Before: a Ctrl-C between the last step and the end of the command either overwrote the
    completed result with "interrupted" or ended the command with 130 ("error: interrupted")
    although nothing was lost. Now the signal is noted while the run's last files are written,
    the run completes, a notice says so and the exit code is 0. The signal is sent by the code
    itself at that moment, so the test does not depend on timing."""
    from tinynormact import cli
    from tinynormact.train import run

    write_result = run._write_result

    def write_then_interrupt(out: Path | None, result: object) -> None:
        _send_ctrl_c_to_this_process()
        write_result(out, result)

    monkeypatch.setattr(run, "_write_result", write_then_interrupt)
    out = tmp_path / "run"
    assert cli.main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Ctrl-C came as the run finished: the run completed; it is saved in" in captured.err
    assert "error" not in captured.err and "2 " in captured.out  # the table was printed
    assert json.loads((out / "result.json").read_text())["status"] == "completed"


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_while_the_table_is_printed_keeps_exit_code_0(tmp_path, monkeypatch, capsys) -> None:
    from tinynormact import cli
    from tinynormact.experiments import report

    format_table = report.format_table

    def interrupt_then_format(*args: object) -> str:
        _send_ctrl_c_to_this_process()
        return format_table(*args)

    monkeypatch.setattr(report, "format_table", interrupt_then_format)
    assert cli.main(["train", *TINY, "--epochs", "2", "--out", str(tmp_path / "run")]) == 0
    assert "error" not in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored afterwards


def test_ctrl_c_after_the_command_returned_keeps_its_exit_code() -> None:
    """Before: a Ctrl-C while Python shut down, after the command had done its work, ended the
    process by the signal (exit -2). The child sends itself the signal right after the
    launcher's main returned, as a late Ctrl-C would arrive."""
    script = (
        "import os, signal, sys, tinynormact.cli, tinynormact_launcher\n"
        "tinynormact.cli.main = lambda: 0\n"
        "code = tinynormact_launcher.main()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.exit(code)\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=ENV, cwd=root,
        preexec_fn=default_sigint, timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_ctrl_c_at_any_moment_prints_one_line_and_a_hint_only_when_there_is_a_checkpoint(tmp_path) -> None:
    """Before: Ctrl-C during the imports printed a KeyboardInterrupt traceback, and during data
    generation it suggested resuming a folder that was never created. The signal is sent once
    NumPy's library is mapped into the process (so during the package's imports; earlier, Python
    itself is still starting and no program can catch it), then after longer delays that fall in
    the imports, data generation or training: whichever, one line, and the resume hint exactly
    when a checkpoint exists."""
    for delay in (0.0, 2.0):
        out = tmp_path / f"run{delay}"
        process = start("train", *TINY, "--dataset-option", "n_train=400000", "--out", str(out))
        wait_until_numpy_loads(process)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 130, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert ("--resume" in err) == (out / "checkpoint.npz").exists(), err


def test_ctrl_c_during_data_generation_says_nothing_was_saved(tmp_path, monkeypatch, capsys) -> None:
    from tinynormact import cli
    from tinynormact.train import run

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "load_dataset", interrupted)
    assert cli.main(["train", *TINY, "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert "nothing was saved to resume from" in err and "--resume" not in err
    assert not (tmp_path / "run" / "result.json").exists()


def test_resume_with_a_conflicting_flag_names_it_and_more_epochs_extend_a_finished_run(tmp_path) -> None:
    out = tmp_path / "run"
    assert run("train", *TINY, "--epochs", "2", "--out", str(out)).returncode == 0
    conflict = run("train", "--out", str(out), "--resume", "--lr", "0.5")
    assert conflict.returncode == 2
    assert "lr: the run has 0.02, now 0.5" in conflict.stderr and "Traceback" not in conflict.stderr
    shorter = run("train", "--out", str(out), "--resume", "--epochs", "1")
    assert shorter.returncode == 2 and "completed 2 epochs" in shorter.stderr
    extended = run("train", "--out", str(out), "--resume", "--epochs", "4")
    assert extended.returncode == 0, extended.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["history"]["epoch"] == [0, 1, 2, 3, 4] and result["status"] == "completed"
    four = train(TrainConfig.from_file(out / "config.json"), progress=False).to_dict()
    assert without_times(result) == without_times(four)  # as if it had been asked for 4 at once


def test_cosine_schedule_refuses_more_epochs_on_resume(tmp_path) -> None:
    config = small(schedule="cosine")
    train(config, out_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="cosine schedule is set by epochs"):
        train(config.replace(epochs=4), out_dir=tmp_path, resume=True, progress=False)


# ----- items 3, 4 and 5: checkpoints ---------------------------------------------------------------


def test_an_update_that_overflows_is_never_saved_as_a_good_checkpoint(tmp_path) -> None:
    """Before: with one step per epoch (batch = n_train) and lr = 1e300, the first update
    overflowed the float32 weights to Inf at the end of epoch 1 while the loss and gradients were
    finite; that state was saved as the checkpoint (and, with epochs=1, as a "completed" run)."""
    config = small(batch_size=200, epochs=1, lr=1e300, momentum=0.0)
    with pytest.raises(TrainingDiverged, match="step 1 .*the update made parameter") as info:
        train(config, out_dir=tmp_path, progress=False)
    assert info.value.result.status == "diverged"
    assert not (tmp_path / "checkpoint.npz").exists()  # no good state after step 0 to keep
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"


def test_save_refuses_non_finite_weights_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    config = small()
    train(config, out_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.npz"
    good = path.read_bytes()
    trainer = Trainer(config, load_dataset("spirals", n_train=200, n_test=100))
    next(iter(trainer.model.parameters())).data[0, 0] = np.nan
    with pytest.raises(TrainingDiverged, match="non-finite"):
        trainer.save(path)
    assert path.read_bytes() == good


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path) -> None:
    """Before: one generation only; a damaged checkpoint ended the run."""
    config = small()  # 4 steps per epoch, 3 epochs
    reference = train(config, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, out_dir=tmp_path, progress=False, callback=_stop_at(10))  # in epoch 3
    path = tmp_path / "checkpoint.npz"
    assert previous_path(path).exists()
    path.write_bytes(path.read_bytes()[:200])  # a torn write
    with pytest.warns(RunNotice, match=r"checkpoint.npz cannot be read.*continuing from the previous"):
        resumed = train(config, out_dir=tmp_path, resume=True, progress=False)
    assert resumed.step_losses == reference.step_losses
    assert (tmp_path / "checkpoint.npz.damaged").exists()


def test_neither_generation_loads_says_how_to_start_over(tmp_path) -> None:
    config = small()
    train(config, out_dir=tmp_path, progress=False)
    for path in (tmp_path / "checkpoint.npz", tmp_path / "checkpoint.previous.npz"):
        path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="checkpoint.previous.npz cannot be read.*To start over"):
        train(config, out_dir=tmp_path, resume=True, progress=False)


def test_atomic_write_syncs_the_file_before_and_the_folder_after_the_rename(tmp_path, monkeypatch) -> None:
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", "folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(source, target) -> None:
        events.append(("replace", Path(target).name))
        real_replace(source, target)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    files.write_text_atomic(tmp_path / "a.txt", "hello")
    assert events == [("fsync", "file"), ("replace", "a.txt"), ("fsync", "folder")]
    assert (tmp_path / "a.txt").read_text() == "hello"


def test_stale_temporary_files_of_a_killed_run_are_removed_on_its_next_start(tmp_path) -> None:
    config = small()
    with pytest.raises(KeyboardInterrupt):
        train(config, out_dir=tmp_path, progress=False, callback=_stop_at(2))
    stale = [tmp_path / ".checkpoint.npz.k2j4x.tmp", tmp_path / ".checkpoint.previous.npz.a8.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")  # what kill -9 during a save leaves behind
    unrelated = tmp_path / ".notes.tmp"
    unrelated.write_text("mine")
    train(config, out_dir=tmp_path, resume=True, progress=False)
    assert not any(path.exists() for path in stale) and unrelated.exists()
