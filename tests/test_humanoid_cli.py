"""The humanoid CLI's --look / --camera flags: help, the run config, one-line errors and the --resume check (parse
level: nothing is built or trained)."""

import json

import pytest

from experiments import humanoid, training_cli


def run_cli(argv, capsys):
    code = humanoid.main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


def make_run(tmp_path, tiny_clip_dir, *flags):
    """A run directory holding only the config.json that ``flags`` give (what a run killed before its first
    checkpoint leaves)."""
    out = tmp_path / "run"
    args = training_cli.parse_args(humanoid.TASK, [*flags, "--model", str(tiny_clip_dir), "--out", str(out)])
    config = training_cli.make_config(humanoid.TASK, args, log=lambda _: None)
    out.mkdir()
    config.save(out)
    return out, config


def test_help_lists_the_flags_with_their_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        humanoid.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0
    assert "--look LOOK" in text and "(default: paper)" in text
    assert "--camera CAMERA" in text and text.count("(default: paper)") == 2
    assert "humanoid-clip-tiny-paper for paper + paper, humanoid-clip-tiny for brax + tracking" in text


@pytest.mark.parametrize("flags, options", [
    ([], {"look": "paper", "camera": "paper"}),
    (["--camera", "tracking"], {"look": "paper", "camera": "tracking"}),
    (["--look", "brax", "--camera", "tracking"], {"look": "brax", "camera": "tracking"}),
])
def test_flags_reach_the_saved_run_config(flags, options, tmp_path, tiny_clip_dir):
    out, config = make_run(tmp_path, tiny_clip_dir, *flags)
    assert config.env == "humanoid" and config.env_options == options
    assert json.loads((out / "config.json").read_text())["env_options"] == options
    assert config.prompts == ["a humanoid robot kneeling"] and config.baseline_prompts == ["a humanoid robot"]


@pytest.mark.parametrize("argv, needle", [
    (["--look", "photo"], "--look 'photo' is not a humanoid look; choose one of brax, paper"),
    (["--camera", "top"], "--camera 'top' is not a humanoid camera; choose one of tracking, paper"),
    (["--look", "paper", "--camera", "Paper"], "--camera 'Paper'"),
])
def test_bad_value_is_one_error_line_and_touches_nothing(argv, needle, capsys, tmp_path, tiny_clip_dir):
    code, err = run_cli(argv + ["--model", str(tiny_clip_dir), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, value, stored", [("--camera", "tracking", "paper"), ("--look", "brax", "paper")])
def test_resume_refuses_a_changed_look_or_camera(flag, value, stored, capsys, tmp_path, tiny_clip_dir):
    out, _ = make_run(tmp_path, tiny_clip_dir)
    before = (out / "config.json").read_text()
    code, err = run_cli(["--resume", flag, value, "--out", str(out)], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {flag} {value!r} differs from the run in {out}, trained with {stored!r}"), err
    assert (out / "config.json").read_text() == before
    assert not (out / "checkpoints").exists()  # a refused resume leaves the run directory as it was


def test_resume_keeps_the_stored_options_and_takes_matching_flags(tmp_path, tiny_clip_dir):
    out, config = make_run(tmp_path, tiny_clip_dir, "--camera", "tracking")
    for flags in ([], ["--camera", "tracking"], ["--look", "paper"]):
        args = training_cli.parse_args(humanoid.TASK, ["--resume", *flags, "--out", str(out)])
        resumed = training_cli.resume_config(humanoid.TASK, args, log=lambda _: None)
        assert resumed.env_options == {"look": "paper", "camera": "tracking"}, flags


@pytest.mark.parametrize("flags, model", [
    ([], "humanoid-clip-tiny-paper"),
    (["--look", "brax", "--camera", "tracking"], "humanoid-clip-tiny"),
])
def test_cpu_preset_picks_the_clip_trained_on_the_runs_look_and_camera(flags, model, tmp_path):
    args = training_cli.parse_args(humanoid.TASK, [*flags, "--preset", "cpu", "--out", str(tmp_path / "run")])
    logged = []
    config = training_cli.make_config(humanoid.TASK, args, log=logged.append)
    assert config.model == model
    assert any(line.startswith(f"model: {model} (the shipped in-domain model for humanoid") for line in logged), logged


def test_cpu_preset_without_a_clip_for_the_runs_camera_says_to_pass_model(capsys, tmp_path):
    code, err = run_cli(["--camera", "oblique", "--preset", "cpu", "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and len(err) == 1, err
    assert "no shipped model was trained on humanoid frames with camera oblique, look paper" in err[0]
    assert "humanoid-clip-tiny (look brax, camera tracking)" in err[0] and "pass --model PATH" in err[0]
    assert not (tmp_path / "run").exists()
