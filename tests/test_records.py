"""TrackRecord: memory per recorded step, read-back from disk bit for bit, crashes, resuming;
a tracker streaming its record; a SIGKILLed training run resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinynormact as tn
from tinynormact import losses, nn, optim
from tinynormact.infra.files import RunNotice
from tinynormact.tracking import records
from tinynormact.tracking.records import TrackRecord, read_record
from tinynormact.tracking.tracker import STATISTICS, VarianceTracker
from tinynormact.train import TrainConfig, train

TABLE_ROWS = ("a", "b", "c", "d", "e")  # the rows of an appended table; records keep some
KEPT = ("d", "b", "e")  # out of table order, so a wrong row would show
LAYERS = [f"layer{l}" for l in range(7)]
REPOSITORY = Path(__file__).resolve().parents[1]


def tables(n: int, seed: int = 0) -> list[np.ndarray]:
    """Tables whose bits are hard to keep: NaN with a payload, -0.0, infinities, subnormals."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        table = rng.standard_normal((len(TABLE_ROWS), len(LAYERS))) * 10.0 ** rng.integers(-300, 300)
        table[0, 0], table[1, 1], table[2, 2], table[3, 3] = -0.0, np.inf, 5e-324, -np.inf
        table[4, 4] = np.uint64(0x7FF8_0000_DEAD_BEEF).view(np.float64)  # a NaN with a payload
        out.append(table)
    return out


def expected(steps: list[int], given: list[np.ndarray]) -> dict[str, np.ndarray]:
    """What a record of KEPT must hold, picked from the tables by name, here."""
    record = {"step": np.array(steps, dtype=np.int64)}
    for name in KEPT:
        record[name] = np.array([table[TABLE_ROWS.index(name)] for table in given])
    return record


def assert_bits_equal(got: dict, want: dict) -> None:
    assert set(want) <= set(got)
    for name, values in want.items():
        got_values = np.asarray(got[name])
        assert got_values.dtype == values.dtype and got_values.shape == values.shape, name
        assert got_values.tobytes() == values.tobytes(), name  # bit for bit, NaN payloads included


def new_record(tmp_path=None, **options) -> TrackRecord:
    path = None if tmp_path is None else tmp_path / "tracking"
    return TrackRecord(KEPT, LAYERS, table_rows=TABLE_ROWS, path=path, **options)


# ----- memory ------------------------------------------------------------------------------------------


