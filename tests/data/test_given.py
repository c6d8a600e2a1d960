"""Given train/test files (``ncf.data.given``): both formats, leakage named by line, unseen
users and items counted, never dropped silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncf.data.given import given_split, read_pairs, read_rows, read_user_lines, sniff_format
from ncf.exceptions import ConfigError, DataError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def train_txt(tmp_path: Path) -> Path:
    return _write(tmp_path / "train.txt", "0 1 2 3\n1 2 3\n\n2 0 4 1\n")


def test_one_line_per_user_is_read_in_file_order(tmp_path: Path) -> None:
    path = _write(tmp_path / "test.txt", "0 4 5\n\n1 1\n7\n2  3\t0\n")
    pairs = read_user_lines(path)
    assert pairs.to_dict("list") == {
        "user": [0, 0, 1, 2, 2], "item": [4, 5, 1, 3, 0], "line": [1, 1, 3, 5, 5],
    }  # fmt: skip
    assert pairs["user"].dtype == np.int64  # integer ids as a CSV reader types them
    text = read_user_lines(_write(tmp_path / "s.txt", "u1 i1 i2\n"))
    assert text["user"].tolist() == ["u1", "u1"] and text["item"].tolist() == ["i1", "i2"]


def test_format_by_suffix_or_header(tmp_path: Path, train_txt: Path) -> None:
    assert sniff_format(train_txt) == "lines"
    assert sniff_format(_write(tmp_path / "t.txt", "user\titem\n1\t2\n")) == "table"
    assert sniff_format(_write(tmp_path / "t.csv", "1,2\n")) == "table"
    assert sniff_format(_write(tmp_path / "t.dat", "a b c\n")) == "lines"
    assert sniff_format(_write(tmp_path / "c.txt", "cust item\n"), {"user": "cust"}) == "table"


def test_rows_without_header_like_movielens_u1(tmp_path: Path) -> None:
    """``user item rating time`` rows, a user on several lines: the first two fields."""
    train = _write(tmp_path / "u1.base", "1\t1\t5\t874965758\n1\t2\t3\t876893171\n"
                                         "2\t1\t4\t888550871\n3\t2\t2\t889237455\n")  # fmt: skip
    test = _write(tmp_path / "u1.test", "1\t3\t4\t1\n2\t2\t5\t2\n2\t9\t1\t3\n")
    assert sniff_format(train) == sniff_format(test) == "rows"
    pairs = read_rows(test)
    assert pairs.to_dict("list") == {"user": [1, 2, 2], "item": [3, 2, 9], "line": [1, 2, 3]}
    ds, held = given_split(train, test)
    assert len(ds.interactions) == 4 and len(held.test) == 1  # items 3 and 9 never trained
    assert held.unseen.items == 2 and "(rows)" in held.description
    with pytest.raises(DataError, match=r"line 2: expected 4 fields like the first line"):
        read_rows(_write(tmp_path / "bad.base", "1 2 3 4\n1 2 3\n"))
    # one line per user with as many items each stays one line per user (no user repeats)
    assert sniff_format(_write(tmp_path / "l.txt", "1 2 3\n2 3 4\n")) == "lines"


def test_lines_format_refuses_commas_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: expected ids separated by whitespace"):
        read_user_lines(_write(tmp_path / "a.txt", "0 1\n1,2 3\n"))
    with pytest.raises(DataError, match="no line holds a user and an item"):
        read_user_lines(_write(tmp_path / "b.txt", "0\n1\n"))


def test_given_split_lines_counts_unseen(tmp_path: Path, train_txt: Path) -> None:
    test = _write(tmp_path / "test.txt", "0 4 5\n1 1 1\n7 2\n2 3\n")
    ds, held = given_split(train_txt, test)
    assert ds.name == "train" and len(ds.interactions) == 8
    assert held.train is ds.interactions and held.negatives is None and held.protocol == "given"
    got = held.test.to_dataframe()
    assert list(zip(got["user"], got["item"], strict=True)) == [(0, 4), (1, 1), (2, 3)]
    # user 7 and item 5 never occur in training: 2 pairs not scored, counted
    assert (held.unseen.users, held.unseen.items, held.unseen.rows) == (1, 1, 2)
    assert "2 pair(s) not scored: 1 user(s) and 1 item(s) unseen in training" in held.description
    assert "1 repeated pair(s) counted once" in held.description
    assert held.test.user_map is ds.interactions.user_map


def test_leakage_names_the_first_row(tmp_path: Path, train_txt: Path) -> None:
    test = _write(tmp_path / "test.txt", "0 4\n\n1 1 3\n2 0\n")
    with pytest.raises(DataError) as err:
        given_split(train_txt, test)
    message = str(err.value)
    assert message.startswith(f"{test}: line 3: the pair (user 1, item 3) is also in the training")
    assert "(2 such pair(s) in all)" in message and "\n" not in message
    csv = _write(tmp_path / "test.csv", "user,item\n0,4\n2,1\n")
    with pytest.raises(DataError, match=rf"{csv}: line 3: the pair \(user 2, item 1\)"):
        given_split(train_txt, csv)


def test_csv_and_parquet_pairs_with_string_ids(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    pd.DataFrame({"customer": ["a", "a", "b", "c"], "product": ["x", "y", "y", "z"],
                  "stars": [5, 4, 3, 2]}).to_csv(train, index=False)  # fmt: skip
    test = tmp_path / "test.parquet"
    pd.DataFrame({"customer": ["a", "b", "d"], "product": ["z", "x", "x"]}).to_parquet(test)
    columns = {"user": "customer", "item": "product"}
    ds, held = given_split(train, test, columns=columns)
    assert len(ds.interactions) == 4 and len(held.test) == 2
    assert held.unseen.users == 1 and held.unseen.rows == 1
    leak = tmp_path / "leak.parquet"
    pd.DataFrame({"customer": ["a", "b"], "product": ["z", "y"]}).to_parquet(leak)
    with pytest.raises(DataError, match=r"leak.parquet: row 2: the pair \(user 'b', item 'y'\)"):
        given_split(train, leak, columns=columns)
    pairs, fmt = read_pairs(test, columns)
    assert fmt == "table" and pairs["line"].tolist() == [1, 2, 3]


def test_ids_typed_differently_still_match(tmp_path: Path, train_txt: Path) -> None:
    """The text file's 1 and a CSV whose ids read as text ('01' stays '01') match by text."""
    test = _write(tmp_path / "test.csv", "user,item\n1,4\nx,4\n")
    _, held = given_split(train_txt, test)
    assert len(held.test) == 1 and held.unseen.users == 1


def test_given_split_errors(tmp_path: Path, train_txt: Path) -> None:
    with pytest.raises(ConfigError, match="the given test file .* does not exist"):
        given_split(train_txt, tmp_path / "missing.txt")
    only_new = _write(tmp_path / "new.txt", "8 1 2\n9 3\n")
    with pytest.raises(ConfigError, match="no test pair can be scored: all 3 have a user or"):
        given_split(train_txt, only_new)
    with pytest.raises(ConfigError, match="one line per user: column names .* files with a header"):
        given_split(train_txt, _write(tmp_path / "t.txt", "0 4\n"), columns={"user": "u"})
    with pytest.raises(DataError, match="cannot find the user column"):
        given_split(train_txt, _write(tmp_path / "t.csv", "who,item\n0,4\n"))
