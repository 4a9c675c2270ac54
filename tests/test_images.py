"""One boundary for decoding (issue 26): whatever a decoder raises on a file nobody here made becomes a BadImageError
with a reason and the exception's text, in `open_image` and in every consumer (the training data set and its loader,
the scorer, PIL images a user holds); a decoder's Python warnings are recorded, not printed."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from eat.datasets import IAADataset, make_loader
from eat.images import BadImageError, build_transform, open_image
from eat.model import create_model
from eat.score import Scorer, find_images
from odd_files import ODD, write_odd_files

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return write_odd_files(tmp_path_factory.mktemp("odd"))


def test_open_image_turns_every_decoder_error_into_a_reason(odd):
    for name, (reason, text) in ODD.items():
        notes = []
        if not reason:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # nothing may reach Python's warning machinery
                assert open_image(odd / name, notes=notes).mode == "RGB"
            assert any(text in n for n in notes), notes
            continue
        with pytest.raises(BadImageError) as e: open_image(odd / name, notes=notes)
        assert e.value.reason == reason, (name, e.value)
        if reason != "unreadable": assert text in e.value.detail, (name, e.value.detail)  # libtiff's goes to stderr
        assert str(odd / name) in str(e.value)


def test_machine_conditions_pass_through(odd, monkeypatch):
    def no_memory(*a, **k): raise MemoryError("no memory")
    monkeypatch.setattr(Image, "open", no_memory)
    with pytest.raises(MemoryError): open_image(odd / "anim.png")


def test_training_data_set_and_loader_skip_them(odd):
    names = sorted(ODD) + ["gone.jpg"]
    t = pd.DataFrame({"image_id": names, "path": [str(odd / n) for n in names], "score": np.linspace(2, 8, len(names))})
    ds = IAADataset(t, transform=build_transform("ava", True, 32))
    errors = {ds.paths[i].rsplit("/", 1)[-1]: ds[i].get("error", "") for i in range(len(ds))}
    assert errors["anim.png"] == "" and errors["gone.jpg"].startswith("missing")
    for name, (reason, _) in ODD.items():
        assert errors[name].startswith(reason), (name, errors[name])
    dl = make_loader(ds, batch_size=2, shuffle=True)
    with pytest.warns(UserWarning, match="skipped 5 of 6"):
        assert sum(len(b["index"]) for b in dl) == 1


def test_scorer_rows_for_files_and_for_images_a_user_holds(odd):
    torch.manual_seed(0)
    scorer = Scorer(create_model("eat_micro", img_size=64, window_sizes=[4, 4, 4, 2]), "cpu", batch_size=2)
    table = scorer.score_files(find_images([odd], exts=[".icns", ".dds", ".png", ".tif"]), progress=False)
    got = {p.rsplit("/", 1)[-1]: e for p, e in zip(table.path, table.error)}
    assert got.keys() == ODD.keys()
    for name, (reason, _) in ODD.items():
        assert got[name].startswith(reason) if reason else got[name] == "", (name, got[name])
    with pytest.warns(UserWarning, match="APNG"):  # the user's own Image.open warns; scoring then decodes them
        lazy = [Image.open(odd / "noisy.tif"), Image.open(odd / "anim.png")]
    rows = scorer.score(lazy)
    assert rows.error[0].startswith("unreadable: OSError") and rows.error[1] == ""
    assert np.isnan(rows.score[0]) and 1 <= rows.score[1] <= 10
