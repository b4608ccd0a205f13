"""The language-centred agent's other three abilities on block stacking (Di Palo et al. 2023, section 4):
reuse of past data, skill scheduling, learning from observation.

    python -m experiments.stacking_reuse --out runs/reuse                  # 1. tasks in sequence, reuse vs scratch
    python -m experiments.stacking_reuse --out runs/reuse --schedule "Stack all three objects"      # 2. skills
    python -m experiments.stacking_reuse --out runs/reuse --expert-videos 50                        # 3. expert videos
    python -m experiments.stacking_reuse --out runs/reuse --from-video runs/reuse/expert_videos/expert_000.mp4

1. Reuse (default): the protocol's tasks (red on blue, then blue on green, then green on red), each learned by collect
   & infer with a policy re-initialised per task. Arm "reuse" keeps every episode (observations, actions, the
   frames' embeddings) in a lifelong buffer; at a new task the planner's subgoals relabel the whole buffer by the
   detector's rule on the stored embeddings, and the qualifying episodes seed behaviour cloning before any
   collection. Arm "scratch" learns each task alone (its first task is the reuse arm's first task: no data yet, so
   it is run once and shared). Writes <out>/<arm>/<task>/ (metrics.jsonl, checkpoints/, policy.msgpack),
   <out>/reuse/skills.json, <out>/reuse.json (env steps to 50% success per task and arm) and reuse_curves.png.
   --resume continues a killed protocol (killed at any point) from its last checkpoints and ends with what an
   uninterrupted run gives: finished tasks are skipped, an unfinished one resumes from its trainer checkpoint, and
   the lifelong buffer is rebuilt from <out>/reuse/<task>/episodes/ (one file per collection, keyed by env step;
   those after the checkpoint are dropped). The settings come from <out>/<arm>/protocol.json; flags given with
   --resume must equal them (except --checkpoint-every and --no-progress).
2. --schedule INSTRUCTION: the planner decomposes an instruction never trained as a task; every subgoal must be a
   skill learned in <out>/reuse; each skill (the policy of the task that learned it) acts until the detector sees
   its subgoal. Greedy episodes, no training; success by the env's ground truth, with failure modes. Writes
   <out>/schedule_<task>.json.
3. --expert-videos N: N scripted-expert episodes of random tasks, each rendered from the first camera; the
   detector's debounced first detections give each video's subgoal sequence; reports the expert's success and how
   often the sequence is right (ground truth), writes a few MP4s, and with --execute plays each extracted sequence
   with the skills. --from-video PATH does the same for one video. Writes <out>/observation.json.

--detector truth (an ablation) replaces the CLIP with the env's ground-truth subgoal predicates: the stored
"embedding" of a state is its 9 ground-truth subgoal bits, captions are one-hot, gamma 0.5; the same relabelling
and scheduling code runs on them (no rendering, so it fits this repo's CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Callable

from experiments import run_cli
from vlmrm_jax.errors import VlmrmError

#: The paper's protocol of tasks learned in sequence.
PROTOCOL = ("stack_red_on_blue", "stack_blue_on_green", "stack_green_on_red")
ARMS = ("reuse", "scratch")
DETECTORS = ("clip", "truth")
DEFAULT_MODEL = "stacking-clip-tiny"
SKILLS_FILE = "skills.json"
#: The settings of one arm's protocol, in <out>/<arm>/, checked by --resume.
PROTOCOL_FILE = "protocol.json"
#: Where a reuse-arm task keeps the episodes it added to the lifelong buffer (:class:`EpisodeLog`), for --resume.
EPISODES_DIR = "episodes"
#: The flags (argparse dests) that fix a protocol's results: saved in PROTOCOL_FILE; --resume refuses other values.
PROTOCOL_SETTINGS = ("tasks", "arms", "detector", "model", "planner", "total_steps", "num_envs", "episode_length",
                     "bc_steps", "bc_batch_size", "buffer_capacity", "seed_bc_steps", "grid", "epsilon",
                     "learning_rate", "eval_envs", "image_size", "no_shadows", "seed")
#: Expert episodes rolled out together per task (the batch the expert's ground-truth run uses too).
EXPERT_BATCH = 32
#: Gamma of the ground-truth ablation (its "similarities" are 0/1 subgoal bits).
TRUTH_THRESHOLD = 0.5


@dataclasses.dataclass
class Detection:
    """How states are embedded and detected (one per env): ``embed_fn`` State -> float32 [V, D], ``detect_fn``
    embeddings -> bool [S], and the subgoal captions' embeddings / gamma / view rule for relabelling."""

    kind: str
    text_embeddings: object
    threshold: float
    combine: str | None
    embed_fn: Callable
    detect_fn: Callable
    image_size: int | None = None


