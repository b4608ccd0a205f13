"""Train the offline subgoal planner: a small T5 from scratch on phrasings of the block-stacking instructions.

    python -m experiments.train_planner --out runs/planner --export vlmrm_jax/models/weights/stacking-t5-tiny

Pairs (instruction -> the task's canonical subgoal list, in the captions of vlmrm_jax.envs.stacking.language) are
generated from phrasing templates (PHRASINGS below: the paper's instructions "Stack the red object on the blue
object", "Stack all three objects", "Grasp the red object" and many others), nouns (object, block, cube, box) and
surface variants (capital letter, final punctuation, "please"). Whole templates (HELD_OUT_TEMPLATES) and some colour
orders (HELD_OUT_COLOURS: blue on green; the tower green-blue-red) never appear in training. A SentencePiece
tokenizer (BPE) is trained on the training pairs only. The model reads the bare instruction (prompt "{instruction}").
A tower named by one cube only ("build a tower with red at the bottom") is completed in colour order (red, green,
blue) for the cubes not named.

Writes into --out: config.json, tokenizer/, checkpoints/ (orbax; --resume continues a killed run), metrics.jsonl,
model/ (the planner in the Hugging Face T5 layout with planner.json, subgoals.json, prompt.txt and training.json)
and eval.json: exact-match accuracy of the whole subgoal list per task kind on seen phrasings, held-out templates,
held-out colour orders and both. --export DIR also copies model/ to DIR.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from experiments import run_cli
from vlmrm_jax.errors import VlmrmError

#: The from-scratch architecture of the shipped planner.
SCRATCH_DEFAULTS = dict(d_model=128, d_kv=32, d_ff=256, layers=2, heads=4, vocab_size=300)
#: Static lengths (tokens) of the shipped planner: instruction, generated output.
MAX_INPUT_TOKENS, MAX_NEW_TOKENS = 32, 44

NOUNS = ("object", "block", "cube", "box")
PLURALS = {"object": "objects", "block": "blocks", "cube": "cubes", "box": "boxes"}

#: (kind, template). Slots: {c} grasped colour; {top}, {bottom} a two-stack; {b}, {m}, {t} a tower from the bottom;
#: {n} a noun, {ns} its plural. Kinds: grasp, stack, tower (all cubes named), tower_bottom / tower_top (one cube
#: named, the others in colour order), stack_all.
PHRASINGS: tuple[tuple[str, str], ...] = (
    ("grasp", "grasp the {c} {n}"), ("grasp", "pick up the {c} {n}"), ("grasp", "grab the {c} {n}"),
    ("grasp", "take the {c} {n}"), ("grasp", "lift the {c} {n}"), ("grasp", "hold the {c} {n}"),
    ("grasp", "take hold of the {c} {n}"), ("grasp", "seize the {c} {n}"),
    ("grasp", "the robot should grasp the {c} {n}"), ("grasp", "can you pick up the {c} {n}"),
    ("grasp", "grasp {c}"), ("grasp", "pick up {c}"),
    ("grasp", "pick the {c} {n} up"), ("grasp", "grab hold of the {c} {n}"),
    ("stack", "stack the {top} {n} on the {bottom} {n}"), ("stack", "stack the {top} {n} on top of the {bottom} {n}"),
    ("stack", "put the {top} {n} on the {bottom} {n}"), ("stack", "place the {top} {n} on top of the {bottom} {n}"),
    ("stack", "set the {top} {n} on the {bottom} one"), ("stack", "move the {top} {n} onto the {bottom} {n}"),
    ("stack", "stack {top} on {bottom}"), ("stack", "put {top} on top of {bottom}"),
    ("stack", "the {top} {n} goes on the {bottom} {n}"), ("stack", "cover the {bottom} {n} with the {top} {n}"),
    ("stack", "can you stack the {top} {n} on the {bottom} {n}"), ("stack", "place the {top} one on the {bottom} one"),
    ("stack", "lay the {top} {n} on top of the {bottom} {n}"),
    ("stack", "put the {top} {n} onto the {bottom} one"), ("stack", "pile the {top} {n} on the {bottom} {n}"),
    ("stack", "set {top} on top of {bottom}"),
    ("tower", "build a tower with {b} at the bottom, {m} in the middle and {t} on top"),
    ("tower", "build a tower with {t} on top, {m} in the middle and {b} at the bottom"),
    ("tower", "stack the {m} {n} on the {b} {n}, then the {t} {n} on the {m} {n}"),
    ("tower", "put {m} on {b}, then {t} on {m}"),
    ("tower", "make a tower from bottom to top: {b}, {m}, {t}"),
    ("tower", "make a tower from top to bottom: {t}, {m}, {b}"),
    ("tower", "stack the three {ns} with {b} at the bottom, {m} in the middle and {t} on top"),
    ("tower", "place the {m} {n} on the {b} {n} and then the {t} {n} on the {m} {n}"),
    ("tower", "build a stack with {b} at the bottom, {m} in the middle and {t} at the top"),
    ("tower", "put the {m} {n} on the {b} {n}, then put the {t} {n} on the {m} {n}"),
    ("tower_bottom", "build a tower with {b} at the bottom"),
    ("tower_top", "make a tower with the {t} {n} on top"),
    ("tower_top", "stack all three {ns} with {t} on top"),
    ("stack_all", "stack all three objects"), ("stack_all", "stack all the {ns}"),
    ("stack_all", "build a tower of all three {ns}"), ("stack_all", "put all three {ns} in one stack"),
    ("stack_all", "pile up all the {ns}"), ("stack_all", "make one tower out of the three {ns}"),
    ("stack_all", "stack every {n}"),
    ("stack_all", "build a tower with all three {ns}"), ("stack_all", "stack the three {ns} on each other"),
)

#: Templates never seen in training (evaluated as "held-out phrasings").
HELD_OUT_TEMPLATES = frozenset({
    "pick the {c} {n} up", "grab hold of the {c} {n}",
    "put the {top} {n} onto the {bottom} one", "pile the {top} {n} on the {bottom} {n}", "set {top} on top of {bottom}",
    "build a stack with {b} at the bottom, {m} in the middle and {t} at the top",
    "put the {m} {n} on the {b} {n}, then put the {t} {n} on the {m} {n}",
    "stack all three {ns} with {t} on top",
    "build a tower with all three {ns}", "stack the three {ns} on each other",
})

#: Colour orders never seen in training: (top, bottom) of a stack, (bottom, middle, top) of a tower.
HELD_OUT_COLOURS = frozenset({("blue", "green"), ("green", "blue", "red")})

SPLITS = ("seen", "held-out template", "held-out colours", "held-out both")


def _task_key(kind: str, colours: tuple[str, ...]) -> str:
    return {"grasp": "grasp_{}", "stack": "stack_{}_on_{}", "tower": "tower_{}_{}_{}",
            "stack_all": "stack_all"}[kind].format(*colours)


def _fillings(kind: str) -> list[tuple[dict, tuple[str, ...]]]:
    """Every colour assignment of a template kind: (slot values, the task's colours)."""
    from vlmrm_jax.envs.stacking.language import COLOURS

    if kind == "grasp":
        return [({"c": c}, (c,)) for c in COLOURS]
    if kind == "stack":
        return [({"top": t, "bottom": b}, (t, b)) for t, b in itertools.permutations(COLOURS, 2)]
    if kind == "tower":
        return [({"b": b, "m": m, "t": t}, (b, m, t)) for b, m, t in itertools.permutations(COLOURS, 3)]
    if kind == "tower_bottom":
        return [({"b": b}, (b,) + tuple(c for c in COLOURS if c != b)) for b in COLOURS]
    if kind == "tower_top":
        return [({"t": t}, tuple(c for c in COLOURS if c != t) + (t,)) for t in COLOURS]
    return [({}, ())]


def _surface(text: str, rng: np.random.Generator) -> str:
    if rng.random() < 0.15:
        text = "please " + text
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text + str(rng.choice(["", "", ".", "!"]))


def _fill_all() -> list[dict]:
    """Every (template, colour assignment, noun) once, before surface variants: dicts with text, task (key), kind
    (grasp, stack, tower, stack_all) and split (one of :data:`SPLITS`)."""
    from vlmrm_jax.envs.stacking.language import get_task

    out = []
    for kind, template in PHRASINGS:
        nouns = NOUNS if "{n" in template else (None,)
        for (slots, colours), noun in itertools.product(_fillings(kind), nouns):
            task = get_task(_task_key("tower" if kind.startswith("tower") else kind, colours))
            split = SPLITS[int(template in HELD_OUT_TEMPLATES) + 2 * int(task.colours in HELD_OUT_COLOURS)]
            out.append(dict(text=template.format(**slots, n=noun or "", ns=PLURALS.get(noun or "", "")),
                            task=task.key, kind="stack_all" if task.key == "stack_all" else task.kind, split=split))
    return out


def examples(seed: int) -> list[dict]:
    """Every (template, colour assignment, noun) once, as an instruction with a surface variant drawn with
    ``seed`` (capital letter, final punctuation, "please"): dicts with instruction, task, kind and split."""
    rng = np.random.default_rng(seed)
    return [dict(e, instruction=_surface(e["text"], rng)) for e in _fill_all()]


def training_pairs(num_pairs: int, seed: int) -> list[dict]:
    """``num_pairs`` examples drawn with replacement from the seen split, each with a fresh surface variant."""
    pool = [e for e in _fill_all() if e["split"] == "seen"]
    rng = np.random.default_rng([seed, 1])
    return [dict(pool[i], instruction=_surface(pool[i]["text"], rng)) for i in rng.integers(0, len(pool), num_pairs)]


def target_text(task_key: str) -> str:
    """The canonical output of a task: its subgoal captions, each ending with '.'."""
    from vlmrm_jax.envs.stacking.language import get_task
    from vlmrm_jax.planner import format_subgoals

    return format_subgoals(get_task(task_key).subgoals)


def exact_match(planner, params, items: list[dict], batch_size: int = 64) -> np.ndarray:
    """bool [N]: the planner's parsed subgoal list equals the task's canonical list (valid output, same ids)."""
    import jax

    from vlmrm_jax.envs.stacking.language import get_task, subgoal_id

    run = jax.jit(planner.plan_tokens)
    hits = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        padded = chunk + [chunk[-1]] * (batch_size - len(chunk))  # one compiled shape
        ids, mask = planner.tokenize([e["instruction"] for e in padded])
        plan = jax.device_get(run(params, ids, mask))
        for row, e in enumerate(chunk):
            want = [subgoal_id(c) for c in get_task(e["task"]).subgoals]
            got = list(plan.subgoals[row, :plan.count[row]])
            hits.append(bool(plan.valid[row]) and got == want)
    return np.array(hits)


def accuracy_table(items: list[dict], hits: np.ndarray) -> dict:
    """{kind: {split: {"accuracy", "n"}}} over ``items`` (with ``hits`` from :func:`exact_match`)."""
    table: dict = {}
    for e, hit in zip(items, hits):
        cell = table.setdefault(e["kind"], {}).setdefault(e["split"], [0, 0])
        cell[0] += int(hit)
        cell[1] += 1
    return {kind: {split: {"accuracy": round(c[0] / c[1], 4), "n": c[1]} for split, c in splits.items()}
            for kind, splits in table.items()}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.train_planner", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run directory (must be empty unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--export", metavar="DIR", help="also copy the trained planner directory here (replacing it)")
    p.add_argument("--num-pairs", type=int, default=20000, help="training pairs to draw from the seen phrasings")
    p.add_argument("--seed", type=int, default=0, help="data, initialisation and batch-order seed")
    model = p.add_argument_group("model")
    for name, value in SCRATCH_DEFAULTS.items():
        model.add_argument(f"--{name.replace('_', '-')}", type=int, default=value,
                           help=f"{name.replace('_', ' ')} (default {value}; layers: encoder and decoder each)")
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=int, default=800)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    train.add_argument("--warmup-steps", type=int, default=50)
    train.add_argument("--eval-every", type=int, default=400, help="steps between quick held-out evaluations")
    train.add_argument("--checkpoint-every", type=float, default=120.0, metavar="SECONDS")
    return p.parse_args(argv)


