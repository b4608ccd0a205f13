"""Builds a CLIP byte-level BPE tokenizer offline, from a small text corpus.

The result has exactly the layout of OpenAI CLIP's tokenizer (Radford et al. 2021), so transformers'
``CLIPTokenizer`` and ``CLIPTokenizerFast`` load it unchanged: ids 0-255 are the 256 byte symbols, 256-511 the same
symbols with the end-of-word marker ``</w>``, then one token per merge in merge order, then ``<|startoftext|>`` and
``<|endoftext|>`` (the highest id, which CLIP's text tower pools at). Because every byte and its end-of-word form are
in the vocabulary, any text encodes without unknown tokens; the corpus only decides which merges exist (how many
tokens a word takes). The merges are learned by plain BPE (Sennrich et al. 2016: repeatedly merge the most frequent
adjacent pair) on the words that the very normaliser and pre-tokeniser transformers builds for CLIP make of the
corpus, with ties broken by the pair's text, so the same corpus always gives the same tokenizer (the ``tokenizers``
library's trainer breaks ties in a per-process random order, which made rebuilt models differ).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from tokenizers import pre_tokenizers
from transformers import CLIPTokenizerFast

from vlmrm_jax.errors import VlmrmError

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
#: 256 byte symbols, their end-of-word forms, and the two special tokens.
MIN_VOCAB_SIZE = 2 * 256 + 2
#: transformers' slow ``CLIPTokenizer`` reads at most 49152 - 256 - 2 merges: OpenAI CLIP's vocabulary size.
MAX_VOCAB_SIZE = 49408


def _write_clip_files(out_dir: Path, merges: Sequence[tuple[str, str]]) -> tuple[Path, Path]:
    """Writes vocab.json and merges.txt in CLIP's layout; returns their paths."""
    byte_symbols = pre_tokenizers.ByteLevel.alphabet()
    byte_symbols = sorted(byte_symbols, key=ord)  # CLIP's bytes_to_unicode order: by code point
    tokens = byte_symbols + [s + END_OF_WORD for s in byte_symbols]
    vocab = {token: i for i, token in enumerate(tokens)}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    for special in (BOS_TOKEN, EOS_TOKEN):
        vocab[special] = len(vocab)
    vocab_file, merges_file = out_dir / "vocab.json", out_dir / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return vocab_file, merges_file


def learn_bpe_merges(words: Mapping[str, int], max_merges: int) -> list[tuple[str, str]]:
    """Byte-pair-encoding merges (Sennrich et al. 2016), deterministically.

    Each word is split into its characters with the end-of-word marker on the last one (CLIP's ``</w>``); then, up to
    ``max_merges`` times, the adjacent pair with the highest count (summed over words, weighted by word frequency) is
    merged everywhere; ties go to the lexicographically smallest (left, right) pair.

    Args:
        words: pre-tokenised word (byte-level symbols, as CLIP's pre-tokeniser outputs) -> frequency.
        max_merges: at most this many merges; fewer when no pair is left.

    Returns:
        The merges in order, e.g. ``[("e", "r</w>"), ...]``.
    """
    segmented = {tuple(word[:-1]) + (word[-1] + END_OF_WORD,): count for word, count in words.items() if word}
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        pairs: Counter = Counter()
        for symbols, count in segmented.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        merged = best[0] + best[1]
        updated: dict[tuple[str, ...], int] = {}
        for symbols, count in segmented.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            updated[tuple(out)] = updated.get(tuple(out), 0) + count
        segmented = updated
    return merges


def build_clip_tokenizer(out_dir: str | Path, corpus: Sequence[str], vocab_size: int = 1000,
                         model_max_length: int = 77) -> CLIPTokenizerFast:
    """Learns BPE merges from ``corpus`` and saves a CLIP tokenizer into ``out_dir``.

    Writes ``vocab.json`` and ``merges.txt`` (what ``CLIPTokenizer`` reads) and ``tokenizer.json``,
    ``tokenizer_config.json``, ``special_tokens_map.json`` (what ``CLIPTokenizerFast.from_pretrained`` reads).
    Text is normalised as CLIP does (NFC, runs of whitespace to one space, lower case).

    Args:
        out_dir: directory to write into (created if missing; existing tokenizer files are overwritten).
        corpus: training texts (e.g. the prompts and captions of a domain); may be empty.
        vocab_size: total vocabulary size, 514 to 49408 (OpenAI CLIP: 49408). The number of merges is
            ``vocab_size - 514``, fewer when the corpus has no more pairs to merge, so the saved vocabulary can be
            smaller than asked.
        model_max_length: context length in tokens, including the start and end tokens (CLIP: 77); longer
            texts are truncated by ``tokenizer(..., truncation=True)``.

    Returns:
        The saved tokenizer, as ``CLIPTokenizerFast.from_pretrained(out_dir)`` loads it.

    Raises:
        VlmrmError: if ``vocab_size`` is out of range, ``corpus`` is a single string, or ``model_max_length`` < 3.
    """
    if not MIN_VOCAB_SIZE <= vocab_size <= MAX_VOCAB_SIZE:
        raise VlmrmError(f"vocab_size={vocab_size} is out of range; pass {MIN_VOCAB_SIZE} (the bytes, their "
                         f"end-of-word forms and 2 special tokens) to {MAX_VOCAB_SIZE} (OpenAI CLIP's size)")
    if isinstance(corpus, str):
        raise VlmrmError(f"corpus {corpus[:40]!r}... is one string; pass a list of texts")
    if model_max_length < 3:
        raise VlmrmError(f"model_max_length={model_max_length} leaves no room for text between the start and "
                         f"end tokens; pass at least 3 (CLIP: 77)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        # A merge-free CLIP tokenizer supplies transformers' CLIP normaliser and pre-tokeniser for training.
        vocab_file, merges_file = _write_clip_files(Path(scratch), [])
        backend = CLIPTokenizerFast(vocab_file=str(vocab_file), merges_file=str(merges_file)).backend_tokenizer
    words = Counter(piece for text in corpus
                    for piece, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text)))
    merges = learn_bpe_merges(words, vocab_size - MIN_VOCAB_SIZE)
    vocab_file, merges_file = _write_clip_files(out_dir, merges)
    tokenizer = CLIPTokenizerFast(vocab_file=str(vocab_file), merges_file=str(merges_file),
                                  model_max_length=model_max_length)
    tokenizer.save_pretrained(out_dir)
    return CLIPTokenizerFast.from_pretrained(out_dir)
