"""CLIP scaling: model size and VLM-RM reward quality per model, as in Rocamonde et al. 2023 (Fig. 5/6).

VLM-RM's scaling result is that bigger CLIPs are better reward models: the EPIC distance between the CLIP reward and
the ground-truth reward falls, and the success rate of the policies trained on it rises, with model size. This
module measures, for one loaded :class:`~vlmrm_jax.models.CLIP`:

- its size (:func:`model_size`): parameters of both towers and of the vision tower alone, and the GFLOPs of
  embedding one image (:func:`image_gflops`, XLA's own count from the compiled program);
- the quality of its goal-baseline reward on held-out labelled frames (:func:`reward_quality`), per goal prompt
  and per alpha: the AUROC of the reward for telling frames where the prompt's concept holds from the others
  (:func:`vlmrm_jax.models.evaluation.auroc`), and the EPIC distance (Gleave et al. 2020) between the CLIP reward
  and the ground-truth predicate reward, the frame's 0/1 label of the concept (:func:`predicate_epic`).

EPIC for rewards of the reached frame. Both rewards are functions of the next state only, R(s, a, s') = r(s'),
and the coverage distribution is the frame set: transitions whose next states are the N frames, shaping samples
S_j (and S') drawn from the same frames. EPIC's canonicalisation (:func:`vlmrm_jax.eval.epic.canonicalize`)
then gives C(R)(s, a, s') = r(s') + gamma E[r(S')] - E[r(S')] - gamma E[r(S')] = r(s') - E[r(S')], a constant
shift of r, so the EPIC distance equals the Pearson distance sqrt((1 - rho) / 2) of the two rewards over the frames,
whatever gamma and whichever frames serve as shaping samples. It is computed with :mod:`vlmrm_jax.eval.epic` on
:class:`~vlmrm_jax.eval.epic.RewardTensors` built from the frames (:func:`state_reward_tensors`).

Generic: nothing here knows an environment family; frames, labels and the caption set come from a dataset.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict

from vlmrm_jax.datasets.captions import CaptionSet, normalise_caption
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.eval import epic
from vlmrm_jax.eval.landscape import EPIC_GAMMA
from vlmrm_jax.models.clip import CLIP
from vlmrm_jax.models.evaluation import auroc, embed_frames
from vlmrm_jax.rewards import GoalBaselineReward, check_alpha

#: Top-level entries of a Flax CLIP's weights that belong to the image embedding (vision tower and projection).
VISION_PARAMS = ("vision_model", "visual_projection")
#: Shaping samples of the EPIC estimate: at most this many frames (evenly spaced) stand for S and S'. The distance
#: does not depend on which (see the module docstring); the cap bounds the N x M reward tensors.
NUM_SHAPING = 256


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """The size of one CLIP.

    Attributes:
        parameters: weights of both towers, projections and logit scale (the usual "parameters" of a CLIP).
        vision_parameters: weights of the image embedding alone (vision tower + visual projection), the part VLM-RM
            runs at every env step.
        gflops_per_image: GFLOPs of embedding one frame at the model's input size, preprocessing included, as XLA's
            cost analysis counts them (a multiply-add is 2 FLOPs); NaN if the backend reports no count.
        image_size: input size S in pixels.
    """

    parameters: int
    vision_parameters: int
    gflops_per_image: float
    image_size: int

    def to_dict(self) -> dict:
        """The fields as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


def parameter_counts(params: Mapping) -> tuple[int, int]:
    """Parameters of a Flax CLIP's weights: (all, vision tower + visual projection).

    Args:
        params: a ``FlaxCLIPModel`` weights pytree (``clip.params``), top-level keys ``vision_model``,
            ``visual_projection``, ``text_model``, ``text_projection``, ``logit_scale``.

    Raises:
        VlmrmError: if ``params`` has no ``vision_model`` entry (not a CLIP's weights).
    """
    if not isinstance(params, Mapping) or "vision_model" not in params:
        keys = list(params) if isinstance(params, Mapping) else type(params).__name__
        raise VlmrmError(f"weights with top-level entries {keys} are not a Flax CLIP's (no 'vision_model'); pass "
                         f"clip.params of a loaded vlmrm_jax.models.CLIP")
    sizes = {path: int(np.prod(np.shape(leaf))) for path, leaf in flatten_dict(dict(params)).items()}
    total = sum(sizes.values())
    vision = sum(n for path, n in sizes.items() if path[0] in VISION_PARAMS)
    return total, vision


