"""Every weights form with every backend in every consumer (issue 26): a weights file with its JSON, the model folder
`eat-train` writes (RUN/model), a Hub id (offline here: the clear error), an original checkpoint with its YAML; each
with eager PyTorch, ONNX Runtime, OpenVINO (issue 27) and torch.compile; in eat-score, eat-evaluate and `Scorer`.
ONNX Runtime, OpenVINO and the compiled model must give the eager numbers (1e-4), and the cache key of both exports
follows the weights' content.

torch.compile runs with its `eager` backend (graph capture without inductor's C++ compiling, which takes minutes on
2 CPU cores): the compile combinations are the slowest and carry the `slow` marker, but they run with the rest."""
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import eat.config as C
import eat.evaluate as E
import eat.score as S
from eat.export import onnx_cache_key
from eat.train import train
from eat.weights import load_model
from originals import write_original

torch.set_num_threads(1)
FORMS = ["file", "folder", "original", "hub"]
BACKENDS = ["eager", "onnxruntime", "openvino", "compile"]
CONSUMERS = ["eat-score", "eat-evaluate", "Scorer"]
SMALL = dict(dim_stem=16, dims=[16, 32, 64, 128], heads=[1, 2, 2, 4], groups=[-1, -1, 1, 2], window_sizes=[4, 4, 4, 2])
HUB = "hf-hub:someorg/eat-micro-ava"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A real eat-train run folder (1 epoch on 24 synthetic 64 px images) plus an original checkpoint and its YAML."
    from eat.synth import make_synthetic_ava
    root = tmp_path_factory.mktemp("wb")
    synth = make_synthetic_ava(root / "s64", n=24, size=64, seed=0, progress=False)
    cfg = C.load_config("tiny", ["model=eat_micro", f"model_overrides={SMALL}", f"data.root={synth}",
                                 "data.synth_n=24", "data.synth_size=64", "data.img_size=64",
                                 "data.fractions=[0.5, 0.25, 0.25]", "batch_size=4", "epochs=1", "eval_init=false"])
    train(cfg, root / "run", progress=False)
    write_original(root, img_size=64, **SMALL)
    (root / "photos").mkdir()
    for p in sorted((synth / "images").glob("*.jpg"))[:5]: shutil.copy(p, root / "photos" / p.name)
    return root


def _weights(run, form) -> tuple[str, str | None]:
    "The --weights value of a form and its YAML (original checkpoints only)."
    return {"file": (str(run / "run" / "best.safetensors"), None), "folder": (str(run / "run" / "model"), None),
            "original": (str(run / "orig.pth"), str(run / "orig.yaml")), "hub": (HUB, None)}[form]


@pytest.fixture(autouse=True)
def compiled(monkeypatch):
    "Offline Hub; torch.compile with its `eager` backend; the list of torch.compile calls."
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no test needs the network
    real, calls = torch.compile, []
    def spy(model, **kw):
        calls.append(kw)
        return real(model, **{**kw, "backend": "eager"})
    monkeypatch.setattr(torch, "compile", spy)
    return calls


def _score(run, form, backend, consumer, tmp_path, capsys) -> np.ndarray | str:
    "Scores of the photos (eat-score, Scorer) or predictions on the test split (eat-evaluate), or the error text."
    w, yaml_path = _weights(run, form)
    flags = {"eager": [], "compile": ["--compile"]}.get(backend, ["--backend", backend])
    if consumer == "Scorer":
        try: sc = S.Scorer.from_weights(w, yaml_path, device="cpu", batch_size=4, backend="eager" if
                                        backend == "compile" else backend, compile=backend == "compile")
        except OSError as e: return str(e)
        return sc.score(run / "photos").score.to_numpy()
    if consumer == "eat-score":
        out = tmp_path / "scores.csv"
        code = S.main([str(run / "photos"), "--weights", w, *(["--config", yaml_path] if yaml_path else []),
                       "--device", "cpu", "--batch-size", "4", "--out", str(out), "--quiet", *flags])
        err = capsys.readouterr().err
        if code: return err
        t = pd.read_csv(out, keep_default_na=False)
        assert (t.error == "").all() and len(t) == 5
        return t.score.astype(float).to_numpy()
    args = ["--weights", w, "--config", str(run / "run" / "config.yaml"), "--split", "test", "--out", str(tmp_path),
            *(["--model-config", yaml_path] if yaml_path else []), *flags]
    try: E.main(args)
    except SystemExit as e:
        assert e.code == 2
        return capsys.readouterr().err
    return pd.read_csv(tmp_path / "predictions_test.csv").pred_score.to_numpy()


