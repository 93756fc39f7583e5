"""Exit codes and messages of the command line for what users actually type (issue 17 items 2,
9, 10, 12 and the small ones): each message names the input at fault and what is valid."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

import tinynormact
from tests.test_cli import TINY_TRAIN, assert_one_line_error, run_main
from tests.test_experiments import tiny_grid
from tinynormact import cli
from tinynormact.cli import handlers
from tinynormact.experiments import PRESETS
from tinynormact.experiments.runner import run_one
from tinynormact.tracking.records import read_record

reproduce_module = importlib.import_module("tinynormact.experiments.reproduce")
sweep_module = importlib.import_module("tinynormact.experiments.sweep")
executors_module = importlib.import_module("tinynormact.experiments.executors")
propagation_module = importlib.import_module("tinynormact.experiments.propagation")


def test_version(capsys) -> None:
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.strip() == f"tinynormact {tinynormact.__version__}"


# ----- item 2: the output location is tried before the training --------------------------------------


def test_reproduce_into_an_unwritable_place_fails_before_any_run(capsys, tmp_path, monkeypatch) -> None:
    """Before: every run was trained first, then writing failed with a raw errno naming a
    hidden temporary folder. The parent here is a file, which even root cannot write into."""
    blocker = tmp_path / "afile"
    blocker.write_text("")
    runs = []
    monkeypatch.setattr(reproduce_module, "run_sweep", lambda *args, **options: runs.append(args))
    monkeypatch.setitem(PRESETS, "quick", tiny_grid(seeds=(0,)))
    code, _, err = run_main(capsys, "reproduce", "--out", str(blocker / "report"), "--jobs", "1")
    assert code == 2 and runs == []
    assert_one_line_error(err, str(blocker), "is a file")
    assert ".partial-" not in err and "Errno" not in err


def test_reproduce_folder_held_by_another_process_is_refused(capsys, tmp_path, monkeypatch) -> None:
    from tests.test_folder_lock import start_holder

    out = tmp_path / "report"
    holder = start_holder(out)
    try:
        monkeypatch.setitem(PRESETS, "quick", tiny_grid(seeds=(0,)))
        code, _, err = run_main(capsys, "reproduce", "--out", str(out), "--jobs", "1")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert code == 2
    assert_one_line_error(err, f"in use by process {holder.pid}")


def test_write_errors_name_the_target_not_the_temporary_file(tmp_path) -> None:
    from tinynormact.infra.files import write_text_atomic

    (tmp_path / "afile").write_text("")
    with pytest.raises(OSError, match=r"cannot write .*afile/out.txt") as info:
        write_text_atomic(tmp_path / "afile" / "out.txt", "x")
    assert ".tmp" not in str(info.value) and "Errno" not in str(info.value)


# ----- item 9: plot and IDX files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def results_text(tmp_path_factory) -> str:
    """The results.json of a real (tiny) reproduction."""
    out = tmp_path_factory.mktemp("reproduction") / "run"
    reproduce_module.reproduce(tiny_grid(seeds=(0,)), out, jobs=1, progress=False)
    return (out / "results.json").read_text()


@pytest.mark.parametrize("missing", ["runs", "preset", "propagation"])
def test_plot_of_a_results_json_with_a_missing_key_exits_2_naming_it(
    capsys, tmp_path, missing, results_text
) -> None:
    """Before: KeyError with a traceback, exit 1 (the code of a diverged training)."""
    results = json.loads(results_text)
    del results[missing]
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert run_main(capsys, "plot", str(tmp_path))[0] == 2
    code, _, err = run_main(capsys, "plot", str(tmp_path))
    assert code == 2
    assert_one_line_error(err, str(tmp_path / "results.json"), repr(missing))
    (tmp_path / "results.json").write_text(results_text)  # the complete record still plots
    assert run_main(capsys, "plot", str(tmp_path))[0] == 0


def test_plot_of_a_file_says_it_wants_a_folder(capsys, tmp_path) -> None:
    path = tmp_path / "results.json"
    path.write_text("{}")
    code, _, err = run_main(capsys, "plot", str(path))
    assert code == 2
    assert_one_line_error(err, str(path), "is a file", "folder")


def _idx(path: Path, header: bytes, body: bytes = b"") -> Path:
    path.write_bytes(header + body)
    return path


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (
            bytes([0, 0, 8, 3]) + np.array([2**31] * 3, ">u4").tobytes(),
            ["needs 9903520314283042199192993808"],
        ),
        (bytes([0, 0, 8, 2]) + np.array([3, 4], ">u4").tobytes(), ["12 bytes but header (3, 4)", "needs 24"]),
        (bytes([0, 0, 8, 3]) + b"\0\0", ["truncated header"]),
        (bytes([1, 2, 3, 4]), ["bad magic number 01020304"]),
    ],
)
def test_idx_errors_name_the_file_and_count_bytes_exactly(tmp_path, header, words) -> None:
    """Before: a header of three 2**31 sizes overflowed NumPy's int64 product (2**93 wraps to 0),
    so the error reported a wrong byte count. 2**93 + 16 = 9903520314283042199192993808."""
    from tinynormact.data.dataset import DataError
    from tinynormact.data.idx import read_idx

    path = _idx(tmp_path / "images-idx-ubyte", header)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value) and all(word in str(info.value) for word in words), info.value


# ----- item 10: exit codes -----------------------------------------------------------------------------


def test_unexpected_error_gets_its_own_code_and_a_log_with_the_traceback(capsys, monkeypatch) -> None:
    """Before: any crash exited 1, the documented code of "training diverged"."""

    def broken(args: object) -> int:
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(handlers, "theory_command", broken)
    code, _, err = run_main(capsys, "theory")
    assert code == cli.EXIT_CODES["unexpected"] == 3
    assert_one_line_error(err, "unexpected RuntimeError: a bug in a handler", "traceback is in")
    log = Path(re.search(r"traceback is in (\S+)", err).group(1))
    text = log.read_text()
    assert "Traceback" in text and "a bug in a handler" in text and "def broken" not in err
    log.unlink()


def test_memory_error_is_reported_as_out_of_memory(capsys, monkeypatch) -> None:
    def exhausted(args: object) -> int:
        raise MemoryError

    monkeypatch.setattr(handlers, "theory_command", exhausted)
    code, _, err = run_main(capsys, "theory")
    assert code == 3
    assert_one_line_error(err, "out of memory", "traceback is in")
    Path(re.search(r"traceback is in (\S+)", err).group(1)).unlink()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--width", "2000000000"], ["width 2000000000", "would need at least", "EiB", "available"]),
        (
            ["train", "--dataset", "spirals", "--dataset-option", "n_train=100000000000"],
            ["100000001000 examples"],
        ),
        (["train", "--dataset-option", "num_samples=1000000000000"], ["mnist1d with 1000000000000 examples"]),
        (["propagate", "--activations", "relu", "--width", "100000000"], ["width 100000000", "would need"]),
    ],
)
def test_sizes_that_cannot_fit_are_refused_up_front_with_the_estimate(capsys, argv, words) -> None:
    """Before: MemoryError with a traceback (exit 1), or minutes of swapping first."""
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, *words)


# ----- item 12: messages that name the input --------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--dataset", "spirals", "--dataset-option", "seed=-1"], ["option seed", ">= 0", "-1"]),
        (["train", "--dataset", "teacher", "--dataset-option", "hidden=[-5]"], ["hidden", "[-5]"]),
        (["train", "--dataset", "teacher", "--dataset-option", "hidden=[0]"], ["hidden", "[0]"]),
        (["train", "--dataset", "teacher", "--dataset-option", "n_features=0"], ["n_features", ">= 1", "0"]),
        (
            ["train", "--activation", "nswish", "--activation-option", "rulez=backward"],
            ["'rulez'", "mode, rule, center", "beta (of swish)"],
        ),
        (["theory", "--q", "1e308"], ["--q 1e+308 is too large", "overflow"]),
        (["theory", "--q", "inf"], ["--q", "finite", "'inf'"]),
        (["propagate", "--activations", "relu", "--out", "fig.jpg2"], ["fig.jpg2", ".png, .svg, .pdf"]),
        (["train", "--out", ""], ["--out", "''"]),
        (["reproduce", "--out", ""], ["--out", "''"]),
        # before: "needs path=..., see load_mnist" (a Python function) instead of the flag to give
        (["train", "--dataset", "mnist"], ["'mnist' needs path=DIR", "--dataset-option path=DIR"]),
    ],
)
def test_messages_name_the_wrong_input(capsys, argv, words) -> None:
    code, out, err = run_main(capsys, *argv)
    assert code == 2 and out == ""  # nothing printed before the error (theory's header included)
    assert_one_line_error(err, *words)
    assert "activation 'nswish': activation" not in err  # no doubled prefix


def test_normalized_activation_option_message_lists_every_valid_option(capsys) -> None:
    code, _, err = run_main(
        capsys, "train", "--activation", "nswish", "--activation-option", "rulez=backward"
    )
    assert code == 2 and err.count("activation ") == 1


def test_propagate_checks_the_figure_path_before_computing(capsys, monkeypatch) -> None:
    computed = []
    monkeypatch.setattr(propagation_module, "measure_network", lambda *a: computed.append(a))
    code, _, _ = run_main(capsys, "propagate", "--activations", "relu", "--out", "fig.jpg2")
    assert code == 2 and computed == []


def test_train_out_pointing_at_a_file(capsys, tmp_path) -> None:
    """Before: "[Errno 17] File exists"."""
    path = tmp_path / "afile"
    path.write_text("")
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--out", str(path))
    assert code == 2
    assert_one_line_error(err, str(path), "is a file, not a folder")
    assert "Errno" not in err


# ----- small things ----------------------------------------------------------------------------------


def test_track_every_without_out_warns_that_the_record_is_not_kept(capsys) -> None:
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--track-every", "2")
    assert code == 0 and "notice: --track-every 2 without --out: the variance record is not kept" in err


def test_track_every_with_out_writes_a_readable_record_next_to_the_result(capsys, tmp_path) -> None:
    code, _, _ = run_main(capsys, "train", *TINY_TRAIN, "--track-every", "2", "--out", str(tmp_path))
    assert code == 0
    assert not (tmp_path / "tracker.json").exists()  # the record is written once, in tracking/
    record = read_record(tmp_path / "tracking")
    assert record["step"].tolist() == [0, 2, 4]  # 3 steps per epoch, 2 epochs: steps 0..5, every 2nd
    assert record["preact_sq"].shape == (3, 3)  # 3 steps x 3 linears


def test_plot_of_a_train_folder_without_tracking_says_how_to_record_one(capsys, tmp_path) -> None:
    """Before: it said the folder needs a reproduce or sweep results.json. The command the message
    gives is run here, and plot then draws its record."""
    run = tmp_path / "one"
    assert run_main(capsys, "train", *TINY_TRAIN, "--out", str(run))[0] == 0
    code, _, err = run_main(capsys, "plot", str(run))
    assert code == 2
    assert_one_line_error(err, str(run), "without --track-every", "no tracking record")
    suggested = err.strip().rpartition("tinynormact train ")[2].split()
    assert suggested == [
        "--config",
        str(run / "config.json"),
        "--track-every",
        "10",
        "--out",
        f"{run}-tracked",
    ]
    assert run_main(capsys, "train", *suggested[:3], "2", *suggested[4:])[0] == 0  # 6 steps: record some
    code, out, _ = run_main(capsys, "plot", f"{run}-tracked")
    assert code == 0 and "tracking_gains.png" in out


def test_ctrl_c_in_reproduce_says_where_the_report_is_only_when_one_was_written(
    capsys, tmp_path, monkeypatch
):
    """Before: "the runs that finished are reported in OUT" also when Ctrl-C came during the data
    loading, before any run and with no folder written."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(PRESETS, "quick", tiny_grid(seeds=(0,)))
    monkeypatch.setattr(sweep_module, "load_data", interrupted)
    code, _, err = run_main(capsys, "reproduce", "--out", str(tmp_path / "run"), "--jobs", "1")
    assert code == 130 and err.strip().splitlines()[-1] == "tinynormact: error: interrupted"
    assert "reported in" not in err and not (tmp_path / "run").exists()
    monkeypatch.undo()

    calls = []

    def one_run_then_interrupt(spec):
        calls.append(spec)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return run_one(spec)

    monkeypatch.setitem(PRESETS, "quick", tiny_grid(seeds=(0,)))
    monkeypatch.setattr(executors_module, "run_one", one_run_then_interrupt)
    code, _, err = run_main(capsys, "reproduce", "--out", str(tmp_path / "run"), "--jobs", "1")
    assert code == 130
    assert_one_line_error(err, "the finished runs are kept and reported in", str(tmp_path / "run"))
    assert (tmp_path / "run" / "report.md").exists()
