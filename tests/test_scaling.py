"""The CLIP scaling sweep: EPIC to the predicate reward against NumPy's Pearson distance, AUROC against
evaluate_prompts, model sizes against a hand count, and experiments.scaling_sweep end to end and on bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.vlm_toy_data import TOY_CAPTIONS, ToySource
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.eval import epic
from vlmrm_jax.eval.scaling import (image_gflops, parameter_counts, predicate_epic, prompt_concepts, reward_quality,
                                    shaping_indices, state_reward_tensors)
from vlmrm_jax.models.evaluation import evaluate_prompts


def _pearson_distance(x, y):
    return float(np.sqrt((1.0 - np.corrcoef(x, y)[0, 1]) / 2.0))


def test_epic_of_frame_rewards_is_the_pearson_distance():
    rng = np.random.default_rng(0)
    holds = rng.random(300) < 0.3
    clip_reward = 0.2 * holds + rng.normal(0, 0.15, 300)  # correlated with the predicate, not equal to it
    expected = _pearson_distance(clip_reward, holds.astype(float))
    assert 0.1 < expected < 0.6
    for num_shaping in (300, 17, 1):  # whichever frames serve as shaping samples
        assert predicate_epic(clip_reward, holds, num_shaping=num_shaping) == pytest.approx(expected, abs=1e-5)
    assert predicate_epic(clip_reward, holds, gamma=0.0) == pytest.approx(expected, abs=1e-5)
    assert predicate_epic(-3 * holds + 1.0, holds) == pytest.approx(1.0, abs=1e-3)  # anti-correlated
    assert predicate_epic(5 * holds - 2.0, holds) == pytest.approx(0.0, abs=1e-3)  # same up to scale and offset
    assert np.isnan(predicate_epic(clip_reward, np.zeros(300, bool)))  # constant predicate: undefined
    # canonicalisation leaves r(s') - E[r(S')]
    shaping = shaping_indices(300, 17)
    canonical = epic.canonicalize(state_reward_tensors(clip_reward, shaping), 0.9)
    np.testing.assert_allclose(canonical, clip_reward - clip_reward[shaping].mean(), atol=1e-5)


def test_bad_epic_inputs_raise():
    with pytest.raises(VlmrmError, match="same length"):
        predicate_epic(np.zeros(4), np.zeros(5, bool))
    with pytest.raises(VlmrmError, match="N >= 2"):
        state_reward_tensors(np.zeros(1), np.zeros(1, int))


@pytest.fixture(scope="module")
def toy_frames():
    batch = next(ToySource(32).generate(48, seed=3))
    return batch.images, batch.labels


def test_auroc_agrees_with_evaluate_prompts(tiny_clip, toy_frames):
    images, labels = toy_frames
    alphas = (0.0, 0.5, 1.0)
    quality = reward_quality(tiny_clip, images, labels, TOY_CAPTIONS, alphas)
    reference = evaluate_prompts(tiny_clip, tiny_clip.params, images, labels, TOY_CAPTIONS, alphas=alphas)
    assert set(quality["prompts"]) == set(reference["prompts"]) == {"red", "blue"}
    for key, row in quality["prompts"].items():
        assert row["positives"] == reference["prompts"][key]["positives"]
        for a in alphas:
            assert row["auroc"][f"{a:g}"] == pytest.approx(reference["prompts"][key][f"auroc_alpha_{a:g}"], abs=1e-9)
            assert 0.0 <= row["epic"][f"{a:g}"] <= 1.0
    for a in alphas:
        assert quality["mean_auroc"][f"{a:g}"] == pytest.approx(reference[f"mean_auroc_alpha_{a:g}"], abs=1e-9)


def test_evaluate_prompts_with_several_baseline_prompts_matches_numpy(tiny_clip, toy_frames):
    """The reward's baseline is the mean of the baseline prompts' unit embeddings: AUROC of
    1 - 0.5 |(s - g) P|^2 computed in NumPy and ranked by pair counting, against evaluate_prompts."""
    from vlmrm_jax.models.evaluation import embed_frames

    images, labels = toy_frames
    baselines = ["a square on grey", "a blue square"]
    result = evaluate_prompts(tiny_clip, tiny_clip.params, images, labels, TOY_CAPTIONS, alphas=(0.0, 1.0),
                              baseline_prompts=baselines)
    assert result["baseline_prompts"] == baselines
    s = embed_frames(tiny_clip, tiny_clip.params, images).astype(np.float64)
    g = np.asarray(tiny_clip.embed_text(["a red square"]), np.float64)[0]
    b = np.asarray(tiny_clip.embed_text(baselines), np.float64).mean(0)
    d = g - b
    holds = labels[:, TOY_CAPTIONS.keys.index("red")]
    for alpha in (0.0, 1.0):
        proj = alpha * np.outer(d, d) / (d @ d) + (1 - alpha) * np.eye(len(d))
        reward = 1 - 0.5 * np.sum(((s - g) @ proj) ** 2, axis=1)
        pos, neg = reward[holds], reward[~holds]
        expected = np.mean((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None]))
        assert result["prompts"]["red"][f"auroc_alpha_{alpha:g}"] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(VlmrmError, match="baseline prompt '  ' is empty"):
        evaluate_prompts(tiny_clip, tiny_clip.params, images, labels, TOY_CAPTIONS, baseline_prompts=["  "])
    with pytest.raises(VlmrmError, match="no baseline prompt given"):
        evaluate_prompts(tiny_clip, tiny_clip.params, images, labels, TOY_CAPTIONS, baseline_prompts=[])


def test_prompts_map_to_concepts():
    assert prompt_concepts(TOY_CAPTIONS, ["A square that is blue.", "a red square"]) == {
        "blue": "A square that is blue.", "red": "a red square"}
    with pytest.raises(VlmrmError, match="not a caption of any concept"):
        prompt_concepts(TOY_CAPTIONS, ["a green circle"])
    with pytest.raises(VlmrmError, match="both name the concept 'red'"):
        prompt_concepts(TOY_CAPTIONS, ["a red square", "a square that is red"])


def test_sizes_match_a_hand_count(tiny_clip):
    # conftest's tiny CLIP: 32 px, patch 8, width 32, 2 layers, MLP 128, 16-d projection, 77 text positions
    h, i, layers, p, d, ctx = 32, 128, 2, 8, 16, 77
    vocab, patches = len(tiny_clip.tokenizer), (32 // p) ** 2
    layer = 4 * (h * h + h) + 2 * 2 * h + (h * i + i) + (i * h + h)
    vision = p * p * 3 * h + h + (patches + 1) * h + 2 * h + layers * layer + 2 * h + h * d
    text = vocab * h + ctx * h + layers * layer + 2 * h + h * d
    assert parameter_counts(tiny_clip.params) == (vision + text + 1, vision)
    tokens = patches + 1
    matmul_flops = 2 * (patches * p * p * 3 * h
                        + layers * (4 * tokens * h * h + 2 * tokens * tokens * h + 2 * tokens * h * i) + h * d)
    assert 1.0 <= image_gflops(tiny_clip) * 1e9 / matmul_flops < 1.5  # XLA also counts norms, softmax, GELU
    with pytest.raises(VlmrmError, match="not a Flax CLIP"):
        parameter_counts({"dense": {"kernel": np.zeros((2, 2))}})


def test_vit_b_32_size_matches_the_published_one():
    """Parameters and XLA's GFLOPs of openai/clip-vit-base-patch32's architecture (abstract weights: nothing is
    downloaded or allocated) against open_clip's published 151.28 M / 87.85 M / 8.82 GFLOPs (CLIP_ZOO)."""
    import jax
    from transformers import CLIPConfig, FlaxCLIPModel

    from vlmrm_jax.models import CLIP, CLIP_MEAN, CLIP_STD
    from vlmrm_jax.models.registry import CLIP_ZOO

    model = FlaxCLIPModel(CLIPConfig(), _do_init=False)  # transformers' default CLIPConfig is ViT-B/32
    params = jax.eval_shape(lambda key: model.init_weights(key, model.input_shape), jax.random.PRNGKey(0))
    clip = CLIP(params=params, model=model, tokenizer=None, name="vit-b-32", image_mean=CLIP_MEAN, image_std=CLIP_STD)
    published = CLIP_ZOO["clip-vit-b-32"]
    total, vision = parameter_counts(params)
    assert (round(total / 1e6, 2), round(vision / 1e6, 2)) == (published.parameters_m, published.vision_parameters_m)
    assert image_gflops(clip) == pytest.approx(published.image_gflops, rel=0.01)


