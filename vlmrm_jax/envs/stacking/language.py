"""The language of the block-stacking tasks (Di Palo et al. 2023): colours, subgoal captions and tasks.

One module shared by the environment (which task an episode has, its ground-truth success), the caption source
and subgoal detector (which captions a frame can show), the planner (what it must produce) and the agent (which
subgoal it pursues). Subgoals are written in the paper's fixed textual form (Di Palo et al. 2023, section 3.2):

    "Stack the red object on the blue object" -> ["The robot is grasping the red object",
                                                  "The red object is on top of the blue object"]

:data:`SUBGOALS` fixes the order of every subgoal caption; an agent carries subgoals as int32 ids into it.
"""

from __future__ import annotations

import dataclasses
import itertools

from vlmrm_jax.errors import VlmrmError

#: Cube colours, in the order of the env's cube index (cube 0 is red, 1 green, 2 blue).
COLOURS: tuple[str, ...] = ("red", "green", "blue")


def _colour(colour: str) -> str:
    if colour not in COLOURS:
        raise VlmrmError(f"unknown colour {colour!r}; the cubes are {', '.join(COLOURS)}")
    return colour


def grasp_caption(colour: str) -> str:
    """The subgoal caption "The robot is grasping the <colour> object"."""
    return f"The robot is grasping the {_colour(colour)} object"


def on_top_caption(top: str, bottom: str) -> str:
    """The subgoal caption "The <top> object is on top of the <bottom> object"."""
    top, bottom = _colour(top), _colour(bottom)
    if top == bottom:
        raise VlmrmError(f"a cube cannot be on top of itself ({top!r}); give two different colours of {COLOURS}")
    return f"The {top} object is on top of the {bottom} object"


#: Ordered pairs (top, bottom) of different colours: the six two-stacks.
STACK_PAIRS: tuple[tuple[str, str], ...] = tuple(itertools.permutations(COLOURS, 2))

#: Every subgoal caption, in id order: the three grasps, then the six on-top-of relations.
SUBGOALS: tuple[str, ...] = (tuple(grasp_caption(c) for c in COLOURS)
                             + tuple(on_top_caption(t, b) for t, b in STACK_PAIRS))


def subgoal_id(caption: str) -> int:
    """The id of ``caption`` in :data:`SUBGOALS` (exact text, case and surrounding spaces ignored).

    Raises:
        VlmrmError: if ``caption`` is not a subgoal caption (the message lists them).
    """
    key = " ".join(caption.split()).lower()
    for i, known in enumerate(SUBGOALS):
        if known.lower() == key:
            return i
    raise VlmrmError(f"unknown subgoal {caption!r}; the detector knows: {'; '.join(SUBGOALS)}")


@dataclasses.dataclass(frozen=True)
class Task:
    """One stacking task.

    Attributes:
        key: short name, e.g. ``"grasp_red"``, ``"stack_red_on_blue"``, ``"stack_all"``.
        instruction: the paper's wording of the instruction, e.g. "Stack the red object on the blue object".
        subgoals: the canonical decomposition into :data:`SUBGOALS` captions, in the order they must be reached.
        kind: ``"grasp"``, ``"stack"`` (one cube on another) or ``"tower"`` (all three).
        colours: the cubes involved: (X,) for a grasp, (top, bottom) for a stack, (bottom, middle, top) for a tower.
    """

    key: str
    instruction: str
    subgoals: tuple[str, ...]
    kind: str
    colours: tuple[str, ...]


def _grasp_task(c: str) -> Task:
    return Task(f"grasp_{c}", f"Grasp the {c} object", (grasp_caption(c),), "grasp", (c,))


def _stack_task(top: str, bottom: str) -> Task:
    return Task(f"stack_{top}_on_{bottom}", f"Stack the {top} object on the {bottom} object",
                (grasp_caption(top), on_top_caption(top, bottom)), "stack", (top, bottom))


def _tower_task(bottom: str, middle: str, top: str, key: str | None = None, instruction: str | None = None) -> Task:
    return Task(key or f"tower_{bottom}_{middle}_{top}",
                instruction or f"Build a tower with {bottom} at the bottom, {middle} in the middle and {top} on top",
                (grasp_caption(middle), on_top_caption(middle, bottom), grasp_caption(top),
                 on_top_caption(top, middle)), "tower", (bottom, middle, top))


#: "Stack all three objects" (the paper's triple stack): any tower of the three cubes succeeds; its canonical
#: decomposition is the paper's example order (red on blue, then green on red).
STACK_ALL = _tower_task("blue", "red", "green", key="stack_all", instruction="Stack all three objects")

#: Every task by key: 3 grasps, 6 two-stacks, 6 ordered towers and "stack_all".
TASKS: dict[str, Task] = {t.key: t for t in (
    [_grasp_task(c) for c in COLOURS]
    + [_stack_task(t, b) for t, b in STACK_PAIRS]
    + [_tower_task(*order) for order in itertools.permutations(COLOURS, 3)]
    + [STACK_ALL])}

#: The longest canonical decomposition, in subgoals (a tower: grasp, stack, grasp, stack).
MAX_SUBGOALS = max(len(t.subgoals) for t in TASKS.values())


def get_task(key: str) -> Task:
    """The task named ``key`` (e.g. ``"stack_red_on_blue"``).

    Raises:
        VlmrmError: if ``key`` is not a task (the message lists the task keys).
    """
    if key not in TASKS:
        raise VlmrmError(f"unknown stacking task {key!r}; choose one of {', '.join(TASKS)}")
    return TASKS[key]



__all__ = ["COLOURS", "MAX_SUBGOALS", "STACK_ALL", "STACK_PAIRS", "SUBGOALS", "TASKS", "Task", "get_task",
           "grasp_caption", "on_top_caption", "subgoal_id"]
