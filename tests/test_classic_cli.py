"""The classic-control CLIs: reward_landscape's bad input and outputs, and a tiny CartPole training run end to end."""

import csv
import json

import numpy as np
import pytest

from experiments import cartpole, evaluate, mountain_car, reward_landscape, training_cli


def run_cli(module, argv, capsys):
    code = module.main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


@pytest.mark.parametrize("argv, needle", [
    (["--env", "pendulum"], "no reward landscape for env 'pendulum'"),
    (["--env", "humanoid"], "cartpole, mountain_car"),
    (["--env", "cartpole", "--alphas", "0,1.5"], "--alphas '0,1.5': alpha='1.5' is outside [0, 1]"),
    (["--env", "cartpole", "--alphas", "-0.1"], "outside [0, 1]"),
    (["--env", "cartpole", "--alphas", "0,x"], "not a number"),
    (["--env", "cartpole", "--alphas", ""], "empty"),
    (["--env", "cartpole", "--alphas", "0.5,0.5"], "repeats"),
    (["--env", "cartpole", "--sweep", "pole_angle=1:1"], "empty"),
    (["--env", "cartpole", "--sweep", "pole_angle=1:-1:20"], "empty"),
    (["--env", "cartpole", "--sweep", "pole_angle=-1:1:1"], "at least 2"),
    (["--env", "cartpole", "--sweep", "position=-1:1"], "cart_position, pole_angle"),
    (["--env", "mountain_car", "--sweep", "position=a:b"], "NAME=LOW:HIGH"),
    (["--env", "cartpole", "--look", "flat"], "mountain_car only"),
    (["--env", "mountain_car", "--look", "photo"], "look='photo'"),
    (["--env", "cartpole", "--prompt", " "], "empty"),
    (["--env", "cartpole", "--batch-size", "0"], "batch-size"),
    (["--env", "cartpole", "--name", "a/b"], "--name"),
])
def test_landscape_bad_input_is_one_error_line(argv, needle, capsys, tmp_path, tiny_clip_dir):
    code, err, _ = run_cli(reward_landscape, argv + ["--model", str(tiny_clip_dir), "--out", str(tmp_path / "o")],
                           capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert not (tmp_path / "o").exists()


def test_landscape_writes_png_csv_and_epic(capsys, tmp_path, tiny_clip_dir):
    out = tmp_path / "landscape"
    code, err, stdout = run_cli(reward_landscape, [
        "--env", "mountain_car", "--look", "textured", "--model", str(tiny_clip_dir), "--alphas", "0,1",
        "--sweep", "position=-1.2:0.6:12", "--image-size", "16", "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / "landscape.png").stat().st_size > 10_000
    rows = list(csv.DictReader(open(out / "landscape.csv")))
    assert len(rows) == 12
    assert list(rows[0]) == ["position", "true_reward", "clip_reward_alpha_0", "clip_reward_alpha_1"]
    assert [float(r["true_reward"]) for r in rows[-2:]] == [0.0, 100.0]  # 0.436 is short of the flag, 0.6 past it
    summary = json.loads((out / "landscape_epic.json").read_text())
    assert summary["env_options"] == {"look": "textured"} and summary["num_states"] == 12
    assert set(summary["epic"]) == {"0", "1"} and all(0.0 <= d <= 1.0 for d in summary["epic"].values())
    assert "EPIC distance" in stdout


def test_mountain_car_look_reaches_the_run_config(tmp_path, tiny_clip_dir):
    args = training_cli.parse_args(mountain_car.TASK, ["--look", "flat", "--model", str(tiny_clip_dir), "--out",
                                                       str(tmp_path / "run")])
    config = training_cli.make_config(mountain_car.TASK, args, log=lambda _: None)
    assert config.env == "mountain_car" and config.env_options == {"look": "flat"}
    assert config.prompts == ["a car at the peak of the mountain, next to the yellow flag"]
    assert config.baseline_prompts == ["a car in the mountain"]


def test_mountain_car_bad_look_is_one_error_line(capsys, tmp_path, tiny_clip_dir):
    code, err, _ = run_cli(mountain_car, ["--look", "photo", "--model", str(tiny_clip_dir), "--out",
                                          str(tmp_path / "run")], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "look" in err[0], err
    assert not (tmp_path / "run").exists()


def test_tiny_cartpole_run_end_to_end_then_evaluate(capsys, tmp_path, tiny_clip_dir):
    out = tmp_path / "run"
    code, err, stdout = run_cli(cartpole, [
        "--model", str(tiny_clip_dir), "--image-size", "16", "--num-envs", "2", "--unroll-length", "4",
        "--num-minibatches", "2", "--total-steps", "32", "--episode-length", "8", "--eval-episodes", "1",
        "--out", str(out)], capsys)
    assert code == 0, err
    for name in ("config.json", "metrics.jsonl", "checkpoints", "reward_curve.png", "policy", "rollout.mp4",
                 "eval.json"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["env"] == "cartpole" and config["prompts"] == ["pole vertically upright on top of the cart"]
    assert config["baseline_prompts"] == ["pole and cart"] and config["ppo"]["episode_length"] == 8
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["env_steps"] == 32 and "env/success" in records[-1]
    summary = json.loads((out / "eval.json").read_text())
    assert summary["task"] == "success" and 0.0 <= summary["success_rate"] <= 1.0
    code, err, stdout = run_cli(evaluate, ["--run", str(out)], capsys)
    assert code == 0, err
    assert "success_rate" in stdout and (out / "rollout_eval.mp4").exists()


# --- experiments.mountain_car_reward_shapes ---


def test_reward_shapes_edit_the_landscape_as_documented():
    import math

    from experiments.mountain_car_reward_shapes import FLAG, make_shape

    x = np.linspace(-1.2, 0.6, 181)
    reward = 0.1 * np.sin(20 * x) + 0.2 * x - 0.4  # noisy, rising overall
    reward[x >= FLAG] = 0.3
    valley = np.interp(-math.pi / 6, x, reward)
    below, flag = x < FLAG, x >= FLAG
    np.testing.assert_array_equal(make_shape("landscape", x, reward), reward)
    for name in ("smoothed", "right_ramp", "right_ramp_flat_left", "step", "linear"):
        np.testing.assert_array_equal(make_shape(name, x, reward)[flag], reward[flag])  # the flag's values kept
    ramp = make_shape("right_ramp_flat_left", x, reward)
    slope = (x > -math.pi / 6) & below
    assert np.all(np.diff(ramp[slope]) > 0) and np.allclose(ramp[x <= -math.pi / 6], valley)
    np.testing.assert_array_equal(make_shape("right_ramp", x, reward)[x <= -math.pi / 6], reward[x <= -math.pi / 6])
    np.testing.assert_allclose(make_shape("step", x, reward)[below], valley)
    linear = make_shape("linear", x, reward)[below]
    assert np.all(np.diff(linear) > 0) and np.isclose(linear[0], reward.min()) and np.isclose(linear[-1], reward[below][-1])
    smoothed = make_shape("smoothed", x, reward)[below]
    assert np.std(np.diff(smoothed)) < np.std(np.diff(reward[below]))


def test_reward_shapes_cli_errors_are_one_line(tmp_path, capsys):
    from experiments.mountain_car_reward_shapes import main

    assert main(["--landscape", str(tmp_path / "none.csv"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("position,true_reward\n0.1,0\n")
    assert main(["--landscape", str(tmp_path / "bad.csv"), "--out", str(tmp_path)]) == 2
    assert "clip_reward_alpha_0" in capsys.readouterr().err
    assert main(["--shapes", "wavy", "--out", str(tmp_path)]) == 2
    assert "--shapes 'wavy': unknown 'wavy'; choose from landscape," in capsys.readouterr().err
    assert main(["--discounting", "0", "--out", str(tmp_path)]) == 2
    assert "discounting=0.0 must be in (0, 1]" in capsys.readouterr().err
    assert main(["--entropy-cost", "-0.1", "--out", str(tmp_path)]) == 2
    assert "entropy_cost=-0.1 must be non-negative" in capsys.readouterr().err
    assert main(["--learner", "sac", "--entropy-cost", "0.1", "--out", str(tmp_path)]) == 2
    assert "sac has no setting 'entropy_cost'" in capsys.readouterr().err
