"""The paper's comparisons at CPU scale: ``reproduce(PRESETS["quick"], "runs/quick")``.

- ``grid``: grids of runs (axes and shared settings), from a preset or a TOML grid file;
- ``presets``: the named grids (``quick``, ``full``);
- ``runner``: one run of a grid and its record;
- ``executors``: where runs execute (this process, local Dask workers, a Dask cluster);
- ``sweep_folder``: one file per finished run, resumable sweep folders;
- ``propagation``: signal propagation at initialization, measured and predicted;
- ``analysis``: aggregates over seeds, paired differences, the theory table, the rank
  correlation of convergence speed with the property measure;
- ``figures``, ``report``: the figures, tables and report.md;
- ``sweep``: the runs a sweep folder lacks, run and written as they finish;
- ``reproduce``: a sweep, then its analysis and report;
- ``command``: the ``reproduce`` and ``sweep`` subcommands of the command line.
"""

from tinynormact.experiments.grid import FORMS, Grid, GridError, RunSpec, load_grid
from tinynormact.experiments.presets import PRESETS
from tinynormact.experiments.report import summary_text
from tinynormact.experiments.reproduce import analyse, load_results, reproduce, write_report

__all__ = [
    "FORMS",
    "PRESETS",
    "Grid",
    "GridError",
    "RunSpec",
    "analyse",
    "load_grid",
    "load_results",
    "reproduce",
    "summary_text",
    "write_report",
]
