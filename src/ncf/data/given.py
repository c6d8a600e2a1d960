"""Given train/test splits: the files of a published split, read as they are.

``ncf train --train FILE --test FILE`` (Python: :func:`given_split`) trains on the first file
and scores by full ranking on the second, which may hold several items per user. Each file is
one of

* a table of pairs, as ``ncf train --dataset FILE`` reads it (:mod:`ncf.data.sources`): CSV,
  TSV or Parquet with a header naming the user and item columns (``--user-col`` and
  ``--item-col`` say which when the names are others);
* the one-line-per-user text format many papers publish: ``user item item ...``, ids
  separated by whitespace, one line per user (LightGCN's ``train.txt``/``test.txt``, say);
* rows without a header, ``user item [more fields]`` separated by whitespace, every line with
  as many fields (MovieLens-100K's ``u1.base``/``u1.test``, the NCF ``.rating`` files): the
  first two fields are the pair, the others are not read.

A ``.csv``, ``.tsv``, ``.parquet`` or ``.pq`` file is a table; any other file (``.txt``...)
is a table when its first line is a header naming a user or item column; else rows without a
header when, among its first lines, every line has as many fields and a user starts two lines;
else one line per user (:func:`sniff_format`). Ids typed alike in both files match (``"7"`` in
one file matches ``7`` in the other).

The test file is checked against the training file before anything trains:

* a test pair that is also a training pair is leakage, a :class:`~ncf.exceptions.DataError`
  whose one line names the first such row (file and line number; row number for Parquet);
* test pairs whose user or item never occurs in training cannot be ranked: they are counted
  (:class:`~ncf.data.holdout.Unseen`: distinct users, distinct items, pairs left out), said in
  the split's description and left out of scoring, never dropped silently;
* a pair repeated in the test file counts once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ncf.data.datasets import Dataset
from ncf.data.holdout import Holdout, Unseen, check_scorable
from ncf.data.idmap import IdMap, _py
from ncf.data.interactions import Interactions
from ncf.data.readers import read_parquet, sniff_sep
from ncf.data.sources import ITEM_COLUMNS, USER_COLUMNS, load_source, pick_column, table_header
from ncf.data.textfile import (
    RECODE,
    PathLike,
    read_delimited,
    row_line_numbers,
    undecodable_error,
)
from ncf.exceptions import ConfigError, DataError

#: How a given file is laid out: a table with a header, one line per user, rows without header.
Format = Literal["table", "lines", "rows"]
#: Suffixes always read as tables.
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
_PARQUET = (".parquet", ".pq")
_ENCODING = "utf-8-sig"


def sniff_format(path: PathLike, columns: dict[str, str] | None = None) -> Format:
    """``"table"`` or ``"lines"`` (one line per user) for a given file (see the module docs).

    ``columns`` (by role, as ``--user-col``... give them) count as header names too.
    """
    path = Path(path)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return "table"
    first = _first_line(path)
    names = {n.lower() for n in (*USER_COLUMNS, *ITEM_COLUMNS, *(columns or {}).values())}
    fields = [f for f in re.split(r"[\s,;|]+", first.strip()) if f]
    if any(f.lower() in names for f in fields):
        return "table"
    head = [line.split() for line in _head_lines(path)]
    head = [tokens for tokens in head if tokens]
    widths = {len(tokens) for tokens in head}
    starts = [tokens[0] for tokens in head]
    same_width = len(widths) == 1 and widths != {1}
    return "rows" if same_width and len(set(starts)) < len(starts) else "lines"


def read_user_lines(path: PathLike) -> pd.DataFrame:
    """Pairs of a one-line-per-user file, ``user item item ...`` (whitespace separated).

    Returns a DataFrame with columns ``user``, ``item`` (raw ids: integers when every id of
    the column is one, else text) and ``line`` (1-based), in file order. Blank lines and lines
    with a user and no item add nothing.

    Raises
    ------
    DataError
        The file is missing or not text, a field holds a comma or semicolon (a CSV without a
        header line, say), or no line holds a pair.
    """
    return _read_text_pairs(Path(path), rows=False)


def read_rows(path: PathLike) -> pd.DataFrame:
    """Pairs of a text file of rows without a header, ``user item [more fields]`` separated
    by whitespace (the first two fields; every line must have as many fields as the first).

    Returns the same DataFrame as :func:`read_user_lines`.

    Raises
    ------
    DataError
        As :func:`read_user_lines`, and a line whose number of fields differs from the first's.
    """
    return _read_text_pairs(Path(path), rows=True)


def _read_text_pairs(path: Path, rows: bool) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode(_ENCODING)
    except UnicodeDecodeError:  # never U+FFFD in an id: say where, and what to do
        raise undecodable_error(path, _ENCODING, RECODE) from None
    layout = "user item [more fields]" if rows else "user item item ..."
    users: list[str] = []
    items: list[str] = []
    counts: list[int] = []
    lines: list[int] = []
    width = 0
    for no, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens or (len(tokens) < 2 and not rows):
            continue
        width = width or len(tokens)
        if rows and len(tokens) != width:
            raise DataError(
                f"{path}: line {no}: expected {width} fields like the first line "
                f"({layout}), found {len(tokens)}"
            )
        odd = next((t for t in tokens if "," in t or ";" in t), None)
        if odd is not None:
            raise DataError(
                f"{path}: line {no}: expected ids separated by whitespace ({layout}), found "
                f"{odd!r}; a CSV file needs a header line naming its user and item columns"
            )
        users.append(tokens[0])
        pair = tokens[1:2] if rows else tokens[1:]
        items.extend(pair)
        counts.append(len(pair))
        lines.append(no)
    if not users or width < 2:
        raise DataError(f"{path}: no line holds a user and an item; expected {layout!r}")
    reps = np.asarray(counts, dtype=np.int64)
    return pd.DataFrame({
        "user": np.repeat(_typed(users), reps),
        "item": _typed(items),
        "line": np.repeat(np.asarray(lines, dtype=np.int64), reps),
    })  # fmt: skip


def read_pairs(
    path: PathLike, columns: dict[str, str] | None = None
) -> tuple[pd.DataFrame, Format]:
    """The raw (user, item) pairs of a given file, in file order, and its format.

    Returns a DataFrame with columns ``user``, ``item`` and ``line`` (the 1-based line of a
    text file, or the 1-based row of a Parquet file); other columns are not read.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = sniff_format(path, columns)
    if fmt != "table":
        if columns:
            layout = "one line per user" if fmt == "lines" else "rows without a header"
            raise ConfigError(
                f"{path} holds {layout}: column names (--user-col, --item-col...) apply to "
                "files with a header line"
            )
        return (read_user_lines(path) if fmt == "lines" else read_rows(path)), fmt
    user, item = _columns(path, columns or {})
    if path.suffix.lower() in _PARQUET:
        frame = read_parquet(path)
        for role, col in (("user", user), ("item", item)):
            bad = frame[col].isna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0]) + 1
                raise DataError(f"{path}: row {row}: the {role} id (column {col!r}) is missing")
        numbers = np.arange(1, len(frame) + 1, dtype=np.int64)
    else:
        sep = sniff_sep(path, _ENCODING)
        frame = read_delimited(path, sep=sep, required=[user, item], encoding=_ENCODING)
        if user not in frame or item not in frame:  # a column named twice, say
            raise DataError(f"{path}: no column(s) {user!r}/{item!r} after reading the header")
        numbers = row_line_numbers(path, frame, np.arange(len(frame)))
    pairs = pd.DataFrame({
        "user": frame[user].to_numpy(), "item": frame[item].to_numpy(), "line": numbers,
    })  # fmt: skip
    return pairs, fmt


