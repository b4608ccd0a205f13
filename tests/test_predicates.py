"""Pose predicates: hand-built poses (MuJoCo CPU kinematics) against the rules, features against NumPy, success
criterion against NumPy, and the predicates on a real MJX rollout of the humanoid env."""

from __future__ import annotations

import dataclasses
import os
import re

import brax
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from vlmrm_jax.envs.humanoid import Humanoid
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.envs.humanoid.predicates import (PREDICATES, PROMPT_TO_TASK, HumanoidParts, PoseThresholds, episode_success,
                                       evaluate_predicates, make_predicates, pose_features, predicates_of_qpos,
                                       success_rate,
                                       task_for_prompt)
from vlmrm_jax.envs.humanoid.reference_poses import REFERENCE_POSES, ReferencePose, pose_data, pose_qpos

#: Reference pose -> the predicates that must hold in it; all others must not.
EXPECTED = {
    "standing": {"standing"},
    "wide_stance": {"standing"},
    "arms_raised": {"standing", "arms_raised"},
    "hands_on_hips": {"standing", "hands_on_hips"},
    "arms_crossed": {"standing", "arms_crossed"},
    "one_leg": {"standing", "one_leg"},
    "kneeling": {"kneeling"},
    "kneeling_on_heels": {"kneeling"},
    "one_knee": {"kneeling"},
    "squat": {"squatting"},
    "sitting": {"sitting"},
    "lotus": {"sitting", "lotus"},
    "splits": {"sitting", "splits"},
    "bending_over": set(),
    "lying_on_back": {"lying_down", "fallen"},
    "lying_face_down": {"lying_down", "fallen"},
    "lying_on_side": {"lying_down", "fallen"},
}

PAPER_TASKS = {"kneeling", "lotus", "standing", "arms_raised", "splits", "hands_on_hips", "arms_crossed", "one_leg"}


@pytest.fixture(scope="module")
def env():
    return Humanoid()


@pytest.fixture(scope="module")
def mj_model(env):
    return env.sys.mj_model


def _stack(datas):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *datas)


@pytest.fixture(scope="module")
def pose_batch(mj_model):
    """All reference poses as one mjx.Data with leaves [P, ...], in the order of EXPECTED."""
    return _stack([mjx.put_data(mj_model, pose_data(mj_model, REFERENCE_POSES[name])) for name in EXPECTED])


@pytest.fixture(scope="module")
def evaluate(mj_model):
    """evaluate_predicates under jit, for any leading batch shape (one compile per shape)."""
    return jax.jit(lambda data: evaluate_predicates(mj_model, data))


def test_every_predicate_has_an_expected_pose_and_every_reference_pose_is_tested():
    assert set(EXPECTED) == set(REFERENCE_POSES)
    assert set().union(*EXPECTED.values()) == set(PREDICATES)


def test_reference_poses_satisfy_exactly_their_predicates(evaluate, pose_batch):
    holds = evaluate(pose_batch)
    assert set(holds) == set(PREDICATES)
    for task, values in holds.items():
        assert values.shape == (len(EXPECTED),) and values.dtype == jnp.bool_
        for pose, value in zip(EXPECTED, np.asarray(values)):
            assert value == (task in EXPECTED[pose]), f"{task} on pose {pose!r}"


def test_predicates_of_stored_qpos_match_the_expected_poses(mj_model):
    qpos = np.stack([pose_qpos(mj_model, REFERENCE_POSES[name]) for name in EXPECTED])
    holds = predicates_of_qpos(mj_model, qpos)
    assert set(holds) == set(PREDICATES)
    for task, values in holds.items():
        assert values.shape == (len(EXPECTED),) and values.dtype == bool
        assert {pose for pose, value in zip(EXPECTED, values) if value} == {
            pose for pose, tasks in EXPECTED.items() if task in tasks}, task
    with pytest.raises(VlmrmError, match=r"qpos has shape \(24,\), expected \[N, 24\]"):
        predicates_of_qpos(mj_model, qpos[0])


