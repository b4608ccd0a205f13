"""CartPole and MountainCar: brax env contract under jit + vmap, dynamics against gymnax and gymnasium, renderers
against gymnasium's own (pygame) renderers and known pixels, the textured look's pictures against the task's track."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # gymnasium's renderers use pygame; no display or sound here
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import gymnasium  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gymnax.environments.classic_control import cartpole as gx_cartpole  # noqa: E402
from scipy import ndimage  # noqa: E402

from vlmrm_jax.envs.classic import (MOUNTAIN_CAR_BASELINE_PROMPT, MOUNTAIN_CAR_PROMPT, CartPole,  # noqa: E402
                                    MountainCar, MountainCarState)
from vlmrm_jax.envs.wrappers import STEP_METRICS, wrap_for_vlm_training  # noqa: E402
from vlmrm_jax.errors import VlmrmError  # noqa: E402
from vlmrm_jax.envs.classic import render  # noqa: E402
from vlmrm_jax.rewards import GoalBaselineReward  # noqa: E402

ENVS = {"cartpole": CartPole, "mountain_car": MountainCar}


def structure(state):
    return jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), state)


@pytest.fixture(scope="module", params=sorted(ENVS))
def batched(request):
    """(env, jitted batched reset, jitted batched step) for each task."""
    env = ENVS[request.param]()
    return env, jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))


def test_reset_and_step_under_jit_and_vmap(batched):
    env, reset, step = batched
    state = reset(jax.random.split(jax.random.PRNGKey(0), 3))
    next_state = step(state, jnp.full((3, env.action_size), 0.7))
    for s in (state, next_state):
        assert s.obs.shape == (3, env.observation_size) and s.obs.dtype == jnp.float32
        assert s.reward.shape == (3,) and s.done.shape == (3,)
        assert set(s.metrics) == {"success", "true_reward"}
        np.testing.assert_array_equal(np.asarray(s.metrics["true_reward"]), np.asarray(s.reward))
    # One state structure for reset and step (dtypes and weak types included), so jitted loops compile once.
    assert structure(state) == structure(next_state)
    assert not np.array_equal(np.asarray(state.obs), np.asarray(next_state.obs))
    assert env.action_size == 1 and env.backend == "gymnax"


def test_no_termination_cartpole_keeps_running_after_the_pole_falls():
    env = CartPole()

    @jax.jit
    def run(key):
        def one(state, _):
            state = env.step(state, jnp.ones(1))  # always push right: the pole falls, the cart hits the end
            return state, (state.done, state.reward, state.metrics["success"], state.pipeline_state)

        return jax.lax.scan(one, env.reset(key), None, length=300)[1]

    done, reward, success, states = run(jax.random.PRNGKey(1))
    assert float(done.max()) == 0.0
    assert float(success[0]) == 1.0 and float(success[-1]) == 0.0
    np.testing.assert_array_equal(np.asarray(reward), np.asarray(success))
    assert np.all(np.abs(states.x) <= 2.4) and float(states.x[-1]) == pytest.approx(2.4)  # clipped, as the authors
    assert np.all(states.theta >= -np.pi) and np.all(states.theta < np.pi)  # wrapped, as the authors
    assert np.ptp(states.theta[-100:]) > 1.0  # the pole keeps swinging after falling: nothing stopped


def random_cartpole_states(n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), rng.uniform(-0.2, 0.2, n),
                     rng.uniform(-2, 2, n)], axis=1).astype(np.float32)


def cartpole_state(row):
    x, x_dot, theta, theta_dot = (jnp.float32(v) for v in row)
    return gx_cartpole.EnvState(x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot, time=jnp.int32(0))


@pytest.fixture(scope="module")
def cartpole_step():
    env = CartPole()
    return env, jax.jit(lambda s, a: env.step(env.reset(jax.random.PRNGKey(0)).replace(pipeline_state=s), a))


def test_cartpole_step_matches_gymnax_with_the_sign_mapping(cartpole_step):
    env, step = cartpole_step
    gx = gx_cartpole.CartPole()
    gx_step = jax.jit(lambda s, a: gx.step_env(jax.random.PRNGKey(0), s, a, gx.default_params)[1])
    for row, action in zip(random_cartpole_states(8, 0), [-1.0, -0.3, -0.01, 0.0, 0.01, 0.4, 1.0, 0.9]):
        ours = step(cartpole_state(row), jnp.asarray([action], jnp.float32)).pipeline_state
        theirs = gx_step(cartpole_state(row), int(action > 0))
        for name in ("x", "x_dot", "theta", "theta_dot"):
            np.testing.assert_allclose(float(getattr(ours, name)), float(getattr(theirs, name)), rtol=1e-6,
                                       atol=1e-7)


def test_cartpole_step_matches_gymnasium(cartpole_step):
    env, step = cartpole_step
    gym_env = gymnasium.make("CartPole-v1").unwrapped
    gym_env.reset(seed=0)
    for row, push in zip(random_cartpole_states(6, 1), [0, 1, 1, 0, 1, 0]):
        gym_env.state = row.astype(np.float64)
        expected, *_ = gym_env.step(push)
        got = step(cartpole_state(row), jnp.asarray([1.0 if push else -1.0])).obs
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


def test_mountain_car_step_matches_gymnasium():
    env = MountainCar(look="flat")
    base = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(lambda s, a: env.step(base.replace(pipeline_state=s), a))
    gym_env = gymnasium.make("MountainCarContinuous-v0").unwrapped
    gym_env.reset(seed=0)
    rng = np.random.default_rng(2)
    # Random states below the flag, plus the left wall with a negative velocity (gym zeroes it; gymnax does not).
    cases = [(rng.uniform(-1.2, 0.4), rng.uniform(-0.07, 0.07), rng.uniform(-1.5, 1.5)) for _ in range(8)]
    cases += [(-1.19, -0.05, -1.0), (0.44, 0.05, 1.0)]
    for position, velocity, action in cases:
        gym_env.state = np.asarray([position, velocity], np.float32)
        expected, expected_reward, *_ = gym_env.step(np.asarray([action], np.float32))
        state = MountainCarState(position=jnp.float32(position), velocity=jnp.float32(velocity),
                                 time=jnp.int32(0), reached_flag=jnp.zeros((), bool))
        got = step(state, jnp.asarray([action], jnp.float32))
        if expected[0] >= 0.45:  # the authors clip the position at the flag once reached
            expected = np.asarray([0.45, expected[1]])
        np.testing.assert_allclose(np.asarray(got.obs), expected, rtol=1e-5, atol=1e-6)
        assert float(got.reward) == pytest.approx(expected_reward, rel=1e-5, abs=1e-6)
    assert float(got.metrics["success"]) == 1.0 and float(got.reward) > 99  # the last case reaches the flag


def test_mountain_car_success_stays_set_and_the_car_stays_at_the_flag():
    env = MountainCar(look="flat")
    start = env.reset(jax.random.PRNGKey(0))
    start = start.replace(pipeline_state=start.pipeline_state.replace(position=jnp.float32(0.44),
                                                                      velocity=jnp.float32(0.05)))

    @jax.jit
    def run(state):
        def one(state, action):
            state = env.step(state, action)
            return state, (state.pipeline_state.position, state.metrics["success"])

        actions = jnp.concatenate([jnp.ones((1, 1)), -jnp.ones((60, 1))])  # reach the flag, then drive back down
        return jax.lax.scan(one, state, actions)[1]

    position, success = run(start)
    assert float(position.max()) == pytest.approx(0.45)  # never past the flag (the authors' clip)
    assert float(position[-1]) < 0.3  # it did roll back ...
    assert np.all(np.asarray(success) == 1.0)  # ... but the episode stays a success


def test_clip_reward_on_a_classic_env_under_jit(tiny_clip):
    """MountainCar (textured) + renderer + the tiny CLIP + the paper's prompts, batched and auto-reset, under jit."""
    env = MountainCar()
    reward = GoalBaselineReward.from_embeddings(tiny_clip.embed_text([MOUNTAIN_CAR_PROMPT]),
                                                tiny_clip.embed_text([MOUNTAIN_CAR_BASELINE_PROMPT]), 0.5)
    size = tiny_clip.image_size
    train_env = wrap_for_vlm_training(env, episode_length=4, render_fn=env.make_render_fn(size, size),
                                      embed_fn=lambda frames: tiny_clip.embed_images(tiny_clip.params, frames),
                                      reward=reward, metrics_fn=env.step_metrics_fn())
    reset, step = jax.jit(train_env.reset), jax.jit(train_env.step)
    state = reset(jax.random.split(jax.random.PRNGKey(0), 2))
    first_position = np.asarray(state.pipeline_state.position)
    for _ in range(3):
        state = step(state, jnp.ones((2, 1)))
    assert state.reward.shape == (2,) and np.all(np.isfinite(np.asarray(state.reward)))
    assert set(state.info[STEP_METRICS]) == {"vlm_reward", "success", "true_reward"}
    # The reward is the CLIP reward of the rendered frame, not the task's reward.
    frames = jax.vmap(env.make_render_fn(size, size))(state)
    np.testing.assert_allclose(np.asarray(state.reward), np.asarray(reward(tiny_clip.embed_images(
        tiny_clip.params, frames))), rtol=1e-5, atol=1e-6)
    assert not np.array_equal(np.asarray(state.pipeline_state.position), first_position)
    state = step(state, jnp.ones((2, 1)))
    assert np.all(np.asarray(state.done) == 1.0)  # the episode ended after 4 steps ...
    # ... and was reset to a fresh draw of gym's reset (x ~ U[-0.6, -0.4], at rest), not to its first state.
    position = np.asarray(state.pipeline_state.position)
    assert np.all((position >= -0.6) & (position <= -0.4)) and not np.array_equal(position, first_position)
    np.testing.assert_array_equal(np.asarray(state.pipeline_state.velocity), 0.0)


