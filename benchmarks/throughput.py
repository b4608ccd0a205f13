"""Throughput of the fused JAX pipeline, stage by stage, against the authors' design on the same machine.

    python -m benchmarks.throughput                                   # CPU-sized defaults, tiny CLIP
    python -m benchmarks.throughput --model vit-b-32 --image-sizes 224 --num-envs 16
    python -m benchmarks.throughput --model vit-b-32 --image-sizes 224 --num-envs 32,128 --dtype bfloat16  # GPU

For every env, ``--num-envs`` value and ``--image-sizes`` value it times, interleaved round by round in the same
process, our four stages one by one (physics; rendering; CLIP preprocessing and embedding; reward), our fused
end-to-end step (the training env, one jitted program), and the reference pipeline's four stages (MuJoCo CPU
physics, ``mujoco.Renderer``, PyTorch CLIP, reward; see :mod:`benchmarks.reference`), then whole PPO iterations at
``--ppo-image-size``. Compile time is reported apart from the steady state (median of ``--repeats`` calls of
``--steps`` env steps each). Then a roofline line: encoder images/s against the device's FLOP limit.

Prints a table and writes ``results.csv`` and ``results.json`` (rows, roofline, targets, machine) into ``--out``.
``ms/batch`` is the wall-clock time of one env step of all ``num_envs`` environments; ``speedup`` is the reference's
time over ours (ours' env-steps/s over the reference's); the reference's end-to-end is the sum of its stages.
PyTorch is needed only for the reference: ``pip install -e ".[bench]"``, or pass ``--no-reference``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

from experiments import comma_list, one_of
from vlmrm_jax.errors import VlmrmError

#: Columns of ``results.csv`` (and keys of the rows in ``results.json``).
FIELDS = ("env", "model", "dtype", "num_envs", "image_size", "stage", "steps_per_call", "ours_ms_per_batch",
          "ours_steps_per_s", "ours_compile_s", "ours_first_call_s", "ref_ms_per_batch", "ref_steps_per_s", "speedup",
          "ours_sum_of_stages_ms", "ref_torch_threads", "peak_rss_mb", "device_peak_mb")
#: Stage labels of the rows, in order: the stages alone, the fused end-to-end step, whole PPO iterations.
STAGE_LABELS = ("physics", "render", "clip", "reward", "end-to-end", "ppo")


def positive_int(text: str) -> int:
    """``"16"`` -> 16. Raises ValueError unless ``text`` is a positive integer."""
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="humanoid", help="env(s), comma-separated: humanoid, cartpole (default humanoid)")
    p.add_argument("--num-envs", default="16", help="batch sizes, comma-separated (default 16)")
    p.add_argument("--image-sizes", default="64,128,224", help="rendered frame sizes in pixels (default 64,128,224)")
    p.add_argument("--model", default="tiny",
                   help="CLIP: tiny, vit-b-32 (random weights, OpenAI ViT-B/32 architecture), a local CLIP "
                        "directory or a Hugging Face hub id (default tiny)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="CLIP computation dtype, ours and the reference's (autocast) (default float32)")
    p.add_argument("--steps", type=int, default=2, help="env steps per timed call (scan length) (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per level, median reported (default 3)")
    p.add_argument("--ppo-image-size", type=int, default=None,
                   help="image size at which whole PPO iterations are timed (default: the smallest)")
    p.add_argument("--no-ppo", action="store_true", help="skip the PPO iterations")
    p.add_argument("--no-reference", action="store_true", help="skip the PyTorch/MuJoCo reference pipeline")
    p.add_argument("--roofline-batch", type=int, default=None,
                   help="images per call of the encoder-only timing (default: the largest --num-envs)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="device peak for the roofline in TFLOP/s (default: data sheet on GPU/TPU, measured on CPU)")
    p.add_argument("--gl", default=None, choices=("egl", "osmesa"),
                   help="MuJoCo renderer backend of the reference (default MUJOCO_GL, else egl, else osmesa)")
    p.add_argument("--cache-dir", default=None, help="where named models are written once "
                                                     "(default ~/.cache/vlmrm_jax/benchmark_models)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--out", default="runs/benchmark", help="directory for results.csv and results.json "
                                                           "(default runs/benchmark)")
    p.add_argument("--markdown", metavar="RESULTS_JSON", default=None,
                   help="only print the table of an earlier run's results.json as Markdown, then exit")
    return p.parse_args(argv)


@dataclasses.dataclass
class Settings:
    """Validated arguments."""

    envs: list[str]
    num_envs: list[int]
    image_sizes: list[int]
    model: str
    bfloat16: bool
    steps: int
    repeats: int
    ppo_image_size: int | None
    reference: bool
    roofline_batch: int
    peak_tflops: float | None
    gl: str | None
    cache_dir: str | None
    seed: int
    out: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        """Raises VlmrmError on any bad value (unknown env, non-positive sizes, ...)."""
        from benchmarks.stages import ENV_NAMES

        envs = comma_list(args.env, "--env", "cartpole,humanoid", one_of(ENV_NAMES))
        if not str(args.model).strip():
            raise VlmrmError("--model is empty; pass tiny, vit-b-32, a local CLIP directory or a Hugging Face hub id")
        num_envs = comma_list(args.num_envs, "--num-envs", "16,64", positive_int)
        sizes = comma_list(args.image_sizes, "--image-sizes", "64,224", positive_int)
        for name in ("steps", "repeats", "roofline_batch", "ppo_image_size"):
            value = getattr(args, name)
            if value is not None and value <= 0:
                raise VlmrmError(f"--{name.replace('_', '-')} {value} must be a positive integer")
        if args.peak_tflops is not None and not args.peak_tflops > 0:
            raise VlmrmError(f"--peak-tflops {args.peak_tflops} must be positive (TFLOP/s)")
        ppo_size = None if args.no_ppo else (args.ppo_image_size or min(sizes))
        if ppo_size is not None and ppo_size not in sizes:
            raise VlmrmError(f"--ppo-image-size {ppo_size} is not one of --image-sizes {args.image_sizes}; pick one "
                             f"of them")
        return cls(envs=envs, num_envs=num_envs, image_sizes=sizes, model=str(args.model),
                   bfloat16=args.dtype == "bfloat16", steps=args.steps, repeats=args.repeats,
                   ppo_image_size=ppo_size, reference=not args.no_reference,
                   roofline_batch=args.roofline_batch or max(num_envs), peak_tflops=args.peak_tflops, gl=args.gl,
                   cache_dir=args.cache_dir, seed=args.seed, out=Path(args.out))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024 if sys.platform != "darwin" else kib / 2 ** 20


def device_peak_mb() -> float | None:
    """Peak device memory in use (MiB) where JAX exposes it (GPU/TPU), else None (CPU)."""
    import jax

    stats = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 2 ** 20


def machine_info(settings: Settings) -> dict:
    """Device, host and library versions, recorded with the results."""
    import jax
    import mujoco

    device = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"platform": device.platform, "device_kind": device.device_kind, "device_count": jax.device_count(),
            "cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
            "mujoco": mujoco.__version__, "date": datetime.datetime.now().isoformat(timespec="seconds")}
    if settings.reference:
        try:
            import torch

            info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                        torch_device="cuda" if torch.cuda.is_available() else "cpu")
            if torch.cuda.is_available():
                info["torch_device_name"] = torch.cuda.get_device_name(0)
        except ImportError:
            pass
    return info


def _count(value: float) -> str:
    """A rate for humans: thousands separators from 100 up, 3 significant figures below."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table (one line per env / num_envs / image size / stage)."""
    header = ("env", "N", "px", "stage", "ours ms/batch", "ours steps/s", "compile s", "ref ms/batch",
              "ref steps/s", "speedup")
    lines = [header]
    for r in rows:
        lines.append((r["env"], str(r["num_envs"]), str(r["image_size"]), r["stage"], _fmt(r["ours_ms_per_batch"], 2),
                      _fmt(r["ours_steps_per_s"]), _fmt(r["ours_compile_s"]), _fmt(r["ref_ms_per_batch"], 2),
                      _fmt(r["ref_steps_per_s"]), _fmt(r["speedup"], 2)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        cells = (cell.ljust(w) if j < 4 else cell.rjust(w) for j, (cell, w) in enumerate(zip(line, widths)))
        out.append("  ".join(cells))
        if i == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (steps/s rounded to 3 significant figures), for docs and the README."""

    def sig(value):
        return "-" if value is None else f"{float(f'{value:.3g}'):,.0f}" if value >= 100 else f"{value:.3g}"

    lines = ["| env | N | px | stage | ours steps/s | ref steps/s | ours / ref | compile s |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        ratio = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(f"| {r['env']} | {r['num_envs']} | {r['image_size']} | {r['stage']} | "
                     f"{sig(r['ours_steps_per_s'])} | {sig(r['ref_steps_per_s'])} | {ratio} | "
                     f"{r['ours_compile_s']:.0f} |")
    return "\n".join(lines)


def _ratio(reference: float | None, ours: float | None) -> float | None:
    if reference is None or ours is None or ours <= 0 or reference <= 0:
        return None
    return reference / ours


class Benchmark:
    """Runs everything :class:`Settings` asks for; ``run()`` returns the results dict written to ``results.json``.

    Args:
        settings: validated settings.
        log: progress printer.
    """

    def __init__(self, settings: Settings, log=print):
        self.s = settings
        self.log = log
        self.rows: list[dict] = []
        self.agreement: list[dict] = []
        self.notes: list[str] = []
        self.rewards: dict = {}

    # ------------------------------------------------------------------ setup

    def _load_models(self):
        import jax.numpy as jnp

        from benchmarks.models import model_directory, torch_twin
        from vlmrm_jax.models import CLIP

        path = model_directory(self.s.model, self.s.cache_dir, log=self.log)
        dtype = jnp.bfloat16 if self.s.bfloat16 else jnp.float32
        self.clip = CLIP.load(path, dtype=dtype)
        self.torch_model = torch_twin(self.clip) if self.s.reference else None
        if self.torch_model is not None:
            import torch

            import jax

            self.torch_device = "cuda" if torch.cuda.is_available() else "cpu"
            if jax.default_backend() != "cpu" and self.torch_device == "cpu":
                self.notes.append(f"JAX runs on {jax.default_backend()} but this torch has no CUDA: the reference's "
                                  f"CLIP runs on the CPU; install a CUDA build of torch for a GPU reference")

    def _reward(self, env_name: str):
        """The goal-baseline reward (alpha 0) of the env's paper prompts, embedded once per run."""
        from benchmarks.stages import task_prompts
        from vlmrm_jax.rewards import GoalBaselineReward

        if env_name not in self.rewards:
            embeddings = self.clip.embed_text(list(task_prompts(env_name)))  # [goal, baseline]
            self.rewards[env_name] = GoalBaselineReward.from_embeddings(embeddings[:1], embeddings[1:], alpha=0.0)
        return self.rewards[env_name]

    # ------------------------------------------------------------------ one configuration

    def _compile(self, label: str, build):
        start = time.perf_counter()
        program = build()
        self.log(f"{label}: compiled {program.name} in {program.compile_s:.1f} s "
                 f"(first call {program.first_call_s:.2f} s) [{time.perf_counter() - start:.1f} s]")
        return program

    def _configuration(self, env_name: str, env, reward, clip_reward, state, size: int, physics) -> None:
        from benchmarks.reference import ReferencePipeline
        from benchmarks.stages import PipelineStages, episode_length, ppo_iterations

        s = self.s
        num_envs = int(state.reward.shape[0])
        label = f"[{env_name} N={num_envs} {size}px]"
        stages = PipelineStages(env, self.clip, reward, state, size, s.steps, episode_length(env_name), s.seed)
        programs = {"physics": physics}
        programs["render"] = self._compile(label, lambda: stages.render(physics.carry[3]))
        programs["clip"] = self._compile(label, lambda: stages.clip_stage(programs["render"].carry))
        programs["reward"] = self._compile(label, lambda: stages.reward_stage(programs["clip"].carry))
        programs["end-to-end"] = self._compile(label, stages.end_to_end)
        reference = self.ref_threads = None
        if clip_reward is not None:
            try:
                reference = ReferencePipeline(env_name, env, clip_reward, num_envs, size, episode_length(env_name),
                                              s.seed)
            except VlmrmError as e:
                note = f"{env_name}: no reference ({e})"
                if note not in self.notes:
                    self.notes.append(note)
                    self.log(f"{label} {note}")
        if reference is not None:
            reference.step()  # warm-up: GL context, torch allocations
            self.ref_threads = clip_reward.tune_threads(reference.frames)
            self.log(f"{label} reference: torch uses {self.ref_threads} thread(s) (all cores only when >= 20% "
                     f"faster than 1)")
            if not any(a["env"] == env_name for a in self.agreement):
                self._check_agreement(env_name, reward, reference, clip_reward)
        ref_rounds = []
        for r in range(s.repeats):  # interleaved: ours and the reference take turns, round by round
            for program in programs.values():
                program()
            if reference is not None:
                ref_rounds.append(reference.run(s.steps))
            ours = " ".join(f"{k} {programs[k].seconds[-1] / s.steps * 1e3:.1f}" for k in programs)
            ref = (" | reference " + " ".join(f"{k} {v / s.steps * 1e3:.1f}" for k, v in ref_rounds[-1].items())
                   if reference is not None else "")
            self.log(f"{label} round {r + 1}/{s.repeats}, ms/batch: ours {ours}{ref}")
        if reference is not None:
            reference.close()
        ppo = None
        if s.ppo_image_size == size:
            ppo = self._compile(label, lambda: ppo_iterations(stages, unroll_length=s.steps, seed=s.seed))
            for r in range(s.repeats):
                seconds = ppo()
                self.log(f"{label} ppo iteration {r + 1}/{s.repeats}: {seconds:.2f} s "
                         f"({ppo.env_steps / seconds:,.0f} env-steps/s)")
        self._add_rows(env_name, num_envs, size, programs, ref_rounds, ppo)

    def _add_rows(self, env_name, num_envs, size, programs, ref_rounds, ppo) -> None:
        from benchmarks.reference import STAGES

        s = self.s
        common = dict(env=env_name, model=s.model, dtype="bfloat16" if s.bfloat16 else "float32", num_envs=num_envs,
                      image_size=size, steps_per_call=s.steps, peak_rss_mb=round(peak_rss_mb(), 1),
                      device_peak_mb=device_peak_mb(), ours_sum_of_stages_ms=None,
                      ref_torch_threads=self.ref_threads)
        ours_sum = 0.0
        for stage, program in programs.items():
            ours_ms = program.median_s / s.steps * 1e3
            ref_ms = None
            if ref_rounds:
                stages = STAGES if stage == "end-to-end" else (stage,)
                ref_ms = statistics.median(sum(t[k] for k in stages) for t in ref_rounds) / s.steps * 1e3
            row = dict(common, stage=stage, ours_ms_per_batch=ours_ms, ours_steps_per_s=num_envs / ours_ms * 1e3,
                       ours_compile_s=program.compile_s, ours_first_call_s=program.first_call_s,
                       ref_ms_per_batch=ref_ms, ref_steps_per_s=num_envs / ref_ms * 1e3 if ref_ms else None,
                       speedup=_ratio(ref_ms, ours_ms))
            if stage == "end-to-end":
                row["ours_sum_of_stages_ms"] = ours_sum
            else:
                ours_sum += ours_ms
            self.rows.append(row)
        if ppo is not None:
            ms = ppo.median_s / (ppo.env_steps / num_envs) * 1e3
            self.rows.append(dict(
                common, stage="ppo", ours_ms_per_batch=ms, ours_steps_per_s=ppo.env_steps / ppo.median_s,
                ours_compile_s=ppo.compile_s, ours_first_call_s=ppo.first_call_s, ref_ms_per_batch=None,
                ref_steps_per_s=None, speedup=None))

    def _check_agreement(self, env_name, reward, reference, clip_reward) -> None:
        """Our reward and the reference's on the reference's frames: the two CLIPs are the same model."""
        import jax
        import numpy as np

        frames = reference.frames
        ours_embed = jax.jit(self.clip.embed_images)(self.clip.params, np.asarray(frames, np.float32) / 255.0)
        ours = np.asarray(reward(ours_embed))
        theirs_embed = clip_reward.embed(frames)
        theirs = clip_reward.reward(theirs_embed)
        entry = dict(env=env_name, frames=list(frames.shape),
                     max_abs_embedding_difference=float(np.abs(np.asarray(ours_embed)
                                                               - theirs_embed.float().cpu().numpy()).max()),
                     max_abs_reward_difference=float(np.abs(ours - theirs).max()),
                     reward_range=[float(theirs.min()), float(theirs.max())])
        self.agreement.append(entry)
        self.log(f"[{env_name}] same model check on {frames.shape[0]} reference frames: max |reward difference| "
                 f"{entry['max_abs_reward_difference']:.2e}, max |embedding difference| "
                 f"{entry['max_abs_embedding_difference']:.2e}")

    # ------------------------------------------------------------------ roofline

    def _roofline(self, platform_name: str, device_kind: str) -> dict:
        import numpy as np

        from benchmarks.models import vision_gflops
        from benchmarks.roofline import device_peak
        from benchmarks.stages import clip_only_program

        s = self.s
        gflops = vision_gflops(self.clip.model.config)
        peak, source = device_peak(device_kind, platform_name, s.bfloat16, s.peak_tflops)
        program = self._compile("[roofline]", lambda: clip_only_program(self.clip, s.roofline_batch, s.seed))
        for _ in range(s.repeats):
            program()
        ours = s.roofline_batch / program.median_s
        entry = dict(model=s.model, dtype="bfloat16" if s.bfloat16 else "float32", image_size=self.clip.image_size,
                     batch=s.roofline_batch, gflops_per_image=gflops, peak_tflops=peak, peak_source=source,
                     limit_images_per_s=peak * 1e3 / gflops, ours_images_per_s=ours,
                     ours_fraction_of_peak=ours * gflops / (peak * 1e3), ref_images_per_s=None,
                     ref_fraction_of_peak=None)
        if self.torch_model is not None:
            import torch

            from benchmarks.reference import TorchCLIPReward

            encoder = TorchCLIPReward(self.torch_model, self.clip, self._reward(s.envs[0]), s.bfloat16,
                                      self.torch_device)
            rng = np.random.default_rng(s.seed)
            size = self.clip.image_size
            threads = encoder.tune_threads(rng.integers(0, 256, (s.roofline_batch, size, size, 3), np.uint8))
            entry["ref_torch_threads"] = threads
            pixels = torch.tensor(rng.normal(size=(s.roofline_batch, 3, size, size)), dtype=torch.float32,
                                  device=encoder.device)
            encoder.embed_pixels(pixels)
            encoder.synchronize()
            seconds = []
            for _ in range(s.repeats):
                start = time.perf_counter()
                encoder.embed_pixels(pixels)
                encoder.synchronize()
                seconds.append(time.perf_counter() - start)
            ref = s.roofline_batch / statistics.median(seconds)
            entry.update(ref_images_per_s=ref, ref_fraction_of_peak=ref * gflops / (peak * 1e3))
        self.log(f"[roofline] {s.model} {entry['dtype']} {self.clip.image_size}px: {gflops:.3g} GFLOP/image, peak "
                 f"{peak:.3g} TFLOP/s ({source}) -> limit {_count(entry['limit_images_per_s'])} images/s; ours "
                 f"{_count(ours)} images/s = {100 * entry['ours_fraction_of_peak']:.1f}% of peak"
                 + (f"; reference {_count(entry['ref_images_per_s'])} images/s = "
                    f"{100 * entry['ref_fraction_of_peak']:.1f}%" if entry["ref_images_per_s"] else ""))
        return entry

    # ------------------------------------------------------------------ targets

    def _targets(self, platform_name: str, roofline: dict) -> list[dict]:
        """The issue's targets that apply to what was measured, met or missed, with the dominant stage."""
        from benchmarks.models import TINY, VIT_B_32
        from benchmarks.stages import STAGES

        targets = []
        for row in self.rows:
            if row["stage"] != "end-to-end":
                continue
            name, value, met = None, None, None
            if platform_name == "cpu" and row["model"] == TINY and row["image_size"] == 64 and row["speedup"]:
                name, value, met = "CPU, tiny CLIP, 64 px: end to end >= 3x the reference", row["speedup"], \
                    row["speedup"] >= 3
            elif platform_name == "cpu" and row["model"] == VIT_B_32 and row["image_size"] == 224 and row["speedup"]:
                name, value, met = "CPU, ViT-B/32, 224 px: end to end at least as fast as the reference", \
                    row["speedup"], row["speedup"] >= 1
            elif platform_name != "cpu" and row["model"] == VIT_B_32 and row["image_size"] == 224:
                name, value, met = "accelerator, ViT-B/32, 224 px: >= 10,000 env-steps/s end to end", \
                    row["ours_steps_per_s"], row["ours_steps_per_s"] >= 10_000
            if name is None:
                continue
            config = [r for r in self.rows if r["env"] == row["env"] and r["num_envs"] == row["num_envs"]
                      and r["image_size"] == row["image_size"] and r["stage"] in STAGES]
            dominant = max(config, key=lambda r: r["ours_ms_per_batch"])
            targets.append(dict(target=name, env=row["env"], num_envs=row["num_envs"], value=value, met=bool(met),
                                dominant_stage=dominant["stage"],
                                dominant_share=dominant["ours_ms_per_batch"] / row["ours_sum_of_stages_ms"]))
        if platform_name != "cpu" and roofline.get("model") == VIT_B_32 and roofline.get("dtype") == "bfloat16":
            targets.append(dict(target="accelerator, ViT-B/32: encoder >= 40% of the bf16 FLOP limit",
                                value=roofline["ours_fraction_of_peak"], met=roofline["ours_fraction_of_peak"] >= 0.4))
        return targets

    # ------------------------------------------------------------------ main loop

    def run(self) -> dict:
        """Measures everything; returns the results dict (see :func:`write_results`)."""
        import contextlib

        import jax

        from benchmarks.reference import TorchCLIPReward, headless_gl
        from benchmarks.stages import PipelineStages, episode_length, initial_state, make_bench_env

        s = self.s
        start = time.perf_counter()
        device = jax.devices()[0]
        info = machine_info(s)
        torch_info = f", torch {info['torch']} on {info['torch_device']}" if "torch" in info else ""
        self.log(f"device: {device.platform} ({device.device_kind}), {info['cpu_count']} CPU cores ({info['cpu']}); "
                 f"jax {info['jax']}, mujoco {info['mujoco']}{torch_info}")
        self._load_models()
        self.log(f"model: {s.model} ({self.clip.image_size}px input, {'bfloat16' if s.bfloat16 else 'float32'})")
        with contextlib.ExitStack() as stack:
            if s.reference and "humanoid" in s.envs:
                info["gl"] = stack.enter_context(headless_gl(s.gl))
                self.log(f"reference renderer: mujoco.Renderer with {info['gl']}")
            for env_name in s.envs:
                env = make_bench_env(env_name)
                reward = self._reward(env_name)
                clip_reward = (TorchCLIPReward(self.torch_model, self.clip, reward, s.bfloat16, self.torch_device)
                               if self.torch_model is not None else None)
                for num_envs in s.num_envs:
                    label = f"[{env_name} N={num_envs}]"
                    state, reset_s = initial_state(env, self.clip, reward, num_envs, episode_length(env_name), s.seed)
                    self.log(f"{label}: compiled and ran the reset in {reset_s:.1f} s (shared by every image size)")
                    physics = self._compile(label, PipelineStages(
                        env, self.clip, reward, state, s.image_sizes[0], s.steps, episode_length(env_name),
                        s.seed).physics)
                    physics.compile_s += reset_s
                    for size in s.image_sizes:
                        self._configuration(env_name, env, reward, clip_reward, state, size, physics)
        roofline = self._roofline(device.platform, device.device_kind)
        targets = self._targets(device.platform, roofline)
        info["total_s"] = time.perf_counter() - start
        return dict(machine=info, settings={k: str(v) if isinstance(v, Path) else v
                                            for k, v in dataclasses.asdict(s).items()},
                    rows=self.rows, roofline=[roofline], agreement=self.agreement, targets=targets,
                    notes=self.notes)


def write_results(results: dict, out: Path) -> tuple[Path, Path]:
    """Writes ``out/results.json`` (everything) and ``out/results.csv`` (the rows, :data:`FIELDS`)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "results.json", out / "results.csv"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for row in results["rows"]:
            writer.writerow({k: row.get(k) for k in FIELDS})
    return json_path, csv_path


def summary_lines(results: dict) -> list[str]:
    """The table, the roofline and the targets as printable lines."""
    lines = [format_table(results["rows"]), ""]
    for r in results["roofline"]:
        ref = (f"; reference {_count(r['ref_images_per_s'])} images/s ({100 * r['ref_fraction_of_peak']:.1f}%)"
               if r.get("ref_images_per_s") else "")
        lines.append(f"roofline {r['model']} {r['dtype']} {r['image_size']}px: {r['gflops_per_image']:.3g} "
                     f"GFLOP/image, limit {_count(r['limit_images_per_s'])} images/s at {r['peak_tflops']:.3g} "
                     f"TFLOP/s ({r['peak_source']}); ours {_count(r['ours_images_per_s'])} images/s "
                     f"({100 * r['ours_fraction_of_peak']:.1f}%){ref}")
    for t in results["targets"]:
        where = f" [{t['env']} N={t['num_envs']}]" if "env" in t else ""
        dominant = (f"; dominant stage {t['dominant_stage']} ({100 * t['dominant_share']:.0f}% of the stages' time)"
                    if "dominant_stage" in t else "")
        lines.append(f"target{where}: {t['target']}: {'met' if t['met'] else 'MISSED'} ({t['value']:.3g}){dominant}")
    lines.extend(f"note: {n}" for n in results["notes"])
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.markdown:
        try:
            rows = json.loads(Path(args.markdown).read_text())["rows"]
        except (OSError, ValueError, KeyError) as e:
            print(f"error: --markdown {args.markdown} is not a readable results.json ({e})", file=sys.stderr)
            return 2
        print(markdown_table(rows))
        return 0
    try:
        settings = Settings.from_args(args)
        results = Benchmark(settings, log=lambda line: print(line, flush=True)).run()
        json_path, csv_path = write_results(results, settings.out)
    except VlmrmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join([""] + summary_lines(results) + [f"wrote {csv_path} and {json_path} "
                                                       f"({results['machine']['total_s']:.0f} s)"]))
    return 0


if __name__ == "__main__":
    # Before mujoco is first imported: a headless GL for the reference's mujoco.Renderer (headless_gl also selects
    # it explicitly, for callers of main() that imported mujoco earlier).
    os.environ.setdefault("MUJOCO_GL", "egl")
    sys.exit(main())