def image_gflops(clip: CLIP) -> float:
    """GFLOPs of ``clip.embed_images`` on one float32 [1, S, S, 3] frame (S = the input size), as counted by XLA.

    The count is XLA's cost analysis of the compiled program (``jax.jit(...).lower(...).compile().cost_analysis()``
    ``["flops"]``) on JAX's default backend: every op of the jitted embedding (preprocessing, patch embedding,
    attention, MLPs, projection, normalisation), a multiply-add counted as 2 FLOPs, as open_clip's published
    GFLOPs are. It can differ slightly between backends (what XLA fuses or rewrites). ``clip.params`` may be
    abstract (``jax.ShapeDtypeStruct`` leaves, e.g. from ``jax.eval_shape``): only the compiled program is needed.

    Returns:
        GFLOPs per image (float), or NaN when the backend reports no FLOP count.
    """
    frame = jnp.zeros((1, clip.image_size, clip.image_size, 3), jnp.float32)
    compiled = jax.jit(clip.embed_images).lower(clip.params, frame).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0] if cost else None
    flops = cost.get("flops") if isinstance(cost, Mapping) else None
    return float(flops) / 1e9 if flops is not None and flops > 0 else float("nan")


def model_size(clip: CLIP) -> ModelSize:
    """Parameters (:func:`parameter_counts`) and GFLOPs per image (:func:`image_gflops`) of a loaded CLIP."""
    total, vision = parameter_counts(clip.params)
    return ModelSize(total, vision, image_gflops(clip), clip.image_size)


def state_reward_tensors(reward: jax.Array, shaping: np.ndarray) -> epic.RewardTensors:
    """EPIC's reward tensors of a reward of the reached frame, R(s, a, s') = r(s'), over a frame set.

    Transitions: N, the i-th reaching frame i (s and a do not enter R). Shaping samples S_j: the frames
    ``shaping`` (M indices into the N frames), so ``R(x, A_j, S_j) = r[shaping[j]]`` for any x.

    Args:
        reward: float [N], r at each frame.
        shaping: int [M], indices of the frames that serve as shaping samples.

    Returns:
        :class:`~vlmrm_jax.eval.epic.RewardTensors`: reward [N], from_next_state and from_state [N, M],
        from_samples [M, M] (float32).

    Raises:
        VlmrmError: if ``reward`` is not 1-D with N >= 2, or ``shaping`` is empty or out of range.
    """
    reward = jnp.asarray(reward, jnp.float32)
    shaping = np.asarray(shaping)
    if reward.ndim != 1 or reward.shape[0] < 2:
        raise VlmrmError(f"reward has shape {reward.shape}; pass float [N] with N >= 2 frames")
    if shaping.ndim != 1 or shaping.size == 0 or shaping.min() < 0 or shaping.max() >= reward.shape[0]:
        raise VlmrmError(f"shaping indices must be 1-D, non-empty and in [0, {reward.shape[0]}); got shape "
                         f"{shaping.shape}")
    n, m = reward.shape[0], shaping.size
    at_samples = reward[shaping][None, :]
    return epic.RewardTensors(reward, jnp.broadcast_to(at_samples, (n, m)), jnp.broadcast_to(at_samples, (n, m)),
                              jnp.broadcast_to(at_samples, (m, m)))


def shaping_indices(num_frames: int, num_shaping: int = NUM_SHAPING) -> np.ndarray:
    """``min(num_frames, num_shaping)`` evenly spaced frame indices: int64 [M]."""
    return np.unique(np.linspace(0, num_frames - 1, min(num_frames, num_shaping)).round().astype(np.int64))


def predicate_epic(clip_reward: np.ndarray, holds: np.ndarray, gamma: float = EPIC_GAMMA,
                   num_shaping: int = NUM_SHAPING) -> float:
    """EPIC distance between a CLIP reward of frames and the ground-truth predicate reward (1 where the concept
    holds, else 0), both rewards of the reached frame, the frames as coverage distribution (module docstring).

    Args:
        clip_reward: float [N], the CLIP reward of each frame.
        holds: bool [N], whether the concept holds in each frame.
        gamma: EPIC's discount in [0, 1] (the result does not depend on it here).
        num_shaping: at most this many frames serve as shaping samples.

    Returns:
        float in [0, 1]: 0 = the same reward up to offset and positive scale, ~0.707 = uncorrelated; NaN when either
        reward is constant (no positive or no negative frame).

    Raises:
        VlmrmError: on mismatched or non-1-D inputs, fewer than 2 frames, or gamma outside [0, 1].
    """
    clip_reward, holds = np.asarray(clip_reward, np.float32), np.asarray(holds, bool)
    if clip_reward.ndim != 1 or clip_reward.shape != holds.shape:
        raise VlmrmError(f"clip_reward {clip_reward.shape} and holds {holds.shape} must be 1-D of the same length")
    shaping = shaping_indices(len(clip_reward), num_shaping)
    return float(epic.epic_distance_from_tensors(state_reward_tensors(clip_reward, shaping),
                                                 state_reward_tensors(holds.astype(np.float32), shaping), gamma))


