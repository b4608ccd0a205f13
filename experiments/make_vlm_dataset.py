"""Generate an auto-labelled in-domain image-caption dataset for training CLIP on an environment (Di Palo et al.).

    python -m experiments.make_vlm_dataset --env humanoid --num-frames 6000 --seed 0 --out data/vlm/humanoid-train

States are sampled by the environment's caption source (vlmrm_jax.datasets), rendered with the env's own renderer
and camera (the frames PPO's reward model sees) and labelled with ground-truth concepts whose captions include the
paper's prompts. The directory is written atomically (manifest.json, captions.json, labels/states/modes .npy,
uint8 image shards); the per-concept positive counts are printed at the end. The same --seed gives the same frames.
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
    p.add_argument("--chunk-size", type=int, default=256, help="frames rendered per jitted call and per shard")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    return p.parse_args(argv)


def source_options(env: str, image_size: int, shadows: bool, look: str | None = None,
                   camera: str | None = None) -> dict:
    """Keyword options of ``make_source(env, ...)`` from the shared flags.

    Raises:
        VlmrmError: ``look`` or ``camera`` given for an env other than the humanoid.
    """
    views = {k: v for k, v in (("look", look), ("camera", camera)) if v is not None}
    if views and env != "humanoid":
        raise VlmrmError(f"--look/--camera ({', '.join(views.values())}) apply to the humanoid only, not --env {env}")
    return dict(image_size=image_size, **({"shadows": shadows} if env in ("humanoid", "stacking") else {}), **views)


def generate(env: str, num_frames: int, seed: int, out: str, *, image_size: int = 64, shadows: bool = True,
             chunk_size: int = 256, overwrite: bool = False, look: str | None = None, camera: str | None = None,
             log=print):
    """Generates and writes one dataset with a progress bar; returns the loaded :class:`CaptionedFrames`.

    Raises:
        VlmrmError: unknown env, bad sizes, a look or camera for a non-humanoid env or an unknown one, a non-empty
            ``out`` without ``overwrite``.
    """
    from tqdm.auto import tqdm

    from vlmrm_jax.datasets import load_dataset, write_dataset
    from vlmrm_jax.envs import make_source

    if num_frames <= 0:
        raise VlmrmError(f"--num-frames={num_frames} must be a positive integer")
    source = make_source(env, **source_options(env, image_size, shadows, look, camera))
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
                                    overwrite=args.overwrite, look=args.look, camera=args.camera))


if __name__ == "__main__":
    sys.exit(main())
