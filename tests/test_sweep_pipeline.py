"""A sweep end to end on CartPole with the tiny random CLIP: train_sweep's outputs, and the one vmapped evaluation of
all runs against the project's single-run evaluation (evaluate_pipeline) of the same run."""

import json

import jax
import numpy as np
import pytest

from vlmrm_jax.envs.classic.env import CARTPOLE_BASELINE_PROMPT, CARTPOLE_PROMPT
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.pipeline import RunConfig, evaluate_pipeline
from vlmrm_jax.rl import read_metrics
from vlmrm_jax.rl.checkpoint import Checkpoints
from vlmrm_jax.rl.trainer import CHECKPOINT_DIR
from vlmrm_jax.sweep_pipeline import build_sweep, evaluate_sweep, train_sweep

PPO = dict(num_envs=2, unroll_length=2, batch_size=2, num_minibatches=1, num_updates_per_batch=1, episode_length=4,
           policy_hidden_layer_sizes=[8], value_hidden_layer_sizes=[8])
ALPHAS, SEEDS = (0.0, 1.0), (5,)


def config(tiny_clip_dir, **kw):
    return RunConfig(prompts=[CARTPOLE_PROMPT], baseline_prompts=[CARTPOLE_BASELINE_PROMPT], model=str(tiny_clip_dir),
                     env="cartpole", image_size=16, shadows=False, total_steps=4, ppo=PPO, eval_episodes=2,
                     video_size=16, **kw)


@pytest.fixture(scope="module")
def swept(tiny_clip, tiny_clip_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    lines = []
    summaries = train_sweep(config(tiny_clip_dir), ALPHAS, SEEDS, out, clip=tiny_clip, show_progress=False,
                            log=lines.append)
    return out, summaries, lines


def test_train_sweep_writes_every_output(swept):
    out, summaries, lines = swept
    stored = json.loads((out / "sweep.json").read_text())
    assert stored["alphas"] == [0.0, 1.0] and stored["seeds"] == [5]
    assert stored["runs"] == [{"run": 0, "alpha": 0.0, "seed": 5}, {"run": 1, "alpha": 1.0, "seed": 5}]
    assert json.loads((out / "eval.json").read_text()) == {"runs": summaries}
    assert [(s["run"], s["alpha"], s["seed"]) for s in summaries] == [(0, 0.0, 5), (1, 1.0, 5)]
    for s in summaries:
        assert s["task"] == "success" and 0.0 <= s["success_rate"] <= 1.0 and s["episodes"] == 2
        assert s["env_steps"] == 4 and np.isfinite(s["mean_reward"])
    records = read_metrics(out)
    assert [r["env_steps"] for r in records] == [4]
    assert {"reward_mean", "env/success", "run0/reward_mean", "run1/env/success"} <= set(records[0])
    assert sum(line.startswith("run ") for line in lines) == 2


def test_one_vmapped_evaluation_matches_the_single_run_evaluation(swept, tiny_clip, tiny_clip_dir):
    """Run 1 (alpha 1) restored from the sweep's checkpoint, evaluated by evaluate_pipeline on its own."""
    out, summaries, _ = swept
    sp = build_sweep(config(tiny_clip_dir), ALPHAS, SEEDS, clip=tiny_clip)
    state, _ = Checkpoints(out / CHECKPOINT_DIR).restore(jax.eval_shape(sp.sweep.init, jax.random.PRNGKey(0)))
    assert evaluate_sweep(sp, state) == summaries  # the restored state evaluates as the trained one did
    (out / "run1").mkdir()
    single = evaluate_pipeline(sp.run_pipeline(1), sp.sweep.run_state(state, 1), out / "run1", log=lambda _: None)
    assert single["episodes"] == summaries[1]["episodes"] and single["env_steps"] == 4
    np.testing.assert_allclose(summaries[1]["mean_reward"], single["mean_reward"], rtol=1e-5)
    for key in ("success_rate", "success/fraction_of_steps"):
        assert summaries[1][key] == single[key], key
    assert sp.run_pipeline(1).config.alpha == 1.0 and sp.run_pipeline(1).reward.alpha == 1.0


def test_bad_sweeps_rejected(swept, tiny_clip_dir):
    out, _, _ = swept
    with pytest.raises(VlmrmError, match="--alphas \\[0.5\\] differ from the sweep"):
        train_sweep(None, [0.5], None, out, resume=True)
    with pytest.raises(VlmrmError, match="alpha 0.5 is given twice"):
        build_sweep(config(tiny_clip_dir), [0.5, 0.5], [0])
    with pytest.raises(VlmrmError, match="a sweep trains PPO runs"):
        build_sweep(config(tiny_clip_dir, learner="sac"), [0.5], [0])