def test_predicate_fns_jit_vmap_and_leading_axes_agree(env, mj_model, evaluate, pose_batch):
    holds = evaluate(pose_batch)
    num = len(EXPECTED)
    # [T, B] = [2, P]: the second row is the first one reversed.
    order = np.arange(num)[::-1]
    stacked = jax.tree.map(lambda x: jnp.stack([x, x[order]]), pose_batch)
    holds_tb = evaluate(stacked)
    one = jax.tree.map(lambda x: x[0], pose_batch)
    for task, predicate in PREDICATES.items():
        batched = jax.jit(jax.vmap(predicate.fn, in_axes=(None, 0)))(env.sys, pose_batch)
        np.testing.assert_array_equal(batched, holds[task])
        over_time = jax.vmap(jax.vmap(lambda d: predicate.fn(mj_model, d)))(stacked)
        np.testing.assert_array_equal(over_time, holds_tb[task])
        np.testing.assert_array_equal(holds_tb[task], np.stack([holds[task], np.asarray(holds[task])[order]]))
        single = predicate.fn(mj_model, one)
        assert single.shape == () and single.dtype == jnp.bool_ and bool(single) == bool(holds[task][0])


def _random_data(model: mujoco.MjModel, seed: int) -> mujoco.MjData:
    """A random pose: hinge angles uniform in their ranges, a random root orientation and position."""
    rng = np.random.default_rng(seed)
    data = mujoco.MjData(model)
    data.qpos[:3] = rng.uniform(-1, 1, 3)
    quat = rng.normal(size=4)
    data.qpos[3:7] = quat / np.linalg.norm(quat)
    for joint in range(1, model.njnt):
        low, high = model.jnt_range[joint]
        data.qpos[model.jnt_qposadr[joint]] = rng.uniform(low, high)
    mujoco.mj_forward(model, data)
    return data


def test_features_match_numpy_on_random_poses(mj_model):
    """Every feature against a direct NumPy computation from MuJoCo's own kinematics, named by body and geom."""
    datas = [_random_data(mj_model, seed) for seed in range(3)]
    features = pose_features(HumanoidParts.from_model(mj_model), _stack([mjx.put_data(mj_model, d) for d in datas]))

    for i, d in enumerate(datas):
        body = lambda name: d.body(name).xpos
        geom = lambda name: d.geom(name).xpos
        torso_rot = d.body("torso").xmat.reshape(3, 3)
        pelvis_rot = d.body("pelvis").xmat.reshape(3, 3)
        expected = {"head_z": geom("head")[2], "torso_z": body("torso")[2], "butt_z": geom("butt")[2],
                    "torso_tilt_cos": torso_rot[:, 2] @ np.array([0.0, 0.0, 1.0])}
        knee = [body(f"{s}_shin") for s in ("right", "left")]
        hip = [body(f"{s}_thigh") for s in ("right", "left")]
        foot = [geom(f"{s}_foot") for s in ("right", "left")]
        hand = [geom(f"{s}_hand") for s in ("right", "left")]
        cosines = [np.dot(k - h, f - k) / np.linalg.norm(k - h) / np.linalg.norm(f - k)
                   for h, k, f in zip(hip, knee, foot)]
        expected["knee_flexion"] = np.arccos(np.clip(cosines, -1, 1))
        expected["knee_z"] = [k[2] for k in knee]
        expected["foot_z"] = [f[2] for f in foot]
        expected["foot_behind_knee"] = [(k - f) @ pelvis_rot[:, 0] for k, f in zip(knee, foot)]
        expected["knee_separation"] = np.linalg.norm(knee[0] - knee[1])
        expected["foot_separation"] = abs((foot[1] - foot[0]) @ pelvis_rot[:, 1])
        expected["hand_above_head"] = [h[2] - geom("head")[2] for h in hand]
        hip_points = [body("pelvis") + pelvis_rot @ np.array([-0.02, side * 0.16, 0.0]) for side in (-1, 1)]
        expected["hand_to_hip"] = [np.linalg.norm(h - p) for h, p in zip(hand, hip_points)]
        expected["hand_in_torso"] = [torso_rot.T @ (h - body("torso")) for h in hand]
        expected["lowest_z"] = min([geom("head")[2], body("torso")[2], geom("butt")[2]] + expected["knee_z"]
                                   + [h[2] for h in hand])
        assert set(expected) == set(features._fields)
        for name, value in expected.items():
            np.testing.assert_allclose(getattr(features, name)[i], value, atol=2e-5, err_msg=name)


def test_torso_tilt_follows_root_rotation(mj_model):
    thresholds = PoseThresholds()
    tilts = np.deg2rad([0.0, 20.0, 35.0, 60.0, 90.0])
    datas = []
    for tilt in tilts:  # rotate the standing pose about the world x-axis, then rest it on the floor
        pose = ReferencePose("tilted", {}, (float(np.cos(tilt / 2)), float(np.sin(tilt / 2)), 0.0, 0.0))
        datas.append(mjx.put_data(mj_model, pose_data(mj_model, pose)))
    features = pose_features(HumanoidParts.from_model(mj_model), _stack(datas))
    np.testing.assert_allclose(features.torso_tilt_cos, np.cos(tilts), atol=1e-6)
    # With no head-height minimum, standing is decided by upright_tilt_max (0.5 rad) alone.
    loose = make_predicates(dataclasses.replace(thresholds, standing_head_min=0.0))["standing"]
    np.testing.assert_array_equal(loose.fn(mj_model, _stack(datas)), tilts <= thresholds.upright_tilt_max)


