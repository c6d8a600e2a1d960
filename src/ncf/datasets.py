"""Named datasets: ``ncf.datasets.load("ml-100k")``, ``names()``, ``info(name)``.

A thin public facade over :mod:`ncf.data.datasets`.
"""

from ncf.data.datasets import Dataset, DatasetSpec, default_data_dir, info, load, names

__all__ = ["Dataset", "DatasetSpec", "default_data_dir", "info", "load", "names"]