def make_detection(kind: str, env, model: str = DEFAULT_MODEL, image_size: int | None = None,
                   shadows: bool = True) -> Detection:
    """The CLIP detector (``model``'s calibrated gamma and view rule) or the ground-truth ablation, for ``env``.

    Raises:
        VlmrmError: an unknown kind, or a model without a calibrated detector.json.
    """
    import jax.numpy as jnp

    from vlmrm_jax.agent.lifelong import detect_embedded
    from vlmrm_jax.envs.stacking.language import SUBGOALS

    if kind == "truth":
        eye = jnp.eye(len(SUBGOALS), dtype=jnp.float32)
        return Detection("truth", eye, TRUTH_THRESHOLD, None,
                         embed_fn=lambda s: env.subgoal_truth(s).astype(jnp.float32)[None],
                         detect_fn=lambda e: detect_embedded(e, eye, TRUTH_THRESHOLD, None))
    if kind != "clip":
        raise VlmrmError(f"unknown detector {kind!r}; choose one of {', '.join(DETECTORS)}")
    from vlmrm_jax.models.detection import SubgoalDetector

    detector = SubgoalDetector.load(model, SUBGOALS)
    size = image_size or detector.clip.image_size
    clip, text, gamma, combine = detector.clip, detector.text_embeddings, detector.threshold, detector.combine
    if combine is None:
        render = env.make_render_fn(size, size, shadows=shadows)
        frames = lambda s: render(s)[None]  # noqa: E731
    else:
        frames = env.make_frames_fn(size, size, shadows=shadows)
    return Detection("clip", text, gamma, combine, image_size=size,
                     embed_fn=lambda s: clip.embed_images(clip.params, frames(s)),
                     detect_fn=lambda e: detect_embedded(e, text, gamma, combine))


def plan_ids(planner: str, instruction: str) -> list[int]:
    """The planner's subgoal ids for ``instruction`` (``planner == "canonical"``: the task's own decomposition)."""
    from experiments.stacking import make_plan
    from vlmrm_jax.envs.stacking.language import subgoal_id

    return [subgoal_id(c) for c in make_plan(planner, instruction)]


def agent_config(args, obs_scale: float | None = None):
    """The collect & infer config from the CLI's sizes, built as ``experiments.stacking`` builds it: positions in
    metres scaled by ``obs_scale`` (default 1 / the env's reach, so about [-1, 1]), and the learning rate and greedy
    actors from the flags (absent when a skill is rebuilt for scheduling from skills.json: unused there)."""
    from vlmrm_jax.agent import CollectInferConfig, PolicyConfig
    from vlmrm_jax.envs.stacking.env import REACH

    return CollectInferConfig(num_envs=args.num_envs, episode_length=args.episode_length, bc_steps=args.bc_steps,
                              bc_batch_size=args.bc_batch_size, buffer_capacity=args.buffer_capacity,
                              learning_rate=getattr(args, "learning_rate", 1e-3),
                              eval_envs=getattr(args, "eval_envs", 0),
                              policy=PolicyConfig(grid=args.grid, epsilon=args.epsilon,
                                                  obs_scale=1.0 / REACH if obs_scale is None else obs_scale))


class _Recording:
    """A learner for :func:`vlmrm_jax.rl.train` that also appends every collected episode to a lifelong buffer and,
    with an ``episode_log``, writes them to disk keyed by the env step the iteration reached (before the trainer can
    checkpoint that step, so every checkpoint's episodes are on disk).

    Its ``init`` returns the state as an orbax restore does (every leaf committed to this process's first device,
    no weak types), so a fresh and a resumed task run the same compiled iteration: no recompile when a task
    resumes in the process that ran the one before, and one program for both."""

    def __init__(self, agent, init, lifelong, task, episode_log=None):
        self.agent, self.lifelong, self.task, self.episode_log = agent, lifelong, task, episode_log
        self.init = lambda rng: _as_restored(init(rng))

    def iteration(self, state):
        state, metrics, traj = self.agent.iteration_with_trajectory(state)
        if self.lifelong is not None:
            episodes = self.lifelong.add(traj, self.task)
            if self.episode_log is not None:
                self.episode_log.write(int(state.env_steps), episodes)
        return state, metrics


def _as_restored(state):
    """``state`` with strong dtypes, committed to the first local device: the form of a state orbax restores."""
    import jax
    import jax.numpy as jnp

    return jax.device_put(jax.tree.map(lambda x: jnp.asarray(x, x.dtype), state), jax.local_devices()[0])


def build_task(task_key: str, plan: list[int], args):
    """(detection, collect & infer learner) of one task; both arms train the same learner object (one compile)."""
    from vlmrm_jax.agent import CollectInfer
    from vlmrm_jax.envs import make_env

    env = make_env("stacking", task=task_key, episode_length=args.episode_length)
    det = make_detection(args.detector, env, args.model, args.image_size, not args.no_shadows)
    agent = CollectInfer(env, agent_config(args), subgoal_embeddings=det.text_embeddings, plan=plan,
                         plan_length=len(plan), detect_fn=det.detect_fn, success_fn=env.task_success,
                         embed_fn=det.embed_fn)
    return det, agent


