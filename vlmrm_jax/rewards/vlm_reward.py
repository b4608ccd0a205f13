"""The VLM-RM reward: CLIP similarity with goal-baseline projection (Rocamonde et al. 2023, Definition 1).

Given a unit image embedding ``s``, the means ``g`` and ``b`` of the unit embeddings of the goal prompts and of the
baseline prompts, and ``alpha`` in [0, 1]::

    d = g - b
    P = alpha * d d^T / |d|^2 + (1 - alpha) * I
    reward = 1 - 0.5 * |(s - g) P|^2

As in the authors' code, ``g`` and ``b`` are means of unit vectors and are *not* re-normalised. With ``alpha = 0``
the reward is ``1 - 0.5 |s - g|^2``, which equals the cosine similarity ``s . g`` when ``g`` is a unit vector (one
goal prompt). With ``alpha = 1`` only the component of ``s - g`` along the goal-baseline direction counts.
"""

from __future__ import annotations

from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp

from vlmrm_jax.errors import VlmrmError


def check_alpha(alpha: float) -> float:
    """Returns ``alpha`` as a float if it lies in [0, 1].

    Raises:
        VlmrmError: if ``alpha`` is not a finite number in [0, 1].
    """
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise VlmrmError(f"alpha={alpha!r} is not a number; pass a value in [0, 1] (e.g. --alpha 0.5)") from None
    if not 0.0 <= value <= 1.0:  # also False for NaN
        raise VlmrmError(f"alpha={alpha!r} is outside [0, 1]; pass a value in [0, 1] (0 = cosine similarity)")
    return value


