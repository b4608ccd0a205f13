"""The agent's other three abilities (issue 12): relabelling a lifelong buffer, skill scheduling, subgoal sequences
from an expert's video, the scripted expert, and their bad-input lines.

Relabelling and scheduling run on the kinematic ``ToyStacking`` of test_agent (no MJX); the expert runs on the real
MJX env from constructed states (one compiled episode function shared by two plans)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_agent import EMBEDDINGS, ToyStacking
from vlmrm_jax.agent import CollectInfer, CollectInferConfig, PolicyConfig
from vlmrm_jax.agent.lifelong import LifelongBuffer, detect_embedded, relabel, seed_agent
from vlmrm_jax.agent.observation import extract_subgoal_sequence, read_video, subgoal_sequence
from vlmrm_jax.agent.schedule import SkillLibrary, SkillScheduler
from vlmrm_jax.envs.stacking.language import SUBGOALS, get_task, subgoal_id
from vlmrm_jax.errors import VlmrmError

CONFIG = CollectInferConfig(num_envs=4, episode_length=5, bc_steps=2, bc_batch_size=4, buffer_capacity=64,
                            policy=PolicyConfig(width=16, depth=1, heads=2, grid=4))
PLAN = [subgoal_id(c) for c in get_task("stack_red_on_blue").subgoals]  # [0, 4]


def toy_agent(plan=PLAN, detect_fn=None, cls=CollectInfer, task="stack_red_on_blue", **kw):
    env = ToyStacking(task, episode_length=CONFIG.episode_length)
    return cls(env, CONFIG, subgoal_embeddings=EMBEDDINGS, plan=np.array(plan, np.int32), plan_length=len(plan),
               detect_fn=detect_fn or env.subgoal_truth, **kw)


# -- 1. relabelling by the detector's rule on stored embeddings ----------------------------------------------------


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def numpy_relabel(emb, text, gamma, combine, alive, plan):
    """Reference: similarities, views combined, threshold, then the plan walked step by step in Python."""
    sim = emb @ text.T  # [M, T, V, S]
    sim = sim.max(axis=2) if combine == "any" else sim.min(axis=2)
    detected = sim > gamma
    M, T, _ = detected.shape
    subgoal, keep, mask, stage_out = np.zeros((M, T), int), np.zeros(M, bool), np.zeros((M, T), bool), []
    for m in range(M):
        stage, last = 0, -1
        for t in range(T):
            subgoal[m, t] = plan[min(stage, len(plan) - 1)]
            if alive[m, t] and stage < len(plan) and detected[m, t, plan[stage]]:
                stage, last = stage + 1, t
        keep[m] = last >= 0
        mask[m] = alive[m] & (np.arange(T) <= last)
        stage_out.append(stage)
    return detected, subgoal, keep, mask, np.array(stage_out)


@pytest.mark.parametrize("combine", ["any", "all"])
def test_relabel_matches_numpy(combine):
    rng = np.random.default_rng(0)
    M, T, V, D = 24, CONFIG.episode_length, 2, 8
    text = unit(rng.normal(size=(len(SUBGOALS), D))).astype(np.float32)
    # image embeddings near the captions of a random subgoal, so detections happen at some steps and not others
    near = text[rng.integers(len(SUBGOALS), size=(M, T, V))]
    emb = unit(near + 0.6 * rng.normal(size=(M, T, V, D))).astype(np.float32)
    alive = np.arange(T)[None, :] < rng.integers(1, T + 1, size=M)[:, None]
    gamma = 0.6
    detected, subgoal, keep, mask, stage = numpy_relabel(emb, text, gamma, combine, alive, PLAN)
    assert 0 < keep.sum() < M  # the fake data exercise both outcomes
    got_detected = detect_embedded(emb, text, gamma, combine)
    np.testing.assert_array_equal(got_detected, detected)
    obs = rng.normal(size=(M, T, 16)).astype(np.float32)
    action = rng.uniform(-1, 1, size=(M, T, 2)).astype(np.float32)
    r = relabel(toy_agent(), obs, action, alive, got_detected)
    np.testing.assert_array_equal(r.keep, keep)
    np.testing.assert_array_equal(r.episodes["mask"], mask)
    np.testing.assert_array_equal(r.episodes["subgoal"], subgoal)
    np.testing.assert_array_equal(r.stage, stage)
    np.testing.assert_array_equal(r.episodes["action"], action)


def fake_trajectory(rng, T, N):
    """A collection of N episodes as collect & infer returns it ([T, N, ...]); embeddings are ground-truth-like
    subgoal bits [T, N, 1, 9] (the truth ablation's embedding)."""
    from vlmrm_jax.agent import Trajectory

    bits = rng.random((T, N, 1, len(SUBGOALS))) < 0.15
    alive = np.arange(T)[:, None] < rng.integers(1, T + 1, size=N)[None, :]
    return Trajectory(obs=rng.normal(size=(T, N, 16)).astype(np.float32), subgoal=np.zeros((T, N), np.int32),
                      action=rng.uniform(-1, 1, (T, N, 2)).astype(np.float32), alive=alive,
                      reward=np.zeros((T, N), np.float32), detected=bits[:, :, 0], stage=np.zeros((T, N), np.int32),
                      event=np.zeros((T, N), bool), success=np.zeros((T, N), bool), states=None,
                      embeddings=bits.astype(np.float32))


def test_lifelong_buffer_seeds_behaviour_cloning(tmp_path):
    rng = np.random.default_rng(1)
    T, N = CONFIG.episode_length, 8
    trajs = [fake_trajectory(rng, T, N), fake_trajectory(rng, T, N)]
    lifelong = LifelongBuffer(T, 16, (1, len(SUBGOALS)))
    lifelong.add(trajs[0], "stack_red_on_blue")
    lifelong.add(trajs[1], "grasp_blue")
    assert len(lifelong) == 2 * N
    loaded = LifelongBuffer.load(lifelong.save(tmp_path / "lifelong.npz"))
    for k, v in lifelong.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[k], v)
    assert loaded.task_names == ["stack_red_on_blue", "grasp_blue"]
    # relabelled for "grasp red": a fresh agent's buffer gets exactly the qualifying episodes, BC changes the policy
    new = toy_agent(plan=[0])
    r = loaded.relabel(new, EMBEDDINGS, 0.5, None)
    grasped = np.concatenate([(t.embeddings[:, :, 0, 0] > 0.5) & t.alive for t in trajs], axis=1)  # [T, 2N]
    np.testing.assert_array_equal(r.keep, grasped.any(axis=0))
    assert 0 < int(np.sum(r.keep)) < 2 * N
    fresh = new.init(jax.random.PRNGKey(1))
    seeded, loss = jax.jit(lambda s: seed_agent(new, s, r, 3))(fresh)
    assert int(new.buffer.size(seeded.buffer)) == int(np.sum(r.keep))
    assert np.isfinite(float(loss)) and float(loss) > 0
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), fresh.params, seeded.params)
    assert any(jax.tree.leaves(changed))
    with pytest.raises(VlmrmError, match="embed_fn"):
        lifelong.add(trajs[0]._replace(embeddings=None), "x")
    with pytest.raises(VlmrmError, match="combine"):
        detect_embedded(np.zeros((3, 2, 4)), np.zeros((9, 4)), 0.5, None)


