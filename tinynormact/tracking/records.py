"""Tracker records: one row of per-layer statistics per recorded step, in arrays, optionally
streamed to disk.

A ``TrackRecord`` receives ``append(step, table)`` once per recorded step, ``table`` being a
NumPy (n_table_rows, n_layers) float64 array, and keeps the statistics it was asked for. Rows
live in fixed-size chunks of a NumPy structured array (a field "step", int64, and one field per
statistic, float64 of shape (n_layers,)): appending costs one copy of the table, growing costs a
new chunk (no reallocation, no per-number Python objects), and memory is the data plus the
"step" column plus at most one part-filled chunk.

Streaming (``path=FOLDER``) writes the rows to ``FOLDER/rows.npy`` as the run goes, an
ordinary ``.npy`` file that ``numpy.load`` reads without this library, next to
``FOLDER/meta.json``::

    rows = numpy.load("runs/one/tracking/rows.npy")      # one row per recorded step
    rows["step"], rows["delta_sq"]                          # (S,) int64, (S, layers) float64
    json.load(open("runs/one/tracking/meta.json"))["layers"]   # the layer names

- ``rows.npy`` is .npy format 1.0 of that structured dtype; its header, which NumPy writes with
  room for the row count to grow, is rewritten in place as rows are added.
- ``meta.json``: {"format": "tinynormact-track-record", "version": 1, "statistics": [...],
  "layers": [...], "every": k or null}.

Rows reach the disk in flushes: when ``flush_every`` rows are waiting (the in-memory window,
the only rows kept in memory), on ``flush()``, and whenever the owner asks (the tracker flushes
on detach, the training loop before each checkpoint). A flush appends the rows after the last
ones, fsyncs, and then rewrites the header's row count and fsyncs again, so the header never
counts a row that is not on disk: after a crash (SIGKILL, out of memory), ``numpy.load`` reads
every row up to the last flush, and readers ignore bytes of a flush cut short. Reading
(``to_dict``, ``row``, ``steps``) joins the rows on disk and the window.

Resuming (``resume_at=N``) reopens a streamed record to continue a run from step N, as after
restoring a checkpoint taken after step N - 1: rows of steps >= N, flushed after that
checkpoint and about to be recorded again, are cut off, and a record that does not reach the
last step before N that ``every`` records is refused (rows would be missing), before anything
is changed.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinynormact.engine.backend import np
from tinynormact.infra.files import write_atomically, write_json_atomic

__all__ = ["FORMAT", "META_FILE", "ROWS_FILE", "TrackRecord", "read_meta", "read_record"]

ROWS_FILE = "rows.npy"
META_FILE = "meta.json"
FORMAT = "tinynormact-track-record"
VERSION = 1
CHUNK_BYTES = 1 << 18  # in-memory chunks of about 256 KiB when not streaming
FLUSH_EVERY = 1000  # a flush costs two fsyncs (13 ms on this project's test machine)


def _row_dtype(statistics: Sequence[str], n_layers: int) -> np.dtype:
    return np.dtype([("step", "<i8"), *((name, "<f8", (n_layers,)) for name in statistics)])


def _header(dtype: np.dtype, n_rows: int) -> bytes:
    """The .npy header of ``n_rows`` rows of ``dtype``; NumPy pads it so that its length does
    not depend on ``n_rows`` (room for the row count to grow in place)."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n_rows,)}
    try:
        np.lib.format.write_array_header_1_0(buffer, header)
    except ValueError:  # a header over 64 KiB (thousands of statistics) needs format 2.0
        buffer = io.BytesIO()
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def _read_header(path: Path) -> tuple[int, np.dtype, int]:
    """(rows counted by the header, row dtype, byte offset of the first row) of a rows file."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            fmt = np.lib.format
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran_order, dtype = read(file)
            offset = file.tell()
    except (OSError, ValueError) as exc:
        raise ValueError(f"track record {path} cannot be read ({exc})") from exc
    if fortran_order or len(shape) != 1 or dtype.names is None or dtype.names[0] != "step":
        raise ValueError(f"track record {path} is not a record: expected rows of steps, got {dtype} {shape}")
    return shape[0], dtype, offset


def _fsync_folder(folder: Path) -> None:
    """Make the folder's new entries (files created or renamed in it) durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _float_view(chunk: np.ndarray, n_statistics: int, n_layers: int) -> np.ndarray:
    """The statistics of ``chunk``'s rows as one (rows, n_statistics, n_layers) float64 view,
    so that a step's table goes in with one assignment (the step field comes first)."""
    floats = chunk.view(np.float64).reshape(len(chunk), 1 + n_statistics * n_layers)
    return floats[:, 1:].reshape(len(chunk), n_statistics, n_layers)


