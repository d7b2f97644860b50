"""--backend torch|onnx|onnx-int8: the exported graphs reproduce PyTorch's vectors, language ids
included, the export happens once per model, and a missing onnxruntime is one clear line."""
import shutil

import numpy as np
import pytest
import torch

from wacse_cli import backends
from wacse_cli.backends import onnx_available, prepare_backend, resolve_backend
from wacse_cli.embed import encode
from wacse_cli.errors import UsageError
from wacse_cli.model import load_encoder

from .conftest import demo_pairs

needs_onnx = pytest.mark.skipif(not onnx_available(), reason="onnxruntime, onnx or onnxscript is not installed")
SENTENCES = [s for pair in demo_pairs("kk")[:24] for s in pair]
MISSING = ("wacse: error: --backend onnx needs onnxruntime, onnx and onnxscript, which are not installed; "
           "install it with: pip install 'wacse[onnx]' (or use --backend torch)")


@pytest.fixture(scope="session")
def lang_model(tiny_model, tmp_path_factory) -> str:
    """The tiny model with a trained-looking (non-zero) language embedding over en and kk."""
    encoder = load_encoder(tiny_model, lang_embedding_for=["en", "kk"])
    torch.manual_seed(0)
    torch.nn.init.normal_(encoder.lang_embedding.weight, std=0.5)
    folder = tmp_path_factory.mktemp("models") / "tiny-lang"
    encoder.save(folder)
    return str(folder)


@pytest.fixture(scope="session")
def onnx_cache(tiny_model, lang_model, tmp_path_factory):
    """Both tiny models exported once per session (each export takes seconds)."""
    home = tmp_path_factory.mktemp("onnx-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WACSE_HOME", str(home))
        for model, backend in ((tiny_model, "onnx-int8"), (lang_model, "onnx")):
            prepare_backend(load_encoder(model), model, backend, progress=False)
    return home / "onnx"


@pytest.fixture
def exported(onnx_cache, wacse_home, monkeypatch):
    """This test's cache holds the exports; exporting again would fail the test."""
    shutil.copytree(onnx_cache, wacse_home / "onnx")

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the graphs")

    monkeypatch.setattr(backends, "export_fp32", no_export)
    monkeypatch.setattr(backends, "quantize_int8", no_export)


def lowest_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


@needs_onnx
@pytest.mark.parametrize("backend, floor", [("onnx", 0.9999), ("onnx-int8", 0.99)])
def test_onnx_vectors_match_torch(tiny_model, exported, backend, floor):
    encoder = load_encoder(tiny_model)
    forward = prepare_backend(encoder, tiny_model, backend, progress=False)
    vectors = encode(encoder, SENTENCES, batch_size=8, progress=False, backend=forward)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert lowest_cosine(vectors, encode(encoder, SENTENCES, batch_size=8, progress=False)) >= floor


@needs_onnx
@pytest.mark.parametrize("lang", [None, "en", "kk"])
def test_language_embedding_survives_export(lang_model, exported, lang):
    encoder = load_encoder(lang_model)
    forward = prepare_backend(encoder, lang_model, "onnx", progress=False)
    torch_vectors = encode(encoder, SENTENCES, batch_size=8, progress=False, lang=lang)
    onnx_vectors = encode(encoder, SENTENCES, batch_size=8, progress=False, lang=lang, backend=forward)
    assert lowest_cosine(onnx_vectors, torch_vectors) >= 0.9999
    if lang is not None:  # the language id changes the vectors, so the check above is not vacuous
        assert lowest_cosine(torch_vectors, encode(encoder, SENTENCES, progress=False)) < 0.99


@needs_onnx
def test_cli_embed_onnx_int8(cli, tiny_model, exported, tmp_path):
    text, out = tmp_path / "s.txt", tmp_path / "e.npy"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    result = cli("embed", text, "-o", out, "-m", tiny_model, "--device", "cpu", "--backend", "onnx-int8")
    assert result.exit_code == 0, result.output
    expected = encode(load_encoder(tiny_model), SENTENCES, progress=False)
    assert lowest_cosine(np.load(out), expected) >= 0.99


def test_missing_onnxruntime_is_one_line(cli, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "onnx_available", lambda: False)
    text, out = tmp_path / "s.txt", tmp_path / "e.npy"
    text.write_text("one\ntwo\n")
    result = cli("embed", text, "-o", out, "-m", tiny_model, "--device", "cpu", "--backend", "onnx")
    assert result.exit_code == 2
    assert result.stderr.strip() == MISSING
    assert not out.exists()


