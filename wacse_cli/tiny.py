"""A tiny XLM-R-shaped model built offline: for the demo and the tests.

The tokenizer is a Unigram sentencepiece model trained on the given sentences with the
``tokenizers`` library and a ``<s> $A </s>`` post-processor; the encoder is an
``XLMRobertaForMaskedLM`` with a few small layers and random weights. Both are written with
``save_pretrained``, so the folder loads by path like any Hugging Face model.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0-3, then <mask>


def train_tokenizer(sentences: list[str], vocab_size: int = 1000):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, unk_token="<unk>")
    tokenizer.train_from_iterator(sentences, trainer)
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return tokenizer


def build_tiny_model(
    folder: str | os.PathLike,
    sentences: list[str],
    *,
    vocab_size: int = 1000,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_length: int = 128,
    seed: int = 0,
    question_answering: bool = False,
) -> Path:
    """Write a tiny model folder (masked-LM head, or a QA head with ``question_answering``)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaForQuestionAnswering, XLMRobertaTokenizerFast

    from .model import quiet_transformers

    quiet_transformers()
    folder = Path(folder)
    raw = train_tokenizer(sentences, vocab_size)
    tokenizer = XLMRobertaTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>",
        cls_token="<s>", pad_token="<pad>", mask_token="<mask>", model_max_length=max_length,
    )
    config = XLMRobertaConfig(
        vocab_size=raw.get_vocab_size(), hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=hidden_size * 2, max_position_embeddings=max_length + 2,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
    )
    torch.manual_seed(seed)
    model_class = XLMRobertaForQuestionAnswering if question_answering else XLMRobertaForMaskedLM
    model = model_class(config)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder
