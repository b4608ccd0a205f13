"""The sparseness ladder of the stacking tasks: random-policy env steps per success (Di Palo et al. 2023, Fig. 2:
grasp ~1e1, stack X on Y ~1e3, triple stack > 1e6).

    python -m experiments.stacking_sparseness [--episodes 1024] [--num-envs 64] [--samples 2048] \\
        [--out docs/stacking_sparseness.json]

Counted: ``--episodes`` episodes of ``Stacking``'s episode length (10 actions) under the uniform random policy
(actions uniform in [-1, 1]^2), each episode ending at its task's first success as the env's ``done`` does. For a
task, steps per success = (actions taken until the first success, or the whole episode without one, summed over
episodes) / (episodes with a success): what an agent acting at random pays for one reward. One simulation serves
every task: the dynamics do not depend on the task, only where its episode would have ended.

Extrapolated (the triple stack is too rare to count on a CPU): from a two-stack and nothing held, the tower is
completed at once when the next pick grasps the free cube and the next place puts it on the stack:
``steps per tower ~= steps per two-stack / (p_grasp x p_tower_place)``, with steps per two-stack counted above (any
of the six pairs), p_grasp the counted probability that a random pick grasps one given cube, and p_tower_place
measured on ``--samples`` constructed states (a random two-stack, the third cube held, one random place). It ignores
towers completed after further attempts within the episode (which make towers up to a few times more frequent) and
towers whose two-stack forms too late in the episode (which make them rarer).

Writes the JSON (ours and the paper's figures per task, counts, component probabilities) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import run_cli

#: The paper's random-policy steps per success (Di Palo et al. 2023, Fig. 2; the triple stack is "> 1e6").
PAPER = {"grasp": 1e1, "stack": 1e3, "stack_all": 1e6}


def task_keys() -> list[str]:
    """The tasks whose steps per success are counted: 3 grasps, 6 two-stacks and "stack_all"."""
    from vlmrm_jax.envs.stacking.language import TASKS

    return [k for k, t in TASKS.items() if t.kind in ("grasp", "stack")] + ["stack_all"]


def make_rollout(env, num_envs: int, keys: list[str]):
    """``rollout(rng) -> (first [B, K] int32, picks [3] , grasps [3], places [B], stacks [B])`` for one episode of
    ``num_envs`` envs: ``first[b, k]`` the 1-based action at which task ``keys[k]`` first held (0: never);
    picks/grasps count random picks and the grasps of each cube among them."""
    from vlmrm_jax.envs.stacking import predicates

    def holds(data):
        return jnp.stack([predicates.task_success(data, k) for k in keys])

    def one(rng):
        rng, key = jax.random.split(rng)
        state = env.reset(key)

        def body(carry, t):
            state, first, rng = carry
            rng, key = jax.random.split(rng)
            nothing_held = state.info["held"] < 0
            state = env.step(state, jax.random.uniform(key, (2,), jnp.float32, -1.0, 1.0))
            now = holds(state.pipeline_state)
            first = jnp.where((first == 0) & now, t + 1, first)
            grasped = jax.nn.one_hot(state.info["held"], 3) * nothing_held
            return (state, first, rng), (nothing_held, grasped)

        (state, first, _), (picks, grasps) = jax.lax.scan(
            body, (state, jnp.zeros(len(keys), jnp.int32), rng), jnp.arange(env.episode_length))
        return first, jnp.sum(picks), jnp.sum(grasps, axis=0)

    return jax.jit(lambda rng: jax.vmap(one)(jax.random.split(rng, num_envs)))


def make_tower_place(env):
    """``place(rng) -> bool []``: a random two-stack (random order, random position), the third cube held over
    the basket, one random place; True if a tower stands afterwards."""
    from vlmrm_jax.envs.stacking import predicates
    from vlmrm_jax.envs.stacking.env import sample_start_positions
    from vlmrm_jax.envs.stacking.scene import CUBE_HALF, GRIPPER_HOME

    def place(rng):
        k_order, k_pos, k_act = jax.random.split(rng, 3)
        bottom, top, held = jax.random.permutation(k_order, 3)
        spots = sample_start_positions(k_pos)
        pos = spots.at[top].set(spots[bottom] + jnp.array([0.0, 0.0, 2 * CUBE_HALF]))
        state = env.state_from_positions(pos, held, jnp.asarray(GRIPPER_HOME, jnp.float32))
        state = env.step(state, jax.random.uniform(k_act, (2,), jnp.float32, -1.0, 1.0))
        return jnp.any(predicates.tower_mask(state.pipeline_state))

    return jax.jit(jax.vmap(place))


def run(episodes: int, num_envs: int, samples: int, seed: int, out: str) -> dict:
    """Measures the ladder (see the module docstring), writes ``out`` and returns the results."""
    from tqdm import tqdm

    from vlmrm_jax.envs.stacking.env import Stacking
    from vlmrm_jax.envs.stacking.language import get_task
    from vlmrm_jax.errors import VlmrmError

    if episodes <= 0 or num_envs <= 0 or samples < 0 or episodes % num_envs:
        raise VlmrmError(f"--episodes={episodes} must be a positive multiple of --num-envs={num_envs} "
                         f"(and --samples={samples} >= 0)")
    env = Stacking()
    keys = task_keys()
    rollout = make_rollout(env, num_envs, keys)
    rng = jax.random.PRNGKey(seed)
    firsts, picks, grasps = [], 0, np.zeros(3)
    start = time.perf_counter()
    print(f"compiling the rollout of {num_envs} envs ...", flush=True)
    for _ in tqdm(range(episodes // num_envs), desc="episodes x num_envs", unit="batch"):
        rng, key = jax.random.split(rng)
        first, p, g = jax.device_get(rollout(key))
        firsts.append(first)
        picks += int(p.sum())
        grasps += g.sum(0)
    first = np.concatenate(firsts)  # [episodes, K]
    rollout_s = time.perf_counter() - start
    length = env.episode_length
    steps = np.where(first > 0, first, length).sum(0)
    successes = (first > 0).sum(0)
    tasks = {}
    for k, key in enumerate(keys):
        kind = "stack_all" if key == "stack_all" else get_task(key).kind
        tasks[key] = {"kind": kind, "steps": int(steps[k]), "successes": int(successes[k]),
                      "steps_per_success": float(steps[k] / successes[k]) if successes[k] else None,
                      "paper": PAPER[kind]}

    # Components for the triple stack.
    p_grasp = float(grasps.sum() / max(3 * picks, 1))  # probability a random pick grasps one given cube
    stack_keys = [k for k in keys if get_task(k).kind == "stack"]
    any_stack = np.any(first[:, [keys.index(k) for k in stack_keys]] > 0, axis=1)
    first_stack = np.min(np.where(first[:, [keys.index(k) for k in stack_keys]] > 0,
                                  first[:, [keys.index(k) for k in stack_keys]], length + 1), axis=1)
    stack_steps = np.where(any_stack, first_stack, length).sum()
    steps_per_two_stack = float(stack_steps / max(any_stack.sum(), 1))
    p_tower_place = None
    if samples:
        print(f"compiling {samples} tower placements ...", flush=True)
        place = make_tower_place(env)
        hits = 0
        for i in tqdm(range(0, samples, num_envs), desc="tower placements", unit="batch"):
            rng, key = jax.random.split(rng)
            hits += int(np.sum(place(jax.random.split(key, min(num_envs, samples - i)))))
        p_tower_place = hits / samples
    extrapolated = (steps_per_two_stack / (p_grasp * p_tower_place)
                    if p_tower_place and p_grasp and any_stack.any() else None)
    tasks["stack_all"]["extrapolated_steps_per_success"] = extrapolated
    results = {"episodes": episodes, "episode_length": length, "num_envs": num_envs, "seed": seed,
               "random_pick_grasps_given_cube": p_grasp, "picks": picks,
               "steps_per_two_stack_any_pair": steps_per_two_stack, "two_stack_episodes": int(any_stack.sum()),
               "tower_place_samples": samples, "p_tower_place": p_tower_place, "tasks": tasks,
               "rollout_seconds": rollout_s, "load_average": os.getloadavg()[0],
               "command": f"python -m experiments.stacking_sparseness --episodes {episodes} --num-envs {num_envs} "
                          f"--samples {samples} --seed {seed} --out {out}"}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    return results


def format_table(results: dict) -> str:
    """Per task kind: ours (mean over the tasks of that kind) vs the paper's steps per success."""
    lines = [f"{'task':>22} {'successes':>9} {'steps/success':>14} {'paper':>7}"]
    for key, t in results["tasks"].items():
        ours = f"{t['steps_per_success']:.3g}" if t["steps_per_success"] else f"> {t['steps']}"
        lines.append(f"{key:>22} {t['successes']:>9} {ours:>14} {t['paper']:>7.0e}")
    tower = results["tasks"]["stack_all"].get("extrapolated_steps_per_success")
    if tower:
        lines.append(f"{'stack_all (extrap.)':>22} {'':>9} {tower:>14.3g} {'>1e6':>7}   = "
                     f"{results['steps_per_two_stack_any_pair']:.3g} / ({results['random_pick_grasps_given_cube']:.3g}"
                     f" x {results['p_tower_place']:.3g})")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.stacking_sparseness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=1024, help="random-policy episodes (a multiple of --num-envs)")
    p.add_argument("--num-envs", type=int, default=64, help="parallel envs")
    p.add_argument("--samples", type=int, default=2048, help="constructed tower placements (0: skip)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", default="docs/stacking_sparseness.json", help="JSON to write")
    args = p.parse_args(argv)

    def work():
        results = run(args.episodes, args.num_envs, args.samples, args.seed, args.out)
        print(format_table(results))
        print(f"wrote {args.out} (load average {results['load_average']:.1f})")

    return run_cli(work)


if __name__ == "__main__":
    raise SystemExit(main())
