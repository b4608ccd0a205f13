"""Calibrate and measure a CLIP as a subgoal detector (Di Palo et al. 2023) on held-out multi-camera frames.

    python -m experiments.detector_quality --model stacking-clip-tiny --calibration-data runs/vlm/stacking-heldout \
        --test-data runs/vlm/stacking-test --out docs/stacking_detector --write-config

The detector's rule is the paper's: subgoal caption g is detected in frame o when the unit embeddings agree,
phi_T(g) . phi_I(o) > gamma. gamma is calibrated on the --calibration-data frames (one seed) as the lowest
threshold at which every subgoal caption's precision reaches --min-precision (--pooled: the precision over all
captions together; the paper favours precision over recall), for three settings:
each camera's frame on its own ("single"), detected in either camera ("any") and in both ("all"). Precision and
recall per caption are then measured on --test-data (another seed), per camera and for both combinations, and the
paper's gamma 0.8 is measured too. The subgoals are the dataset's goal concepts (for stacking: the nine SUBGOALS
captions); frames are grouped into states by the dataset's "scene" and "camera" state columns (the stacking source
writes one frame per camera per state). Writes OUT.json and OUT.md; --write-config stores the thresholds and the
recommended rule (the one with the highest calibration recall) as detector.json in the model directory, where
vlmrm_jax.models.detection.SubgoalDetector.load reads them.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import numpy as np

from experiments import run_cli
from vlmrm_jax.errors import DatasetError, VlmrmError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.detector_quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="stacking-clip-tiny", help="CLIP: shipped model name or model directory")
    p.add_argument("--calibration-data", required=True, metavar="DIR", help="held-out frames to calibrate gamma on")
    p.add_argument("--test-data", required=True, metavar="DIR", help="held-out frames of another seed to measure on")
    p.add_argument("--min-precision", type=float, default=0.95, help="precision target of the calibration")
    p.add_argument("--pooled", action="store_true",
                   help="one gamma whose precision over all captions pooled reaches the target (default: the "
                        "lowest gamma at which every caption reaches it)")
    p.add_argument("--out", required=True, help="output path without suffix: writes OUT.json and OUT.md")
    p.add_argument("--write-config", action="store_true", help="write detector.json into the model directory")
    return p.parse_args(argv)


def group_views(dataset) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Frames grouped by state: (images uint8 [N, V, H, W, 3], concept labels bool [N, C], camera names).

    Raises:
        DatasetError: the dataset has no "scene"/"camera" state columns, or a state lacks a camera's frame.
    """
    names = list(dataset.manifest["state_names"])
    if "scene" not in names or "camera" not in names:
        raise DatasetError(f"dataset of {dataset.env!r} has no 'scene' and 'camera' state columns, so its frames "
                           f"cannot be grouped by state; use a multi-camera source such as stacking")
    scene = dataset.states[:, names.index("scene")].astype(np.int64)
    camera = dataset.states[:, names.index("camera")].astype(np.int64)
    views = int(camera.max()) + 1
    scenes, counts = np.unique(scene, return_counts=True)
    complete = scenes[counts == views]  # a frame budget cut in the middle of a state drops that state
    order = np.lexsort((camera, scene))
    keep = np.isin(scene[order], complete)
    idx = order[keep].reshape(len(complete), views)
    if not np.all(camera[idx] == np.arange(views)):
        raise DatasetError("frames of a state do not cover every camera once; regenerate the dataset")
    cameras = dataset.manifest["source_config"].get("cameras", [f"camera {v}" for v in range(views)])
    return dataset.images[idx], dataset.labels[idx[:, 0]], list(cameras)


