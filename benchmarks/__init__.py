"""Throughput benchmarks of the fused JAX pipeline against the authors' design (CPU MuJoCo + PyTorch CLIP).

    python -m benchmarks.throughput                      # tiny CLIP, humanoid, CPU-sized defaults
    python -m benchmarks.throughput --model vit-b-32 --image-sizes 224 --dtype bfloat16   # on a GPU/TPU

- :mod:`benchmarks.models`: the CLIPs benchmarked (``tiny``, ``vit-b-32`` from its config with random weights, or a
  path / hub id), their PyTorch twin with the same weights, and FLOPs per image.
- :mod:`benchmarks.stages`: our stages as jitted programs built from the library (physics; + rendering; + CLIP;
  + reward; PPO iterations), timed with compile time apart from steady state.
- :mod:`benchmarks.reference`: the reference pipeline (MuJoCo's CPU physics and ``mujoco.Renderer`` per env, frames
  batched into transformers' PyTorch ``CLIPModel``, the same reward in torch).
- :mod:`benchmarks.roofline`: device FLOP ceilings and the encoder's achieved fraction.
- :mod:`benchmarks.throughput`: the CLI: table, ``results.csv``, ``results.json``.

PyTorch is needed only for the reference (``pip install -e ".[bench]"``); ``--no-reference`` runs without it.
"""
