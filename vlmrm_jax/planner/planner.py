"""The subgoal planner of Di Palo et al. 2023 (section 3.2): a T5 turns an instruction into subgoal captions.

    planner = SubgoalPlanner.load("stacking-t5-tiny")                 # or "google/flan-t5-base", subgoals=SUBGOALS
    result = planner.plan(["Stack the red object on the blue object"])
    result.subgoals   # int32 [1, M]: [[0, 4, -1, -1]] (ids into planner.subgoals), result.count [1], result.valid [1]

Inside a jitted program (an agent's episode loop, once per episode and never per step), use the pure
:meth:`SubgoalPlanner.plan_tokens` on instructions tokenised beforehand with :meth:`SubgoalPlanner.tokenize`;
nothing leaves the device. The planner knows only the captions it is given (``subgoals``): its output is parsed into
ids into them, and an output that is not a list of those captions is flagged (``valid`` False) and reported with a
warning that names the text, never silently dropped.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vlmrm_jax.errors import ModelNotFoundError, VlmrmError, check_positive_int
from vlmrm_jax.planner.generation import greedy_generate
from vlmrm_jax.planner.loading import load_t5
from vlmrm_jax.planner.parsing import SubgoalTable, parse_text, parse_tokens
from vlmrm_jax.planner.prompt import format_prompt, load_prompt, parse_template
from vlmrm_jax.planner.t5 import T5

#: The planner used when none is named: FLAN-T5 base (Chung et al. 2022), as in Di Palo et al. 2023.
DEFAULT_PLANNER = "google/flan-t5-base"
#: The prompt template for models that ship none (a name in ``vlmrm_jax/planner/prompts/``).
DEFAULT_PROMPT = "stacking"
#: A model directory's planner files: static lengths (JSON), known captions (JSON list), prompt template.
PLANNER_FILE, SUBGOALS_FILE, PROMPT_FILE = "planner.json", "subgoals.json", "prompt.txt"
#: Static lengths for models without a ``planner.json``: prompt tokens, generated tokens, subgoals per plan.
DEFAULT_LENGTHS = dict(max_input_tokens=384, max_new_tokens=64, max_subgoals=8)


class SubgoalPlan(NamedTuple):
    """Plans for B instructions, as device arrays (what :meth:`SubgoalPlanner.plan_tokens` returns).

    Attributes:
        subgoals: int32 [B, M], ids into the planner's ``subgoals`` captions in the order to reach them, -1 after the
            last. For an invalid row, the subgoals read before the fault.
        count: int32 [B], subgoals per row.
        valid: bool [B], the output was a list of 1 to M known captions (False: unparsable or unknown subgoal).
        tokens: int32 [B, T], the generated tokens (for decoding and messages).
    """

    subgoals: jax.Array
    count: jax.Array
    valid: jax.Array
    tokens: jax.Array


class PlanResult(NamedTuple):
    """What :meth:`SubgoalPlanner.plan` returns: the arrays of :class:`SubgoalPlan` as numpy, and the text.

    Attributes:
        instructions: the B instructions.
        texts: the decoded output of each.
        items: per row, the subgoal texts read from the output (split at ``"."``).
        known: per row and item, whether the item is one of the planner's subgoal captions.
        subgoals, count, valid: as in :class:`SubgoalPlan` (numpy int32 [B, M], int32 [B], bool [B]).
    """

    instructions: tuple[str, ...]
    texts: tuple[str, ...]
    items: tuple[tuple[str, ...], ...]
    known: tuple[tuple[bool, ...], ...]
    subgoals: np.ndarray
    count: np.ndarray
    valid: np.ndarray


class SubgoalPlanner:
    """A T5 planner with its tokenizer, prompt, subgoal vocabulary and static lengths.

    Args:
        model: the T5 module; params: its weights; tokenizer: its T5 tokenizer.
        subgoals: the captions the planner may output (ids are indices; e.g. the stacking ``SUBGOALS``).
        prompt: the template text, holding ``{instruction}`` once (see :mod:`vlmrm_jax.planner.prompt`).
        max_input_tokens: L, tokens per prompt (static; longer prompts are refused, shorter ones padded).
        max_new_tokens: T, tokens generated per plan (static).
        max_subgoals: M, subgoals per plan (static: the width of the id array).
        name: where it was loaded from.

    Raises:
        VlmrmError: bad subgoal captions or lengths (see :meth:`SubgoalTable.build`).
    """

    def __init__(self, model: T5, params: Any, tokenizer, *, subgoals: Sequence[str], prompt: str,
                 max_input_tokens: int, max_new_tokens: int, max_subgoals: int, name: str = "T5"):
        for key, value in dict(max_input_tokens=max_input_tokens, max_new_tokens=max_new_tokens,
                               max_subgoals=max_subgoals).items():
            check_positive_int(key, value)
        self.model, self.params, self.tokenizer = model, params, tokenizer
        self.prompt = parse_template(prompt)
        self.max_input_tokens, self.max_new_tokens, self.max_subgoals = max_input_tokens, max_new_tokens, max_subgoals
        self.name = name
        self.table = SubgoalTable.build(subgoals, tokenizer)
        self._plan_jit = jax.jit(self.plan_tokens)

    @property
    def subgoals(self) -> tuple[str, ...]:
        """The known subgoal captions, in id order."""
        return self.table.captions

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_PLANNER, *, subgoals: Sequence[str] | None = None,
             prompt: str | Path | None = None, max_input_tokens: int | None = None,
             max_new_tokens: int | None = None, max_subgoals: int | None = None) -> SubgoalPlanner:
        """Loads a planner by shipped name (``"stacking-t5-tiny"``), local T5 directory or hub id.

        Settings not given are read from the model's own files when it has them (``planner.json``,
        ``subgoals.json``, ``prompt.txt``; the shipped planners do), else: ``prompt`` the shipped
        :data:`DEFAULT_PROMPT` template, lengths :data:`DEFAULT_LENGTHS`; ``subgoals`` must then be given.

        Args:
            name_or_path: shipped name, directory (Flax or PyTorch T5 weights, T5 tokenizer) or hub id
                (e.g. ``"google/flan-t5-base"``, ``-small``, ``-large``).
            subgoals: the captions the planner may output, in id order.
            prompt: a shipped template name or a template file (see :mod:`vlmrm_jax.planner.prompt`).
            max_input_tokens, max_new_tokens, max_subgoals: static lengths (see the class).

        Raises:
            ModelNotFoundError: the model cannot be loaded (one line: what was tried, why, what to do), or its
                planner files are corrupt.
            VlmrmError: no ``subgoals`` known for a model without ``subgoals.json``; a bad prompt.
        """
        parts = load_t5(name_or_path)
        label = str(name_or_path)
        settings = dict(DEFAULT_LENGTHS)
        stored = _read_json(parts.read_text(PLANNER_FILE), PLANNER_FILE, label)
        if stored is not None:
            settings.update({k: v for k, v in stored.items() if k in DEFAULT_LENGTHS})
        settings.update({k: v for k, v in dict(max_input_tokens=max_input_tokens, max_new_tokens=max_new_tokens,
                                                max_subgoals=max_subgoals).items() if v is not None})
        if subgoals is None:
            subgoals = _read_json(parts.read_text(SUBGOALS_FILE), SUBGOALS_FILE, label)
            if subgoals is None:
                raise VlmrmError(f"planner {label!r} has no {SUBGOALS_FILE}; pass subgoals=[...] (the captions the "
                                 f"detector knows, e.g. vlmrm_jax.envs.stacking.language.SUBGOALS)")
        if prompt is not None:
            template = load_prompt(prompt)
        else:
            text = parts.read_text(PROMPT_FILE)
            template = parse_template(text, f"{PROMPT_FILE} of {label!r}") if text else load_prompt(DEFAULT_PROMPT)
        return cls(T5(parts.arch), parts.params, parts.tokenizer, subgoals=subgoals, prompt=template,
                   name=label, **settings)

    def tokenize(self, instructions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The prompts of ``instructions``, tokenised and padded to :attr:`max_input_tokens`.

        Returns:
            (input_ids, attention_mask): int32 [B, L] each.

        Raises:
            VlmrmError: a bare string, no instructions, an empty or non-text instruction, or a prompt longer than
                L tokens (the message names the instruction, its length and the fix).
        """
        if isinstance(instructions, str):
            raise VlmrmError(f"instructions={instructions!r} is one string; pass a list, e.g. [{instructions!r}]")
        instructions = list(instructions)
        if not instructions:
            raise VlmrmError("no instructions given; pass at least one, e.g. 'Stack the red object on the blue object'")
        for instruction in instructions:
            if not isinstance(instruction, str) or not instruction.strip():
                raise VlmrmError(f"instruction {instruction!r} is empty or not text; pass a sentence such as "
                                 f"'Stack the red object on the blue object'")
        prompts = [format_prompt(self.prompt, i) for i in instructions]
        encoded = self.tokenizer(prompts, add_special_tokens=True)["input_ids"]
        for instruction, ids in zip(instructions, encoded):
            if len(ids) > self.max_input_tokens:
                shown = instruction if len(instruction) <= 80 else instruction[:77] + "..."
                raise VlmrmError(f"instruction {shown!r} makes a prompt of {len(ids)} tokens, more than the planner's "
                                 f"max_input_tokens={self.max_input_tokens}; shorten it, or load the planner with a "
                                 f"larger max_input_tokens")
        input_ids = np.full((len(prompts), self.max_input_tokens), self.model.arch.pad_token_id, np.int32)
        attention_mask = np.zeros_like(input_ids)
        for row, ids in enumerate(encoded):
            input_ids[row, :len(ids)] = ids
            attention_mask[row, :len(ids)] = 1
        return input_ids, attention_mask

    def plan_tokens(self, params: Any, input_ids: jax.Array, attention_mask: jax.Array, *,
                    report: bool = False) -> SubgoalPlan:
        """Greedy generation and on-device parsing: pure and jittable (static lengths).

        Args:
            params: the weights (usually ``planner.params``).
            input_ids, attention_mask: int32 [B, L] from :meth:`tokenize`.
            report: also warn, from inside the compiled program (``jax.debug.callback``), about every invalid row,
                naming its decoded text.

        Returns:
            :class:`SubgoalPlan` (subgoals int32 [B, M], count int32 [B], valid bool [B], tokens int32 [B, T]).
        """
        tokens = greedy_generate(self.model, params, jnp.asarray(input_ids, jnp.int32),
                                 jnp.asarray(attention_mask, jnp.int32), self.max_new_tokens)
        parsed = parse_tokens(self.table, tokens, self.model.arch.eos_token_id, self.max_subgoals)
        if report:
            jax.debug.callback(self._warn_invalid, tokens, parsed.valid)
        return SubgoalPlan(parsed.ids, parsed.count, parsed.valid, tokens)

    def decode(self, tokens: np.ndarray) -> list[str]:
        """The text of generated tokens int32 [B, T] (special tokens dropped)."""
        return self.tokenizer.batch_decode(np.asarray(tokens), skip_special_tokens=True)

    def plan(self, instructions: Sequence[str]) -> PlanResult:
        """Plans ``instructions`` (one jitted call, compiled once per batch size) and reads the result as text too.

        Warns (``UserWarning``) for every instruction whose output is not a list of known subgoals, naming the
        instruction and the text.

        Raises:
            VlmrmError: bad instructions (see :meth:`tokenize`).
        """
        input_ids, attention_mask = self.tokenize(instructions)
        plan = jax.device_get(self._plan_jit(self.params, input_ids, attention_mask))
        texts = self.decode(plan.tokens)
        read = [parse_text(text, self.subgoals, self.max_subgoals) for text in texts]
        self._warn_invalid(plan.tokens, plan.valid, list(instructions))
        return PlanResult(tuple(instructions), tuple(texts), tuple(r.items for r in read),
                          tuple(tuple(i >= 0 for i in r.ids) for r in read), np.asarray(plan.subgoals),
                          np.asarray(plan.count), np.asarray(plan.valid))

    def _warn_invalid(self, tokens, valid, instructions: Sequence[str] | None = None) -> None:
        tokens, valid = np.asarray(tokens), np.asarray(valid)
        for row in np.flatnonzero(~valid):
            text = self.decode(tokens[row:row + 1])[0]
            read = parse_text(text, self.subgoals, self.max_subgoals)
            unknown = [item for item, i in zip(read.items, read.ids) if i < 0]
            if not read.items:
                why = "it holds no subgoal"
            elif unknown:
                why = f"unknown subgoal(s) {unknown}"
            elif len(read.items) > self.max_subgoals:
                why = f"{len(read.items)} subgoals, more than max_subgoals={self.max_subgoals}"
            elif tokens[row, -1] not in (self.model.arch.eos_token_id, self.model.arch.pad_token_id):
                why = f"it was cut off at max_new_tokens={self.max_new_tokens}"
            else:
                why = "its tokens are not the tokenizer's own encoding of known captions"
            where = f" for instruction {instructions[row]!r}" if instructions is not None else f" in row {row}"
            warnings.warn(f"planner {self.name!r}{where} produced {text!r}, which is not a list of known subgoals "
                          f"({why}); the plan is flagged invalid", UserWarning, stacklevel=3)


def _read_json(text: str | None, file: str, label: str):
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelNotFoundError(f"cannot load planner {label!r}: its {file} is not valid JSON ({e}); restore it or "
                                 f"rebuild the model") from None