def test_thresholds_are_used(mj_model, pose_batch):
    names = list(EXPECTED)
    standing = mjx.put_data(mj_model, pose_data(mj_model, REFERENCE_POSES["standing"]))  # head at 1.48 m
    assert bool(PREDICATES["standing"].fn(mj_model, standing))
    strict = PoseThresholds(standing_head_min=1.5)
    assert not bool(make_predicates(strict)["standing"].fn(mj_model, standing))
    holds = evaluate_predicates(mj_model, pose_batch, ["standing", "arms_raised"], strict)
    assert set(holds) == {"standing", "arms_raised"} and not np.asarray(holds["arms_raised"]).any()
    # Feet 1.49 m apart in the straddle: a 1.6 m minimum rejects it, 1.4 m accepts it.
    splits = names.index("splits")
    for minimum, expected in [(1.4, True), (1.6, False)]:
        thresholds = PoseThresholds(splits_foot_separation_min=minimum)
        holds = evaluate_predicates(mj_model, pose_batch, ["splits"], thresholds)
        assert bool(holds["splits"][splits]) == expected


def test_a_pose_sunk_through_the_floor_does_not_count(mj_model):
    """brax's humanoid collides with the floor only with its feet; the kneeling pose 0.2 m into the floor (knees at
    -0.12 m) is not kneeling, unless the penetration tolerance allows it."""
    data = mujoco.MjData(mj_model)
    data.qpos[:] = pose_qpos(mj_model, REFERENCE_POSES["kneeling"])
    data.qpos[2] -= 0.2
    mujoco.mj_forward(mj_model, data)
    sunk = mjx.put_data(mj_model, data)
    assert not any(bool(p.fn(mj_model, sunk)) for p in PREDICATES.values())
    lenient = make_predicates(PoseThresholds(floor_penetration_max=0.3))
    assert bool(lenient["kneeling"].fn(mj_model, sunk))


def test_reference_poses_rest_on_the_floor_within_joint_limits(mj_model):
    floor = mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    body_geoms = [g for g in range(mj_model.ngeom) if mj_model.geom_bodyid[g] != 0]
    fromto = np.zeros(6)
    for name, pose in REFERENCE_POSES.items():
        data = pose_data(mj_model, pose)
        gaps = [mujoco.mj_geomDistance(mj_model, data, floor, g, 10.0, fromto) for g in body_geoms]
        assert abs(min(gaps)) < 1e-6, name
        hinges = range(1, mj_model.njnt)
        angles = np.array([data.qpos[mj_model.jnt_qposadr[j]] for j in hinges])
        assert np.all(angles >= mj_model.jnt_range[1:, 0] - 1e-9) and np.all(angles <= mj_model.jnt_range[1:, 1] + 1e-9)


def test_pose_qpos_rejects_bad_joints(mj_model):
    with pytest.raises(VlmrmError, match="right_knee=10"):
        pose_qpos(mj_model, ReferencePose("bent the wrong way", {"right_knee": 10}))
    with pytest.raises(VlmrmError, match="'right_wrist'"):
        pose_qpos(mj_model, ReferencePose("no wrist", {"right_wrist": 0}))


def test_parts_resolve_on_mjx_and_mujoco_models(env, mj_model):
    parts = HumanoidParts.from_model(mj_model)
    assert HumanoidParts.from_model(env.sys) == parts
    assert mj_model.body(parts.torso).name == "torso" and mj_model.geom(parts.hands[1]).name == "left_hand"
    # The unfused MJCF (with separate foot bodies) works too.
    raw = mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(brax.__file__), "envs/assets/humanoid.xml"))
    assert raw.geom(HumanoidParts.from_model(raw).feet[0]).name == "right_foot"


def test_errors_name_the_bad_value(mj_model, pose_batch):
    other = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><body name="torso"><freejoint/><geom size=".1"/></body></worldbody></mujoco>')
    with pytest.raises(VlmrmError, match="'pelvis'"):
        HumanoidParts.from_model(other)
    with pytest.raises(VlmrmError, match="'crawling'"):
        evaluate_predicates(mj_model, pose_batch, ["standing", "crawling"])
    wrong = pose_batch.replace(xpos=pose_batch.xpos[..., :5, :])
    with pytest.raises(VlmrmError, match=r"data.xpos has shape \(17, 5, 3\)"):
        PREDICATES["standing"].fn(mj_model, wrong)


