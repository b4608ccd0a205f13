"""Subgoal detection with a CLIP (Di Palo et al. 2023, section 3.3), its calibration and its quality.

The paper's rule: subgoal caption g is reached in frame o when the unit text and image embeddings agree,
``phi_T(g) . phi_I(o) > gamma`` (the paper: gamma = 0.8 for its fine-tuned CLIP). The right gamma depends on the
model (a CLIP trained from scratch with a learned temperature puts its similarities elsewhere), so gamma is
calibrated per model on held-out labelled frames for a precision target (the paper favours precision over recall:
a false detection puts a wrong episode into the agent's buffer), :func:`calibrate_threshold`, and stored with the
model in ``detector.json`` (:func:`write_detector_config`, read by :meth:`SubgoalDetector.load`).

A scene seen by several cameras (V views of the same state) is detected by combining the views' similarities:
``"any"`` (detected when some view is above gamma: the largest similarity) or ``"all"`` (every view: the smallest).
Combining the similarities first makes the combined rule one threshold again, so it is calibrated the same way.

Generic: nothing here knows an environment; the caption strings come from the caller (for block stacking,
``vlmrm_jax.envs.stacking.language.SUBGOALS``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.models.clip import CLIP
from vlmrm_jax.models.registry import OFFLINE_MODELS, resolve_model

#: The paper's threshold on the unit-embedding dot product (Di Palo et al. 2023).
PAPER_THRESHOLD = 0.8
#: How the views of a multi-camera frame are combined: detected in some view, or in every view.
COMBINE_RULES = ("any", "all")
#: The file in a model directory that holds its calibrated detector settings.
DETECTOR_FILE = "detector.json"


def check_threshold(threshold) -> float:
    """``threshold`` as a float in [-1, 1] (the range of a dot product of unit vectors).

    Raises:
        VlmrmError: if it is not a number in [-1, 1] (NaN included).
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise VlmrmError(f"threshold={threshold!r} is not a number; pass gamma in [-1, 1] (the paper: 0.8)") from None
    if not -1.0 <= value <= 1.0:
        raise VlmrmError(f"threshold={threshold!r} is outside [-1, 1], the range of a dot product of unit embeddings; "
                         f"pass gamma in [-1, 1] (the paper: 0.8, or the model's calibrated detector.json value)")
    return value


def check_combine(combine: str | None) -> str | None:
    """``combine`` if it is None or one of :data:`COMBINE_RULES`.

    Raises:
        VlmrmError: otherwise.
    """
    if combine is not None and combine not in COMBINE_RULES:
        raise VlmrmError(f"combine={combine!r} is not a way to combine camera views; pass one of "
                         f"{', '.join(map(repr, COMBINE_RULES))} (or None for single-view frames)")
    return combine


def combine_views(similarities: jax.Array, combine: str) -> jax.Array:
    """Combines per-view similarities so that one threshold gives the combined rule.

    Args:
        similarities: float [..., V, S], one row per camera view.
        combine: ``"any"`` (max over views: detected when some view is above the threshold) or ``"all"`` (min over
            views: detected when every view is).

    Returns:
        float [..., S].

    Raises:
        VlmrmError: on an unknown ``combine``.
    """
    if check_combine(combine) is None:
        raise VlmrmError("combine=None cannot combine views; pass 'any' or 'all'")
    xp = jnp if isinstance(similarities, jax.Array) else np
    return xp.max(similarities, axis=-2) if combine == "any" else xp.min(similarities, axis=-2)


def _text_embeddings(clip: CLIP, subgoals) -> jax.Array:
    if isinstance(subgoals, (jax.Array, np.ndarray)):
        if subgoals.ndim != 2 or subgoals.shape[-1] != clip.embed_dim:
            raise VlmrmError(f"subgoal embeddings of shape {subgoals.shape} are not [S, {clip.embed_dim}]; pass "
                             f"clip.embed_text(captions) or the captions themselves")
        return jnp.asarray(subgoals, jnp.float32)
    return clip.embed_text(subgoals)  # raises VlmrmError on a bare string, an empty list or an empty caption