# --- the CLI ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_clip_dir):
    from experiments.scaling_sweep import main

    out = tmp_path_factory.mktemp("scaling")
    code = main(["--env", "cartpole", "--models", f"cartpole-clip-tiny,{tiny_clip_dir}", "--alphas", "0,1",
                 "--num-frames", "48", "--out", str(out)])
    return code, out


def test_cli_writes_table_json_and_plot(sweep, tiny_clip, capsys):
    from vlmrm_jax.models import CLIP

    code, out = sweep
    assert code == 0
    with open(out / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"].split("/")[-1][:8], r["alpha"]) for r in rows] == [
        ("cartpole", "0"), ("cartpole", "1"), (rows[2]["model"].split("/")[-1][:8], "0"),
        (rows[2]["model"].split("/")[-1][:8], "1")]
    shipped = CLIP.load("cartpole-clip-tiny")
    assert int(rows[0]["parameters"]) == parameter_counts(shipped.params)[0]
    assert int(rows[2]["parameters"]) == parameter_counts(tiny_clip.params)[0]
    assert int(rows[2]["vision_parameters"]) == parameter_counts(tiny_clip.params)[1]
    assert float(rows[0]["gflops_per_image"]) > float(rows[2]["gflops_per_image"]) > 0
    assert rows[0]["prompt"] == "pole vertically upright on top of the cart"
    # the shipped in-domain model separates upright poles; its EPIC is far below the uncorrelated ~0.707
    assert float(rows[0]["auroc"]) > 0.8 and float(rows[0]["epic"]) < 0.6
    summary = json.loads((out / "scaling.json").read_text())
    assert summary["target"] == "upright" and len(summary["rows"]) == 4
    assert summary["rows"][0]["epic"] == pytest.approx(float(rows[0]["epic"]), rel=1e-5)
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flags, message", [
    (["--models", " , "], "--models ' , ' is empty"),
    (["--models", "no-such-clip"], "unknown model 'no-such-clip'"),
    (["--models", "cartpole-clip-tiny", "--alphas", "0,1.5"], "--alphas '0,1.5'"),
    (["--models", "cartpole-clip-tiny", "--seeds", "0,x"], "--seeds '0,x'"),
    (["--models", "cartpole-clip-tiny", "--data", "{tmp}"], "is empty"),
    (["--models", "cartpole-clip-tiny", "--data", "{toy}"], "holds 'toy' frames, not 'cartpole'"),
    (["--models", "cartpole-clip-tiny", "--data", "{toy}", "--env", "nowhere"], "unknown environment 'nowhere'"),
    (["--models", "{tmp}/missing"], "cannot load CLIP"),
], ids=["empty-models", "unknown-model", "alpha", "seeds", "not-a-dataset", "other-env", "env", "missing-dir"])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, flags, message):
    from experiments.scaling_sweep import main
    from vlmrm_jax.datasets import write_dataset

    toy = tmp_path / "toy"
    source = ToySource(32)
    write_dataset(toy, source, source.generate(8, seed=0), seed=0)
    (tmp_path / "empty").mkdir()
    flags = [f.format(tmp=tmp_path / "empty", toy=toy) for f in flags]
    env = [] if "--env" in flags else ["--env", "cartpole"]
    assert main([*env, *flags, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


@pytest.mark.slow  # one PPO compile (~60 s of CPU): too much for the default suite's budget
def test_cli_trains_seeds_x_alphas_and_reports_success(tmp_path, tiny_clip_dir):
    """--train-steps: every alpha x seed of a model trains in one SweepPPO, then gets a success rate."""
    from experiments.scaling_sweep import main

    out = tmp_path / "trained"
    code = main(["--env", "cartpole", "--models", str(tiny_clip_dir), "--alphas", "0,1", "--seeds", "0,5",
                 "--num-frames", "16", "--train-steps", "16", "--num-envs", "2", "--episode-length", "8",
                 "--unroll-length", "4", "--batch-size", "2", "--num-minibatches", "2", "--eval-episodes", "2",
                 "--out", str(out)])
    assert code == 0
    with open(out / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["alpha"], r["seed"]) for r in rows] == [("0", "0"), ("0", "5"), ("1", "0"), ("1", "5")]
    assert all(float(r["success_rate"]) in (0.0, 0.5, 1.0) for r in rows)  # 2 evaluation episodes per run
    assert rows[0]["epic"] == rows[1]["epic"] and rows[0]["epic"] != rows[2]["epic"]  # quality is per alpha
    (metrics_file,) = (out / "runs").glob("*/metrics.jsonl")
    metrics = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    assert metrics[-1]["env_steps"] >= 16 and "run3/reward_mean" in metrics[-1]  # 4 runs in one sweep
    assert main(["--env", "cartpole", "--models", str(tiny_clip_dir), "--train-steps", "16", "--out", str(out)]) == 2
