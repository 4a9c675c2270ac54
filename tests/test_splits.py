"""Split files of every format, the official AVA protocol and the `eat-splits audit` command, on small made-up lists."""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eat.data import (check_leakage, load_split, make_split, normalise_id, official_split, read_ava, read_id_list,
                      read_pyiqa_ava, save_split)
from eat.splits import audit_splits, main, read_split_file, split_from_name

N, OFFICIAL = 200, [str(1000 + i) for i in range(150, 190)] + ["99998", "99999"]  # 40 present + 2 missing


@pytest.fixture
def ava(tmp_path):
    "A 200-image AVA.txt, its image folder (one image a byte copy of another, one missing) and a 42-id official list."
    rng = np.random.default_rng(0)
    img = tmp_path / "images"
    img.mkdir()
    lines = []
    for k in range(N):
        iid = 1000 + k
        lines.append(f"{k + 1} {iid} {' '.join(map(str, rng.integers(1, 30, 10)))} 1 2 1396")
        (img / f"{iid}.jpg").write_bytes(f"jpeg bytes of {iid}".encode())
    (img / "1007.jpg").write_bytes((img / "1160.jpg").read_bytes())  # train image 1007 = official test image 1160
    (img / "1003.jpg").unlink()
    (tmp_path / "AVA.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "generic_test.jpgl").write_text("\n".join(OFFICIAL) + "\n")
    return tmp_path


def _ids(f):
    return set(f.image_id)


# ---------------------------------------------------------------- the official protocol (eat.data)
def test_official_split_counts(ava):
    t = read_ava(ava / "AVA.txt", ava / "images")
    with pytest.warns(UserWarning, match="2 of 42 listed test ids are not in the table"):
        s = official_split(t, ava / "generic_test.jpgl", val_size=16, seed=3)
    assert check_leakage(s) == {"train": 144, "val": 16, "test": 40}
    assert set(s.image_id[s.split == "test"]) == set(OFFICIAL[:40])
    assert s.attrs["n_test_listed"] == 42 and s.attrs["n_test_missing"] == 2 and s.attrs["seed"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = official_split(t.sample(frac=1, random_state=1), ava / "generic_test.jpgl", val_size=16, seed=3)
        other = official_split(t, ava / "generic_test.jpgl", val_size=0.1, seed=4)
    assert list(again.split) == list(s.split)  # same seed, any row order: same split
    assert check_leakage(other)["val"] == 16 and set(other.image_id[other.split == "val"]) != set(
        s.image_id[s.split == "val"])
    with pytest.raises(ValueError, match="asks for 160 validation images out of 160"):
        official_split(t, OFFICIAL[:40], val_size=160)


def test_pyiqa_table_and_its_own_split(tmp_path):
    head = "img_name,MOS,c1,c2,c3,c4,c5,c6,c7,c8,c9,c10,semantic_tag1,semantic_tag2,official split,ILGnet split\n"
    rows = [f"{100 + k}.jpg,5.5,{','.join(['1'] * 10)},0,0,{2 if k < 5 else 0},{0 if k < 5 else 2}" for k in range(30)]
    (tmp_path / "meta_info_AVADataset.csv").write_text(head + "\n".join(rows) + "\n")
    t = read_pyiqa_ava(tmp_path / "meta_info_AVADataset.csv", tmp_path)
    assert t.attrs["dataset"] == "pyiqa_ava" and np.allclose(t.score, 5.5) and np.allclose(t.p1, 0.1)
    s = official_split(t, val_size=5, seed=0)  # the table's own test codes
    assert check_leakage(s) == {"train": 20, "val": 5, "test": 5}
    assert _ids(s[s.split == "test"]) == {str(100 + k) for k in range(5)}


# ---------------------------------------------------------------- reading split files
def test_formats_and_ids(ava, tmp_path):
    t = read_ava(ava / "AVA.txt", ava / "images")
    ours = save_split(make_split(t, seed=0), tmp_path / "ours" / "split.csv")
    f = read_split_file(ours)
    assert f.attrs["format"] == "eat" and len(f) == N and set(f.split) == {"train", "val", "test"}
    # the original EAT's per-part CSVs (image ids written as floats by pandas) and TANet-style lists
    (tmp_path / "eat").mkdir()
    (tmp_path / "eat" / "test.csv").write_text("image_id,score2,score3,tag1\n1001.0,3,4,1\n1002.0,1,1,0\n")
    e = read_split_file(tmp_path / "eat" / "test.csv")
    assert (e.attrs["format"], list(e.image_id), set(e.split)) == ("csv", ["1001", "1002"], {"test"})
    (tmp_path / "tanet_val_list.txt").write_text("AVA/images/1001.jpg 5.1\n1002.JPG\n")
    assert list(read_split_file(tmp_path / "tanet_val_list.txt").image_id) == ["1001", "1002"]
    assert [normalise_id(x) for x in ["1001", "1001.jpg", "images/1001.jpg", "1001.0"]] == ["1001"] * 4
    assert split_from_name("AVA_validation_ids.csv") == "val" and split_from_name("all.csv") is None


# ---------------------------------------------------------------- the audit
def test_audit_of_the_official_protocol_is_clean(ava, tmp_path):
    t = read_ava(ava / "AVA.txt", ava / "images")
    with pytest.warns(UserWarning):
        p = save_split(official_split(t, ava / "generic_test.jpgl", val_size=10, seed=0), tmp_path / "split.csv")
    rep = audit_splits([read_split_file(p)], read_id_list(ava / "generic_test.jpgl"), images=ava / "images")
    assert rep["splits"]["test"]["official_test"] == {"count": 40, "share_of_split": 1.0, "share_of_official": 40 / 42}
    assert rep["splits"]["train"]["official_test"]["count"] == 0 == rep["splits"]["val"]["official_test"]["count"]
    assert rep["official_test"]["not_in_any_split"] == 2 and rep["in_several_splits"]["count"] == 0
    assert not rep["val_equals_test"] and set(rep["overlap"].values()) == {0}
    assert rep["missing_images"]["count"] == 1 and rep["missing_images"]["examples"] == ["1003"]


def test_audit_finds_the_leaks_of_a_random_split(ava, tmp_path):
    "A random 90/5/5 split written as the original EAT's three CSVs, with val copied to test as a careless user might."
    t = read_ava(ava / "AVA.txt", ava / "images")
    s = make_split(t, seed=1)
    for part in ("train", "val"):
        s[s.split == part][["image_id"]].to_csv(tmp_path / f"{part}.csv", index=False)
    s[s.split == "val"][["image_id"]].to_csv(tmp_path / "test.csv", index=False)
    files = [read_split_file(tmp_path / f"{p}.csv") for p in ("train", "val", "test")]
    rep = audit_splits(files, OFFICIAL, images=ava / "images", hash=True, progress=False)
    tr = set(s.image_id[s.split == "train"])
    expect = len(tr & set(OFFICIAL))
    assert rep["splits"]["train"]["official_test"]["count"] == expect > 0
    assert rep["splits"]["train"]["official_test"]["share_of_split"] == pytest.approx(expect / len(tr))
    assert rep["val_equals_test"] and rep["overlap"]["val&test"] == 10 == rep["in_several_splits"]["count"]
    listed = {i: {"train"} for i in tr} | {i: {"val", "test"} for i in s.image_id[s.split == "val"]}
    c = rep["by_content"]  # 1007 and 1160 have the same bytes
    assert c["n_hashed"] == len(set(listed) - {"1003"})
    both = "1007" in listed and "1160" in listed
    assert c["duplicate_groups"] == both
    assert c["cross_split_groups"] == (both and len(listed["1007"] | listed["1160"]) > 1)


def test_listed_twice_is_reported_with_file_and_line(tmp_path):
    (tmp_path / "train.txt").write_text("1\n2\n\n1.jpg\n")
    rep = audit_splits([read_split_file(tmp_path / "train.txt")])
    assert rep["listed_twice"]["count"] == 1
    assert rep["listed_twice"]["examples"][0]["where"] == [f"{tmp_path / 'train.txt'}:1", f"{tmp_path / 'train.txt'}:4"]


# ---------------------------------------------------------------- the command
def test_cli_audit(ava, tmp_path, capsys):
    (tmp_path / "ilg_train.txt").write_text("\n".join(str(1000 + k) for k in range(150)) + "\n")  # 10 official ids
    (tmp_path / "ilg_test.txt").write_text("\n".join(str(1000 + k) for k in range(150, 200)) + "\n")
    out = tmp_path / "rep" / "audit.json"
    rc = main(["audit", str(tmp_path / "ilg_train.txt"), str(tmp_path / "ilg_test.txt"), "--official",
               str(ava / "generic_test.jpgl"), "--images", str(ava / "images"), "--json", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert [rep["splits"][p]["official_test"]["count"] for p in ("train", "test")] == [0, 40]
    assert rep["official_test"]["sha256"] and rep["missing_images"]["by_split"] == {"train": 1, "test": 0}
    text = capsys.readouterr().out
    assert "in official test" in text and "val == test: no" in text and "missing from" in text
    # --as names the part of a file whose name does not
    (tmp_path / "ids.txt").write_text("1001\n1002\n")
    assert main(["audit", str(tmp_path / "ids.txt"), "--as", "val", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["splits"]["val"]["n_images"] == 2


@pytest.mark.parametrize("content,fragment", [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "is a binary file"),
    (b"", "is empty (0 bytes)"),
    (b"image_id,split\n1,train\n2,holdout\n", "line 3: split 'holdout' is not train/val/test"),
    (b"1\n2\n", "cannot tell which part"),
])
def test_cli_unreadable_input_names_the_file(tmp_path, capsys, content, fragment):
    bad = tmp_path / "ids.csv"
    bad.write_bytes(content)
    assert main(["audit", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and fragment in err


def test_cli_usage_errors(tmp_path):
    (tmp_path / "train.txt").write_text("1\n")
    with pytest.raises(SystemExit):
        main(["audit", str(tmp_path / "train.txt"), "--hash"])
    with pytest.raises(SystemExit):
        main(["audit", str(tmp_path / "train.txt"), "--as", "train", "test"])
    assert main(["audit", str(tmp_path / "train.txt"), "--official", str(tmp_path / "nope.jpgl")]) == 2


def test_ava_official_config_gives_the_official_split(ava, tmp_path):
    "The built-in `ava_official` config, pointed at the files, splits as official_split does and the audit agrees."
    from eat.config import load_config
    from eat.loaders import make_run_split
    cfg = load_config("ava_official", [f"data.root={ava / 'images'}", f"data.labels={ava / 'AVA.txt'}",
                                       f"data.test_list={ava / 'generic_test.jpgl'}"])
    with pytest.warns(UserWarning, match="2 of 42 listed test ids"):
        s = make_run_split(cfg, tmp_path / "run")
    assert check_leakage(s) == {"train": 152, "val": 8, "test": 40}  # val: 5% of the 160 non-test images
    assert load_split(tmp_path / "run" / "split.csv").attrs["protocol"] == "official"
    rep = audit_splits([read_split_file(tmp_path / "run" / "split.csv")], read_id_list(ava / "generic_test.jpgl"))
    assert [rep["splits"][p]["official_test"]["count"] for p in ("train", "val", "test")] == [0, 0, 40]
