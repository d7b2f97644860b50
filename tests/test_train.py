"""wacse train end to end on the tiny model: exact resume, outputs that load anywhere, recipes."""
import json
import math

import numpy as np
import pytest
import torch

from wacse_cli.errors import UsageError
from wacse_cli.gradcache import StepLosses
from wacse_cli.recipe import load_recipe, shipped_recipes, to_toml, valid_keys
from wacse_cli.checkpoints import checkpoint_dir, load_checkpoint
from wacse_cli.train import Trainer, TrainingStopped

from .conftest import demo_pairs


@pytest.fixture
def data_files(tmp_path):
    files = []
    for lang in ("kk", "jv"):
        path = tmp_path / f"en-{lang}.tsv"
        path.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs(lang)[:60]), encoding="utf-8")
        files.append(str(path))
    return files


def small_recipe(tiny_model, *extra):
    return load_recipe("demo", [f'model="{tiny_model}"', "steps=6", "eval_interval=3", "batch_size=16",
                                "chunk_size=6", "dev_size=10", "align.threshold=0.0", *extra])


def test_resume_gives_identical_weights(tiny_model, data_files, tmp_path):
    recipe = small_recipe(tiny_model)
    straight = Trainer(recipe, tmp_path / "straight", files=data_files, progress=False).run()
    assert straight.steps == 6
    first = Trainer(recipe, tmp_path / "resumed", files=data_files, progress=False, stop_after=3).run()
    assert first.steps == 3 and not (tmp_path / "resumed" / "wacse.json").exists()
    resumed = Trainer(recipe, tmp_path / "resumed", files=data_files, progress=False, resume=True).run()
    assert resumed.steps == 6
    a = load_checkpoint(checkpoint_dir(tmp_path / "straight", 6))["model"]
    b = load_checkpoint(checkpoint_dir(tmp_path / "resumed", 6))["model"]
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    log = [json.loads(line) for line in (tmp_path / "straight" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert all(r["word_pairs"] > 0 and r["awp"] > 0 and r["wtr"] > 0 for r in log)


def test_resume_with_rtl_is_exact_and_the_decoder_stays_out_of_the_model(tiny_model, data_files, tmp_path):
    recipe = small_recipe(tiny_model, "losses.rtl=0.1", "losses.awp=0", "losses.wtr=0", "steps=4", "eval_interval=2")
    Trainer(recipe, tmp_path / "straight", files=data_files, progress=False).run()
    Trainer(recipe, tmp_path / "resumed", files=data_files, progress=False, stop_after=2).run()
    Trainer(recipe, tmp_path / "resumed", files=data_files, progress=False, resume=True).run()
    a, b = (load_checkpoint(checkpoint_dir(tmp_path / run, 4)) for run in ("straight", "resumed"))
    assert a["rtl"].keys() == b["rtl"].keys() and len(a["rtl"]) > 10
    for part in ("model", "rtl"):
        for name in a[part]:
            torch.testing.assert_close(a[part][name], b[part][name], rtol=0, atol=0, msg=f"{part}.{name}")
    log = [json.loads(line) for line in (tmp_path / "straight" / "train_log.jsonl").read_text().splitlines()]
    assert all(r["rtl"] > 0 and r["awp"] == 0 for r in log)

    from safetensors import safe_open
    from transformers import AutoModel

    out = tmp_path / "straight"
    with safe_open(str(out / "model.safetensors"), "pt") as saved:
        names = set(saved.keys())
    assert names <= set(AutoModel.from_pretrained(out).state_dict())  # the backbone alone: no decoder, no MLM head
    assert not list(out.glob("*rtl*")) and not list(out.glob("*mlm*"))
    assert json.loads((out / "wacse.json").read_text())["training"]["losses"]["rtl"] == 0.1


def test_output_loads_in_transformers_and_sentence_transformers(tiny_model, data_files, tmp_path, cli):
    out = tmp_path / "run"
    result = cli("train", *data_files, "--recipe", "demo", "-m", tiny_model, "-o", out,
                 "--set", "steps=3", "--set", "eval_interval=3", "--set", "batch_size=16", "--set", "dev_size=10")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "pair\tpairs\tbefore\tafter"
    meta = json.loads((out / "wacse.json").read_text())
    assert meta["pooling"] == "mean" and meta["training"]["steps"] == 3
    assert set(meta["dev_results"]["pairs"]) == {"en-kk", "en-jv"}
    assert (out / "recipe.toml").exists() and (out / "README.md").exists()
    assert not list(out.glob(".export*"))

    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    assert AutoModel.from_pretrained(out).config.hidden_size == 32
    sentences = [a for a, _ in demo_pairs("tl")[:10]]
    st_vectors = SentenceTransformer(str(out), device="cpu").encode(sentences, convert_to_numpy=True)
    src = tmp_path / "s.txt"
    src.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    assert cli("embed", src, "-o", tmp_path / "e.npy", "-m", out).exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), st_vectors, atol=1e-5)