# -- 2. skill scheduling -------------------------------------------------------------------------------------------


def test_scheduler_advances_on_detection_and_uses_each_skill():
    plan = [subgoal_id(c) for c in get_task("tower_blue_red_green").subgoals]  # 4 subgoals
    base = toy_agent()
    library = SkillLibrary(SUBGOALS)
    def perturbed(seed):  # non-zero logits, so that two skills act differently
        params = base.init(jax.random.PRNGKey(seed)).params
        leaves, tree = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
        return jax.tree.unflatten(tree, [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])

    p1, p2 = perturbed(1), perturbed(2)
    library.add(plan[:2], p1, "stack_red_on_blue")
    library.add(plan[2:], p2, "stack_green_on_red")

    # fake detector: subgoal plan[k] is seen after action k + 1 + (k == 1) (the second one takes two actions)
    seen_at = {plan[0]: 1, plan[1]: 3, plan[2]: 4, plan[3]: 5}

    # through the embed_fn hook: the "embedding" of a state is its action count, and the detector reads it
    def fake_embed(state):
        return jnp.full((1, 1), state.info["steps"], jnp.float32)

    def fake_detect(embedding):
        steps = embedding[0, 0]
        return jnp.stack([steps >= seen_at[s] if s in seen_at else jnp.bool_(False) for s in range(len(SUBGOALS))])

    sched = toy_agent(plan=plan, detect_fn=fake_detect, cls=SkillScheduler, skills=library, instruction="tower",
                      fix="train it", task="tower_blue_red_green", embed_fn=fake_embed)
    traj = sched.run(jax.random.PRNGKey(0), 3)
    np.testing.assert_array_equal(np.asarray(traj.embeddings)[:, 0, 0, 0], np.arange(1, CONFIG.episode_length + 1))
    # pursued subgoal at each action: the next one only after the detector saw the current one
    expected = [plan[0], plan[1], plan[1], plan[2], plan[3]]
    np.testing.assert_array_equal(np.asarray(traj.subgoal)[:, 0], expected)
    np.testing.assert_array_equal(np.asarray(traj.stage)[:, 0], [1, 1, 2, 3, 4])
    # each subgoal acts with its own skill's weights
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(4, 16)), jnp.float32)
    sub = jnp.array(plan, jnp.int32)
    out = sched.policy_output(sched.skill_params, sub, obs)
    ref1 = base.policy_output(p1, sub, obs)
    ref2 = base.policy_output(p2, sub, obs)
    np.testing.assert_allclose(out[:2], ref1[:2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[2:], ref2[2:], rtol=1e-5, atol=1e-6)
    assert not np.allclose(ref1, ref2)  # the skills differ, so the check above can fail


def test_unknown_skill_is_one_line():
    library = SkillLibrary(SUBGOALS)
    library.add([0, 3], {}, "stack_red_on_blue")
    with pytest.raises(VlmrmError) as e:
        library.check_plan([2, 4], "Stack the blue object on the red object", "learn it with X")
    msg = str(e.value)
    assert "\n" not in msg and SUBGOALS[2] in msg and SUBGOALS[4] in msg and "learn it with X" in msg


# -- 3. learning from observation ---------------------------------------------------------------------------------


def test_subgoal_sequence_from_synthetic_scores():
    rng = np.random.default_rng(0)
    F, S, gamma = 30, len(SUBGOALS), 0.5
    scores = rng.uniform(0.0, 0.45, size=(F, S))
    runs = [(0, 3, 7), (3, 8, 20), (2, 12, 16), (0, 24, 27)]  # (subgoal, first frame, end): grasp red, red on blue,
    for s, a, b in runs:                                       # grasp blue; grasp red again later
        scores[a:b, s] = rng.uniform(0.6, 0.9, size=b - a)
    scores[5, 6] = 0.95  # a one-frame false detection: debounced away
    scores[10, 7] = 0.7  # another, mid-sequence
    assert extract_subgoal_sequence(scores, gamma, min_frames=2) == [0, 3, 2]
    # without debouncing the spikes enter, in order of first detection
    assert extract_subgoal_sequence(scores, gamma, min_frames=1) == [0, 6, 3, 7, 2]
    # brute force: the first t where frames t..t+k-1 are all above gamma
    detected = scores > gamma
    first = {s: next(t for t in range(F - 2) if detected[t:t + 3, s].all()) for s in range(S)
             if any(detected[t:t + 3, s].all() for t in range(F - 2))}
    assert subgoal_sequence(detected, 3) == sorted(first, key=lambda s: (first[s], s))
    with pytest.raises(VlmrmError, match="min_frames"):
        subgoal_sequence(detected, 0)


def test_bad_videos_are_one_line(tmp_path):
    with pytest.raises(VlmrmError, match="does not exist") as e:
        read_video(tmp_path / "missing.mp4")
    assert "\n" not in str(e.value)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VlmrmError, match="cannot be read") as e:
        read_video(bad)
    assert "\n" not in str(e.value)
    import imageio.v3 as iio

    good = tmp_path / "ok.gif"
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 8, 8, 3), dtype=np.uint8)
    iio.imwrite(good, frames, loop=0)
    assert read_video(good).shape == (3, 8, 8, 3)