def subgoal_similarities(clip: CLIP, frames: jax.Array, subgoals, *, params=None) -> jax.Array:
    """Dot products of unit image and unit subgoal-text embeddings, ``phi_I(o) . phi_T(g)``.

    Args:
        clip: the model.
        frames: float [B, H, W, 3] or [B, V, H, W, 3] (V camera views of each state), RGB in [0, 1]; resized to
            the model's input size by :meth:`CLIP.embed_images`.
        subgoals: the S subgoal captions (embedded here, eagerly), or their unit text embeddings float [S, D]
            (``clip.embed_text(captions)``, computed once: then the call is jittable).
        params: the image tower's weights (default ``clip.params``).

    Returns:
        float32 [B, S] or [B, V, S], in [-1, 1].

    Raises:
        VlmrmError: on frames that are not float [B, (V,) H, W, 3], or bad subgoals.
    """
    text = _text_embeddings(clip, subgoals)
    frames = jnp.asarray(frames)
    if frames.ndim not in (4, 5) or frames.shape[-1] != 3:
        raise VlmrmError(f"frames of shape {frames.shape} are not [B, H, W, 3] or [B, V, H, W, 3] RGB frames; "
                         f"add a batch axis with frames[None] for a single frame")
    views = frames.reshape((-1,) + frames.shape[-3:])
    image = clip.embed_images(clip.params if params is None else params, views)  # [B * V, D]
    return (image @ text.T).reshape(frames.shape[:-3] + (text.shape[0],))


def detect_subgoals(clip: CLIP, frames: jax.Array, subgoals, threshold: float, *, combine: str | None = None,
                    params=None) -> jax.Array:
    """Which subgoals each frame shows, by the rule of Di Palo et al. (2023): ``phi_T(g) . phi_I(o) > gamma``.

    Jittable when ``subgoals`` is an embedding array and ``threshold`` / ``combine`` are static (closed over or
    ``static_argnames``): embed the captions once with ``clip.embed_text``. A traced ``threshold`` is not checked.

    Args:
        clip: the model.
        frames: float [B, H, W, 3], or [B, V, H, W, 3] with ``combine`` (V camera views of each state), RGB in
            [0, 1].
        subgoals: S captions, or their unit text embeddings float [S, D].
        threshold: gamma in [-1, 1] (the paper: 0.8; a shipped model's calibrated value is in its
            ``detector.json``).
        combine: for [B, V, H, W, 3] frames, ``"any"`` (detected in some view) or ``"all"`` (in every view).
        params: the image tower's weights (default ``clip.params``).

    Returns:
        bool [B, S]: ``out[b, s]`` is true when frame b shows subgoal s.

    Raises:
        VlmrmError: a threshold outside [-1, 1]; multi-view frames without ``combine`` (or single-view frames with
            one); an unknown ``combine``; bad frames or subgoals.
    """
    if not isinstance(threshold, jax.core.Tracer):
        threshold = check_threshold(threshold)
    check_combine(combine)
    ndim = jnp.ndim(frames)
    if ndim == 5 and combine is None:
        raise VlmrmError(f"frames of shape {jnp.shape(frames)} hold several camera views; pass combine='any' or "
                         f"combine='all' to say how their detections combine")
    if ndim == 4 and combine is not None:
        raise VlmrmError(f"combine={combine!r} needs frames [B, V, H, W, 3] with camera views; got "
                         f"{jnp.shape(frames)}: drop combine")
    similarities = subgoal_similarities(clip, frames, subgoals, params=params)
    if combine is not None:
        similarities = combine_views(similarities, combine)
    return similarities > threshold