def given_split(
    train: PathLike, test: PathLike, *, columns: dict[str, str] | None = None
) -> tuple[Dataset, Holdout]:
    """The dataset of a given training file and the holdout of its given test file.

    Parameters
    ----------
    train, test : str or Path
        The files (see the module docs for their formats).
    columns : dict, optional
        A table's column names by role (``user``, ``item``, ``rating``, ``timestamp``), as
        :func:`ncf.data.sources.load_source` takes them; they apply to both files.

    Returns
    -------
    dataset : Dataset
        The training file's interactions (named after the file).
    holdout : Holdout
        ``train`` those same interactions; ``test`` the test pairs that can be scored, over
        the training id maps; no negatives (full ranking); ``unseen`` the pairs left out.

    Raises
    ------
    ConfigError
        A file does not exist, or no test pair can be scored.
    DataError
        A malformed file, or a test pair that is also a training pair (leakage; the message
        names its line).
    """
    train, test = Path(train), Path(test)
    for role, path in (("training", train), ("test", test)):
        if not path.is_file():
            raise ConfigError(f"the given {role} file {path} does not exist (or is not a file)")
    ds = _read_train(train, columns)
    inter = ds.interactions
    pairs, fmt = read_pairs(test, columns)
    users = _index_of(inter.user_map, pairs["user"].to_numpy())
    items = _index_of(inter.item_map, pairs["item"].to_numpy())
    known = (users >= 0) & (items >= 0)
    codes = np.where(known, users * inter.n_items + items, -1)  # -1: an unseen id
    leak = np.isin(codes, inter.users.astype(np.int64) * inter.n_items + inter.items)
    if leak.any():
        r = int(np.flatnonzero(leak)[0])
        where = "row" if test.suffix.lower() in _PARQUET else "line"
        user, item = _py(pairs["user"].iloc[r]), _py(pairs["item"].iloc[r])
        raise DataError(
            f"{test}: {where} {pairs['line'].iloc[r]}: the pair (user {user!r}, item {item!r}) "
            f"is also in the training file {train}; a "
            f"test pair must not be a training pair ({int(leak.sum()):,} such pair(s) in all)"
        )
    unseen = Unseen(
        users=int(pd.unique(pairs["user"].to_numpy()[users < 0]).size),
        items=int(pd.unique(pairs["item"].to_numpy()[items < 0]).size),
        rows=int((~known).sum()),
    )
    check_scorable(int(known.sum()), unseen)
    _, first = np.unique(codes[known], return_index=True)
    keep = np.sort(first)  # each repeated pair once, in file order
    held = Interactions(
        users[known][keep], items[known][keep], user_map=inter.user_map, item_map=inter.item_map
    )
    repeated = int(known.sum()) - len(keep)
    n_users = int(np.unique(held.users).size)
    layout = {"lines": "one line per user", "rows": "rows", "table": "pairs"}[fmt]
    text = (
        f"the given test file {test} ({layout}): {len(held):,} pairs of {n_users:,} users, "
        "full ranking"
    )
    if repeated:
        text += f" ({repeated:,} repeated pair(s) counted once)"
    if unseen.rows:
        text += f"; {unseen.text()}"
    return ds, Holdout(inter, held, None, text, "given", unseen)


