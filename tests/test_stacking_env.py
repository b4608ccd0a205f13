"""The block-stacking env: predicates on constructed states, pick/place physics, shapes under jit + vmap, rendering
against MuJoCo's native segmentation render, and bad input.

One jitted batched step (batch 2) and one renderer per camera are compiled per module and shared by the tests.
"""

import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from experiments.render_compare import stacking_scenes
from vlmrm_jax.envs import make_env
from vlmrm_jax.envs.stacking import predicates
from vlmrm_jax.envs.stacking.camera import CAMERAS
from vlmrm_jax.envs.stacking.env import GRASP_TOLERANCE, REACH, Stacking, sample_start_positions
from vlmrm_jax.envs.stacking.language import SUBGOALS, on_top_caption, subgoal_id
from vlmrm_jax.envs.stacking.scene import BASKET_HALF, CUBE_HALF, GRIPPER_HOME
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.render import FixedCamera, RenderConfig, Renderer

H = CUBE_HALF
HOME = jnp.asarray(GRIPPER_HOME, jnp.float32)
#: red, green, blue apart on the floor.
SCATTER = np.array([[-0.07, -0.06, H], [0.07, -0.06, H], [0.0, 0.06, H]], np.float32)


@pytest.fixture(scope="module")
def env():
    return make_env("stacking", task="stack_red_on_blue")


@pytest.fixture(scope="module")
def build(env):
    """state_from_positions, jitted once (batched via stacking the outputs)."""
    return jax.jit(env.state_from_positions)


@pytest.fixture(scope="module")
def step(env):
    """jit(vmap(env.step)) for batches of 2 states."""
    return jax.jit(jax.vmap(env.step))


def batch(*states):
    return jax.tree.map(lambda *x: jnp.stack(x), *states)


def unbatch(states, i):
    return jax.tree.map(lambda x: x[i], states)


def action_at(xy):
    return jnp.asarray(np.asarray(xy, np.float32) / REACH)


def truth(env, state):
    return dict(zip(SUBGOALS, np.asarray(env.subgoal_truth(state)).tolist()))


# ----------------------------------------------------------------------------------------------- predicates


def test_predicates_on_constructed_states(env, build):
    scatter = build(SCATTER, -1, HOME)
    assert not np.any(np.asarray(env.subgoal_truth(scatter)))

    on_blue = SCATTER.copy()
    on_blue[0] = [0.0, 0.06, 3 * H]  # red on blue
    stacked = build(on_blue, -1, HOME)
    t = truth(env, stacked)
    assert t[on_top_caption("red", "blue")] and sum(t.values()) == 1
    assert bool(env.task_success(stacked)) and float(stacked.reward) == 1.0 and float(stacked.done) == 1.0

    # offset by more than ON_TOP_XY, or floating one cube too high: not on top
    for offset in ([predicates.ON_TOP_XY + 0.003, 0, 0], [0, 0, 2 * H]):
        shifted = on_blue.copy()
        shifted[0] += offset
        assert not bool(predicates.on_top_of(build(shifted, -1, HOME).pipeline_state, "red", "blue"))

    # held: red in the gripper; grasping only while the weld is on and the cube hangs at its grasp pose
    held = build(SCATTER, 0, jnp.array([0.0, 0.0, 0.2]))
    t = truth(env, held)
    assert t["The robot is grasping the red object"] and sum(t.values()) == 1
    data = held.pipeline_state
    assert not bool(predicates.grasping(data.replace(eq_active=jnp.zeros(3, bool)), "red"))
    far = data.replace(qpos=data.qpos.at[2].add(predicates.GRASP_DISTANCE + 0.005))
    assert not bool(predicates.grasping(far, "red"))
    # a held cube over another is not "on top of" it
    over = build(on_blue, 0, jnp.array([0.0, 0.06, 3 * H + 0.037]))
    assert not bool(predicates.on_top_of(over.pipeline_state, "red", "blue"))
    # a moving cube is not resting
    moving = stacked.pipeline_state.replace(qvel=stacked.pipeline_state.qvel.at[0].set(
        2 * predicates.RESTING_SPEED))
    assert not bool(predicates.on_top_of(moving, "red", "blue"))


