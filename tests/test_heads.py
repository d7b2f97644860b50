"""No silently random head: a model without a trained MLM head is refused for AWP, a model without a
trained span-prediction head is refused as an aligner."""
import pytest
import torch

from wacse_cli.align.wspalign import load_qa_model
from wacse_cli.errors import ModelError
from wacse_cli.model import load_encoder

from .conftest import demo_pairs


@pytest.fixture(scope="module")
def headless_model(tiny_model, tmp_path_factory) -> str:
    """The tiny model's encoder alone, saved like multilingual-e5 or LaBSE: no MLM head."""
    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path_factory.mktemp("headless") / "encoder"
    AutoModel.from_pretrained(tiny_model).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return str(folder)


def test_awp_on_a_model_without_mlm_head_is_refused(headless_model):
    with pytest.raises(ModelError) as error:
        load_encoder(headless_model, with_mlm_head=True)
    assert str(error.value).startswith(f"model '{headless_model}' has no trained masked-language-model head (lm_head.")
    assert "--set mlm_warmup_steps=200" in error.value.hint and "set losses.awp=0" in error.value.hint
    assert load_encoder(headless_model).mlm_head is None  # without AWP the same model loads


def test_a_model_with_its_mlm_head_loads_it(tiny_model):
    assert load_encoder(tiny_model, with_mlm_head=True).mlm_head is not None


def test_cli_train_refuses_awp_without_a_head_before_training(headless_model, cli, tmp_path):
    data = tmp_path / "en-kk.tsv"
    data.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[:40]), encoding="utf-8")
    result = cli("train", data, "-o", tmp_path / "out", "--recipe", "demo", "--set", f"model={headless_model}",
                 "--set", "losses.awp=0.1", "--set", "steps=2")
    assert result.exit_code != 0
    assert "has no trained masked-language-model head" in result.output
    assert "Traceback" not in result.output


def test_span_model_without_qa_outputs_is_refused(tiny_model):
    with pytest.raises(ModelError) as error:
        load_qa_model(tiny_model, device="cpu")  # a masked-LM checkpoint: qa_outputs would be random
    assert str(error.value).startswith(f"model '{tiny_model}' has no trained span-prediction head (qa_outputs.")
    assert "--aligner embed" in error.value.hint


def test_a_fresh_head_is_warmed_up_on_the_text_and_the_encoder_does_not_change(headless_model):
    from wacse_cli.data import Example, encode_examples
    from wacse_cli.head_warmup import warm_up_head

    encoder = load_encoder(headless_model, with_mlm_head=True, fresh_head=True)
    assert encoder.mlm_head is not None and not encoder.mlm_head.trained
    before = {k: v.clone() for k, v in encoder.backbone.state_dict().items()}
    examples = [Example(a, b, "en", "kk", []) for a, b in demo_pairs("kk")[:120]]
    sentences = [s for p in encode_examples(examples, encoder.tokenizer, "", 32, ["en", "kk"]) for s in (p.src, p.tgt)]
    report = warm_up_head(encoder, sentences, steps=60, batch_size=16, seed=0, progress=False)
    assert report.held_out_sentences == 20 and report.steps == 60
    assert report.loss_last < report.loss_first
    assert report.accuracy_after > report.accuracy_before
    assert report.line().startswith("MLM head warm-up (60 steps, encoder frozen): held-out masked-token accuracy ")
    after = encoder.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the tied decoder too: it is the embeddings


def test_cli_train_warms_up_a_fresh_head_when_asked(headless_model, cli, tmp_path):
    import json

    data = tmp_path / "en-kk.tsv"
    data.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[:40]), encoding="utf-8")
    result = cli("train", data, "-o", tmp_path / "out", "--recipe", "demo", "--set", f"model={headless_model}",
                 "--set", "losses.awp=0.1", "--set", "steps=2", "--set", "mlm_warmup_steps=3",
                 "--set", "awp_candidates=64", "--set", "awp_rows=0.5")
    assert result.exit_code == 0, result.output
    assert "MLM head warm-up (3 steps, encoder frozen): held-out masked-token accuracy" in result.output
    warmup = json.loads((tmp_path / "out" / "wacse.json").read_text())["training"]["mlm_head_warmup"]
    assert warmup["steps"] == 3 and warmup["held_out_sentences"] == 20
