"""Generate an auto-labelled in-domain image-caption dataset for training CLIP on an environment (Di Palo et al.).

    python -m experiments.make_vlm_dataset --env humanoid --num-frames 6000 --seed 0 --out data/vlm/humanoid-train

States are sampled by the environment's caption source (vlmrm_jax.datasets), rendered with the env's own renderer
and camera (the frames PPO's reward model sees) and labelled with ground-truth concepts whose captions include the
paper's prompts. The directory is written atomically (manifest.json, captions.json, labels/states/modes .npy,
uint8 image shards); the per-concept positive counts are printed at the end. The same --seed gives the same frames.

With --policy-states FILE (humanoid; written by `python -m experiments.evaluate --run DIR --save-states FILE`) a
--policy-fraction of the frames are states a trained policy visited, labelled by the same ground-truth predicates:
retraining the reward model on them teaches it the poses its policy reaches (docs/humanoid_setup.md). Several files
(--policy-states A.npz B.npz, e.g. the states of successive retraining rounds) are pooled.

With --concepts KEY,... the frames are the same but labelled with only those concepts and the baseline
(vlmrm_jax.datasets.ConceptSubset): e.g. ``--env mountain_car --concepts at_flag``, the goal against every other
frame (docs/classic_validation.md).
"""

from __future__ import annotations

import argparse
import sys

from experiments import run_cli
from vlmrm_jax.errors import VlmrmError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.make_vlm_dataset", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True, help="environment: humanoid, cartpole, mountain_car or stacking")
    p.add_argument("--num-frames", type=int, default=6000, help="frames to generate (default 6000)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; held-out sets use other seeds")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--image-size", type=int, default=64, help="frame size in pixels (default 64)")
    p.add_argument("--no-shadows", action="store_true", help="humanoid, stacking: render without shadows")
    p.add_argument("--look", default=None, help="humanoid: scene look, brax or paper (default brax)")
    p.add_argument("--camera", default=None, help="humanoid: camera, tracking, paper or oblique (default tracking)")
    p.add_argument("--policy-states", metavar="FILE", nargs="+", default=None,
                   help="humanoid: .npz file(s) of a policy's states (experiments.evaluate --save-states) to draw "
                        "frames from; several files (e.g. of several retraining rounds) are pooled")
    p.add_argument("--policy-fraction", type=float, default=None,
                   help="humanoid: fraction of the frames drawn from --policy-states (default 0.25 with it)")
    p.add_argument("--concepts", metavar="KEY[,KEY...]", default=None,
                   type=lambda text: tuple(k.strip() for k in text.split(",") if k.strip()),
                   help="label only these concepts (and the baseline); the keys are in the env's captions "
                        "(default: all)")
    p.add_argument("--chunk-size", type=int, default=256, help="frames rendered per jitted call and per shard")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    return p.parse_args(argv)


def source_options(env: str, image_size: int, shadows: bool, look: str | None = None,
                   camera: str | None = None, policy_states: str | list[str] | None = None,
                   policy_fraction: float | None = None) -> dict:
    """Keyword options of ``make_source(env, ...)`` from the shared flags (``policy_fraction`` defaults to 0.25
    when ``policy_states`` is given).

    Raises:
        VlmrmError: ``look``, ``camera``, ``policy_states`` or ``policy_fraction`` given for an env other than the
            humanoid, or ``policy_fraction`` without ``policy_states``.
    """
    views = {k: v for k, v in (("look", look), ("camera", camera), ("policy_states", policy_states),
                               ("policy_fraction", policy_fraction)) if v is not None}
    if views and env != "humanoid":
        raise VlmrmError(f"--{'/--'.join(k.replace('_', '-') for k in views)} apply to the humanoid only, not "
                         f"--env {env}")
    if policy_fraction is not None and policy_states is None:
        raise VlmrmError(f"--policy-fraction {policy_fraction} needs --policy-states FILE")
    if policy_states is not None and policy_fraction is None:
        views["policy_fraction"] = 0.25
    return dict(image_size=image_size, **({"shadows": shadows} if env in ("humanoid", "stacking") else {}), **views)


def generate(env: str, num_frames: int, seed: int, out: str, *, image_size: int = 64, shadows: bool = True,
             chunk_size: int = 256, overwrite: bool = False, look: str | None = None, camera: str | None = None,
             policy_states: str | list[str] | None = None, policy_fraction: float | None = None,
             concepts: tuple[str, ...] | None = None, log=print):
    """Generates and writes one dataset with a progress bar; returns the loaded :class:`CaptionedFrames`.

    ``concepts``: keep only these concept keys (and the baseline) as labels (:class:`ConceptSubset`); None keeps all.

    Raises:
        VlmrmError: unknown env, bad sizes, a look, camera or policy states for a non-humanoid env or an unknown or
            unreadable one, an unknown concept key, a non-empty ``out`` without ``overwrite``.
    """
    from tqdm.auto import tqdm

    from vlmrm_jax.datasets import ConceptSubset, load_dataset, write_dataset
    from vlmrm_jax.envs import make_source

    if num_frames <= 0:
        raise VlmrmError(f"--num-frames={num_frames} must be a positive integer")
    source = make_source(env, **source_options(env, image_size, shadows, look, camera, policy_states,
                                               policy_fraction))
    if concepts is not None:
        source = ConceptSubset(source, concepts)
    log(f"generating {num_frames} {env} frames (seed {seed}, {image_size}x{image_size}) into {out}")
    with tqdm(total=num_frames, desc=f"{env} frames", unit="frame", dynamic_ncols=True) as bar:
        def batches():
            for batch in source.generate(num_frames, seed, chunk_size):
                bar.update(len(batch.images))
                yield batch

        path = write_dataset(out, source, batches(), seed=seed, overwrite=overwrite)
    dataset = load_dataset(path)
    counts = dataset.positive_counts()
    log("positives per concept: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    log("frames per sampling mode: " + ", ".join(f"{k} {n}" for k, n in dataset.manifest["mode_counts"].items()))
    return dataset


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: generate(args.env, args.num_frames, args.seed, args.out, image_size=args.image_size,
                                    shadows=not args.no_shadows, chunk_size=args.chunk_size,
                                    overwrite=args.overwrite, look=args.look, camera=args.camera,
                                    policy_states=args.policy_states, policy_fraction=args.policy_fraction,
                                    concepts=args.concepts))


if __name__ == "__main__":
    sys.exit(main())
