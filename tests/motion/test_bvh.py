"""BVH reading, rig mapping, units, resampling and the write -> read round trip, on real fixture clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motionmillion.motion import decode_joints, encode_272, forward_kinematics
from motionmillion.motion.bvh import BVHError, read_bvh, write_bvh
from motionmillion.motion.rig_mapping import bvh_to_features, detect_unit, load_bvh_joints
from motionmillion.motion.rigs import RIGS, UnknownRigError, detect_rig, parse_definition
from motionmillion.motion.rotations import axis_angle_to_matrix
from motionmillion.motion.skeleton import JOINT_NAMES, TEMPLATE_OFFSETS

BVH_DIR = Path(__file__).parent.parent / "fixtures" / "bvh"
BANDAI_1 = BVH_DIR / "bandai/Bandai-Namco-Research-Motiondataset-1/data"
WALK = BANDAI_1 / "dataset-1_walk_normal_001.bvh"
BYE = BANDAI_1 / "dataset-1_bye_normal_001.bvh"  # waves the right hand
WAVE_LEFT = BVH_DIR / "bandai/Bandai-Namco-Research-Motiondataset-2/data/dataset-2_wave-left-hand_normal_001.bvh"
SALSA = BVH_DIR / "cmu-dance/train_data_bvh/salsa/01.bvh"  # header 120 fps, truly 60
MARTIAL = BVH_DIR / "cmu-dance/train_data_bvh/martial/03.bvh"  # 120 fps
CLIPS = {"walk": (WALK, None), "bye": (BYE, None), "wave_left": (WAVE_LEFT, None), "salsa": (SALSA, 60.0), "martial": (MARTIAL, None)}  # fmt: skip

MINIMAL = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 90 0 0 0 0 0 0 0
1 90 0 90 90 0 0 0 0
"""


def _write(tmp_path: Path, text: str, name: str = "clip.bvh") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- parsing ---------------------------------------------------------------------------------------


def test_read_real_fixture_clips():
    bandai = read_bvh(WALK)
    assert bandai.names[:3] == ["joint_Root", "Hips", "Spine"]
    assert len(bandai.names) == 22 and all(len(c) == 6 for c in bandai.channels)
    assert bandai.num_frames == 100 and bandai.fps == 30.0
    assert bandai.frames.shape == (100, 22 * 6)
    cmu = read_bvh(SALSA)
    assert cmu.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
    assert cmu.channels[1] == ("Zrotation", "Xrotation", "Yrotation")
    assert cmu.fps == 120.0 and cmu.num_frames == 120
    assert len(cmu.end_sites) > 10  # fingers, eyes, toes
    names = [n for n in cmu.names]
    assert "lFoot" in names and any(cmu.names[p] == "lFoot" for p, _ in cmu.end_sites)


