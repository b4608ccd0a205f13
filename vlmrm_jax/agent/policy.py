"""The language-conditioned policy: a small Transformer trained from scratch (Di Palo et al. 2023, section 3.4).

One token per input: the current subgoal's language embedding, then one token per slice of the observation (for
the stacking env: each cube's position, the end effector's position, the held one-hot). The observation is scaled
by ``obs_scale`` (to about [-1, 1]) and, with ``fourier > 0``, each value ``v`` is extended by the Fourier features
``sin(2^k pi v), cos(2^k pi v)``, k < ``fourier`` (NeRF's positional encoding; measured slower to learn on the
toy stack task, docs/agent.md, so off by default). Every token has its own linear projection to ``width`` plus a
learned type embedding (so the encoder knows which token is which cube), goes through ``depth`` pre-LayerNorm
self-attention blocks, and the subgoal token's output is read out by the action head.

Action heads (``PolicyConfig.grid``):

- ``grid > 0``: a categorical over a ``grid x grid`` grid of cell centres over ``[-1, 1]^2`` (one joint class per
  cell, so a policy can put mass on two separate cubes without averaging them); behaviour cloning minimises the
  cross-entropy of the cell holding the stored action.
- ``grid == 0``: a continuous head, ``tanh`` of a linear read-out; behaviour cloning minimises the squared error.

Exploration (:func:`act`): sample the categorical (or add Gaussian noise ``sigma`` to the continuous mean), and with
probability ``epsilon`` replace the action by one uniform over the action square.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vlmrm_jax.errors import VlmrmError, check_positive_int


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Sizes of the Transformer policy.

    Attributes:
        token_sizes: how the observation vector splits into tokens, in order (sizes must sum to the observation
            size); e.g. ``(3, 3, 3, 3, 4)`` for the stacking env (red, green, blue cube positions, end effector, held
            one-hot).
        width: token width ``d_model``.
        depth: Transformer blocks.
        heads: attention heads (must divide ``width``).
        mlp_ratio: hidden width of each block's MLP, in multiples of ``width``.
        grid: cells per axis of the categorical action head; 0 selects the continuous head.
        obs_scale: the observation is multiplied by this before encoding (e.g. 1 / reach in metres).
        fourier: Fourier-feature frequencies per observation value (0: the scaled values only).
        epsilon: probability of a uniform random action while collecting (exploration).
        sigma: standard deviation of the Gaussian exploration noise of the continuous head (action units).
    """

    token_sizes: tuple[int, ...] = (3, 3, 3, 3, 4)
    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 2
    grid: int = 16
    obs_scale: float = 1.0
    fourier: int = 0
    epsilon: float = 0.1
    sigma: float = 0.1

    def __post_init__(self):
        if not self.token_sizes or any(not isinstance(s, int) or s <= 0 for s in self.token_sizes):
            raise VlmrmError(f"token_sizes={self.token_sizes!r} must be positive integers (one per observation "
                             f"token)")
        for name in ("width", "depth", "heads", "mlp_ratio"):
            check_positive_int(f"policy {name}", getattr(self, name))
        if self.width % self.heads:
            raise VlmrmError(f"policy width={self.width} is not a multiple of heads={self.heads}")
        if not isinstance(self.grid, int) or self.grid < 0 or self.grid == 1:
            raise VlmrmError(f"grid={self.grid!r} must be 0 (continuous head) or >= 2 cells per axis")
        if not isinstance(self.fourier, int) or self.fourier < 0:
            raise VlmrmError(f"fourier={self.fourier!r} must be a non-negative integer")
        if not self.obs_scale > 0:
            raise VlmrmError(f"obs_scale={self.obs_scale!r} must be positive")
        if not 0.0 <= self.epsilon <= 1.0:
            raise VlmrmError(f"epsilon={self.epsilon!r} must be in [0, 1]")
        if not self.sigma >= 0.0:
            raise VlmrmError(f"sigma={self.sigma!r} must be >= 0")

    @property
    def observation_size(self) -> int:
        """The observation size the token split expects."""
        return sum(self.token_sizes)


class _Block(nn.Module):
    width: int
    heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(y, y)
        y = nn.LayerNorm()(x)
        y = nn.Dense(self.width)(nn.gelu(nn.Dense(self.width * self.mlp_ratio)(y)))
        return x + y


class TransformerPolicy(nn.Module):
    """``(subgoal_embedding float32 [B, D], obs float32 [B, O]) -> head output``.

    Output: float32 [B, grid * grid] logits (categorical head; cell ``i * grid + j`` is x cell ``i``, y cell ``j``)
    or float32 [B, 2] actions in [-1, 1] (continuous head).
    """

    config: PolicyConfig

    @nn.compact
    def __call__(self, subgoal_embedding: jax.Array, obs: jax.Array) -> jax.Array:
        c = self.config
        splits = np.cumsum(c.token_sizes)[:-1].tolist()
        parts = [subgoal_embedding] + [encode_values(p * c.obs_scale, c.fourier)
                                       for p in jnp.split(obs, splits, axis=-1)]
        tokens = jnp.stack([nn.Dense(c.width, name=f"embed_{i}")(p) for i, p in enumerate(parts)], axis=-2)
        tokens = tokens + self.param("token_type", nn.initializers.normal(0.02), tokens.shape[-2:])
        for i in range(c.depth):
            tokens = _Block(c.width, c.heads, c.mlp_ratio, name=f"block_{i}")(tokens)
        out = nn.LayerNorm()(tokens[..., 0, :])
        if c.grid:
            return nn.Dense(c.grid * c.grid, kernel_init=nn.initializers.zeros, name="logits")(out)
        return jnp.tanh(nn.Dense(2, name="mean")(out))


