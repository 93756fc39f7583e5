"""The ``tinynormact`` command line: output, exit codes and one-line errors without tracebacks."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from tests.test_experiments import tiny_grid
from tinynormact import backend, cli
from tinynormact.cli import handlers
from tinynormact.experiments import PRESETS

TINY_TRAIN = "--dataset spirals --dataset-option n_train=120 --dataset-option n_test=60 --depth 2 --width 8 "
TINY_TRAIN = [*TINY_TRAIN.split(), "--epochs", "2", "--batch-size", "40"]


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``main(argv)``; argparse's own errors exit via SystemExit."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[-1].startswith("tinynormact") and "error:" in lines[-1]
    assert all(word in lines[-1] for word in words), lines[-1]


def test_module_entry_point_runs_and_reports_errors_without_traceback() -> None:
    ok = subprocess.run([sys.executable, "-m", "tinynormact", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "examples:" in ok.stdout and "reproduce" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "tinynormact", "theory", "--activations", "nope"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, "'nope'")


@pytest.mark.parametrize("command", ["reproduce", "train", "theory", "propagate", "plot"])
def test_every_subcommand_has_help_with_examples(capsys, command) -> None:
    code, out, _ = run_main(capsys, command, "--help")
    assert code == 0 and "examples:" in out and "tinynormact " + command in out


def test_theory_prints_the_gains_table(capsys) -> None:
    code, out, _ = run_main(capsys, "theory", "--activations", "relu", "tanh", "nswish", "--q", "1.0")
    assert code == 0
    gains, stability = out.split("\n\n")
    header, *lines = gains.splitlines()[1:]
    rows = {line.split()[0]: dict(zip(header.split(), line.split(), strict=True)) for line in lines}
    assert rows["relu"]["rho"] == "0.500000"  # rho of relu is 1/2 (THEORY)
    assert rows["tanh"]["rho"] == "0.394294" and rows["tanh"]["kappa"] == "1.177807"
    normalized = next(row for name, row in rows.items() if "swish" in name)
    assert normalized["lambda_balanced"] == "1.000000"  # balanced-normalized: nothing left to scale
    nswish = stability.splitlines()[-1]  # E22: q* = 0 stable, 1.202 unstable (test_theory checks them)
    assert "swish" in nswish and "0 (0.681, stable, xi 2.6); 1.202 (1.17, unstable, xi 6.3)" in nswish


def test_propagate_shows_adaptive_forms_as_measured_only(capsys, tmp_path) -> None:
    argv = ["propagate", "--activations", "tanh", "ntanh", "--mode", "adaptive", "--depth", "3"]
    code, out, _ = run_main(capsys, *argv, "--width", "16", "--batch", "32")
    assert code == 0 and "ntanh (adaptive)" in out and "measured only" in out
    headers = [line for line in out.splitlines() if line.startswith("layer")]
    assert "theory" in headers[0] and "theory" not in headers[1]  # vanilla tanh keeps E8-E9
    code, out, _ = run_main(capsys, "propagate", "--activations", "nswish", "--depth", "2", "--width", "16")
    assert code == 0 and "E8 is unstable at the start" in out and "1.2" in out  # q* = 1.202 (E22)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--lr", "-1"], ["lr", "-1"]),
        (["train", "--activation", "nfoo"], ["'nfoo'"]),
        (["train", "--activation", "nswish", "--activation-option", "mode=sideways"], ["sideways"]),
        (["train", "--dataset-option", "nonsense", "--epochs", "1"], ["KEY=VALUE", "nonsense"]),
        (["train", "--optimizer", "rmsprop"], ["rmsprop"]),
        (["train", "--resume"], ["--resume", "--out"]),
        (["reproduce", "--seeds", "0"], ["--seeds", "'0'"]),
        (["reproduce", "--preset", "huge"], ["huge"]),
        (["theory", "--q", "-2"], ["--q", "'-2'"]),
        (["propagate", "--activations", "relu", "--depth", "zero"], ["--depth", "zero"]),
        (["plot", "/nonexistent/run"], ["results.json", "does not exist"]),
        (["frobnicate"], ["frobnicate"]),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(capsys, argv, words) -> None:
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, *words)


@pytest.mark.parametrize(
    ("option", "words"),
    [("n_train=abc", ["n_train", "'abc'", "integer"]), ("noise=abc", ["noise", "'abc'", "number"])],
)
def test_dataset_option_of_the_wrong_type_exits_2_naming_it(capsys, option, words) -> None:
    argv = ["train", "--dataset", "spirals", "--dataset-option", option, "--epochs", "1"]
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, "'spirals'", *words)


def test_bad_config_file_names_the_unknown_key(capsys, tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('activation = "relu"\nlearning_rate = 0.1\n')
    code, _, err = run_main(capsys, "train", "--config", str(path))
    assert code == 2
    assert_one_line_error(err, "'learning_rate'", str(path))


@pytest.mark.skipif(backend.cuda_available(), reason="CuPy and a GPU are present")
def test_cuda_without_cupy_exits_2(capsys) -> None:
    code, _, err = run_main(capsys, "train", "--device", "cuda", *TINY_TRAIN)
    assert code == 2
    assert_one_line_error(err, "cuda", "CuPy")


@pytest.mark.skipif(backend.cuda_available(), reason="CuPy and a GPU are present")
def test_tinynormact_device_cuda_without_cupy_fails_only_commands_that_need_arrays() -> None:
    """TINYNORMACT_DEVICE=cuda: --help and theory work; train prints one line and exits 2."""
    env = {**os.environ, "TINYNORMACT_DEVICE": "cuda"}

    def tinynormact(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tinynormact", *argv]
        return subprocess.run(command, env=env, capture_output=True, text=True)

    assert tinynormact("--help").returncode == 0
    assert tinynormact("theory", "--activations", "relu").returncode == 0
    failed = tinynormact("train", *TINY_TRAIN)
    assert failed.returncode == 2
    assert_one_line_error(failed.stderr, "TINYNORMACT_DEVICE='cuda'", "CuPy", "cupy-cuda12x")
    assert len(failed.stderr.strip().splitlines()) == 1


def test_train_prints_the_history_and_flags_override_the_file(capsys, tmp_path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"activation": "tanh", "epochs": 5, "activation_options": {}}))
    code, out, _ = run_main(capsys, "train", "--config", str(path), *TINY_TRAIN, "--out", str(tmp_path / "o"))
    assert code == 0
    announce, lines = out.splitlines()[:2], out.splitlines()[2:]
    assert announce[0].startswith("data: spirals, 120 train and 60 test examples of shape 2, 3 classes")
    assert announce[1].startswith("model: mlp, 2 hidden layers of width 8, activation tanh")
    assert lines[0].split() == ["epoch", "train", "loss", "train", "acc", "test", "loss", "test", "acc"]
    assert [line.split()[0] for line in lines[2:-1]] == ["0", "1", "2"]  # --epochs 2 beat the file's 5
    assert lines[2].startswith("0 (untrained)")
    # the last line says where the run went and what is there
    files = "checkpoint.npz, checkpoint.previous.npz, config.json, result.json"
    assert lines[-1] == f"run folder: {tmp_path / 'o'} ({files})"
    saved = json.loads((tmp_path / "o" / "config.json").read_text())
    assert saved["activation"] == "tanh" and saved["dataset_options"] == {"n_train": 120, "n_test": 60}


def test_diverging_training_exits_1_naming_step_and_layer(capsys) -> None:
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--lr", "1e12", "--momentum", "0")
    assert code == 1
    assert_one_line_error(err, "diverged at step", "layer '")


@pytest.mark.parametrize("corruption", ["meta without optimizer", "extra array", "bad optimizer index"])
def test_resuming_a_corrupt_checkpoint_exits_2_naming_file_and_key(capsys, tmp_path, corruption) -> None:
    argv = ["train", *TINY_TRAIN, "--optimizer", "sgd", "--momentum", "0.9", "--out", str(tmp_path)]
    assert run_main(capsys, *argv)[0] == 0
    path = tmp_path / "checkpoint.npz"
    with np.load(path) as file:
        arrays = {key: file[key] for key in file.files}
    meta = json.loads(str(arrays["meta"]))
    if corruption == "meta without optimizer":
        del meta["optimizer"]
        arrays["meta"], words = np.array(json.dumps(meta)), ["'optimizer'"]
    elif corruption == "extra array":
        arrays["stray"], words = np.zeros(3), ["'stray'"]
    else:
        arrays["optimizer/7/momentum_buffer"] = arrays.pop("optimizer/0/momentum_buffer")
        words = ["'optimizer/7/momentum_buffer'", "index '7'"]
    for generation in (path, tmp_path / "checkpoint.previous.npz"):  # neither can be loaded
        with generation.open("wb") as handle:
            np.savez(handle, **arrays)
    code, _, err = run_main(capsys, *argv, "--resume")
    assert code == 2
    assert_one_line_error(err, str(path), *words, "To start over")


def test_propagate_prints_measured_and_theory_and_draws(capsys, tmp_path) -> None:
    figure = tmp_path / "prop.png"
    argv = ["propagate", "--activations", "tanh", "ntanh", "--depth", "4", "--width", "32", "--batch", "64"]
    code, out, _ = run_main(capsys, *argv, "--out", str(figure))
    assert code == 0 and figure.stat().st_size > 1000
    assert "tanh (vanilla)" in out and "ntanh (static)" in out
    header = next(line for line in out.splitlines() if line.startswith("layer"))
    assert "preact_sq measured" in header and "delta_sq theory" in header


def test_reproduce_then_plot(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(PRESETS, "quick", tiny_grid(seeds=(0,)))
    out = tmp_path / "run"
    code, stdout, _ = run_main(capsys, "reproduce", "--out", str(out), "--jobs", "1")
    assert code == 0 and "static - vanilla" in stdout and str(out / "report.md") in stdout
    code, _, err = run_main(capsys, "reproduce", "--out", str(out), "--jobs", "1")
    assert code == 0 and f"resuming {out}: 12 of 12 runs already finished, 0 to run" in err
    code, _, err = run_main(capsys, "reproduce", "--out", str(out), "--jobs", "1", "--seeds", "2")
    assert code == 2
    assert_one_line_error(err, str(out), "another grid", "grid.seeds: [0] there, [0, 1] here", "--force")

    (out / "figures" / "accuracy.png").unlink()
    code, stdout, _ = run_main(capsys, "plot", str(out))
    assert code == 0 and (out / "figures" / "accuracy.png").stat().st_size > 1000
    assert "accuracy.png" in stdout


# ----- help texts (issue 23, items 3, 4 and 7) ------------------------------------------------------


def every_parser(parser: argparse.ArgumentParser, path: str = "tinynormact"):
    """(command path, parser) for the parser and every subcommand under it, at any depth."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_parser(sub, f"{path} {name}")


