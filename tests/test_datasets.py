"""Captioned-frame datasets: caption vocabularies, the on-disk format and its errors, and the env caption sources."""

from __future__ import annotations

import json

import jax
import mujoco
import numpy as np
import pytest
from mujoco import mjx
from vlm_toy_data import TOY_CAPTIONS, ToySource

from vlmrm_jax.datasets import CaptionSet, Concept, ConceptSubset, load_dataset, unknown_prompts, write_dataset
from vlmrm_jax.envs import make_source
from vlmrm_jax.envs.classic.captions import cartpole_labels, mountain_car_labels
from vlmrm_jax.errors import DatasetError, VlmrmError

# --- caption vocabularies ---


def test_caption_labels_expand_concepts_to_every_phrasing():
    labels = np.array([[True, False, True], [False, True, True]])
    expanded = TOY_CAPTIONS.caption_labels(labels)
    assert TOY_CAPTIONS.captions == ["a red square", "a square that is red", "a blue square", "a square that is blue",
                                     "a square on grey"]
    np.testing.assert_array_equal(expanded, [[1, 1, 0, 0, 1], [0, 0, 1, 1, 1]])
    assert TOY_CAPTIONS.goal_prompts == {"red": "a red square", "blue": "a blue square"}
    assert TOY_CAPTIONS.baseline_prompt == "a square on grey"
    assert CaptionSet.from_json(json.loads(json.dumps(TOY_CAPTIONS.to_json()))) == TOY_CAPTIONS


def test_caption_set_rejects_inconsistent_vocabularies():
    with pytest.raises(VlmrmError, match="baseline concept 'nope'"):
        CaptionSet((Concept("a", ("x",)),), baseline="nope")
    with pytest.raises(VlmrmError, match="caption 'x' belongs to two concepts"):
        CaptionSet((Concept("a", ("x",)), Concept("b", ("x",))), baseline="a")
    with pytest.raises(VlmrmError, match="prompt 'y' is not among its captions"):
        Concept("a", ("x",), prompt="y")
    with pytest.raises(VlmrmError, match="unknown concept 'z'"):
        TOY_CAPTIONS.concept("z")


def test_unknown_prompts_ignore_case_spaces_and_full_stop():
    assert unknown_prompts(TOY_CAPTIONS, ["A red  square.", "a green square", "a square on grey"]) == [
        "a green square"]


def test_every_paper_prompt_is_a_caption():
    from vlmrm_jax.envs.classic.captions import CARTPOLE_CAPTIONS, MOUNTAIN_CAR_CAPTIONS
    from vlmrm_jax.envs.humanoid.captions import HUMANOID_CAPTIONS
    from vlmrm_jax.envs.classic import CARTPOLE_BASELINE_PROMPT, CARTPOLE_PROMPT, MOUNTAIN_CAR_BASELINE_PROMPT
    from vlmrm_jax.envs.classic import MOUNTAIN_CAR_PROMPT
    from vlmrm_jax.envs.humanoid.predicates import PROMPT_TO_TASK

    assert HUMANOID_CAPTIONS.goal_prompts == {task: prompt for prompt, task in PROMPT_TO_TASK.items()}
    assert HUMANOID_CAPTIONS.baseline_prompt == "a humanoid robot"
    assert CARTPOLE_CAPTIONS.goal_prompts == {"upright": CARTPOLE_PROMPT}
    assert CARTPOLE_CAPTIONS.baseline_prompt == CARTPOLE_BASELINE_PROMPT
    assert MOUNTAIN_CAR_CAPTIONS.goal_prompts == {"at_flag": MOUNTAIN_CAR_PROMPT}
    assert MOUNTAIN_CAR_CAPTIONS.baseline_prompt == MOUNTAIN_CAR_BASELINE_PROMPT


# --- on-disk format ---


@pytest.fixture()
def toy_dataset(tmp_path):
    source = ToySource()
    return write_dataset(tmp_path / "toy", source, source.generate(20, seed=3, chunk_size=8), seed=3)


