"""Time the JAX ray caster on brax's humanoid: ms per image under jit + vmap, per size and effect setting.

    python -m experiments.render_benchmark --sizes 64 224 --batch 16

Renders a batch of random humanoid poses with VLM-RM's camera, once to compile, then --repeats times; prints the
compile time and the steady-state milliseconds per image for: primary rays only (segmentation), RGB without
shadows or reflection, with shadows, and with shadows and reflection (the default).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

SETTINGS = {  # name: (method, shadows, reflections)
    "segmentation": ("segmentation", False, False),
    "rgb": ("render", False, False),
    "rgb+shadows": ("render", True, False),
    "rgb+shadows+reflection": ("render", True, True),
}


def benchmark(sizes: list[int], batch: int, repeats: int) -> list[str]:
    """Returns one line per (size, setting): compile seconds and ms/image."""
    import brax
    import jax
    import jax.numpy as jnp
    import mujoco
    from brax.io import mjcf
    from mujoco import mjx

    from experiments.render_compare import humanoid_pose
    from vlmrm_jax.envs.humanoid.camera import HUMANOID_CAMERA
    from vlmrm_jax.render import RenderConfig, Renderer

    mj_model = mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(brax.__file__), "envs/assets/humanoid.xml"))
    sys_ = mjcf.load_model(mj_model)
    datas = [mjx.put_data(mj_model, humanoid_pose(mj_model, "random joints", seed)) for seed in range(batch)]
    data = jax.tree.map(lambda *x: jnp.stack(x), *datas)
    lines = [f"device: {jax.devices()[0].device_kind}, batch {batch}"]
    print(lines[0], flush=True)
    for size in sizes:
        for name, (method, shadows, reflections) in SETTINGS.items():
            renderer = Renderer(mj_model, HUMANOID_CAMERA,
                                RenderConfig(size, size, shadows=shadows, reflections=reflections))
            fn = jax.jit(jax.vmap(getattr(renderer, method), in_axes=(None, 0)))
            start = time.perf_counter()
            jax.block_until_ready(fn(sys_, data))
            compile_s = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(repeats):
                jax.block_until_ready(fn(sys_, data))
            ms = (time.perf_counter() - start) / repeats / batch * 1e3
            lines.append(f"{size}x{size} {name:24s} compile {compile_s:5.1f} s   {ms:7.2f} ms/image")
            print(lines[-1], flush=True)
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.render_benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224], help="square image sizes (pixels)")
    p.add_argument("--batch", type=int, default=16, help="states rendered per call (vmapped)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls after the compiling one")
    args = p.parse_args(argv)
    if min(args.sizes) <= 0 or args.batch <= 0 or args.repeats <= 0:
        print("error: --sizes, --batch and --repeats must be positive integers", file=sys.stderr)
        return 2
    benchmark(args.sizes, args.batch, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