def test_tower_tasks(env, build):
    tower = np.array([[0.0, 0.0, 3 * H], [0.0, 0.0, 5 * H], [0.0, 0.0, H]], np.float32)  # blue, red, green
    data = build(tower, -1, HOME).pipeline_state
    assert bool(predicates.task_success(data, "stack_all"))
    assert bool(predicates.task_success(data, "tower_blue_red_green"))
    assert not bool(predicates.task_success(data, "tower_red_blue_green"))
    assert bool(predicates.task_success(data, "stack_red_on_blue")) and bool(
        predicates.task_success(data, "stack_green_on_red"))
    assert not bool(predicates.task_success(data, "stack_green_on_blue"))  # not directly on it
    two = tower.copy()
    two[1] = [0.09, 0.09, H]
    assert not bool(predicates.task_success(build(two, -1, HOME).pipeline_state, "stack_all"))


def test_start_positions_are_inside_and_apart():
    pos = np.asarray(jax.vmap(sample_start_positions)(jax.random.split(jax.random.PRNGKey(0), 256)))
    assert np.all(np.abs(pos[..., :2]) <= REACH) and np.allclose(pos[..., 2], H)
    gaps = np.max(np.abs(pos[:, :, None, :2] - pos[:, None, :, :2]), axis=-1)
    off_diagonal = ~np.eye(3, dtype=bool)
    assert np.all(gaps[:, off_diagonal] >= 2 * H + 0.01 - 1e-6)


# ----------------------------------------------------------------------------------------------- physics


def test_pick_and_place_moves_a_cube_onto_another_and_a_misplaced_cube_falls(env, build, step):
    start = batch(build(SCATTER, -1, HOME), build(SCATTER, -1, HOME))
    # env 0 picks red at its centre; env 1 misses red by more than the grasp tolerance.
    red = SCATTER[0, :2]
    miss = red + [GRASP_TOLERANCE + 0.003, 0.0]
    picked = step(start, jnp.stack([action_at(red), action_at(miss)]))
    assert np.asarray(picked.info["held"]).tolist() == [0, -1]
    assert truth(env, unbatch(picked, 0))["The robot is grasping the red object"]
    assert not np.any(np.asarray(env.subgoal_truth(unbatch(picked, 1))))
    np.testing.assert_allclose(np.asarray(picked.obs[1, :9]), SCATTER.ravel(), atol=2e-3)  # nothing moved

    # env 0 places red on blue; then the same from a fresh grasp but 0.8 edge off blue's centre: it falls.
    blue = SCATTER[2, :2]
    placed = step(picked, jnp.stack([action_at(blue), action_at(blue)]))
    s0 = unbatch(placed, 0)
    assert int(placed.info["held"][0]) == -1 and bool(env.task_success(s0)) and float(placed.reward[0]) == 1.0
    np.testing.assert_allclose(np.asarray(predicates.cube_positions(s0.pipeline_state))[0],
                               [*blue, 3 * H], atol=4e-3)

    regrasp = step(batch(build(SCATTER, -1, HOME), build(SCATTER, -1, HOME)),
                   jnp.stack([action_at(red), action_at(red)]))
    edge = blue + [1.6 * H, 0.0]
    fallen = step(regrasp, jnp.stack([action_at(blue), action_at(edge)]))
    fallen = step(fallen, jnp.stack([action_at([0.09, 0.09]), action_at([0.09, 0.09])]))  # a miss: time passes
    assert float(fallen.reward[0]) == 1.0 and float(fallen.reward[1]) == 0.0
    red_z = np.asarray(predicates.cube_positions(unbatch(fallen, 1).pipeline_state))[0, 2]
    assert red_z < 2 * H, f"the misplaced cube should have fallen off (z = {red_z:.3f} m)"


def test_shapes_dtypes_and_episode_end_under_jit_and_vmap(env, step):
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(3), 2))
    assert states.obs.shape == (2, 16) and states.obs.dtype == jnp.float32
    assert env.observation_size == 16 and env.action_size == 2
    after = step(states, jnp.zeros((2, 2)))
    for name in ("obs", "reward", "done"):
        assert getattr(after, name).dtype == getattr(states, name).dtype == jnp.float32
    assert after.reward.shape == after.done.shape == (2,)
    assert after.info["steps"].dtype == jnp.int32 and np.all(np.asarray(after.info["steps"]) == 1)
    assert jax.tree.structure(after) == jax.tree.structure(states)
    one_hot = np.asarray(after.obs[:, 12:])
    assert np.all(one_hot.sum(-1) == 1) and np.all(one_hot[np.arange(2), np.asarray(after.info["held"]) + 1] == 1)
    assert np.all(np.asarray(after.done) == 0.0)
    metrics = env.step_metrics_fn()(unbatch(after, 0))
    assert set(metrics) == {"success", *SUBGOALS} and env.task_metric(["anything"]) == "success"
    np.testing.assert_array_equal(np.asarray(env.episode_success(jnp.array([[False, True], [False, False]]))),
                                  [False, True])