def test_dataset_round_trip(toy_dataset):
    data = load_dataset(toy_dataset)
    batches = list(ToySource().generate(20, seed=3, chunk_size=8))
    np.testing.assert_array_equal(data.images, np.concatenate([b.images for b in batches]))
    np.testing.assert_array_equal(data.labels, np.concatenate([b.labels for b in batches]))
    np.testing.assert_array_equal(data.states, np.concatenate([b.states for b in batches]))
    assert len(data) == 20 and data.env == "toy" and data.captions == TOY_CAPTIONS
    assert data.positive_counts() == {k: int(n) for k, n in zip(TOY_CAPTIONS.keys, data.labels.sum(0))}
    assert data.manifest["num_frames"] == 20 and len(data.manifest["shards"]) == 3
    assert data.positive_counts()["shape"] == 20


def test_write_refuses_a_non_empty_directory_unless_overwrite(toy_dataset):
    source = ToySource()
    with pytest.raises(DatasetError, match="not empty; pass --overwrite"):
        write_dataset(toy_dataset, source, source.generate(4, seed=0), seed=0)
    write_dataset(toy_dataset, source, source.generate(4, seed=0), seed=0, overwrite=True)
    assert len(load_dataset(toy_dataset)) == 4
    assert [p.name for p in toy_dataset.parent.iterdir()] == ["toy"]  # no temporary directories left behind


def test_write_with_no_frames_leaves_nothing(tmp_path):
    with pytest.raises(DatasetError, match="no frames were generated"):
        write_dataset(tmp_path / "none", ToySource(), iter([]), seed=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "manifest.json").unlink(), "has no manifest.json"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "manifest.json is not valid JSON"),
    (lambda d: (d / "images-00001.npy").unlink(), "images-00001.npy is missing"),
    (lambda d: (d / "labels.npy").write_bytes((d / "labels.npy").read_bytes()[:-3]), "labels.npy does not match"),
    (lambda d: (d / "captions.json").write_text("{}"), "captions.json does not match"),
])
def test_corrupt_datasets_give_one_line_errors(toy_dataset, damage, message):
    damage(toy_dataset)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(toy_dataset)
    assert "\n" not in str(info.value) and str(toy_dataset) in str(info.value)


def test_truncated_shard_is_caught_without_checksums(toy_dataset):
    shard = toy_dataset / "images-00000.npy"
    shard.write_bytes(shard.read_bytes()[:200])
    with pytest.raises(DatasetError, match="images-00000.npy is unreadable|images-00000.npy holds"):
        load_dataset(toy_dataset, verify=False)