_EAGER: dict = {}


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("backend", [pytest.param(b, marks=pytest.mark.slow) if b == "compile" else b
                                     for b in BACKENDS])
@pytest.mark.parametrize("form", FORMS)
def test_every_form_with_every_backend(run, form, backend, consumer, tmp_path, capsys, compiled):
    got = _score(run, form, backend, consumer, tmp_path, capsys)
    assert len(compiled) == (backend == "compile" and form != "hub")
    if form == "hub":  # offline: the clear error, not a traceback, whatever the backend
        assert isinstance(got, str) and "someorg/eat-micro-ava" in got and "hf download" in got, got
        return
    assert not isinstance(got, str), got
    key = (form, consumer)
    if key not in _EAGER: _EAGER[key] = _score(run, form, "eager", consumer, tmp_path / "eager", capsys)
    assert np.isfinite(got).all() and len(got) == len(_EAGER[key])
    np.testing.assert_allclose(got, _EAGER[key], atol=1e-4, rtol=0)


def test_onnx_cache_follows_the_content_whatever_the_form(run, capsys):
    file_model, folder_model = load_model(run / "run" / "best.safetensors"), load_model(run / "run" / "model")
    assert onnx_cache_key(file_model) == onnx_cache_key(folder_model)  # the same weights saved two ways
    assert S.main([str(run / "photos"), "--weights", str(run / "run" / "model"), "--backend", "onnxruntime",
                   "--quiet", "--out", str(run / "s.csv")]) == 0
    assert [p.name.split(".")[0] for p in (run / "run" / "model").glob("*.onnx")] == ["model"]  # inside the folder
    assert len(list((run / "run").glob("best.*.onnx"))) <= 1


def test_openvino_cache_beside_the_weights_reused_by_the_next_run(run, monkeypatch):
    pytest.importorskip("openvino")
    import eat.export as X
    folder = run / "run" / "model"
    out = [run / f"ov{i}.csv" for i in range(2)]
    args = [str(run / "photos"), "--weights", str(folder), "--backend", "openvino", "--quiet", "--out"]
    assert S.main(args + [str(out[0])]) == 0
    xml = [p.name for p in folder.glob("*.openvino.xml")]
    assert len(xml) == 1 and xml[0].split(".")[0] == "model" and (folder / xml[0]).with_suffix(".bin").is_file()
    assert (folder / xml[0]).with_suffix(".cache").is_dir()  # OpenVINO's compiled model, for the next process
    key = xml[0].split(".")[1]
    assert key == X.export_cache_key(load_model(folder), runtime="openvino", format=X.OPENVINO_FORMAT)
    assert key != onnx_cache_key(load_model(folder))  # another runtime, another file
    monkeypatch.setattr(X, "export_openvino", lambda *a, **k: pytest.fail("converted again"))
    assert S.main(args + [str(out[1])]) == 0
    assert pd.read_csv(out[0]).equals(pd.read_csv(out[1]))


def test_openvino_missing_names_the_extra(run, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "openvino", None)  # what a missing package looks like to `import`
    assert S.main([str(run / "photos"), "--weights", str(run / "run" / "model"), "--backend", "openvino",
                   "--quiet"]) == 2
    assert "pip install 'eat[openvino]'" in capsys.readouterr().err
    with pytest.raises(ImportError, match=r"eat\[openvino\]"):
        S.Scorer.from_weights(run / "run" / "model", backend="openvino")