def train_task(task_key: str, plan: list[int], arm: str, lifelong, args, out: Path, built, log=print,
               resume: bool = False) -> dict:
    """Learns one task of the protocol in ``out/<arm>/<task>`` with the learner of :func:`build_task`; with
    ``lifelong`` (the reuse arm) seeds from its relabelled episodes first and adds every new episode to it (and to
    the task's :class:`EpisodeLog`). With ``resume``, continues the task from its latest trainer checkpoint (from
    the start with none), first adding to ``lifelong`` the episodes the task had collected up to that checkpoint.
    Returns the task's summary."""
    import flax.serialization
    import jax

    from experiments.stacking import smoothed_success, steps_to
    from vlmrm_jax.agent.lifelong import EpisodeLog
    from vlmrm_jax.agent.outputs import evaluate
    from vlmrm_jax.rl import read_metrics, train, trained_steps
    from vlmrm_jax.rl.checkpoint import save_bytes_atomic

    det, agent = built
    summary = {"task": task_key, "arm": arm, "plan": plan}
    init = agent.init
    if arm == "reuse" and len(lifelong):
        relabelled = lifelong.relabel(agent, det.text_embeddings, det.threshold, det.combine)
        keep = jax.device_get(relabelled.keep)
        summary.update(lifelong_episodes=len(lifelong), relabelled_qualifying=int(keep.sum()),
                       relabelled_all_subgoals=int((jax.device_get(relabelled.stage) >= len(plan)).sum()))
        log(f"{task_key}: relabelled {len(lifelong)} past episodes: {int(keep.sum())} qualify "
            f"({summary['relabelled_all_subgoals']} reach every subgoal by the detector); seeding "
            f"{args.seed_bc_steps} BC steps")
        seeding = _seeding()
        init = lambda rng: seeding(agent, agent.init(rng), relabelled, args.seed_bc_steps)  # noqa: E731
    run_dir = out / arm / task_key
    run_dir.mkdir(parents=True, exist_ok=resume)
    episode_log = EpisodeLog(run_dir / EPISODES_DIR) if arm == "reuse" else None
    if arm == "reuse":
        step = trained_steps(run_dir) if resume else None
        episode_log.truncate(step)  # the iterations after the checkpoint run again and write their episodes again
        for episodes in episode_log.read():
            lifelong.extend(episodes, task_key)
        if step is not None:
            log(f"{task_key}: resuming at env step {step} with the {len(lifelong)} episodes the lifelong buffer "
                f"held then")
    state = train(_Recording(agent, init, lifelong if arm == "reuse" else None, task_key, episode_log),
                  total_steps=args.total_steps, run_dir=run_dir, seed=args.seed, log=log, resume=resume,
                  checkpoint_every_s=args.checkpoint_every, show_progress=not args.no_progress)
    records = read_metrics(run_dir)
    key = jax.device_put(jax.random.PRNGKey(args.seed + 1), jax.local_devices()[0])  # committed, as training's
    greedy, _ = evaluate(agent, state, key, agent.config.num_envs)  # so the iterations' compiled collect serves
    save_bytes_atomic(run_dir / "policy.msgpack",
                  flax.serialization.msgpack_serialize(jax.device_get(state.params)))
    if agent.config.eval_envs:
        summary["steps_to_50pct_greedy"] = steps_to(records, 0.5, key="greedy_success_rate")
    summary.update(env_steps=int(state.env_steps), steps_to_50pct=steps_to(records, 0.5),
                   best_smoothed_success_rate=max(smoothed_success(records), default=0.0),
                   greedy_success_rate=greedy["success_rate"],
                   curve=[[r["env_steps"], r["success_rate"]] for r in records])
    log(f"{arm} {task_key}: steps to 50% {summary['steps_to_50pct']}, best smoothed success "
        f"{summary['best_smoothed_success_rate']:.2f}, greedy {greedy['success_rate']:.2f}")
    return summary


@functools.cache
def _seeding():
    """The jitted seeding ``(agent, fresh state, relabelled, bc_steps) -> state`` (:func:`seed_agent`): the
    relabelled episodes are an argument, not constants baked into the program, the fresh state comes from the
    agent's own compiled ``init`` (shared with the scratch arm), and one compile serves every session in a
    process."""
    import jax

    from vlmrm_jax.agent.lifelong import seed_agent

    return jax.jit(lambda agent, state, relabelled, bc_steps: seed_agent(agent, state, relabelled, bc_steps)[0],
                   static_argnums=(0, 3))


def run_reuse(args, out: Path, log=print, resume: bool = False) -> dict:
    """Ability 1 (see the module docstring); returns the reuse.json contents.

    Without ``resume`` the arms' directories must not exist yet (:func:`main` checks): each is created holding its
    PROTOCOL_FILE. With ``resume`` (``args`` as :func:`resume_args` returns them), the tasks whose summary is in
    reuse.json and whose policy.msgpack exists are skipped (a skipped reuse-arm task's episodes re-enter the
    lifelong buffer from its EpisodeLog) and the first unfinished one continues from its trainer checkpoint, so
    reuse.json and lifelong.npz end as an uninterrupted run's.
    """
    from vlmrm_jax.agent.lifelong import EpisodeLog
    from vlmrm_jax.envs.stacking.language import SUBGOALS, get_task
    from vlmrm_jax.rl.checkpoint import save_json_atomic

    tasks = [get_task(t) for t in args.tasks]
    plans = [plan_ids(args.planner, t.instruction) for t in tasks]
    embedding = (1, len(SUBGOALS)) if args.detector == "truth" else None
    for arm in args.arms:
        if not resume:
            _new_arm_dir(out / arm, protocol_settings(args))
        elif not (out / arm / PROTOCOL_FILE).is_file():  # killed between creating the arms' directories
            (out / arm).mkdir(parents=True, exist_ok=True)
            save_json_atomic(out / arm / PROTOCOL_FILE, protocol_settings(args))
    done = _finished(out, args) if resume else {arm: [] for arm in args.arms}
    results: dict = {"config": _config(args), "arms": {arm: [] for arm in args.arms}}
    lifelong = _new_lifelong(args, embedding) if "reuse" in args.arms else None
    for i, (task, plan) in enumerate(zip(tasks, plans)):
        built = None
        for arm in sorted(args.arms):  # "reuse" first: the scratch arm of the first task is the same run
            if i < len(done[arm]):
                results["arms"][arm].append(done[arm][i])
                if arm == "reuse":  # the finished task's episodes, as its iterations added them
                    for episodes in EpisodeLog(out / arm / task.key / EPISODES_DIR).read():
                        lifelong.extend(episodes, task.key)
                log(f"{arm} {task.key}: finished earlier (in {out / 'reuse.json'}), skipped")
                continue
            if arm == "scratch" and i == 0 and "reuse" in args.arms:
                results["arms"][arm].append(dict(results["arms"]["reuse"][0], arm="scratch",
                                                 note="same run as the reuse arm's first task (no past data yet)"))
            else:
                built = built or build_task(task.key, plan, args)
                results["arms"][arm].append(train_task(task.key, plan, arm, lifelong, args, out, built, log,
                                                       resume=resume))
            if arm == "reuse":
                lifelong.save(out / "lifelong.npz")
                _write_skills(out, args, tasks[:i + 1], plans[:i + 1])
            results = _merged(out / "reuse.json", results)
            save_json_atomic(out / "reuse.json", results)
    plot_reuse(results, out / "reuse_curves.png")
    return results


