"""Ground-truth pose predicates for VLM-RM's humanoid tasks, computed in JAX from the MJX state.

VLM-RM (Rocamonde et al. 2023, section 4.4) judged its humanoid policies by hand: people watched 100 episodes per
task and counted an episode as a success when the pose was held for at least 50% of its steps. This module replaces
the people with geometric rules on the MuJoCo state, so success rates are computed automatically:

- :data:`PREDICATES` maps a task key to a :class:`Predicate` whose ``fn(model, data) -> bool []`` says whether the
  pose holds in one state. Every rule reads only world positions and orientations (``data.xpos``, ``data.xmat``,
  ``data.geom_xpos``), so it is pure, jittable, vmappable, and also accepts data with any leading batch axes
  (e.g. ``[T, B]`` rollouts) directly.
- :func:`evaluate_predicates` evaluates many predicates on a rollout (leaves ``[T, B, ...]``), computing the shared
  :class:`PoseFeatures` once; :func:`episode_success` and :func:`success_rate` implement the paper's 50% criterion.
- :data:`PROMPT_TO_TASK` / :func:`task_for_prompt` map the paper's eight goal prompts to task keys.

The rules are written for brax's humanoid (``brax/envs/assets/humanoid.xml``: x forward, y to the humanoid's left,
z up; floor at z = 0) and their thresholds are the fields of :class:`PoseThresholds`, in metres and radians, chosen
from the body's dimensions in hand-built poses (:mod:`vlmrm_jax.envs.humanoid.reference_poses`), never from a policy. The
numbers measured in those poses (with the lowest point of the body resting on the floor) are given next to each
threshold. Some paper poses cannot be reached within this model's joint limits (lotus: the shin always folds in the
vertical plane of the thigh; side splits: hip abduction stops at 25 degrees); for those the closest reachable pose
is defined instead, as the rules' docstrings say.

In the rules, "the torso is upright" means its z-axis is within ``upright_tilt_max`` of the vertical *and* no part
of the body is sunk through the floor (``floor_penetration_max``): in brax's original humanoid.xml only the feet
collide with the floor (:class:`vlmrm_jax.envs.humanoid.Humanoid` makes every body geom collide with it, but the rules
also serve other humanoid models). Predicates are not exclusive: e.g. ``arms_raised`` implies ``standing`` and ``lotus`` implies ``sitting``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.eval.success import episode_success, success_rate  # noqa: F401  (the paper's 50% criterion)

#: An MJX model (``env.sys``, including brax's ``System``) or the MuJoCo model it was made from.
AnyModel = Union[mjx.Model, mujoco.MjModel]

#: The hip points, where "hands on hips" puts the hands: the outer ends of the pelvis's ``butt`` capsule
#: (``fromto`` y = +-0.07 m, radius 0.09 m), in the pelvis body frame, metres; rows: right, left.
HIP_POINTS_IN_PELVIS = ((-0.02, -0.16, 0.0), (-0.02, 0.16, 0.0))


@dataclasses.dataclass(frozen=True)
class PoseThresholds:
    """The named thresholds of the pose rules, in metres (heights above the floor unless said otherwise) and radians.

    The measured values are from the hand-built poses of :mod:`vlmrm_jax.envs.humanoid.reference_poses`, resting on the floor.
    "Knee" is the shin body's origin (the knee joint), "hip" the thigh body's origin (the hip joint), "foot", "hand",
    "head" and "butt" the centres of those geoms (spheres of radius 0.075, 0.04, 0.09 m; the butt is a capsule of
    radius 0.09 m).

    Attributes:
        floor_penetration_max: how far below the floor the centres of the head, torso, butt, knees and hands may be
            (m). In brax's original humanoid.xml only the feet collide with the floor, so the rest of the body can
            sink through it (with zero actions from reset, that MJX humanoid falls through the floor and hangs head
            down from its feet, the head at about -1.3 two seconds after reset; the project's ``Humanoid`` adds the
            missing floor contacts). A pose seen partly under the floor is not the
            pose, so every rule except ``fallen`` requires these centres above ``-floor_penetration_max``. Resting
            on the floor: lowest centre 0.04 (the hands, lying face down).
        upright_tilt_max: largest angle between the torso's z-axis and the vertical for an upright torso (rad;
            0.5 rad = 29 deg). Used by standing, kneeling, sitting and splits.
        standing_head_min: lowest head height for standing (m). Standing: 1.48; widest stance (hips abducted to
            their 25 deg limit): 1.42; kneeling upright: 1.12; deep squat: 0.98.
        knee_floor_max: highest knee point for a knee on the floor (m). Knee on the floor: 0.078; standing: 0.43;
            deep squat: 0.38.
        kneel_foot_behind_min: how far behind its knee (along the pelvis's forward axis) the foot of a kneeling leg
            must be (m). Kneeling upright and on the heels: 0.35; sitting with legs stretched out (knees also on
            the floor): -0.35 (foot in front).
        kneeling_head_min: lowest head height for kneeling (m). Kneeling on the heels: 0.86; upright: 1.12;
            lying: 0.12 to 0.40.
        seated_butt_max: highest butt centre for sitting on the floor (m). Butt on the floor: 0.09 to 0.13;
            kneeling on the heels: 0.25; kneeling upright: 0.50; standing: 0.87.
        lotus_knee_flexion_min: smallest bend of both knees for the lotus rule (rad; the angle between thigh and
            shin, 0 for a straight leg). Straight: 0.04; seated with knees out: 1.52.
        lotus_knee_separation_min: smallest distance between the two knees for the lotus rule (m). Standing: 0.18;
            seated with thighs turned out to the hip limit: 0.80.
        splits_foot_separation_min: smallest distance between the feet along the pelvis's left-right axis for the
            splits (m). Standing: 0.18; widest standing stance: 0.82; seated straddle at the hip limits: 1.50.
        splits_butt_max: highest butt centre for the splits (m). Seated straddle: 0.13; widest standing stance: 0.80.
        hand_above_head_min: how far above the head centre both hand centres must be for arms raised (m). Arms at
            the sides: -0.13; arms raised (shoulders at their limits): +0.34.
        hand_hip_max: largest distance from each hand centre to its hip point (:data:`HIP_POINTS_IN_PELVIS`) for
            hands on hips (m). Hands on hips: 0.02; arms in the default pose: 0.62.
        arms_crossed_past_midline: how far past the torso's mid-plane (its x-z plane) each hand must reach, the
            right hand to the left and the left hand to the right, for crossed arms (m). Arms crossed: 0.10;
            arms at the sides: -0.17.
        arms_crossed_front_min: how far in front of the torso origin (along its x-axis) both hands must be for
            crossed arms (m). The torso capsule's front is at 0.07; arms crossed: 0.34.
        arms_crossed_height_range: (lowest, highest) height of both hands relative to the torso origin, along its
            z-axis, for crossed arms (m): between the hip joints (-0.47) and just above the shoulders (+0.06).
            Arms crossed: -0.38.
        one_leg_foot_raise_min: smallest height difference between the feet for standing on one leg (m).
            Standing: 0.0; one knee raised to the front: 0.39.
        foot_floor_max: highest foot centre for a foot on the floor (m; the foot sphere's radius is 0.075). Standing
            and squatting: 0.075; one knee down: 0.094; lying face down: 0.42.
        squat_knee_flexion_min: smallest bend of both knees for squatting (rad; as lotus_knee_flexion_min). Standing:
            0.04; deep squat: 2.3.
        lying_tilt_min: smallest torso tilt from the vertical for lying down (rad; 1.0 rad = 57 deg). Lying: 1.57.
        lying_torso_max: highest torso origin for lying down (m). On the back: 0.12; on the side: 0.37; face down:
            0.40; sitting: 0.55.
        fallen_head_max: highest head centre for a fallen humanoid (m). Lying: 0.12 to 0.40; sitting: 0.72 to 0.74;
            kneeling on the heels: 0.86.
    """

    floor_penetration_max: float = 0.05
    upright_tilt_max: float = 0.5
    standing_head_min: float = 1.25
    knee_floor_max: float = 0.15
    kneel_foot_behind_min: float = 0.1
    kneeling_head_min: float = 0.7
    seated_butt_max: float = 0.2
    lotus_knee_flexion_min: float = 1.0
    lotus_knee_separation_min: float = 0.5
    splits_foot_separation_min: float = 1.2
    splits_butt_max: float = 0.45
    hand_above_head_min: float = 0.0
    hand_hip_max: float = 0.12
    arms_crossed_past_midline: float = 0.05
    arms_crossed_front_min: float = 0.1
    arms_crossed_height_range: tuple[float, float] = (-0.47, 0.1)
    one_leg_foot_raise_min: float = 0.2
    foot_floor_max: float = 0.15
    squat_knee_flexion_min: float = 1.0
    lying_tilt_min: float = 1.0
    lying_torso_max: float = 0.5
    fallen_head_max: float = 0.5


@dataclasses.dataclass(frozen=True)
class HumanoidParts:
    """Body and geom ids of the humanoid parts the rules read, resolved by name from the model.

    Pairs are (right, left). Bodies: ``torso`` (the root), ``pelvis``, ``thighs`` (origin = hip joint), ``shins``
    (origin = knee joint). Geoms: ``head``, ``butt``, ``feet``, ``hands``.
    """

    torso: int
    pelvis: int
    thighs: tuple[int, int]
    shins: tuple[int, int]
    head: int
    butt: int
    feet: tuple[int, int]
    hands: tuple[int, int]

    @classmethod
    def from_model(cls, model: AnyModel) -> "HumanoidParts":
        """Resolves the ids by name in ``model`` (an ``mjx.Model`` such as ``env.sys``, or a ``mujoco.MjModel``).

        Raises:
            VlmrmError: if a body or geom of brax's humanoid is missing (the model is not that humanoid).
        """

        def find(kind: mujoco.mjtObj, name: str) -> int:
            i = mjx.name2id(model, kind, name)
            if i < 0:
                what = "body" if kind == mujoco.mjtObj.mjOBJ_BODY else "geom"
                raise VlmrmError(f"the model has no {what} named {name!r}; pose predicates need brax's humanoid "
                                 f"(pass env.sys of vlmrm_jax.envs.humanoid.Humanoid or its mj_model)")
            return i

        body = lambda name: find(mujoco.mjtObj.mjOBJ_BODY, name)
        geom = lambda name: find(mujoco.mjtObj.mjOBJ_GEOM, name)
        return cls(torso=body("torso"), pelvis=body("pelvis"),
                   thighs=(body("right_thigh"), body("left_thigh")), shins=(body("right_shin"), body("left_shin")),
                   head=geom("head"), butt=geom("butt"), feet=(geom("right_foot"), geom("left_foot")),
                   hands=(geom("right_hand"), geom("left_hand")))


class PoseFeatures(NamedTuple):
    """Geometric quantities the rules compare with :class:`PoseThresholds`; every field has the data's leading
    batch shape ``[...]`` (e.g. ``[]``, ``[B]`` or ``[T, B]``) plus the trailing axes given. Pairs are (right, left).
    Metres and radians; heights are world z (floor at 0).

    Attributes:
        head_z: float32 [...], head centre height.
        lowest_z: float32 [...], height of the lowest of the centres of the head, torso, butt, knees and hands.
        torso_z: float32 [...], torso origin height.
        torso_tilt_cos: float32 [...], cosine of the angle between the torso's z-axis and the world vertical.
        butt_z: float32 [...], butt capsule centre height.
        knee_z: float32 [..., 2], knee joint heights.
        foot_z: float32 [..., 2], foot centre heights.
        knee_flexion: float32 [..., 2], angle between thigh (hip to knee) and shin (knee to foot centre), 0 when
            straight.
        foot_behind_knee: float32 [..., 2], (knee - foot) along the pelvis's forward (x) axis.
        knee_separation: float32 [...], distance between the knee joints.
        foot_separation: float32 [...], |left foot - right foot| along the pelvis's left (y) axis.
        hand_above_head: float32 [..., 2], hand centre height minus head centre height.
        hand_to_hip: float32 [..., 2], distance from each hand centre to its own hip point.
        hand_in_torso: float32 [..., 2, 3], hand centres in the torso frame (x forward, y left, z up).
    """

    head_z: jax.Array
    lowest_z: jax.Array
    torso_z: jax.Array
    torso_tilt_cos: jax.Array
    butt_z: jax.Array
    knee_z: jax.Array
    foot_z: jax.Array
    knee_flexion: jax.Array
    foot_behind_knee: jax.Array
    knee_separation: jax.Array
    foot_separation: jax.Array
    hand_above_head: jax.Array
    hand_to_hip: jax.Array
    hand_in_torso: jax.Array


def pose_features(parts: HumanoidParts, data: mjx.Data) -> PoseFeatures:
    """Computes the :class:`PoseFeatures` of ``data`` (an ``mjx.Data`` after forward kinematics, e.g. brax's
    ``state.pipeline_state``; leaves may have any leading batch axes ``[...]``). Pure and jittable."""
    xpos, xmat, geom_xpos = data.xpos, data.xmat, data.geom_xpos
    torso_pos, torso_rot = xpos[..., parts.torso, :], xmat[..., parts.torso, :, :]
    pelvis_pos, pelvis_rot = xpos[..., parts.pelvis, :], xmat[..., parts.pelvis, :, :]
    head = geom_xpos[..., parts.head, :]
    hip = xpos[..., list(parts.thighs), :]
    knee = xpos[..., list(parts.shins), :]
    foot = geom_xpos[..., list(parts.feet), :]
    hand = geom_xpos[..., list(parts.hands), :]

    thigh, shin = knee - hip, foot - knee
    flexion = jnp.arctan2(jnp.linalg.norm(jnp.cross(thigh, shin), axis=-1), jnp.sum(thigh * shin, axis=-1))
    forward, left = pelvis_rot[..., None, :, 0], pelvis_rot[..., :, 1]
    hip_points = pelvis_pos[..., None, :] + jnp.einsum("...jk,hk->...hj", pelvis_rot,
                                                        jnp.asarray(HIP_POINTS_IN_PELVIS, xpos.dtype))
    centres_z = jnp.concatenate([head[..., None, 2], torso_pos[..., None, 2], geom_xpos[..., parts.butt, None, 2],
                                 knee[..., 2], hand[..., 2]], axis=-1)
    return PoseFeatures(
        head_z=head[..., 2],
        lowest_z=jnp.min(centres_z, axis=-1),
        torso_z=torso_pos[..., 2],
        torso_tilt_cos=torso_rot[..., 2, 2],
        butt_z=geom_xpos[..., parts.butt, 2],
        knee_z=knee[..., 2],
        foot_z=foot[..., 2],
        knee_flexion=flexion,
        foot_behind_knee=jnp.sum((knee - foot) * forward, axis=-1),
        knee_separation=jnp.linalg.norm(knee[..., 1, :] - knee[..., 0, :], axis=-1),
        foot_separation=jnp.abs(jnp.sum((foot[..., 1, :] - foot[..., 0, :]) * left, axis=-1)),
        hand_above_head=hand[..., 2] - head[..., None, 2],
        hand_to_hip=jnp.linalg.norm(hand - hip_points, axis=-1),
        hand_in_torso=jnp.einsum("...hk,...kj->...hj", hand - torso_pos[..., None, :], torso_rot),
    )


# --- The rules: (features, thresholds) -> bool [...]. Their docstrings are the predicates' descriptions. ---

def _above_floor(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    return f.lowest_z >= -t.floor_penetration_max


def _upright(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    return _above_floor(f, t) & (f.torso_tilt_cos >= math.cos(t.upright_tilt_max))


def _standing(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Standing up: the torso is upright (tilt <= upright_tilt_max) and the head is at least standing_head_min high,
    which the body reaches only on its feet with nearly straight legs (kneeling upright puts the head 0.13 m lower)."""
    return _upright(f, t) & (f.head_z >= t.standing_head_min)


def _arms_raised(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Standing up with both arms raised: standing, and both hand centres at least hand_above_head_min above the head
    centre."""
    return _standing(f, t) & jnp.all(f.hand_above_head >= t.hand_above_head_min, axis=-1)


def _hands_on_hips(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Standing up with hands on hips: standing, and each hand centre within hand_hip_max of its own hip point (the
    outer end of the pelvis on that side, HIP_POINTS_IN_PELVIS)."""
    return _standing(f, t) & jnp.all(f.hand_to_hip <= t.hand_hip_max, axis=-1)


def _arms_crossed(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Standing up with arms crossed: standing, and in the torso frame the right hand is at least
    arms_crossed_past_midline to the left of the mid-plane and the left hand as far to the right, both hands at least
    arms_crossed_front_min in front of the torso and between the heights of arms_crossed_height_range (hips to
    shoulders): the forearms cross in front of the body."""
    x, y, z = f.hand_in_torso[..., 0], f.hand_in_torso[..., 1], f.hand_in_torso[..., 2]
    low, high = t.arms_crossed_height_range
    crossed = (y[..., 0] >= t.arms_crossed_past_midline) & (y[..., 1] <= -t.arms_crossed_past_midline)
    in_front = jnp.all((x >= t.arms_crossed_front_min) & (z >= low) & (z <= high), axis=-1)
    return _standing(f, t) & crossed & in_front


def _one_leg(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Standing up on one leg: standing, and one foot at least one_leg_foot_raise_min higher than the other."""
    return _standing(f, t) & (jnp.abs(f.foot_z[..., 0] - f.foot_z[..., 1]) >= t.one_leg_foot_raise_min)


def _kneeling(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Kneeling: the torso is upright, the head at least kneeling_head_min high, and at least one leg kneels: its knee
    within knee_floor_max of the floor and its foot at least kneel_foot_behind_min behind the knee (the shin lies back
    along the floor; this tells kneeling from sitting with the legs stretched out, where the knees are low too).
    Kneeling upright, on one knee and sitting back on the heels all count."""
    leg_kneels = (f.knee_z <= t.knee_floor_max) & (f.foot_behind_knee >= t.kneel_foot_behind_min)
    return _upright(f, t) & (f.head_z >= t.kneeling_head_min) & jnp.any(leg_kneels, axis=-1)


def _sitting(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Sitting on the floor: the torso is upright and the butt centre within seated_butt_max of the floor (the butt
    rests on the floor, not on the heels)."""
    return _upright(f, t) & (f.butt_z <= t.seated_butt_max)


def _squatting(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Squatting (crouching on the feet): not lying (torso tilt below lying_tilt_min), both feet on the floor (foot
    centres within foot_floor_max), both knees bent by at least squat_knee_flexion_min and off the floor (higher than
    knee_floor_max), the butt off the floor (higher than seated_butt_max) and the head below standing_head_min. A
    negative for kneeling: the knees are low and bent, but no knee rests on the floor."""
    on_feet = jnp.all(f.foot_z <= t.foot_floor_max, axis=-1)
    knees = jnp.all((f.knee_flexion >= t.squat_knee_flexion_min) & (f.knee_z > t.knee_floor_max), axis=-1)
    not_lying = f.torso_tilt_cos > math.cos(t.lying_tilt_min)
    return (_above_floor(f, t) & not_lying & on_feet & knees & (f.butt_z > t.seated_butt_max)
            & (f.head_z < t.standing_head_min))


def _lotus(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Seated in the lotus position, approximated: sitting, both knees bent by at least lotus_knee_flexion_min and the
    knees at least lotus_knee_separation_min apart (thighs turned out to the sides). A true lotus (each foot on the
    opposite thigh) is impossible for this humanoid: its knee hinges keep each shin in the vertical plane of its
    thigh, so the legs cannot fold flat and cross; seated with bent knees spread wide is the closest reachable pose."""
    bent = jnp.all(f.knee_flexion >= t.lotus_knee_flexion_min, axis=-1)
    return _sitting(f, t) & bent & (f.knee_separation >= t.lotus_knee_separation_min)


def _splits(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Side splits, approximated: the torso is upright, the butt within splits_butt_max of the floor and the feet at
    least splits_foot_separation_min apart along the pelvis's left-right axis. Full side splits (legs in a line,
    1.7 m apart) are impossible here: hip abduction stops at 25 deg, so standing stances reach 0.82 m; the widest
    spread, about 1.5 m, is a seated straddle (thighs flexed forward and turned out): what this rule accepts."""
    low = f.butt_z <= t.splits_butt_max
    return _upright(f, t) & low & (f.foot_separation >= t.splits_foot_separation_min)


def _lying_down(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Lying down (on the back, front or side): the torso tilted at least lying_tilt_min from the vertical and its
    origin within lying_torso_max of the floor, and no part sunk through the floor (floor_penetration_max)."""
    return _above_floor(f, t) & (f.torso_tilt_cos <= math.cos(t.lying_tilt_min)) & (f.torso_z <= t.lying_torso_max)


def _fallen(f: PoseFeatures, t: PoseThresholds) -> jax.Array:
    """Fallen: the head centre within fallen_head_max of the floor (lying, or collapsed in any other way; sitting and
    kneeling keep the head higher), including a humanoid sunk through the floor. A property of one state: a humanoid
    still on its way down is not yet fallen."""
    return f.head_z <= t.fallen_head_max


Rule = Callable[[PoseFeatures, PoseThresholds], jax.Array]

#: Task key -> (the paper's goal prompt or None, rule).
_TASKS: dict[str, tuple[str | None, Rule]] = {
    "kneeling": ("a humanoid robot kneeling", _kneeling),
    "lotus": ("a humanoid robot seated down, meditating in the lotus position", _lotus),
    "standing": ("a humanoid robot standing up", _standing),
    "arms_raised": ("a humanoid robot standing up, with both arms raised", _arms_raised),
    "splits": ("a humanoid robot practicing gymnastics, doing the side splits", _splits),
    "hands_on_hips": ("a humanoid robot standing up with hands on hips", _hands_on_hips),
    "arms_crossed": ("a humanoid robot standing up, with its arms crossed", _arms_crossed),
    "one_leg": ("a humanoid robot standing up on one leg", _one_leg),
    "lying_down": (None, _lying_down),
    "sitting": (None, _sitting),
    "squatting": (None, _squatting),
    "fallen": (None, _fallen),
}


@dataclasses.dataclass(frozen=True)
class Predicate:
    """A ground-truth test of one humanoid pose.

    Attributes:
        name: the task key (e.g. ``"kneeling"``).
        prompt: the paper's goal prompt for this task (Rocamonde et al. 2023, section 4.4), or None for the extra
            negatives (lying_down, sitting, squatting, fallen).
        description: the geometric rule in words, naming the :class:`PoseThresholds` fields it uses.
        fn: ``fn(model, data) -> bool [...]``: ``model`` an ``mjx.Model`` (``env.sys``) or ``mujoco.MjModel`` of
            brax's humanoid, ``data`` an ``mjx.Data`` (``state.pipeline_state``) with any leading batch axes
            ``[...]``. Pure, jittable and vmappable (pass ``model`` unbatched). Raises VlmrmError (while tracing) if
            the model is not brax's humanoid or the data does not match it.
    """

    name: str
    prompt: str | None
    description: str
    fn: Callable[[AnyModel, mjx.Data], jax.Array]


def _check_data(model: AnyModel, data: mjx.Data) -> None:
    nbody = model.nbody
    if data.xpos.shape[-2:] != (nbody, 3):
        raise VlmrmError(f"data.xpos has shape {tuple(data.xpos.shape)}, expected [..., {nbody}, 3] for this model; "
                         f"pass the pipeline_state of the env whose sys is the model")


def make_predicates(thresholds: PoseThresholds = PoseThresholds()) -> dict[str, Predicate]:
    """Builds every predicate with the given thresholds; :data:`PREDICATES` is ``make_predicates()``.

    Returns:
        Task key -> :class:`Predicate`, keys as in :data:`PREDICATES`.
    """

    def make(name: str, prompt: str | None, rule: Rule) -> Predicate:
        def fn(model: AnyModel, data: mjx.Data) -> jax.Array:
            _check_data(model, data)
            return rule(pose_features(HumanoidParts.from_model(model), data), thresholds)

        return Predicate(name=name, prompt=prompt, description=inspect.cleandoc(rule.__doc__), fn=fn)

    return {name: make(name, prompt, rule) for name, (prompt, rule) in _TASKS.items()}


#: Task key -> :class:`Predicate` with the default :class:`PoseThresholds`. Keys: the eight paper tasks
#: ("kneeling", "lotus", "standing", "arms_raised", "splits", "hands_on_hips", "arms_crossed", "one_leg") and the
#: negatives "lying_down", "sitting", "squatting", "fallen".
PREDICATES: dict[str, Predicate] = make_predicates()

#: The paper's eight humanoid goal prompts -> task key.
PROMPT_TO_TASK: dict[str, str] = {prompt: name for name, (prompt, _) in _TASKS.items() if prompt is not None}


def _normalise_prompt(prompt: str) -> str:
    return " ".join(prompt.lower().split()).rstrip(".")


def task_for_prompt(prompt: str) -> str | None:
    """The task key of one of the paper's goal prompts, or None if ``prompt`` is not one of them.

    Case, repeated white space and a final full stop are ignored ("A humanoid robot  kneeling." -> "kneeling").
    """
    wanted = _normalise_prompt(prompt)
    return next((task for p, task in PROMPT_TO_TASK.items() if _normalise_prompt(p) == wanted), None)


def evaluate_predicates(model: AnyModel, data: mjx.Data, tasks: list[str] | None = None,
                        thresholds: PoseThresholds = PoseThresholds()) -> dict[str, jax.Array]:
    """Evaluates several predicates on states with any leading batch axes, e.g. a rollout's ``[T, B]``.

    The :class:`PoseFeatures` are computed once and shared by all rules. Jittable (``tasks`` and ``thresholds``
    static).

    Args:
        model: ``env.sys`` (an ``mjx.Model``) or the ``mujoco.MjModel`` of brax's humanoid.
        data: an ``mjx.Data`` whose leaves have leading axes ``[...]`` (e.g. ``rollout.states.pipeline_state``,
            ``[T, B, ...]``).
        tasks: task keys to evaluate; None = all of :data:`PREDICATES`.
        thresholds: the rules' thresholds.

    Returns:
        Task key -> bool [...] (e.g. ``[T, B]``): whether the pose holds in each state.

    Raises:
        VlmrmError: on an unknown task key, a model that is not brax's humanoid, or data that does not match it.
    """
    tasks = list(_TASKS) if tasks is None else list(tasks)
    unknown = [task for task in tasks if task not in _TASKS]
    if unknown:
        raise VlmrmError(f"unknown pose task {unknown[0]!r}; choose from {', '.join(_TASKS)}")
    _check_data(model, data)
    features = pose_features(HumanoidParts.from_model(model), data)
    return {task: _TASKS[task][1](features, thresholds) for task in tasks}


def predicates_of_qpos(model: mujoco.MjModel, qpos: np.ndarray) -> dict[str, np.ndarray]:
    """Every predicate on a batch of poses given as ``qpos``, with MuJoCo's own kinematics (no MJX, no jit).

    For stored states, e.g. the settled ``qpos`` a humanoid dataset keeps (``CaptionedFrames.states``).

    Args:
        model: the ``mujoco.MjModel`` of brax's humanoid (``env.sys.mj_model``).
        qpos: float [N, nq] (nq = 24), root position (m), root quaternion, hinge angles (rad).

    Returns:
        Task key -> bool [N], keys as in :data:`PREDICATES`.

    Raises:
        VlmrmError: if ``qpos`` is not [N, model.nq].
    """
    qpos = np.asarray(qpos, np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != model.nq:
        raise VlmrmError(f"qpos has shape {qpos.shape}, expected [N, {model.nq}] for this model")
    datas = []
    for q in qpos:
        data = mujoco.MjData(model)
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        datas.append(mjx.put_data(model, data))
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *datas)
    return {task: np.asarray(holds) for task, holds in evaluate_predicates(model, stacked).items()}