def prompt_concepts(captions: CaptionSet, prompts: Sequence[str]) -> dict[str, str]:
    """Concept key -> prompt for prompts that are captions of ``captions`` (case, spaces, a final full stop
    ignored), so that each has a ground-truth predicate.

    Raises:
        VlmrmError: if a prompt is no caption of any concept, or two prompts name the same concept.
    """
    by_caption = {normalise_caption(c): concept.key for concept in captions.concepts for c in concept.captions}
    out: dict[str, str] = {}
    for prompt in prompts:
        key = by_caption.get(normalise_caption(prompt))
        if key is None:
            raise VlmrmError(f"prompt {prompt!r} is not a caption of any concept of these frames, so no ground-truth "
                             f"predicate scores it; pass one of the paper prompts: "
                             f"{'; '.join(captions.goal_prompts.values())}")
        if key in out:
            raise VlmrmError(f"prompts {out[key]!r} and {prompt!r} both name the concept {key!r}; pass one of them")
        out[key] = prompt
    return out


def _alpha_key(alpha: float) -> str:
    return f"{alpha:g}"


def _nanmean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def reward_quality(clip: CLIP, images: np.ndarray, labels: np.ndarray, captions: CaptionSet,
                   alphas: Sequence[float], prompts: Mapping[str, str] | None = None, *,
                   gamma: float = EPIC_GAMMA, num_shaping: int = NUM_SHAPING) -> dict:
    """Per goal prompt and alpha: AUROC and EPIC distance to the predicate reward of the VLM-RM reward on frames.

    The frames are embedded once (:func:`vlmrm_jax.models.evaluation.embed_frames`), the prompts once; the reward
    is :class:`~vlmrm_jax.rewards.GoalBaselineReward` (Rocamonde et al. 2023, Definition 1) of each prompt against
    the caption set's baseline prompt. AUROC as :func:`vlmrm_jax.models.evaluation.evaluate_prompts` computes it;
    EPIC by :func:`predicate_epic`.

    Args:
        clip: the loaded model.
        images: uint8 [N, H, W, 3], held-out frames.
        labels: bool [N, C], columns in ``captions.concepts`` order.
        captions: the frames' caption set (its baseline prompt is the reward's baseline).
        alphas: goal-baseline strengths in [0, 1].
        prompts: concept key -> goal prompt; default ``captions.goal_prompts`` (the paper's prompts).
        gamma, num_shaping: see :func:`predicate_epic`.

    Returns:
        ``{"num_frames", "baseline_prompt", "alphas", "prompts": {key: {"prompt", "positives", "positive_rate",
        "auroc": {alpha: float}, "epic": {alpha: float}}}, "mean_auroc": {alpha: float}, "mean_epic":
        {alpha: float}}``, alphas as ``f"{alpha:g}"`` strings; means skip NaNs (concepts without positives or
        negatives).

    Raises:
        VlmrmError: if ``labels`` does not match ``images`` and ``captions``, an alpha is outside [0, 1], a key is
            not a concept, or there are no prompts.
    """
    labels = np.asarray(labels, bool)
    if labels.shape != (len(images), len(captions.concepts)):
        raise VlmrmError(f"labels have shape {labels.shape}, expected {(len(images), len(captions.concepts))}")
    alphas = [check_alpha(a) for a in alphas]
    prompts = dict(captions.goal_prompts if prompts is None else prompts)
    if not prompts or not alphas:
        raise VlmrmError("no prompts or no alphas to evaluate; pass at least one of each")
    frames = embed_frames(clip, clip.params, images)
    goals = np.asarray(clip.embed_text(list(prompts.values())))
    baseline = clip.embed_text([captions.baseline_prompt])
    result: dict = {"num_frames": int(len(images)), "baseline_prompt": captions.baseline_prompt,
                    "alphas": [_alpha_key(a) for a in alphas], "prompts": {}}
    for (key, prompt), goal in zip(prompts.items(), goals):
        holds = labels[:, captions.keys.index(captions.concept(key).key)]
        row = {"prompt": prompt, "positives": int(holds.sum()), "positive_rate": float(holds.mean()),
               "auroc": {}, "epic": {}}
        for alpha in alphas:
            reward = np.asarray(GoalBaselineReward.from_embeddings(goal[None], baseline, alpha)(frames))
            row["auroc"][_alpha_key(alpha)] = auroc(reward, holds)
            row["epic"][_alpha_key(alpha)] = predicate_epic(reward, holds, gamma, num_shaping)
        result["prompts"][key] = row
    for name in ("auroc", "epic"):
        result[f"mean_{name}"] = {a: _nanmean(row[name][a] for row in result["prompts"].values())
                                  for a in result["alphas"]}
    return result