def test_mountain_car_rejects_an_unknown_look():
    with pytest.raises(VlmrmError, match="look='photo'"):
        MountainCar(look="photo")


# Renderers -------------------------------------------------------------------------------------------------------


def blurred_difference(reference: np.ndarray, frame: np.ndarray) -> float:
    """Largest difference (0..1) between two uint8 RGB frames after a 1.5 px Gaussian blur: anti-aliasing and
    one-pixel rounding differences stay well under 0.4; a shape drawn in the wrong place reaches ~0.55 or more."""
    blur = lambda im: ndimage.gaussian_filter(im.astype(np.float64) / 255, (1.5, 1.5, 0))  # noqa: E731
    return float(np.abs(blur(reference) - blur(frame)).max())


def to_uint8(frame) -> np.ndarray:
    return np.round(np.asarray(frame) * 255).astype(np.uint8)


def test_cartpole_renderer_matches_gymnasium():
    gym_env = gymnasium.make("CartPole-v1", render_mode="rgb_array")
    gym_env.reset(seed=0)
    ours = jax.jit(render.make_cartpole_renderer(600, 400, supersample=1))
    for x, theta in [(0.0, 0.0), (1.0, 0.3), (-1.7, -1.0), (0.33, 2.5)]:
        gym_env.unwrapped.state = np.asarray([x, 0.0, theta, 0.0])
        frame = to_uint8(ours(jnp.float32(x), jnp.float32(theta)))
        assert blurred_difference(gym_env.render(), frame) < 0.4
    # The comparison can fail: the pole 3 degrees off is caught.
    assert blurred_difference(gym_env.render(), to_uint8(ours(jnp.float32(0.33), jnp.float32(2.55)))) > 0.4


