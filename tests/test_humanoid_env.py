"""The MJX humanoid with VLM-RM's set-up: shapes under jit, no termination, zero env reward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlmrm_jax.envs import make_env
from vlmrm_jax.errors import VlmrmError


@pytest.fixture(scope="module")
def env():
    return make_env("humanoid")


@pytest.fixture(scope="module")
def rollout_states(env):
    """A jitted 80-step rollout with strong random actions (enough for the humanoid to fall)."""

    @jax.jit
    def run(state, actions):
        def step(state, action):
            state = env.step(state, action)
            lowest = state.pipeline_state.geom_xpos[1:, 2].min()  # geom 0 is the floor
            return state, (state.reward, state.done, state.pipeline_state.xpos[1, 2], state.obs, lowest)

        return jax.lax.scan(step, state, actions)

    actions = jax.random.uniform(jax.random.PRNGKey(1), (80, env.action_size), minval=-1, maxval=1)
    return run(jax.jit(env.reset)(jax.random.PRNGKey(0)), actions)


def test_sizes(env):
    assert env.observation_size == 244 and env.action_size == 17
    assert env.dt == pytest.approx(0.015)


def test_reset_and_step_shapes(env, rollout_states):
    state, (rewards, dones, torso_z, obs, _) = rollout_states
    assert state.obs.shape == (244,) and state.obs.dtype == jnp.float32
    assert rewards.shape == (80,) and obs.shape == (80, 244)
    assert np.all(np.isfinite(np.asarray(obs)))


def test_no_env_reward_and_no_termination(rollout_states):
    _, (rewards, dones, torso_z, _, _) = rollout_states
    np.testing.assert_array_equal(np.asarray(rewards), 0.0)
    np.testing.assert_array_equal(np.asarray(dones), 0.0)
    # brax's humanoid would have terminated below 1.0 m; this one keeps going while the torso drops.
    assert float(torso_z[0]) > 1.2 and float(torso_z.min()) < float(torso_z[0])


def test_fallen_body_rests_on_the_floor(rollout_states):
    """Every body geom collides with the floor: after the fall no geom centre is below it (brax's model lets only
    the feet touch the floor, so a fallen humanoid sinks head first)."""
    _, (_, _, torso_z, _, lowest) = rollout_states
    assert float(torso_z[-1]) < 0.5  # fallen
    assert float(np.min(lowest)) > 0.0


def test_unknown_env():
    with pytest.raises(VlmrmError, match="humanoid"):
        make_env("humanoid-v9")


def test_step_keeps_the_reset_state_structure(env):
    """Same tree, shapes, dtypes and weak types after reset and step, so jitted code compiles once."""
    reset = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    stepped = jax.eval_shape(env.step, reset, jnp.zeros(env.action_size))
    assert jax.tree.structure(reset) == jax.tree.structure(stepped)
    for a, b in zip(jax.tree.leaves(reset), jax.tree.leaves(stepped)):
        assert (a.shape, a.dtype, a.weak_type) == (b.shape, b.dtype, b.weak_type)


# Looks and cameras -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paper_env():
    return make_env("humanoid", look="paper", camera="paper")


def test_paper_look_changes_appearance_only(env, paper_env):
    """VLM-RM's textured scene: the assets' pixels in the model's textures, a matte floor, white geoms, one light
    straight down; masses, geometry, joints and solver options are brax's."""
    import imageio.v3 as iio
    from vlmrm_jax.envs.humanoid.look import ASSETS

    brax, paper = env.sys.mj_model, paper_env.sys.mj_model
    for name in ("body_mass", "geom_size", "geom_pos", "jnt_range", "qpos0", "geom_contype", "geom_conaffinity"):
        np.testing.assert_array_equal(getattr(brax, name), getattr(paper, name), err_msg=name)
    assert brax.opt.timestep == paper.opt.timestep
    for tex_id, file in ((0, "sky.png"), (paper.texture("texgeom").id, "robot.png"),
                         (paper.texture("texplane").id, "tiles.png")):
        adr, size = paper.tex_adr[tex_id], paper.tex_width[tex_id] * paper.tex_height[tex_id] * 3
        np.testing.assert_array_equal(paper.tex_data[adr:adr + size], iio.imread(ASSETS / file)[..., :3].ravel())
        assert not np.array_equal(brax.tex_data[adr:adr + size], paper.tex_data[adr:adr + size])
    floor = paper.material("MatPlane").id
    assert paper.mat_reflectance[floor] == 0 and brax.mat_reflectance[floor] > 0
    np.testing.assert_array_equal(paper.geom_rgba, 1.0)
    np.testing.assert_allclose(paper.light_dir, [[0.0, 0.0, -1.0]])


def test_shipped_textures_are_what_the_script_makes(tmp_path):
    from experiments.make_humanoid_textures import main
    from vlmrm_jax.envs.humanoid.look import ASSETS

    assert main(["--out", str(tmp_path)]) == 0
    for file in ("sky.png", "tiles.png", "robot.png"):
        assert (tmp_path / file).read_bytes() == (ASSETS / file).read_bytes(), file


def test_paper_camera_is_fixed_and_agrees_with_tracking_at_reset(env, paper_env):
    """The authors' camera (gymnasium's FREE camera at look-at (0, 0, 1)) sees what the tracking camera sees while
    the torso is at x = y = 0, and stays put when the humanoid moves."""
    from vlmrm_jax.envs.humanoid.camera import CAMERAS

    import types

    import mujoco

    model = env.sys.mj_model
    mj_data = mujoco.MjData(model)
    mujoco.mj_forward(model, mj_data)  # the reset pose without noise (brax's reset adds +-0.01)
    data = types.SimpleNamespace(xpos=jnp.asarray(mj_data.xpos))
    moved = types.SimpleNamespace(xpos=data.xpos.at[:, :2].add(jnp.array([-1.0, 0.5])))
    paper, tracking = CAMERAS["paper"], CAMERAS["tracking"]
    assert paper_env.camera == "paper" and env.camera == "tracking"
    for a, b in zip(paper.pose(model, data), tracking.pose(model, data)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(paper.pose(model, moved).eye, paper.pose(model, data).eye)
    np.testing.assert_allclose(np.asarray(tracking.pose(model, moved).eye - tracking.pose(model, data).eye)[:2],
                               [-1.0, 0.5], atol=1e-5)
    np.testing.assert_allclose(paper.pose(model, data).eye, [3.5 * np.cos(np.deg2rad(10)), 0.0,
                                                             1.0 + 3.5 * np.sin(np.deg2rad(10))], atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [(dict(look="photo"), "look='photo'"),
                                           (dict(camera="drone"), "camera='drone'")])
def test_unknown_look_or_camera(kwargs, match):
    with pytest.raises(VlmrmError, match=match):
        make_env("humanoid", **kwargs)
