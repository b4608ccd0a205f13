"""Many hosts: JAX's multi-controller runtime, one process per host (a TPU pod slice, a multi-node GPU job).

Every process runs the same program. After :func:`initialize`, ``jax.devices()`` lists the devices of all processes,
so :class:`vlmrm_jax.rl.PPO` (whose default mesh is ``jax.devices()``) splits the env batch over the whole slice
and XLA's SPMD partitioner inserts the cross-host gradient all-reduce; nothing else in the training code changes.
``PPO.init`` builds the whole train state inside jit from a key that every process passes with the same value, so
no host-local data has to be assembled into global arrays. Host-side reads use :func:`host_value`; only
:func:`is_main_process` writes files, while orbax checkpoints stay collective (every process saves and restores
its own shards); a host-side decision that must agree everywhere (e.g. a wall-clock checkpoint interval) is taken
by process 0 (:func:`main_process_decides`), and :func:`sync` is a barrier. With one process all of these are plain
local operations.

Launch commands for a TPU pod slice and a SLURM GPU cluster: ``docs/multi_host.md``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from vlmrm_jax.errors import VlmrmError

#: Environment variables read when the argument is not given (``JAX_COORDINATOR_ADDRESS`` and
#: ``JAX_LOCAL_DEVICE_IDS`` are jax's own; the process count and id are this project's, as JAX leaves them to
#: cluster auto-detection).
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise VlmrmError(f"{name}={value!r} must be an integer; set it to the process count/id or unset it") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | None = None,
               timeout_s: int = 300) -> None:
    """Joins this process to the others with ``jax.distributed.initialize``; call it first, before any JAX work.

    Arguments left ``None`` come from ``$JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
    ``$JAX_NUM_PROCESSES``, ``$JAX_PROCESS_ID`` and ``$JAX_LOCAL_DEVICE_IDS``, else from JAX's cluster
    auto-detection (Cloud TPU VMs, SLURM, Open MPI, Kubernetes), which on a TPU pod slice or under ``srun`` needs
    no arguments at all. On CPU the cross-process collectives are gloo's (``jax_cpu_collectives_implementation``,
    the default of jax 0.9.2; set here in case another version defaults to none). Calling it again in a process
    that is already initialised does nothing.

    Args:
        coordinator_address: ``host:port`` of process 0's coordination service, reachable from every process.
        num_processes: processes in the job (one per host).
        process_id: this process's index in ``[0, num_processes)``.
        local_device_ids: local devices this process drives (default: all; under SLURM JAX's auto-detection
            otherwise picks the single device ``$SLURM_LOCALID``).
        timeout_s: seconds to wait for all processes to join before raising.

    Raises:
        VlmrmError: if an environment variable is not an integer, JAX already ran a computation in this process,
            or the processes did not all join within ``timeout_s`` (JAX's message follows).
    """
    if jax.distributed.is_initialized():
        return
    if num_processes is None:
        num_processes = _env_int(NUM_PROCESSES_ENV)
    if process_id is None:
        process_id = _env_int(PROCESS_ID_ENV)
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id, local_device_ids=local_device_ids,
                                   initialization_timeout=timeout_s)
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VlmrmError(f"jax.distributed.initialize failed: {first}; call initialize() before any JAX "
                         f"computation, on every host with the same coordinator_address (host:port of process 0) "
                         f"and num_processes (or ${COORDINATOR_ENV}, ${NUM_PROCESSES_ENV}, ${PROCESS_ID_ENV})") from e


def requested() -> bool:
    """True when the environment asks for a multi-process run: ``$JAX_COORDINATOR_ADDRESS`` is set."""
    return bool(os.environ.get(COORDINATOR_ENV))


def is_main_process() -> bool:
    """True on process 0, the one process that writes files (metrics, checkpoints' metadata, videos)."""
    return jax.process_index() == 0


def main_process_only(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` on process 0; on the others a function that drops its line, so that log lines appear once."""
    return log if is_main_process() else _drop


def _drop(_line: str) -> None:
    pass


def host_value(tree: Any) -> Any:
    """The global value of every array of ``tree`` as NumPy on this host (``process_allgather``).

    A fully replicated array (PPO's parameters and metrics) is read locally; an array split over several processes
    (the env state) is gathered, which all processes must call together.
    """
    return multihost_utils.process_allgather(tree, tiled=True)


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """Every array of ``tree`` replicated on all devices of ``mesh`` (e.g. CLIP weights loaded from the same files
    on every host); with one process ``jax.device_put``.

    With several processes ``jax.device_put`` would have to move data between hosts, which jax 0.9.2's CPU backend
    refuses ("does not support cross-host device transfers"), so each process fills its own devices from its own
    copy (``make_array_from_callback``): ``tree`` must hold the same values on every process.

    Args:
        tree: pytree of arrays (any shapes and dtypes), the same on every process.
        mesh: the devices to replicate over (may span several processes).

    Returns:
        ``tree`` with every leaf a ``jax.Array`` replicated over ``mesh``.
    """
    everywhere = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    if not is_multi_process():
        return jax.device_put(tree, everywhere)

    def global_array(x):
        local = np.asarray(x)
        return jax.make_array_from_callback(local.shape, everywhere, lambda index: local[index])

    return jax.tree.map(global_array, tree)


def is_multi_process() -> bool:
    """True when this program runs as several processes (``jax.process_count() > 1``)."""
    return jax.process_count() > 1


def main_process_decides(flag: bool) -> bool:
    """Process 0's ``flag`` on every process (``broadcast_one_to_all``, which all processes must call together);
    with one process ``flag`` itself.

    A host-side choice that depends on the wall clock (is a checkpoint due?) differs between hosts, and a
    collective (orbax's save) taken on some hosts only would hang, so process 0 decides and all follow.
    """
    if not is_multi_process():
        return flag
    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag, np.int32)))


def sync(name: str) -> None:
    """Waits until every process has reached the barrier ``name`` (``sync_global_devices``); does nothing with one
    process. Every process must call it with the same name."""
    if is_multi_process():
        multihost_utils.sync_global_devices(name)
