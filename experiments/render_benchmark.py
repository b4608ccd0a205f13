"""Time the JAX ray caster on brax's humanoid: ms per image under jit + vmap, per size, effect setting and backend.

    python -m experiments.render_benchmark --sizes 64 224 --batch 16

Renders a batch of random humanoid poses with VLM-RM's camera, once to compile, then --repeats rounds in which every
(setting, backend) is called once in turn, so load from other processes hits all alike. Prints the compile time and
the median milliseconds per image for: primary rays only (segmentation), RGB without shadows or reflection, with
shadows, and with shadows and reflection (the default); for the default backend ("tiles") and the mjx.ray reference
("mjx_ray"), with the reference's time over ours. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

SETTINGS = {  # name: (method, shadows, reflections)
    "segmentation": ("segmentation", False, False),
    "rgb": ("render", False, False),
    "rgb+shadows": ("render", True, False),
    "rgb+shadows+reflection": ("render", True, True),
}
BACKENDS = ("tiles", "mjx_ray")


def benchmark(sizes: list[int], batch: int, repeats: int, backends: tuple[str, ...] = BACKENDS) -> list[str]:
    """Returns the printed lines: per (size, setting), compile seconds and median ms/image per backend."""
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
    lines = []

    def say(line):
        lines.append(line)
        print(line, flush=True)

    say(f"device: {jax.devices()[0].device_kind}, batch {batch}, load average {os.getloadavg()[0]:.1f}")
    for size in sizes:
        fns, compile_s = {}, {}
        for name, (method, shadows, reflections) in SETTINGS.items():
            for backend in backends:
                renderer = Renderer(mj_model, HUMANOID_CAMERA, RenderConfig(size, size, shadows=shadows,
                                                                            reflections=reflections, backend=backend))
                fn = jax.jit(jax.vmap(getattr(renderer, method), in_axes=(None, 0)))
                start = time.perf_counter()
                jax.block_until_ready(fn(sys_, data))
                fns[name, backend], compile_s[name, backend] = fn, time.perf_counter() - start
        times = {key: [] for key in fns}
        for _ in range(repeats):
            for key, fn in fns.items():
                start = time.perf_counter()
                jax.block_until_ready(fn(sys_, data))
                times[key].append(time.perf_counter() - start)
        for name in SETTINGS:
            ms = {b: statistics.median(times[name, b]) / batch * 1e3 for b in backends}
            line = f"{size}x{size} {name:24s}" + "".join(
                f"  {b} {ms[b]:8.2f} ms/image (compile {compile_s[name, b]:4.1f} s)" for b in backends)
            if len(backends) == 2:
                line += f"  {backends[1]}/{backends[0]} = {ms[backends[1]] / ms[backends[0]]:.1f}x"
            say(line)
    say(f"load average after: {os.getloadavg()[0]:.1f}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.render_benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224], help="square image sizes (pixels)")
    p.add_argument("--batch", type=int, default=16, help="states rendered per call (vmapped)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds after the compiling call")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS,
                   help="ray-casting backends to time (default: both, the reference last)")
    args = p.parse_args(argv)
    if min(args.sizes) <= 0 or args.batch <= 0 or args.repeats <= 0:
        print("error: --sizes, --batch and --repeats must be positive integers", file=sys.stderr)
        return 2
    benchmark(args.sizes, args.batch, args.repeats, tuple(args.backends))
    return 0


if __name__ == "__main__":
    sys.exit(main())