def protocol_settings(args) -> dict:
    """The PROTOCOL_SETTINGS of ``args`` (what <out>/<arm>/protocol.json holds)."""
    return {k: getattr(args, k) for k in PROTOCOL_SETTINGS}


def _config(args) -> dict:
    """reuse.json's "config": every flag but how this session was started (--resume)."""
    return {k: v for k, v in vars(args).items() if not callable(v) and k not in ("resume", "given")}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _new_arm_dir(path: Path, settings: dict) -> None:
    """Creates an arm's directory holding its PROTOCOL_FILE, all or nothing (so a kill leaves no arm directory
    without its settings)."""
    from vlmrm_jax.atomic import atomic_directory

    with atomic_directory(path) as tmp:
        (tmp / PROTOCOL_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True))


def _finished(out: Path, args) -> dict[str, list[dict]]:
    """Per arm, the summaries of the protocol's leading tasks that a killed run finished: in reuse.json, in the
    protocol's order, with their policy.msgpack written (the scratch arm's first task is the reuse arm's run when
    both arms run together)."""
    path = out / "reuse.json"
    saved = json.loads(path.read_text()).get("arms", {}) if path.is_file() else {}
    done = {}
    for arm in args.arms:
        done[arm] = []
        for i, (task, summary) in enumerate(zip(args.tasks, saved.get(arm, []))):
            policy_arm = "reuse" if arm == "scratch" and i == 0 and "reuse" in args.arms else arm
            if summary.get("task") != task or not (out / policy_arm / task / "policy.msgpack").is_file():
                break
            done[arm].append(summary)
    if "reuse" in done and "scratch" in done and not done["reuse"]:
        done["scratch"] = []  # its first task is the reuse arm's run
    return done


def resume_args(args, out: Path) -> argparse.Namespace:
    """``args`` with the protocol's saved settings (<out>/<arm>/protocol.json) for the flags not typed, for
    ``--resume``.

    Raises:
        VlmrmError: ``out`` holds no protocol (or an unreadable one, or one saved by an older version without a
            setting), two protocols run apart without --arms saying which, or a typed flag differs from the saved
            setting (one line naming the flag, the saved value and the fix).
    """
    # a protocol killed while creating its arms' directories may lack one arm's file: run_reuse writes it again
    arms = [a for a in (args.arms if "arms" in args.given else ARMS) if (out / a / PROTOCOL_FILE).is_file()]
    if not arms:
        raise VlmrmError(f"--resume given but {out} holds no reuse protocol to continue ({out}/<arm>/"
                         f"{PROTOCOL_FILE} missing); drop --resume to start one there, or pass the --out of the "
                         f"killed protocol")
    stored = []
    for a in arms:
        path = out / a / PROTOCOL_FILE
        try:
            stored.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            raise VlmrmError(f"{path} is not a protocol's settings ({e}); start a new protocol in another --out") \
                from None
        absent = [k for k in PROTOCOL_SETTINGS if k not in stored[-1]]
        if absent:
            raise VlmrmError(f"{path} lacks the setting {_flag(absent[0])} (written by an older version of this "
                             f"CLI, which built the agent differently); start a new protocol in another --out")
    if any(s != stored[0] for s in stored[1:]):
        raise VlmrmError(f"{out} holds the arms {', '.join(arms)} run as separate protocols; resume each with its "
                         f"own --arms ({' or '.join('--arms ' + ' '.join(s['arms']) for s in stored)})")
    saved = stored[0]
    for dest in PROTOCOL_SETTINGS:
        if dest in args.given and getattr(args, dest) != saved[dest]:
            raise VlmrmError(f"{_flag(dest)} {getattr(args, dest)!r} differs from the protocol in {out}, run with "
                             f"{saved[dest]!r}; a resumed protocol can change only --checkpoint-every: drop the "
                             f"flag, or start a new protocol in another --out")
    return argparse.Namespace(**{**vars(args), **saved})


def _merged(path: Path, results: dict) -> dict:
    """``results`` with the arms another process (e.g. ``--arms scratch`` run alongside) wrote to ``path`` kept."""
    if path.is_file():
        other = json.loads(path.read_text())
        arms = {k: v for k, v in other.get("arms", {}).items() if k not in results["arms"]}
        results = dict(results, arms={**arms, **results["arms"]})
    return results


def _new_lifelong(args, embedding):
    from vlmrm_jax.agent.lifelong import LifelongBuffer
    from vlmrm_jax.envs import make_env

    if embedding is None:  # the CLIP's image embedding size, from one embedded state
        import jax

        env = make_env("stacking", episode_length=args.episode_length)
        det = make_detection("clip", env, args.model, args.image_size, not args.no_shadows)
        embedding = tuple(jax.eval_shape(lambda r: det.embed_fn(env.reset(r)), jax.random.PRNGKey(0)).shape)
    return LifelongBuffer(args.episode_length, 16, embedding)