def quality_rows(model: str, size: ModelSize, quality: Mapping, target: str) -> list[dict]:
    """One table row per alpha: the model, its size, the target prompt's EPIC and AUROC, the means over prompts, and
    per prompt ``auroc/<key>`` and ``epic/<key>``.

    Args:
        model: the model's name (as passed to :meth:`CLIP.load`).
        size: its :class:`ModelSize`.
        quality: :func:`reward_quality`'s result.
        target: concept key of the prompt the table is about (e.g. the training prompt's).

    Raises:
        VlmrmError: if ``target`` is not among the evaluated prompts.
    """
    if target not in quality["prompts"]:
        raise VlmrmError(f"target concept {target!r} was not evaluated; choose one of {', '.join(quality['prompts'])}")
    rows = []
    for alpha in quality["alphas"]:
        row = {"model": model, **size.to_dict(), "alpha": float(alpha), "prompt": quality["prompts"][target]["prompt"],
               "epic": quality["prompts"][target]["epic"][alpha], "auroc": quality["prompts"][target]["auroc"][alpha],
               "mean_epic": quality["mean_epic"][alpha], "mean_auroc": quality["mean_auroc"][alpha]}
        for key, entry in quality["prompts"].items():
            row[f"auroc/{key}"] = entry["auroc"][alpha]
            row[f"epic/{key}"] = entry["epic"][alpha]
        rows.append(row)
    return rows


def plot_scaling(rows: Sequence[Mapping], path: str | Path, title: str = "") -> Path:
    """Quality (and success) against model size, log x, one line per alpha: EPIC distance of the target prompt
    (lower is better), its AUROC and the mean AUROC over prompts (dashed), and, when rows carry ``success_rate``,
    the success rate (mean over seeds; dots: single seeds). Points are labelled with GFLOPs per image.

    Args:
        rows: :func:`quality_rows` rows, optionally with ``seed`` and ``success_rate``.
        path: the PNG to write.
        title: figure title.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        VlmrmError: if ``rows`` is empty.
    """
    import matplotlib
    from matplotlib.figure import Figure

    if not rows:
        raise VlmrmError("no rows to plot; evaluate at least one model")
    trained = any(r.get("success_rate") is not None for r in rows)
    fig = Figure(figsize=(13 if trained else 9, 3.8))
    axes = fig.subplots(1, 3 if trained else 2, squeeze=False)
    axes = axes[0]
    alphas = sorted({float(r["alpha"]) for r in rows})
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]

    def series(alpha, key):
        points: dict[int, list] = {}
        for r in rows:
            if float(r["alpha"]) == alpha and r.get(key) is not None:
                points.setdefault(int(r["parameters"]), []).append(float(r[key]))
        xs = sorted(points)
        return np.asarray(xs, float), np.asarray([np.nanmean(points[x]) for x in xs]), points

    for i, alpha in enumerate(alphas):
        colour = colours[i % len(colours)]
        xs, ys, _ = series(alpha, "epic")
        axes[0].plot(xs, ys, marker="o", color=colour, label=f"alpha={alpha:g}")
        xs, ys, _ = series(alpha, "auroc")
        axes[1].plot(xs, ys, marker="o", color=colour, label=f"alpha={alpha:g}: prompt")
        xs, ys, _ = series(alpha, "mean_auroc")
        axes[1].plot(xs, ys, marker=".", ls="--", color=colour, label=f"alpha={alpha:g}: mean over prompts")
        if trained:
            xs, ys, points = series(alpha, "success_rate")
            axes[2].plot(xs, ys, marker="o", color=colour, label=f"alpha={alpha:g}")
            for x, values in points.items():
                axes[2].scatter([x] * len(values), values, color=colour, s=10, alpha=0.5)
    first = {}
    for r in rows:  # label each model at its first alpha's EPIC point
        if r.get("epic") is not None and not math.isnan(float(r["epic"])):
            first.setdefault(int(r["parameters"]), (r["model"], r["gflops_per_image"], float(r["epic"])))
    for x, (name, gflops, y) in first.items():
        axes[0].annotate(f"{Path(str(name)).name}\n{gflops:.3g} GFLOPs/image", (x, y), xytext=(0, -14),
                         textcoords="offset points", fontsize=6, ha="center", va="top")
    labels = [("EPIC distance to the predicate reward (lower is better)", (0.0, 1.0)), ("AUROC", (0.0, 1.0)),
              ("success rate", (-0.02, 1.02))]
    for ax, (ylabel, _) in zip(axes, labels):
        ax.set_xscale("log")
        ax.set_xlabel("parameters (vision + text)")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
    if trained:
        axes[2].set_ylim(*labels[2][1])
    prompt = rows[0].get("prompt")
    fig.suptitle(title or f"VLM-RM reward quality against CLIP size ({prompt!r})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