def test_cli_bad_inputs_exit_2(tmp_path, capsys):
    from experiments.stacking_reuse import main

    assert main(["--out", str(tmp_path), "--from-video", str(tmp_path / "none.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "does not exist" in err and "\n" not in err
    # skills of red-on-blue only: an instruction needing blue-on-red names the missing skills and the fix
    import flax.serialization

    (tmp_path / "reuse" / "stack_red_on_blue").mkdir(parents=True)
    (tmp_path / "reuse" / "stack_red_on_blue" / "policy.msgpack").write_bytes(
        flax.serialization.msgpack_serialize({"w": np.zeros(2, np.float32)}))
    (tmp_path / "reuse" / "skills.json").write_text(json.dumps({"skills": [
        {"task": "stack_red_on_blue", "subgoals": [0, 3], "policy": "stack_red_on_blue/policy.msgpack"}]}))
    assert main(["--out", str(tmp_path), "--planner", "canonical",
                 "--schedule", "Stack the blue object on the red object"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not learned skills" in err and "grasping the blue" in err and "stacking_reuse" in err
    assert "\n" not in err


# -- the scripted expert on the MJX env ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stacking():
    from vlmrm_jax.envs import make_env
    from vlmrm_jax.envs.stacking.expert import expert_episode

    env = make_env("stacking", task="stack_all", episode_length=5)
    return env, jax.jit(lambda start, plan, n: expert_episode(env, start, plan, n))


def test_expert_action_reads_positions():
    from vlmrm_jax.envs.stacking.env import REACH
    from vlmrm_jax.envs.stacking.expert import expert_action

    pos = np.array([[0.05, -0.03, 0.025], [-0.06, 0.02, 0.025], [0.0, 0.07, 0.025]], np.float32)
    obs = lambda held: np.concatenate([pos.ravel(), np.zeros(3), np.eye(4)[held + 1]]).astype(np.float32)  # noqa
    red_on_blue = subgoal_id("The red object is on top of the blue object")
    np.testing.assert_allclose(expert_action(obs(-1), subgoal_id(SUBGOALS[0])), pos[0, :2] / REACH, rtol=1e-6)
    np.testing.assert_allclose(expert_action(obs(-1), red_on_blue), pos[0, :2] / REACH, rtol=1e-6)  # pick red first
    np.testing.assert_allclose(expert_action(obs(0), red_on_blue), pos[2, :2] / REACH, rtol=1e-6)   # place on blue
    np.testing.assert_allclose(expert_action(obs(1), red_on_blue), pos[1, :2] / REACH, rtol=1e-6)   # put green down


def test_expert_succeeds_on_constructed_episodes(stacking):
    from vlmrm_jax.envs.stacking import predicates
    from vlmrm_jax.envs.stacking.expert import padded_plan
    from vlmrm_jax.envs.stacking.scene import GRIPPER_HOME

    env, episode_fn = stacking
    pos = jnp.array([[0.06, -0.05, 0.025], [-0.07, 0.03, 0.025], [0.0, 0.07, 0.025]], jnp.float32)
    start = env.state_from_positions(pos, -1, jnp.asarray(GRIPPER_HOME, jnp.float32))
    for key in ("tower_green_blue_red", "stack_red_on_blue"):
        task = get_task(key)
        plan, n = padded_plan(env, task.subgoals)
        ep = episode_fn(start, plan, n)
        alive = np.asarray(ep.alive)
        assert alive.sum() == n, key  # one action per subgoal, then it stops
        final = jax.tree.map(lambda x: x[n - 1], ep.states.pipeline_state)
        assert bool(predicates.task_success(final, task)), key
        np.testing.assert_array_equal(np.asarray(ep.stage)[:n], np.arange(1, n + 1))


# -- the reuse protocol killed and resumed (experiments.stacking_reuse --resume) -------------------------------------


PROTOCOL_ARGS = ["--detector", "truth", "--planner", "canonical", "--tasks", "stack_red_on_blue", "grasp_blue",
                 "--total-steps", "50", "--num-envs", "4", "--episode-length", str(CONFIG.episode_length),
                 "--bc-steps", "2", "--bc-batch-size", "4", "--buffer-capacity", "64", "--seed-bc-steps", "3",
                 "--grid", "4", "--no-progress"]


@pytest.fixture
def toy_protocol(monkeypatch):
    """experiments.stacking_reuse on the toy env with a tiny policy. Every task of the protocol trains the same toy
    learner (red on blue's, built once and shared by all sessions: one compile): what the test checks, that a
    resumed protocol ends as an uninterrupted one, does not depend on what a task learns. Returns (main, a function
    that makes the k-th iteration of a given task and arm raise KeyboardInterrupt after its episodes are recorded,
    i.e. before the trainer can checkpoint it)."""
    import experiments.stacking_reuse as reuse
    import vlmrm_jax.envs

    monkeypatch.setattr(vlmrm_jax.envs, "make_env", lambda name, task="stack_red_on_blue", episode_length=6:
                        ToyStacking(task, episode_length=episode_length))
    monkeypatch.setattr(reuse, "agent_config", lambda args, obs_scale=None: CollectInferConfig(
        num_envs=args.num_envs, episode_length=args.episode_length, bc_steps=args.bc_steps,
        bc_batch_size=args.bc_batch_size, buffer_capacity=args.buffer_capacity,
        policy=PolicyConfig(width=16, depth=1, heads=2, grid=args.grid, epsilon=args.epsilon)))
    built, build = {}, reuse.build_task
    monkeypatch.setattr(reuse, "build_task", lambda task, plan, args: built.setdefault(
        "learner", build("stack_red_on_blue", PLAN, args)))
    iteration, kill = reuse._Recording.iteration, {}

    def killable(self, state):
        state, metrics = iteration(self, state)
        arm = "reuse" if self.lifelong is not None else "scratch"
        if kill and kill["at"][:2] == (self.task, arm):
            kill["seen"] += 1
            if kill["seen"] == kill["at"][2]:
                raise KeyboardInterrupt
        return state, metrics

    monkeypatch.setattr(reuse._Recording, "iteration", killable)

    def kill_at(task, arm=None, k=None):  # kill_at(None): no more kills
        kill.clear()
        if task is not None:
            kill.update(at=(task, arm, k), seen=0)

    return reuse.main, kill_at


def test_protocol_resumes_to_the_uninterrupted_result(tmp_path, toy_protocol, capsys):
    from vlmrm_jax.agent.lifelong import EpisodeLog
    from vlmrm_jax.rl.checkpoint import Checkpoints

    main, kill_at = toy_protocol
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["--out", str(whole), *PROTOCOL_ARGS]) == 0
    # nothing to resume, or other settings: one line naming the fix, and the directory is left as it was
    assert main(["--out", str(killed), "--resume", *PROTOCOL_ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no reuse protocol" in err and "drop --resume" in err and "\n" not in err and not killed.exists()

    # 1. killed mid-task in the reuse arm: its 3rd iteration recorded its episodes, its checkpoint is the 1st one's
    kill_at("grasp_blue", "reuse", 3)
    assert main(["--out", str(killed), *PROTOCOL_ARGS]) == 130
    assert "--resume" in capsys.readouterr().err
    run = killed / "reuse" / "grasp_blue"
    checkpoints = Checkpoints(run / "checkpoints")
    step = checkpoints.latest_step()
    checkpoints.close()
    assert len(EpisodeLog(run / "episodes").steps()) == 3 and max(EpisodeLog(run / "episodes").steps()) > step
    assert main(["--out", str(killed), *PROTOCOL_ARGS]) == 2  # without --resume: the existing refusal
    assert "--resume to continue" in capsys.readouterr().err
    assert main(["--out", str(killed), "--resume", *PROTOCOL_ARGS, "--total-steps", "80"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--total-steps 80 differs" in err and "50" in err and "\n" not in err
    # 2. resumed (the saved settings fill the flags not given), then killed again mid-task in the scratch arm
    kill_at("grasp_blue", "scratch", 2)
    assert main(["--out", str(killed), "--resume", "--no-progress", "--checkpoint-every", "0"]) == 130
    assert "finished earlier" in capsys.readouterr().out  # the first task was skipped
    # 3. resumed to the end
    kill_at(None)
    assert main(["--out", str(killed), "--resume", "--no-progress"]) == 0

    got, want = (json.loads((d / "reuse.json").read_text()) for d in (killed, whole))
    assert got["arms"] == want["arms"]
    assert [s["task"] for s in got["arms"]["scratch"]] == ["stack_red_on_blue", "grasp_blue"]
    assert got["arms"]["reuse"][1]["lifelong_episodes"] > 0
    got, want = (LifelongBuffer.load(d / "lifelong.npz") for d in (killed, whole))
    assert got.task_names == want.task_names
    for k, v in want.arrays().items():
        np.testing.assert_array_equal(got.arrays()[k], v, err_msg=k)
    for arm, task in (("reuse", "stack_red_on_blue"), ("reuse", "grasp_blue"), ("scratch", "grasp_blue")):
        assert (killed / arm / task / "policy.msgpack").read_bytes() == (whole / arm / task / "policy.msgpack"
                                                                          ).read_bytes(), (arm, task)


def test_resume_refusals_are_one_line(tmp_path, capsys):
    from experiments.stacking_reuse import PROTOCOL_FILE, main, parse_args, protocol_settings

    def refused(argv, *parts):
        assert main(["--out", str(tmp_path), "--resume", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and all(p in err for p in parts), err

    for arm in ("reuse", "scratch"):  # two protocols run apart in one --out, one per arm
        (tmp_path / arm).mkdir()
        settings = protocol_settings(parse_args(["--arms", arm, "--seed", "2"]))
        (tmp_path / arm / PROTOCOL_FILE).write_text(json.dumps(settings))
    refused([], "separate protocols", "--arms reuse or --arms scratch")
    refused(["--arms", "reuse", "--seed", "3"], "--seed 3 differs", "run with 2", "another --out")
    refused(["--arms", "reuse", "--schedule", "Stack all three objects"], "drop it with --schedule")
    del settings["learning_rate"]  # a file from before a setting existed
    (tmp_path / "scratch" / PROTOCOL_FILE).write_text(json.dumps(settings))
    refused(["--arms", "scratch"], "lacks the setting --learning-rate", "older version")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reuse", "scratch"]  # nothing written
