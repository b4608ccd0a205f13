"""How well a CLIP separates an environment's frames by their ground-truth concepts, as a VLM-RM reward model.

For each goal prompt of a :class:`~vlmrm_jax.datasets.CaptionSet` (the paper's prompts), on labelled frames:

- AUROC of the VLM-RM reward (Rocamonde et al. 2023, Definition 1: goal-baseline projection with strength alpha)
  for telling frames where the concept holds from frames where it does not: 0.5 is chance, 1 is perfect ranking.
  At alpha = 0 the reward is the cosine similarity with the goal prompt.
- Text-to-image retrieval: R-precision of ranking the frames by cosine similarity to the prompt, i.e. the fraction
  of positives among the top R frames, R = the number of positives (chance: the positive rate).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from vlmrm_jax.datasets.captions import CaptionSet
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.models.clip import CLIP
from vlmrm_jax.rewards import GoalBaselineReward, check_prompts


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney U statistic over positive-negative pairs, ties counted half).

    Args:
        scores: float [N], higher = more likely positive.
        labels: bool [N].

    Returns:
        AUROC in [0, 1], or NaN when ``labels`` has no positive or no negative.

    Raises:
        VlmrmError: if the shapes differ or are not 1-D.
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise VlmrmError(f"scores {scores.shape} and labels {labels.shape} must be 1-D of the same length")
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1  # 1-based rank of each distinct value's first occurrence
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]  # ties get their average rank
    u = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def r_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of positives among the R highest-scoring items, R = the number of positives (NaN if R = 0).

    Args:
        scores: float [N]; labels: bool [N].
    """
    scores, labels = np.asarray(scores), np.asarray(labels, bool)
    r = int(labels.sum())
    if r == 0:
        return float("nan")
    top = np.argsort(-scores, kind="stable")[:r]
    return float(labels[top].mean())


def confusion_aurocs(scores: np.ndarray, goal: np.ndarray, others: dict[str, np.ndarray]) -> dict[str, float]:
    """How well a reward tells the goal from each other concept alone: per concept, the AUROC of ``scores`` over the
    goal frames (positives) and the frames where that concept holds and the goal does not (negatives).

    A mean AUROC over all frames hides a single confusable pose (kneeling against squatting, say) behind many easy
    negatives; this isolates it.

    Args:
        scores: float [N], e.g. the VLM-RM reward of each frame for the goal prompt.
        goal: bool [N], the goal concept's ground truth.
        others: concept name -> bool [N], its ground truth.

    Returns:
        Concept name -> AUROC in [0, 1] (NaN when the goal or that concept has no frame).

    Raises:
        VlmrmError: if the arrays are not 1-D of one length.
    """
    goal = np.asarray(goal, bool)
    result = {}
    for name, holds in others.items():
        holds = np.asarray(holds, bool)
        if holds.shape != goal.shape:
            raise VlmrmError(f"concept {name!r} has {holds.shape} labels, the goal {goal.shape}")
        keep = goal | holds
        result[name] = auroc(np.asarray(scores)[keep], goal[keep])
    return result


_embed_images_jit = jax.jit(lambda clip, params, images: clip.embed_images(params, images))


def embed_frames(clip: CLIP, params, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Unit image embeddings of uint8 frames, in batches (padded to one compiled shape).

    Args:
        clip: the model; params: its weights.
        images: uint8 [N, H, W, 3].

    Returns:
        float32 [N, D].
    """
    images = np.asarray(images)
    static = clip.replace(params=None)  # the weights travel once, as ``params``
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        pad = batch_size - len(chunk) if len(images) > batch_size else 0
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)])
        out.append(np.asarray(_embed_images_jit(static, params, chunk.astype(np.float32) / 255.0))[:len(chunk) - pad])
    return np.concatenate(out)


def evaluate_prompts(clip: CLIP, params, images: np.ndarray, labels: np.ndarray, captions: CaptionSet,
                     alphas: Sequence[float] = (0.0, 0.5), prompts: dict[str, str] | None = None,
                     baseline_prompts: Sequence[str] | None = None) -> dict:
    """Per-prompt AUROC of the VLM-RM reward and text-to-image R-precision on labelled frames.

    Args:
        clip: the model (its tokenizer and architecture); params: the weights to evaluate.
        images: uint8 [N, H, W, 3], e.g. frames from held-out seeds.
        labels: bool [N, C], columns in ``captions.concepts`` order.
        captions: the vocabulary.
        alphas: goal-baseline regularisation strengths to evaluate.
        prompts: concept key -> goal prompt to evaluate; default ``captions.goal_prompts`` (the paper's prompts).
        baseline_prompts: the reward's baseline prompts (their unit embeddings are averaged, as in
            :class:`~vlmrm_jax.rewards.GoalBaselineReward`); default ``[captions.baseline_prompt]`` (the paper's).

    Returns:
        ``{"prompts": {key: {"prompt", "positives", "auroc_alpha_<a>" per alpha, "r_precision",
        "positive_rate"}}, "mean_auroc_alpha_<a>", "mean_r_precision", "num_frames", "baseline_prompts"}``;
        means skip NaNs (concepts without positives or negatives). R-precision ranks by the goal similarity alone,
        so it does not depend on the baseline.

    Raises:
        VlmrmError: if ``labels`` does not match ``images`` and ``captions``, a key is not a concept, or
            ``baseline_prompts`` is empty or holds an empty prompt (checked before any frame is embedded).
    """
    labels = np.asarray(labels, bool)
    if labels.shape != (len(images), len(captions.concepts)):
        raise VlmrmError(f"labels have shape {labels.shape}, expected {(len(images), len(captions.concepts))}")
    prompts = dict(captions.goal_prompts if prompts is None else prompts)
    if baseline_prompts is None:
        baseline_prompts = [captions.baseline_prompt]
    baseline_prompts = check_prompts(baseline_prompts, "baseline prompt")
    model = clip.replace(params=params)
    frames = embed_frames(clip, params, images)
    goals = np.asarray(model.embed_text(list(prompts.values())))
    baseline = model.embed_text(baseline_prompts)
    result: dict = {"prompts": {}, "num_frames": int(len(images)), "baseline_prompts": baseline_prompts}
    for (key, prompt), goal in zip(prompts.items(), goals):
        holds = labels[:, captions.keys.index(captions.concept(key).key)]
        row = {"prompt": prompt, "positives": int(holds.sum()), "positive_rate": float(holds.mean())}
        for alpha in alphas:
            reward = GoalBaselineReward.from_embeddings(goal[None], baseline, alpha)
            row[f"auroc_alpha_{alpha:g}"] = auroc(np.asarray(reward(frames)), holds)
        row["r_precision"] = r_precision(frames @ goal, holds)
        result["prompts"][key] = row
    for name in [*(f"auroc_alpha_{a:g}" for a in alphas), "r_precision"]:
        values = [row[name] for row in result["prompts"].values() if not np.isnan(row[name])]
        result[f"mean_{name}"] = float(np.mean(values)) if values else float("nan")
    return result
