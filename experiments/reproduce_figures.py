"""Regenerate, from the shipped models, every model-made figure and number of README.md and docs/.

    python -m experiments.reproduce_figures                      # every stage below but "quality"
    python -m experiments.reproduce_figures --stages landscapes  # one stage (comma-separated for several)

Stages (each writes into --docs, default docs/, and prints the figures it produced):

* ``landscapes``: the CartPole and MountainCar (textured, flat) reward landscapes with EPIC per alpha
  (``landscape_<task>.png/.csv/_epic.json``; the textured MountainCar one is the README figure), from
  ``cartpole-clip-tiny`` and ``mountain-car-clip-tiny`` (``python -m experiments.reward_landscape``). ~1-3 min.
* ``humanoid``: the humanoid reward along pose sweeps (``humanoid_reward_landscape.png/.csv``) from
  ``humanoid-clip-tiny`` (``experiments.vlm_quality``'s landscape). ~1 min.
* ``cartpole``: PPO on CartPole from the CLIP reward alone, CPU preset, seed 0, ``cartpole-clip-tiny``
  (``python -m experiments.cartpole``), then 16 evaluation episodes (``python -m experiments.evaluate``):
  ``cartpole_training_curve.png`` and ``cartpole_training.json`` (success rate by the true criterion, env steps,
  wall time). The run lives in ``--runs``/cartpole; a killed reproduction continues with ``--resume`` there
  (a finished one is re-evaluated). ~7 min on an idle 2-core CPU.
* ``mountain_car``: the same for MountainCar, textured and flat looks, CPU preset, ``mountain-car-clip-tiny``, 4
  evaluation episodes: ``mountain_car_training.json``. ~10 min on an idle 2-core CPU.
* ``quality`` (not in the default set: ~15 min of frame generation): the held-out AUROC / R-precision tables of
  docs/offline_models.md, on frames generated with the documented held-out seed 1 (``experiments.vlm_quality``),
  written to ``quality_<env>.json``.

Bad input (an unknown stage) exits 2 with one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from experiments import comma_list, run_cli
from vlmrm_jax.errors import VlmrmError

#: (file stem, env, --look, shipped model) of the classic reward landscapes.
LANDSCAPES = (("landscape_cartpole", "cartpole", None, "cartpole-clip-tiny"),
              ("landscape_mountain_car_textured", "mountain_car", "textured", "mountain-car-clip-tiny"),
              ("landscape_mountain_car_flat", "mountain_car", "flat", "mountain-car-clip-tiny"))
#: (env, shipped model, held-out frames) of the quality stage (docs/offline_models.md).
QUALITY = (("humanoid", "humanoid-clip-tiny", 1500), ("cartpole", "cartpole-clip-tiny", 1000),
           ("mountain_car", "mountain-car-clip-tiny", 1000))
STAGES = ("landscapes", "humanoid", "cartpole", "mountain_car", "quality")
DEFAULT_STAGES = "landscapes,humanoid,cartpole,mountain_car"


def landscapes(docs: Path, log=print) -> dict:
    """The classic landscapes; returns {stem: EPIC per alpha}."""
    from experiments import reward_landscape

    results = {}
    for stem, env, look, model in LANDSCAPES:
        argv = ["--env", env, "--model", model, "--out", str(docs), "--name", stem] + (["--look", look] if look else [])
        results[stem] = reward_landscape.run(reward_landscape.parse_args(argv), log=log)["epic"]
    return results


def humanoid(docs: Path, log=print) -> dict:
    """The humanoid pose-sweep landscape (alphas 0 and 0.5, 25 points per sweep)."""
    from experiments.vlm_quality import humanoid_landscape
    from vlmrm_jax.models import CLIP

    humanoid_landscape(CLIP.load("humanoid-clip-tiny"), [0.0, 0.5], docs / "humanoid_reward_landscape.png", 25, log=log)
    return {"figure": str(docs / "humanoid_reward_landscape.png")}


def cartpole(docs: Path, runs: Path, log=print) -> dict:
    """Trains (or continues / re-evaluates) the CartPole run and writes its curve and summary into ``docs``."""
    from experiments import cartpole as cartpole_cli
    from experiments import evaluate
    from vlmrm_jax.rl.trainer import read_metrics

    run = runs / "cartpole"
    argv = ["--out", str(run), "--resume"] if (run / "config.json").exists() else [
        "--model", "cartpole-clip-tiny", "--preset", "cpu", "--seed", "0", "--out", str(run)]
    if cartpole_cli.main(argv) != 0 or evaluate.main(["--run", str(run), "--episodes", "16"]) != 0:
        raise VlmrmError(f"the CartPole run in {run} failed (see the lines above)")
    summary = json.loads((run / "eval.json").read_text())
    records = read_metrics(run)
    upright = [r["env_steps"] for r in records if r.get("env/success", 0.0) >= 0.95]
    result = {"command": "python -m experiments.cartpole --model cartpole-clip-tiny --preset cpu --seed 0 --out "
                         f"{run}; python -m experiments.evaluate --run {run} --episodes 16",
              "env_steps": summary["env_steps"], "wall_s": records[-1]["wall_s"],
              "eval_episodes": summary["episodes"], "success_rate": summary["success_rate"],
              "fraction_of_steps_upright": summary.get("success/fraction_of_steps"),
              "first_env_steps_with_training_fraction_upright_0.95": upright[0] if upright else None}
    shutil.copyfile(run / "reward_curve.png", docs / "cartpole_training_curve.png")
    (docs / "cartpole_training.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def mountain_car(docs: Path, runs: Path, log=print) -> dict:
    """Trains (or continues / re-evaluates) the two MountainCar runs; writes ``mountain_car_training.json``."""
    from experiments import mountain_car as mountain_car_cli
    from vlmrm_jax.rl.trainer import read_metrics

    results = {}
    for look in ("textured", "flat"):
        run = runs / f"mountain_car_{look}"
        argv = ["--out", str(run), "--resume"] if (run / "config.json").exists() else [
            "--model", "mountain-car-clip-tiny", "--look", look, "--preset", "cpu", "--seed", "0", "--out", str(run)]
        if mountain_car_cli.main(argv) != 0:
            raise VlmrmError(f"the MountainCar run in {run} failed (see the lines above)")
        summary = json.loads((run / "eval.json").read_text())
        results[look] = {"command": "python -m experiments.mountain_car --model mountain-car-clip-tiny --look "
                                    f"{look} --preset cpu --seed 0 --out {run}",
                         "env_steps": summary["env_steps"], "wall_s": read_metrics(run)[-1]["wall_s"],
                         "eval_episodes": summary["episodes"], "success_rate": summary["success_rate"]}
    (docs / "mountain_car_training.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def quality(docs: Path, log=print) -> dict:
    """Held-out AUROC / R-precision of each shipped model on freshly generated frames (seed 1)."""
    from experiments import vlm_quality

    results = {}
    for env, model, frames in QUALITY:
        out = docs / f"quality_{env}.json"
        args = vlm_quality.parse_args(["--env", env, "--model", model, "--num-frames", str(frames), "--seed", "1",
                                       "--out-json", str(out)])
        result = vlm_quality.run(args, log=log)
        results[env] = {k: v for k, v in result.items() if k.startswith("mean_")}
    return results


def run(stages: list[str], docs: Path, runs: Path, log=print) -> dict:
    """Runs the stages in order; returns {stage: its figures}.

    Raises:
        VlmrmError: on an unknown stage, or a stage that fails.
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise VlmrmError(f"--stages: unknown stage {unknown[0]!r}; choose from {', '.join(STAGES)}")
    docs.mkdir(parents=True, exist_ok=True)
    results = {}
    for stage in stages:
        log(f"== {stage}")
        results[stage] = (globals()[stage](docs, runs, log=log) if stage in ("cartpole", "mountain_car") else
                          globals()[stage](docs, log=log))
        log(f"== {stage}: {json.dumps(results[stage])}")
    return results


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code (0 done, 2 bad input)."""
    p = argparse.ArgumentParser(prog="python -m experiments.reproduce_figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--stages", default=DEFAULT_STAGES,
                   help=f"comma-separated stages out of {', '.join(STAGES)} (default: %(default)s)")
    p.add_argument("--docs", default="docs", metavar="DIR", help="where figures go (default: %(default)s)")
    p.add_argument("--runs", default="runs/reproduce", metavar="DIR",
                   help="where the training runs go (default: %(default)s)")
    args = p.parse_args(argv)
    return run_cli(lambda: run(comma_list(args.stages, "--stages", DEFAULT_STAGES), Path(args.docs), Path(args.runs)))


if __name__ == "__main__":
    sys.exit(main())