# ---------------------------------------------------------------------- helpers
def _read_train(path: Path, columns: dict[str, str] | None) -> Dataset:
    if sniff_format(path, columns) == "table":
        ds = load_source(path.resolve(), columns=columns)
        return Dataset(
            name=path.stem, interactions=ds.interactions, items=ds.items, users=ds.users,
            rating_scale=ds.rating_scale, description=f"given training file {path}",
        )  # fmt: skip
    pairs, fmt = read_pairs(path, columns)
    inter = Interactions.from_dataframe(pairs, duplicates="last", source=str(path))
    layout = "one line per user" if fmt == "lines" else "rows"
    return Dataset(name=path.stem, interactions=inter, implicit=True,
                   description=f"given training file {path} ({layout})")  # fmt: skip


def _columns(path: Path, given: dict[str, str]) -> tuple[str, str]:
    """The user and item columns of a table (as :mod:`ncf.data.sources` picks them)."""
    header = table_header(path)
    missing = {role: name for role, name in given.items() if name not in header}
    if missing:
        raise DataError(f"{path}: no column(s) {missing}; the header has {header}")
    user = given.get("user") or pick_column(header, USER_COLUMNS)
    item = given.get("item") or pick_column(header, ITEM_COLUMNS)
    if user is None or item is None:
        role = "user" if user is None else "item"
        raise DataError(
            f"{path}: cannot find the {role} column among {header}; name the columns user and "
            f"item, or say which with --{role}-col"
        )
    return user, item


def _typed(tokens: list[str]) -> np.ndarray:
    """Text ids as int64 when every one is an integer (as pandas reads a CSV column), else
    as text."""
    values = np.asarray(tokens)
    try:
        return values.astype(np.int64)
    except (ValueError, OverflowError):
        return values.astype(object)


def _index_of(id_map: IdMap, raw: np.ndarray) -> np.ndarray:
    """Indices of raw ids in ``id_map``, -1 for unknown ones; integers and text compare by
    their text when the two sides are typed differently."""
    ids = id_map.ids
    if (ids.dtype.kind in "iu") == (raw.dtype.kind in "iu"):
        return id_map.lookup(raw)
    return pd.Index(ids.astype(str)).get_indexer(raw.astype(str)).astype(np.int64)


def _head_lines(path: Path) -> list[str]:
    """The complete lines of the file's first 64 KiB."""
    with path.open("rb") as fh:
        head = fh.read(65536)
        complete = len(fh.read(1)) == 0
    lines = head.decode(_ENCODING, errors="replace").splitlines()
    return lines if complete or len(lines) < 2 else lines[:-1]


def _first_line(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(65536)
    for line in head.decode(_ENCODING, errors="replace").splitlines():
        if line.strip():
            return line
    raise DataError(f"{path}: the file is empty")


__all__ = ["Format", "given_split", "read_pairs", "read_rows", "read_user_lines", "sniff_format"]
