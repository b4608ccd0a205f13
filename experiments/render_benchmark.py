"""Time the JAX ray caster on brax's humanoid: ms per image under jit + vmap, per size, effect setting and backend.

    python -m experiments.render_benchmark --sizes 64 224 --batch 16

Renders a batch of random humanoid poses with VLM-RM's camera, once to compile, then --repeats rounds in which every
(setting, backend) is called once in turn, so load from other processes hits all alike. Prints the compile time and
the median milliseconds per image for: primary rays only (segmentation), RGB without shadows or reflection, with
shadows, and with shadows and reflection (the default); for the default backend ("tiles") and the mjx.ray reference
("mjx_ray"), with the reference's time over ours. The load average is printed before and after.

    python -m experiments.render_benchmark --sizes 64 --profile 20

``--profile K`` instead traces the default renderer (tiles backend, shadows and reflection) with ``jax.profiler``
over --repeats calls and prints its K most expensive XLA ops (fusions, loops; time summed over the CPU's threads) as
ms per image and share of all op time (a loop's line includes its body's ops, which are listed too), with the HLO
op name of each; the trace stays in a temporary directory, printed, for TensorBoard/Perfetto.
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


def humanoid_batch(batch: int):
    """Brax's humanoid in ``batch`` random-joint poses (seeds 0 .. batch - 1): ``(mujoco.MjModel, mjx.Model, mjx.Data
    with a leading [batch] axis)``, the scene both render benchmarks time."""
    import brax
    import jax
    import jax.numpy as jnp
    import mujoco
    from brax.io import mjcf
    from mujoco import mjx

    from experiments.render_compare import humanoid_pose

    mj_model = mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(brax.__file__), "envs/assets/humanoid.xml"))
    datas = [mjx.put_data(mj_model, humanoid_pose(mj_model, "random joints", seed)) for seed in range(batch)]
    return mj_model, mjcf.load_model(mj_model), jax.tree.map(lambda *x: jnp.stack(x), *datas)


def benchmark(sizes: list[int], batch: int, repeats: int, backends: tuple[str, ...] = BACKENDS) -> list[str]:
    """Returns the printed lines: per (size, setting), compile seconds and median ms/image per backend."""
    import jax

    from vlmrm_jax.envs.humanoid.camera import HUMANOID_CAMERA
    from vlmrm_jax.render import RenderConfig, Renderer

    mj_model, sys_, data = humanoid_batch(batch)
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


def profile(size: int, batch: int, repeats: int, top: int) -> list[str]:
    """Returns the printed lines: the ``top`` most expensive XLA ops of one default-renderer call (see --profile)."""
    import collections
    import glob
    import tempfile

    import jax

    from vlmrm_jax.envs.humanoid.camera import HUMANOID_CAMERA
    from vlmrm_jax.render import RenderConfig, Renderer

    mj_model, sys_, data = humanoid_batch(batch)
    renderer = Renderer(mj_model, HUMANOID_CAMERA, RenderConfig(size, size))
    fn = jax.jit(jax.vmap(lambda d: renderer.render(sys_, d)))  # the model closed over, as in the training env
    jax.block_until_ready(fn(data))
    directory = tempfile.mkdtemp(prefix="render_profile_")
    with jax.profiler.trace(directory):
        for _ in range(repeats):
            jax.block_until_ready(fn(data))
    hlo = {}
    for line in fn.lower(data).compile().as_text().splitlines():
        name, _, rest = line.strip().removeprefix("ROOT ").partition(" = ")
        if name.startswith("%") and 'op_name="' in rest:
            hlo[name[1:]] = rest.split('op_name="', 1)[1].split('"', 1)[0]
    ops = collections.Counter()
    trace = jax.profiler.ProfileData.from_file(glob.glob(f"{directory}/**/*.xplane.pb", recursive=True)[0])
    for plane in trace.planes:
        for line in plane.lines:
            if line.name.startswith("tf_XLA"):  # the executable's threads
                for event in line.events:
                    if not event.name.startswith("ThunkExecutor"):
                        ops[event.name] += event.duration_ns
    total = sum(ns for name, ns in ops.items() if not name.startswith("while"))  # loops span their bodies' ops
    per_image = 1e-6 / repeats / batch
    lines = [f"{size}x{size} default renderer, batch {batch}, {repeats} calls, load average "
             f"{os.getloadavg()[0]:.1f}: XLA op time {total * per_image:.3f} ms/image (summed over threads, "
             f"loops counted by their bodies' ops; a loop's line includes them); trace in {directory}"]
    for name, ns in ops.most_common(top):
        lines.append(f"  {ns * per_image:7.4f} ms/image {100 * ns / total:5.1f}%  {name:32s} {hlo.get(name, '')[:70]}")
    print("\n".join(lines), flush=True)
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.render_benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224], help="square image sizes (pixels)")
    p.add_argument("--batch", type=int, default=16, help="states rendered per call (vmapped)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds after the compiling call")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS,
                   help="ray-casting backends to time (default: both, the reference last)")
    p.add_argument("--profile", type=int, default=0, metavar="K",
                   help="trace the default renderer at each size instead and print its K most expensive XLA ops")
    args = p.parse_args(argv)
    if min(args.sizes) <= 0 or args.batch <= 0 or args.repeats <= 0 or args.profile < 0:
        print("error: --sizes, --batch and --repeats must be positive integers, --profile >= 0", file=sys.stderr)
        return 2
    if args.profile:
        for size in args.sizes:
            profile(size, args.batch, args.repeats, args.profile)
        return 0
    benchmark(args.sizes, args.batch, args.repeats, tuple(args.backends))
    return 0


if __name__ == "__main__":
    sys.exit(main())