def similarities_of(clip, images: np.ndarray, text) -> np.ndarray:
    """float32 [N, V, S]: unit image . unit text embeddings of uint8 frames [N, V, H, W, 3]."""
    from vlmrm_jax.models.evaluation import embed_frames

    flat = images.reshape((-1,) + images.shape[2:])
    return (embed_frames(clip, clip.params, flat) @ np.asarray(text).T).reshape(images.shape[:2] + (-1,))


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown(result: dict) -> str:
    """The per-caption precision / recall table (test seed) with the thresholds, in Markdown."""
    settings = [*result["cameras"], "any", "all"]
    test = result["test"]
    names = {**{c: f"camera {i} ({c})" for i, c in enumerate(result["cameras"])}, "any": "either camera (any)",
             "all": "both cameras (all)"}
    head = ["subgoal caption", "positives / states", *(f"{names[s]}: P / R" for s in settings)]
    lines = [f"Model `{result['model']}`; calibrated on seed {result['calibration']['seed']} "
             f"({result['calibration']['states']} states), measured on seed {result['test_seed']} "
             f"({result['test_states']} states x {len(result['cameras'])} cameras); precision target "
             f"{result['min_precision']} ({'every caption' if result['per_caption'] else 'pooled over captions'}). "
             f"Thresholds: " + ", ".join(f"{k} {v:.3f}" for k, v in result["thresholds"].items())
             + f"; recommended rule: {result['combine']}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for caption in result["subgoals"]:
        cells = [caption, f"{test[settings[0]]['captions'][caption]['positives']} / {result['test_states']}"]
        cells += [f"{_fmt(test[s]['captions'][caption]['precision'])} / {_fmt(test[s]['captions'][caption]['recall'])}"
                  for s in settings]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| **pooled** | | " + " | ".join(f"**{_fmt(test[s]['precision'])} / {_fmt(test[s]['recall'])}**"
                                                   for s in settings) + " |")
    paper = result["paper_threshold"]
    lines += ["", f"At the paper's gamma {paper['threshold']} (single camera frames, pooled): precision "
              f"{_fmt(paper['precision'])}, recall {_fmt(paper['recall'])} ({paper['detections']} detections)."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, log=print) -> dict:
    """Everything the CLI does; returns the results.

    Raises:
        VlmrmError: unloadable model, bad datasets, datasets with different vocabularies, a bad precision target.
    """
    from vlmrm_jax.datasets import load_dataset
    from vlmrm_jax.models import CLIP
    from vlmrm_jax.models.detection import (PAPER_THRESHOLD, calibrate_views, detection_report,
                                            write_detector_config)
    from vlmrm_jax.models.registry import OFFLINE_MODELS, resolve_model
    from vlmrm_jax.rl.checkpoint import save_json_atomic

    if not 0.0 < args.min_precision <= 1.0:
        raise VlmrmError(f"--min-precision={args.min_precision} must be in (0, 1], e.g. 0.95")
    calibration, test = load_dataset(args.calibration_data), load_dataset(args.test_data)
    if calibration.captions.captions != test.captions.captions:
        raise DatasetError("the calibration and test datasets have different caption vocabularies; regenerate one")
    if calibration.manifest["seed"] == test.manifest["seed"]:
        raise DatasetError(f"the calibration and test datasets share seed {test.manifest['seed']}; test on another")
    goals = calibration.captions.goal_prompts  # concept key -> subgoal caption
    columns = [calibration.captions.keys.index(k) for k in goals]
    subgoals = list(goals.values())
    clip = CLIP.load(args.model)
    text = clip.embed_text(subgoals)
    cal_images, cal_labels, cameras = group_views(calibration)
    test_images, test_labels, _ = group_views(test)
    log(f"embedding {cal_images.shape[0]} + {test_images.shape[0]} states x {len(cameras)} cameras")
    cal_scores = similarities_of(clip, cal_images, text)
    test_scores = similarities_of(clip, test_images, text)
    cal_labels, test_labels = cal_labels[:, columns], test_labels[:, columns]
    calibrated = calibrate_views(cal_scores, cal_labels, args.min_precision, per_caption=not args.pooled)
    thresholds = {k: c.threshold for k, c in calibrated.items()}
    combine = max(("any", "all"), key=lambda rule: calibrated[rule].recall)
    report = detection_report(test_scores, test_labels, thresholds, subgoals, cameras)
    single = test_scores.reshape(-1, len(subgoals)) > PAPER_THRESHOLD
    single_labels = np.repeat(test_labels, len(cameras), axis=0)
    tp = int((single & single_labels).sum())
    result = {
        "model": args.model, "subgoals": subgoals, "cameras": cameras, "min_precision": args.min_precision,
        "per_caption": not args.pooled, "thresholds": thresholds, "combine": combine,
        "calibration": {"seed": int(calibration.manifest["seed"]), "states": int(len(cal_labels)),
                        **{k: c._asdict() for k, c in calibrated.items()}},
        "test_seed": int(test.manifest["seed"]), "test_states": int(len(test_labels)), "test": report,
        "paper_threshold": {"threshold": PAPER_THRESHOLD, "detections": int(single.sum()),
                            "precision": tp / single.sum() if single.any() else math.nan,
                            "recall": tp / single_labels.sum()},
        "command": "python -m experiments.detector_quality " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_json_atomic(out.with_suffix(".json"), result)
    table = markdown(result)
    out.with_suffix(".md").write_text(table)
    log(table)
    if args.write_config:
        model_dir = resolve_model(args.model) if args.model in OFFLINE_MODELS else args.model
        path = write_detector_config(model_dir, subgoals=subgoals, thresholds=thresholds, combine=combine, extra={
            "min_precision": args.min_precision, "per_caption": not args.pooled,
            "calibration": result["calibration"], "command": result["command"],
            "test": {"seed": result["test_seed"], "states": result["test_states"],
                     **{k: {"precision": v["precision"], "recall": v["recall"]} for k, v in report.items()}}})
        log(f"wrote {path}")
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
