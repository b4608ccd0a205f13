"""The learning-curve summary: part means against hand-computed ones, the speed figures, errors, and the CLI."""

import json

import pytest

from experiments import summarize_run
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.eval.training_summary import format_summary, summarize_training


def records(n=10):
    """n iterations of 100 env steps; env/kneeling = i / 10, the first line compiled."""
    out = []
    for i in range(n):
        r = {"env_steps": 100 * (i + 1), "steps_per_s": 10.0 * (i + 1), "wall_s": 2.0 * (i + 1),
             "env/kneeling": i / 10, "env/vlm_reward": 0.5, "reward_mean": -float(i), "kl_mean": 1.0,
             "note": "text"}
        if i == 0:
            r["compile_s"] = 7.5
        out.append(r)
    return out


def test_part_means_max_last_and_speed_against_hand_computed_values():
    s = summarize_training(records(10), num_parts=4)
    kneel = {m.name: m for m in s.metrics}["env/kneeling"]
    # 10 lines split 3, 3, 2, 2: values 0-.2, .3-.5, .6-.7, .8-.9
    assert kneel.part_means == pytest.approx((0.1, 0.4, 0.65, 0.85))
    assert kneel.max == pytest.approx(0.9) and kneel.last == pytest.approx(0.9)
    assert [m.name for m in s.metrics] == ["env/kneeling", "env/vlm_reward", "reward_mean"]
    assert s.part_bounds == ((100, 300), (400, 600), (700, 800), (900, 1000))
    assert (s.iterations, s.env_steps, s.wall_s, s.compile_s) == (10, 1000, 20.0, 7.5)
    # the compiling first line is left out of the speed: 20..100
    assert (s.steps_per_s_median, s.steps_per_s_min, s.steps_per_s_max) == (60.0, 20.0, 100.0)


def test_patterns_pick_keys_and_a_resumed_run_sums_its_compiles():
    rs = records(4)
    rs[2]["compile_s"] = 2.5
    s = summarize_training(rs, num_parts=2, patterns=["kl_*"])
    assert [m.name for m in s.metrics] == ["kl_mean"]
    assert s.compile_s == 10.0
    assert s.steps_per_s_median == pytest.approx(30.0)  # lines 2 and 4: 20, 40


def test_format_shows_predicates_as_percentages_and_rewards_as_numbers():
    text = format_summary(summarize_training(records(10)))
    row = next(line for line in text.splitlines() if line.startswith("env/kneeling"))
    assert row.split()[1:] == ["10.0%", "40.0%", "65.0%", "85.0%", "90.0%", "90.0%"]
    assert next(line for line in text.splitlines() if line.startswith("env/vlm_reward")).split()[1] == "0.500"
    assert "median 60" in text and "compile 7.5 s" in text


@pytest.mark.parametrize("rs, parts, patterns, match", [
    ([], 4, ("env/*",), "no metrics records"),
    ([{"steps_per_s": 1.0}], 1, ("env/*",), "line 1 has no 'env_steps'"),
    (records(3), 4, ("env/*",), "num_parts=4 must be between 1 and the run's 3"),
    (records(3), 0, ("env/*",), "num_parts=0"),
    (records(3), 2, ("note", "missing/*"), r"no metric matches \['note', 'missing/\*'\]"),
])
def test_bad_input_names_the_value(rs, parts, patterns, match):
    with pytest.raises(VlmrmError, match=match):
        summarize_training(rs, num_parts=parts, patterns=patterns)


def test_cli_prints_and_writes_json(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records(8)))
    out = tmp_path / "summary.json"
    assert summarize_run.main(["--run", str(tmp_path), "--parts", "2", "--json", str(out)]) == 0
    assert "env/kneeling" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["metrics"]["env/kneeling"]["part_means"] == pytest.approx([0.15, 0.55])
    assert d["part_bounds"] == [[100, 400], [500, 800]]


def test_cli_errors_on_a_missing_run_and_a_broken_line(tmp_path, capsys):
    assert summarize_run.main(["--run", str(tmp_path / "nope")]) == 2
    assert "metrics.jsonl does not exist" in capsys.readouterr().err
    lines = [json.dumps(r) for r in records(3)]
    (tmp_path / "metrics.jsonl").write_text("\n".join([lines[0], lines[1][:40], lines[2]]) + "\n")
    assert summarize_run.main(["--run", str(tmp_path), "--parts", "1"]) == 2
    assert "metrics.jsonl line 2 of 3 is not JSON" in capsys.readouterr().err


def test_cli_reads_a_run_killed_while_writing_its_last_line(tmp_path, capsys):
    lines = [json.dumps(r) for r in records(3)]
    (tmp_path / "metrics.jsonl").write_text("\n".join([lines[0], lines[1], lines[2][:40]]))
    assert summarize_run.main(["--run", str(tmp_path), "--parts", "2"]) == 0
    assert capsys.readouterr().out.startswith("2 iterations, 200 env steps")