def test_memory_per_recorded_step_is_the_data_plus_a_constant():
    """Counting the record's arrays after every append: in memory, bytes <= 1.5 x the raw data
    (8 bytes x statistics x layers per step) + one chunk; the record grows by chunks, so its
    bytes never exceed the rows so far (data plus the 8-byte step) by more than one chunk (a
    record grown by doubling would reach 2 x and fail both). Streaming, the bytes stay constant."""
    raw_per_step = 8 * len(KEPT) * len(LAYERS)
    row = raw_per_step + 8
    in_memory = new_record()
    given = tables(1)[0]
    chunk = max(1, records.CHUNK_BYTES // row) * row
    for step in range(6000):
        in_memory.append(step, given)
        n = step + 1
        assert in_memory.nbytes <= 1.5 * raw_per_step * n + chunk
        assert n * row <= in_memory.nbytes <= n * row + chunk
    assert len(in_memory) == 6000 and in_memory.nbytes >= 6000 * raw_per_step


def test_a_streamed_record_keeps_only_its_window_in_memory(tmp_path):
    record = new_record(tmp_path, flush_every=16)
    given = tables(1)[0]
    sizes = set()
    for step in range(500):
        record.append(step, given)
        sizes.add(record.nbytes)
    assert sizes == {16 * record.dtype.itemsize}  # one window of 16 rows, whatever the length
    assert len(record) == 500 and np.load(tmp_path / "tracking" / "rows.npy").shape == (496,)


# ----- reading back ------------------------------------------------------------------------------------


@pytest.mark.parametrize("flush_every", [1, 7, 1000])
def test_read_back_equals_the_in_memory_record_bit_for_bit(tmp_path, flush_every):
    given, steps = tables(45), [3 * k + 2 for k in range(45)]
    in_memory, streamed = new_record(), new_record(tmp_path, flush_every=flush_every, every=3)
    for step, table in zip(steps, given, strict=True):
        in_memory.append(step, table)
        streamed.append(step, table)
    want = expected(steps, given)
    assert_bits_equal(in_memory.to_dict(), want)
    assert_bits_equal(streamed.to_dict(), want)  # part on disk, part in memory
    for k in (0, 44, -1, -45, 20):
        assert_bits_equal(streamed.row(k), {name: want[name][k] for name in KEPT})
    streamed.flush()
    rows = np.load(tmp_path / "tracking" / "rows.npy")  # NumPy alone
    assert_bits_equal({name: rows[name] for name in rows.dtype.names}, want)
    back = read_record(tmp_path / "tracking")
    assert_bits_equal(back, want)
    assert back["layers"] == LAYERS and back["every"] == 3
    with pytest.raises(IndexError, match="index 45 out of range for 45"):
        streamed.row(45)


def test_bad_appends_are_refused_and_change_nothing(tmp_path):
    record = new_record(tmp_path)
    record.append(4, tables(1)[0])
    with pytest.raises(ValueError, match=r"step 4 is not after the last step, 4"):
        record.append(4, tables(1)[0])
    with pytest.raises(ValueError, match=r"table of shape \(3, 7\), expected \(5, 7\)"):
        record.append(5, np.zeros((3, 7)))
    with pytest.raises(TypeError, match="table must be a NumPy array .* got builtins.list"):
        record.append(5, tables(1)[0].tolist())
    assert record.steps.tolist() == [4]
    with pytest.raises(ValueError, match="distinct names"):
        TrackRecord(["a", "z"], LAYERS, table_rows=TABLE_ROWS)
    with pytest.raises(ValueError, match="flush_every must be an integer >= 1"):
        new_record(tmp_path, flush_every=0)


def test_read_record_names_what_is_wrong_with_a_folder(tmp_path):
    record = new_record(tmp_path, flush_every=2, every=1)
    for step, table in enumerate(tables(4)):
        record.append(step, table)
    folder = tmp_path / "tracking"
    rows = (folder / "rows.npy").read_bytes()
    (folder / "rows.npy").write_bytes(rows[: -record.dtype.itemsize - 1])  # a copy cut short
    with pytest.raises(ValueError, match="rows.npy holds 2 of the 4 rows its header counts"):
        read_record(folder)
    (folder / "rows.npy").write_bytes(rows)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "layers": LAYERS[:3]}))
    with pytest.raises(ValueError, match="does not hold the statistics and layers of meta.json"):
        read_record(folder)
    (folder / "meta.json").write_text(json.dumps({**meta, "version": 2}))
    with pytest.raises(ValueError, match="is not a tinynormact-track-record version 1 file"):
        read_record(folder)
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "rows.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="rows.npy cannot be read"):
        new_record(tmp_path, every=1, resume_at=2)


# ----- crashes and resuming ----------------------------------------------------------------------------


def test_a_killed_writer_leaves_every_flushed_row_readable(tmp_path):
    """A process appends 23 rows with flush_every=5 and is SIGKILLed: rows.npy holds exactly the
    20 flushed rows, and bytes of a flush cut short after them are ignored by np.load."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPOSITORY)!r})
        from tests.test_records import new_record, tables
        from pathlib import Path
        record = new_record(Path({str(tmp_path)!r}), flush_every=5)
        for step, table in enumerate(tables(23)):
            record.append(step, table)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    rows_path = tmp_path / "tracking" / "rows.npy"
    want = expected(list(range(20)), tables(23)[:20])
    rows = np.load(rows_path)
    assert_bits_equal({name: rows[name] for name in rows.dtype.names}, want)
    size = os.path.getsize(rows_path)
    with open(rows_path, "ab") as file:  # half of a 21st row: a flush the crash cut short
        file.write(b"\x01" * (rows.dtype.itemsize // 2))
    assert np.load(rows_path).shape == (20,)
    record = new_record(tmp_path, resume_at=20)  # resuming cuts the half row off
    assert os.path.getsize(rows_path) == size
    record.append(20, tables(1)[0])
    record.flush()
    assert np.load(rows_path)["step"].tolist() == list(range(21))


def test_resume_cuts_the_rows_after_the_checkpoint_and_refuses_missing_rows(tmp_path):
    """Steps 0, 3, ..., 87 were flushed; a checkpoint taken after step 50 resumes at 51: the rows of
    54 ... 87 (flushed after the checkpoint) go, the record continues from 51 with no gap and
    no duplicate. A record that stops short of the resume point is refused, unchanged."""
    given = tables(30)
    first = new_record(tmp_path, flush_every=4, every=3)
    for k, table in enumerate(given):
        first.append(3 * k, table)
    first.flush()
    rows_path = tmp_path / "tracking" / "rows.npy"
    before = rows_path.read_bytes()
    with pytest.raises(ValueError, match=r"ends at step 87, but continuing from step 100 .* up to step 99"):
        new_record(tmp_path, every=3, resume_at=100)
    with pytest.raises(ValueError, match=r"holds \{'every': 3\}, this run has \{'every': 2\}"):
        new_record(tmp_path, every=2, resume_at=51)
    with pytest.raises(ValueError, match="'layers'"):
        TrackRecord(KEPT, LAYERS[:-1], table_rows=TABLE_ROWS, path=rows_path.parent, every=3, resume_at=51)
    assert rows_path.read_bytes() == before  # the refusals changed nothing

    resumed = new_record(tmp_path, flush_every=4, every=3, resume_at=51)
    assert resumed.steps.tolist() == list(range(0, 51, 3))  # 0 ... 48
    assert np.load(rows_path).shape == (17,) and len(rows_path.read_bytes()) < len(before)
    later = tables(20, seed=1)
    for k, table in enumerate(later):
        resumed.append(51 + 3 * k, table)
    resumed.flush()
    want = expected(list(range(0, 51, 3)) + list(range(51, 111, 3)), given[:17] + later)
    assert_bits_equal(read_record(tmp_path / "tracking"), want)
    with pytest.raises(ValueError, match="cannot read meta.json"):
        new_record(tmp_path / "nothing", every=3, resume_at=3)


# ----- the tracker -------------------------------------------------------------------------------------


def train_steps(model: nn.Module, steps: range) -> None:
    """SGD steps whose batch depends on the step number only, so a run can be split anywhere."""
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    for step in steps:
        rng = np.random.default_rng([1, step])
        x, y = rng.standard_normal((5, 6)), rng.standard_normal((5, 3))
        optimizer.zero_grad()
        losses.mse_loss(model(tn.Tensor(x)), tn.Tensor(y)).backward()
        optimizer.step()


def test_a_streaming_tracker_records_what_an_in_memory_one_does(tmp_path):
    """Two trackers on one model, one in memory and one streamed (3-step window): the same
    record, bit for bit, from the tracker, from read_record and from np.load; the streamed
    one's memory stays one window."""
    model = nn.MLP([6, 5, 4, 3], "ntanh", dtype="float64", rng=3)
    statistics = ("preact_sq", "delta_sq", "rho_prime", "weight_grad_var")
    with VarianceTracker(model, every=2) as memory, VarianceTracker(
        model, every=2, statistics=statistics, path=tmp_path / "t", flush_every=3
    ) as streamed:
        train_steps(model, range(21))
        assert streamed.record.nbytes == 3 * streamed.record.dtype.itemsize
    want = {key: value for key, value in memory.to_dict().items() if key in ("step", *statistics)}
    assert want["step"].tolist() == list(range(0, 21, 2)) and np.isfinite(want["delta_sq"]).all()
    assert_bits_equal(streamed.to_dict(), want)
    assert_bits_equal(read_record(tmp_path / "t"), want)
    rows = np.load(tmp_path / "t" / "rows.npy")
    assert_bits_equal({name: rows[name] for name in rows.dtype.names}, want)
    assert json.loads((tmp_path / "t" / "meta.json").read_text())["layers"] == ["0", "2", "4"]