def test_every_option_that_takes_a_value_states_its_default() -> None:
    """Before: `train --help` showed no default for epochs, lr, depth, width, dataset or activation."""
    checked = 0
    for path, parser in every_parser(cli.build_parser()):
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.required:
                continue  # positionals, flags (off unless given), required options
            assert "(default: " in (action.help or ""), f"{path} {action.option_strings[0]}: {action.help!r}"
            checked += 1
    assert checked > 40


def test_help_lists_the_valid_names() -> None:
    """Options that take a name list every valid one in the help a user reads."""
    from tinynormact import activations
    from tinynormact.data import DATASETS
    from tinynormact.nn.init import INITIALIZERS

    parsers = dict(every_parser(cli.build_parser()))
    for path, parser in parsers.items():
        text = parser.format_help()
        for action in parser._actions:
            for choice in action.choices or () if not isinstance(action, argparse._SubParsersAction) else ():
                assert str(choice) in text, f"{path}: {choice!r} of {action.option_strings}"
    train = parsers["tinynormact train"].format_help().replace("\n", " ")
    train = " ".join(train.split())  # argparse wraps the lines
    for name in [*DATASETS, *activations.names(), *INITIALIZERS]:
        assert re.search(rf"\b{name}\b", train), name
    for command in ("theory", "propagate"):
        text = " ".join(parsers[f"tinynormact {command}"].format_help().split())
        assert all(re.search(rf"\b{name}\b", text) for name in activations.names()), command