def test_channel_semantics_on_a_tiny_file(tmp_path):
    """Root position channels are absolute; rotations compose intrinsically in the listed order."""
    path = _write(tmp_path, MINIMAL)
    data = read_bvh(path)
    assert data.names == ["Hips", "Spine"] and list(data.parents) == [-1, 0]
    assert data.end_sites[0][0] == 1 and np.allclose(data.end_sites[0][1], [0, 5, 0])
    # A custom two-point rig is not needed: check FK through local_transforms directly.
    from motionmillion.motion.bvh import forward_transforms, local_transforms

    rot, trans = local_transforms(data)
    pos, _ = forward_transforms(data.parents, rot, trans)
    assert np.allclose(pos[0], [[0, 90, 0], [0, 100, 0]])
    # Frame 1: root "Zrotation 90 Xrotation 90" is R = Rz Rx (intrinsic, in file order): Rx takes the
    # +Y spine bone to +Z, which Rz leaves alone. (Rx Rz would give -X.)
    assert np.allclose(pos[1], [[1, 90, 0], [1, 90, 10]], atol=1e-9)


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda s: s.replace("OFFSET 0 10 0", "OFFSET 0 ten 0"), "expected a number"),
        (lambda s: s.replace("    CHANNELS 3 Zrotation Xrotation Yrotation\n", ""), "no CHANNELS"),
        (lambda s: s.replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 3 Zrotation Xrotation"), "unknown channel"),
        (lambda s: s.replace("  }\n}\nMOTION", "  }\nMOTION"), "expected"),
        (lambda s: s.replace("1 90 0 90 90 0 0 0 0", "1 90 0 90 90 0 0 0"), "frame 1 has 8 values"),
        (lambda s: s.replace("1 90 0 90 90 0 0 0 0", "1 90 nan 90 90 0 0 0 0"), "NaN/infinite"),
        (lambda s: s.replace("1 90 0 90 90 0 0 0 0", "1 90 inf 90 90 0 0 0 0"), "NaN/infinite"),
        (lambda s: s.split("MOTION")[0] + "MOTION\nFrames: 0\nFrame Time: 0.0333333\n", "zero frames"),
        (lambda s: s.replace("Frames: 2", "Frames: 3"), "header says 3 frames"),
        (lambda s: s.replace("Frame Time: 0.0333333", "Frame Time: 0"), "Frame Time"),
        (lambda s: s.replace("MOTION", "MOTIONS"), "no MOTION"),
        (lambda s: s.replace("0 90 0 0 0 0 0 0 0", "0 90 0 0 0 0 0 0 x"), "not a number"),
    ],
)
def test_malformed_files_raise_a_clear_error(tmp_path, mutate, problem):
    path = _write(tmp_path, mutate(MINIMAL))
    with pytest.raises(BVHError) as info:
        read_bvh(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert problem in message, message


def test_missing_file_and_unknown_rig(tmp_path):
    with pytest.raises(BVHError, match="cannot read"):
        read_bvh(tmp_path / "nope.bvh")
    path = _write(tmp_path, MINIMAL)
    with pytest.raises(BVHError, match="unknown rig") as info:
        load_bvh_joints(path)
    assert str(info.value).startswith(str(path))
    with pytest.raises(BVHError, match="unknown rig 'robot'"):
        load_bvh_joints(path, rig="robot")


# --- rigs ------------------------------------------------------------------------------------------


def test_detect_rig_on_real_and_smpl_names():
    assert detect_rig(read_bvh(WALK).names) == "bandai"
    assert detect_rig(read_bvh(SALSA).names) == "cmu-daz"
    assert detect_rig(JOINT_NAMES) == "smpl"
    reference = ["Pelvis", "Left_hip", "Right_hip", "Spine1", "Left_knee", "Right_knee", "Spine2", "Left_ankle",
                 "Right_ankle", "Spine3", "Left_foot", "Right_foot", "Neck", "Left_collar", "Right_collar", "Head",
                 "Left_shoulder", "Right_shoulder", "Left_elbow", "Right_elbow", "Left_wrist", "Right_wrist",
                 "Left_palm", "Right_palm"]  # fmt: skip
    assert detect_rig(reference) == "smpl"
    with pytest.raises(UnknownRigError, match="closest is 'bandai'"):
        detect_rig(read_bvh(WALK).names[:-3])


def test_rig_definitions_parse():
    assert [r.joint for r in parse_definition("midpoint(Chest, Neck)")] == ["Chest", "Neck"]
    assert parse_definition("end(lFoot)")[0].end_site
    with pytest.raises(ValueError):
        parse_definition("midpoint(Chest)")
    assert set(RIGS) == {"smpl", "bandai", "cmu-daz", "mixamo", "cc-base"}


# --- loading: orientation, units, frame rates --------------------------------------------------------


@pytest.mark.parametrize("clip", list(CLIPS))
def test_left_is_left_and_figure_is_upright(clip):
    """The SMPL left joints lie on the body's left: left x up = the direction the feet point."""
    path, fps = CLIPS[clip]
    joints, _ = load_bvh_joints(path, source_fps=fps)
    left = joints[:, 1] - joints[:, 2]
    facing = np.cross(left, [0.0, 1.0, 0.0])
    toes = (joints[:, 10] - joints[:, 7]) + (joints[:, 11] - joints[:, 8])
    toes[:, 1] = 0
    cos = np.sum(facing * toes, -1) / np.linalg.norm(facing, axis=-1) / np.linalg.norm(toes, axis=-1)
    assert np.median(cos) > 0.7
    assert np.median(joints[:, 15, 1] - joints[:, 0, 1]) > 0.3  # head above pelvis: Y is up


def test_waving_hand_side():
    bye, _ = load_bvh_joints(BYE)
    wave_left, _ = load_bvh_joints(WAVE_LEFT)
    assert (bye[:, 21, 1] - bye[:, 20, 1]).max() > 0.2  # right wrist well above the left
    assert (wave_left[:, 20, 1] - wave_left[:, 21, 1]).max() > 0.5


def test_walk_goes_forward():
    joints, _ = load_bvh_joints(WALK)
    facing = np.cross(joints[0, 1] - joints[0, 2], [0.0, 1.0, 0.0])
    travel = joints[-1, 0] - joints[0, 0]
    assert np.dot(facing / np.linalg.norm(facing), travel) > 1.0  # metres in 100 frames


@pytest.mark.parametrize("clip", ["walk", "salsa"])
def test_unit_detection(clip):
    path, fps = CLIPS[clip]
    raw, _ = load_bvh_joints(path, source_fps=fps, unit_scale=1.0)
    assert detect_unit(raw) == ("centimetres", 0.01)
    for name, scale in [("metres", 1.0), ("inches", 0.0254), ("millimetres", 0.001)]:
        assert detect_unit(raw * 0.01 / scale)[0] == name
    joints, _ = load_bvh_joints(path, source_fps=fps)
    assert np.allclose(joints, raw * 0.01)
    height = joints[:, 15, 1].max() - joints[:, [7, 8], 1].min()
    assert 1.2 < height < 2.0


def test_resampling_frame_counts_and_rigidity():
    # Salsa: 120 lines, truly 60 fps -> 2 s -> 60 frames at 30 fps (frames at 0, 1/30, ..., 119/60).
    joints, fps = load_bvh_joints(SALSA, source_fps=60.0)
    assert fps == 60.0 and len(joints) == 60
    header, fps = load_bvh_joints(SALSA)  # trusting the wrong header: twice too fast
    assert fps == 120.0 and len(header) == 30
    martial, _ = load_bvh_joints(MARTIAL)
    assert len(martial) == 60  # 240 frames at 120 fps
    same, fps = load_bvh_joints(WALK)
    assert fps == 30.0 and len(same) == 100
    # Resampled every second frame of a 60 fps source = the source frames themselves.
    full, _ = load_bvh_joints(SALSA, source_fps=60.0, target_fps=60.0)
    assert np.allclose(full[::2], joints, atol=1e-9)
    # Off-grid frames (slerp before FK): bone lengths stay those of the skeleton.
    odd, _ = load_bvh_joints(SALSA, source_fps=60.0, target_fps=23.0)
    thigh = np.linalg.norm(odd[:, 4] - odd[:, 1], axis=-1)
    assert np.ptp(thigh) < 1e-9


def test_up_axis_option_rotates_properly(tmp_path):
    y_up, _ = load_bvh_joints(WALK)
    z_up, _ = load_bvh_joints(WALK, up_axis="z")
    assert np.allclose(z_up[..., 0], y_up[..., 0]) and np.allclose(z_up[..., 1], y_up[..., 2])


# --- features and the write -> read round trip ---------------------------------------------------------


@pytest.mark.parametrize("clip", list(CLIPS))
def test_write_read_round_trip_on_real_clips(tmp_path, clip):
    path, fps = CLIPS[clip]
    features = bvh_to_features(path, source_fps=fps)
    assert features.shape[1] == 272 and np.isfinite(features).all()
    out = write_bvh(tmp_path / "out.bvh", features)
    back, back_fps = load_bvh_joints(out, rig="smpl", unit_scale=1.0)
    assert back_fps == 30.0
    assert np.abs(back - decode_joints(features)).max() < 1e-3
    assert detect_rig(read_bvh(out).names) == "smpl"


def test_round_trip_of_random_rigid_motions(tmp_path, rng):
    for trial in range(3):
        rotations = axis_angle_to_matrix(rng.normal(size=(40, 22, 3)) * 0.7)
        root = np.cumsum(rng.normal(size=(40, 3)) * 0.03, axis=0) + [0.0, 1.0, 0.0]
        joints = forward_kinematics(rotations, root, TEMPLATE_OFFSETS * rng.uniform(0.7, 1.3))
        features = encode_272(joints, rotations)
        out = write_bvh(tmp_path / f"random{trial}.bvh", features, unit_scale=100.0)
        back, _ = load_bvh_joints(out, rig="smpl")  # centimetres, detected
        assert np.abs(back - decode_joints(features)).max() < 1e-3


def test_written_file_layout(tmp_path):
    features = bvh_to_features(WALK)
    out = write_bvh(tmp_path / "walk.bvh", features, fps=30.0)
    data = read_bvh(out)
    assert data.names[0] == "pelvis" and sorted(data.names) == sorted(JOINT_NAMES)
    assert np.allclose(data.offsets[0], 0.0)  # root offset not doubled
    assert data.channels[0][:3] == ("Xposition", "Yposition", "Zposition")
    assert all(c == ("Zrotation", "Yrotation", "Xrotation") for c in data.channels[1:])
    assert len(data.end_sites) == 5 and data.num_frames == len(features) and data.fps == 30.0
    # Root position channels are the world pelvis position.
    assert np.allclose(data.frames[:, :3], decode_joints(features)[:, 0], atol=1e-5)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temp file


def test_write_rejects_bad_features(tmp_path):
    with pytest.raises(ValueError, match="bad.bvh"):
        write_bvh(tmp_path / "bad.bvh", np.zeros((10, 271)))
    features = np.zeros((5, 272))
    features[2, 9] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_bvh(tmp_path / "bad.bvh", features)
    assert not (tmp_path / "bad.bvh").exists()
