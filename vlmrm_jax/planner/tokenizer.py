"""Builds a T5 SentencePiece tokenizer offline from a text corpus (for planners trained from scratch).

A unigram SentencePiece model (Kudo 2018) with T5's special ids (pad 0, end-of-sequence 1, unknown 2, no
beginning-of-sequence token), wrapped as transformers' ``T5TokenizerFast`` without T5's 100 sentinel tokens.
Training runs single-threaded on the corpus in the order given, so the same corpus gives the same tokenizer.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path

import sentencepiece
from transformers import T5Tokenizer, T5TokenizerFast

from vlmrm_jax.errors import VlmrmError


def build_t5_tokenizer(texts: Sequence[str], out_dir: str | Path, vocab_size: int = 256) -> T5TokenizerFast:
    """Trains the tokenizer on ``texts`` and saves it (``spiece.model``, ``tokenizer.json``, configs) in ``out_dir``.

    Args:
        texts: the corpus, e.g. every instruction and target of a training set.
        out_dir: directory to write (created).
        vocab_size: pieces wanted; fewer are made when the corpus has fewer (``hard_vocab_limit=False``).

    Returns:
        The tokenizer, loaded back from ``out_dir``.

    Raises:
        VlmrmError: if ``texts`` is empty or ``vocab_size`` is too small for the special tokens.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise VlmrmError("no text to train the tokenizer on; pass a non-empty corpus")
    if vocab_size < 8:
        raise VlmrmError(f"vocab_size={vocab_size} is too small; use at least 8 (3 special tokens and some pieces)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, character_coverage=1.0, num_threads=1,
        shuffle_input_sentence=False, minloglevel=2)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "spiece.model"
        vocab_file.write_bytes(model.getvalue())
        T5Tokenizer(vocab_file=str(vocab_file), extra_ids=0, legacy=False).save_pretrained(out_dir)
    fast = T5TokenizerFast.from_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return T5TokenizerFast.from_pretrained(out_dir)
