"""Greedy decoding of a :class:`~vlmrm_jax.planner.t5.T5`, jittable with static lengths, and an eager reference.

:func:`greedy_generate` is a pure function of the weights and the tokenised inputs: one encoder pass, then a
``lax.while_loop`` of cached decoder steps that stops when every row has produced its end-of-sequence token or at
``max_new_tokens``. All shapes are static, so it runs inside a caller's ``jax.jit`` (e.g. once per episode in an
agent's jitted loop) and compiles once per (batch size, input length, ``max_new_tokens``).

:func:`greedy_generate_eager` is the independent reference: a Python loop that re-runs the whole decoder (no cache)
on the prefix generated so far, one call per step. Both pick the arg-max token (ties to the lowest id).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vlmrm_jax.planner.t5 import T5


def greedy_generate(model: T5, params: Any, input_ids: jax.Array, attention_mask: jax.Array,
                    max_new_tokens: int) -> jax.Array:
    """Greedy decoding (the arg-max token at each step), pure and jittable.

    Args:
        model: the T5 module (static).
        params: its weights.
        input_ids: int32 [B, L], the tokenised inputs (end-of-sequence token included), right-padded.
        attention_mask: int32 [B, L], 1 for tokens, 0 for padding.
        max_new_tokens: T, the most tokens generated per row (static).

    Returns:
        int32 [B, T]: the generated tokens without the decoder start token; after a row's end-of-sequence token
        (``model.arch.eos_token_id``) every position holds the pad token. A row without end-of-sequence token ran
        out of length (T tokens were not enough).
    """
    arch = model.arch
    batch = input_ids.shape[0]
    variables = {"params": params}
    encoder_hidden = model.apply(variables, input_ids, attention_mask, method=T5.encode)
    cache = model.apply(variables, encoder_hidden, max_new_tokens, method=T5.init_cache)
    tokens = jnp.full((batch, max_new_tokens), arch.pad_token_id, jnp.int32)
    previous = jnp.full((batch,), arch.decoder_start_token_id, jnp.int32)
    done = jnp.zeros((batch,), bool)

    def cond(carry):
        position, _, _, _, done = carry
        return (position < max_new_tokens) & ~jnp.all(done)

    def body(carry):
        position, previous, cache, tokens, done = carry
        logits, cache = model.apply(variables, previous, position, cache, attention_mask, method=T5.decode_step)
        token = jnp.where(done, arch.pad_token_id, jnp.argmax(logits, axis=-1).astype(jnp.int32))
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, token[:, None], position, axis=1)
        return position + 1, token, cache, tokens, done | (token == arch.eos_token_id)

    carry = (jnp.zeros((), jnp.int32), previous, cache, tokens, done)
    return jax.lax.while_loop(cond, body, carry)[3]


def greedy_generate_eager(model: T5, params: Any, input_ids: np.ndarray, attention_mask: np.ndarray,
                          max_new_tokens: int) -> np.ndarray:
    """The reference for :func:`greedy_generate`: the same greedy choice, step by step in a Python loop, re-running
    the full decoder without a cache at every step (for tests and checks). The decoder runs on a fixed buffer of T
    positions (compiled once); by causality the logits at position t depend only on the tokens up to t.
    Same arguments and result (int32 [B, T], numpy)."""
    arch = model.arch
    variables = {"params": params}
    input_ids, attention_mask = jnp.asarray(input_ids), jnp.asarray(attention_mask)
    encoder_hidden = jax.jit(lambda v: model.apply(v, input_ids, attention_mask, method=T5.encode))(variables)
    decode = jax.jit(lambda v, prefix: model.apply(v, prefix, encoder_hidden, attention_mask, method=T5.decode))
    batch = input_ids.shape[0]
    prefix = np.full((batch, max_new_tokens), arch.pad_token_id, np.int32)
    prefix[:, 0] = arch.decoder_start_token_id
    tokens = np.full((batch, max_new_tokens), arch.pad_token_id, np.int32)
    done = np.zeros(batch, bool)
    for position in range(max_new_tokens):
        logits = np.asarray(decode(variables, prefix))[:, position]
        token = np.where(done, arch.pad_token_id, np.argmax(logits, axis=-1).astype(np.int32))
        tokens[:, position] = token
        done |= token == arch.eos_token_id
        if done.all():
            break
        if position + 1 < max_new_tokens:
            prefix[:, position + 1] = token
    return tokens
