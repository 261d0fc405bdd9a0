"""Training mix (train_job/sources.py, data/sources.toml): reading and refusing mix files,
splitting each source its own way, de-duplicating across splits and sources, the shipped corpus."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT
from train_job.__main__ import main
from train_job.config import resolve_config
from train_job.data import DataError, load_dataset
from train_job.sources import (
    assign_splits,
    dedup_key,
    duplicate_rows,
    parse_mix,
    read_mix,
)

WELFAKE_LINE = (
    'welfake = { file = "WELFake_Dataset.csv", text = ["title", "text"], '
    'fake = ["1"], real = ["0"] }'
)


def _write_csv(path: Path, rows: list[dict]) -> str:
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _titles(n: int, label: str, prefix: str, **extra) -> list[dict]:
    tag = prefix.replace(" ", "")
    # Words unique to each row, so that no two rows share a 5-gram.
    return [
        {
            "title": f"{prefix} {i} " + " ".join(f"{tag}{i}w{k}" for k in range(6)),
            "label": label,
            **extra,
        }
        for i in range(n)
    ]


# --- the mix file ----------------------------------------------------------------------------


def test_shipped_mix_names_every_labelled_source_and_no_evaluation_set() -> None:
    mix = read_mix(str(ROOT / "data/sources.toml"))
    assert mix.names() == ["constraint", "recovery", "fakenewsnet", "isot", "covid_rumor"]
    by_name = {s.name: s for s in mix.sources}
    assert by_name["constraint"].split == "files"
    assert by_name["recovery"].text == ("title", "body") and by_name["recovery"].split == "date"
    assert by_name["isot"].cap == 10000
    assert by_name["covid_rumor"].unverified == "drop"
    every_file = [f for s in mix.sources for f in s.files.values()]
    assert not [f for f in every_file if "coaid" in f.lower() or "liar" in f.lower()]


def test_a_welfake_shaped_file_is_one_line_of_the_mix() -> None:
    mix = parse_mix(f"[sources]\n{WELFAKE_LINE}\n")
    (spec,) = mix.sources
    assert spec.files == {"all": "WELFake_Dataset.csv"}
    assert (spec.text, spec.fake, spec.real, spec.split) == (
        ("title", "text"),
        ("1",),
        ("0",),
        "hash",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources = 3", "sources"),
        ("[sources]\n", "sources"),
        ('[sources.a]\ntext = ["title"]\n', "is not valid under any of the given schemas"),
        ('[sources.a]\nfile = "x.csv"\nsplit = "random"\n', "split"),
        ('[sources.a]\nfile = "x.csv"\nweight = 2\n', "weight"),
        ('[sources.a]\nfile = "x.csv"\nunverified = "keep"\n', "unverified"),
        ('[sources.a]\nfile = "x.csv"\ncap = -1\n', "cap"),
        ('[sources.A]\nfile = "x.csv"\n', "does not match"),
        ('[sources.a]\nfile = "x.csv"\nsplit = "files"\n', "needs a files table"),
        (
            '[sources.a]\nfiles = {train = "a", val = "b", test = "c"}\nsplit = "hash"\n',
            "needs a files table",
        ),
        ('[sources.a]\nfile = "x.csv"\nfake = ["x"]\nreal = ["X"]\n', "in both"),
        ('[sources.a]\nfile = "x.csv"\nfake = ["fake", "unverified"]\n', "unverified = 'drop'"),
        ("[sources.a\n", "not valid TOML"),
        ('[mix]\ntest_fraction = 0.7\n[sources.a]\nfile = "x.csv"\n', "test_fraction"),
    ],
)
def test_bad_mix_files_are_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_mix(text, "mix.toml")


def test_bad_mix_exits_2_with_a_message(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "mix.toml"
    bad.write_text('[sources.a]\nfile = "x.csv"\nsplit = "random"\n')
    assert main(["--sources", str(bad), "--no-export"]) == 2
    assert "bad mix file" in capsys.readouterr().err
    assert main(["--sources", str(tmp_path / "absent.toml"), "--no-export"]) == 2


@pytest.mark.parametrize(
    "argv",
    [["--holdout-source", "isot"], ["--source-train-cap", "100"]],
)
def test_mix_settings_without_a_mix_are_refused(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    assert "needs --sources" in capsys.readouterr().err


def test_quick_multisource_profile_is_the_quick_recipe_over_the_mix() -> None:
    quick = resolve_config(["--profile", "quick"], env={})
    multi = resolve_config(["--profile", "quick-multisource"], env={})
    assert (quick.sources, quick.source_train_cap) == ("", 0)
    assert (multi.sources, multi.source_train_cap) == ("data/sources.toml", 2500)
    assert multi.gate_min_agreement == 0.98  # the accuracy bound is unchanged
    mix_keys = ("profile", "sources", "source_train_cap", "gate_min_agreement", "length_groups")
    assert {k: v for k, v in multi.to_dict().items() if k not in mix_keys} == {
        k: v for k, v in quick.to_dict().items() if k not in mix_keys
    }


def test_mpnet_profile_is_the_multisource_recipe_on_mpnet() -> None:
    multi = resolve_config(["--profile", "quick-multisource"], env={})
    mpnet = resolve_config(["--profile", "quick-multisource-mpnet"], env={})
    assert (multi.base_model, multi.int8_ffn_output) == ("", "int8")
    assert (mpnet.base_model, mpnet.int8_ffn_output) == ("local/teacher/all-mpnet-base-v2", "fp32")
    assert (mpnet.learning_rate, multi.calibration, mpnet.calibration) == (
        5e-5,
        "temperature",
        "isotonic",
    )
    own = ("profile", "base_model", "learning_rate", "int8_ffn_output", "calibration")
    assert {k: v for k, v in mpnet.to_dict().items() if k not in own} == {
        k: v for k, v in multi.to_dict().items() if k not in own
    }


def test_full_multisource_profile_is_the_full_recipe_over_the_mix_in_buckets() -> None:
    full = resolve_config(["--profile", "full"], env={})
    multi = resolve_config(["--profile", "full-multisource"], env={})
    assert (multi.sources, multi.source_train_cap) == ("data/sources.toml", 5000)
    assert (full.length_buckets, multi.length_buckets) == (False, True)
    assert multi.gate_min_agreement == 0.98
    assert (full.calibration, multi.calibration) == ("temperature", "isotonic")
    own = ("profile", "sources", "source_train_cap", "length_buckets", "gate_min_agreement")
    own += ("calibration",)
    assert {k: v for k, v in multi.to_dict().items() if k not in own} == {
        k: v for k, v in full.to_dict().items() if k not in own
    }


# --- reading and splitting a source ----------------------------------------------------------


def _mix_folder(tmp_path: Path) -> Path:
    _write_csv(
        tmp_path / "posts_train.csv",
        [{"tweet": r["title"], "label": r["label"]} for r in _titles(20, "fake", "post f")]
        + [{"tweet": r["title"], "label": r["label"]} for r in _titles(20, "real", "post r")],
    )
    for split in ("val", "test"):
        _write_csv(
            tmp_path / f"posts_{split}.csv",
            [{"tweet": f"{split} fake post number {i}", "label": "fake"} for i in range(5)]
            + [{"tweet": f"{split} real post number {i}", "label": "real"} for i in range(5)],
        )
    dated = [
        {**r, "body": "Body words " * 40, "date": f"2020-01-{1 + i % 28:02d}"}
        for i, r in enumerate(_titles(40, "fake", "dated f") + _titles(40, "real", "dated r"))
    ]
    dated.append({"title": "no date here at all", "label": "real", "body": "", "date": ""})
    frame = pd.DataFrame(dated)
    with gzip.open(tmp_path / "dated.csv.gz", "wt") as f:
        frame.to_csv(f, index=False)
    _write_csv(
        tmp_path / "rumours.csv",
        _titles(30, "fake", "rumour f")
        + _titles(30, "real", "rumour r")
        + _titles(7, "unverified", "rumour u"),
    )
    (tmp_path / "mix.toml").write_text(
        f"""