def check_prompts(prompts: Sequence[str], what: str = "prompt") -> list[str]:
    """Returns the prompts as a list if there is at least one and none is empty or whitespace.

    Raises:
        VlmrmError: naming the empty list or the empty prompt.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise VlmrmError(f"no {what} given; pass at least one non-empty sentence, e.g. 'a humanoid robot kneeling'")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise VlmrmError(f"{what} {p!r} is empty; pass a non-empty sentence, e.g. 'a humanoid robot kneeling'")
    return prompts


def projection_matrix(goal: jax.Array, baseline: jax.Array, alpha: float) -> jax.Array:
    """The goal-baseline projection ``P = alpha d d^T / |d|^2 + (1 - alpha) I`` with ``d = goal - baseline``.

    Args:
        goal: float32 [D], mean of the unit goal-prompt embeddings.
        baseline: float32 [D], mean of the unit baseline-prompt embeddings.
        alpha: in [0, 1]; 0 gives the identity.

    Returns:
        float32 [D, D], symmetric.

    Raises:
        VlmrmError: if alpha is outside [0, 1], or alpha > 0 and goal == baseline (the direction is undefined).
    """
    alpha = check_alpha(alpha)
    d = goal - baseline
    norm2 = jnp.dot(d, d)
    if alpha > 0 and not isinstance(norm2, jax.core.Tracer) and float(norm2) == 0.0:
        raise VlmrmError("goal and baseline prompts have identical embeddings; use a baseline prompt that differs "
                         "from the goal, or --alpha 0")
    eye = jnp.eye(d.shape[0], dtype=d.dtype)
    return alpha * jnp.outer(d, d) / norm2 + (1.0 - alpha) * eye


@flax.struct.dataclass
class GoalBaselineReward:
    """The VLM-RM reward's fixed parameters, computed once per run from the prompt embeddings.

    Attributes:
        goal: float32 [D], ``g``: mean of the unit goal-prompt embeddings (not re-normalised, as in the paper's code).
        baseline: float32 [D], ``b``: mean of the unit baseline-prompt embeddings.
        projection: float32 [D, D], ``P`` (see :func:`projection_matrix`).
        alpha: float, the goal-baseline regularisation strength in [0, 1] (static).
    """

    goal: jax.Array
    baseline: jax.Array
    projection: jax.Array
    alpha: float = flax.struct.field(pytree_node=False)

    @classmethod
    def from_embeddings(cls, goal_embeddings: jax.Array, baseline_embeddings: jax.Array,
                        alpha: float) -> "GoalBaselineReward":
        """Builds the reward from text embeddings.

        Args:
            goal_embeddings: float [Ng, D], one row per goal prompt (normalised here to unit length).
            baseline_embeddings: float [Nb, D], one row per baseline prompt (normalised here).
            alpha: in [0, 1].

        Raises:
            VlmrmError: on alpha outside [0, 1], empty embedding sets, or mismatched dimensions.
        """
        alpha = check_alpha(alpha)
        goal_embeddings = jnp.atleast_2d(jnp.asarray(goal_embeddings, jnp.float32))
        baseline_embeddings = jnp.atleast_2d(jnp.asarray(baseline_embeddings, jnp.float32))
        if goal_embeddings.shape[0] == 0 or baseline_embeddings.shape[0] == 0:
            raise VlmrmError("need at least one goal and one baseline prompt embedding")
        if goal_embeddings.shape[1] != baseline_embeddings.shape[1]:
            raise VlmrmError(f"goal embeddings have dimension {goal_embeddings.shape[1]} but baseline embeddings "
                             f"{baseline_embeddings.shape[1]}; embed both with the same model")
        goal = jnp.mean(normalize(goal_embeddings), axis=0)
        baseline = jnp.mean(normalize(baseline_embeddings), axis=0)
        return cls(goal=goal, baseline=baseline, projection=projection_matrix(goal, baseline, alpha), alpha=alpha)

    @classmethod
    def stack(cls, rewards: Sequence["GoalBaselineReward"]) -> "GoalBaselineReward":
        """R rewards (e.g. one per run of a sweep, alphas may differ) as one, for ``jax.vmap`` over a leading axis.

        The array fields gain a leading axis: goal float32 [R, D], baseline float32 [R, D], projection float32
        [R, D, D] (each run's own ``P``, so its own alpha); ``alpha`` becomes the tuple of the R alphas (static).
        Mapped over with ``jax.vmap(..., in_axes=0)``, each slice is called as a single reward (``__call__`` reads
        only the arrays; a slice's ``alpha`` is the whole tuple). :meth:`unstack` gives the R rewards back.

        Raises:
            VlmrmError: if there are no rewards or their embedding dimensions differ.
        """
        rewards = list(rewards)
        if not rewards:
            raise VlmrmError("no rewards to stack; pass at least one GoalBaselineReward")
        dims = sorted({int(r.goal.shape[-1]) for r in rewards})
        if len(dims) > 1:
            raise VlmrmError(f"the rewards have embedding dimensions {dims}; build them all with the same model")
        arrays = jax.tree.map(lambda *x: jnp.stack(x), *[r.replace(alpha=0.0) for r in rewards])
        return arrays.replace(alpha=tuple(float(r.alpha) for r in rewards))

    def unstack(self) -> list["GoalBaselineReward"]:
        """The R single rewards of a :meth:`stack`-ed one (leaves [R, ...]), each with its own alpha."""
        return [jax.tree.map(lambda x: x[i], self.replace(alpha=0.0)).replace(alpha=alpha)
                for i, alpha in enumerate(self.alpha)]

    def __call__(self, image_embeddings: jax.Array) -> jax.Array:
        """The reward of each image: ``1 - 0.5 |(s - g) P|^2`` with ``s`` the unit image embedding.

        Args:
            image_embeddings: float [..., D] image embeddings (normalised here to unit length).

        Returns:
            float32 [...], one reward per image; in [-1, 1] for alpha = 0 and one goal prompt.
        """
        s = normalize(image_embeddings.astype(jnp.float32))
        y = (s - self.goal) @ self.projection
        return 1.0 - 0.5 * jnp.sum(y * y, axis=-1)


def normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Scales the last axis of ``x`` to unit L2 norm: float [..., D] -> float [..., D]."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
