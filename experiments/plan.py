"""Try the subgoal planner alone: split an instruction into the block-stacking subgoals (Di Palo et al. 2023).

    python -m experiments.plan --instruction "stack the red object on the blue object"
    python -m experiments.plan --instruction "Stack all three objects" --model google/flan-t5-base

Prints each subgoal the planner produced and whether the subgoal detector knows it (it is one of the stacking
captions, vlmrm_jax.envs.stacking.language.SUBGOALS), then whether the whole plan is valid.
--time B also times the jitted generation + parsing for a batch of B instructions (the given ones, repeated): the
first call (compilation included) and the median of 10 steady-state calls. The default model is the
shipped offline planner stacking-t5-tiny (it knows only the stacking instructions); hub ids such as
google/flan-t5-base use the paper-style prompt (vlmrm_jax/planner/prompts/stacking.txt) unless --prompt says
otherwise.
"""

from __future__ import annotations

import argparse
import sys

from experiments import run_cli


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.plan", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instruction", action="append", required=True,
                   help="the instruction (repeat the flag to plan several in one batch)")
    p.add_argument("--model", default="stacking-t5-tiny",
                   help="shipped planner name, local T5 directory or hub id (default stacking-t5-tiny)")
    p.add_argument("--prompt", help="prompt template: a shipped name (stacking) or a file holding {instruction} "
                                    "(default: the model's own prompt.txt, else stacking)")
    p.add_argument("--max-new-tokens", type=int, help="tokens to generate (default: the model's planner.json, else 64)")
    p.add_argument("--time", type=int, metavar="B", help="also time jitted planning of a batch of B instructions")
    return p.parse_args(argv)


def run(args: argparse.Namespace, out=print):
    """Plans ``args.instruction`` and prints the result; returns the :class:`~vlmrm_jax.planner.PlanResult`.

    Raises:
        VlmrmError: an unknown or unloadable model, a bad prompt, an empty or too long instruction.
    """
    from vlmrm_jax.envs.stacking.language import MAX_SUBGOALS, SUBGOALS
    from vlmrm_jax.planner import SubgoalPlanner

    planner = SubgoalPlanner.load(args.model, subgoals=SUBGOALS, prompt=args.prompt, max_subgoals=MAX_SUBGOALS,
                                  max_new_tokens=args.max_new_tokens)
    result = planner.plan(args.instruction)
    for row, instruction in enumerate(result.instructions):
        out(f"instruction: {instruction}")
        out(f"output:      {result.texts[row]!r}")
        for i, (item, known) in enumerate(zip(result.items[row], result.known[row]), 1):
            out(f"  {i}. {item}  [{'known to the detector' if known else 'NOT known to the detector'}]")
        ids = result.subgoals[row, :result.count[row]].tolist()
        out(f"plan: {'valid' if result.valid[row] else 'INVALID'}; subgoal ids {ids}")
    if args.time is not None:
        first, steady = time_planning(planner, args.instruction, args.time)
        out(f"jitted planning of a batch of {args.time}: first call {first:.2f} s (compilation included), "
            f"steady state {steady * 1000:.1f} ms (median of 10)")
    return result


def time_planning(planner, instructions: list[str], batch_size: int) -> tuple[float, float]:
    """Seconds of the first jitted :meth:`~vlmrm_jax.planner.SubgoalPlanner.plan_tokens` call on a batch of
    ``batch_size`` (compilation included) and the median of 10 further calls.

    Raises:
        VlmrmError: if ``batch_size`` is not positive.
    """
    import time

    import jax
    import numpy as np

    from vlmrm_jax.errors import VlmrmError

    if batch_size <= 0:
        raise VlmrmError(f"--time {batch_size} must be a positive batch size, e.g. --time 16")
    batch = (instructions * batch_size)[:batch_size]
    input_ids, attention_mask = planner.tokenize(batch)
    run = jax.jit(planner.plan_tokens)
    start = time.perf_counter()
    jax.block_until_ready(run(planner.params, input_ids, attention_mask))
    first = time.perf_counter() - start
    times = []
    for _ in range(10):
        start = time.perf_counter()
        jax.block_until_ready(run(planner.params, input_ids, attention_mask))
        times.append(time.perf_counter() - start)
    return first, float(np.median(times))


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
