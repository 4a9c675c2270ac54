"""The inventory (eat.inventory): every bad-file kind is reported with its reason and excluded, usable oddities are
flagged, the CLI works, and a loader over a folder of such files completes its epochs."""
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from eat.data import make_split, read_csv_labels
from eat.datasets import IAADataset, make_loader
from eat.images import build_transform
from eat.inventory import exclude_bad, inspect_image, main, scan_images, summarize

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(w, h):
    "A small PNG whose header claims w x h pixels (a decompression bomb as far as Pillow can tell at open)."
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + _chunk(b"IEND", b""))


def _photo(w=80, h=60, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h // 8, w // 8, 3), np.uint8)).resize((w, h), Image.BICUBIC)


EXPECTED = {  # file -> (reason or "" when usable, flags)
    "good.jpg": ("", ""),
    "zero.jpg": ("zero_byte", ""),
    "text.jpg": ("not_image", ""),
    "notes.txt": ("not_image", ""),
    "corrupt.png": ("unreadable", ""),
    "truncated.jpg": ("truncated", ""),
    "tiny.jpg": ("tiny", ""),
    "bomb.png": ("huge", ""),
    "grey.jpg": ("", "grayscale"),
    "cmyk.jpg": ("", "cmyk"),
    "rgba.png": ("", "alpha"),
    "deep.png": ("", "grayscale;16bit"),
    "palette.png": ("", "palette"),
    "rotated.jpg": ("", "exif_rotated"),
}


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    _photo().save(d / "good.jpg", quality=90)
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("<html>not a photo</html>")
    (d / "notes.txt").write_text("camera notes")
    _photo(seed=1).save(d / "corrupt.png")
    raw = bytearray((d / "corrupt.png").read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 40] = b"\x00" * 40
    (d / "corrupt.png").write_bytes(bytes(raw))
    _photo(seed=2).save(d / "truncated.jpg", quality=90)
    (d / "truncated.jpg").write_bytes((d / "truncated.jpg").read_bytes()[:-400])
    _photo(20, 12).save(d / "tiny.jpg")
    (d / "bomb.png").write_bytes(_png_bomb(100_000, 100_000))
    _photo().convert("L").save(d / "grey.jpg")
    _photo().convert("CMYK").save(d / "cmyk.jpg")
    _photo().convert("RGBA").save(d / "rgba.png")
    Image.fromarray((np.arange(80 * 60).reshape(60, 80) * 13).astype(np.uint16)).save(d / "deep.png")
    _photo().convert("P").save(d / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    _photo().save(d / "rotated.jpg", exif=exif.tobytes())
    return d


def test_every_bad_kind_reported_and_excluded(folder):
    rep = scan_images(folder, workers=2, progress=False)
    got = {Path(p).name: (r, f) for p, r, f in zip(rep.path, rep.reason.fillna(""), rep["flagged"].fillna(""))}
    assert got == EXPECTED
    assert (rep.status == "excluded").sum() == 7 and set(rep.status[rep.reason == ""]) == {"ok"}
    s = summarize(rep)
    assert s["n_excluded"] == 7 and s["excluded_by_reason"] == {"zero_byte": 1, "not_image": 2, "unreadable": 1,
                                                                "truncated": 1, "tiny": 1, "huge": 1}
    assert s["flags"]["grayscale"] == 2 and s["flags"]["exif_rotated"] == 1
    rot = rep[rep.image_id == "rotated"].iloc[0]
    assert (rot.width, rot.height) == (80, 60)  # header size; open_image returns it upright (60 x 80)


def test_missing_and_limits_from_a_table(folder):
    t = pd.DataFrame({"image_id": ["good", "gone"], "path": ["good.jpg", "gone.jpg"], "score": [5.0, 6.0]})
    rep = scan_images(t, root=folder, progress=False)
    assert list(rep.reason) == ["", "missing"]
    assert inspect_image(folder / "good.jpg", max_pixels=1000)["reason"] == "huge"
    assert inspect_image(folder / "good.jpg", min_side=100)["reason"] == "tiny"
    kept = exclude_bad(t, rep, verbose=False)
    assert list(kept.image_id) == ["good"] and kept.attrs["n_excluded_inventory"] == 1
    assert list(make_split(t, 0, (1, 0, 0), exclude=rep).image_id) == ["good"]


def test_loader_over_folder_with_bad_files_completes_epochs(folder, tmp_path):
    names = sorted(EXPECTED)
    (tmp_path / "labels.csv").write_text("path,score\n" + "".join(f"{n},{i % 9 + 1}\n" for i, n in enumerate(names)))
    t = read_csv_labels(tmp_path / "labels.csv", folder)
    dl = make_loader(IAADataset(t, transform=build_transform("ava", True, 32)), batch_size=4, shuffle=True,
                     num_workers=2)
    for _ in range(2):
        with pytest.warns(UserWarning, match="skipped 6 of 14"):
            n = sum(len(b["index"]) for b in dl)
        assert n == 8
    # every file that cannot be decoded is skipped; `tiny` is an inventory policy (IAADataset's min_side is 1)
    bad = {Path(t.path[i]).name for i in dl.skipped}
    assert bad == {k for k, (r, _) in EXPECTED.items() if r and r != "tiny"} and dl.n_skipped == 12


def test_cli(folder, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "eat.inventory", str(folder), "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "14 files: 7 usable, 7 excluded" in r.stdout
    rep = pd.read_csv(out / "inventory.csv")
    assert len(rep) == 14 and json.loads((out / "inventory.json").read_text())["n_excluded"] == 7
    # with a label file: the listed files, missing ones included; --strict fails when anything is excluded
    (tmp_path / "AVA.txt").write_text("1 good 0 0 0 0 1 0 0 0 0 0 0 0 1\n2 gone 0 0 0 0 1 0 0 0 0 0 0 0 1\n")
    assert main([str(folder), "--labels", str(tmp_path / "AVA.txt"), "--out", str(out), "--no-progress",
                 "--strict"]) == 1
    assert list(pd.read_csv(out / "inventory.csv").reason.fillna("")) == ["", "missing"]

def test_cli_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "nowhere")])
    assert e.value.code == 2 and "is not a folder" in capsys.readouterr().err
