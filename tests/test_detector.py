"""The subgoal detector (Di Palo et al. 2023): thresholding against a NumPy reference, view combination,
calibration against brute force, bad input, the stacking caption source's labels on constructed states, and the
shipped stacking-clip-tiny's held-out quality measured here on frames generated in the test."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.models.detection import (SubgoalDetector, calibrate_threshold, combine_views, detect_subgoals,
                                        precision_recall, read_detector_config, subgoal_similarities,
                                        write_detector_config)

CAPTIONS = ["The robot is grasping the red object", "The red object is on top of the blue object",
            "The green object is on top of the red object"]


# --- thresholding, against NumPy ---


@pytest.fixture(scope="module")
def frames():
    return jax.random.uniform(jax.random.PRNGKey(0), (6, 2, 32, 32, 3))


def _numpy_similarities(clip, frames, captions):
    """Reference: the model's raw projections, normalised and multiplied in NumPy."""
    from vlmrm_jax.models.preprocess import preprocess_images

    flat = np.asarray(frames).reshape((-1, 32, 32, 3))
    pixels = preprocess_images(jnp.asarray(flat), clip.image_size, clip.image_mean, clip.image_std)
    image = np.asarray(clip.model.get_image_features(pixels, params=clip.params), np.float64)
    tokens = clip.tokenizer(captions, padding="max_length", max_length=clip.context_length, truncation=True,
                            return_tensors="np")
    text = np.asarray(clip.model.get_text_features(tokens["input_ids"], tokens["attention_mask"],
                                                   params=clip.params), np.float64)
    image /= np.linalg.norm(image, axis=-1, keepdims=True)
    text /= np.linalg.norm(text, axis=-1, keepdims=True)
    return (image @ text.T).reshape(np.shape(frames)[:2] + (len(captions),))


def test_detect_subgoals_matches_numpy_per_view_and_combined(tiny_clip, frames):
    reference = _numpy_similarities(tiny_clip, frames, CAPTIONS)  # [B, V, S]
    gamma = float(np.median(reference))  # half the pairs above: a threshold that separates
    text = tiny_clip.embed_text(CAPTIONS)
    similarities = np.asarray(subgoal_similarities(tiny_clip, frames, text))
    np.testing.assert_allclose(similarities, reference, atol=2e-5)
    near = np.abs(reference - gamma) < 1e-4  # pairs too close to gamma for float32 to decide
    single = np.asarray(detect_subgoals(tiny_clip, frames[:, 0], CAPTIONS, gamma))
    np.testing.assert_array_equal(single[~near[:, 0]], (reference[:, 0] > gamma)[~near[:, 0]])
    assert single.dtype == bool and single.shape == (6, 3)
    jitted = jax.jit(lambda f: detect_subgoals(tiny_clip, f, text, gamma, combine="any"))
    any_view = np.asarray(jitted(frames))
    all_view = np.asarray(detect_subgoals(tiny_clip, frames, text, gamma, combine="all"))
    decided = ~near.any(axis=1)
    np.testing.assert_array_equal(any_view[decided], (reference > gamma).any(axis=1)[decided])
    np.testing.assert_array_equal(all_view[decided], (reference > gamma).all(axis=1)[decided])
    assert (all_view <= any_view).all() and any_view.any() and not all_view.all()
    detector = SubgoalDetector.create(tiny_clip, CAPTIONS, gamma, combine="any")
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda d, f: d(f))(detector, frames)), any_view)
    np.testing.assert_allclose(np.asarray(detector.similarities(frames)), reference.max(axis=1), atol=2e-5)


@pytest.mark.parametrize("threshold", [1.5, -1.01, float("nan"), "high"])
def test_threshold_outside_unit_interval_is_refused(tiny_clip, frames, threshold):
    with pytest.raises(VlmrmError, match="threshold=") as e:
        detect_subgoals(tiny_clip, frames[:, 0], CAPTIONS, threshold)
    assert "\n" not in str(e.value)
    with pytest.raises(VlmrmError, match="threshold="):
        SubgoalDetector.create(tiny_clip, CAPTIONS, threshold)


