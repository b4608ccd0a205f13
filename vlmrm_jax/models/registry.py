"""Short names of the CLIP models shipped inside the package, for machines without the Hugging Face hub.

Each name maps to a directory under ``vlmrm_jax/models/weights/<name>/`` in the Hugging Face format
(``config.json``, ``flax_model.msgpack``, tokenizer files, ``preprocessor_config.json``), loaded by
:meth:`vlmrm_jax.models.CLIP.load` like any local directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vlmrm_jax.errors import ModelNotFoundError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: Shipped offline models: short name -> packaged directory. Each is a small CLIP trained from scratch on auto-labelled
#: frames of one environment (``python -m experiments.train_vlm``; commands, sizes and measured quality in
#: ``docs/offline_models.md``): it knows only its own captions (``captions.json``). ``stacking-clip-tiny`` is also a
#: calibrated subgoal detector (``detector.json``, read by :meth:`vlmrm_jax.models.detection.SubgoalDetector.load`).
OFFLINE_MODELS: dict[str, Path] = {name: WEIGHTS_DIR / name for name in
                                   ("humanoid-clip-tiny", "humanoid-clip-tiny-paper", "cartpole-clip-tiny",
                                    "mountain-car-clip-tiny", "stacking-clip-tiny")}

#: Files a shipped model directory must hold.
REQUIRED_FILES = ("config.json", "flax_model.msgpack")


def resolve_model(name: str) -> str:
    """The directory of the shipped offline model ``name``.

    Returns:
        The directory as a string, ready for :meth:`vlmrm_jax.models.CLIP.load`.

    Raises:
        ModelNotFoundError: if ``name`` is not a shipped model, or if its files are missing from the installed
            package (the message lists the known names).
    """
    known = ", ".join(sorted(OFFLINE_MODELS)) or "none in this version"
    if name not in OFFLINE_MODELS:
        raise ModelNotFoundError(f"{name!r} is not a shipped offline model (known: {known}); pass --model with one "
                                 f"of those names, a local CLIP directory, or a Hugging Face hub id")
    path = OFFLINE_MODELS[name]
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ModelNotFoundError(f"shipped offline model {name!r} is incomplete: {', '.join(missing)} missing from "
                                 f"{path} (known: {known}); reinstall the package (pip install -e . from a full "
                                 f"checkout) or pass --model PATH to a local CLIP directory")
    return str(path)


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """A published CLIP of VLM-RM's scaling study (Rocamonde et al. 2023, section 4.4, Fig. 5/6), by hub id.

    The sizes are the published ones (open_clip's ``docs/model_profile.csv`` for the same architectures; GFLOPs
    count a multiply-add as 2, as XLA's cost analysis does, see :func:`vlmrm_jax.eval.scaling.image_gflops`), for
    reference next to what :func:`vlmrm_jax.eval.scaling.model_size` measures on a loaded model.

    Attributes:
        hub_id: the Hugging Face hub id, loaded by :meth:`vlmrm_jax.models.CLIP.load`.
        parameters_m: millions of parameters, both towers.
        vision_parameters_m: millions of parameters of the image tower.
        image_gflops: GFLOPs of one 224 x 224 image embedding.
        weights: weight files on the hub that this library loads: ``"flax"`` (flax_model.msgpack) or ``"pytorch"``
            (model.safetensors / pytorch_model.bin; a PyTorch-only checkpoint goes through transformers'
            ``from_pt``, which needs ``pip install torch``).
    """

    hub_id: str
    parameters_m: float
    vision_parameters_m: float
    image_gflops: float
    weights: str


#: The paper's four CLIP sizes, short name -> :class:`ZooModel`. ``--models`` of ``experiments.scaling_sweep``
#: takes the short names or the hub ids (any hub id, directory or shipped name works there too). Loading needs the
#: hub or a Hugging Face cache that holds them (``HF_HUB_OFFLINE=1``); none is shipped. fp32 weights: ~0.6, 1.7,
#: 3.9 and 10 GB.
CLIP_ZOO: dict[str, ZooModel] = {
    "clip-vit-b-32": ZooModel("openai/clip-vit-base-patch32", 151.28, 87.85, 8.82, "flax"),
    "clip-vit-l-14": ZooModel("openai/clip-vit-large-patch14", 427.62, 303.97, 162.03, "flax"),
    "clip-vit-h-14": ZooModel("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", 986.11, 632.08, 334.59, "pytorch"),
    "clip-vit-bigg-14": ZooModel("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", 2539.57, 1844.91, 967.5, "pytorch"),
}


def resolve_zoo(name: str) -> str:
    """The hub id of a :data:`CLIP_ZOO` short name; any other name (hub id, directory, shipped name) unchanged."""
    return CLIP_ZOO[name].hub_id if name in CLIP_ZOO else name


def zoo_entry(name: str) -> ZooModel | None:
    """The :data:`CLIP_ZOO` entry of a short name or hub id, or None."""
    if name in CLIP_ZOO:
        return CLIP_ZOO[name]
    return next((m for m in CLIP_ZOO.values() if m.hub_id == name), None)
