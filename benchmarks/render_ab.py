"""The JAX renderer of an earlier commit against the working tree's, in one process, round by round.

    python -m benchmarks.render_ab --baseline d9ade82 --sizes 64 --batch 16

Copies ``vlmrm_jax/render`` as it was at ``--baseline`` (``git archive``) into a temporary package, renders the same
batch of random humanoid poses (brax's humanoid, VLM-RM's tracking camera, tiles backend, jit + vmap) with both, checks
how far their pixels are apart, then alternates the two in every timed round so that load from other processes hits
both alike. Prints per setting the median and the minimum milliseconds per image of each and their ratio (baseline /
current: > 1 means the current code is faster), with the load average before and after. ``--clock process`` times
CPU seconds of this process (all threads) instead of wall-clock seconds, steadier on a shared machine.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

#: name: (method, shadows, reflections), as in experiments.render_benchmark.
SETTINGS = {
    "segmentation": ("segmentation", False, False),
    "rgb": ("render", False, False),
    "rgb+shadows": ("render", True, False),
    "rgb+shadows+reflection": ("render", True, True),
}


def baseline_package(commit: str, directory: str, name: str = "baseline_render") -> str:
    """Extracts ``vlmrm_jax/render`` at ``commit`` into ``directory/name`` with its own imports renamed.

    The cameras stay the current package's (the renderer checks the camera's class).

    Raises:
        subprocess.CalledProcessError: if git cannot find the commit.
    """
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], check=True, capture_output=True,
                          text=True).stdout.strip()
    blob = subprocess.run(["git", "archive", commit, "vlmrm_jax/render"], cwd=root, check=True,
                          capture_output=True).stdout
    target = os.path.join(directory, name)
    os.makedirs(target)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".py"):
                text = tar.extractfile(member).read().decode()
                text = text.replace("vlmrm_jax.render", name).replace(f"from {name}.camera import",
                                                                      "from vlmrm_jax.render.camera import")
                with open(os.path.join(target, os.path.basename(member.name)), "w") as f:
                    f.write(text)
    return name


def compare(commit: str, sizes: list[int], batch: int, repeats: int, settings: list[str], clock: str) -> list[str]:
    """Returns the printed lines (see the module docstring)."""
    import jax
    import numpy as np

    import vlmrm_jax.render as current
    from experiments.render_benchmark import humanoid_batch
    from vlmrm_jax.envs.humanoid.camera import HUMANOID_CAMERA

    tmp = tempfile.mkdtemp(prefix="render_ab_")
    sys.path.insert(0, tmp)
    baseline = __import__(baseline_package(commit, tmp))
    now = time.process_time if clock == "process" else time.perf_counter
    mj_model, sys_, data = humanoid_batch(batch)
    lines = []

    def say(line):
        lines.append(line)
        print(line, flush=True)

    say(f"baseline {commit} vs working tree; batch {batch}, {clock} clock, load average {os.getloadavg()[0]:.1f}")
    for size in sizes:
        fns = {}
        for name in settings:
            method, shadows, reflections = SETTINGS[name]
            outs = {}
            for tag, package in (("baseline", baseline), ("current", current)):
                renderer = package.Renderer(mj_model, HUMANOID_CAMERA, package.RenderConfig(
                    size, size, shadows=shadows, reflections=reflections))
                fn = jax.jit(jax.vmap(getattr(renderer, method), in_axes=(None, 0)))
                outs[tag] = np.asarray(fn(sys_, data))
                fns[name, tag] = fn
            a, b = outs["baseline"], outs["current"]
            apart = (f"{np.mean(a != b):.2%} of pixels' geom ids differ" if method == "segmentation"
                     else f"max |difference| {np.abs(a.astype(np.float64) - b).max():.1e}")
            say(f"{size}x{size} {name}: {apart}")
        times = {key: [] for key in fns}
        for _ in range(repeats):
            for key, fn in fns.items():
                start = now()
                jax.block_until_ready(fn(sys_, data))
                times[key].append(now() - start)
        for name in settings:
            med = {t: statistics.median(times[name, t]) / batch * 1e3 for t in ("baseline", "current")}
            low = {t: min(times[name, t]) / batch * 1e3 for t in ("baseline", "current")}
            say(f"{size}x{size} {name:24s} median {med['baseline']:7.3f} -> {med['current']:7.3f} ms/image "
                f"({med['baseline'] / med['current']:.2f}x), min {low['baseline']:7.3f} -> {low['current']:7.3f} "
                f"({low['baseline'] / low['current']:.2f}x)")
    say(f"load average after: {os.getloadavg()[0]:.1f}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.render_ab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, help="git commit (or branch/tag) whose vlmrm_jax/render to time")
    p.add_argument("--sizes", type=int, nargs="+", default=[64], help="square image sizes (pixels)")
    p.add_argument("--batch", type=int, default=16, help="states rendered per call (vmapped)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds after the compiling call")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--clock", choices=("wall", "process"), default="wall",
                   help="wall-clock seconds, or CPU seconds of this process (steadier under load)")
    args = p.parse_args(argv)
    if min(args.sizes) <= 0 or args.batch <= 0 or args.repeats <= 0:
        print("error: --sizes, --batch and --repeats must be positive integers", file=sys.stderr)
        return 2
    compare(args.baseline, args.sizes, args.batch, args.repeats, args.settings, args.clock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