def help_examples() -> list[tuple[str, list[str]]]:
    """(the line, its arguments) of every `tinynormact ...` example in every help text."""
    found = []
    for _, parser in every_parser(cli.build_parser()):
        for line in (parser.epilog or "").splitlines():
            command = line.partition("#")[0].strip()
            if "tinynormact " in command:
                found.append((line, shlex.split(command.partition("tinynormact ")[2])))
    return found


def test_every_help_example_parses_and_names_options_its_dataset_has() -> None:
    """Before: `reproduce --help` suggested --dataset-option n_train=2000, which the quick preset's
    dataset (mnist1d) does not take. Each example is parsed (not run); its dataset options are
    checked against the signature of the dataset's loader."""
    from tinynormact.data import DATASETS
    from tinynormact.train import TrainConfig

    examples = help_examples()
    assert len(examples) > 25
    with_options = 0
    for line, argv in examples:
        args = cli.build_parser().parse_args(argv)  # a bad example exits 2 here
        if not getattr(args, "dataset_options", None):
            continue
        if args.command == "reproduce":
            dataset = handlers.reproduction_grid(args).dataset
        else:
            dataset = args.dataset or TrainConfig().dataset
        taken = inspect.signature(DATASETS[dataset]).parameters
        assert all(key in taken for key, _ in args.dataset_options), (
            f"{line!r}: {dataset} takes {list(taken)}"
        )
        with_options += 1
    assert with_options >= 4
    reproduce = dict(every_parser(cli.build_parser()))["tinynormact reproduce"]
    option_help = next(a.help for a in reproduce._actions if a.dest == "dataset_options")
    default_dataset = inspect.signature(DATASETS[PRESETS["quick"].dataset]).parameters
    assert [key for key in re.findall(r"(\w+)=", option_help) if key in default_dataset] == ["num_samples"]


