"""Measure a CLIP as a VLM-RM reward model on an environment's held-out auto-labelled frames.

    python -m experiments.vlm_quality --env humanoid --model humanoid-clip-tiny --data runs/vlm/humanoid-heldout \
        --landscape docs/humanoid_reward_landscape.png --benchmark

Prints, per paper prompt, the AUROC of the VLM-RM reward (Rocamonde et al. 2023, Definition 1) for separating frames
where the ground-truth concept holds from frames where it does not, at each --alpha, and the text-to-image
R-precision (fraction of positives among the top-R frames by similarity, R = number of positives; chance = the
positive rate). Without --data, held-out frames are generated with --seed. --landscape (humanoid) plots the reward
along pose sweeps (standing -> kneeling against pelvis height, arms down -> raised against hand height, sitting ->
lotus against knee separation) and writes the values to a CSV beside the PNG. --benchmark times the image embedding
(ms/image at batch 16) and the renderer on this machine. For the humanoid it also prints, per paper prompt, the
lowest AUROCs against one other pose alone (e.g. kneeling against squatting: frames a policy can drift into), with
ground truth from the predicates of the frames' stored states; --look/--camera render generated frames and the
landscape as a model trained on them expects.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments import run_cli
from vlmrm_jax.errors import VlmrmError

#: (name, start pose, end pose, goal concept, x-axis label) of the humanoid reward-landscape sweeps.
SWEEPS = (("kneeling", "standing", "kneeling", "pelvis height (m)"),
          ("arms_raised", "standing", "arms_raised", "hand height above the head (m)"),
          ("lotus", "sitting", "lotus", "knee separation (m)"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.vlm_quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True, help="environment: humanoid, cartpole or mountain_car")
    p.add_argument("--model", required=True, help="CLIP: shipped model name, directory or hub id")
    p.add_argument("--data", help="held-out dataset directory (default: generate --num-frames with --seed)")
    p.add_argument("--num-frames", type=int, default=1500)
    p.add_argument("--seed", type=int, default=1, help="seed of generated held-out frames")
    p.add_argument("--alpha", type=float, action="append", dest="alphas", help="repeatable (default: 0 and 0.5)")
    p.add_argument("--baseline-prompt", action="append", dest="baseline_prompts", metavar="TEXT",
                   help="the reward's baseline prompt; repeatable, their embeddings are averaged (default: the "
                        "paper's for the env, e.g. 'a humanoid robot')")
    p.add_argument("--out-json", help="write the results as JSON here")
    p.add_argument("--landscape", help="humanoid: write the reward-landscape PNG here (and a CSV beside it)")
    p.add_argument("--sweep-points", type=int, default=25)
    p.add_argument("--benchmark", action="store_true", help="time image embedding and rendering (batch 16)")
    p.add_argument("--look", default=None, help="humanoid: scene look of generated frames and the landscape, brax or "
                                                "paper (default brax; a --data set keeps its own)")
    p.add_argument("--camera", default=None, help="humanoid: camera of generated frames and the landscape, tracking, "
                                                  "paper or oblique (default tracking)")
    return p.parse_args(argv)


def markdown_table(result: dict, alphas) -> str:
    """The per-prompt table of :func:`vlmrm_jax.models.evaluation.evaluate_prompts` in Markdown."""
    head = ["prompt", "positives / frames", *(f"AUROC alpha={a:g}" for a in alphas), "R-precision (chance)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["prompts"].values():
        cells = [row["prompt"], f"{row['positives']} / {result['num_frames']}",
                 *(f"{row[f'auroc_alpha_{a:g}']:.3f}" for a in alphas),
                 f"{row['r_precision']:.3f} ({row['positive_rate']:.3f})"]
        lines.append("| " + " | ".join(cells) + " |")
    means = ["**mean**", "", *(f"**{result[f'mean_auroc_alpha_{a:g}']:.3f}**" for a in alphas),
             f"**{result['mean_r_precision']:.3f}**"]
    lines.append("| " + " | ".join(means) + " |")
    return "\n".join(lines)


def benchmark(clip, env: str, repeats: int = 20) -> dict:
    """Median ms/image of ``embed_images`` and of the env's renderer (both jitted, batch 16, after warm-up)."""
    import jax
    import jax.numpy as jnp

    from vlmrm_jax.envs import make_env

    def median_ms(fn, *args):
        jax.block_until_ready(fn(*args))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - start)
        return 1000.0 * float(np.median(times)) / 16

    size = clip.image_size
    images = jnp.asarray(np.random.default_rng(0).random((16, size, size, 3)), jnp.float32)
    embed = jax.jit(lambda params, x: clip.embed_images(params, x))
    result = {"embed_ms_per_image": median_ms(embed, clip.params, images), "batch": 16, "image_size": size,
              "device": str(jax.devices()[0])}
    environment = make_env(env)
    states = jax.vmap(environment.reset)(jax.random.split(jax.random.PRNGKey(0), 16))
    render = jax.jit(jax.vmap(environment.make_render_fn(size, size)))
    result["render_ms_per_image"] = median_ms(render, states)
    return result


