"""Skill scheduling (Di Palo et al. 2023, section 4.2): learned subgoals are skills, chained for a new instruction.

A skill is the subgoal-conditioned policy of the task run that learned that subgoal (:class:`SkillLibrary`: subgoal
id -> that run's policy weights). For an instruction never trained as a task, the planner decomposes it into
subgoals; if every one is a known skill, :class:`SkillScheduler` plays it: each skill acts until the detector sees
its subgoal, then the next one starts (collect & infer's own advancing rule, :meth:`CollectInfer.advance`), with
no further training. Success is the env's ground truth; :func:`failure_modes` says why the other episodes failed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State

from vlmrm_jax.agent.collect_infer import CollectInfer, CollectInferConfig, Trajectory
from vlmrm_jax.errors import VlmrmError


class SkillLibrary:
    """Learned skills: for every subgoal id, the policy weights that pursue it, and the task run they came from.

    Args:
        captions: the S subgoal captions (for messages), in id order.
    """

    def __init__(self, captions: Sequence[str]):
        self.captions = tuple(captions)
        self.params: dict[int, Any] = {}
        self.source: dict[int, str] = {}

    def add(self, subgoals: Sequence[int], params: Any, source: str) -> None:
        """Makes ``params`` (a CollectInfer policy trained on a plan holding ``subgoals``) the skill of each of
        those subgoals (a later run replaces an earlier one's skill)."""
        for s in subgoals:
            self.params[int(s)] = params
            self.source[int(s)] = source

    @property
    def known(self) -> list[int]:
        """The subgoal ids with a skill, sorted."""
        return sorted(self.params)

    def check_plan(self, plan: Sequence[int], instruction: str, fix: str) -> None:
        """Raises VlmrmError (one line) when a subgoal of ``plan`` has no skill; ``fix`` says how to learn it."""
        missing = [self.captions[int(s)] for s in plan if int(s) not in self.params]
        if missing:
            raise VlmrmError(f"{instruction!r} needs subgoals that are not learned skills: {'; '.join(missing)} "
                             f"(known: {'; '.join(self.captions[s] for s in self.known) or 'none'}); {fix}")

    def stacked(self, plan: Sequence[int]) -> tuple[Any, np.ndarray]:
        """The distinct skills ``plan`` uses, stacked (leaves [R, ...]), and int32 [S] the row of each subgoal's
        skill (-1 where none is used)."""
        sources = sorted({self.source[int(s)] for s in plan})
        row = np.full(len(self.captions), -1, np.int32)
        for s in plan:
            row[int(s)] = sources.index(self.source[int(s)])
        first = {self.source[s]: self.params[s] for s in map(int, plan)}
        params = jax.tree.map(lambda *x: jnp.stack(x), *[first[src] for src in sources])
        return params, row


class SkillScheduler(CollectInfer):
    """Plays a plan of known skills: the greedy policy of the current subgoal's skill acts until the detector sees
    that subgoal, then the next subgoal's skill acts.

    Args:
        env, config, subgoal_embeddings, plan, plan_length, detect_fn, success_fn, embed_fn: as
            :class:`CollectInfer` (``config`` sizes the policy network as the skills were trained; ``use_subgoals``
            must be True).
        skills: the library; every subgoal of the plan must have a skill.
        instruction: for the error message.
        fix: what to do about a missing skill (e.g. the command that trains it).

    Raises:
        VlmrmError: a subgoal of the plan that is not a known skill (one line naming it and ``fix``), or the
            errors of :class:`CollectInfer`.
    """

    def __init__(self, env: Env, config: CollectInferConfig, *, subgoal_embeddings: jax.Array, plan,
                 plan_length: int, skills: SkillLibrary, instruction: str, fix: str,
                 detect_fn: Callable[[State], jax.Array] | None = None,
                 success_fn: Callable[[State], jax.Array] | None = None,
                 embed_fn: Callable[[State], jax.Array] | None = None):
        if not config.use_subgoals:
            raise VlmrmError("skill scheduling advances on the detector; use a config with use_subgoals=True")
        plan = np.asarray(plan, np.int32).reshape(-1)
        skills.check_plan(plan[:plan_length], instruction, fix)
        super().__init__(env, config, subgoal_embeddings=subgoal_embeddings, plan=plan, plan_length=plan_length,
                         detect_fn=detect_fn, success_fn=success_fn, embed_fn=embed_fn)
        self.skill_params, row = skills.stacked(plan[:plan_length])
        self.skill_row = jnp.asarray(row)

    def policy_output(self, params, subgoal: jax.Array, obs: jax.Array) -> jax.Array:
        """The head output of each subgoal's own skill: ``params`` are the stacked skills (:attr:`skill_params`)."""
        lead = subgoal.shape
        subgoal, obs = subgoal.reshape(-1), obs.reshape((-1, obs.shape[-1]))
        emb = self.subgoal_embeddings[subgoal]
        outs = jax.vmap(lambda p: self.network.apply(p, emb, obs))(params)  # [R, B, out]
        out = jnp.take_along_axis(outs, jnp.maximum(self.skill_row[subgoal], 0)[None, :, None], axis=0)[0]
        return out.reshape(lead + out.shape[-1:])

    def run(self, key: jax.Array, num_episodes: int) -> Trajectory:
        """Plays ``num_episodes`` greedy episodes (no exploration) from random starts; the Trajectory keeps the
        states for :func:`failure_modes`."""
        return self.collect(self.skill_params, key, False, num_envs=num_episodes, keep_states=True)


def failure_modes(traj: Trajectory, truth: np.ndarray, plan: Sequence[int], captions: Sequence[str]) -> dict:
    """Why each scheduled episode ended as it did, by the env's ground truth.

    Args:
        traj: from :meth:`SkillScheduler.run` (leaves [T, N, ...]).
        truth: bool [T, N, S], the ground-truth subgoals of each state after each action (``env.subgoal_truth``).
        plan: the plan's subgoal ids.
        captions: the S captions.

    Returns:
        ``{"success_rate", "episodes", "modes": {mode: count}}``, one mode per episode, the first that applies:
        "success" (the task held, ground truth); "false detection of <subgoal>" (the detector moved on while the
        subgoal did not hold); "<subgoal> reached but not detected" (the episode ended while the pursued subgoal
        held at some step, unseen); "all subgoals detected, task not held" (e.g. a tower that fell later);
        "<subgoal> never reached" (the skill failed).
    """
    alive, stage = np.asarray(traj.alive), np.asarray(traj.stage)
    subgoal, success = np.asarray(traj.subgoal), np.asarray(traj.success).any(axis=0)
    truth = np.asarray(truth, bool)
    before = np.concatenate([np.zeros_like(stage[:1]), stage[:-1]])
    hit = (stage > before) & alive
    plan = [int(p) for p in plan]
    modes = Counter()
    for n in range(alive.shape[1]):
        if success[n]:
            modes["success"] += 1
            continue
        false = [t for t in np.flatnonzero(hit[:, n]) if not truth[t, n, subgoal[t, n]]]
        final = int(stage[alive[:, n], n][-1]) if alive[:, n].any() else 0
        if false:
            modes[f"false detection of {captions[subgoal[false[0], n]]!r}"] += 1
        elif final >= len(plan):
            modes["all subgoals detected, task not held"] += 1
        elif truth[alive[:, n] & (before[:, n] >= final), n, plan[final]].any():
            modes[f"{captions[plan[final]]!r} reached but not detected"] += 1
        else:
            modes[f"{captions[plan[final]]!r} never reached"] += 1
    return {"success_rate": float(success.mean()), "episodes": int(alive.shape[1]), "modes": dict(modes)}


__all__ = ["SkillLibrary", "SkillScheduler", "failure_modes"]
