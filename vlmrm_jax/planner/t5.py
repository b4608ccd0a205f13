"""A small Flax T5 encoder-decoder (Raffel et al. 2020) that reads Hugging Face T5 weights, on any supported JAX.

The same network as transformers' ``FlaxT5ForConditionalGeneration`` (and PyTorch ``T5ForConditionalGeneration``):
RMS layer norms without bias, attention without biases or score scaling, a learned relative-position bias
(bucketed, computed in the first block of each stack and shared by the others), ReLU or gated-GELU feed-forward
layers (T5 v1.1 / FLAN-T5), and an output head that is either the tied input embedding (rescaled by d_model^-0.5)
or a separate ``lm_head``. Its parameters carry exactly transformers' Flax names (``shared/embedding``,
``encoder/block/0/layer/0/SelfAttention/q/kernel``, ...), so a ``flax_model.msgpack`` loads unchanged.

Why not transformers' class: its relative-position buckets call ``jnp.clip(a_max=...)``, which raises TypeError on
jax >= 0.10, and its constructor traces the module even when no weights are initialised. This module uses only
``jnp.minimum``/``jnp.maximum`` and runs on jax 0.9 through 0.11. It has no dropout (it serves inference and small
from-scratch training) and computes in float32.

Decoding with a key/value cache (:meth:`T5.decode_step`) takes explicit cache arrays in and out, so a jitted
``lax.while_loop`` can carry them (see :mod:`vlmrm_jax.planner.generation`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from transformers import T5Config

#: Added to the attention scores of masked-out keys (transformers uses the float32 minimum too).
MASK_VALUE = float(jnp.finfo(jnp.float32).min)


@dataclasses.dataclass(frozen=True)
class T5Architecture:
    """The sizes and options of a T5, as in transformers' ``T5Config`` (hashable, so it can be a static argument).

    Attributes:
        vocab_size: V, tokens in the vocabulary.
        d_model: D, width of the residual stream.
        d_kv: width of one attention head's queries, keys and values.
        d_ff: width of the feed-forward layer.
        num_layers: encoder blocks.
        num_decoder_layers: decoder blocks.
        num_heads: H, attention heads.
        relative_attention_num_buckets: relative-position buckets (32 in T5).
        relative_attention_max_distance: distance (tokens) beyond which positions share the last bucket (128).
        layer_norm_epsilon: RMS norm epsilon.
        gated: gated feed-forward (``wi_0``, ``wi_1``: T5 v1.1 / FLAN-T5) instead of one ``wi``.
        activation: ``"relu"``, ``"gelu_new"`` (tanh GELU, FLAN-T5's "gated-gelu") or ``"gelu"``.
        tie_word_embeddings: output logits from the input embedding (original T5) instead of ``lm_head``.
        pad_token_id, eos_token_id, decoder_start_token_id: special token ids (T5: 0, 1, 0).
    """

    vocab_size: int
    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_decoder_layers: int
    num_heads: int
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    gated: bool = True
    activation: str = "gelu_new"
    tie_word_embeddings: bool = False
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0

    @classmethod
    def from_config(cls, config: T5Config) -> T5Architecture:
        """The architecture that a transformers ``T5Config`` describes."""
        return cls(vocab_size=config.vocab_size, d_model=config.d_model, d_kv=config.d_kv, d_ff=config.d_ff,
                   num_layers=config.num_layers,
                   num_decoder_layers=config.num_decoder_layers or config.num_layers, num_heads=config.num_heads,
                   relative_attention_num_buckets=config.relative_attention_num_buckets,
                   relative_attention_max_distance=config.relative_attention_max_distance,
                   layer_norm_epsilon=config.layer_norm_epsilon, gated=bool(config.is_gated_act),
                   activation=config.dense_act_fn, tie_word_embeddings=bool(config.tie_word_embeddings),
                   pad_token_id=config.pad_token_id, eos_token_id=config.eos_token_id,
                   decoder_start_token_id=(config.decoder_start_token_id
                                           if config.decoder_start_token_id is not None else config.pad_token_id))

    def to_config(self) -> T5Config:
        """The equivalent transformers ``T5Config`` (what ``config.json`` holds)."""
        if self.activation == "gelu_new" and self.gated:
            feed_forward_proj = "gated-gelu"
        else:
            feed_forward_proj = ("gated-" if self.gated else "") + self.activation
        return T5Config(vocab_size=self.vocab_size, d_model=self.d_model, d_kv=self.d_kv, d_ff=self.d_ff,
                        num_layers=self.num_layers, num_decoder_layers=self.num_decoder_layers,
                        num_heads=self.num_heads, relative_attention_num_buckets=self.relative_attention_num_buckets,
                        relative_attention_max_distance=self.relative_attention_max_distance,
                        layer_norm_epsilon=self.layer_norm_epsilon, feed_forward_proj=feed_forward_proj,
                        tie_word_embeddings=self.tie_word_embeddings, pad_token_id=self.pad_token_id,
                        eos_token_id=self.eos_token_id, decoder_start_token_id=self.decoder_start_token_id,
                        dropout_rate=0.0, is_encoder_decoder=True)


_ACTIVATIONS = {"relu": jax.nn.relu, "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
                "gelu": lambda x: jax.nn.gelu(x, approximate=False), "gelu_pytorch_tanh":
                lambda x: jax.nn.gelu(x, approximate=True), "silu": jax.nn.silu}


def relative_position_bucket(relative_position: jax.Array, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> jax.Array:
    """T5's bucket of each relative position (memory position - query position), as Mesh TensorFlow computes it.

    Half of the buckets (per direction when ``bidirectional``) hold exact distances 0 .. max_exact - 1, the rest
    grow logarithmically up to ``max_distance``; farther positions share the last bucket. A causal (decoder) stack
    uses ``bidirectional=False``: keys after the query map to bucket 0 (they are masked anyway).

    Args:
        relative_position: int32 [...], in tokens.

    Returns:
        int32 [...], buckets in [0, num_buckets).
    """
    buckets = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).astype(jnp.int32) * num_buckets
        distance = jnp.abs(relative_position)
    else:
        distance = -jnp.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # jnp.maximum(distance, 1) only avoids log(0) in the branch that is_small discards.
    large = max_exact + (jnp.log(jnp.maximum(distance, 1) / max_exact) / jnp.log(max_distance / max_exact)
                         * (num_buckets - max_exact))
    large = jnp.minimum(large, num_buckets - 1)
    return (buckets + jnp.where(is_small, distance, large)).astype(jnp.int32)


class LayerNorm(nn.Module):
    """T5's RMS norm: x / sqrt(mean(x^2) + eps) * weight, no mean subtraction, no bias."""

    epsilon: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        weight = self.param("weight", nn.initializers.ones, (x.shape[-1],))
        variance = jnp.mean(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True)
        return weight * (x / jnp.sqrt(variance + self.epsilon))


class Attention(nn.Module):
    """Multi-head attention without biases or 1/sqrt(d) scaling; optionally owns the relative-position bias table.

    Initialisation as transformers' (q: (H d_kv)^-1/2 / sqrt(d_kv); k, v, o, bias table: (H d_kv)^-1/2).
    """

    arch: T5Architecture
    causal: bool
    has_relative_bias: bool = False

    def setup(self):
        a = self.arch
        inner = a.num_heads * a.d_kv
        dense = lambda features, std: nn.Dense(features, use_bias=False,  # noqa: E731
                                               kernel_init=nn.initializers.normal(std))
        self.q = dense(inner, (inner * a.d_kv) ** -0.5)
        self.k = dense(inner, inner ** -0.5)
        self.v = dense(inner, inner ** -0.5)
        self.o = dense(a.d_model, inner ** -0.5)
        if self.has_relative_bias:
            self.relative_attention_bias = nn.Embed(a.relative_attention_num_buckets, a.num_heads,
                                                    embedding_init=nn.initializers.normal(inner ** -0.5))

    def _heads(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[:-1] + (self.arch.num_heads, self.arch.d_kv))

    def position_bias(self, query_positions: jax.Array, key_positions: jax.Array) -> jax.Array:
        """The learned bias of each (query, key) pair: float32 [1, H, Q, K] from int32 [Q] and [K] positions."""
        relative = key_positions[None, :] - query_positions[:, None]
        buckets = relative_position_bucket(relative, not self.causal, self.arch.relative_attention_num_buckets,
                                           self.arch.relative_attention_max_distance)
        return jnp.transpose(self.relative_attention_bias(buckets), (2, 0, 1))[None]

    def keys_values(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Keys and values of ``x`` float32 [B, K, D]: each float32 [B, K, H, d_kv]."""
        return self._heads(self.k(x)), self._heads(self.v(x))

    def attend(self, x: jax.Array, keys: jax.Array, values: jax.Array, bias: jax.Array) -> jax.Array:
        """Queries from ``x`` [B, Q, D] attend to ``keys``/``values`` [B, K, H, d_kv] with additive ``bias``
        (position bias + mask, broadcastable to [B, H, Q, K]); returns float32 [B, Q, D]."""
        queries = self._heads(self.q(x))
        scores = jnp.einsum("bqhd,bkhd->bhqk", queries, keys) + bias
        weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, values)
        return self.o(out.reshape(out.shape[:2] + (-1,)))


class SelfAttentionLayer(nn.Module):
    """Pre-norm residual self-attention (transformers' ``FlaxT5LayerSelfAttention``)."""

    arch: T5Architecture
    causal: bool
    has_relative_bias: bool

    def setup(self):
        self.SelfAttention = Attention(self.arch, self.causal, self.has_relative_bias)
        self.layer_norm = LayerNorm(self.arch.layer_norm_epsilon)


class CrossAttentionLayer(nn.Module):
    """Pre-norm residual attention over the encoder output (transformers' ``FlaxT5LayerCrossAttention``)."""

    arch: T5Architecture

    def setup(self):
        self.EncDecAttention = Attention(self.arch, causal=False)
        self.layer_norm = LayerNorm(self.arch.layer_norm_epsilon)


class FeedForward(nn.Module):
    """The feed-forward net: wo(act(wi x)), or wo(act(wi_0 x) * wi_1 x) when gated."""

    arch: T5Architecture

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        a = self.arch
        dense = lambda features, std, name: nn.Dense(features, use_bias=False,  # noqa: E731
                                                     kernel_init=nn.initializers.normal(std), name=name)
        act = _ACTIVATIONS[a.activation]
        if a.gated:
            h = act(dense(a.d_ff, a.d_model ** -0.5, "wi_0")(x)) * dense(a.d_ff, a.d_model ** -0.5, "wi_1")(x)
        else:
            h = act(dense(a.d_ff, a.d_model ** -0.5, "wi")(x))
        return dense(a.d_model, a.d_ff ** -0.5, "wo")(h)


class FeedForwardLayer(nn.Module):
    """Pre-norm residual feed-forward (transformers' ``FlaxT5LayerFF``)."""

    arch: T5Architecture

    def setup(self):
        self.DenseReluDense = FeedForward(self.arch)
        self.layer_norm = LayerNorm(self.arch.layer_norm_epsilon)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x + self.DenseReluDense(self.layer_norm(x))


class BlockLayers(nn.Module):
    """The sub-layers of one block, named "0", "1" (and "2") as in transformers: self-attention, cross-attention
    (decoder only), feed-forward."""

    arch: T5Architecture
    causal: bool
    has_relative_bias: bool

    def setup(self):
        layers = [SelfAttentionLayer(self.arch, self.causal, self.has_relative_bias, name="0")]
        if self.causal:
            layers.append(CrossAttentionLayer(self.arch, name="1"))
        layers.append(FeedForwardLayer(self.arch, name=str(len(layers))))
        self.layers = layers


class Block(nn.Module):
    """One T5 block (transformers' ``FlaxT5LayerCollection``: its sub-layers live under ``layer``)."""

    arch: T5Architecture
    causal: bool
    has_relative_bias: bool

    def setup(self):
        self.layer = BlockLayers(self.arch, self.causal, self.has_relative_bias)

    def self_attention(self, x: jax.Array, keys_values_fn, bias: jax.Array):
        """Residual self-attention; ``keys_values_fn(k, v) -> (k, v)`` lets the caller extend a cache."""
        sub = self.layer.layers[0]
        h = sub.layer_norm(x)
        keys, values = keys_values_fn(*sub.SelfAttention.keys_values(h))
        return x + sub.SelfAttention.attend(h, keys, values, bias), (keys, values)

    def cross_attention(self, x: jax.Array, keys: jax.Array, values: jax.Array, bias: jax.Array) -> jax.Array:
        sub = self.layer.layers[1]
        return x + sub.EncDecAttention.attend(sub.layer_norm(x), keys, values, bias)

    def cross_keys_values(self, encoder_hidden: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.layer.layers[1].EncDecAttention.keys_values(encoder_hidden)

    def feed_forward(self, x: jax.Array) -> jax.Array:
        return self.layer.layers[-1](x)


class Blocks(nn.Module):
    """The blocks of a stack, named "0", "1", ... (transformers' ``FlaxT5BlockCollection``)."""

    arch: T5Architecture
    causal: bool
    num_blocks: int

    def setup(self):
        self.blocks = [Block(self.arch, self.causal, has_relative_bias=(i == 0), name=str(i))
                       for i in range(self.num_blocks)]


class Stack(nn.Module):
    """The encoder (``causal=False``) or decoder stack, with its final norm; the token embedding is shared."""

    arch: T5Architecture
    causal: bool
    num_blocks: int

    def setup(self):
        self.block = Blocks(self.arch, self.causal, self.num_blocks)
        self.final_layer_norm = LayerNorm(self.arch.layer_norm_epsilon)

    def position_bias(self, query_positions: jax.Array, key_positions: jax.Array) -> jax.Array:
        """float32 [1, H, Q, K], from the first block's bias table."""
        return self.block.blocks[0].layer.layers[0].SelfAttention.position_bias(query_positions, key_positions)

    def encode(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """Encoder stack over embedded tokens ``x`` float32 [B, L, D] with ``mask`` int [B, L] (1 = token)."""
        positions = jnp.arange(x.shape[1])
        bias = self.position_bias(positions, positions) + _mask_bias(mask)[:, None, None, :]
        for block in self.block.blocks:
            x, _ = block.self_attention(x, lambda k, v: (k, v), bias)
            x = block.feed_forward(x)
        return self.final_layer_norm(x)

    def decode(self, x: jax.Array, encoder_hidden: jax.Array, encoder_mask: jax.Array) -> jax.Array:
        """Decoder stack over embedded targets ``x`` [B, T, D] (causal), attending to ``encoder_hidden`` [B, L, D]."""
        positions = jnp.arange(x.shape[1])
        causal = jnp.where(positions[None, :] <= positions[:, None], 0.0, MASK_VALUE)
        self_bias = self.position_bias(positions, positions) + causal[None, None]
        cross_bias = _mask_bias(encoder_mask)[:, None, None, :]
        for block in self.block.blocks:
            x, _ = block.self_attention(x, lambda k, v: (k, v), self_bias)
            x = block.cross_attention(x, *block.cross_keys_values(encoder_hidden), cross_bias)
            x = block.feed_forward(x)
        return self.final_layer_norm(x)

    def cross_cache(self, encoder_hidden: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Every block's cross-attention keys and values: each float32 [N, B, L, H, d_kv]."""
        keys, values = zip(*(block.cross_keys_values(encoder_hidden) for block in self.block.blocks))
        return jnp.stack(keys), jnp.stack(values)

    def decode_step(self, x: jax.Array, position: jax.Array, cache: dict, encoder_mask: jax.Array):
        """One decoder position ``x`` [B, 1, D] at ``position`` (int32 []), with the key/value cache; returns the
        normed hidden state [B, 1, D] and the cache with this position's keys and values written in."""
        max_len = cache["self_keys"].shape[2]
        key_positions = jnp.arange(max_len)
        visible = jnp.where(key_positions <= position, 0.0, MASK_VALUE)
        self_bias = self.position_bias(position[None], key_positions) + visible[None, None, None, :]
        cross_bias = _mask_bias(encoder_mask)[:, None, None, :]
        new_keys, new_values = [], []
        for i, block in enumerate(self.block.blocks):
            def extend(k, v, i=i):
                k = jax.lax.dynamic_update_slice_in_dim(cache["self_keys"][i], k, position, axis=1)
                v = jax.lax.dynamic_update_slice_in_dim(cache["self_values"][i], v, position, axis=1)
                return k, v
            x, (k, v) = block.self_attention(x, extend, self_bias)
            new_keys.append(k)
            new_values.append(v)
            x = block.cross_attention(x, cache["cross_keys"][i], cache["cross_values"][i], cross_bias)
            x = block.feed_forward(x)
        cache = dict(cache, self_keys=jnp.stack(new_keys), self_values=jnp.stack(new_values))
        return self.final_layer_norm(x), cache


def _mask_bias(mask: jax.Array) -> jax.Array:
    """0 where ``mask`` is 1 (a token), the float32 minimum where it is 0 (padding): float32, same shape."""
    return jnp.where(mask > 0, 0.0, MASK_VALUE)


class T5(nn.Module):
    """T5 for conditional generation: ``encode``, ``decode`` (teacher forcing) and cached ``decode_step``.

    Parameters, with transformers' Flax names: ``shared`` (embedding [V, D]), ``encoder``, ``decoder`` and, unless
    ``arch.tie_word_embeddings``, ``lm_head`` (kernel [D, V]).
    """

    arch: T5Architecture

    def setup(self):
        a = self.arch
        self.shared = nn.Embed(a.vocab_size, a.d_model, embedding_init=nn.initializers.normal(1.0))
        self.encoder = Stack(a, causal=False, num_blocks=a.num_layers)
        self.decoder = Stack(a, causal=True, num_blocks=a.num_decoder_layers)
        if not a.tie_word_embeddings:
            self.lm_head = nn.Dense(a.vocab_size, use_bias=False, kernel_init=nn.initializers.normal(1.0))

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array, decoder_input_ids: jax.Array) -> jax.Array:
        """Logits float32 [B, T, V] of the next token at each target position (teacher forcing).

        Args:
            input_ids: int32 [B, L]; attention_mask: int32 [B, L] (1 = token, 0 = padding).
            decoder_input_ids: int32 [B, T], the targets shifted right behind ``decoder_start_token_id``.
        """
        return self.decode(decoder_input_ids, self.encode(input_ids, attention_mask), attention_mask)

    def encode(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
        """Encoder output float32 [B, L, D] of ``input_ids`` int32 [B, L] with ``attention_mask`` int32 [B, L]."""
        return self.encoder.encode(self.shared(input_ids), attention_mask)

    def decode(self, decoder_input_ids: jax.Array, encoder_hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
        """Logits float32 [B, T, V] for ``decoder_input_ids`` int32 [B, T] given the encoder output [B, L, D]."""
        return self._logits(self.decoder.decode(self.shared(decoder_input_ids), encoder_hidden, attention_mask))

    def init_cache(self, encoder_hidden: jax.Array, max_length: int) -> dict[str, jax.Array]:
        """A decoding cache for ``max_length`` target positions: cross-attention keys/values of ``encoder_hidden``
        [B, L, D] (float32 [N, B, L, H, d_kv] each) and zero self-attention keys/values ([N, B, T, H, d_kv] each)."""
        cross_keys, cross_values = self.decoder.cross_cache(encoder_hidden)
        a = self.arch
        shape = (a.num_decoder_layers, encoder_hidden.shape[0], max_length, a.num_heads, a.d_kv)
        return dict(self_keys=jnp.zeros(shape, jnp.float32), self_values=jnp.zeros(shape, jnp.float32),
                    cross_keys=cross_keys, cross_values=cross_values)

    def decode_step(self, tokens: jax.Array, position: jax.Array, cache: dict[str, jax.Array],
                    attention_mask: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Logits float32 [B, V] of the token after ``tokens`` int32 [B] (the target at ``position``, int32 []),
        and the updated cache (see :meth:`init_cache`); ``attention_mask`` int32 [B, L] is the encoder's."""
        hidden, cache = self.decoder.decode_step(self.shared(tokens[:, None]), position, cache, attention_mask)
        return self._logits(hidden)[:, 0], cache

    def _logits(self, hidden: jax.Array) -> jax.Array:
        if self.arch.tie_word_embeddings:
            return self.shared.attend(hidden * self.arch.d_model ** -0.5)
        return self.lm_head(hidden)


def init_params(arch: T5Architecture, seed: int = 0) -> Any:
    """Random weights for ``arch`` (transformers' T5 initialisation), as a nested dict of float32 arrays."""
    ids = jnp.zeros((1, 2), jnp.int32)
    return T5(arch).init(jax.random.PRNGKey(seed), ids, jnp.ones_like(ids), ids)["params"]


def param_shapes(arch: T5Architecture) -> Any:
    """The parameter tree of ``arch`` as ``jax.ShapeDtypeStruct`` leaves (no computation)."""
    return jax.eval_shape(lambda: init_params(arch))