def test_actions_outside_the_basket_are_clipped_and_episodes_end(env, build, step):
    """Documented: actions are clipped to [-1, 1], so (5, -7) picks at the corner (REACH, -REACH); the
    episode_length-th action ends the episode."""
    corner = SCATTER.copy()
    corner[1] = [REACH, -REACH, H]
    start = build(corner, -1, HOME, steps=env.episode_length - 1)
    out = step(batch(start, start), jnp.array([[5.0, -7.0], [1.0, -1.0]]))
    assert np.all(np.asarray(out.done) == 1.0) and np.all(np.asarray(out.info["steps"]) == env.episode_length)
    assert np.asarray(out.info["held"]).tolist() == [1, 1]
    np.testing.assert_allclose(np.asarray(out.obs[0]), np.asarray(out.obs[1]), atol=1e-5)
    assert np.all(np.abs(np.asarray(out.obs[:, :2])) < BASKET_HALF)


# ----------------------------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def native_segmentation(request):
    """MuJoCo's native segmentation render ``(m, d, camera, size) -> int [H, W]`` (geom ids, -1 background),
    through MUJOCO_GL's headless backend (egl unless set to osmesa), as in tests/test_render.py."""
    from mujoco.rendering.classic import gl_context

    backend = os.environ.get("MUJOCO_GL", "").lower() or "egl"
    try:
        if backend == "osmesa":
            from mujoco.osmesa import GLContext
        else:
            from mujoco.egl import GLContext
    except Exception as error:  # noqa: BLE001
        pytest.fail(f"MuJoCo's native renderer needs headless OpenGL (libegl1 or libosmesa6): {error!r}")
    saved = gl_context.GLContext
    gl_context.GLContext = GLContext
    request.addfinalizer(lambda: setattr(gl_context, "GLContext", saved))

    def render(m, d, camera, size):
        with mujoco.Renderer(m, size, size) as renderer:
            renderer.enable_segmentation_rendering()
            renderer.update_scene(d, camera.to_mjv_camera(m, d))
            image = renderer.render()
        return np.where(image[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, image[..., 0], -1)

    return render


@pytest.mark.parametrize("camera", CAMERAS)
def test_segmentation_matches_mujoco(env, native_segmentation, camera):
    size = 64
    segment = jax.jit(Renderer(env.mj_model, FixedCamera(camera), RenderConfig(size, size)).segmentation)
    cube_geoms = {env.mj_model.geom(c).id for c in ("red", "green", "blue")}
    for kind, state in stacking_scenes(env, seed=1).items():
        ours = np.asarray(segment(env.sys, state.pipeline_state))
        data = mjx.get_data(env.mj_model, state.pipeline_state)
        mujoco.mj_forward(env.mj_model, data)
        reference = native_segmentation(env.mj_model, data, FixedCamera(camera), size)
        assert cube_geoms <= set(np.unique(ours).tolist()), f"{kind}: every cube should be in view"
        assert np.mean(ours == reference) >= 0.99, kind


def test_render_and_frames_shapes(env, build):
    state = build(SCATTER, -1, HOME)
    frames = jax.jit(env.make_frames_fn(24, 16, shadows=False))(state)
    assert frames.shape == (2, 16, 24, 3) and frames.dtype == jnp.float32
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert not np.allclose(np.asarray(frames[0]), np.asarray(frames[1])), "two different viewpoints"
    single = jax.eval_shape(env.make_render_fn(128, 128, camera=CAMERAS[1]), state)  # the paper's size
    assert single.shape == (128, 128, 3) and single.dtype == jnp.float32


# ----------------------------------------------------------------------------------------------- bad input


def test_bad_input_raises_one_line_errors(env, build):
    with pytest.raises(VlmrmError, match="unknown stacking task 'stack_red_on_red'"):
        make_env("stacking", task="stack_red_on_red")
    with pytest.raises(VlmrmError, match="episode_length=0"):
        Stacking(episode_length=0)
    with pytest.raises(VlmrmError, match="unknown colour 'purple'"):
        predicates.grasping(build(SCATTER, -1, HOME).pipeline_state, "purple")
    with pytest.raises(VlmrmError, match="on top of itself"):
        predicates.on_top_of(None, "red", 0)
    with pytest.raises(VlmrmError, match="cube index 3"):
        predicates.cube_index(3)
    with pytest.raises(VlmrmError, match="camera 'top' is not a stacking camera"):
        env.make_render_fn(camera="top")
    with pytest.raises(VlmrmError, match="bad option for environment 'stacking'"):
        make_env("stacking", colour="red")
    assert subgoal_id(SUBGOALS[4]) == 4
