"""Bytes that are not text in the file's encoding: an error naming the file, line, byte
column and offset, with what to do; never a U+FFFD that silently becomes part of an id (and
turns every integer id into text). Every reader of user files: pandas tables (one- and
multi-character separators, the slow path), NCF files, given files and Parquet."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ncf import DataError, NCFWarning
from ncf.data.given import given_split, read_pairs, read_rows, read_user_lines
from ncf.data.readers import read_delimited, read_ncf, read_table
from ncf.data.sources import load_source

BAD = b"\xff\xfe1,10,5.0,123\n"
CSV = b"user,item,rating,timestamp\n1,10,5.0,1\n2,11,4.0,2\n" + BAD + b"3,12,1.0,4\n"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _says(exc: pytest.ExceptionInfo[DataError], path: Path, line: int, byte: int) -> None:
    text = str(exc.value)
    assert text.startswith(f"{path}: line {line}, byte {byte} (offset ")
    assert "is not UTF-8 text" in text and "re-encode it as UTF-8" in text
    assert "\n" not in text  # one line


def test_a_csv_with_a_non_utf8_user_id_is_an_error_naming_line_and_byte(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", CSV)
    with pytest.raises(DataError) as exc:
        read_table(path)
    _says(exc, path, 4, 1)
    assert f"(offset {CSV.index(BAD)})" in str(exc.value)
    assert "(1 line(s) with such bytes in all)" in str(exc.value)
    with pytest.raises(DataError, match=re.escape(f"{path}: line 4, byte 1")):
        load_source(path)  # what ncf train --dataset FILE reads


def test_skip_drops_undecodable_lines_counted_and_keeps_integer_ids(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", CSV)
    with pytest.warns(NCFWarning, match=r"skipped 1 malformed line\(s\), the first at line 4"):
        inter = read_table(path, errors="skip")
    assert inter.user_map.ids.tolist() == [1, 2, 3] and inter.user_map.ids.dtype.kind == "i"
    latin = read_table(path, encoding="latin-1")  # the explicit way to read it as it is
    assert "ÿþ1" in latin.user_map.ids.tolist()


def test_the_byte_column_and_the_bom_are_counted(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfuser\titem\n1\t2\n3\tx\xe9y\n"
    path = _write(tmp_path / "r.tsv", data)
    with pytest.raises(DataError) as exc:
        read_table(path)
    _says(exc, path, 3, 4)
    offset = data.index(b"\xe9")
    assert f"(offset {offset})" in str(exc.value)


def test_a_multi_character_separator_and_the_slow_path_refuse_them_too(tmp_path: Path) -> None:
    dat = _write(tmp_path / "r.dat", b"1::2\n3::4\n\xe95::6\n")
    with pytest.raises(DataError) as exc:
        read_delimited(dat, sep="::", names=["user", "item"], numeric=["user", "item"])
    _says(exc, dat, 3, 1)
    # a malformed line before the bad byte sends the read to the slow path: still an error
    slow = _write(tmp_path / "s.csv", b"user,item\n1,2,3\n4,5\n6\xff,7\n")
    with pytest.raises(DataError) as exc:
        read_delimited(slow, sep=",")
    _says(exc, slow, 4, 2)
    with pytest.warns(NCFWarning, match=r"skipped 2 malformed line\(s\), the first at line 2"):
        frame = read_delimited(slow, sep=",", errors="skip")
    assert frame.to_dict("list") == {"user": [4], "item": [5]}
    header = _write(tmp_path / "h.csv", b"us\xffer,item\n1,2\n")
    with pytest.raises(DataError, match=re.escape(f"{header}: line 1, byte 3")):
        read_delimited(header, sep=",", errors="skip")  # a header is never skipped


def test_latin1_readers_still_read_latin1_bytes(tmp_path: Path) -> None:
    dat = _write(tmp_path / "movies.dat", b"1::Caf\xe9 (1999)::Drama\n")
    frame = read_delimited(dat, sep="::", names=["item", "title", "g"], encoding="latin-1")
    assert frame["title"].tolist() == ["Café (1999)"]


def test_ncf_rating_files(tmp_path: Path) -> None:
    prefix = tmp_path / "x"
    _write(tmp_path / "x.train.rating", b"0\t1\t5\t0\n\xff1\t0\t5\t0\n")
    _write(tmp_path / "x.test.rating", b"0\t2\t5\t0\n")
    _write(tmp_path / "x.test.negative", b"(0,2)\t0\n")
    with pytest.raises(DataError) as exc:
        read_ncf(prefix)
    _says(exc, tmp_path / "x.train.rating", 2, 1)


def test_given_files_every_format(tmp_path: Path) -> None:
    lines = _write(tmp_path / "lines.txt", b"0 1 2\n1 2 3\n2 \xff3 4\n")
    with pytest.raises(DataError) as exc:
        read_user_lines(lines)
    _says(exc, lines, 3, 3)
    rows = _write(tmp_path / "u1.base", b"1\t2\t5\t9\n1\t3\t5\t9\n2\t3\xa0\t4\t9\n")
    with pytest.raises(DataError) as exc:
        read_rows(rows)
    _says(exc, rows, 3, 4)
    table = _write(tmp_path / "test.csv", b"user,item\n0,3\n\xff1,4\n")
    with pytest.raises(DataError) as exc:
        read_pairs(table)
    _says(exc, table, 3, 1)
    train = _write(tmp_path / "train.txt", b"0 1 2\n1 2 3\n")
    with pytest.raises(DataError) as exc:
        given_split(train, lines)
    _says(exc, lines, 3, 3)
    with pytest.raises(DataError) as exc:
        given_split(lines, table)
    _says(exc, lines, 3, 3)


def test_parquet_text_that_is_not_utf8(tmp_path: Path) -> None:
    items = pa.array([1, 2, 3], pa.int64())
    binary = tmp_path / "b.parquet"
    pq.write_table(pa.table({"user": pa.array([b"1", b"2", b"\xff\xfe1"]), "item": items}), binary)
    with pytest.raises(DataError, match=re.escape(f"{binary}: column 'user', row 3, byte 1")):
        read_table(binary)
    broken = tmp_path / "s.parquet"  # a string column a writer filled with Latin-1 bytes
    text = pa.array([b"1", b"\xe92", b"3"]).view(pa.string())
    pq.write_table(pa.table({"user": text, "item": items}), broken)
    with pytest.raises(DataError, match=re.escape(f"{broken}: column 'user', row 2: text that")):
        read_table(broken)
    with pytest.raises(DataError, match="column 'user', row 2"):
        read_pairs(broken)
    clean = tmp_path / "ok.parquet"  # UTF-8 bytes are text ids, as a CSV's would be
    pq.write_table(pa.table({"user": pa.array([b"a", b"b", "é".encode()]), "item": items}), clean)
    assert read_table(clean).user_map.ids.tolist() == ["a", "b", "é"]
    assert np.asarray(read_pairs(clean)[0]["user"]).tolist() == ["a", "b", "é"]