[mix]
val_fraction = 0.1
test_fraction = 0.2
[sources.posts]
text = ["tweet"]
[sources.posts.files]
train = "{tmp_path}/posts_train.csv"
val = "{tmp_path}/posts_val.csv"
test = "{tmp_path}/posts_test.csv"
[sources.dated]
file = "{tmp_path}/dated.csv.gz"
text = ["title", "body"]
max_words = 12
split = "date"
[sources.rumours]
file = "{tmp_path}/rumours.csv"
"""
    )
    return tmp_path / "mix.toml"


def test_each_source_splits_its_own_way_and_rows_keep_their_source(tmp_path: Path) -> None:
    cfg = resolve_config(["--sources", str(_mix_folder(tmp_path))], env={})
    ds = load_dataset(cfg)
    rows = ds.fingerprint["rows_by_source"]
    # Official files kept as they are; 80 dated rows (+1 undated, always train): 20% test per label.
    assert rows["posts"] == {"train": 40, "val": 10, "test": 10}
    assert rows["dated"] == {"train": 81 - 16 - 8, "val": 8, "test": 16}
    # Unverified rumours dropped (the default), the rest split by hash within each label.
    assert rows["rumours"] == {"train": 42, "val": 6, "test": 12}
    assert ds.fingerprint["source_stats"]["rumours"]["dropped_unverified"] == 7
    for split in ("train", "val", "test"):
        assert list(ds.splits[split].columns) == ["text", "label", "source"]
    # Title and the start of the body, cut to max_words.
    dated = ds.splits["train"][ds.splits["train"]["source"] == "dated"]["text"]
    assert dated.str.split().str.len().max() == 12 and dated.str.contains("Body").any()
    # The official test split is the file-split source's test file, whole.
    assert len(ds.test_official) == 10 and set(ds.test_official["source"]) == {"posts"}
    assert ds.fingerprint["mix"]["test_official_source"] == "posts"


def test_date_split_tests_on_the_latest_items_of_each_label() -> None:
    rows = pd.DataFrame(
        {
            "text": [f"item {i}" for i in range(20)],
            "label": [0] * 10 + [1] * 10,
            "date": pd.to_datetime([f"2020-01-{i + 1:02d}" for i in range(10)] * 2),
        }
    )
    spec = parse_mix(
        '[sources.d]\nfile = "x"\nsplit = "date"\nval_fraction = 0.1\ntest_fraction = 0.2\n'
    ).sources[0]
    split = assign_splits(rows, spec)
    for label in (0, 1):
        dates = rows["date"][rows["label"] == label]
        part = split[rows["label"] == label]
        assert part[dates >= "2020-01-09"].eq("test").all() and part.eq("test").sum() == 2
        assert part[dates == "2020-01-08"].eq("val").all() and part.eq("val").sum() == 1


def test_hash_split_does_not_depend_on_row_order_or_other_rows() -> None:
    spec = parse_mix('[sources.h]\nfile = "x"\ntest_fraction = 0.2\n').sources[0]
    rows = pd.DataFrame({"text": [f"claim number {i}" for i in range(200)], "label": [0, 1] * 100})
    split = assign_splits(rows, spec)
    shuffled = rows.sample(frac=1, random_state=3)
    assert assign_splits(shuffled, spec).sort_index().equals(split)
    assert split[rows["label"] == 1].eq("test").sum() == 20  # stratified: 20% of each label


def test_cap_and_per_source_train_cap_are_stratified(tmp_path: Path) -> None:
    mix = _mix_folder(tmp_path)
    mix.write_text(
        mix.read_text().replace(
            'file = "' + str(tmp_path) + '/rumours.csv"',
            'file = "' + str(tmp_path) + '/rumours.csv"\ncap = 40',
        )
    )
    cfg = resolve_config(["--sources", str(mix), "--source-train-cap", "30"], env={})
    ds = load_dataset(cfg)
    assert ds.fingerprint["source_stats"]["rumours"]["capped_to"] == 40
    assert sum(ds.fingerprint["rows_by_source"]["rumours"].values()) <= 40
    train = ds.splits["train"]
    for source, n in train["source"].value_counts().items():
        assert n <= 30, source
        labels = train[train["source"] == source]["label"]
        assert labels.nunique() == 2


def test_a_source_train_cap_wins_over_the_global_one(tmp_path: Path) -> None:
    mix = _mix_folder(tmp_path)
    text = mix.read_text()
    text = text.replace('text = ["tweet"]\n', 'text = ["tweet"]\ntrain_cap = 0\n', 1)
    text = text.replace("max_words = 12\n", "max_words = 12\ntrain_cap = 10\n", 1)
    mix.write_text(text)
    cfg = resolve_config(["--sources", str(mix), "--source-train-cap", "30"], env={})
    counts = load_dataset(cfg).splits["train"]["source"].value_counts()
    assert counts["posts"] == 40  # 0: every training row, whatever --source-train-cap says
    assert counts["dated"] == 10
    assert counts["rumours"] == 30


def test_holdout_source_keeps_only_its_test_split(tmp_path: Path) -> None:
    cfg = resolve_config(
        ["--sources", str(_mix_folder(tmp_path)), "--holdout-source", "rumours"], env={}
    )
    ds = load_dataset(cfg)
    assert ds.fingerprint["rows_by_source"]["rumours"] == {"train": 0, "val": 0, "test": 12}
    with pytest.raises(DataError, match="not in the mix"):
        load_dataset(
            resolve_config(
                ["--sources", str(_mix_folder(tmp_path)), "--holdout-source", "nope"], env={}
            )
        )


def test_unknown_labels_and_missing_columns_are_refused(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", [{"title": "x y", "label": "maybe"}])
    (tmp_path / "mix.toml").write_text(f'[sources.a]\nfile = "{tmp_path}/a.csv"\n')
    cfg = resolve_config(["--sources", str(tmp_path / "mix.toml")], env={})
    with pytest.raises(DataError, match="unknown label values"):
        load_dataset(cfg)
    (tmp_path / "mix.toml").write_text(
        f'[sources.a]\nfile = "{tmp_path}/a.csv"\ntext = ["headline"]\n'
    )
    with pytest.raises(DataError, match=r"missing column\(s\) \['headline'\]"):
        load_dataset(cfg)


def test_a_gz_file_that_is_not_gzip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv.gz").write_text("title,label\nx y,fake\n")
    (tmp_path / "mix.toml").write_text(f'[sources.a]\nfile = "{tmp_path}/a.csv.gz"\n')
    with pytest.raises(DataError, match="cannot parse"):
        load_dataset(resolve_config(["--sources", str(tmp_path / "mix.toml")], env={}))


# --- de-duplication --------------------------------------------------------------------------


def test_dedup_key_drops_case_links_and_any_punctuation() -> None:
    assert dedup_key("Trump’s  BIG win! https://t.co/x") == dedup_key("trump s big win")


def test_duplicates_across_splits_lose_their_train_copy_never_the_test_copy() -> None:
    long_text = "the minister said the new vaccine will reach every clinic by the end of may"
    rows = pd.DataFrame(
        [
            # 0: train copy of a test item in another source, reworded at the end
            ("a", "train", long_text + " officials said"),
            ("b", "test", long_text),
            # 2, 3: exact twins (after normalising) in one source, train and val
            ("a", "train", "Masks WORK, says study!"),
            ("a", "val", "masks work says study"),
            # 4, 5: same split, different sources: the later source's copy goes
            ("a", "train", "Five new cases reported in the county today"),
            ("b", "train", "five new cases reported in the county today."),
            # 6, 7: within one source and split: kept as the source has them
            ("b", "train", "Local school reopens after the holiday break"),
            ("b", "train", "local school reopens after the holiday break"),
            # 8: shares fewer than half of its 5-grams with anything
            (
                "a",
                "test",
                "the minister said the new vaccine is safe for children and adults alike",
            ),
        ],
        columns=["source", "split", "text"],
    )
    drop = duplicate_rows(rows, ["a", "b"])
    assert drop.tolist() == [True, False, True, False, False, True, False, False, False]


def test_mix_dedup_counts_what_it_removed(tmp_path: Path) -> None:
    mix = _mix_folder(tmp_path)
    # A rumour that repeats an official test post word for word.
    frame = pd.read_csv(tmp_path / "rumours.csv")
    frame.loc[len(frame)] = {"title": "TEST fake post number 3!", "label": "fake"}
    frame.to_csv(tmp_path / "rumours.csv", index=False)
    ds = load_dataset(resolve_config(["--sources", str(mix)], env={}))
    removed = ds.fingerprint["dedup_removed"]
    assert sum(removed["rumours"].values()) == 1
    assert removed["posts"]["test"] == 0
    keys = {
        split: set(ds.splits[split]["text"].map(dedup_key)) for split in ("train", "val", "test")
    }
    assert not keys["train"] & keys["test"] and not keys["val"] & keys["test"]


# --- the shipped corpus ----------------------------------------------------------------------


def test_shipped_corpus_files_are_small_and_hold_no_evaluation_item() -> None:
    folder = ROOT / "data/multisource"
    files = sorted(folder.glob("*.csv.gz"))
    assert len(files) == 5
    assert all(f.stat().st_size < 5_000_000 for f in files)
    coaid = pd.read_csv(ROOT / "data/coaid-2020-05/coaid_2020-05_titles.csv", dtype=str)
    liar = pd.read_csv(
        ROOT / "data/liar/test.tsv", sep="\t", header=None, quoting=csv.QUOTE_NONE, dtype=str
    )
    held_out = set(coaid["title"].map(dedup_key)) | set(liar[2].dropna().map(dedup_key))
    for path in files:
        titles = pd.read_csv(path, dtype=str, keep_default_na=False)["title"].map(dedup_key)
        assert not set(titles) & held_out, path.name