def pose_confusions(clip, data, alpha: float, baseline_prompts=None) -> dict[str, dict[str, float]]:
    """Per paper goal prompt, :func:`~vlmrm_jax.models.evaluation.confusion_aurocs` of its VLM-RM reward (baseline:
    the mean of ``baseline_prompts``' embeddings, default the dataset's caption baseline) against every
    other pose predicate (the negatives sitting, squatting, lying_down and fallen included), on humanoid frames whose
    ground truth is recomputed from their stored settled ``qpos``; {task: {other task: AUROC}}. Frames of the
    ``policy`` sampling mode (a trained policy's states, ``make_vlm_dataset --policy-states``), where there are any,
    are one more negative, ``policy_frames``: the frames a policy reached, as the goal's ground truth rates them."""
    from vlmrm_jax.envs.humanoid import Humanoid
    from vlmrm_jax.envs.humanoid.predicates import predicates_of_qpos
    from vlmrm_jax.models.evaluation import confusion_aurocs, embed_frames
    from vlmrm_jax.rewards import GoalBaselineReward

    holds = predicates_of_qpos(Humanoid().sys.mj_model, data.states)
    modes = data.manifest["modes"]
    policy = np.asarray(data.modes) == modes.index("policy") if "policy" in modes else np.zeros(len(data.modes), bool)
    frames = embed_frames(clip, clip.params, data.images)
    baseline = clip.embed_text(list(baseline_prompts or [data.captions.baseline_prompt]))
    result = {}
    for task, prompt in data.captions.goal_prompts.items():
        reward = np.asarray(GoalBaselineReward.from_embeddings(clip.embed_text([prompt]), baseline, alpha)(frames))
        others = {k: v for k, v in holds.items() if k != task}
        if policy.any():
            others["policy_frames"] = policy
        result[task] = confusion_aurocs(reward, holds[task], others)
    return result