def test_flat_mountain_car_renderer_matches_gymnasium():
    gym_env = gymnasium.make("MountainCarContinuous-v0", render_mode="rgb_array")
    gym_env.reset(seed=0)
    ours = jax.jit(render.make_mountain_car_renderer(600, 400, look="flat", supersample=1))
    for position in [-1.2, -0.5, 0.1, 0.45]:
        gym_env.unwrapped.state = np.asarray([position, 0.0])
        assert blurred_difference(gym_env.render(), to_uint8(ours(jnp.float32(position)))) < 0.4
    assert blurred_difference(gym_env.render(), to_uint8(ours(jnp.float32(0.43)))) > 0.4


@pytest.mark.parametrize("name", ["cartpole", "flat", "textured"])
def test_renderers_give_float_frames_under_jit_and_vmap(name):
    width, height = 40, 24  # not square, to catch swapped axes
    if name == "cartpole":
        env = CartPole()
    else:
        env = MountainCar(look=name)
    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 3))
    frames = jax.jit(jax.vmap(env.make_render_fn(width, height)))(states)
    assert frames.shape == (3, height, width, 3) and frames.dtype == jnp.float32
    assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0
    assert float(frames.std()) > 0.05  # something is drawn


def test_cartpole_pixels_of_a_known_state():
    width, height = 120, 80  # 5 canvas px per pixel
    frame = np.asarray(jax.jit(render.make_cartpole_renderer(width, height))(jnp.float32(1.0), jnp.float32(0.0)))
    col = lambda u: int(u / 5)  # noqa: E731
    row = lambda v: int((400 - v) / 5)  # noqa: E731
    cart_u = 1.0 * 125 + 300  # 1 m right of the centre at 125 canvas px per metre
    np.testing.assert_allclose(frame[row(170), col(cart_u)], np.asarray((202, 152, 101)) / 255, atol=1e-6)  # pole
    np.testing.assert_allclose(frame[row(92), col(cart_u - 20)], 0.0, atol=1e-6)  # cart body
    np.testing.assert_allclose(frame[row(170), col(cart_u - 30)], 1.0, atol=1e-6)  # background beside the pole
    np.testing.assert_allclose(frame[row(170), col(300)], 1.0, atol=1e-6)  # nothing at the centre


