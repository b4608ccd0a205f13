"""How close the CLIP encoder runs to the device's FLOP limit.

The limit is ``peak FLOP/s / FLOPs per image`` (:func:`benchmarks.models.vision_gflops`). On GPUs and TPUs the peak
is the vendor's dense matrix-multiply figure for the dtype (:data:`PEAK_TFLOPS`); on a CPU no such figure is
reliable, so the practical ceiling is *measured*: the best of a few large matrix products under XLA
(:func:`measured_matmul_tflops`).
"""

from __future__ import annotations

import time

#: Dense matrix-multiply peaks in TFLOP/s as (bfloat16, float32) per device kind (a substring of JAX's
#: ``device_kind``), from the vendors' data sheets. float32 on NVIDIA Ampere/Hopper is the TF32 tensor-core figure:
#: XLA's default precision lets float32 matrix products use TF32 there. TPUs: the bf16 figure for both (XLA runs
#: float32 matmuls as bf16 passes at default precision). Checked in order: longer names first.
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H100 PCIe": (756.0, 378.0),
    "H100": (989.4, 494.7),  # SXM
    "H200": (989.4, 494.7),
    "GH200": (989.4, 494.7),
    "A100": (312.0, 156.0),
    "L40S": (362.0, 183.0),
    "L4": (121.0, 60.0),
    "A10G": (70.0, 35.0),
    "TPU v6": (918.0, 918.0),
    "TPU v5p": (459.0, 459.0),
    "TPU v5 lite": (197.0, 197.0),
    "TPU v5e": (197.0, 197.0),
    "TPU v4": (275.0, 275.0),
}


def known_peak_tflops(device_kind: str, bfloat16: bool) -> float | None:
    """The data-sheet peak of ``device_kind`` for the dtype, or None when the device is not in :data:`PEAK_TFLOPS`."""
    for name in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if name.lower() in device_kind.lower():
            return PEAK_TFLOPS[name][0 if bfloat16 else 1]
    return None


def measured_matmul_tflops(bfloat16: bool, n: int = 2048, repeats: int = 5) -> float:
    """Best achieved TFLOP/s of an ``n x n`` by ``n x n`` matrix product under ``jax.jit`` on the default device
    (``2 n^3`` FLOPs per product): the practical ceiling of a CPU, where data-sheet peaks mean little."""
    import jax
    import jax.numpy as jnp

    dtype = jnp.bfloat16 if bfloat16 else jnp.float32
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
    matmul = jax.jit(jnp.dot)
    jax.block_until_ready(matmul(a, b))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(matmul(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e12


def device_peak(device_kind: str, platform: str, bfloat16: bool, override_tflops: float | None = None
                ) -> tuple[float, str]:
    """(peak TFLOP/s, where the number comes from) for the roofline.

    Args:
        device_kind: JAX's ``device_kind`` (e.g. "NVIDIA H100 80GB HBM3", "cpu").
        platform: "cpu", "gpu" or "tpu".
        bfloat16: the encoder's computation dtype.
        override_tflops: ``--peak-tflops``: use this number instead.
    """
    if override_tflops:
        return override_tflops, "given by --peak-tflops"
    known = known_peak_tflops(device_kind, bfloat16) if platform != "cpu" else None
    if known is not None:
        return known, f"data sheet, dense {'bf16' if bfloat16 else 'fp32 (TF32 on NVIDIA)'}"
    return measured_matmul_tflops(bfloat16), "measured: best 2048^3 matmul under XLA (practical ceiling)"
