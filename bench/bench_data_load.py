"""Time loading the NCF MovieLens-1M benchmark and auditing it.

Usage: ``python bench/bench_data_load.py [--data-dir DIR] [--repeat N]`` (default data dir:
``$NCF_DATA_DIR``). Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import ncf.data.datasets
from ncf.data.audit import audit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.data_dir or not (Path(args.data_dir) / "ml-1m-ncf").is_dir():
        raise SystemExit("set --data-dir or NCF_DATA_DIR to the folder holding ml-1m-ncf/")

    load_s, audit_s = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ds = ncf.data.datasets.load("ml-1m-ncf", data_dir=args.data_dir, download=False)
        t1 = time.perf_counter()
        assert ds.test is not None and ds.test_negatives is not None
        report = audit(ds.interactions, ds.test, ds.test_negatives)
        t2 = time.perf_counter()
        load_s.append(t1 - t0)
        audit_s.append(t2 - t1)
    print(f"ml-1m-ncf rows: train {len(ds.interactions):,}, test {len(ds.test):,}, "
          f"negatives {ds.test_negatives.shape}")  # fmt: skip
    print(f"load  (ncf.data.datasets.load): best {min(load_s):.3f} s, first {load_s[0]:.3f} s "
          f"over {args.repeat} run(s)")  # fmt: skip
    print(f"audit (ncf.data.audit):    best {min(audit_s):.3f} s, first {audit_s[0]:.3f} s; "
          f"positive among own negatives: {report.positive_in_negatives} lines")  # fmt: skip


if __name__ == "__main__":
    main()