def test_unknown_backend(cli, tiny_model, tmp_path):
    text = tmp_path / "s.txt"
    text.write_text("one\n")
    result = cli("search", text, "-c", text, "-m", tiny_model, "--backend", "fast")
    assert result.exit_code == 2
    assert result.stderr.strip() == "wacse: error: --backend must be one of auto, torch, onnx, onnx-int8, not 'fast'"


def test_auto_backend_is_int8_on_a_cpu_with_onnxruntime(monkeypatch):
    monkeypatch.setattr(backends, "onnx_available", lambda: True)
    assert resolve_backend("auto", torch.device("cpu")) == "onnx-int8"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    monkeypatch.setattr(backends, "onnx_available", lambda: False)
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    with pytest.raises(UsageError, match="--backend onnx-int8 runs on the CPU, but --device is cuda"):
        resolve_backend("onnx-int8", torch.device("cuda"))


def test_auto_falls_back_to_torch_when_the_export_fails(tiny_model, monkeypatch, capsys):
    from wacse_cli.errors import ModelError

    def refuse(*args, **kwargs):
        raise ModelError("cannot export this model to ONNX: unsupported operator", hint="use --backend torch")

    monkeypatch.setattr(backends, "exported_graph", refuse)
    encoder = load_encoder(tiny_model)
    assert prepare_backend(encoder, tiny_model, "onnx-int8", fall_back=True) is None
    assert capsys.readouterr().err == ("note: cannot export this model to ONNX: unsupported operator; embedding "
                                       "with PyTorch instead (--backend torch skips the export)\n")
    with pytest.raises(ModelError, match="unsupported operator"):
        prepare_backend(encoder, tiny_model, "onnx-int8")


@needs_onnx
def test_damaged_cached_graph_is_one_clear_error(tiny_model, wacse_home):
    from wacse_cli.errors import ModelError
    from wacse_cli.model import fingerprint

    encoder = load_encoder(tiny_model)
    graph = wacse_home / "onnx" / fingerprint(encoder, tiny_model) / backends.FP32_FILE
    graph.parent.mkdir(parents=True)
    graph.write_bytes(b"not a graph")
    with pytest.raises(ModelError, match=f"cannot load the exported graph .*; delete {graph.parent} to export"):
        prepare_backend(encoder, tiny_model, "onnx", progress=False)


@needs_onnx
def test_int8_keeps_the_first_half_of_the_feed_forward_outputs_in_fp32(tiny_model, onnx_cache):
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(next(onnx_cache.glob(f"*/{backends.INT8_FILE}")))).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    fp32 = [weights[n.input[1]] for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    layers = load_encoder(tiny_model).backbone.encoder.layer
    assert len(layers) == 2 and len(fp32) == 1  # of two layers, the first layer's FFN output only
    np.testing.assert_array_equal(fp32[0], layers[0].output.dense.weight.detach().numpy().T)



@needs_onnx
def test_batches_run_at_once_give_the_sequential_vectors_in_order(tiny_model, exported):
    encoder = load_encoder(tiny_model)
    forward = prepare_backend(encoder, tiny_model, "onnx-int8", progress=False)
    forward.workers = 3
    ids = encoder.tokenizer(SENTENCES[:10], padding=True, return_tensors="np")
    batches = [(ids["input_ids"][i:i + 2], ids["attention_mask"][i:i + 2], None, i) for i in range(0, 10, 2)]
    results = list(forward.map(iter(batches)))
    assert [batch[3] for batch, _ in results] == [0, 2, 4, 6, 8]
    for batch, vectors in results:
        np.testing.assert_array_equal(vectors, forward(*batch[:3]))


@needs_onnx
def test_attention_is_one_op_where_onnxruntime_runs_it(onnx_cache, monkeypatch):
    import onnx
    import onnxruntime

    graph = onnx.load(str(next(onnx_cache.glob(f"*/{backends.FP32_FILE}")))).graph
    attention = sum(node.op_type == "Attention" for node in graph.node)
    newer = tuple(int(p) for p in onnxruntime.__version__.split(".")[:2]) >= (1, 23)
    assert attention == (2 if newer else 0)  # one per layer of the two-layer tiny model
    monkeypatch.setattr(onnxruntime, "__version__", "1.22.1")
    assert backends._opset() is None
    monkeypatch.setattr(onnxruntime, "__version__", "1.23.0")
    assert backends._opset() == backends.ATTENTION_OPSET