def test_view_and_combine_mismatches_are_refused(tiny_clip, frames):
    with pytest.raises(VlmrmError, match="combine='any'"):
        detect_subgoals(tiny_clip, frames, CAPTIONS, 0.8)
    with pytest.raises(VlmrmError, match="drop combine"):
        detect_subgoals(tiny_clip, frames[:, 0], CAPTIONS, 0.8, combine="all")
    with pytest.raises(VlmrmError, match="combine='both'"):
        detect_subgoals(tiny_clip, frames, CAPTIONS, 0.8, combine="both")
    with pytest.raises(VlmrmError, match=r"not \[S, 16\]"):
        detect_subgoals(tiny_clip, frames[:, 0], np.zeros((3, 5)), 0.8)


def test_combine_views():
    s = np.array([[[0.1, 0.9], [0.5, 0.2]]])  # [B=1, V=2, S=2]
    np.testing.assert_array_equal(combine_views(s, "any"), [[0.5, 0.9]])
    np.testing.assert_allclose(combine_views(jnp.asarray(s), "all"), [[0.1, 0.2]], rtol=1e-6)


# --- calibration and metrics, against brute force on fake similarities ---


def _fake_scores(seed=0, n=300, s=4):
    rng = np.random.default_rng(seed)
    labels = rng.random((n, s)) < 0.3
    scores = np.round(np.where(labels, rng.normal(0.5, 0.15, (n, s)), rng.normal(0.2, 0.15, (n, s))), 2)  # ties
    return np.clip(scores, -1, 1), labels


def _brute_force(scores, labels, target, per_caption):
    """Over every distinct cut, the detection set with the highest recall meeting the precision target."""
    best = None
    for t in np.r_[np.unique(scores), -1.0]:
        detected = scores > t
        if per_caption:
            ok = all(detected[:, j].sum() == 0 or (detected[:, j] & labels[:, j]).sum() >= target *
                     detected[:, j].sum() for j in range(scores.shape[1]))
        else:
            ok = detected.sum() == 0 or (detected & labels).sum() >= target * detected.sum()
        if ok and (best is None or (detected & labels).sum() > (best & labels).sum()):
            best = detected
    return best


@pytest.mark.parametrize("per_caption", [False, True])
@pytest.mark.parametrize("target", [0.8, 0.95])
def test_calibrate_threshold_finds_the_highest_recall_meeting_precision(per_caption, target):
    scores, labels = _fake_scores()
    result = calibrate_threshold(scores, labels, target, per_caption=per_caption)
    detected = scores > result.threshold
    expected = _brute_force(scores, labels, target, per_caption)
    assert (detected & labels).sum() == (expected & labels).sum() > 0
    precision, recall = precision_recall(detected, labels)
    if per_caption:
        assert np.nanmin(precision) >= target and result.precision == pytest.approx(np.nanmin(precision))
    else:
        assert result.precision == pytest.approx((detected & labels).sum() / detected.sum())
        assert result.precision >= target
    assert result.recall == pytest.approx((detected & labels).sum() / labels.sum())
    assert result.detections == detected.sum()


def test_calibration_edge_cases():
    labels = np.array([[True], [False], [False]])
    perfect = calibrate_threshold(np.array([[0.9], [0.3], [0.1]]), labels)
    assert perfect.threshold == 0.3 and perfect.precision == perfect.recall == 1.0
    inverted = calibrate_threshold(np.array([[0.1], [0.9], [0.8]]), labels)  # no threshold reaches the target
    assert inverted.detections == 0 and inverted.recall == 0.0 and np.isnan(inverted.precision)
    with pytest.raises(VlmrmError, match="no positive"):
        calibrate_threshold(np.zeros((3, 1)), np.zeros((3, 1), bool))
    with pytest.raises(VlmrmError, match="min_precision=1.5"):
        calibrate_threshold(np.zeros((3, 1)), labels, 1.5)
    with pytest.raises(VlmrmError, match="must both be"):
        calibrate_threshold(np.zeros((3, 2)), labels)