def canvas_pixel(position, local, angle, lift, width, height):
    """Pixel (row, col) of a point given in the car's frame (canvas px, x along the car, y up from its bottom), for a
    car whose bottom centre is ``lift`` canvas px above the track at ``position`` and which is rotated by ``angle``."""
    scale = 600 / 1.8
    u = (position + 1.2) * scale + np.cos(angle) * local[0] - np.sin(angle) * local[1]
    v = lift + (np.sin(3 * position) * 0.45 + 0.55) * scale + np.sin(angle) * local[0] + np.cos(angle) * local[1]
    return int((400 - v) * height / 400), int(u * width / 600)


@pytest.mark.parametrize("position", [-0.9, -0.52, 0.2])
def test_mountain_car_car_is_drawn_at_its_position(position):
    width, height = 300, 200
    flat = np.asarray(jax.jit(render.make_mountain_car_renderer(width, height, look="flat"))(jnp.float32(position)))
    textured = np.asarray(jax.jit(render.make_mountain_car_renderer(width, height, look="textured"))(
        jnp.float32(position)))
    # Flat (gym): a black 40 x 20 body, bottom centre 10 px above the track, rotated by cos(3 x) radians.
    body = canvas_pixel(position, (0.0, 10.0), np.cos(3 * position), 10.0, width, height)
    np.testing.assert_allclose(flat[body], 0.0, atol=1e-6)
    above = canvas_pixel(position, (0.0, 40.0), np.cos(3 * position), 10.0, width, height)
    np.testing.assert_allclose(flat[above], 1.0, atol=1e-6)
    # Textured: the sprite stands on the track, rotated to the slope; its door (texel 128, 40 of 256 x 112) is red.
    length = render.MOUNTAIN_CAR_SPRITE_LENGTH
    slope = np.arctan(1.35 * np.cos(3 * position))
    door = canvas_pixel(position, (0.0, 40 / 256 * length), slope, 0.0, width, height)
    r, g, b = textured[door]
    assert r > 0.55 and g < 0.35 and b < 0.35
    for other in (position - 0.15, position + 0.15):  # not drawn elsewhere
        r, g, b = textured[canvas_pixel(other, (0.0, 40 / 256 * length), slope, 0.0, width, height)]
        assert not (r > 0.55 and g < 0.35 and b < 0.35)


def test_textured_background_follows_the_track_and_shows_the_flag():
    textures = render.load_mountain_car_textures()
    background = textures.background
    assert background.shape == (400, 600, 3) and textures.sprite.shape[-1] == 4
    for u in range(20, 590, 15):
        surface = render.mountain_car_height(render.MOUNTAIN_CAR_MIN_POSITION + (u + 0.5) / render.MOUNTAIN_CAR_SCALE)
        surface_row = 400 - surface * render.MOUNTAIN_CAR_SCALE
        r, g, b = background[int(surface_row) + 3, u]
        assert r > g > b, u  # the dirt road just below the track
        r, g, b = background[int(surface_row) - 6, u]
        assert not (r > g > b), u  # sky, mountains or the flag just above it
    flag_col = int((render.MOUNTAIN_CAR_GOAL_POSITION - render.MOUNTAIN_CAR_MIN_POSITION) * render.MOUNTAIN_CAR_SCALE)
    flag = background[:100, flag_col:flag_col + 30]
    yellow = (flag[..., 0] > 0.8) & (flag[..., 1] > 0.65) & (flag[..., 2] < 0.3)
    assert yellow.sum() > 200  # the yellow flag next to the goal


def test_renderer_bad_input():
    with pytest.raises(VlmrmError, match="width=0"):
        render.make_cartpole_renderer(0, 10)
    with pytest.raises(VlmrmError, match="supersample"):
        render.make_mountain_car_renderer(10, 10, supersample=0)
    with pytest.raises(VlmrmError, match="look='photo'"):
        render.make_mountain_car_renderer(10, 10, look="photo")


def test_missing_pictures_raise(monkeypatch, tmp_path):
    monkeypatch.setattr(render, "MOUNTAIN_CAR_BACKGROUND", tmp_path / "missing.png")
    render.load_mountain_car_textures.cache_clear()
    try:
        with pytest.raises(VlmrmError, match="make_assets"):
            render.load_mountain_car_textures()
    finally:
        render.load_mountain_car_textures.cache_clear()