def loaded_modules(*argv: str) -> set[str]:
    """The modules loaded after `tinynormact ARGV` (run in a fresh interpreter)."""
    script = (
        "import sys\nfrom tinynormact import cli\n"
        "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=300)
    return set(done.stderr.split())


UNUSED = ("matplotlib", "dask", "distributed", "scipy.stats")  # by every command below: none draws or sweeps


@pytest.mark.parametrize(
    ("argv", "absent"),
    [
        (["--help"], (*UNUSED, "scipy", "tqdm", "tinynormact.data", "tinynormact.theory", "tinynormact.nn")),
        (
            ["--version"],
            (*UNUSED, "scipy", "tqdm", "tinynormact.data", "tinynormact.theory", "tinynormact.nn"),
        ),
        (["theory", "--help"], (*UNUSED, "tqdm", "tinynormact.data", "tinynormact.train")),
        (["theory", "--activations", "relu"], (*UNUSED, "tqdm", "tinynormact.data", "tinynormact.train")),
        (["train", *TINY_TRAIN[:-4], "--epochs", "1"], UNUSED),
        (["data", "download", "--help"], (*UNUSED, "scipy", "tqdm", "tinynormact.train")),
    ],
)
def test_a_command_loads_only_what_it_needs(argv, absent) -> None:
    """Before: every call, `--help` included, loaded NumPy, SciPy, Matplotlib, tqdm and the
    downloader. The test counts modules, not seconds; the time of `tinynormact --help` is
    measured in docs/timings.md. (`import tinynormact` loads its engine, NumPy with it.)"""
    loaded = loaded_modules(*argv)
    assert "tinynormact.cli" in loaded  # the command ran
    assert [m for m in absent if m in loaded] == []