def run(args: argparse.Namespace, log=print) -> dict:
    """Everything the CLI does; returns eval.json's content.

    Raises:
        VlmrmError: bad flags, a non-empty --out without --resume, --resume without a run, NaN in training.
    """
    import jax

    from vlmrm_jax.atomic import atomic_directory
    from vlmrm_jax.envs.stacking.language import MAX_SUBGOALS, SUBGOALS
    from vlmrm_jax.planner import SubgoalPlanner, T5, T5Architecture
    from vlmrm_jax.planner.loading import save_t5
    from vlmrm_jax.planner.planner import PLANNER_FILE, PROMPT_FILE, SUBGOALS_FILE
    from vlmrm_jax.planner.prompt import PLACEHOLDER
    from vlmrm_jax.planner.t5 import init_params
    from vlmrm_jax.planner.tokenizer import build_t5_tokenizer
    from vlmrm_jax.planner.training import TrainConfig, fit, tokenize_pairs
    from vlmrm_jax.rl.checkpoint import save_json_atomic
    from transformers import T5TokenizerFast

    out = Path(args.out)
    if args.resume:
        if not (out / "config.json").exists():
            raise VlmrmError(f"--resume given but {out} holds no run (config.json missing); drop --resume")
        saved = json.loads((out / "config.json").read_text())["args"]
        args = argparse.Namespace(**dict(saved, resume=True, export=args.export or saved.get("export")))
    elif out.exists() and any(out.iterdir()):
        raise VlmrmError(f"--out {out} is not empty; pass a new directory, or --resume to continue that run")
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                         warmup_steps=args.warmup_steps, seed=args.seed, eval_every=args.eval_every,
                         checkpoint_every_s=args.checkpoint_every)
    if args.num_pairs <= 0:
        raise VlmrmError(f"--num-pairs={args.num_pairs} must be a positive integer")
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m experiments.train_planner " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if not args.resume:
        save_json_atomic(out / "config.json", {"args": vars(args), "command": command})

    train = training_pairs(args.num_pairs, args.seed)
    targets = [target_text(e["task"]) for e in train]
    if (out / "tokenizer" / "tokenizer.json").exists():
        tokenizer = T5TokenizerFast.from_pretrained(out / "tokenizer")
    else:
        corpus = sorted(set(e["instruction"] for e in train)) + sorted(set(targets))
        tokenizer = build_t5_tokenizer(corpus, out / "tokenizer", args.vocab_size)
    log(f"{len(train)} training pairs; tokenizer of {len(tokenizer)} pieces")
    arch = T5Architecture(vocab_size=len(tokenizer), d_model=args.d_model, d_kv=args.d_kv, d_ff=args.d_ff,
                          num_layers=args.layers, num_decoder_layers=args.layers, num_heads=args.heads)
    pairs = tokenize_pairs(tokenizer, [e["instruction"] for e in train], targets, MAX_INPUT_TOKENS, MAX_NEW_TOKENS)
    model = T5(arch)
    params = init_params(arch, args.seed)
    # transformers' T5 initialisation gives the untied output head unit-variance weights, i.e. initial logits of
    # standard deviation sqrt(d_model) (a first loss of ~15 nats); scaled by d_model^-1/2 they start near uniform.
    params = dict(params, lm_head={"kernel": params["lm_head"]["kernel"] * arch.d_model ** -0.5})
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    log(f"T5 from scratch: d_model {arch.d_model}, {arch.num_layers}+{arch.num_decoder_layers} layers, "
        f"{arch.num_heads} heads, d_ff {arch.d_ff} (gated GELU), {n_params:,} parameters")

    def planner_for(weights) -> SubgoalPlanner:
        return SubgoalPlanner(model, weights, tokenizer, subgoals=SUBGOALS, prompt=PLACEHOLDER,
                              max_input_tokens=MAX_INPUT_TOKENS, max_new_tokens=MAX_NEW_TOKENS,
                              max_subgoals=MAX_SUBGOALS, name="stacking-t5-tiny (training)")

    evaluation = examples(seed=12345)
    quick = [evaluation[i] for i in np.random.default_rng(7).choice(len(evaluation), 128, replace=False)]

    def quick_eval(weights) -> dict:
        hits = exact_match(planner_for(weights), weights, quick)
        held = np.array([e["split"] != "seen" for e in quick])
        return {"exact_match_seen": float(hits[~held].mean()), "exact_match_held_out": float(hits[held].mean())}

    started = time.time()
    params, records = fit(model, params, pairs, config, out, resume=args.resume, evaluate=quick_eval, log=log)
    logged = [r for r in records if "steps_per_s" in r]  # every session's steps, compilation included
    train_seconds = sum((r["step"] - p) / r["steps_per_s"] for p, r in zip([0] + [r["step"] for r in logged], logged))

    log(f"evaluating exact match on {len(evaluation)} phrasings")
    hits = exact_match(planner_for(params), params, evaluation)
    table = accuracy_table(evaluation, hits)
    result = {"exact_match": table, "evaluated": len(evaluation), "train_seconds": round(train_seconds, 1),
              "final_loss": next(r["loss"] for r in reversed(records) if "loss" in r)}
    save_json_atomic(out / "eval.json", result)

    model_dir = out / "model"
    with atomic_directory(model_dir) as tmp:
        save_t5(tmp, arch, params, tokenizer)
        (tmp / PLANNER_FILE).write_text(json.dumps(dict(max_input_tokens=MAX_INPUT_TOKENS,
                                                        max_new_tokens=MAX_NEW_TOKENS,
                                                        max_subgoals=MAX_SUBGOALS), indent=2) + "\n")
        (tmp / SUBGOALS_FILE).write_text(json.dumps(list(SUBGOALS), indent=2) + "\n")
        (tmp / PROMPT_FILE).write_text("# stacking-t5-tiny reads the bare instruction (it was trained without a "
                                       "prompt).\n" + PLACEHOLDER + "\n")
        (tmp / "training.json").write_text(json.dumps({
            "command": json.loads((out / "config.json").read_text())["command"],
            "args": {k: v for k, v in vars(args).items() if k not in ("out", "export", "resume")},
            "parameters": n_params, "training_pairs": len(train), "vocab_size": len(tokenizer),
            "held_out_templates": sorted(HELD_OUT_TEMPLATES), "held_out_colours": sorted(HELD_OUT_COLOURS),
            **result}, indent=2) + "\n")
    log(f"wrote {model_dir} ({time.time() - started:.0f} s this session)")
    if args.export:
        export = Path(args.export)
        if export.exists() and any(export.iterdir()) and not (export / "config.json").is_file():
            raise VlmrmError(f"--export {export} exists and does not hold a model (no config.json); choose an empty "
                             f"or new directory")
        with atomic_directory(export) as tmp:
            shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        log(f"exported the planner to {export}")
    for kind, splits in table.items():
        log(f"{kind:10s} " + "  ".join(f"{s}: {v['accuracy']:.3f} (n={v['n']})" for s, v in splits.items()))
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: run(args), resume_command=f"python -m experiments.train_planner --out {args.out} --resume")


if __name__ == "__main__":
    sys.exit(main())