def _write_skills(out: Path, args, tasks, plans) -> None:
    from vlmrm_jax.rl.checkpoint import save_json_atomic

    save_json_atomic(out / "reuse" / SKILLS_FILE, {
        "detector": args.detector, "model": args.model if args.detector == "clip" else None,
        "image_size": args.image_size, "shadows": not args.no_shadows, "episode_length": args.episode_length,
        "agent": {**{k: getattr(args, k) for k in ("num_envs", "bc_steps", "bc_batch_size", "buffer_capacity",
                                                    "grid", "epsilon")},
                  "obs_scale": agent_config(args).policy.obs_scale},
        "skills": [{"task": t.key, "subgoals": p, "policy": f"{t.key}/policy.msgpack"} for t, p in zip(tasks, plans)]})


def load_skills(out: Path):
    """(SkillLibrary, the skills.json dict) of a reuse run in ``out``.

    Raises:
        VlmrmError: no reuse run there (one line naming the command that makes one).
    """
    import flax.serialization

    from vlmrm_jax.agent.schedule import SkillLibrary
    from vlmrm_jax.envs.stacking.language import SUBGOALS

    path = out / "reuse" / SKILLS_FILE
    if not path.is_file():
        raise VlmrmError(f"{path} does not exist: no skills learned yet; first run python -m "
                         f"experiments.stacking_reuse --out {out}")
    meta = json.loads(path.read_text())
    library = SkillLibrary(SUBGOALS)
    for skill in meta["skills"]:
        params = flax.serialization.msgpack_restore((out / "reuse" / skill["policy"]).read_bytes())
        library.add(skill["subgoals"], params, skill["task"])
    return library, meta


def _fix_line(library, plan: list[int]) -> str:
    """How to learn the plan's missing skills: the protocol again with the tasks that teach them added."""
    from vlmrm_jax.envs.stacking.language import SUBGOALS, TASKS

    learned = list(dict.fromkeys(library.source.values()))
    teach = []
    for s in (s for s in plan if s not in library.params):
        task = next(t.key for t in sorted(TASKS.values(), key=lambda t: t.kind != "stack")
                    if t.kind != "tower" and SUBGOALS[s] in t.subgoals)
        if task not in teach:
            teach.append(task)
    return f"learn them first: python -m experiments.stacking_reuse --out NEW_DIR --tasks {' '.join(learned + teach)}"


def make_scheduler(library, meta, task_key: str, plan: list[int], instruction: str, out: Path):
    """A :class:`SkillScheduler` for ``plan`` on the env of ``task_key`` (its ground truth is the success).

    Episodes last the skills' training episode length or two actions per plan subgoal, whichever is longer (the
    policy does not observe time, so a four-subgoal tower scheduled from skills trained on 4-action two-stacks gets
    8 actions: one miss per subgoal, as ``experiments.stacking``'s default)."""
    from argparse import Namespace

    from experiments.stacking import default_episode_length
    from vlmrm_jax.agent.schedule import SkillScheduler
    from vlmrm_jax.envs import make_env

    length = max(meta["episode_length"], default_episode_length(len(plan)))
    env = make_env("stacking", task=task_key, episode_length=length)
    det = make_detection(meta["detector"], env, meta["model"] or DEFAULT_MODEL, meta["image_size"], meta["shadows"])
    a = dict(meta["agent"])
    obs_scale = a.pop("obs_scale", 1.0)  # skills.json files written before it was recorded trained unscaled
    config = agent_config(Namespace(episode_length=length, **a), obs_scale)
    scheduler = SkillScheduler(env, config, subgoal_embeddings=det.text_embeddings, plan=plan, plan_length=len(plan),
                               skills=library, instruction=instruction, fix=_fix_line(library, plan),
                               detect_fn=det.detect_fn, success_fn=env.task_success, embed_fn=det.embed_fn)
    return env, scheduler


def schedule_episodes(library, meta, task_key, plan, instruction, out, episodes: int, seed: int) -> dict:
    """Plays ``episodes`` greedy scheduled episodes; returns :func:`failure_modes`' summary plus the plan."""
    import jax
    import numpy as np

    from vlmrm_jax.agent.schedule import failure_modes
    from vlmrm_jax.envs.stacking.language import SUBGOALS

    env, scheduler = make_scheduler(library, meta, task_key, plan, instruction, out)
    traj = scheduler.run(jax.random.PRNGKey(seed), episodes)
    truth = np.asarray(jax.jit(jax.vmap(jax.vmap(env.subgoal_truth)))(traj.states))
    result = failure_modes(traj, truth, plan, SUBGOALS)
    result.update(instruction=instruction, task=task_key, plan=[SUBGOALS[i] for i in plan],
                  skills_from={SUBGOALS[i]: library.source[i] for i in plan})
    return result


def run_schedule(args, out: Path, log=print) -> dict:
    """Ability 2: one instruction by scheduling known skills."""
    from experiments.stacking import task_of_instruction
    from vlmrm_jax.envs.stacking.language import SUBGOALS
    from vlmrm_jax.rl.checkpoint import save_json_atomic

    library, meta = load_skills(out)
    task = task_of_instruction(args.schedule)
    plan = plan_ids(args.planner, args.schedule)
    library.check_plan(plan, args.schedule, _fix_line(library, plan))
    log(f"plan ({args.planner}): {' -> '.join(SUBGOALS[i] for i in plan)}")
    result = schedule_episodes(library, meta, task.key, plan, args.schedule, out, args.episodes, args.seed)
    save_json_atomic(out / f"schedule_{task.key}.json", result)
    log(f"{args.schedule!r}: success rate {result['success_rate']:.2f} over {result['episodes']} episodes "
        f"(ground truth); failure modes: {result['modes']}")
    return result