def test_existing_output_needs_resume(tiny_model, data_files, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(UsageError, match="already holds files"):
        Trainer(small_recipe(tiny_model), out, files=data_files, progress=False).run()


def test_too_many_nonfinite_losses_stop_the_run(tiny_model, data_files, tmp_path, monkeypatch):
    monkeypatch.setattr("wacse_cli.train.train_step", lambda *a, **k: StepLosses(math.nan, math.nan, 0, 0, 0))
    recipe = small_recipe(tiny_model, "steps=150", "eval_interval=1000", "losses.awp=0", "losses.wtr=0")
    with pytest.raises(TrainingStopped, match="100 non-finite losses in a row at step 100"):
        Trainer(recipe, tmp_path / "run", files=data_files, progress=False).run()


def test_recipes_and_overrides():
    assert {"cpu-small", "demo", "low-resource-4", "low-resource-5", "low-resource-8", "all-36"} <= set(shipped_recipes())
    for name in shipped_recipes():
        load_recipe(name)
    recipe = load_recipe("low-resource-8", ["losses.awp=0", "lr=1e-5", "languages=jv,kk", 'prefix="query: "'])
    assert recipe.losses.awp == 0.0 and recipe.lr == 1e-5 and recipe.languages == ["jv", "kk"]
    assert recipe.prefix == "query: " and recipe.batch_size == 1024 and recipe.max_length == 32
    assert load_recipe(None, []).losses.tr == 0.8
    with pytest.raises(UsageError) as info:
        load_recipe("cpu-small", ["losses.awq=0"])
    assert str(info.value).startswith("unknown recipe field 'losses.awq' in --set; valid fields: name, description")
    assert "losses.awp" in valid_keys()
    with pytest.raises(UsageError, match="recipe field 'steps' must be int, not 'many'"):
        load_recipe("cpu-small", ["steps=many"])


def test_resolved_recipe_round_trips(tmp_path):
    recipe = load_recipe("cpu-small", ["losses.wtr=0.25", 'description="with \\"quotes\\""'])
    path = tmp_path / "r.toml"
    path.write_text(to_toml(recipe))
    assert load_recipe(str(path)).to_dict() == {**recipe.to_dict(), "name": "cpu-small"}


def test_dev_split_shares_no_sentence_with_training(tmp_path):
    from wacse_cli.io import read_parallel
    from wacse_cli.training_data import load_training_data

    lines = [f"sentence {i}\tфраза {i}" for i in range(40)]
    lines += ["OK\tЖарайды", "OK\tИә", "Cancel\tБас тарту", "Close\tБас тарту"]  # repeated sides
    path = tmp_path / "en-kk.tsv"
    path.write_text("\n".join(lines * 2) + "\n", encoding="utf-8")  # every line twice, too
    for seed in range(5):
        data = load_training_data(load_recipe(None, [f"seed={seed}", "dev_size=8"]), [str(path)])
        text = read_parallel(str(path))
        dev = {s for pair in data.dev[0].pairs for s in pair}
        train = {s for i in data.train_rows[0] for s in text.pairs[i]}
        assert len(data.dev[0].pairs) == 8 and not dev & train and len(train) >= 60
