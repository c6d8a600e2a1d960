"""Studies that answer one question each and report with figures (``ncf experiment``) and
hyper-parameter tuning on the validation split (``ncf tune``).

Modules (imported on use; none imports matplotlib or Optuna at import time):
:mod:`~ncf.studies.specs` (the studies as grids of cells), :mod:`~ncf.studies.cells` (the
resumable store of finished cells), :mod:`~ncf.studies.runner` (train and score one cell with
``Recommender`` on ``ncf train``'s split), :mod:`~ncf.studies.plots` (figures),
:mod:`~ncf.studies.report` (CSV and Markdown), :mod:`~ncf.studies.tune` (Optuna).
"""