def video_sequence(frames, detector, min_frames: int, batch: int = 32) -> tuple[list[int], object]:
    """(the extracted subgoal ids, similarities float32 [F, S]) of frames uint8/float [F, H, W, 3]."""
    import jax
    import numpy as np

    from vlmrm_jax.agent.observation import extract_subgoal_sequence

    frames = np.asarray(frames)
    frames = frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float32)
    sim = jax.jit(detector.similarities)
    scores = np.concatenate([np.asarray(sim(frames[i:i + batch])) for i in range(0, len(frames), batch)])
    return extract_subgoal_sequence(scores, detector.threshold, min_frames), scores


def run_expert_success(args, out: Path, log=print) -> dict:
    """The scripted expert alone (``--expert-videos N --detector truth``): N episodes per task from random starts,
    batched, no rendering; success and the ground-truth subgoal sequence per task. Writes <out>/expert.json."""
    import jax
    import numpy as np

    from vlmrm_jax.agent.observation import subgoal_sequence
    from vlmrm_jax.envs import make_env
    from vlmrm_jax.envs.stacking import predicates
    from vlmrm_jax.envs.stacking.expert import expert_rollout, padded_plan
    from vlmrm_jax.envs.stacking.language import SUBGOALS, TASKS
    from vlmrm_jax.rl.checkpoint import save_json_atomic

    env = make_env("stacking", episode_length=args.episode_length)
    rollouts = jax.jit(jax.vmap(lambda r, p, n: expert_rollout(env, r, p, n), in_axes=(0, None, None)))
    truth_fn = jax.jit(jax.vmap(jax.vmap(env.subgoal_truth)))
    tasks = {}
    for i, (key, task) in enumerate((k, t) for k, t in TASKS.items() if k != "stack_all"):
        plan, n = padded_plan(env, task.subgoals)
        ep = rollouts(jax.random.split(jax.random.PRNGKey(args.seed * 1000 + i), args.expert_videos), plan, n)
        holds = jax.jit(jax.vmap(jax.vmap(lambda d: predicates.task_success(d, task))))(ep.states.pipeline_state)
        alive = np.asarray(ep.alive)
        success = (np.asarray(holds) & alive).any(axis=1)
        truth = np.asarray(truth_fn(ep.states)) & alive[..., None]
        canonical = [SUBGOALS.index(c) for c in task.subgoals]
        right = [subgoal_sequence(truth[e], 1) == canonical for e in range(len(success))]
        tasks[key] = {"success_rate": float(success.mean()), "truth_sequence_right_rate": float(np.mean(right)),
                      "actions_mean": float(alive.sum(axis=1).mean()), "subgoals": len(canonical)}
        log(f"expert {key}: success {tasks[key]['success_rate']:.2f} over {args.expert_videos} episodes")
    result = {"episodes_per_task": args.expert_videos, "episode_length": args.episode_length,
              "success_rate": float(np.mean([t["success_rate"] for t in tasks.values()])), "tasks": tasks}
    save_json_atomic(out / "expert.json", result)
    return result


