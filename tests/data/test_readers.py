"""Readers, each on small files the tests write themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncf import DataError, NCFWarning
from ncf.data.readers import read_delimited, read_ncf, read_table
from ncf.data.readers_movielens import (
    read_ml100k_folds,
    read_ml100k_items,
    read_ml100k_ratings,
    read_ml100k_users,
    read_ml_csv_movies,
    read_ml_csv_ratings,
    read_ml_dat_movies,
    read_ml_dat_ratings,
    read_ml_dat_users,
)
from ncf.data.readers_other import (
    read_lastfm_2k,
    read_lastfm_2k_artists,
    read_lastfm_360k,
    read_libimseti,
    read_libimseti_gender,
)
from ncf.data.split import leave_one_out


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# ---------------------------------------------------------------- generic tables


@pytest.mark.parametrize(
    ("name", "text", "sep"),
    [
        ("a.csv", "user,item,rating\nu1,i1,4\nu1,i2,3\nu2,i1,5\n", None),
        ("a.tsv", "user\titem\trating\nu1\ti1\t4\nu1\ti2\t3\nu2\ti1\t5\n", None),
        ("a.txt", "user;item;rating\nu1;i1;4\nu1;i2;3\nu2;i1;5\n", None),
        ("b.txt", "user;item;rating\nu1;i1;4\nu1;i2;3\nu2;i1;5\n", ";"),
    ],
)
def test_read_table_delimited(tmp_path: Path, name: str, text: str, sep: str | None) -> None:
    inter = read_table(write(tmp_path / name, text), rating="rating", sep=sep)
    assert inter.shape == (2, 2) and len(inter) == 3
    assert inter.ratings is not None and inter.ratings.tolist() == [4, 3, 5]


def test_read_table_parquet_and_dataframe(tmp_path: Path) -> None:
    df = pd.DataFrame({"u": [1, 1, 2], "i": [10, 20, 10], "ts": [3, 2, 1]})
    df.to_parquet(tmp_path / "x.parquet")
    from_file = read_table(tmp_path / "x.parquet", user="u", item="i", timestamp="ts")
    from_df = read_table(df, user="u", item="i", timestamp="ts")
    assert np.array_equal(from_file.items, from_df.items)
    assert from_file.timestamps is not None and from_file.timestamps.tolist() == [3, 2, 1]


def test_read_table_duplicates_and_scale(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "user,item,rating\n1,1,4\n1,1,2\n2,1,5\n")
    with pytest.raises(DataError, match="occur more than once"):
        read_table(path, rating="rating", duplicates="error")
    # the one policy: the latest row of a repeated pair is kept, and a warning counts them
    with pytest.warns(NCFWarning, match="1 repeated \\(user, item\\) row\\(s\\) merged"):
        assert read_table(path, rating="rating").ratings.tolist() == [2, 5]  # type: ignore[union-attr]
    assert read_table(path, rating="rating", duplicates="max").ratings.tolist() == [4, 5]  # type: ignore[union-attr]
    with pytest.raises(DataError, match="outside the declared scale 1-4"):
        read_table(path, rating="rating", duplicates="max", rating_scale=(1, 4))


def test_read_table_missing_column_and_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing column"):
        read_table(write(tmp_path / "m.csv", "user,thing\n1,2\n"))
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "nope.csv")


# ---------------------------------------------------------------- malformed lines


def test_too_many_fields_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", "1\t2\t3\t4\n\n5\t6\t7\t8\t9\n1\t1\t1\t1\n")
    with pytest.raises(DataError, match=r"r\.tsv: line 3: expected 4 fields, found 5"):
        read_delimited(path, sep="\t", names=list("uirt"), numeric=list("uirt"))


def test_non_numeric_and_short_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "r.dat", "1::2::3::4\n1::3::x::4\n2::2::3\n")
    with pytest.raises(DataError, match=r"r\.dat: line 2: field 'r' .*'x'.*2 malformed"):
        read_delimited(path, sep="::", names=list("uirt"), numeric=list("uirt"))


def test_skip_counts_and_warns(tmp_path: Path) -> None:
    text = "user,item,rating\n1,1,4\n1,2\n2,1,five\n2,2,3,9\n3,3,1\n"
    path = write(tmp_path / "s.csv", text)
    with pytest.raises(DataError, match=r"s\.csv: line 3: expected 3 fields, found 2"):
        read_table(path, rating="rating")
    with pytest.warns(NCFWarning, match=r"skipped 3 malformed line\(s\), the first at line 3"):
        inter = read_table(path, rating="rating", errors="skip")
    assert len(inter) == 2 and inter.ratings.tolist() == [4, 1]  # type: ignore[union-attr]


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        read_delimited(write(tmp_path / "e.tsv", ""), sep="\t", names=["a", "b"])


# ---------------------------------------------------------------- NCF benchmark format


def write_ncf(tmp_path: Path, negative: str) -> Path:
    write(tmp_path / "toy.train.rating", "0\t0\t5\t10\n0\t1\t4\t11\n1\t1\t3\t12\n2\t0\t1\t0\n")
    write(tmp_path / "toy.test.rating", "0\t2\t5\t20\n1\t0\t4\t21\n2\t2\t1\t22\n")
    write(tmp_path / "toy.test.negative", negative)
    return tmp_path / "toy"


def test_read_ncf_sizes_from_all_files_and_keeps_negatives(tmp_path: Path) -> None:
    prefix = write_ncf(tmp_path, "(0,2)\t3\t2\n(1,0)\t2\t6\n(2,2)\t1\t3\n")
    split = read_ncf(prefix)
    assert len(split.train) == 4 and len(split.test) == 3
    assert split.train.n_users == 3 and split.train.n_items == 7  # 6 only among negatives
    assert split.test.user_map == split.train.user_map
    assert split.negatives.dtype == np.int64 and split.negatives.shape == (3, 2)
    assert split.negatives[0].tolist() == [3, 2]  # the positive 2 is kept as given


def test_read_ncf_mismatched_pair_names_line(tmp_path: Path) -> None:
    prefix = write_ncf(tmp_path, "(0,2)\t3\t4\n(1,5)\t2\t6\n(2,2)\t1\t3\n")
    with pytest.raises(DataError, match=r"toy\.test\.negative: line 2: pair \(1,5\)"):
        read_ncf(prefix)


def test_read_ncf_bad_pair_and_line_count(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 3: expected '\(user,item\)'"):
        read_ncf(write_ncf(tmp_path, "(0,2)\t3\t4\n(1,0)\t2\t6\n2,2\t1\t3\n"))
    with pytest.raises(DataError, match="2 lines for 3 test rows"):
        read_ncf(write_ncf(tmp_path, "(0,2)\t3\t4\n(1,0)\t2\t6\n"))
    with pytest.raises(DataError, match=r"line 2: expected 3 fields, found 2"):
        read_ncf(write_ncf(tmp_path, "(0,2)\t3\t4\n(1,0)\t2\n(2,2)\t1\t3\n"))


def write_train(tmp_path: Path, rows: str) -> Path:
    write(tmp_path / "toy.train.rating", rows)
    write(tmp_path / "toy.test.rating", "0\t9\t1\t500\n1\t9\t1\t500\n")
    write(tmp_path / "toy.test.negative", "(0,9)\t8\n(1,9)\t8\n")
    return tmp_path / "toy"


def test_read_ncf_unknown_times_in_row_order_take_the_latest_known(tmp_path: Path) -> None:
    # users interleaved; each user's known times rise with the rows, 0 = unknown
    rows = "0\t0\t1\t100\n1\t0\t1\t0\n0\t1\t1\t0\n1\t1\t1\t50\n0\t2\t1\t0\n1\t2\t1\t0\n"
    split = read_ncf(write_train(tmp_path, rows))
    assert split.train.timestamps is not None
    assert split.train.timestamps.tolist() == [100, 0, 100, 50, 100, 50]
    # so each user's latest row is the last one of the file, as the file's order says
    _, held = leave_one_out(split.train, by="time")
    assert sorted(zip(held.users.tolist(), held.items.tolist(), strict=True)) == [(0, 2), (1, 2)]


def test_read_ncf_unknown_times_out_of_order_drop_the_column(tmp_path: Path) -> None:
    rows = "0\t0\t1\t100\n0\t1\t1\t0\n0\t2\t1\t50\n1\t0\t1\t7\n"
    with pytest.warns(NCFWarning, match=r"1 of 4 rows have timestamp 0 .* dropped"):
        split = read_ncf(write_train(tmp_path, rows))
    assert split.train.timestamps is None
    assert split.test.timestamps is not None  # the test file's times are all known


# ---------------------------------------------------------------- MovieLens

GENRE_FLAGS = "|".join(["0"] * 19)


def test_ml100k(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t10\t3\t100\n2\t10\t5\t101\n2\t20\t1\t102\n1\t20\t4\t103\n")
    flags_a = "|".join(["0", "1", "1"] + ["0"] * 16)
    item_text = (
        f"10|Café (1995)|01-Jan-1995||http://x|{flags_a}\n"
        f"20|B (1996)|01-Jan-1996||http://y|{GENRE_FLAGS}\n"
    )
    write(tmp_path / "u.item", item_text, "latin-1")
    write(tmp_path / "u.user", "1|24|M|technician|85711\n2|53|F|other|T8H1N\n")
    inter = read_ml100k_ratings(tmp_path / "u.data")
    assert inter.shape == (2, 2) and inter.ratings.tolist() == [3, 5, 1, 4]  # type: ignore[union-attr]
    items = read_ml100k_items(tmp_path / "u.item")
    assert items["title"].tolist() == ["Café (1995)", "B (1996)"]
    assert items["genres"].tolist() == [["Action", "Adventure"], []]
    users = read_ml100k_users(tmp_path / "u.user")
    assert users["zip"].tolist() == ["85711", "T8H1N"] and users["age"].tolist() == [24, 53]
    for k in range(1, 6):
        write(tmp_path / f"u{k}.base", "1\t10\t3\t100\n2\t10\t5\t101\n2\t20\t1\t102\n")
        write(tmp_path / f"u{k}.test", "1\t20\t4\t103\n")
    folds = read_ml100k_folds(tmp_path, inter.user_map, inter.item_map)
    assert len(folds) == 5 and [len(t) for t in folds[0]] == [3, 1]
    assert folds[4][1].item_map == inter.item_map


def test_ml100k_rating_out_of_scale(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="outside the declared scale 1-5"):
        read_ml100k_ratings(write(tmp_path / "u.data", "1\t10\t6\t100\n"))


def test_ml_dat_files(tmp_path: Path) -> None:
    ratings = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    inter = read_ml_dat_ratings(ratings)
    assert len(inter) == 2 and inter.timestamps.tolist() == [978300760, 978302109]  # type: ignore[union-attr]
    movies = write(tmp_path / "movies.dat",
                   "1193::One Flew: Über (1975)::Drama\n661::James::Animation|Children's\n",
                   "latin-1")  # fmt: skip
    frame = read_ml_dat_movies(movies)
    assert frame["title"].tolist()[0] == "One Flew: Über (1975)"
    assert frame["genres"].tolist() == [["Drama"], ["Animation", "Children's"]]
    users = read_ml_dat_users(write(tmp_path / "users.dat", "1::F::1::10::01234\n"))
    assert users.iloc[0].tolist() == [1, "F", 1, 10, "01234"]
    half = write(tmp_path / "r10.dat", "1::1::0.5::1\n")
    with pytest.raises(DataError, match="scale"):
        read_ml_dat_ratings(half)
    assert len(read_ml_dat_ratings(half, rating_scale=(0.5, 5))) == 1


def test_ml_csv_files(tmp_path: Path) -> None:
    ratings = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\r\n"
                    "1,1,4.0,964982703\r\n1,3,0.5,964981247\r\n")  # fmt: skip
    inter = read_ml_csv_ratings(ratings)
    assert inter.ratings.tolist() == [4.0, 0.5]  # type: ignore[union-attr]
    movies = write(tmp_path / "movies.csv", "movieId,title,genres\n"
                   '1,"American President, The (1995)",Comedy|Drama\n'
                   "3,Nothing (2000),(no genres listed)\n")  # fmt: skip
    frame = read_ml_csv_movies(movies)
    assert frame["title"].tolist()[0] == "American President, The (1995)"
    assert frame["genres"].tolist() == [["Comedy", "Drama"], []]
    with pytest.raises(DataError, match="expected the header"):
        read_ml_csv_ratings(write(tmp_path / "bad.csv", "user,item,rating,timestamp\n1,1,4,1\n"))


# ---------------------------------------------------------------- Last.fm, LibimSeTi


def test_lastfm_360k_falls_back_to_name_and_sums(tmp_path: Path) -> None:
    path = write(
        tmp_path / "plays.tsv", "u1\tm-a\tA\t10\nu1\t\tB\t5\nu1\tm-a\tA!\t2\nu2\tm-a\tA\t3\n"
    )
    with pytest.warns(NCFWarning, match=r"1 row\(s\) have no artist MBID"):
        inter = read_lastfm_360k(path)
    df = inter.to_dataframe()
    assert df.values.tolist() == [["u1", "m-a", 12.0], ["u1", "B", 5.0], ["u2", "m-a", 3.0]]


def test_lastfm_360k_row_without_artist(tmp_path: Path) -> None:
    path = write(tmp_path / "plays.tsv", "u1\tm-a\tA\t10\nu2\t\t\t4\n")
    with pytest.raises(DataError, match=r"plays\.tsv: line 2: no artist MBID and no artist name"):
        read_lastfm_360k(path)
    with pytest.warns(NCFWarning, match=r"skipped 1"):
        assert len(read_lastfm_360k(path, errors="skip")) == 1


def test_lastfm_2k(tmp_path: Path) -> None:
    path = write(tmp_path / "user_artists.dat", "userID\tartistID\tweight\r\n2\t51\t13883\r\n"
                 "2\t52\t11690\r\n3\t51\t7\r\n")  # fmt: skip
    inter = read_lastfm_2k(path)
    assert inter.shape == (2, 2) and inter.ratings.tolist() == [13883, 11690, 7]  # type: ignore[union-attr]
    artists = write(tmp_path / "artists.dat", "id\tname\turl\tpictureURL\n51\tNULL\thttp://a\t\n")
    assert read_lastfm_2k_artists(artists).iloc[0].tolist() == [51, "NULL", "http://a"]


def test_libimseti(tmp_path: Path) -> None:
    inter = read_libimseti(write(tmp_path / "ratings.dat", "1,133,8\n1,720,6\n2,133,10\n"))
    assert inter.shape == (2, 2) and inter.ratings.tolist() == [8, 6, 10]  # type: ignore[union-attr]
    with pytest.raises(DataError, match="scale 1.0-10.0"):
        read_libimseti(write(tmp_path / "bad.dat", "1,133,11\n"))
    gender = read_libimseti_gender(write(tmp_path / "gender.dat", "1,F\n2,M\n133,U\n"))
    assert gender["gender"].tolist() == ["F", "M", "U"]
    with pytest.raises(DataError, match=r"g2\.dat: line 2: gender must be F, M or U, got 'X'"):
        read_libimseti_gender(write(tmp_path / "g2.dat", "1,F\n2,X\n"))
