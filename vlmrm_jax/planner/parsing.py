"""Reading a planner's output as a list of known subgoals: on the device from tokens, on the host from text.

The output grammar (Di Palo et al. 2023 write subgoals as fixed captions, section 3.2): the subgoal captions in
order, each followed by ``"."`` and separated by one space, e.g. ::

    The robot is grasping the red object. The red object is on top of the blue object.

The last ``"."`` may be missing, and a caption may start with a lower-case letter. Anything else (another word,
a caption the detector does not know, no subgoal at all, more than ``max_subgoals``, or an output cut off before its
end-of-sequence token) makes the whole output invalid.

:func:`parse_tokens` applies the grammar to generated token ids, jittable, by matching each caption's own
tokenisation (a :class:`SubgoalTable`): it holds for SentencePiece tokenizers, which split at spaces, so a list's
tokens are the concatenation of its captions' tokens (checked when the table is built). :func:`parse_text` applies
it to decoded text, for display and messages; both agree on every output whose tokens are the tokenizer's own
encoding of its text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vlmrm_jax.errors import VlmrmError

#: Fills the unused slots of a subgoal-id array.
NO_SUBGOAL = -1


def format_subgoals(captions: Sequence[str]) -> str:
    """The canonical text of a subgoal list (what a planner is trained to output): ``"A. B."``."""
    return " ".join(f"{caption}." for caption in captions)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _normalise(text: str) -> str:
    return " ".join(text.split())


@dataclasses.dataclass(frozen=True)
class SubgoalTable:
    """The token rows that :func:`parse_tokens` matches: every caption's tokenisation, in the variants that the
    grammar allows (with and without the final ``"."``, first letter upper or lower case).

    Attributes:
        captions: the known subgoal captions; a subgoal's id is its index here.
        tokens: int32 [R, W], one row per variant, padded with -1.
        lengths: int32 [R], tokens per row.
        subgoal: int32 [R], the caption id of each row.
        final_only: bool [R], rows without the ``"."`` (valid only just before the end-of-sequence token).
    """

    captions: tuple[str, ...]
    tokens: np.ndarray
    lengths: np.ndarray
    subgoal: np.ndarray
    final_only: np.ndarray

    @classmethod
    def build(cls, captions: Sequence[str], tokenizer) -> SubgoalTable:
        """The table of ``captions`` under ``tokenizer`` (a transformers tokenizer).

        Raises:
            VlmrmError: if ``captions`` is empty, has duplicates or a caption with a ``"."``, or if the tokenizer
                does not encode a subgoal list as the concatenation of its captions (then on-device parsing cannot
                read its output).
        """
        captions = tuple(_normalise(c) for c in captions)
        if not captions:
            raise VlmrmError("no subgoal captions given; pass subgoals=[...] (e.g. the stacking SUBGOALS)")
        if len(set(captions)) != len(captions):
            raise VlmrmError(f"subgoal captions repeat ({captions}); pass each caption once")
        for caption in captions:
            if not caption or "." in caption:
                raise VlmrmError(f"subgoal caption {caption!r} is empty or contains '.', which separates subgoals; "
                                 f"pass captions without '.'")

        def encode(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False))

        rows: dict[tuple[int, ...], tuple[int, bool]] = {}
        for i, caption in enumerate(captions):
            for variant in dict.fromkeys((caption, _lower_first(caption))):
                rows.setdefault(tuple(encode(variant + ".")), (i, False))
                rows.setdefault(tuple(encode(variant)), (i, True))
        whole = encode(format_subgoals(captions))
        pieces = [t for c in captions for t in encode(c + ".")]
        if whole != pieces:
            raise VlmrmError(f"tokenizer {type(tokenizer).__name__} does not encode a subgoal list as the "
                             f"concatenation of its captions, so generated tokens cannot be parsed on the device; "
                             f"use a SentencePiece (T5) tokenizer")
        width = max(len(r) for r in rows)
        tokens = np.full((len(rows), width), -1, np.int32)
        for j, row in enumerate(rows):
            tokens[j, :len(row)] = row
        return cls(captions=captions, tokens=tokens, lengths=np.array([len(r) for r in rows], np.int32),
                   subgoal=np.array([v[0] for v in rows.values()], np.int32),
                   final_only=np.array([v[1] for v in rows.values()], bool))


class ParsedSubgoals(NamedTuple):
    """Subgoals read from B outputs.

    Attributes:
        ids: int32 [B, M], caption ids in order, :data:`NO_SUBGOAL` (-1) after the last one. For an invalid row,
            the subgoals read before the first fault.
        count: int32 [B], subgoals in ``ids``.
        valid: bool [B], the whole output followed the grammar with known captions only.
    """

    ids: jax.Array
    count: jax.Array
    valid: jax.Array


def parse_tokens(table: SubgoalTable, tokens: jax.Array, eos_token_id: int, max_subgoals: int) -> ParsedSubgoals:
    """Reads generated tokens as subgoal ids (see the module docstring), pure and jittable.

    Args:
        table: the known captions' token rows.
        tokens: int32 [B, T], generated tokens (no decoder start token), the end-of-sequence token after the last
            subgoal (as :func:`~vlmrm_jax.planner.generation.greedy_generate` returns them).
        eos_token_id: the end-of-sequence token.
        max_subgoals: M, the most subgoals an output may hold (static).

    Returns:
        :class:`ParsedSubgoals` (ids int32 [B, M], count int32 [B], valid bool [B]).
    """
    rows = jnp.asarray(table.tokens)
    lengths, subgoal = jnp.asarray(table.lengths), jnp.asarray(table.subgoal)
    final_only = jnp.asarray(table.final_only)
    width = rows.shape[1]
    in_row = jnp.arange(width)[None, :] < lengths[:, None]
    running, ok, failed = 0, 1, 2

    def parse_row(row_tokens: jax.Array):
        # -2 after the end: matches no row and is not the end-of-sequence token, so a cut-off output fails.
        padded = jnp.concatenate([row_tokens, jnp.full((width + 1,), -2, row_tokens.dtype)])

        def step(_, carry):
            position, count, ids, state = carry
            at_end = padded[position] == eos_token_id
            window = jax.lax.dynamic_slice_in_dim(padded, position, width)
            follows_end = padded[position + lengths] == eos_token_id
            match = jnp.all((window[None, :] == rows) | ~in_row, axis=1) & (~final_only | follows_end)
            best = jnp.argmax(jnp.where(match, lengths, -1))
            is_running = state == running
            advance = is_running & ~at_end & match.any() & (count < max_subgoals)
            finish = is_running & at_end & (count > 0)
            fail = is_running & ~advance & ~finish
            ids = jnp.where(advance, ids.at[jnp.minimum(count, max_subgoals - 1)].set(subgoal[best]), ids)
            position = position + jnp.where(advance, lengths[best], 0)
            state = jnp.where(finish, ok, jnp.where(fail, failed, state))
            return position, count + advance.astype(jnp.int32), ids, state

        init = (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                jnp.full((max_subgoals,), NO_SUBGOAL, jnp.int32), jnp.int32(running))
        _, count, ids, state = jax.lax.fori_loop(0, max_subgoals + 1, step, init)
        return ids, count, state == ok

    return ParsedSubgoals(*jax.vmap(parse_row)(tokens))


class TextSubgoals(NamedTuple):
    """One output read as text: ``items`` (each subgoal's text), ``ids`` (caption id per item, -1 if unknown),
    ``valid`` (grammar followed, every item known, 1 <= items <= M)."""

    items: tuple[str, ...]
    ids: tuple[int, ...]
    valid: bool


def parse_text(text: str, captions: Sequence[str], max_subgoals: int) -> TextSubgoals:
    """Reads decoded output text by the grammar of the module docstring (spaces normalised).

    Args:
        text: e.g. ``"The robot is grasping the red object. The red object is on top of the blue object."``.
        captions: the known subgoal captions (ids are indices into them).
        max_subgoals: M.
    """
    known = {}
    for i, caption in enumerate(captions):
        caption = _normalise(caption)
        known.setdefault(caption, i)
        known.setdefault(_lower_first(caption), i)
    items = [_normalise(piece) for piece in text.split(".")]
    if items and not items[-1]:
        items.pop()
    ids = tuple(known.get(item, NO_SUBGOAL) for item in items)
    valid = 0 < len(items) <= max_subgoals and all(i != NO_SUBGOAL for i in ids)
    return TextSubgoals(tuple(items), ids, valid)