def run_expert_videos(args, out: Path, log=print) -> dict:
    """Ability 3 over many random expert videos (see the module docstring)."""
    import jax
    import numpy as np
    from tqdm import tqdm

    from vlmrm_jax.agent.observation import subgoal_sequence
    from vlmrm_jax.envs import make_env
    from vlmrm_jax.envs.stacking import predicates
    from vlmrm_jax.envs.stacking.camera import CAMERAS
    from vlmrm_jax.envs.stacking.expert import episode_frames, expert_rollout, padded_plan
    from vlmrm_jax.envs.stacking.language import SUBGOALS, TASKS
    from vlmrm_jax.eval.video import write_video
    from vlmrm_jax.models.detection import SubgoalDetector
    from vlmrm_jax.render import to_uint8
    from vlmrm_jax.rl.checkpoint import save_json_atomic

    detector = SubgoalDetector.load(args.model, SUBGOALS, combine=None)  # one camera: the single-view gamma
    size = args.image_size or detector.clip.image_size
    env = make_env("stacking", episode_length=args.episode_length)
    keys = [k for k in TASKS if k != "stack_all"]  # stack_all's canonical plan is an ordered tower's
    rng = np.random.default_rng(args.seed)
    success_fns = {}
    videos_dir = out / "expert_videos"
    videos_dir.mkdir(parents=True, exist_ok=True)
    # the expert's episodes, a batch of EXPERT_BATCH random starts per task (one compiled rollout for all tasks)
    rollouts = jax.jit(jax.vmap(lambda r, p, n: expert_rollout(env, r, p, n), in_axes=(0, None, None)))
    resets = jax.jit(jax.vmap(env.reset))
    chosen = [keys[k] for k in rng.integers(len(keys), size=args.expert_videos)]
    batches = {}
    rows = []
    for i in tqdm(range(args.expert_videos), desc="expert videos", disable=args.no_progress):
        task = TASKS[chosen[i]]
        j = chosen[:i].count(task.key) % EXPERT_BATCH
        if j == 0:
            plan, n = padded_plan(env, task.subgoals)
            keys_i = jax.random.split(jax.random.PRNGKey(args.seed * 100_003 + i), EXPERT_BATCH)
            batches[task.key] = (resets(keys_i), rollouts(keys_i, plan, n))
        start, episode = jax.tree.map(lambda x: x[j], batches[task.key])
        frames, truth = episode_frames(env, start, episode, size=size, camera=CAMERAS[0],
                                       shadows=not args.no_shadows)
        if task.key not in success_fns:
            success_fns[task.key] = jax.jit(jax.vmap(lambda d, t=task: predicates.task_success(d, t)))
        success = bool(np.any(np.asarray(success_fns[task.key](episode.states.pipeline_state))
                              & np.asarray(episode.alive)))
        frames8 = np.asarray(to_uint8(frames))
        extracted, _ = video_sequence(frames8, detector, args.min_frames)
        canonical = [SUBGOALS.index(c) for c in task.subgoals]
        rows.append({"video": i, "task": task.key, "expert_success": success, "extracted": extracted,
                     "truth_sequence": subgoal_sequence(truth, args.min_frames), "canonical": canonical,
                     "right": extracted == canonical, "frames": len(frames)})
        if i < args.save_videos:
            write_video(videos_dir / f"expert_{i:03d}_{task.key}.mp4", frames8, fps=4)
    result = {"videos": len(rows), "expert_success_rate": float(np.mean([r["expert_success"] for r in rows])),
              "sequence_right_rate": float(np.mean([r["right"] for r in rows])),
              "sequence_right_rate_expert_succeeded": float(np.mean([r["right"] for r in rows if r["expert_success"]]
                                                                    or [np.nan])),
              "truth_sequence_right_rate": float(np.mean([r["truth_sequence"] == r["canonical"] for r in rows])),
              "detector": {"model": args.model, "threshold": detector.threshold, "view": CAMERAS[0],
                           "image_size": size, "min_frames": args.min_frames}, "rows": rows}
    if args.execute:
        result["execution"] = execute_sequences(rows, args, out, log)
    save_json_atomic(out / "observation.json", result)
    log(f"{len(rows)} expert videos: expert success {result['expert_success_rate']:.2f} (ground truth); extracted "
        f"sequence right {result['sequence_right_rate']:.2f}")
    return result


def execute_sequences(rows: list[dict], args, out: Path, log=print) -> dict:
    """Plays each distinct (task, extracted sequence) with the skills, ``--episodes`` greedy episodes each, and
    weights the success rates by the videos that gave it; sequences with an unknown skill count as failures."""
    from vlmrm_jax.envs.stacking.language import SUBGOALS

    library, meta = load_skills(out)
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["task"], tuple(r["extracted"])), []).append(r["video"])
    per_group, solved, unknown = [], 0.0, 0
    for (task_key, seq), videos in groups.items():
        if not seq or any(s not in library.params for s in seq):
            unknown += len(videos)
            per_group.append({"task": task_key, "sequence": [SUBGOALS[s] for s in seq], "videos": len(videos),
                              "success_rate": 0.0, "note": "a subgoal is not a learned skill (or none extracted)"})
            continue
        result = schedule_episodes(library, meta, task_key, list(seq), f"video of {task_key}", out, args.episodes,
                                   args.seed)
        solved += result["success_rate"] * len(videos)
        per_group.append({"task": task_key, "sequence": [SUBGOALS[s] for s in seq], "videos": len(videos),
                          **{k: result[k] for k in ("success_rate", "episodes", "modes")}})
        log(f"{task_key} via {len(seq)} subgoals: success {result['success_rate']:.2f}")
    return {"task_success_rate": solved / len(rows), "videos_with_unknown_skills": unknown, "groups": per_group}


def run_from_video(args, out: Path, log=print) -> dict:
    """Ability 3 on one video: the extracted sequence, and with --execute the skills playing it."""
    from vlmrm_jax.agent.observation import read_video
    from vlmrm_jax.envs.stacking.language import SUBGOALS, TASKS
    from vlmrm_jax.models.detection import SubgoalDetector
    from vlmrm_jax.rl.checkpoint import save_json_atomic

    frames = read_video(args.from_video)  # one clear line on a missing / unreadable / empty video
    detector = SubgoalDetector.load(args.model, SUBGOALS, combine=None)
    sequence, _ = video_sequence(frames, detector, args.min_frames)
    result = {"video": str(args.from_video), "frames": len(frames), "sequence": [SUBGOALS[s] for s in sequence],
              "threshold": detector.threshold, "min_frames": args.min_frames}
    log(f"{args.from_video}: {len(frames)} frames; subgoals seen: {' -> '.join(result['sequence']) or 'none'}")
    if args.execute:
        task = args.task or next((t.key for t in TASKS.values() if [SUBGOALS.index(c) for c in t.subgoals]
                                  == sequence), None)
        if task is None:
            raise VlmrmError(f"the video's subgoal sequence {result['sequence']} is no task's decomposition; pass "
                             f"--task KEY to say which task's ground truth judges the agent")
        library, meta = load_skills(out)
        library.check_plan(sequence, f"the video {args.from_video}", _fix_line(library, sequence))
        result["execution"] = schedule_episodes(library, meta, task, sequence, f"video {args.from_video}", out,
                                                args.episodes, args.seed)
        log(f"skills on {task}: success rate {result['execution']['success_rate']:.2f} (ground truth)")
    save_json_atomic(out / f"video_{Path(args.from_video).stem}.json", result)
    return result