def test_missing_and_empty_dataset_directories(tmp_path):
    with pytest.raises(DatasetError, match="no dataset at"):
        load_dataset(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="is empty"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        load_dataset(tmp_path / "file")


def test_unknown_environment():
    with pytest.raises(VlmrmError, match="unknown environment 'pong'.*cartpole, humanoid, mountain_car"):
        make_source("pong")


def test_humanoid_source_takes_a_look_and_camera_and_other_envs_refuse_them():
    from experiments.make_vlm_dataset import parse_args, source_options

    source = make_source("humanoid", **source_options("humanoid", 32, True, look="paper", camera="oblique"))
    assert (source.config["look"], source.config["camera"]) == ("paper", "oblique")
    assert (source._env.look, source._env.camera) == ("paper", "oblique")
    assert make_source("humanoid").config["camera"] == "tracking"
    with pytest.raises(VlmrmError, match="camera='fisheye' is not a humanoid camera"):
        make_source("humanoid", camera="fisheye")
    with pytest.raises(VlmrmError, match=r"--camera apply to the humanoid only, not --env cartpole"):
        source_options("cartpole", 32, True, camera="oblique")
    with pytest.raises(VlmrmError, match=r"--policy-fraction 0.5 needs --policy-states"):
        source_options("humanoid", 32, True, policy_fraction=0.5)
    assert source_options("humanoid", 32, True, policy_states="s.npz")["policy_fraction"] == 0.25
    args = parse_args(["--env", "humanoid", "--out", "d", "--policy-states", "a.npz", "b.npz"])
    assert args.policy_states == ["a.npz", "b.npz"]


def test_humanoid_policy_mode_draws_the_saved_states(tmp_path):
    from types import SimpleNamespace

    from vlmrm_jax.pipeline import save_rollout_states

    rng = np.random.default_rng(0)
    qpos = rng.normal(size=(5, 3, 24))  # [T, episodes, nq], as a rollout stacks its states
    qvel = rng.normal(size=(5, 3, 23))
    path = save_rollout_states(tmp_path / "states.npz",
                               SimpleNamespace(pipeline_state=SimpleNamespace(qpos=qpos, qvel=qvel)))
    with np.load(path) as f:
        np.testing.assert_allclose(f["qpos"][2, 4], qpos[4, 2], rtol=1e-6)  # [episodes, T, nq]
    source = make_source("humanoid", image_size=32, mode_weights=(1.0, 1.0, 1.0, 0.0), policy_states=str(path),
                         policy_fraction=0.5)
    assert source.mode_weights[4] == 0.5 and source.config["policy_fraction"] == 0.5
    state_qpos, state_qvel, modes = source.sample_states(64, seed=3)
    policy = modes == source.modes.index("policy")
    assert 16 < policy.sum() < 48 and not (modes == source.modes.index("rollout")).any()
    saved = {tuple(np.float32(q)) for q in qpos.reshape(-1, 24)}
    assert all(tuple(np.float32(q)) in saved for q in state_qpos[policy])
    assert not any(tuple(np.float32(q)) in saved for q in state_qpos[~policy])
    assert np.abs(state_qvel[policy]).min() > 0 and not state_qvel[~policy].any()
    with pytest.raises(VlmrmError, match="give both"):
        make_source("humanoid", policy_states=str(path))
    # Several files (successive retraining rounds) are pooled: each file's states are drawn.
    path2 = tmp_path / "states2.npz"
    np.savez(path2, qpos=rng.normal(size=(2, 4, 24)), qvel=rng.normal(size=(2, 4, 23)))
    pooled = make_source("humanoid", image_size=32, mode_weights=(1.0, 1.0, 1.0, 0.0),
                         policy_states=[path, str(path2)], policy_fraction=0.9)
    assert pooled.config["policy_states"] == [str(path), str(path2)] and len(pooled._policy_qpos) == 15 + 8
    pooled_qpos, _, pooled_modes = pooled.sample_states(200, seed=1)
    pooled_qpos = pooled_qpos[pooled_modes == pooled.modes.index("policy")]
    with np.load(path2) as f:
        second = {tuple(np.float32(q)) for q in f["qpos"].reshape(-1, 24)}
    drawn = [tuple(np.float32(q)) for q in pooled_qpos]
    assert any(q in saved for q in drawn) and any(q in second for q in drawn)
    assert all(q in saved or q in second for q in drawn)
    with pytest.raises(VlmrmError, match=r"policy_states=\[\] names no file"):
        make_source("humanoid", policy_states=[], policy_fraction=0.1)
    np.savez(tmp_path / "short.npz", qpos=np.zeros((4, 20)), qvel=np.zeros((4, 23)))
    with pytest.raises(VlmrmError, match=r"short.npz.*qpos \(4, 20\)"):
        make_source("humanoid", policy_states=[path, tmp_path / "short.npz"], policy_fraction=0.1)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(VlmrmError, match="not a readable .npz.*--save-states"):
        make_source("humanoid", policy_states=str(tmp_path / "bad.npz"), policy_fraction=0.1)
    np.savez(tmp_path / "short.npz", qpos=np.zeros((4, 20)), qvel=np.zeros((4, 23)))
    with pytest.raises(VlmrmError, match=r"qpos \(4, 20\).*\[\.\.\., 24\]"):
        make_source("humanoid", policy_states=str(tmp_path / "short.npz"), policy_fraction=0.1)
    with pytest.raises(VlmrmError, match="no qpos/qvel"):
        save_rollout_states(tmp_path / "x.npz", SimpleNamespace(pipeline_state=np.zeros(3)))


# --- classic sources ---


def test_cartpole_labels_follow_the_state():
    x = np.array([0.0, 0.0, 0.0, 0.0, -1.0, 1.5, -2.0])
    theta = np.radians([5.0, -30.0, 30.0, 170.0, -11.0, 90.0, 0.0])
    labels = cartpole_labels(x, theta)
    keys = ["upright", "leaning_left", "leaning_right", "fallen", "cart_left", "cart_right", "cart_centre",
            "cartpole"]
    expected = {0: {"upright", "cart_centre"}, 1: {"leaning_left", "cart_centre"},
                2: {"leaning_right", "cart_centre"}, 3: {"fallen", "cart_centre"}, 4: {"upright", "cart_left"},
                5: {"fallen", "cart_right"}, 6: {"upright", "cart_left"}}
    for i, names in expected.items():
        assert {k for k, v in zip(keys, labels[i]) if v} == names | {"cartpole"}, i


def test_mountain_car_labels_follow_the_position():
    labels = mountain_car_labels(np.array([0.45, -0.52, -1.1, 0.0, -0.8]))
    keys = ["at_flag", "valley", "left_hill", "right_slope", "mountain_car"]
    got = [{k for k, v in zip(keys, row) if v} - {"mountain_car"} for row in labels]
    assert got == [{"at_flag"}, {"valley"}, {"left_hill"}, {"right_slope"}, set()]


def test_classic_sources_render_deterministic_labelled_frames():
    cart = make_source("cartpole", image_size=32)
    first, again = next(cart.generate(6, seed=1)), next(cart.generate(6, seed=1))
    np.testing.assert_array_equal(first.images, again.images)
    assert first.images.shape == (6, 32, 32, 3) and first.images.dtype == np.uint8
    np.testing.assert_array_equal(first.labels, cartpole_labels(first.states[:, 0], first.states[:, 1]))
    car = make_source("mountain_car", image_size=32)
    batch = next(car.generate(8, seed=0))
    np.testing.assert_array_equal(batch.labels, mountain_car_labels(batch.states[:, 0]))
    looks = batch.states[:, 1].astype(int)
    assert set(looks) == {0, 1}  # both looks drawn
    flat_mean = batch.images[looks == 0].mean()
    assert flat_mean > batch.images[looks == 1].mean() + 40  # the flat look is mostly white


def test_concept_subset_keeps_the_frames_and_only_the_named_labels(tmp_path):
    subset, columns = TOY_CAPTIONS.subset(["blue"])
    assert subset.keys == ("blue", "shape") and columns.tolist() == [1, 2]  # the baseline is always kept
    assert subset.goal_prompts == {"blue": "a blue square"}
    full = list(ToySource().generate(12, seed=5, chunk_size=8))
    source = ConceptSubset(ToySource(), ("blue",))
    assert source.config == {**ToySource().config, "concepts": ["blue", "shape"]}
    data = load_dataset(write_dataset(tmp_path / "blue", source, source.generate(12, seed=5, chunk_size=8), seed=5))
    np.testing.assert_array_equal(data.images, np.concatenate([b.images for b in full]))
    np.testing.assert_array_equal(data.labels, np.concatenate([b.labels for b in full])[:, [1, 2]])
    assert data.captions == subset and data.manifest["source_config"]["concepts"] == ["blue", "shape"]
    with pytest.raises(VlmrmError, match="unknown concept 'green'; choose one of red, blue, shape"):
        TOY_CAPTIONS.subset(["green"])
    with pytest.raises(VlmrmError, match="no concepts to keep"):
        ConceptSubset(ToySource(), ())


def test_make_vlm_dataset_concepts_flag(tmp_path, capsys):
    from experiments.make_vlm_dataset import main

    out = tmp_path / "goal"
    assert main(["--env", "mountain_car", "--num-frames", "6", "--image-size", "16", "--concepts", "at_flag",
                 "--out", str(out)]) == 0
    data = load_dataset(out)
    assert data.captions.keys == ("at_flag", "mountain_car")
    np.testing.assert_array_equal(data.labels, mountain_car_labels(data.states[:, 0])[:, [0, 4]])
    assert main(["--env", "mountain_car", "--num-frames", "6", "--image-size", "16", "--concepts", "flag",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "unknown concept 'flag'; choose one of at_flag, valley" in capsys.readouterr().err


# --- humanoid source ---


@pytest.fixture(scope="module")
def humanoid_frames():
    # No rollout mode here: compiling brax's step for the rollouts would double the cost (see the slow test below).
    source = make_source("humanoid", image_size=32, settle_steps=2, mode_weights=(1.0, 1.0, 1.0, 0.0))
    return source, next(source.generate(8, seed=5, chunk_size=8))


@pytest.mark.slow
def test_humanoid_rollout_states_come_from_random_actions():
    source = make_source("humanoid", image_size=32, rollout_length=20)
    qpos, qvel = source._rollout_states(jax.random.PRNGKey(0), 4)
    assert qpos.shape == (4, 24) and qvel.shape == (4, 23)
    assert np.abs(qvel).max() > 0.1  # moving, not the reset state
    assert len({tuple(np.round(q, 4)) for q in qpos}) == 4


def test_humanoid_frames_are_labelled_by_the_predicates_of_their_settled_state(humanoid_frames):
    from vlmrm_jax.envs.humanoid.predicates import evaluate_predicates

    source, batch = humanoid_frames
    assert batch.images.shape == (8, 32, 32, 3) and batch.images.dtype == np.uint8
    assert batch.states.shape == (8, 24) and batch.labels.shape == (8, len(source.captions.concepts))
    model = source._mj_model
    datas = []
    for qpos in batch.states:  # MuJoCo's own kinematics of the saved (settled) qpos, independent of the MJX path
        data = mujoco.MjData(model)
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        datas.append(mjx.put_data(model, data))
    data = jax.tree.map(lambda *xs: np.stack(xs), *datas)
    holds = evaluate_predicates(model, data)
    for c, key in enumerate(source.captions.keys):
        expected = np.ones(8, bool) if key == "humanoid" else np.asarray(holds[key])
        np.testing.assert_array_equal(batch.labels[:, c], expected, err_msg=key)
    assert batch.images.std(axis=(1, 2, 3)).min() > 5  # a scene, not a blank frame
    assert source.sample_states(8, seed=5)[2].tolist() == batch.modes.tolist()


def test_humanoid_reference_poses_are_within_limits_and_on_the_floor(humanoid_frames):
    source, _ = humanoid_frames
    rng = np.random.default_rng(0)
    model = source._mj_model
    for mode in ("reference", "mixed", "random"):
        for _ in range(5):
            qpos = source.sample_pose(mode, rng)
            data = mujoco.MjData(model)
            data.qpos[:] = qpos
            mujoco.mj_kinematics(model, data)
            assert np.linalg.norm(qpos[3:7]) == pytest.approx(1.0)
            hinge = np.rad2deg(qpos[7:])
            ranges = np.rad2deg(model.jnt_range[1:])
            assert np.all(hinge >= ranges[:, 0] - 1e-6) and np.all(hinge <= ranges[:, 1] + 1e-6)
            # the lowest body point touches the floor unless the pose was dropped (root raised by at most max_drop)
            lowest = min(data.geom_xpos[g, 2] - model.geom_rbound[g] for g in range(1, model.ngeom))
            assert -0.25 < lowest < source.max_drop + 0.01
    with pytest.raises(VlmrmError, match="unknown pose mode"):
        source.sample_pose("rollout", rng)
