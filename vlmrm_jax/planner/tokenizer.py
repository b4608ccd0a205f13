"""Builds a T5 SentencePiece tokenizer offline from a text corpus (for planners trained from scratch).

A SentencePiece model (Kudo and Richardson 2018) with T5's special ids (pad 0, end-of-sequence 1, unknown 2, no
beginning-of-sequence token), wrapped as transformers' ``T5TokenizerFast`` without T5's 100 sentinel tokens.
Training runs single-threaded on the corpus in the order given, so the same corpus gives the same tokenizer.

The default model type is BPE, not T5's unigram: on a corpus of few distinct words (the ~120 words of the stacking
instructions and captions) SentencePiece's unigram trainer keeps only ~100 pieces whatever the vocabulary size asked
("robot" -> "ro", "bot"; a tower's subgoal list 57 tokens), while BPE merges up to the size asked (whole words; 39
tokens). transformers converts both to the same fast tokenizer (checked: identical ids to the slow one).
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import sentencepiece
from transformers import T5Tokenizer, T5TokenizerFast

from vlmrm_jax.errors import VlmrmError


def build_t5_tokenizer(texts: Sequence[str], out_dir: str | Path, vocab_size: int = 200,
                       model_type: str = "bpe") -> T5TokenizerFast:
    """Trains the tokenizer on ``texts`` and saves it (``spiece.model``, ``tokenizer.json``, configs) in ``out_dir``.

    Args:
        texts: the corpus, e.g. every instruction and target of a training set.
        out_dir: directory to write (created).
        vocab_size: pieces wanted; fewer are made when the corpus has fewer (``hard_vocab_limit=False``).
        model_type: ``"bpe"`` or ``"unigram"`` (see the module docstring).

    Returns:
        The tokenizer, loaded back from ``out_dir``.

    Raises:
        VlmrmError: if ``texts`` is empty, ``vocab_size`` too small or ``model_type`` unknown.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise VlmrmError("no text to train the tokenizer on; pass a non-empty corpus")
    if vocab_size < 8:
        raise VlmrmError(f"vocab_size={vocab_size} is too small; use at least 8 (3 special tokens and some pieces)")
    if model_type not in ("bpe", "unigram"):
        raise VlmrmError(f"model_type={model_type!r} is not a SentencePiece model type here; use 'bpe' or 'unigram'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type=model_type,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, character_coverage=1.0, num_threads=1,
        shuffle_input_sentence=False, minloglevel=2)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "spiece.model"
        vocab_file.write_bytes(model.getvalue())
        T5Tokenizer(vocab_file=str(vocab_file), extra_ids=0, legacy=False).save_pretrained(out_dir)
    T5TokenizerFast.from_pretrained(out_dir).save_pretrained(out_dir)  # converts spiece.model: tokenizer.json
    # The slow tokenizer's config sets add_prefix_space, which makes T5TokenizerFast ignore tokenizer.json and
    # convert spiece.model again at every load; tokenizer.json already prepends the space (same ids, checked).
    config_file = out_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("add_prefix_space", None)
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    return T5TokenizerFast.from_pretrained(out_dir)