def test_a_resumed_tracker_continues_the_same_record(tmp_path):
    """Steps 0-9 streamed, as by a run that crashed after step 9 with a checkpoint after step 5;
    a tracker resumed at step 6 on the model as it was then (trained untracked) cuts steps 6-9
    and records them again: the record equals an uninterrupted tracker's, bit for bit."""

    def model_after(steps: int) -> nn.MLP:
        model = nn.MLP([6, 5, 4, 3], "tanh", dtype="float64", rng=3)
        train_steps(model, range(steps))
        return model

    with VarianceTracker(model := model_after(0)) as whole:
        train_steps(model, range(14))
    with VarianceTracker(model := model_after(0), path=tmp_path / "t", flush_every=2):
        train_steps(model, range(10))
    with VarianceTracker(model := model_after(6), start_step=6, path=tmp_path / "t", resume=True) as resumed:
        assert resumed.steps == list(range(6))
        train_steps(model, range(6, 14))
    record = read_record(tmp_path / "t")
    assert record["step"].tolist() == list(range(14))
    assert_bits_equal(record, whole.to_dict())


SIGKILL_RUN = TrainConfig(
    dataset="spirals",
    dataset_options={"n_train": 2400, "n_test": 100},
    depth=1,
    width=8,
    batch_size=2,
    epochs=2,
    track_every=1,
    checkpoint_every=1,
)  # 1200 steps an epoch: the 1000-row window flushes mid-epoch, and at each checkpoint


def test_a_sigkilled_training_run_resumes_with_exactly_the_missing_steps(tmp_path):
    """A real training process, SIGKILLed after step 2299 (checkpoint after step 1199, the
    last flush at 2200 rows): rows.npy holds steps 0-2199 exactly, bit for bit those of an
    uninterrupted run; resuming cuts the 1000 rows after the checkpoint and appends steps
    1200-2399 once each, so the record equals the uninterrupted run's."""
    assert records.FLUSH_EVERY == 1000  # the numbers below follow from it
    out = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import os, signal
        from tinynormact.train import TrainConfig, train
        import json
        config = TrainConfig.from_dict(json.loads({json.dumps(SIGKILL_RUN.to_dict())!r}))
        def callback(info):
            if info.step == 2300:
                os.kill(os.getpid(), signal.SIGKILL)
        train(config, out_dir={str(out)!r}, progress=False, callback=callback)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    whole = train(SIGKILL_RUN, out_dir=tmp_path / "whole", progress=False).tracker
    assert whole["step"].tolist() == list(range(2400))

    rows = np.load(out / "tracking" / "rows.npy")
    assert rows["step"].tolist() == list(range(2200))  # complete up to the last flush
    flushed = {key: values[:2200] for key, values in whole.items()}
    assert_bits_equal({name: rows[name] for name in rows.dtype.names}, flushed)

    with pytest.warns(RunNotice, match="taking over the lock of process"):  # the killed run's lock
        resumed = train(SIGKILL_RUN, out_dir=out, resume=True, progress=False)
    assert resumed.tracker["step"].tolist() == list(range(2400))
    assert_bits_equal(read_record(out / "tracking"), whole)
    assert_bits_equal(resumed.tracker, whole)
    assert set(STATISTICS) <= set(whole)


def test_cli_train_streams_the_record_resume_keeps_it_and_plot_draws_it(capsys, tmp_path):
    """`train --track-every 1 --out DIR` streams every step to DIR/tracking; `--resume` of the
    finished run leaves it as it was (no step twice); `plot DIR` draws it; a record with no
    step yet is a one-line error."""
    from tests.test_cli import TINY_TRAIN, assert_one_line_error, run_main

    out = tmp_path / "run"
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--track-every", "1", "--out", str(out))
    assert code == 0, err
    rows = np.load(out / "tracking" / "rows.npy")
    assert rows["step"].tolist() == list(range(6))  # 120 examples / batch 40 x 2 epochs
    assert np.isfinite(rows["delta_sq"]).all() and rows["delta_sq"].shape == (6, 3)
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--track-every", "1", "--out", str(out), "--resume")
    assert code == 0, err
    assert np.load(out / "tracking" / "rows.npy").tobytes() == rows.tobytes()

    code, stdout, err = run_main(capsys, "plot", str(out))
    names = [f"tracking_{name}.png" for name in ("preact_sq", "delta_sq", "weight_grad_var", "gains")]
    assert code == 0, err
    assert stdout.split() == [str(out / "figures" / name) for name in names]
    assert all((out / "figures" / name).stat().st_size > 1000 for name in names)

    TrackRecord(["delta_sq"], ["0"], path=tmp_path / "empty" / "tracking")
    code, _, err = run_main(capsys, "plot", str(tmp_path / "empty"))
    assert code == 2
    assert_one_line_error(err, "no recorded step")