class TrackRecord:
    """Per-step, per-layer statistics in arrays; streamed to ``path`` (a folder) when given.

    ``statistics``: the names kept, each an (S, n_layers) float64 array in ``to_dict``;
    ``layers``: the layer names; ``table_rows``: what each row of an appended table holds
    (default ``statistics``; rows not kept are dropped); ``flush_every``: rows kept in memory
    before they are written (streaming only); ``every``: the tracker's step stride, stored in
    meta.json and used to check a resumed record for missing rows. A new record at ``path``
    replaces one already there; ``resume_at=N`` continues it instead (see the module docstring).
    """

    def __init__(
        self,
        statistics: Sequence[str],
        layers: Sequence[str],
        table_rows: Sequence[str] | None = None,
        path: str | Path | None = None,
        flush_every: int = FLUSH_EVERY,
        every: int | None = None,
        resume_at: int | None = None,
    ) -> None:
        self.statistics, self.layers = tuple(statistics), [str(name) for name in layers]
        table_rows = self.statistics if table_rows is None else tuple(table_rows)
        valid = set(table_rows) - {"step"}
        distinct = len(set(self.statistics)) == len(self.statistics)
        if not self.statistics or not distinct or not valid >= set(self.statistics):
            raise ValueError(
                f"TrackRecord: statistics {list(self.statistics)} must be distinct names from {sorted(valid)}"
            )
        if not self.layers:
            raise ValueError("TrackRecord: layers is empty; a record needs at least one layer")
        if int(flush_every) != flush_every or flush_every < 1:
            raise ValueError(f"TrackRecord: flush_every must be an integer >= 1, got {flush_every!r}")
        self.every, self.n_table_rows = every, len(table_rows)
        self._rows = [table_rows.index(name) for name in self.statistics]
        self.dtype = _row_dtype(self.statistics, len(self.layers))
        self.path = None if path is None else Path(path)
        self._full: list[np.ndarray] = []  # filled chunks (not streaming)
        self._disk_rows, self._offset, self._last_step = 0, 0, None
        chunk_rows = int(flush_every) if self.path is not None else max(1, CHUNK_BYTES // self.dtype.itemsize)
        self._new_chunk(chunk_rows)
        if self.path is None:
            if resume_at is not None:
                raise ValueError("TrackRecord: resume_at needs the path of the record to continue")
        elif resume_at is None:
            self._create()
        else:
            self._reopen(int(resume_at))

    # ----- on disk ----------------------------------------------------------------------------
    @property
    def rows_path(self) -> Path | None:
        return None if self.path is None else self.path / ROWS_FILE

    def _meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "statistics": list(self.statistics),
            "layers": self.layers,
            "every": self.every,
        }

    def _create(self) -> None:
        header = _header(self.dtype, 0)
        write_json_atomic(self.path / META_FILE, self._meta())
        write_atomically(self.rows_path, lambda file: file.write(header))
        _fsync_folder(self.path)
        self._offset = len(header)

    def _reopen(self, next_step: int) -> None:
        """Continue the record at ``path`` from step ``next_step``: check that it is this
        record and that no row before ``next_step`` is missing, then cut the rows from
        ``next_step`` on (and any bytes a cut-short flush left)."""
        meta, rows = read_meta(self.path), self.rows_path
        ours = self._meta()
        differences = [key for key in ("statistics", "layers", "every") if meta.get(key) != ours[key]]
        if differences:
            theirs = {key: meta.get(key) for key in differences}
            mine = {key: ours[key] for key in differences}
            raise ValueError(f"track record {self.path} holds {theirs}, this run has {mine}: cannot resume")
        n_rows, dtype, offset = _read_header(rows)
        if dtype != self.dtype:
            raise ValueError(f"track record {rows} has rows {dtype}, expected {self.dtype}")
        steps = np.fromfile(rows, dtype=self.dtype, count=n_rows, offset=offset)["step"]
        if np.any(np.diff(steps) <= 0):
            raise ValueError(f"track record {rows} is corrupt: its steps do not increase")
        keep = int(np.searchsorted(steps, next_step))
        last = int(steps[keep - 1]) if keep else None
        if self.every is not None and next_step >= self.every:
            expected = (next_step - 1) // self.every * self.every  # the last step before next_step
            if last is None or last < expected:
                raise ValueError(
                    f"track record {rows} ends at step {last}, but continuing from step {next_step} needs "
                    f"the rows of every={self.every} up to step {expected}: rows are missing"
                )
        self._offset, self._disk_rows, self._last_step = offset, keep, last
        with open(rows, "r+b") as file:
            self._write_header(file)
            file.truncate(offset + keep * self.dtype.itemsize)
            os.fsync(file.fileno())

    def _write_header(self, file: Any) -> None:
        header = _header(self.dtype, self._disk_rows)
        if len(header) != self._offset:
            raise ValueError(f"track record {self.rows_path}: its header cannot be rewritten in place")
        file.seek(0)
        file.write(header)
        file.flush()
        os.fsync(file.fileno())

    def flush(self) -> None:
        """Write the rows in memory to disk and fsync (nothing to do without ``path``)."""
        if self.path is None or self._count == 0:
            return
        with open(self.rows_path, "r+b") as file:
            file.seek(self._offset + self._disk_rows * self.dtype.itemsize)
            file.write(self._chunk[: self._count].tobytes())
            file.flush()
            os.fsync(file.fileno())  # the rows first: the header never counts a row not on disk
            self._disk_rows += self._count
            self._write_header(file)
        self._count = 0

    def _on_disk(self) -> np.ndarray | None:
        if not self._disk_rows:
            return None
        return np.memmap(self.rows_path, self.dtype, mode="r", offset=self._offset, shape=(self._disk_rows,))

    # ----- in memory --------------------------------------------------------------------------
    def _new_chunk(self, rows: int) -> None:
        self._chunk = np.empty(rows, dtype=self.dtype)
        self._values = _float_view(self._chunk, len(self.statistics), len(self.layers))
        self._count = 0

    def append(self, step: int, table: np.ndarray) -> None:
        """Add the row of ``step`` (after every step appended so far) from ``table``, a NumPy
        (n_table_rows, n_layers) float64 array."""
        if not isinstance(table, np.ndarray):
            raise TypeError(
                f"TrackRecord.append: table must be a NumPy array (backend.to_numpy moves it to the host), "
                f"got {type(table).__module__}.{type(table).__name__}"
            )
        if table.shape != (self.n_table_rows, len(self.layers)):
            expected = (self.n_table_rows, len(self.layers))
            raise ValueError(f"TrackRecord.append: table of shape {table.shape}, expected {expected}")
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"TrackRecord.append: step {step} is not after the last step, {self._last_step}")
        if self._count == len(self._chunk):
            if self.path is not None:
                self.flush()
            else:
                self._full.append(self._chunk)
                self._new_chunk(len(self._chunk))
        self._chunk["step"][self._count] = step
        self._values[self._count] = table[self._rows]
        self._count += 1
        self._last_step = step
        if self.path is not None and self._count == len(self._chunk):
            self.flush()

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the record holds in memory."""
        return sum(chunk.nbytes for chunk in (*self._full, self._chunk))

    def __len__(self) -> int:
        return self._disk_rows + sum(map(len, self._full)) + self._count

    def _parts(self) -> list[np.ndarray]:
        disk = self._on_disk()
        return [part for part in (disk, *self._full, self._chunk[: self._count]) if part is not None]

    # ----- reading ----------------------------------------------------------------------------
    @property
    def steps(self) -> np.ndarray:
        """The recorded steps, (S,) int64."""
        return np.concatenate([part["step"] for part in self._parts()] or [np.zeros(0, np.int64)])

    def to_dict(self) -> dict[str, np.ndarray]:
        """{"step": (S,) int64, statistic: (S, n_layers) float64}, from disk and memory."""
        parts = self._parts() or [np.zeros(0, self.dtype)]
        return {name: np.concatenate([part[name] for part in parts]) for name in ("step", *self.statistics)}

    def row(self, index: int) -> dict[str, np.ndarray]:
        """{statistic: (n_layers,) array} of the ``index``-th recorded step (negative: from the end)."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"TrackRecord.row: index {index} out of range for {n} recorded steps")
        index %= n
        for part in self._parts():
            if index < len(part):
                return {name: np.array(part[index][name]) for name in self.statistics}
            index -= len(part)
        raise AssertionError("unreachable: the parts hold len(self) rows")