def plot_reuse(results: dict, path: Path) -> Path:
    """Success rate (collecting, ground truth) vs env steps per task, reuse vs scratch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [s["task"] for s in next(iter(results["arms"].values()))]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), dpi=110, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for arm, runs in results["arms"].items():
            run = next((r for r in runs if r["task"] == task), None)
            if run and run.get("curve"):
                steps, rate = zip(*run["curve"])
                ax.plot(steps, rate, label=arm)
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success rate (ground truth)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.stacking_reuse", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--schedule", metavar="INSTRUCTION", help="play an instruction with the learned skills")
    mode.add_argument("--expert-videos", type=int, metavar="N", help="N random scripted-expert videos: extraction "
                      "accuracy (and with --execute, task success by the skills); with --detector truth, N expert "
                      "episodes per task, no video: the expert's own ground-truth success")
    mode.add_argument("--from-video", metavar="PATH", help="extract the subgoal sequence of one expert video")
    p.add_argument("--out", default="runs/stacking_reuse", help="run directory (the reuse run's; default %(default)s)")
    p.add_argument("--tasks", nargs="+", default=list(PROTOCOL), help="tasks in order (default: the paper's)")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--detector", choices=DETECTORS, default="clip",
                   help="clip (the paper's) or truth (ablation: ground-truth subgoal bits as embeddings)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="detector CLIP with a detector.json (default %(default)s)")
    p.add_argument("--planner", default="stacking-t5-tiny",
                   help="T5 planner name/dir, or 'canonical' for the tasks' own decompositions (default %(default)s)")
    p.add_argument("--total-steps", type=int, default=4000, help="env steps per task (default %(default)s)")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--episode-length", type=int, default=6, help="actions per episode (default %(default)s)")
    p.add_argument("--bc-steps", type=int, default=16)
    p.add_argument("--bc-batch-size", type=int, default=32)
    p.add_argument("--buffer-capacity", type=int, default=4096)
    p.add_argument("--seed-bc-steps", type=int, default=200, help="BC steps on the relabelled past episodes before "
                   "a task's first collection (reuse arm; default %(default)s)")
    p.add_argument("--grid", type=int, default=16, help="action grid cells per axis (default %(default)s)")
    p.add_argument("--epsilon", type=float, default=0.1)
    p.add_argument("--learning-rate", type=float, default=1e-3, help="behaviour cloning's Adam step size (default "
                   "%(default)s, experiments.stacking's)")
    p.add_argument("--eval-envs", type=int, default=0, help="greedy actors per iteration for the greedy success "
                   "curve and steps_to_50pct_greedy in reuse.json (default %(default)s: none)")
    p.add_argument("--image-size", type=int, help="detector frame size (default: the CLIP's input size)")
    p.add_argument("--no-shadows", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=64, help="greedy episodes per scheduled plan (default %(default)s)")
    p.add_argument("--min-frames", type=int, default=2, help="debouncing: frames a detection must last (default "
                   "%(default)s)")
    p.add_argument("--save-videos", type=int, default=4, help="expert videos written as MP4 (default %(default)s)")
    p.add_argument("--execute", action="store_true", help="play the extracted sequences with the learned skills")
    p.add_argument("--task", help="with --from-video --execute: the task whose ground truth judges the agent "
                   "(default: the task whose decomposition the video shows)")
    p.add_argument("--checkpoint-every", type=float, default=300.0, metavar="SECONDS",
                   help="seconds between a task's trainer checkpoints (default %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the killed reuse protocol in --out from its last checkpoints; flags given with it "
                        "must match the protocol's (except --checkpoint-every)")
    p.add_argument("--no-progress", action="store_true")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    from experiments.training_cli import given_flags

    args.given = given_flags(p, argv)
    return args


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code (0 done, 2 bad input)."""
    args = parse_args(argv)

    def work():
        from vlmrm_jax.envs.stacking.language import get_task

        out = Path(args.out)
        if args.resume and (args.schedule or args.expert_videos is not None or args.from_video):
            raise VlmrmError("--resume continues the reuse protocol; drop it with --schedule, --expert-videos and "
                             "--from-video")
        if args.schedule:
            run_schedule(args, out)
        elif args.expert_videos is not None:
            if args.expert_videos <= 0:
                raise VlmrmError(f"--expert-videos={args.expert_videos} must be a positive number of videos")
            out.mkdir(parents=True, exist_ok=True)
            (run_expert_success if args.detector == "truth" else run_expert_videos)(args, out)
        elif args.from_video:
            run_from_video(args, out)
        else:
            protocol = resume_args(args, out) if args.resume else args
            for t in protocol.tasks:
                get_task(t)
            repeated = next((t for t in protocol.tasks if protocol.tasks.count(t) > 1), None)
            if repeated:
                raise VlmrmError(f"--tasks lists {repeated} twice; each task of the protocol is learned once")
            if not args.resume:
                for arm in args.arms:
                    if (out / arm).exists():
                        raise VlmrmError(f"{out / arm} exists; pass a new --out (or remove it) to start the "
                                         f"protocol, or --resume to continue the one there")
                out.mkdir(parents=True, exist_ok=True)
            run_reuse(protocol, out, resume=args.resume)

    protocol_mode = not (args.schedule or args.expert_videos is not None or args.from_video)
    arms = f" --arms {' '.join(args.arms)}" if "arms" in args.given else ""
    return run_cli(work, resume_command=f"python -m experiments.stacking_reuse --out {args.out} --resume{arms}"
                   if protocol_mode else None)


if __name__ == "__main__":
    sys.exit(main())
