"""The main job's CLI: each bad input exits 2 with one line naming the value and the fix."""

import pytest

from experiments import evaluate, humanoid


def run_cli(module, argv, capsys):
    code = module.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("argv, needle", [
    (["--prompt", ""], "empty"),
    (["--prompt", "   "], "empty"),
    (["--baseline-prompt", "\t"], "empty"),
    (["--alpha", "1.5"], "alpha"),
    (["--alpha", "-0.1"], "alpha"),
    (["--total-steps", "0"], "total-steps"),
    (["--num-envs", "-4"], "num-envs"),
    (["--num-envs", "0"], "num-envs"),
    (["--image-size", "0"], "image-size"),
])
def test_bad_arguments(argv, needle, capsys, tmp_path):
    code, err = run_cli(humanoid, argv + ["--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


def test_non_empty_out_without_resume(capsys, tmp_path):
    (tmp_path / "something").write_text("x")
    code, err = run_cli(humanoid, ["--out", str(tmp_path)], capsys)
    assert code == 2 and "--resume" in err[0] and str(tmp_path) in err[0]


def test_unwritable_out(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, err = run_cli(humanoid, ["--out", str(blocker / "run")], capsys)
    assert code == 2 and "not writable" in err[0]


def test_resume_without_a_run(capsys, tmp_path):
    code, err = run_cli(humanoid, ["--out", str(tmp_path), "--resume"], capsys)
    assert code == 2 and "holds no run" in err[0]


def test_evaluate_without_a_run(capsys, tmp_path):
    code, err = run_cli(evaluate, ["--run", str(tmp_path)], capsys)
    assert code == 2 and "config.json" in err[0]


@pytest.fixture
def stored_run(tmp_path):
    """A run directory holding only a config (as a run killed before its first checkpoint leaves it)."""
    from vlmrm_jax.pipeline import RunConfig

    RunConfig(prompts=["a humanoid robot kneeling"], baseline_prompts=["a humanoid robot"], model="humanoid-clip-tiny",
              alpha=0.0, total_steps=64, ppo=dict(num_envs=2, batch_size=2)).save(tmp_path)
    return tmp_path


@pytest.mark.parametrize("argv, needle", [
    (["--alpha", "0.5"], "--alpha 0.5 differs from the run"),
    (["--prompt", "a humanoid robot standing up"], "--prompt ['a humanoid robot standing up'] differs"),
    (["--num-envs", "4"], "--num-envs 4 differs"),
    (["--learning-rate", "0.01"], "--learning-rate 0.01 differs"),
    (["--model", "cartpole-clip-tiny"], "--model 'cartpole-clip-tiny' differs"),
    (["--no-shadows"], "--no-shadows False differs"),
    (["--preset", "accelerator"], "differs from the run"),
])
def test_resume_refuses_flags_that_change_the_trained_run(argv, needle, stored_run, capsys):
    code, err = run_cli(humanoid, ["--out", str(stored_run), "--resume"] + argv, capsys)
    assert code == 2 and len(err) == 1 and needle in err[0] and "another --out" in err[0], err


def test_resume_refuses_total_steps_below_what_was_trained(stored_run, capsys):
    import jax.numpy as jnp

    from vlmrm_jax.rl.checkpoint import Checkpoints

    checkpoints = Checkpoints(stored_run / "checkpoints")
    checkpoints.save(32, {"x": jnp.zeros(2)})
    checkpoints.close()
    code, err = run_cli(humanoid, ["--out", str(stored_run), "--resume", "--total-steps", "16"], capsys)
    assert code == 2 and len(err) == 1 and "--total-steps 16 is below the 32 env steps" in err[0], err


def test_resume_applies_flags_that_do_not_change_the_trained_run(stored_run):
    from experiments.training_cli import parse_args, resume_config

    argv = ["--out", str(stored_run), "--resume", "--total-steps", "128", "--eval-episodes", "2", "--alpha", "0",
            "--num-envs", "2"]
    config = resume_config(humanoid.TASK, parse_args(humanoid.TASK, argv), log=lambda line: None)
    assert (config.total_steps, config.eval_episodes, config.alpha) == (128, 2, 0.0)
    assert config.ppo_config().num_envs == 2 and config.model == "humanoid-clip-tiny"


def test_abbreviated_flags_are_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        humanoid.main(["--total", "8", "--out", str(tmp_path)])
    assert "unrecognized arguments: --total" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["humanoid", "cartpole", "mountain_car", "evaluate", "summarize_run"])
def test_every_flag_has_help_with_its_default(module):
    import importlib

    from experiments import training_cli

    mod = importlib.import_module(f"experiments.{module}")
    parser = mod.build_parser() if hasattr(mod, "build_parser") else training_cli.build_parser(mod.TASK)
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "default" in action.help, (module, action.option_strings)
    text = parser.format_help()
    assert "%(default)" not in text


def test_cpu_preset_picks_the_shipped_model_without_the_hub(monkeypatch):
    from vlmrm_jax import pipeline

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the hub would be asked were it not the cpu preset
    model, why = pipeline.choose_model(None, env="humanoid", prefer_hub=False)
    assert model == "humanoid-clip-tiny" and "shipped in-domain model" in why
    assert pipeline.choose_model("openai/clip-vit-base-patch32", env="humanoid", prefer_hub=False)[0] == \
        "openai/clip-vit-base-patch32"


def test_offline_model_is_the_one_trained_on_the_runs_view():
    import inspect

    from vlmrm_jax import pipeline
    from vlmrm_jax.envs.humanoid import Humanoid

    # a run that leaves an option out takes the env's default, which the first view must be
    defaults = {k: p.default for k, p in inspect.signature(Humanoid).parameters.items() if k in ("look", "camera")}
    assert pipeline.OFFLINE_MODEL_VIEWS["humanoid"][0][0] == defaults == {"look": "brax", "camera": "tracking"}
    assert pipeline.offline_model("humanoid") == pipeline.offline_model("humanoid", {"look": "brax"}) == \
        "humanoid-clip-tiny"
    assert pipeline.offline_model("humanoid", {"look": "paper", "camera": "paper"}) == "humanoid-clip-tiny-paper"
    assert pipeline.offline_model("humanoid", {"look": "paper"}) is None  # paper look through the tracking camera
    assert pipeline.offline_model("humanoid", {"look": "brax", "camera": "oblique"}) is None
    assert pipeline.offline_model("mountain_car", {"look": "flat"}) == "mountain-car-clip-tiny"  # both looks
    assert pipeline.offline_model("nowhere") is None


def test_sac_takes_the_presets_sac_fields_under_its_flags():
    """A preset's ``sac`` fields reach ``RunConfig.sac`` with ``--learner sac``; a SAC flag overrides them; PPO runs
    ignore them."""
    import dataclasses

    from experiments.training_cli import config_fields, parse_args

    presets = {name: dict(p, sac={"discounting": 0.9999, "batch_size": 256}) for name, p in humanoid.TASK.presets.items()}
    task = dataclasses.replace(humanoid.TASK, presets=presets)
    fields = config_fields(task, parse_args(task, ["--learner", "sac", "--preset", "cpu"]))
    assert fields["sac"] == {"discounting": 0.9999, "batch_size": 256}
    fields = config_fields(task, parse_args(task, ["--learner", "sac", "--preset", "cpu", "--discounting", "0.95"]))
    assert fields["sac"] == {"discounting": 0.95, "batch_size": 256}
    assert "sac" not in config_fields(task, parse_args(task, ["--preset", "cpu"]))


def test_comma_list_reads_entries_and_names_the_flag_in_every_error():
    from experiments import comma_list, one_of
    from experiments.reward_landscape import parse_alphas
    from experiments.scaling_sweep import parse_seeds
    from vlmrm_jax.errors import VlmrmError

    assert comma_list(" 4, 16,,64 ", "--num-envs", "16,64", int) == [4, 16, 64]
    assert parse_alphas("0, 0.5,1") == [0.0, 0.5, 1.0] and parse_seeds("3,0") == [3, 0]
    for text, item, needle in [(" , ", str, "--n ' , ' is empty; pass comma-separated values, e.g. --n 1,2"),
                               ("1,x", int, "--n '1,x': 'x' is not a valid entry; pass e.g. --n 1,2"),
                               ("1,1", int, "--n '1,1' repeats a value"),
                               ("a,c", one_of(("a", "b")), "--n 'a,c': unknown 'c'; choose from a, b")]:
        with pytest.raises(VlmrmError) as e:
            comma_list(text, "--n", "1,2", item)
        assert needle in str(e.value), e.value
    with pytest.raises(VlmrmError, match=r"--alphas '0,2': alpha='2' is outside \[0, 1\]"):
        parse_alphas("0,2")
    with pytest.raises(VlmrmError, match=r"--seeds '-1' must be integers in \[0, 2\*\*31\)"):
        parse_seeds("-1")
