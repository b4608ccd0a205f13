"""Smoke tests of ``python -m benchmarks.throughput`` so that the benchmark cannot rot: the CLI end to end at toy
sizes (CartPole, which compiles in seconds), the humanoid reference pipeline (MuJoCo physics, ``mujoco.Renderer``,
PyTorch CLIP), FLOP counts and the device-peak table, and one-line errors for bad arguments.
"""

import csv
import json
import math

import numpy as np
import pytest

from benchmarks import throughput

TOY = ["--num-envs", "2", "--image-sizes", "16", "--steps", "2", "--repeats", "1"]


def _positive_finite(value) -> bool:
    return value is not None and math.isfinite(float(value)) and float(value) > 0


def test_cli_end_to_end_writes_table_csv_and_json(tmp_path, tiny_clip_dir, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("pygame")
    code = throughput.main(["--env", "cartpole", *TOY, "--model", str(tiny_clip_dir), "--peak-tflops", "0.1",
                            "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    for column in ("ours ms/batch", "ours steps/s", "compile s", "ref ms/batch", "ref steps/s", "speedup"):
        assert column in out
    assert "roofline" in out and "GFLOP/image" in out

    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == throughput.FIELDS
    assert [r["stage"] for r in rows] == list(throughput.STAGE_LABELS)
    for row in rows:
        assert (row["env"], row["num_envs"], row["image_size"]) == ("cartpole", "2", "16")
        for field in ("ours_ms_per_batch", "ours_steps_per_s", "ours_compile_s", "peak_rss_mb"):
            assert _positive_finite(row[field]), (row["stage"], field, row[field])
        if row["stage"] != "ppo":  # the reference has no PPO
            for field in ("ref_ms_per_batch", "ref_steps_per_s", "speedup"):
                assert _positive_finite(row[field]), (row["stage"], field, row[field])

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["machine"]["platform"] == "cpu" and results["machine"]["device_kind"]
    assert len(results["rows"]) == len(rows)
    (roofline,) = results["roofline"]
    for field in ("gflops_per_image", "peak_tflops", "limit_images_per_s", "ours_images_per_s",
                  "ours_fraction_of_peak", "ref_images_per_s"):
        assert _positive_finite(roofline[field]), field
    (agreement,) = results["agreement"]  # the reference's CLIP is the same model as ours
    assert agreement["max_abs_reward_difference"] < 1e-4

    assert throughput.main(["--markdown", str(tmp_path / "results.json")]) == 0
    markdown = capsys.readouterr().out.splitlines()
    assert markdown[0].startswith("| env |") and len(markdown) == 2 + len(rows)
    assert any(line.startswith("| cartpole | 2 | 16 | end-to-end |") for line in markdown)


def test_humanoid_reference_pipeline_times_every_stage_and_matches_our_reward(tiny_clip):
    pytest.importorskip("torch")
    import jax

    from benchmarks.models import torch_twin
    from benchmarks.reference import STAGES, ReferencePipeline, TorchCLIPReward, headless_gl
    from benchmarks.stages import make_bench_env, task_prompts
    from vlmrm_jax.rewards import GoalBaselineReward

    env = make_bench_env("humanoid")
    embeddings = tiny_clip.embed_text(list(task_prompts("humanoid")))  # [goal, baseline]
    reward = GoalBaselineReward.from_embeddings(embeddings[:1], embeddings[1:], 0.0)
    clip_reward = TorchCLIPReward(torch_twin(tiny_clip), tiny_clip, reward)
    with headless_gl():
        pipeline = ReferencePipeline("humanoid", env, clip_reward, num_envs=2, image_size=24, episode_length=3)
        try:
            totals = pipeline.run(4)  # crosses an episode boundary: the reset path runs too
            frames = pipeline.frames
        finally:
            pipeline.close()
    assert set(totals) == set(STAGES) and all(_positive_finite(t) for t in totals.values())
    assert frames.shape == (2, 24, 24, 3) and frames.dtype == np.uint8 and frames.std() > 1
    ours = reward(jax.jit(tiny_clip.embed_images)(tiny_clip.params, frames.astype(np.float32) / 255))
    np.testing.assert_allclose(ours, clip_reward.reward(clip_reward.embed(frames)), atol=1e-5)


def test_vision_flops_of_vit_b_32_and_device_peaks():
    from transformers import CLIPConfig

    from benchmarks.models import VIT_B_32_CONFIG, vision_gflops
    from benchmarks.roofline import known_peak_tflops, measured_matmul_tflops

    assert vision_gflops(CLIPConfig(**VIT_B_32_CONFIG)) == pytest.approx(8.82, abs=0.01)  # ~4.4 GMACs
    assert known_peak_tflops("NVIDIA H100 80GB HBM3", bfloat16=True) == pytest.approx(989.4)
    assert known_peak_tflops("NVIDIA H100 PCIe", bfloat16=True) == pytest.approx(756.0)
    assert known_peak_tflops("NVIDIA A100-SXM4-40GB", bfloat16=False) == pytest.approx(156.0)
    assert known_peak_tflops("cpu", bfloat16=True) is None
    assert 0 < measured_matmul_tflops(bfloat16=False, n=128, repeats=2) < 1e3


@pytest.mark.parametrize("argv, needle", [
    (["--num-envs", "0"], "num-envs"),
    (["--num-envs", "4,x"], "num-envs"),
    (["--image-sizes", "-64"], "image-sizes"),
    (["--steps", "0"], "steps"),
    (["--env", "walker"], "walker"),
    (["--model", ""], "model"),
    (["--image-sizes", "64", "--ppo-image-size", "128"], "ppo-image-size"),
])
def test_bad_arguments_are_one_line_errors(argv, needle, capsys, tmp_path):
    code = throughput.main(argv + ["--no-reference", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