def test_calibrate_views_and_report_per_camera_and_combined():
    from vlmrm_jax.models.detection import calibrate_views, detection_report

    rng = np.random.default_rng(1)
    labels = rng.random((200, 3)) < 0.3
    scores = np.clip(np.where(labels[:, None], 0.5, 0.2) + rng.normal(0, 0.15, (200, 2, 3)), -1, 1)
    calibrated = calibrate_views(scores, labels, 0.9)
    assert calibrated["any"] == calibrate_threshold(scores.max(axis=1), labels, 0.9)
    assert calibrated["all"] == calibrate_threshold(scores.min(axis=1), labels, 0.9)
    assert calibrated["single"] == calibrate_threshold(scores.reshape(400, 3), np.repeat(labels, 2, axis=0), 0.9)
    thresholds = {k: c.threshold for k, c in calibrated.items()}
    report = detection_report(scores, labels, thresholds, ["a", "b", "c"], ["left", "right"])
    assert set(report) == {"left", "right", "any", "all"}
    detected = (scores[:, 1] > thresholds["single"])
    precision, recall = precision_recall(detected, labels)
    assert report["right"]["captions"]["b"]["precision"] == pytest.approx(precision[1])
    assert report["right"]["captions"]["b"]["recall"] == pytest.approx(recall[1])
    assert report["right"]["captions"]["b"]["positives"] == labels[:, 1].sum()
    both = (scores > thresholds["all"]).all(axis=1)
    assert report["all"]["recall"] == pytest.approx((both & labels).sum() / labels.sum())


def test_precision_recall_by_hand():
    detected = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]], bool)
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], bool)
    precision, recall = precision_recall(detected, labels)
    np.testing.assert_allclose(precision[:2], [0.5, 0.5])
    np.testing.assert_allclose(recall[:2], [1.0, 1.0])
    assert np.isnan(precision[2]) and np.isnan(recall[2])


def test_detector_config_round_trip_and_errors(tmp_path, tiny_clip_dir):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_clip_dir, model)
    with pytest.raises(VlmrmError, match="has no detector.json"):
        read_detector_config(model)
    write_detector_config(model, subgoals=CAPTIONS, thresholds={"single": 0.3, "any": 0.4, "all": 0.2},
                          combine="any", extra={"min_precision": 0.95})
    assert read_detector_config(model)["thresholds"] == {"single": 0.3, "any": 0.4, "all": 0.2}
    detector = SubgoalDetector.load(model)
    assert detector.threshold == 0.4 and detector.combine == "any" and detector.subgoals == tuple(CAPTIONS)
    assert SubgoalDetector.load(model, combine=None).threshold == 0.3
    with pytest.raises(VlmrmError, match="outside"):
        write_detector_config(model, subgoals=CAPTIONS, thresholds={"single": 2.0}, combine=None)
    data = json.loads((model / "detector.json").read_text())
    (model / "detector.json").write_text(json.dumps(dict(data, thresholds={"single": 3.0})))
    with pytest.raises(VlmrmError, match="not a valid detector configuration"):
        read_detector_config(model)


# --- the stacking caption source: labels are the env's predicates ---

#: Floors for the shipped detector (both cameras) on 48 fresh, unsettled states of an unused seed. It measured
#: precision 0.986 / recall 0.992 on 750 settled held-out states (docs/stacking_detector.md) and 0.98 / 1.0 here;
#: a CLIP that learned nothing detects nothing at a calibrated threshold, or at chance precision (~0.1).
PRECISION_FLOOR, RECALL_FLOOR = 0.85, 0.85
CHUNK = 8  # frames per jitted call: 4 states x 2 cameras (one compiled shape for every call below)


@pytest.fixture(scope="module")
def source():
    from vlmrm_jax.envs import make_source

    return make_source("stacking", image_size=64, settle_substeps=0)  # as built: no physics to compile


def _constructed_states():
    """(cube_pos [4, 3, 3], held [4], gripper [4, 3], expected subgoal keys per state)."""
    h, top = 0.025, 0.075
    cube_pos = np.array([
        [[0.0, 0.0, h], [0.07, 0.06, h], [0.004, -0.003, top]],  # blue on red, green apart
        [[-0.05, -0.05, h], [0.0, 0.0, 0.0], [-0.05, -0.05 + 0.01, top]],  # green held, blue on red (1 cm off)
        [[0.05, 0.05, 0.125], [0.05, 0.052, top], [0.05, 0.05, h]],  # tower: blue, green, red on top
        [[0.0, 0.0, h], [0.0, 0.06, h], [0.035, 0.0, top]],  # blue half off red (3.5 cm > ON_TOP_XY), green beside
    ], np.float32)
    held = np.array([-1, 1, -1, -1], np.int32)
    gripper = np.array([[0, 0, 0.23], [0.06, 0.06, 0.23], [-0.05, 0.0, 0.23], [0.05, -0.05, 0.2]], np.float32)
    expected = [{"blue_on_red", "nothing_held"}, {"grasp_green", "blue_on_red"},
                {"green_on_blue", "red_on_green", "tower", "nothing_held"}, {"nothing_held", "no_stack"}]
    return cube_pos, held, gripper, [e | {"scene"} for e in expected]