def test_prompts_and_descriptions():
    assert set(PROMPT_TO_TASK.values()) == PAPER_TASKS and len(PROMPT_TO_TASK) == 8
    for task, predicate in PREDICATES.items():
        assert predicate.name == task
        assert (predicate.prompt is not None) == (task in PAPER_TASKS)
        if predicate.prompt is not None:
            assert PROMPT_TO_TASK[predicate.prompt] == task and task_for_prompt(predicate.prompt) == task
        # Every threshold a description names exists, and every description names one.
        named = set(re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", predicate.description)) - set(PREDICATES)
        fields = {f.name for f in dataclasses.fields(PoseThresholds)}
        assert named and named <= fields, (task, named - fields)
    assert task_for_prompt("  A humanoid robot   KNEELING. ") == "kneeling"
    assert task_for_prompt("a humanoid robot standing up, with both arms raised") == "arms_raised"
    assert task_for_prompt("a humanoid robot") is None
    assert task_for_prompt("a humanoid robot dancing") is None


def test_episode_success_and_success_rate_match_numpy():
    rng = np.random.default_rng(0)
    steps, episodes = 100, 64
    holds = rng.random((steps, episodes)) < rng.random(episodes)  # each episode its own hold probability
    holds[:, 0], holds[:50, 1], holds[:49, 2] = True, True, True  # 100%, exactly 50%, 49%
    holds[50:, 1], holds[49:, 2] = False, False
    for fraction in (0.5, 0.25, 1.0):
        expected = holds.sum(axis=0) >= fraction * steps
        got = episode_success(jnp.asarray(holds), fraction)
        assert got.shape == (episodes,) and got.dtype == jnp.bool_
        np.testing.assert_array_equal(got, expected)
        rate = success_rate(jnp.asarray(holds), fraction)
        assert rate.shape == () and rate.dtype == jnp.float32
        np.testing.assert_allclose(rate, expected.mean(), rtol=1e-6)
    assert bool(episode_success(jnp.asarray(holds[:, 1]))) and not bool(episode_success(jnp.asarray(holds[:, 2])))
    np.testing.assert_array_equal(jax.jit(episode_success)(jnp.asarray(holds)), holds.mean(axis=0) >= 0.5)


def test_success_errors():
    holds = jnp.ones((10, 2), bool)
    with pytest.raises(VlmrmError, match="dtype float32"):
        episode_success(holds.astype(jnp.float32))
    with pytest.raises(VlmrmError, match=r"shape \(10, 2, 1\)"):
        episode_success(holds[..., None])
    with pytest.raises(VlmrmError, match=r"shape \(0, 2\)"):
        success_rate(holds[:0])
    with pytest.raises(VlmrmError, match=r"shape \(10,\)"):
        success_rate(holds[:, 0])
    for fraction in (0.0, 1.5):
        with pytest.raises(VlmrmError, match=f"min_fraction={fraction}"):
            episode_success(holds, fraction)


def test_predicates_on_an_mjx_rollout(env):
    """Zero actions from reset: the humanoid starts standing and collapses within the 100-step (1.5 s) episode."""
    steps, episodes = 100, 2

    @jax.jit
    def run(keys):
        state = jax.vmap(env.reset)(keys)
        step = jax.vmap(env.step)

        def body(state, _):
            state = step(state, jnp.zeros((episodes, env.action_size)))
            return state, state.pipeline_state

        _, states = jax.lax.scan(body, state, None, length=steps)
        return states, evaluate_predicates(env.sys, states)

    states, holds = run(jax.random.split(jax.random.PRNGKey(0), episodes))
    assert holds["standing"].shape == (steps, episodes)
    assert np.asarray(holds["standing"][0]).all() and not np.asarray(holds["standing"][-1]).any()
    assert not np.asarray(holds["fallen"][0]).any() and np.asarray(holds["fallen"][-1]).all()
    head_z = np.asarray(states.geom_xpos[..., HumanoidParts.from_model(env.sys).head, 2])
    np.testing.assert_array_equal(holds["fallen"], head_z <= PoseThresholds().fallen_head_max)
    np.testing.assert_array_equal(success_rate(holds["standing"]),
                                  np.mean(np.asarray(holds["standing"]).mean(axis=0) >= 0.5))
