"""The language-ID embedding (paper section 6.1): random at the start, saved and reloaded, applied
only with a language, and a warning when a model trained with it embeds without one."""
import json

import numpy as np
import torch

from wacse_cli.embed import encode
from wacse_cli.model import load_encoder


def test_fresh_language_embedding_is_random_at_the_backbone_scale(tiny_model):
    torch.manual_seed(0)
    encoder = load_encoder(tiny_model, lang_embedding_for=["en", "kk", "ka"])
    weight = encoder.lang_embedding.weight.detach()
    std = encoder.backbone.config.initializer_range
    assert weight.shape == (3, encoder.hidden_size)
    assert not torch.equal(weight[0], weight[1])  # the languages start apart, not all at zero
    assert 0.5 * std < float(weight.std()) < 1.5 * std


def test_saved_language_embedding_reloads_and_warns_without_a_language(tiny_model, tmp_path, capsys):
    encoder = load_encoder(tiny_model, lang_embedding_for=["en", "kk"])
    encoder.save(tmp_path / "model")
    st_config = json.loads((tmp_path / "model" / "config_sentence_transformers.json").read_text())
    assert "language-ID embedding that sentence-transformers does not apply" in st_config["wacse_note"]
    loaded = load_encoder(str(tmp_path / "model"))
    torch.testing.assert_close(loaded.lang_embedding.weight, encoder.lang_embedding.weight)
    with_kk = encode(loaded, ["a sentence"], lang="kk", progress=False)
    assert "warning" not in capsys.readouterr().err
    without = encode(loaded, ["a sentence"], progress=False)
    encode(loaded, ["again"], progress=False)
    err = capsys.readouterr().err
    assert err.count("warning: this model was trained with a language-ID embedding (en, kk) but no language was "
                     "given, so it is not applied; pass --lang") == 1
    assert not np.allclose(with_kk, without)
