"""The language-centred agent: policy heads, the episode buffer, collect & infer under jit, subgoal advancing,
checkpoint resume and bad input.

Collect & infer runs on a small kinematic stand-in with the stacking env's API (``ToyStacking``: obs [16], pick /
place actions, ``subgoal_truth``, ``task_success``), so the test checks the learner, not the MJX physics; the
detector is the toy's ground truth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Env, State

from vlmrm_jax.agent import (CollectInfer, CollectInferConfig, EpisodeBuffer, PolicyConfig, act, action_cell,
                             bc_loss, cell_centres, stored_mask)
from vlmrm_jax.envs.stacking.language import SUBGOALS, STACK_PAIRS, get_task, subgoal_id
from vlmrm_jax.errors import VlmrmError

HALF = 0.12  # basket half width (m); actions [-1, 1] map to +-HALF
CUBE = 0.05  # cube edge (m)


class ToyStacking(Env):
    """Three cubes on a 0.24 m square; an action picks the top cube under (x, y) (within half a cube edge) when
    nothing is held, else places the held cube there (on top of the cube under it, or on the floor)."""

    def __init__(self, task="stack_red_on_blue", episode_length=6):
        self.task = get_task(task)
        self.episode_length = episode_length

    def reset(self, rng):
        # Cubes on a jittered row, never overlapping: x in {-0.08, 0, 0.08} shuffled, y uniform.
        key_perm, key_y = jax.random.split(rng)
        x = jax.random.permutation(key_perm, jnp.array([-0.08, 0.0, 0.08]))
        y = jax.random.uniform(key_y, (3,), minval=-0.08, maxval=0.08)
        pos = jnp.stack([x, y, jnp.full(3, CUBE / 2)], axis=-1)
        return self._state(pos, jnp.int32(-1), jnp.zeros(3), jnp.int32(0), jnp.zeros(()), jnp.zeros(()))

    def _state(self, pos, held, ee, steps, reward, done):
        held_onehot = jax.nn.one_hot(held + 1, 4)
        obs = jnp.concatenate([pos.reshape(-1), ee, held_onehot]).astype(jnp.float32)
        return State(pipeline_state={"pos": pos, "held": held}, obs=obs, reward=reward, done=done, metrics={},
                     info={"steps": steps, "held": held})

    def _top_under(self, pos, xy, exclude):
        near = jnp.all(jnp.abs(pos[:, :2] - xy) < CUBE / 2, axis=-1) & (jnp.arange(3) != exclude)
        z = jnp.where(near, pos[:, 2], -1.0)
        return jnp.where(jnp.any(near), jnp.argmax(z), -1)

    def step(self, state, action):
        pos, held = state.pipeline_state["pos"], state.pipeline_state["held"]
        xy = jnp.clip(action, -1, 1) * HALF
        under = self._top_under(pos, xy, held)
        pick = (held < 0) & (under >= 0)
        lifted = pos.at[jnp.maximum(under, 0), 2].set(0.2)
        on = jnp.where(under >= 0, pos[jnp.maximum(under, 0), 2] + CUBE, CUBE / 2)
        target = jnp.where(under >= 0, pos[jnp.maximum(under, 0), :2], xy)
        placed = pos.at[jnp.maximum(held, 0)].set(jnp.concatenate([target, on[None]]))
        pos = jnp.where(pick, lifted, jnp.where(held >= 0, placed, pos))
        held = jnp.where(pick, under, jnp.where(held >= 0, -1, held)).astype(jnp.int32)
        ee = jnp.concatenate([xy, jnp.array([0.2])])
        new = self._state(pos, held, ee, state.info["steps"] + 1, jnp.zeros(()), jnp.zeros(()))
        success = self.task_success(new)
        done = success | (new.info["steps"] >= self.episode_length)
        return new.replace(reward=success.astype(jnp.float32), done=done.astype(jnp.float32))

    def subgoal_truth(self, state):
        pos, held = state.pipeline_state["pos"], state.pipeline_state["held"]
        grasps = [held == c for c in range(3)]
        names = ("red", "green", "blue")
        tops = []
        for top, bottom in STACK_PAIRS:
            t, b = names.index(top), names.index(bottom)
            tops.append((jnp.all(jnp.abs(pos[t, :2] - pos[b, :2]) < 1e-6))
                        & (jnp.abs(pos[t, 2] - pos[b, 2] - CUBE) < 1e-6) & (held != t))
        return jnp.stack(grasps + tops)

    def task_success(self, state):
        truth = self.subgoal_truth(state)
        if self.task.kind == "tower":
            return jnp.any(jnp.stack([truth[subgoal_id(f"The {a} object is on top of the {b} object")]
                                      & truth[subgoal_id(f"The {b} object is on top of the {c} object")]
                                      for a, b, c in __import__("itertools").permutations(("red", "green", "blue"))]))
        return truth[subgoal_id(self.task.subgoals[-1])]

    @property
    def observation_size(self):
        return 16

    @property
    def action_size(self):
        return 2

    @property
    def backend(self):
        return "none"


def plan_of(task):
    ids = [subgoal_id(c) for c in get_task(task).subgoals]
    return np.array(ids + [0] * (4 - len(ids)), np.int32), len(ids)


EMBEDDINGS = np.eye(len(SUBGOALS), dtype=np.float32)  # one-hot "language embeddings": the policy test needs no CLIP
TINY = CollectInferConfig(num_envs=32, episode_length=6, bc_steps=8, bc_batch_size=16, buffer_capacity=256,
                          learning_rate=3e-3, policy=PolicyConfig(width=32, depth=1, heads=2, grid=8, epsilon=0.2))


def make_agent(config=TINY, task="stack_red_on_blue"):
    env = ToyStacking(task, episode_length=config.episode_length)
    plan, length = plan_of(task)
    return CollectInfer(env, config, subgoal_embeddings=EMBEDDINGS, plan=plan, plan_length=length,
                        detect_fn=env.subgoal_truth if config.use_subgoals else None)


@pytest.fixture(scope="module")
def agent():
    return make_agent()


# -- policy heads ---------------------------------------------------------------------------------------------------


def test_cells_round_trip():
    centres = cell_centres(4)
    assert centres.shape == (16, 2)
    np.testing.assert_allclose(centres[0], [-0.75, -0.75])
    np.testing.assert_allclose(centres[1], [-0.75, -0.25])  # cell i * grid + j: j is y
    np.testing.assert_array_equal(action_cell(centres, 4), np.arange(16))
    np.testing.assert_array_equal(action_cell(jnp.array([[1.0, 1.0], [-1.0, -1.0], [5.0, -5.0]]), 4), [15, 0, 12])


def test_bc_loss_against_numpy():
    config = PolicyConfig(grid=2)
    logits = jnp.array([[1.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0], [3.0, 1.0, 2.0, 0.0]])
    actions = jnp.array([[0.5, -0.5], [-0.5, 0.5], [0.1, 0.1]])  # cells 2, 1, 3
    mask = jnp.array([True, True, False])
    logp = np.asarray(logits) - np.log(np.exp(np.asarray(logits)).sum(-1, keepdims=True))
    expected = -(logp[0, 2] + logp[1, 1]) / 2
    np.testing.assert_allclose(bc_loss(config, logits, actions, mask), expected, rtol=1e-6)
    cont = PolicyConfig(grid=0)
    np.testing.assert_allclose(bc_loss(cont, jnp.zeros((3, 2)), actions, mask), (0.5 + 0.5) / 2, rtol=1e-6)


def test_exploration_is_epsilon_uniform():
    key = jax.random.PRNGKey(0)
    sure = jnp.full((4000, 16), -1e9).at[:, 5].set(0.0)  # all mass on cell 5 of a 4x4 grid
    greedy = act(PolicyConfig(grid=4, epsilon=0.0), sure, key)
    np.testing.assert_array_equal(action_cell(greedy, 4), 5)
    noisy = act(PolicyConfig(grid=4, epsilon=0.5), sure, key)
    off = np.mean(np.asarray(action_cell(noisy, 4)) != 5)
    assert abs(off - 0.5 * 15 / 16) < 0.04  # uniform replacements land elsewhere 15 times in 16
    np.testing.assert_array_equal(action_cell(act(PolicyConfig(grid=4), sure, key, explore=False), 4), 5)


# -- buffer ---------------------------------------------------------------------------------------------------------


def test_buffer_stores_only_kept_episodes_as_a_ring():
    buf = EpisodeBuffer(capacity=3, batch_size=2)
    state = buf.init({"x": jnp.zeros((2,))})
    add = jax.jit(buf.add)
    state = add(state, {"x": jnp.arange(8.0).reshape(4, 2)}, jnp.array([False, True, False, True]))
    assert int(buf.size(state)) == 2
    np.testing.assert_array_equal(state.experience["x"][0, :2], [[2, 3], [6, 7]])
    state = add(state, {"x": 10 + jnp.arange(4.0).reshape(2, 2)}, jnp.array([True, True]))
    assert int(buf.size(state)) == 3
    stored = {tuple(map(float, row)) for row in np.asarray(state.experience["x"][0])}
    assert stored == {(6.0, 7.0), (10.0, 11.0), (12.0, 13.0)}  # the oldest kept episode was overwritten
    sample = buf.sample(state, jax.random.PRNGKey(0))["x"]
    assert sample.shape == (2, 2) and all(tuple(map(float, r)) in stored for r in np.asarray(sample))


# -- collect & infer -------------------------------------------------------------------------------------------------


def test_stored_mask_rule():
    alive = jnp.array([[1, 1, 1], [1, 1, 1], [1, 0, 1], [1, 0, 1]], bool)  # [T=4, N=3]
    event = jnp.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0]], bool)
    event = event.at[1, 1].set(True).at[2, 1].set(True)  # episode 1: an event after its end does not count
    zeros = jnp.zeros((4, 3))
    from vlmrm_jax.agent import Trajectory

    traj = Trajectory(obs=zeros, subgoal=zeros, action=zeros, alive=alive, reward=zeros, detected=zeros,
                      stage=zeros, event=event, success=zeros.astype(bool), states=None)
    keep, mask = stored_mask(traj)
    np.testing.assert_array_equal(keep, [True, True, False])
    np.testing.assert_array_equal(mask[:, 0], [1, 1, 1, 1])
    np.testing.assert_array_equal(mask[:, 1], [1, 1, 0, 0])
    np.testing.assert_array_equal(mask[:, 2], [0, 0, 0, 0])


def test_subgoal_advancing(agent):
    grasp_red, red_on_blue = subgoal_id(SUBGOALS[0]), subgoal_id("The red object is on top of the blue object")
    stage = jnp.array([0, 0, 1, 2, 0])
    detected = jnp.zeros((5, len(SUBGOALS)), bool)
    detected = detected.at[0, grasp_red].set(True)  # current subgoal seen: advance
    detected = detected.at[1, red_on_blue].set(True)  # a later subgoal seen first: no advance
    detected = detected.at[2, red_on_blue].set(True)  # second subgoal seen: advance to the end
    detected = detected.at[3].set(True)  # plan finished: stays
    detected = detected.at[4, grasp_red].set(True)  # seen, but the episode had ended
    alive = jnp.array([True, True, True, True, False])
    new, hit = agent.advance(stage, detected, alive)
    np.testing.assert_array_equal(new, [1, 0, 2, 2, 0])
    np.testing.assert_array_equal(hit, [True, False, True, False, False])
    np.testing.assert_array_equal(agent.current_subgoal(jnp.array([0, 1, 2])), [grasp_red, red_on_blue, red_on_blue])


def test_one_iteration_under_jit(agent):
    state = agent.init(jax.random.PRNGKey(0))
    traj = agent.collect(state.params, jax.random.PRNGKey(1), True, num_envs=TINY.num_envs, keep_states=True)
    T, N = TINY.episode_length, TINY.num_envs
    assert traj.obs.shape == (T, N, 16) and traj.action.shape == (T, N, 2)
    assert traj.detected.shape == (T, N, len(SUBGOALS)) and traj.subgoal.dtype == jnp.int32
    # The detector (ground truth here) drives the stage: each step reaches at most one more subgoal.
    assert bool(jnp.all(jnp.diff(traj.stage, axis=0) >= 0)) and bool(jnp.all(traj.stage <= 2))

    # Only qualifying episodes are stored: the iteration with the same rng collects the same episodes.
    state = agent.init(jax.random.PRNGKey(0))
    key_collect = jax.random.split(state.rng, 4)[0]
    expected_traj = agent.collect(state.params, key_collect, True, num_envs=N, keep_states=True)
    keep, mask = stored_mask(expected_traj)
    assert 0 < int(keep.sum()) < N  # the tiny config has some qualifying and some failed episodes
    pure_state, pure_metrics = jax.jit(agent.pure_iteration)(state)  # the same iteration as one jitted function
    new_state, metrics = agent.iteration(agent.init(jax.random.PRNGKey(0)))
    for k in metrics:
        np.testing.assert_allclose(pure_metrics[k], metrics[k], rtol=1e-4, atol=1e-5, err_msg=k)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), pure_state.params,
                 new_state.params)
    assert int(agent.buffer.size(new_state.buffer)) == int(keep.sum()) == int(metrics["episodes_stored"])
    stored = new_state.buffer.experience
    np.testing.assert_array_equal(stored["mask"][0, :int(keep.sum())], np.asarray(mask).T[np.asarray(keep)])
    np.testing.assert_allclose(stored["action"][0, :int(keep.sum())],
                               np.swapaxes(np.asarray(expected_traj.action), 0, 1)[np.asarray(keep)])
    assert int(new_state.env_steps) == int(expected_traj.alive.sum())
    assert {"reward_mean", "success_rate", "subgoals_reached", "bc_loss", "buffer_episodes"} <= set(metrics)

    # BC lowers the loss on the stored data.
    held = {k: v[0, :int(keep.sum())] for k, v in stored.items()}
    before = float(agent.bc_loss(agent.init(jax.random.PRNGKey(0)).params, held))  # the same initial params
    after = float(agent.bc_loss(new_state.params, held))
    assert after < before - 0.05, (before, after)


def test_bad_input():
    env = ToyStacking()
    plan, length = plan_of("stack_red_on_blue")
    with pytest.raises(VlmrmError, match="outside"):
        CollectInfer(env, TINY, subgoal_embeddings=EMBEDDINGS, plan=[0, 42], plan_length=2,
                     detect_fn=env.subgoal_truth)
    with pytest.raises(VlmrmError, match="plan length"):
        CollectInfer(env, TINY, subgoal_embeddings=EMBEDDINGS, plan=plan, plan_length=0,
                     detect_fn=env.subgoal_truth)
    with pytest.raises(VlmrmError, match="detect_fn"):
        CollectInfer(env, TINY, subgoal_embeddings=EMBEDDINGS, plan=plan, plan_length=length)
    with pytest.raises(VlmrmError, match="token_sizes"):
        CollectInfer(env, CollectInferConfig(policy=PolicyConfig(token_sizes=(3, 3))),
                     subgoal_embeddings=EMBEDDINGS, plan=plan, plan_length=length, detect_fn=env.subgoal_truth)
    for bad in (dict(num_envs=0), dict(episode_length=-1), dict(bc_steps=0), dict(buffer_capacity=0),
                dict(learning_rate=0.0)):
        with pytest.raises(VlmrmError, match="positive"):
            CollectInferConfig(**bad)
    with pytest.raises(VlmrmError, match="grid"):
        PolicyConfig(grid=1)


def test_checkpoint_resume_is_exact(agent, tmp_path):
    from vlmrm_jax.rl import read_metrics, train

    per_iteration = TINY.env_steps_per_iteration  # an upper bound: episodes that succeed end early
    straight = train(agent, total_steps=3 * per_iteration, run_dir=tmp_path / "a", seed=5, show_progress=False)
    # A run "killed" after its first checkpoint, then resumed to the same budget.
    train(agent, total_steps=per_iteration, run_dir=tmp_path / "b", seed=5, show_progress=False)
    resumed = train(agent, total_steps=3 * per_iteration, run_dir=tmp_path / "b", seed=123, resume=True,
                    show_progress=False)
    assert int(resumed.env_steps) == int(straight.env_steps) and int(resumed.episodes) == int(straight.episodes)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), straight.params,
                 resumed.params)
    np.testing.assert_array_equal(straight.buffer.experience["action"], resumed.buffer.experience["action"])
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["env_steps"] for r in a] == [r["env_steps"] for r in b]
    assert [r["success_rate"] for r in a] == [r["success_rate"] for r in b]


def test_sparse_baseline_stores_only_rewarded_episodes():
    agent = make_agent(CollectInferConfig(**{**TINY.__dict__, "use_subgoals": False}), task="grasp_red")
    state = agent.init(jax.random.PRNGKey(2))
    key_collect = jax.random.split(state.rng, 4)[0]
    traj = agent.collect(state.params, key_collect, True, num_envs=TINY.num_envs, keep_states=True)
    assert not bool(traj.detected.any()) and bool(jnp.all(traj.stage == 0))
    np.testing.assert_array_equal(traj.event, traj.reward > 0)
    new_state, metrics = agent.iteration(state)
    rewarded = int(jnp.any(traj.reward > 0, axis=0).sum())
    assert 0 < rewarded == int(metrics["episodes_stored"]) == int(agent.buffer.size(new_state.buffer))
    np.testing.assert_allclose(metrics["success_rate"], rewarded / TINY.num_envs)


# -- the CLI's bad input (all refused before anything is compiled) -------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--instruction", "fly to the moon"], "no stacking task has the instruction"),
    (["--num-envs", "0"], "num-envs=0 must be a positive integer"),
    (["--total-steps", "-5"], "total-steps=-5 must be a positive integer"),
    (["--episode-length", "0"], "episode-length=0 must be a positive integer"),
    (["--bc-batch-size", "0"], "bc-batch-size=0 must be a positive integer"),
    (["--grid", "1"], "grid=1"),
])
def test_cli_bad_input_exits_2_with_one_line(argv, message, tmp_path, capsys):
    from experiments.stacking import main

    assert main(argv + ["--planner", "canonical", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("instruction, flags, length", [
    ("Grasp the red object", [], 4),
    ("Stack the red object on the blue object", [], 4),
    ("Stack all three objects", [], 8),
    ("Stack all three objects", ["--episode-length", "5"], 5),
])
def test_cli_episode_length_defaults_to_two_actions_per_subgoal(instruction, flags, length, tmp_path):
    from experiments.stacking import make_config, parse_args

    args = parse_args(["--instruction", instruction, "--planner", "canonical", "--detector", "truth",
                       "--out", str(tmp_path / "run"), *flags])
    assert make_config(args, log=lambda line: None).episode_length == length


def test_cli_unknown_learner(capsys):
    from experiments.stacking import main

    with pytest.raises(SystemExit) as e:
        main(["--learner", "dqn"])
    assert e.value.code == 2 and "invalid choice: 'dqn'" in capsys.readouterr().err


def test_unknown_subgoal_in_plan():
    from experiments.stacking import RunConfig, build

    config = RunConfig(instruction="Grasp the red object", task="grasp_red", plan=["The robot is dancing"])
    with pytest.raises(VlmrmError, match="unknown subgoal 'The robot is dancing'"):
        build(config)


# -- PPO on the VLM reward toward the current subgoal ---------------------------------------------------------------


def test_subgoal_reward_env_and_one_ppo_iteration():
    from vlmrm_jax.agent import SubgoalPPO, SubgoalRewardEnv, stack_rewards
    from vlmrm_jax.rewards import GoalBaselineReward
    from vlmrm_jax.rl import PPOConfig

    env = ToyStacking("stack_red_on_blue", episode_length=4)
    text = jnp.eye(len(SUBGOALS))
    rewards = stack_rewards([GoalBaselineReward.from_embeddings(text[i:i + 1], text, 0.0) for i in range(9)])

    def score(state):  # two "camera views" whose embeddings light up the true subgoals
        truth = env.subgoal_truth(state)
        return jnp.stack([truth + 0.1, 2 * truth + 0.3]), truth

    plan, length = plan_of("stack_red_on_blue")
    wrapped = SubgoalRewardEnv(env, rewards=rewards, plan=plan, plan_length=length, score_fn=score,
                               success_fn=env.task_success)
    assert wrapped.observation_size == 16 + len(SUBGOALS)
    grasp_red, red_on_blue = plan[0], plan[1]
    state = jax.jit(wrapped.reset)(jax.random.split(jax.random.PRNGKey(0), 8))
    step = jax.jit(wrapped.step)
    pos = state.pipeline_state.pipeline_state["pos"]
    picked = step(state, pos[:, 0, :2] / HALF)  # pick red everywhere
    np.testing.assert_array_equal(picked.info["stage"], 1)
    np.testing.assert_array_equal(picked.obs[:, 16 + red_on_blue], 1.0)  # the policy now sees the next subgoal
    # The reward toward the subgoal pursued when acting (grasp red), by VLM-RM's formula in NumPy (alpha 0).
    truth = np.asarray(jax.vmap(env.subgoal_truth)(picked.pipeline_state), np.float64)
    views = np.stack([truth + 0.1, 2 * truth + 0.3], axis=1)
    views /= np.linalg.norm(views, axis=-1, keepdims=True)
    image = views.mean(1) / np.linalg.norm(views.mean(1), axis=-1, keepdims=True)
    expected = 1 - 0.5 * np.sum((image - np.eye(9)[grasp_red]) ** 2, axis=-1)
    np.testing.assert_allclose(picked.reward, expected, rtol=1e-5)
    placed = step(picked, pos[:, 2, :2] / HALF)  # place it on blue: success, then a fresh episode at stage 0
    np.testing.assert_array_equal(placed.done, 1.0)
    np.testing.assert_array_equal(placed.info["truncation"], 0.0)
    np.testing.assert_array_equal(placed.info["step_metrics"]["episode_success"], 1.0)
    np.testing.assert_array_equal(placed.info["stage"], 0)
    np.testing.assert_array_equal(placed.obs[:, 12], 1.0)  # nothing held in the new episode
    np.testing.assert_array_equal(placed.obs[:, 16 + grasp_red], 1.0)

    ppo = SubgoalPPO(wrapped, PPOConfig(num_envs=8, unroll_length=4, batch_size=8, num_minibatches=2,
                                        num_updates_per_batch=1, policy_hidden_layer_sizes=(16,),
                                        value_hidden_layer_sizes=(16,), episode_length=4))
    train_state, metrics = ppo.iteration(ppo.init(jax.random.PRNGKey(1)))
    assert 0.0 <= float(metrics["success_rate"]) <= 1.0 and np.isfinite(float(metrics["total_loss"]))
    assert int(train_state.env_steps) == 8 * 2 * 4


# -- the action head, by measurement (slow: ~10 min on 2 busy cores) ------------------------------------------------


@pytest.mark.slow
def test_categorical_head_learns_faster_than_continuous():
    """docs/agent.md's head comparison: collect & infer on the toy stack task (ground-truth detector), 60
    iterations of 16 episodes per head; prints the success rate per block of 10 iterations.

        pytest tests/test_agent.py -m slow -s -k head
    """
    finals = {}
    for name, policy in [("grid 16", dict(grid=16)), ("grid 16 + Fourier 4", dict(grid=16, fourier=4)),
                         ("continuous", dict(grid=0)), ("continuous + Fourier 4", dict(grid=0, fourier=4))]:
        config = CollectInferConfig(num_envs=16, episode_length=10, bc_steps=32, bc_batch_size=32,
                                    learning_rate=1e-3, policy=PolicyConfig(obs_scale=1 / 0.095, **policy))
        agent = make_agent(config)
        state, rates = agent.init(jax.random.PRNGKey(0)), []
        for _ in range(60):
            state, metrics = agent.iteration(state)
            rates.append(float(metrics["success_rate"]))
        blocks = np.asarray(rates).reshape(6, 10).mean(axis=1)
        print(f"{name}: success rate per 10 iterations (160 episodes): {np.round(blocks, 2).tolist()}")
        finals[name] = blocks[-2:].mean()
    assert finals["grid 16"] > finals["continuous"] + 0.05