def humanoid_landscape(clip, alphas, png: Path, points: int, look: str | None = None, camera: str | None = None,
                       log=print, baseline_prompts=None) -> list[dict]:
    """Renders the :data:`SWEEPS` (with the humanoid's ``look`` and ``camera``, default brax and tracking), scores
    them (baseline: ``baseline_prompts``, default the paper's) and writes ``png`` and ``png.with_suffix('.csv')``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mujoco

    from vlmrm_jax.envs.humanoid.captions import HUMANOID_CAPTIONS, HumanoidSource
    from vlmrm_jax.envs.humanoid.reference_poses import REFERENCE_POSES
    from vlmrm_jax.models.evaluation import embed_frames
    from vlmrm_jax.rewards import GoalBaselineReward

    views = {k: v for k, v in (("look", look), ("camera", camera)) if v is not None}
    source = HumanoidSource(image_size=clip.image_size, settle_steps=0, **views)
    model = source._mj_model
    baseline = clip.embed_text(list(baseline_prompts or [HUMANOID_CAPTIONS.baseline_prompt]))
    rows, fig = [], plt.figure(figsize=(4.2 * len(SWEEPS), 3.6))
    for i, (concept, start, end, xlabel) in enumerate(SWEEPS):
        qpos = source.interpolate_poses(REFERENCE_POSES[start], REFERENCE_POSES[end], points)
        images, labels, _ = (np.asarray(x) for x in source.frames_fn()(qpos, np.zeros((points, model.nv))))
        holds = labels[:, HUMANOID_CAPTIONS.keys.index(concept)]
        prompt = HUMANOID_CAPTIONS.concept(concept).prompt
        goal = clip.embed_text([prompt])
        frames = embed_frames(clip, clip.params, images)
        xs = []
        for q in qpos:
            data = mujoco.MjData(model)
            data.qpos[:] = q
            mujoco.mj_kinematics(model, data)
            head = data.geom("head").xpos[2]
            hands = np.mean([data.geom("right_hand").xpos[2], data.geom("left_hand").xpos[2]])
            knees = np.linalg.norm(data.body("right_shin").xpos - data.body("left_shin").xpos)
            xs.append({"kneeling": data.body("pelvis").xpos[2], "arms_raised": hands - head,
                       "lotus": knees}[concept])
        ax = fig.add_subplot(1, len(SWEEPS), i + 1)
        for alpha in alphas:
            reward = np.asarray(GoalBaselineReward.from_embeddings(goal, baseline, alpha)(frames))
            scaled = (reward - reward.min()) / max(np.ptp(reward), 1e-12)
            ax.plot(xs, scaled, marker=".", label=f"alpha={alpha:g}")
            rows += [{"sweep": f"{start}->{end}", "prompt": prompt, "t": float(t), "x": float(x),
                      "x_name": xlabel, "alpha": alpha, "reward": float(r), "predicate_holds": bool(h)}
                     for t, x, r, h in zip(np.linspace(0, 1, points), xs, reward, holds)]
        for x, h in zip(xs, holds):
            if h:
                ax.axvspan(x - 0.5 * np.ptp(xs) / points, x + 0.5 * np.ptp(xs) / points, color="green", alpha=0.12,
                           lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("reward (min-max scaled over the sweep)")
        ax.set_title(f"{start} -> {end}\n{prompt!r}", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"VLM-RM reward of {clip.name} along pose sweeps (green: the {'/'.join(s[0] for s in SWEEPS)} "
                 f"predicate holds)", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    csv = png.with_suffix(".csv")
    keys = list(rows[0])
    csv.write_text(",".join(keys) + "\n" + "".join(
        ",".join(json.dumps(r[k]) if isinstance(r[k], str) else str(r[k]) for k in keys) + "\n" for r in rows))
    log(f"wrote {png} and {csv}")
    return rows


def run(args: argparse.Namespace, log=print) -> dict:
    """Everything the CLI does; returns the results.

    Raises:
        VlmrmError: unknown env or model, bad dataset, a dataset of another env, an empty baseline prompt.
    """
    from experiments.make_vlm_dataset import generate
    from vlmrm_jax.datasets import load_dataset
    from vlmrm_jax.envs import SOURCES
    from vlmrm_jax.errors import DatasetError
    from vlmrm_jax.models import CLIP
    from vlmrm_jax.models.evaluation import evaluate_prompts
    from vlmrm_jax.models.vocabulary import warn_unknown_prompts
    from vlmrm_jax.rewards import check_prompts

    if args.env not in SOURCES:
        raise VlmrmError(f"unknown environment {args.env!r}; choose one of {', '.join(sorted(SOURCES))}")
    if args.baseline_prompts is not None:  # checked before the model and frames are loaded
        check_prompts(args.baseline_prompts, "baseline prompt")
    alphas = args.alphas or [0.0, 0.5]
    clip = CLIP.load(args.model)
    if args.data:
        data = load_dataset(args.data)
        if data.env != args.env:
            raise DatasetError(f"dataset {args.data} holds {data.env!r} frames, not {args.env!r}")
    else:
        tmp = tempfile.mkdtemp(prefix="vlm_quality_")
        data = generate(args.env, args.num_frames, args.seed, str(Path(tmp) / "data"), image_size=clip.image_size,
                        look=args.look, camera=args.camera, log=log)
    baseline_prompts = args.baseline_prompts or [data.captions.baseline_prompt]
    warn_unknown_prompts(args.model, [*data.captions.goal_prompts.values(), *baseline_prompts], env=args.env, log=log)
    result = evaluate_prompts(clip, clip.params, data.images, data.labels, data.captions, alphas=alphas,
                              baseline_prompts=baseline_prompts)
    result.update(model=args.model, env=args.env, seed=int(data.manifest["seed"]))
    log(f"{args.model} on {len(data)} held-out {args.env} frames (seed {data.manifest['seed']}), baseline "
        f"{' / '.join(map(repr, baseline_prompts))}:")
    log(markdown_table(result, alphas))
    if args.env == "humanoid":
        result["confusions"] = pose_confusions(clip, data, alphas[0], baseline_prompts)
        log(f"lowest AUROC (alpha {alphas[0]:g}) of each goal prompt against one other pose alone (ground truth: the "
            f"predicates of the stored states):")
        for task, row in result["confusions"].items():
            worst = sorted((v, k) for k, v in row.items() if not np.isnan(v))[:3]
            log(f"  {task}: " + ", ".join(f"vs {k} {v:.3f}" for v, k in worst))
    if args.benchmark:
        result["speed"] = benchmark(clip, args.env)
        log(f"speed on {result['speed']['device']}: embed_images {result['speed']['embed_ms_per_image']:.2f} "
            f"ms/image, render {result['speed']['render_ms_per_image']:.2f} ms/image "
            f"({clip.image_size} px, batch 16)")
    if args.landscape:
        if args.env != "humanoid":
            raise VlmrmError("--landscape draws humanoid pose sweeps; for CartPole and MountainCar use the classic "
                             "reward landscapes (vlmrm_jax.eval.landscape)")
        humanoid_landscape(clip, alphas, Path(args.landscape), args.sweep_points, look=args.look,
                           camera=args.camera, log=log, baseline_prompts=baseline_prompts)
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(result, indent=2))
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
