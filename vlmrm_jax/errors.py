"""User-facing errors.

Every error a user can cause (bad CLI value, missing model, corrupt checkpoint...) is raised as a
:class:`VlmrmError` whose message is one line that names the bad value and says how to fix it. The CLIs in
``experiments/`` print that line and exit with status 2 instead of showing a traceback.
"""


class VlmrmError(Exception):
    """An error caused by user input or the user's environment; its message names the value and the fix."""


class ModelNotFoundError(VlmrmError):
    """A model id or path could not be loaded (offline, unknown id, bad path, missing files)."""


class CheckpointError(VlmrmError):
    """A checkpoint directory is missing, corrupt, or was written by an incompatible run."""


class NonFiniteError(VlmrmError):
    """Training produced NaN or Inf (in rewards, losses or parameters); the run stops without saving them."""


class DatasetError(VlmrmError):
    """A captioned-frame dataset directory is missing, empty, corrupt, or does not fit the model or environment."""


def check_positive_int(name: str, value: object, hint: str = "") -> None:
    """Checks a size, count or step number given by the user.

    Args:
        name: how the user knows the value (a flag or field name), used in the message.
        value: the value; a Python or NumPy integer > 0 passes (``True``/``False`` and floats do not).
        hint: appended to the message, e.g. ``", e.g. 224"``.

    Raises:
        VlmrmError: ``"<name>=<value> must be a positive integer<hint>"``.
    """
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise VlmrmError(f"{name}={value!r} must be a positive integer{hint}")