@struct.dataclass
class SubgoalDetector:
    """A CLIP, its subgoal captions embedded once, and its calibrated threshold: frames -> detected subgoals.

    A pytree (``clip`` weights and ``text_embeddings`` are its leaves), so it can be passed into jitted functions.

    Attributes:
        clip: the model.
        text_embeddings: float32 [S, D], unit embeddings of ``subgoals``.
        subgoals: the S captions, in column order of the detections.
        threshold: gamma in [-1, 1].
        combine: how multi-view frames combine (None: frames are single views).
    """

    clip: CLIP
    text_embeddings: jax.Array
    subgoals: tuple[str, ...] = struct.field(pytree_node=False)
    threshold: float = struct.field(pytree_node=False)
    combine: str | None = struct.field(pytree_node=False, default=None)

    @classmethod
    def create(cls, clip: CLIP, subgoals: Sequence[str], threshold: float,
               combine: str | None = None) -> SubgoalDetector:
        """Embeds ``subgoals`` once (eagerly) and checks the settings.

        Raises:
            VlmrmError: a threshold outside [-1, 1], an unknown ``combine``, bad captions.
        """
        subgoals = tuple(subgoals) if not isinstance(subgoals, str) else subgoals
        return cls(clip=clip, text_embeddings=clip.embed_text(subgoals), subgoals=subgoals,
                   threshold=check_threshold(threshold), combine=check_combine(combine))

    @classmethod
    def load(cls, model: str | Path, subgoals: Sequence[str] | None = None, *,
             combine: str | None = "default") -> SubgoalDetector:
        """The detector of a model with a calibrated ``detector.json`` (e.g. the shipped ``stacking-clip-tiny``).

        Args:
            model: a shipped model name or a model directory.
            subgoals: the captions to detect (default: the ones the model was calibrated on).
            combine: None (single-view frames), ``"any"`` or ``"all"``; the default takes the model's
                recommended rule. The threshold is the one calibrated for that rule.

        Raises:
            ModelNotFoundError: the model cannot be loaded.
            VlmrmError: the model has no (valid) ``detector.json``, or no threshold for ``combine``.
        """
        config = read_detector_config(model)
        if combine == "default":
            combine = config["combine"]
        key = check_combine(combine) or "single"
        if key not in config["thresholds"]:
            raise VlmrmError(f"{model}'s {DETECTOR_FILE} has no threshold for combine={combine!r}; it has "
                             f"{', '.join(config['thresholds'])}: recalibrate with python -m "
                             f"experiments.detector_quality --write-config")
        return cls.create(CLIP.load(str(model)), config["subgoals"] if subgoals is None else subgoals,
                          config["thresholds"][key], combine)

    def similarities(self, frames: jax.Array) -> jax.Array:
        """float32 [B, S] (views combined by :attr:`combine`) of frames float [B, (V,) H, W, 3] in [0, 1].
        Jittable."""
        similarities = subgoal_similarities(self.clip, frames, self.text_embeddings)
        return similarities if self.combine is None else combine_views(similarities, self.combine)

    def __call__(self, frames: jax.Array) -> jax.Array:
        """bool [B, S], the subgoals each frame shows (:func:`detect_subgoals`). Jittable."""
        return detect_subgoals(self.clip, frames, self.text_embeddings, self.threshold, combine=self.combine)


# --- calibration and quality (NumPy, on held-out labelled frames) ---


class Calibration(NamedTuple):
    """A calibrated threshold and what it achieves on the calibration frames.

    Attributes:
        threshold: gamma; detected when similarity > gamma.
        precision: detected positives / detections (pooled over captions, or the worst caption), NaN if none.
        recall: detected positives / positives (pooled).
        detections: number of (frame, caption) detections.
    """

    threshold: float
    precision: float
    recall: float
    detections: int


