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
