"""Caption vocabularies of auto-labelled frames: concepts, their phrasings, the goal prompts and the baseline.

Di Palo et al. (2023, section 4.2) fine-tuned CLIP on automatically labelled in-domain image-caption pairs because
zero-shot scores varied too little. Here a frame's labels are ground-truth *concepts* (e.g. the humanoid pose
predicates "kneeling", "standing"), each captioned by several phrasings, one of which is the paper's prompt
(Rocamonde et al. 2023). Concepts are not exclusive (a frame can be "standing" and "arms raised"), so a frame has a
bool label per concept and every phrasing of every concept that holds is a positive caption for it
(:func:`vlmrm_jax.models.contrastive.multilabel_clip_loss`). The baseline concept (e.g. "a humanoid robot") holds
for every frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from vlmrm_jax.errors import VlmrmError


@dataclasses.dataclass(frozen=True)
class Concept:
    """One thing a frame can show, with the captions that say it.

    Attributes:
        key: short identifier, e.g. ``"kneeling"`` (for humanoid poses: the key of the pose predicate).
        captions: one or more phrasings; the first is the canonical caption (the paper's prompt when there is one).
        prompt: the paper's goal prompt for this concept (one of ``captions``), or None. Concepts with a prompt are
            the ones evaluated as goals (AUROC, retrieval).
    """

    key: str
    captions: tuple[str, ...]
    prompt: str | None = None

    def __post_init__(self):
        if not self.captions or any(not isinstance(c, str) or not c.strip() for c in self.captions):
            raise VlmrmError(f"concept {self.key!r} has an empty caption list or an empty caption; give it at least "
                             f"one non-empty phrasing")
        if self.prompt is not None and self.prompt not in self.captions:
            raise VlmrmError(f"concept {self.key!r}: its prompt {self.prompt!r} is not among its captions; add it")


@dataclasses.dataclass(frozen=True)
class CaptionSet:
    """The caption vocabulary of one environment's frames.

    Attributes:
        concepts: the concepts, in label-column order (a dataset's ``labels[:, c]`` is ``concepts[c]``).
        baseline: key of the baseline concept, which holds for every frame; its canonical caption is the paper's
            baseline prompt (e.g. "a humanoid robot").
    """

    concepts: tuple[Concept, ...]
    baseline: str

    def __post_init__(self):
        keys = [c.key for c in self.concepts]
        if len(set(keys)) != len(keys):
            raise VlmrmError(f"concept keys {keys} repeat; give every concept its own key")
        if self.baseline not in keys:
            raise VlmrmError(f"baseline concept {self.baseline!r} is not among the concepts {keys}; add it")
        captions = self.captions
        if len(set(captions)) != len(captions):
            duplicate = next(c for c in captions if captions.count(c) > 1)
            raise VlmrmError(f"caption {duplicate!r} belongs to two concepts; each caption must name one concept")

    @property
    def keys(self) -> tuple[str, ...]:
        """Concept keys in label-column order."""
        return tuple(c.key for c in self.concepts)

    @property
    def captions(self) -> list[str]:
        """Every phrasing of every concept, concept by concept: the K candidate captions of training."""
        return [caption for concept in self.concepts for caption in concept.captions]

    @property
    def caption_concepts(self) -> np.ndarray:
        """int32 [K]: the concept index (label column) of each caption of :attr:`captions`."""
        return np.asarray([i for i, concept in enumerate(self.concepts) for _ in concept.captions], np.int32)

    @property
    def baseline_prompt(self) -> str:
        """The baseline concept's canonical caption (the paper's baseline prompt)."""
        return self.concept(self.baseline).captions[0]

    @property
    def goal_prompts(self) -> dict[str, str]:
        """Concept key -> the paper's goal prompt, for the concepts that have one (the evaluated goals)."""
        return {c.key: c.prompt for c in self.concepts if c.prompt is not None}

    def concept(self, key: str) -> Concept:
        """The concept named ``key``.

        Raises:
            VlmrmError: if there is none (the message lists the keys).
        """
        for concept in self.concepts:
            if concept.key == key:
                return concept
        raise VlmrmError(f"unknown concept {key!r}; choose one of {', '.join(self.keys)}")

    def subset(self, keys: Sequence[str]) -> tuple[CaptionSet, np.ndarray]:
        """The vocabulary restricted to the concepts ``keys`` and the baseline (always kept), in this set's order.

        Args:
            keys: concept keys to keep (the baseline may be among them or not).

        Returns:
            The smaller :class:`CaptionSet` and int32 [C'], the label columns of this set that it keeps (so that
            ``labels[:, columns]`` are its labels).

        Raises:
            VlmrmError: on an unknown key (the message lists the keys) or an empty ``keys``.
        """
        if not keys:
            raise VlmrmError(f"no concepts to keep; name at least one of {', '.join(self.keys)}")
        for key in keys:
            self.concept(key)  # raises on an unknown key
        wanted = set(keys) | {self.baseline}
        columns = np.asarray([i for i, k in enumerate(self.keys) if k in wanted], np.int32)
        return CaptionSet(concepts=tuple(self.concepts[i] for i in columns), baseline=self.baseline), columns

    def caption_labels(self, labels: np.ndarray) -> np.ndarray:
        """Expands per-concept labels to per-caption labels.

        Args:
            labels: bool [N, C], one column per concept.

        Returns:
            bool [N, K]: ``out[i, k] = labels[i, concept of caption k]``.
        """
        return np.asarray(labels, bool)[:, self.caption_concepts]

    def to_json(self) -> dict:
        """A JSON-serialisable dict (the ``captions.json`` of datasets and of trained models)."""
        return {"baseline": self.baseline,
                "concepts": [{"key": c.key, "captions": list(c.captions), "prompt": c.prompt} for c in self.concepts]}

    @classmethod
    def from_json(cls, data: Mapping) -> CaptionSet:
        """Inverse of :meth:`to_json`.

        Raises:
            VlmrmError: if ``data`` lacks a field or is inconsistent.
        """
        try:
            concepts = tuple(Concept(key=str(c["key"]), captions=tuple(c["captions"]), prompt=c.get("prompt"))
                             for c in data["concepts"])
            return cls(concepts=concepts, baseline=str(data["baseline"]))
        except (KeyError, TypeError) as e:
            raise VlmrmError(f"caption vocabulary lacks field {e} or has the wrong layout; expected "
                             f"{{'baseline': KEY, 'concepts': [{{'key', 'captions', 'prompt'}}, ...]}}") from None


def normalise_caption(text: str) -> str:
    """Lower case, runs of white space to one space, no trailing full stop: how captions and prompts are compared."""
    return " ".join(text.lower().split()).rstrip(".")


def unknown_prompts(captions: CaptionSet, prompts: Sequence[str]) -> list[str]:
    """The prompts that are not captions of ``captions`` (compared after :func:`normalise_caption`), in order."""
    known = {normalise_caption(c) for c in captions.captions}
    return [p for p in prompts if normalise_caption(p) not in known]
