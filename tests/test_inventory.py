"""The inventory (eat.inventory): every bad-file kind is reported with its reason and excluded, usable oddities are
flagged, the CLI works, and a loader over a folder of such files completes its epochs. Files nobody here made get a
row each and print nothing; a file that decodes forever or crashes its decoder is reported; a scan killed midway
and resumed ends with the same report (issue 26)."""
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from eat.data import make_split, read_csv_labels
from eat.datasets import IAADataset, make_loader
from eat.images import build_transform
from eat.inventory import exclude_bad, inspect_image, main, read_report, scan_images, summarize
from odd_files import ODD, png_header, write_odd_files

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


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
    (d / "bomb.png").write_bytes(png_header(100_000, 100_000))
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


def _cli(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "eat.inventory", *map(str, args), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_files_nobody_made_get_a_row_each_and_the_terminal_stays_quiet(folder, tmp_path):
    write_odd_files(folder)
    r = _cli(folder, "--out", tmp_path / "q")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip() == "", r.stderr  # no libtiff, no Pillow warning
    rep = read_report(tmp_path / "q" / "inventory.csv")
    assert len(rep) == len(EXPECTED) + len(ODD) and f"{len(rep)} files:" in r.stdout
    got = rep.set_index(pd.Index([Path(p).name for p in rep.path]))
    for name, (reason, text) in ODD.items():
        row = got.loc[name]
        assert row.reason == reason and text in row.detail + row.warnings, (name, row.to_dict())
    assert "ZIPDecode" in got.loc["noisy.tif"].warnings  # what libtiff printed from C, captured per file
    assert json.loads((tmp_path / "q" / "inventory.json").read_text())["n_warned"] >= 2
    loud = _cli(folder, "--out", tmp_path / "v", "--verbose")
    assert loud.returncode == 0 and "Invalid APNG" in loud.stderr and "ZIPDecode" in loud.stderr, loud.stderr
    assert (tmp_path / "v" / "inventory.csv").read_text() == (tmp_path / "q" / "inventory.csv").read_text()


def _stubborn(path, **kw):
    "A judge for the tests: `slow*` files decode forever, `crash*` files kill their decoder's process."
    name = Path(path).name
    if name.startswith("slow"): time.sleep(120)
    if name.startswith("crash"): os.kill(os.getpid(), signal.SIGSEGV)
    return inspect_image(path, **kw)


def test_a_file_that_decodes_forever_or_crashes_is_reported(folder):
    for name in ("slow.jpg", "crash.jpg"): (folder / name).write_bytes((folder / "good.jpg").read_bytes())
    t0 = time.monotonic()
    rep = scan_images(folder, workers=2, timeout=3, progress=False, check=_stubborn)
    assert time.monotonic() - t0 < 60
    why = dict(zip(rep.image_id, rep.reason))
    assert (why["slow"], why["crash"], why["good"]) == ("timeout", "crashed", "") and len(rep) == len(EXPECTED) + 2
    assert rep.detail[rep.image_id == "crash"].iloc[0] == "the decoder ended its process (signal 11)"


def _slowly(path, **kw):
    time.sleep(0.3)
    return inspect_image(path, **kw)


def test_killed_midway_then_resumed_ends_with_the_same_report(folder, tmp_path):
    write_odd_files(folder)
    full = _cli(folder, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    report = tmp_path / "killed" / "inventory.csv"
    scan = mp.get_context("fork").Process(target=scan_images, args=(folder,),
                                           kwargs=dict(workers=1, report=report, progress=False, check=_slowly))
    scan.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (report.is_file() and report.read_text().count("\n") > 4):
        time.sleep(0.05)
    os.kill(scan.pid, signal.SIGKILL)  # no chance to clean up: what it wrote is all there is
    scan.join()
    kept = read_report(report)
    assert 4 <= len(kept) < len(EXPECTED) + len(ODD), len(kept)
    resumed = _cli(folder, "--out", tmp_path / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert report.read_text() == (tmp_path / "full" / "inventory.csv").read_text()
    # a kill in the middle of writing a row: the half row is dropped and judged again
    lines = report.read_text().split("\n")
    report.write_text("\n".join(lines[:6]) + "\n" + lines[6][:9])
    assert len(read_report(report)) == 5
    assert _cli(folder, "--out", tmp_path / "killed", "--resume").returncode == 0
    assert report.read_text() == (tmp_path / "full" / "inventory.csv").read_text()