def precision_recall(detected: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-caption precision and recall of detections against ground truth.

    Args:
        detected: bool [N, S].
        labels: bool [N, S], ground truth.

    Returns:
        (precision float64 [S], recall float64 [S]): TP / (TP + FP), NaN where nothing was detected; TP / (TP + FN),
        NaN where the caption has no positive.

    Raises:
        VlmrmError: if the shapes differ or are not 2-D.
    """
    detected, labels = np.asarray(detected, bool), np.asarray(labels, bool)
    if detected.ndim != 2 or detected.shape != labels.shape:
        raise VlmrmError(f"detections {detected.shape} and labels {labels.shape} must both be [N, S]")
    tp = (detected & labels).sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / detected.sum(axis=0), tp / labels.sum(axis=0)


def _lowest_threshold(scores: np.ndarray, labels: np.ndarray, min_precision: float, floor: float = -1.0) -> float:
    """The lowest threshold t >= ``floor`` whose detections ``scores > t`` have precision >= ``min_precision`` (the
    highest recall meeting it): the highest undetected score (or ``floor``); just above the highest score (nothing
    detected) if no threshold meets it."""
    above = scores > floor
    s, y = scores[above], labels[above]
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    highest_below = float(scores[~above].max()) if (~above).any() else -1.0
    if not len(s):
        return float(floor)
    k = np.arange(1, len(s) + 1)
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # detections can only stop after a whole run of tied scores
    ok = last_of_tie & (np.cumsum(y) >= min_precision * k)
    if not ok.any():
        return float(s[0]) + 1e-6
    n = int(k[ok].max())  # the top n scores are detected
    return float(max(s[n] if n < len(s) else highest_below, floor))


def _meets(scores: np.ndarray, labels: np.ndarray, threshold: float, min_precision: float) -> bool:
    detected = scores > threshold
    return int((detected & labels).sum()) >= min_precision * int(detected.sum())


def calibrate_threshold(similarities: np.ndarray, labels: np.ndarray, min_precision: float = 0.95, *,
                        per_caption: bool = False) -> Calibration:
    """The threshold gamma with the highest recall whose precision reaches ``min_precision`` on labelled frames.

    Args:
        similarities: float [N, S], ``phi_I(o) . phi_T(g)`` of N held-out frames and S subgoal captions (views
            already combined, :func:`combine_views`, for a multi-camera rule).
        labels: bool [N, S], ground truth.
        min_precision: the precision target in (0, 1] (Di Palo et al. favour precision over recall).
        per_caption: False: one gamma for the pooled (frame, caption) pairs (micro precision). True: the lowest
            gamma at which every caption reaches the target on these frames (a caption with no detection meets
            it); ``Calibration.precision`` is then the worst caption's.

    Returns:
        :class:`Calibration` (threshold in [-1, 1], and its precision/recall on these frames).

    Raises:
        VlmrmError: shapes that differ, no positive at all, ``min_precision`` outside (0, 1].
    """
    scores, labels = np.asarray(similarities, np.float64), np.asarray(labels, bool)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise VlmrmError(f"similarities {scores.shape} and labels {labels.shape} must both be [N, S]")
    if not 0.0 < min_precision <= 1.0:
        raise VlmrmError(f"min_precision={min_precision!r} must be in (0, 1], e.g. 0.95")
    if not labels.any():
        raise VlmrmError("the calibration frames hold no positive of any caption; generate more (or more varied) "
                         "frames")
    if per_caption:  # raise gamma until no caption falls short (each round lifts it past a failing caption's cut)
        gamma = -1.0
        while True:
            failing = [s for s in range(scores.shape[1])
                       if not _meets(scores[:, s], labels[:, s], gamma, min_precision)]
            if not failing:
                break
            gamma = max(_lowest_threshold(scores[:, s], labels[:, s], min_precision, gamma) for s in failing)
    else:
        gamma = _lowest_threshold(scores.ravel(), labels.ravel(), min_precision)
    gamma = float(np.clip(gamma, -1.0, 1.0))
    detected = scores > gamma
    precision, _ = precision_recall(detected, labels)
    tp = int((detected & labels).sum())
    pooled = tp / detected.sum() if detected.any() else math.nan
    worst = float(np.nanmin(precision)) if np.isfinite(precision).any() else math.nan
    return Calibration(threshold=gamma, precision=float(worst if per_caption else pooled),
                       recall=float(tp / labels.sum()), detections=int(detected.sum()))


def calibrate_views(similarities: np.ndarray, labels: np.ndarray, min_precision: float = 0.95, *,
                    per_caption: bool = False) -> dict[str, Calibration]:
    """Calibrates gamma for single views and for both multi-view rules (:func:`calibrate_threshold` each).

    Args:
        similarities: float [N, V, S], N states seen by V cameras, S subgoal captions.
        labels: bool [N, S], the states' ground truth (the same for every view).
        min_precision, per_caption: as :func:`calibrate_threshold`.

    Returns:
        ``{"single": ..., "any": ..., "all": ...}``; "single" treats every view's frame as a frame of its own.
    """
    scores, labels = np.asarray(similarities), np.asarray(labels, bool)
    if scores.ndim != 3 or scores.shape[::2] != labels.shape:
        raise VlmrmError(f"similarities {scores.shape} and labels {labels.shape} must be [N, V, S] and [N, S]")
    views = scores.shape[1]
    out = {"single": calibrate_threshold(scores.reshape(-1, scores.shape[2]), np.repeat(labels, views, axis=0),
                                         min_precision, per_caption=per_caption)}
    for rule in COMBINE_RULES:
        out[rule] = calibrate_threshold(combine_views(scores, rule), labels, min_precision, per_caption=per_caption)
    return out


def detection_report(similarities: np.ndarray, labels: np.ndarray, thresholds: dict[str, float],
                     captions: Sequence[str], view_names: Sequence[str]) -> dict:
    """Precision and recall per caption of every view alone (at ``thresholds["single"]``) and of the combined
    rules (at ``thresholds["any"]``, ``thresholds["all"]``), plus the pooled (micro) figures.

    Args:
        similarities: float [N, V, S]; labels: bool [N, S]; captions: the S captions; view_names: the V views.

    Returns:
        ``{setting: {"threshold", "precision", "recall", "detections", "captions": {caption: {"positives",
        "detections", "precision", "recall"}}}}`` for every view name and for "any" / "all" (NaN where undefined).
    """
    scores, labels = np.asarray(similarities), np.asarray(labels, bool)
    settings = {name: (scores[:, v], thresholds["single"]) for v, name in enumerate(view_names)}
    settings.update({rule: (combine_views(scores, rule), thresholds[rule]) for rule in COMBINE_RULES
                     if rule in thresholds})
    report = {}
    for name, (score, threshold) in settings.items():
        detected = score > threshold
        precision, recall = precision_recall(detected, labels)
        tp = int((detected & labels).sum())
        report[name] = {"threshold": float(threshold), "detections": int(detected.sum()),
                        "precision": tp / detected.sum() if detected.any() else math.nan,
                        "recall": tp / labels.sum() if labels.any() else math.nan,
                        "captions": {c: {"positives": int(labels[:, s].sum()), "detections": int(detected[:, s].sum()),
                                         "precision": float(precision[s]), "recall": float(recall[s])}
                                     for s, c in enumerate(captions)}}
    return report


# --- the detector settings stored with a model ---


def _model_dir(model: str | Path) -> Path:
    model = str(model)
    return Path(resolve_model(model)) if model in OFFLINE_MODELS else Path(model).expanduser()


def write_detector_config(model_dir: str | Path, *, subgoals: Sequence[str], thresholds: dict[str, float],
                          combine: str | None, extra: dict | None = None) -> Path:
    """Writes ``detector.json`` into a model directory; returns its path.

    Args:
        model_dir: the model's directory (e.g. ``vlmrm_jax/models/weights/stacking-clip-tiny``).
        subgoals: the captions the thresholds were calibrated on.
        thresholds: ``{"single": gamma, "any": gamma, "all": gamma}`` (any subset; "single": one view per frame).
        combine: the recommended multi-view rule (a key of ``thresholds``), or None for single views.
        extra: JSON-serialisable provenance (calibration seed, frames, precision target, command).

    Raises:
        VlmrmError: a threshold outside [-1, 1], an unknown key, a recommended rule without a threshold.
    """
    for key, value in thresholds.items():
        if key not in ("single", *COMBINE_RULES):
            raise VlmrmError(f"threshold key {key!r} is not 'single', 'any' or 'all'")
        check_threshold(value)
    if (check_combine(combine) or "single") not in thresholds:
        raise VlmrmError(f"the recommended combine={combine!r} has no threshold; calibrate it too")
    path = Path(model_dir) / DETECTOR_FILE
    data = {"rule": "detected when unit-image-embedding . unit-text-embedding > threshold (Di Palo et al. 2023)",
            "subgoals": list(subgoals), "combine": combine,
            "thresholds": {k: float(v) for k, v in thresholds.items()}, **(extra or {})}
    path.write_text(json.dumps(data, indent=2))
    return path


def read_detector_config(model: str | Path) -> dict:
    """The parsed ``detector.json`` of a model (shipped name or directory): ``subgoals``, ``thresholds``,
    ``combine`` and provenance.

    Raises:
        ModelNotFoundError: a shipped name whose files are missing.
        VlmrmError: no ``detector.json``, or an invalid one.
    """
    path = _model_dir(model) / DETECTOR_FILE
    if not path.is_file():
        raise VlmrmError(f"model {str(model)!r} has no {DETECTOR_FILE} (no calibrated subgoal threshold); use a "
                         f"model calibrated by python -m experiments.detector_quality --write-config, e.g. "
                         f"stacking-clip-tiny, or pass a threshold to detect_subgoals yourself")
    try:
        data = json.loads(path.read_text())
        data["subgoals"] = [str(s) for s in data["subgoals"]]
        for value in data["thresholds"].values():
            check_threshold(value)
        check_combine(data["combine"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, VlmrmError) as e:
        raise VlmrmError(f"{path} is not a valid detector configuration ({e}); recalibrate with python -m "
                         f"experiments.detector_quality --write-config") from None
    return data


__all__ = ["COMBINE_RULES", "DETECTOR_FILE", "PAPER_THRESHOLD", "Calibration", "SubgoalDetector",
           "calibrate_threshold", "calibrate_views", "check_combine", "check_threshold", "combine_views",
           "detect_subgoals", "detection_report", "precision_recall", "read_detector_config", "subgoal_similarities",
           "write_detector_config"]
