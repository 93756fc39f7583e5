"""The paper's comparisons at CPU scale: ``reproduce(PRESETS["quick"], "runs/quick")``.

- ``presets``: the named grids (``quick``, ``full``) and their training configurations;
- ``runner``: running the grid, in worker processes if asked;
- ``propagation``: signal propagation at initialization, measured and predicted;
- ``analysis``: aggregates over seeds, paired differences, the theory table, the rank
  correlation of convergence speed with the property measure;
- ``figures``, ``report``: the figures, tables and report.md;
- ``reproduce``: all of the above, written to a run folder.
"""

from tinynormact.experiments.presets import FORMS, PRESETS, Preset, RunSpec
from tinynormact.experiments.report import summary_text
from tinynormact.experiments.reproduce import analyse, load_results, reproduce, write_run_folder

__all__ = [
    "FORMS",
    "PRESETS",
    "Preset",
    "RunSpec",
    "analyse",
    "load_results",
    "reproduce",
    "summary_text",
    "write_run_folder",
]
