"""Train the language-centred agent (Di Palo et al. 2023) on block stacking: collect & infer with the planner's
subgoals and the CLIP subgoal detector, the sparse-reward baseline, or PPO on the VLM-RM reward toward the current
subgoal's caption (the two papers joined).

    python -m experiments.stacking --instruction "stack the red object on the blue object"
    python -m experiments.stacking --instruction "stack all three objects" --learner sparse --out runs/sparse_all
    python -m experiments.stacking --table runs          # the results table of the finished runs under runs/

The planner (a T5, or the task's canonical decomposition with --planner canonical) turns the instruction into
subgoal captions once at the start; the run's env task is the instruction's (the env's ground truth decides
success, never the detector). Physics (MJX), the policy, rendering both basket cameras, CLIP embedding and subgoal
detection run in one compiled collect, storing and behaviour cloning in a second; no frame leaves the device.
See docs/agent.md. Writes config.json, metrics.jsonl,
checkpoints/, success_curve.png, episode.mp4 (one greedy episode, first camera, current subgoal and detections
written on it) and eval.json into --out. A killed run continues with --resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable

from experiments import run_cli
from vlmrm_jax.errors import VlmrmError

#: Learners: collect & infer with subgoals, and the same learner with the env's sparse reward only.
LEARNERS = ("collect_infer", "sparse", "ppo")
#: Subgoal detectors of collect & infer: the CLIP, or the env's ground truth (an ablation).
DETECTORS = ("clip", "truth")
#: Detector model and planner used when none is given.
DEFAULT_MODEL = "stacking-clip-tiny"
DEFAULT_PLANNER = "stacking-t5-tiny"
#: Sizes per device kind: "cpu" is this repo's 2-core machine (see docs/agent.md for what it reaches);
#: "accelerator" uses the paper's 1000 actors.
PRESETS = {
    "cpu": dict(total_steps=100_000, num_envs=64, bc_steps=8, bc_batch_size=32, learning_rate=1e-3,
                ppo=dict(num_envs=16, unroll_length=10, batch_size=16, num_minibatches=4, num_updates_per_batch=4)),
    "accelerator": dict(total_steps=1_000_000, num_envs=1000, bc_steps=64, bc_batch_size=256, learning_rate=1e-3,
                        ppo=dict(num_envs=1024, unroll_length=10, batch_size=1024, num_minibatches=8,
                                 num_updates_per_batch=4)),
}
CONFIG_FILE = "config.json"


def task_of_instruction(instruction: str):
    """The stacking task whose instruction is ``instruction`` (case, spaces and a final period ignored).

    Raises:
        VlmrmError: if no task has that instruction (the message lists them).
    """
    from vlmrm_jax.envs.stacking.language import TASKS

    key = " ".join(instruction.strip().rstrip(".").split()).lower()
    for task in TASKS.values():
        if task.instruction.lower() == key:
            return task
    raise VlmrmError(f"no stacking task has the instruction {instruction!r}; use one of: "
                     f"{'; '.join(t.instruction for t in TASKS.values())}")


def default_episode_length(subgoals: int) -> int:
    """Actions per episode when none is given, for a plan of ``subgoals`` subgoals: two per subgoal (each takes one
    pick or place, so one miss each), at least 4: grasp 4, two-stack 4, triple stack 8."""
    return max(4, 2 * subgoals)


def make_plan(planner: str, instruction: str) -> list[str]:
    """The subgoal captions for ``instruction``: the planner's output, or with ``planner == "canonical"`` the task's
    own decomposition.

    Raises:
        VlmrmError: the planner's output is not a list of known subgoals (the message quotes it), or the planner
            cannot be loaded.
    """
    from vlmrm_jax.envs.stacking.language import SUBGOALS

    if planner == "canonical":
        return list(task_of_instruction(instruction).subgoals)
    from vlmrm_jax.planner import SubgoalPlanner

    result = SubgoalPlanner.load(planner, subgoals=SUBGOALS).plan([instruction])
    if not bool(result.valid[0]):
        raise VlmrmError(f"the planner {planner!r} turned {instruction!r} into {result.texts[0]!r}, not a list of "
                         f"known subgoals; use --planner canonical or another planner")
    return [SUBGOALS[int(i)] for i in result.subgoals[0, :int(result.count[0])]]


def short_label(caption: str) -> str:
    """"The robot is grasping the red object" -> "grasp red"; "The red object is on top of the blue object" ->
    "red on blue" (for video captions)."""
    words = caption.lower().replace("the ", "").replace(" object", "").split()
    if words[:3] == ["robot", "is", "grasping"]:
        return "grasp " + " ".join(words[3:])
    return " ".join(w for w in words if w not in ("is", "top", "of"))


@dataclasses.dataclass
class RunConfig:
    """Everything that defines an agent run; saved as ``config.json`` in the run directory.

    Attributes:
        instruction: the task instruction (the paper's wording).
        task: the env task key it names (its ground truth is the success criterion).
        plan: the subgoal captions the planner produced (fixed for the run).
        learner: one of :data:`LEARNERS`.
        planner: where ``plan`` came from (a planner name/path, or "canonical").
        model: the subgoal detector's CLIP (None for the sparse learner).
        detector: "clip" (the paper's: the CLIP on both cameras' frames) or "truth" (an ablation: the env's
            ground-truth subgoal predicates in place of the CLIP, which separates the learner from detection
            errors; no frames are rendered).
        total_steps: env steps (actions) to train for.
        seed: PRNG seed.
        episode_length: actions per episode.
        image_size: detector frame size (pixels, square); None = the CLIP's input size.
        shadows: ray-traced shadows in the detector's frames.
        agent: :class:`vlmrm_jax.agent.CollectInferConfig` fields (``policy``: PolicyConfig fields).
        ppo: :class:`vlmrm_jax.rl.PPOConfig` fields of the ppo learner.
        alpha: goal-baseline regularisation of the ppo learner's VLM reward, in [0, 1].
        eval_episodes: greedy episodes after training (success rate, video); None = ``num_envs`` (which reuses the
            training's compiled collect).
        video_size: side of the video's frames in pixels.
        checkpoint_every_s: seconds between checkpoints.
    """

    instruction: str
    task: str
    plan: list[str]
    learner: str = "collect_infer"
    planner: str = DEFAULT_PLANNER
    model: str | None = DEFAULT_MODEL
    detector: str = "clip"
    total_steps: int = 20_000
    seed: int = 0
    episode_length: int = 10
    image_size: int | None = None
    shadows: bool = True
    agent: dict[str, Any] = dataclasses.field(default_factory=dict)
    ppo: dict[str, Any] = dataclasses.field(default_factory=dict)
    alpha: float = 0.0
    eval_episodes: int | None = None
    video_size: int = 192
    checkpoint_every_s: float = 120.0

    def __post_init__(self):
        if self.learner not in LEARNERS:
            raise VlmrmError(f"unknown learner {self.learner!r}; choose one of {', '.join(LEARNERS)}")
        if self.detector not in DETECTORS:
            raise VlmrmError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        for name in ("total_steps", "episode_length", "eval_episodes", "video_size"):
            value = getattr(self, name)
            if (value is not None or name != "eval_episodes") and (not isinstance(value, int) or value <= 0):
                raise VlmrmError(f"{name.replace('_', '-')}={value!r} must be a positive integer")
        if self.image_size is not None and self.image_size <= 0:
            raise VlmrmError(f"image-size={self.image_size!r} must be a positive number of pixels")
        from vlmrm_jax.rewards import check_alpha

        self.alpha = check_alpha(self.alpha)
        self.agent_config()  # validates
        self.ppo_config()

    def ppo_config(self):
        """The ppo learner's :class:`vlmrm_jax.rl.PPOConfig` (validated)."""
        from vlmrm_jax.rl import PPOConfig

        fields = dict(self.ppo)
        for key in ("policy_hidden_layer_sizes", "value_hidden_layer_sizes"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return PPOConfig(**{**fields, "episode_length": self.episode_length})

    def agent_config(self):
        """The :class:`vlmrm_jax.agent.CollectInferConfig` (validated)."""
        from vlmrm_jax.agent import CollectInferConfig, PolicyConfig

        fields = dict(self.agent)
        policy = dict(fields.pop("policy", {}))
        if "token_sizes" in policy:
            policy["token_sizes"] = tuple(policy["token_sizes"])
        return CollectInferConfig(**fields, episode_length=self.episode_length,
                                  use_subgoals=self.learner == "collect_infer", policy=PolicyConfig(**policy))

    def save(self, out: Path) -> None:
        """Writes ``out/config.json`` atomically."""
        from vlmrm_jax.rl.checkpoint import save_json_atomic

        save_json_atomic(Path(out) / CONFIG_FILE, dataclasses.asdict(self))

    @classmethod
    def load(cls, out: str | Path) -> "RunConfig":
        """Reads ``out/config.json``.

        Raises:
            VlmrmError: if it is missing or not a stacking run's config.
        """
        path = Path(out) / CONFIG_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise VlmrmError(f"{path} does not exist; pass the --out directory of a stacking run") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise VlmrmError(f"{path} is not a valid stacking run config ({e})") from None


def _detector(config: RunConfig, env):
    """The subgoal detector of ``config.model`` and the frames it sees: (detector, frames_fn ``State -> float32
    [V, H, W, 3]``; V = 2 cameras, or 1 for a single-view detector)."""
    from vlmrm_jax.envs.stacking.language import SUBGOALS
    from vlmrm_jax.models.detection import SubgoalDetector

    detector = SubgoalDetector.load(config.model, SUBGOALS)
    size = config.image_size or detector.clip.image_size
    if detector.combine is None:  # a single-view detector: the first camera only
        render = env.make_render_fn(size, size, shadows=config.shadows)
        return detector, lambda state: render(state)[None]
    return detector, env.make_frames_fn(size, size, shadows=config.shadows)


def build(config: RunConfig):
    """Builds the env, the detector (unless the sparse learner) and the learner.

    Returns:
        (env, learner, evaluate): ``learner`` has ``init`` / ``iteration`` for :func:`vlmrm_jax.rl.train`
        (:class:`vlmrm_jax.agent.CollectInfer`, or :class:`vlmrm_jax.agent.SubgoalPPO`); ``evaluate(state, key,
        episodes) -> (summary, Trajectory)`` plays greedy episodes (success by ground truth).

    Raises:
        VlmrmError: an unknown subgoal in the plan, a missing model, bad sizes.
    """
    import jax.numpy as jnp
    import numpy as np

    from vlmrm_jax.agent import CollectInfer
    from vlmrm_jax.agent.outputs import evaluate
    from vlmrm_jax.envs import make_env
    from vlmrm_jax.envs.stacking.language import SUBGOALS, subgoal_id

    plan = [subgoal_id(c) for c in config.plan]  # raises on an unknown subgoal
    if not plan:
        raise VlmrmError("the plan holds no subgoal; the planner must produce at least one (or --planner canonical)")
    env = make_env("stacking", task=config.task, episode_length=config.episode_length)
    plan_ids = np.array(plan, np.int32)
    if config.learner == "ppo":
        return (env, *_build_ppo(config, env, plan_ids))
    detect_fn: Callable | None = None
    if config.learner == "collect_infer" and config.detector == "truth":
        detect_fn, embeddings = env.subgoal_truth, jnp.eye(len(SUBGOALS), dtype=jnp.float32)
    elif config.learner == "collect_infer":
        detector, frames = _detector(config, env)
        detect_fn = lambda state: detector(frames(state)[None])[0]  # noqa: E731
        embeddings = detector.text_embeddings
    else:  # the sparse learner: its subgoal token is a constant, so one-hot rows suffice
        embeddings = jnp.eye(len(SUBGOALS), dtype=jnp.float32)
    agent = CollectInfer(env, config.agent_config(), subgoal_embeddings=embeddings, plan=plan_ids,
                         plan_length=len(plan), detect_fn=detect_fn, success_fn=env.task_success)
    return env, agent, lambda state, key, episodes: evaluate(agent, state, key, episodes)


def _build_ppo(config: RunConfig, env, plan):
    """PPO on the VLM reward toward the current subgoal (:class:`vlmrm_jax.agent.SubgoalRewardEnv`)."""
    import numpy as np

    from vlmrm_jax.agent.subgoal_reward import SubgoalPPO, SubgoalRewardEnv, ppo_rollout, stack_rewards
    from vlmrm_jax.models.detection import combine_views
    from vlmrm_jax.rewards import GoalBaselineReward
    from vlmrm_jax.rewards.vlm_reward import normalize

    detector, frames = _detector(config, env)
    clip, text = detector.clip, detector.text_embeddings
    # The goal of subgoal s is its caption; the baseline is the mean of all subgoal captions (the generic
    # "cubes in a basket" direction); with alpha = 0 (the default) only the goal counts.
    rewards = stack_rewards([GoalBaselineReward.from_embeddings(text[i:i + 1], text, config.alpha)
                             for i in range(text.shape[0])])

    def score(state):
        embeddings = clip.embed_images(clip.params, frames(state))  # [V, D]
        if config.detector == "truth":
            return embeddings, env.subgoal_truth(state)
        similarities = normalize(embeddings) @ normalize(text).T  # [V, S]
        combined = similarities[0] if detector.combine is None else combine_views(similarities, detector.combine)
        return embeddings, combined > detector.threshold

    def make(auto_reset):
        return SubgoalRewardEnv(env, rewards=rewards, plan=plan, plan_length=len(plan), score_fn=score,
                                success_fn=env.task_success, auto_reset=auto_reset)

    ppo = SubgoalPPO(make(True), config.ppo_config())
    eval_env = make(False)

    def evaluate(state, key, episodes):
        traj = ppo_rollout(ppo, state, eval_env, key, episodes, config.episode_length)
        alive = np.asarray(traj.alive)
        summary = {"episodes": episodes, "success_rate": float(np.asarray(traj.success).any(axis=0).mean()),
                   "subgoals_reached": float(np.where(alive, np.asarray(traj.stage), 0).max(axis=0).mean()
                                             / len(plan)),
                   "episode_length_mean": float(alive.sum(axis=0).mean())}
        return summary, traj

    return ppo, evaluate


def train_run(config: RunConfig | None, out: str | Path, *, resume: bool = False, show_progress: bool = True,
              log: Callable[[str], None] = print) -> dict:
    """Trains (or resumes) a run in ``out`` and writes the outputs (see the module docstring).

    Returns:
        The greedy evaluation summary (as in ``eval.json``).

    Raises:
        VlmrmError: bad input, a corrupt checkpoint, or NaN in training.
    """
    import jax

    from vlmrm_jax.agent.outputs import episode_video, plot_success_curve
    from vlmrm_jax.envs.stacking.language import SUBGOALS
    from vlmrm_jax.pipeline import prepare_run_dir
    from vlmrm_jax.rl import read_metrics, train
    from vlmrm_jax.rl.checkpoint import save_json_atomic

    out = prepare_run_dir(out, resume)
    if resume:
        config = RunConfig.load(out)
        log(f"resuming {out}: {config.learner} on {config.instruction!r}")
    env, learner, evaluate = build(config)
    config.save(out)
    state = train(learner, total_steps=config.total_steps, run_dir=out, seed=config.seed, resume=resume,
                  checkpoint_every_s=config.checkpoint_every_s, show_progress=show_progress,
                  meta={"config": dataclasses.asdict(config)})
    records = read_metrics(out)
    plot_success_curve(records, out / "success_curve.png", title=f"{config.instruction} ({config.learner})")
    episodes = config.eval_episodes or learner.config.num_envs
    summary, traj = evaluate(state, jax.random.PRNGKey(config.seed + 1), episodes)
    summary.update(env_steps=int(state.env_steps), learner=config.learner, detector=config.detector,
                   instruction=config.instruction, plan=config.plan, steps_to_50pct=steps_to(records, 0.5),
                   best_smoothed_success_rate=max(smoothed_success(records), default=0.0))
    render = env.make_render_fn(config.video_size, config.video_size, shadows=config.shadows)
    episode_video(out / "episode.mp4", traj, render, [short_label(c) for c in SUBGOALS],
                  use_subgoals=config.learner != "sparse")
    save_json_atomic(out / "eval.json", summary)
    log(f"greedy evaluation over {episodes} episodes: success rate {summary['success_rate']:.2f} "
        f"(ground truth); video {out / 'episode.mp4'}")
    return summary


#: Iterations the success rate is averaged over for the steps-to-50% figure (one iteration is only num_envs
#: episodes: a lucky one is not a learned policy).
SMOOTHING = 3


def smoothed_success(records: list[dict], key: str = "success_rate") -> list[float]:
    """The mean of ``key`` over each iteration and the ``SMOOTHING - 1`` before it."""
    values = [r.get(key, 0.0) for r in records]
    return [sum(values[max(0, i - SMOOTHING + 1):i + 1]) / len(values[max(0, i - SMOOTHING + 1):i + 1])
            for i in range(len(values))]


def steps_to(records: list[dict], rate: float, key: str = "success_rate") -> int | None:
    """The env steps of the first iteration whose smoothed ``key`` (:func:`smoothed_success`) reached ``rate``, or
    None."""
    return next((r["env_steps"] for r, v in zip(records, smoothed_success(records, key)) if v >= rate), None)


def results_table(root: str | Path, window: int = 5) -> str:
    """A Markdown table of every finished run under ``root`` (a directory of run directories, each with
    ``config.json``, ``metrics.jsonl`` and ``eval.json``): learner, detector, BC steps, env steps, the collecting
    actors' success rate (ground truth) and fraction of the plan's subgoals detected over the first and the last
    ``window`` iterations, the best smoothed success rate, env steps to 50% and the final greedy success rate."""
    from vlmrm_jax.rl import read_metrics

    rows = [f"| run | instruction | learner | detector | BC steps/it | env steps | success, first {window} it. | "
            f"success, last {window} it. | subgoals detected, first -> last {window} it. | best smoothed success | "
            f"env steps to 50% | greedy success (final) |", "|" + "---|" * 12]
    for run in sorted(Path(root).iterdir()):
        if not (run / "eval.json").exists():
            continue
        config, result, records = RunConfig.load(run), json.loads((run / "eval.json").read_text()), read_metrics(run)
        detector = "-" if config.learner == "sparse" else config.detector
        to_half = result["steps_to_50pct"] if result["steps_to_50pct"] is not None else "not reached"
        rates = [r["success_rate"] for r in records]
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        first, last = mean(rates[:window]), mean(rates[-window:])
        reached = [r["subgoals_reached"] for r in records]
        subgoals = ("-" if config.learner == "sparse"
                    else f"{mean(reached[:window]):.2f} -> {mean(reached[-window:]):.2f}")
        rows.append(f"| {run.name} | {config.instruction} | {config.learner} | {detector} | "
                    f"{'-' if config.learner == 'ppo' else config.agent_config().bc_steps} | {result['env_steps']} | {first:.2f} | {last:.2f} | {subgoals} | "
                    f"{result['best_smoothed_success_rate']:.2f} | {to_half} | {result['success_rate']:.2f} |")
    return "\n".join(rows)


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the CLI's flags (``--help`` lists them with their defaults)."""
    p = argparse.ArgumentParser(prog="python -m experiments.stacking", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instruction", default="Stack the red object on the blue object",
                   help="the task, in the paper's words (default: %(default)r)")
    p.add_argument("--learner", choices=LEARNERS, default="collect_infer",
                   help="collect_infer (subgoals + detector), sparse (the same learner, env reward only) or ppo "
                        "(PPO on the VLM reward toward the current subgoal's caption) (default %(default)s)")
    p.add_argument("--alpha", type=float, default=0.0,
                   help="ppo: goal-baseline regularisation of the VLM reward in [0, 1] (default 0)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="subgoal detector CLIP (also the ppo learner's reward model): shipped name or directory "
                        "with a detector.json (default %(default)s)")
    p.add_argument("--detector", choices=DETECTORS, default="clip",
                   help="subgoal detector: clip (the paper's) or truth (ablation: the env's ground-truth subgoal "
                        "predicates, one-hot subgoal tokens, no rendering) (default %(default)s)")
    p.add_argument("--planner", default=DEFAULT_PLANNER, help="T5 planner: shipped name, directory or hub id; "
                   "'canonical' takes the task's own decomposition (default %(default)s)")
    p.add_argument("--preset", choices=["auto", *PRESETS], default="auto",
                   help="sizes for the device: auto picks 'cpu' or 'accelerator' from JAX's default backend")
    p.add_argument("--total-steps", type=int, help="env steps (actions) to train for (default: from the preset)")
    p.add_argument("--num-envs", type=int, help="actors collecting in parallel (default: from the preset)")
    p.add_argument("--episode-length", type=int, help="actions per episode (default: two per subgoal of the task, "
                   "at least 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/stacking", help="output directory (must be empty unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--image-size", type=int, help="detector frame size in pixels (default: the CLIP's input size)")
    p.add_argument("--no-shadows", action="store_true", help="skip the shadow ray in the detector's frames")
    p.add_argument("--eval-episodes", type=int, help="greedy episodes after training (default: --num-envs)")
    p.add_argument("--video-size", type=int, default=192, metavar="PX")
    p.add_argument("--checkpoint-every", type=float, default=120.0, metavar="SECONDS")
    p.add_argument("--table", metavar="DIR", help="print the results table of the finished runs under DIR, then exit")
    a = p.add_argument_group("collect & infer (defaults: from the preset, else the library's)")
    a.add_argument("--bc-steps", type=int, help="behaviour-cloning Adam steps per iteration")
    a.add_argument("--bc-batch-size", type=int, help="stored episodes per BC step")
    a.add_argument("--buffer-capacity", type=int, help="stored episodes kept")
    a.add_argument("--learning-rate", type=float)
    a.add_argument("--eval-envs", type=int, help="greedy actors per iteration for greedy_success_rate (0: none)")
    a.add_argument("--grid", type=int, help="action grid cells per axis; 0 = continuous head")
    a.add_argument("--epsilon", type=float, help="probability of a uniform random action while collecting")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace, log: Callable[[str], None] = print) -> RunConfig:
    """Parsed arguments -> a validated :class:`RunConfig` (sizes from the preset, the plan from the planner).

    Raises:
        VlmrmError: on any bad value.
    """
    from vlmrm_jax.pipeline import check_run_dir, device_kind

    preset_name = args.preset if args.preset != "auto" else ("cpu" if device_kind() == "cpu" else "accelerator")
    preset = dict(PRESETS[preset_name])
    total_steps = preset.pop("total_steps")
    total_steps = total_steps if args.total_steps is None else args.total_steps
    ppo = dict(preset.pop("ppo"))
    if args.num_envs is not None:
        ppo.update(num_envs=args.num_envs, batch_size=args.num_envs)
    agent = dict(preset)
    for name in ("num_envs", "bc_steps", "bc_batch_size", "buffer_capacity", "learning_rate", "eval_envs"):
        if getattr(args, name) is not None:
            agent[name] = getattr(args, name)
    from vlmrm_jax.envs.stacking.env import REACH

    # Positions in metres scaled to about [-1, 1] (the action's range) before the policy's token projections.
    agent["policy"] = {"obs_scale": 1.0 / REACH,
                       **{k: getattr(args, k) for k in ("grid", "epsilon") if getattr(args, k) is not None}}
    task = task_of_instruction(args.instruction)
    check_run_dir(args.out, resume=False)
    config = RunConfig(instruction=args.instruction, task=task.key, plan=list(task.subgoals), learner=args.learner,
                       planner=args.planner,
                       model=args.model if args.learner == "ppo" or (args.learner == "collect_infer"
                                                                      and args.detector == "clip") else None,
                       detector=args.detector, ppo=ppo, alpha=args.alpha,
                       total_steps=total_steps, seed=args.seed,
                       episode_length=(default_episode_length(len(task.subgoals)) if args.episode_length is None
                                       else args.episode_length),
                       image_size=args.image_size, shadows=not args.no_shadows, agent=agent,
                       eval_episodes=args.eval_episodes, video_size=args.video_size,
                       checkpoint_every_s=args.checkpoint_every)
    config.plan = plan = make_plan(args.planner, args.instruction)  # after the cheap checks: loads the T5
    log(f"task {task.key}; plan ({args.planner}): {' -> '.join(plan)}")
    if config.learner == "ppo":
        c = config.ppo_config()
        sizes = (f"num_envs={c.num_envs}, unroll_length={c.unroll_length}, env steps per PPO iteration="
                 f"{c.env_steps_per_iteration}, alpha={config.alpha}")
    else:
        c = config.agent_config()
        sizes = f"num_envs={c.num_envs}, bc_steps={c.bc_steps}, grid={c.policy.grid}"
    log(f"preset: {preset_name}; learner {config.learner}; detector {config.detector}; total_steps={total_steps}, "
        f"episode_length={config.episode_length}, {sizes}")
    return config


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code (0 done, 2 bad input, 130 interrupted)."""
    args = parse_args(argv)
    if args.table:
        print(results_table(args.table))
        return 0

    def work():
        config = None if args.resume else make_config(args)
        train_run(config, args.out, resume=args.resume)
        print(f"done: metrics, checkpoints, success curve, video and eval.json are in {args.out}")

    return run_cli(work, resume_command=f"python -m experiments.stacking --out {args.out} --resume")


if __name__ == "__main__":
    sys.exit(main())
