"""How local is a small update? The six-row case of issue 29, on the built-in ml-latest-small.

A model is trained as a user does (``ncf train --seed 0``, the default preset, or ``--model``
when given), then updated as a user does (``ncf update``, its defaults) with six rows:

* a new user who took three well-known films and one new film;
* a known user (``--taker``) who took the new film;
* another known user (``--other``) who took a known film.

It prints what the update did to everyone else: the share of untouched users (neither of the
two known users nor the new one) whose top-10 changed (as a set; and the share of their
top-10 slots that changed), how many of them got the new film, where it ranks for the new
user, the update's training loss, and what the update's own check measured.

    .venv/bin/python bench/update_locality.py                # the default preset (~40 s)
    .venv/bin/python bench/update_locality.py --model mf     # MF-128 by plain SGD
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ncf import Recommender
from ncf.cli import main

KNOWN_FILMS = (1, 260, 2571)  # Toy Story, Star Wars, The Matrix


def six_rows(rec: Recommender, taker: int, other: int) -> tuple[pd.DataFrame, int, int]:
    users, items = rec.user_map_.ids, rec.item_map_.ids
    new_user, new_item = int(users.max()) + 1, int(items.max()) + 1
    seen = set(rec.item_map_.to_raw(rec.seen_[rec.user_map_.to_index([other])[0]].indices))
    known = next(int(i) for i in rec.item_popularity_.argsort()[::-1]
                 if int(items[i]) not in seen)  # fmt: skip
    rows = [(new_user, f) for f in KNOWN_FILMS]
    rows += [(new_user, new_item), (taker, new_item), (other, int(items[known]))]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    frame["timestamp"] = 2_000_000_000 + np.arange(len(frame))
    return frame, new_user, new_item


def top10(rec: Recommender, users: np.ndarray) -> pd.DataFrame:
    return rec.recommend(users, k=10)


def main_(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="ncf train --model (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--taker", type=int, default=1, help="the known user who takes the new film")
    p.add_argument("--other", type=int, default=2, help="the known user who takes a known film")
    p.add_argument("--work", type=Path, default=None, help="folder for the models (default: tmp)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ncf-locality-"))
    parent, child = work / "parent", work / "child"
    train = ["train", "--seed", str(args.seed), "--no-progress", "--out", str(parent)]
    if args.model:
        train += ["--model", args.model]
    t0 = time.perf_counter()
    if not (parent / "config.json").exists():
        assert main(train) == 0
    print(f"trained in {time.perf_counter() - t0:.1f} s")
    before = Recommender.load(parent)
    frame, new_user, new_item = six_rows(before, args.taker, args.other)
    data = work / "six.csv"
    frame.to_csv(data, index=False)
    print(frame.to_string(index=False))
    code = main(["update", str(parent), "--data", str(data), "--out", str(child),
                 "--no-progress", "--seed", str(args.seed)])  # fmt: skip
    print(f"ncf update exit code {code}")
    if code != 0:
        return
    after = Recommender.load(child)
    untouched = np.setdiff1d(before.user_map_.ids, frame["user"].unique())
    old, new = top10(before, untouched), top10(after, untouched)
    changed_sets = 0
    changed_slots = 0
    for (_, a), (_, b) in zip(old.groupby("user"), new.groupby("user"), strict=True):
        changed_sets += set(a["item"]) != set(b["item"])
        changed_slots += int((a["item"].to_numpy() != b["item"].to_numpy()).sum())
    got_new = int((new["item"] == new_item).sum())
    mine = after.recommend(new_user, k=10, with_metadata=True)
    # the new user took the new item: seen, so ranked among the seen ones too
    whole = after.recommend(new_user, k=10, exclude_seen=False)
    rank = whole.loc[whole["item"] == new_item, "rank"]
    report = after.lineage_[-1]
    n = len(untouched)
    print(f"model {after.model_.name}; untouched users {n}")
    print(f"untouched users whose top-10 changed: {changed_sets} ({changed_sets / n:.1%}); "
          f"top-10 slots changed: {changed_slots / (10 * n):.1%}")  # fmt: skip
    print(f"untouched users given the new item: {got_new}")
    where = int(rank.iloc[0]) if len(rank) else "not in top-10"
    print(f"the new item's rank for the new user (seen items included): {where}")
    print(f"new user's top-10: {mine[['rank', 'item', 'title']].to_dict('records')}")
    print(f"update training loss by epoch: "
          f"{[round(h['loss'], 4) for h in after.history_]}")  # fmt: skip
    print(f"the update's check: {report['validation']}")


if __name__ == "__main__":
    main_()