def test_caption_source_labels_constructed_states_by_the_predicates(source):
    from vlmrm_jax.envs.stacking.captions import STACKING_CAPTIONS, labels_from_truth
    from vlmrm_jax.envs.stacking.language import SUBGOALS

    cube_pos, held, gripper, expected = _constructed_states()
    images, labels, states = source.render_states(cube_pos, held, gripper)
    assert images.shape == (4, 2, 64, 64, 3) and images.dtype == np.uint8 and labels.shape == (4, 13)
    assert not np.array_equal(images[:, 0], images[:, 1])  # two different cameras
    keys = STACKING_CAPTIONS.keys
    for row, want in zip(labels, expected):
        assert {keys[j] for j in np.nonzero(row)[0]} == want
    np.testing.assert_array_equal(labels, labels_from_truth(labels[:, :9]))
    assert [c.prompt for c in STACKING_CAPTIONS.concepts[:9]] == list(SUBGOALS)
    np.testing.assert_allclose(states[1, 3:6], gripper[1] - [0, 0, 0.037], atol=1e-6)  # held green in the gripper


def test_caption_source_generates_camera_pairs_deterministically(source):
    first = list(source.generate(7, seed=3, chunk_size=CHUNK))
    again = list(source.generate(7, seed=3, chunk_size=CHUNK))
    images = np.concatenate([b.images for b in first])
    labels, states = np.concatenate([b.labels for b in first]), np.concatenate([b.states for b in first])
    assert images.shape == (7, 64, 64, 3) and states.shape == (7, len(source.state_names))
    np.testing.assert_array_equal(images, np.concatenate([b.images for b in again]))
    camera, scene = states[:, -2], states[:, -1]
    np.testing.assert_array_equal(camera, [0, 1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(scene, [0, 0, 1, 1, 2, 2, 3])
    np.testing.assert_array_equal(labels[0::2][:3], labels[1::2])  # one state, one truth, two views
    with pytest.raises(VlmrmError, match="mode_weights"):
        type(source)(mode_weights=(1.0, 0.0))


# --- the shipped stacking-clip-tiny ---


def test_shipped_detector_loads_by_short_name():
    from vlmrm_jax.models import CLIP
    from vlmrm_jax.models.registry import OFFLINE_MODELS, resolve_model

    assert "stacking-clip-tiny" in OFFLINE_MODELS
    path = resolve_model("stacking-clip-tiny")
    size = sum(f.stat().st_size for f in OFFLINE_MODELS["stacking-clip-tiny"].iterdir())
    assert size <= 25e6
    config = read_detector_config("stacking-clip-tiny")
    from vlmrm_jax.envs.stacking.language import SUBGOALS

    assert config["subgoals"] == list(SUBGOALS) and config["combine"] in ("any", "all")
    detector = SubgoalDetector.load("stacking-clip-tiny")
    assert detector.threshold == config["thresholds"][config["combine"]] and detector.clip.image_size == 64
    assert CLIP.load(path).embed_dim == detector.text_embeddings.shape[1]


def test_shipped_detector_quality_on_fresh_held_out_states(source):
    """On 48 states of a seed never used in training or calibration (both cameras, the recommended rule)."""
    detector = SubgoalDetector.load("stacking-clip-tiny")
    batches = list(source.generate(96, seed=1234, chunk_size=CHUNK))
    images = np.concatenate([b.images for b in batches]).reshape(48, 2, 64, 64, 3)
    labels = np.concatenate([b.labels for b in batches])[0::2, :9]
    assert labels.any(axis=0).sum() >= 6  # most subgoals occur
    detected = np.asarray(jax.jit(lambda d, f: d(f))(detector, images.astype(np.float32) / 255.0))
    tp = (detected & labels).sum()
    precision, recall = tp / max(detected.sum(), 1), tp / labels.sum()
    assert precision >= PRECISION_FLOOR and recall >= RECALL_FLOOR, (precision, recall)