def read_meta(path: str | Path) -> dict[str, Any]:
    """The meta.json of the record folder ``path``, checked to be this library's format."""
    meta_path = Path(path) / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"track record {path}: cannot read {META_FILE} ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"track record {path}: {meta_path} is not a {FORMAT} version {VERSION} file")
    return meta


def read_record(path: str | Path) -> dict[str, Any]:
    """The streamed record in the folder ``path``: {"step": (S,), statistic: (S, L)} as
    ``TrackRecord.to_dict``, plus "layers" (names) and "every" from meta.json. Every row up to
    the record's last flush; NumPy alone reads the same (see the module docstring)."""
    meta = read_meta(path)
    rows_path = Path(path) / ROWS_FILE
    n_rows, dtype, offset = _read_header(rows_path)
    rows = np.fromfile(rows_path, dtype=dtype, count=n_rows, offset=offset)
    if len(rows) != n_rows:
        raise ValueError(f"track record {rows_path} holds {len(rows)} of the {n_rows} rows its header counts")
    if list(dtype.names[1:]) != meta["statistics"] or dtype[1].shape != (len(meta["layers"]),):
        raise ValueError(f"track record {rows_path} does not hold the statistics and layers of {META_FILE}")
    record: dict[str, Any] = {name: np.ascontiguousarray(rows[name]) for name in dtype.names}
    record["layers"], record["every"] = meta["layers"], meta["every"]
    return record