def encode_values(x: jax.Array, fourier: int) -> jax.Array:
    """float32 [..., n] -> [..., n * (1 + 2 * fourier)]: ``x`` and ``sin(2^k pi x), cos(2^k pi x)`` for k < fourier."""
    if not fourier:
        return x
    angles = x[..., None] * (jnp.pi * 2.0 ** jnp.arange(fourier))  # [..., n, F]
    return jnp.concatenate([x, jnp.sin(angles).reshape(x.shape[:-1] + (-1,)),
                            jnp.cos(angles).reshape(x.shape[:-1] + (-1,))], axis=-1)


def cell_centres(grid: int) -> jax.Array:
    """float32 [grid * grid, 2]: the (x, y) centre of each cell of the ``grid x grid`` grid over ``[-1, 1]^2``."""
    axis = (jnp.arange(grid, dtype=jnp.float32) + 0.5) / grid * 2.0 - 1.0
    x, y = jnp.meshgrid(axis, axis, indexing="ij")
    return jnp.stack([x.ravel(), y.ravel()], axis=-1)


def action_cell(action: jax.Array, grid: int) -> jax.Array:
    """int32 [...]: the grid cell (``i * grid + j``) holding each action float32 [..., 2] in ``[-1, 1]^2``."""
    ij = jnp.clip(jnp.floor((action + 1.0) / 2.0 * grid), 0, grid - 1).astype(jnp.int32)
    return ij[..., 0] * grid + ij[..., 1]


def act(config: PolicyConfig, output: jax.Array, key: jax.Array, *, explore: bool | jax.Array = True) -> jax.Array:
    """Actions float32 [B, 2] in ``[-1, 1]`` from the policy's output (see :class:`TransformerPolicy`).

    With ``explore`` (a Python or traced bool): a sample of the categorical (or the continuous mean plus
    N(0, sigma^2) noise, clipped), replaced with probability ``epsilon`` by a uniform random action. Without: the
    most likely cell's centre (or the mean).
    """
    key_sample, key_eps, key_uniform = jax.random.split(key, 3)
    batch = output.shape[:-1]
    if config.grid:
        centres = cell_centres(config.grid)
        greedy = centres[jnp.argmax(output, axis=-1)]
        sampled = centres[jax.random.categorical(key_sample, output, axis=-1)]
    else:
        greedy = output
        sampled = jnp.clip(output + config.sigma * jax.random.normal(key_sample, output.shape), -1.0, 1.0)
    uniform = jax.random.uniform(key_uniform, batch + (2,), minval=-1.0, maxval=1.0)
    noisy = jnp.where(jax.random.bernoulli(key_eps, config.epsilon, batch)[..., None], uniform, sampled)
    return jnp.where(explore, noisy, greedy)


def bc_loss(config: PolicyConfig, output: jax.Array, action: jax.Array, mask: jax.Array) -> jax.Array:
    """The behaviour-cloning loss, float32 [], averaged over the steps where ``mask`` is true.

    Args:
        output: the policy's output for the stored observations, [..., grid * grid] or [..., 2].
        action: float32 [..., 2], the stored actions.
        mask: bool [...], which stored steps count (the rest is padding).

    Returns:
        The mean cross-entropy of the stored action's cell (categorical head) or the mean squared error summed over
        x and y (continuous head); 0 when the mask is empty.
    """
    if config.grid:
        per_step = -jnp.take_along_axis(jax.nn.log_softmax(output, axis=-1),
                                        action_cell(action, config.grid)[..., None], axis=-1)[..., 0]
    else:
        per_step = jnp.sum((output - action) ** 2, axis=-1)
    mask = mask.astype(jnp.float32)
    return jnp.sum(per_step * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def check_sizes(config: PolicyConfig, observation_size: int, embeddings: jax.Array | Sequence) -> None:
    """Checks that the token split fits the env's observation and that there is one embedding row per subgoal.

    Raises:
        VlmrmError: naming the mismatch.
    """
    if config.observation_size != observation_size:
        raise VlmrmError(f"token_sizes={config.token_sizes} sum to {config.observation_size} but the env's "
                         f"observation has {observation_size} values; give one token size per observation slice")
    if jnp.ndim(embeddings) != 2:
        raise VlmrmError(f"subgoal embeddings must be float32 [num_subgoals, D], got shape {jnp.shape(embeddings)}")
