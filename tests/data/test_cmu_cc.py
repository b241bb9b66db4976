"""cmu-cc: CMU takes on the Character Creator rig (rest orientations not the identity, floor near -0.95 m)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from motionmillion.data import captions as caps
from motionmillion.data.caption_pools import humanml3d_cmu_segments
from motionmillion.data.importers import import_bvh, recaption
from motionmillion.data.labels import cmu_cc_label
from motionmillion.data.recipes import take_floor
from motionmillion.data.records import load_records
from motionmillion.data.layout import MotionDataset
from motionmillion.motion import decode_joints, encode_272, rotations_from_positions
from motionmillion.motion.bvh import read_bvh
from motionmillion.motion.rig_mapping import load_bvh_joints
from motionmillion.motion.representation import canonicalize
from motionmillion.motion.rigs import detect_rig
from motionmillion.motion.skeleton import JOINT_NAMES

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/bvh/cmu-cc"
TAKE = FIXTURE / "bvh/002_05.bvh"
HUMAN = ["a man punches the air in front of him with his right arm.", "a person does arm stretch exercises with right arm."]


@pytest.fixture
def text_folder(tmp_path) -> Path:
    """HumanML3D's index row and captions for take 02_05 (frames 2-202 at 20 fps), and one "M"-only take."""
    folder = tmp_path / "text"
    folder.mkdir()
    with (folder / "humanml3d_index.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source_path", "start_frame", "end_frame", "new_name"])
        writer.writerow(["./pose_data/CMU/02/02_05_poses.npy", 2, 202, "006722.npy"])
        writer.writerow(["./pose_data/CMU/06/06_08_poses.npy", 0, -1, "008547.npy"])
    entries = [{"humanml_id": "006722", "frame_ann": [[0, 1, text, []] for text in HUMAN]},
               {"humanml_id": "M008547", "frame_ann": [[0, 1, "a person shuffles to the left while dribbling.", []]]}]  # fmt: skip
    (folder / "humanml3d_val_texts_babel_compat.json").write_text(json.dumps(entries))
    return folder


def test_character_creator_rig_is_detected_and_mapped_with_the_left_side_on_the_left():
    data = read_bvh(TAKE)
    assert len(data.names) == 100 and detect_rig(data.names) == "cc-base"  # root + 99 joints
    joints, fps = load_bvh_joints(TAKE)
    assert fps == 60.0 and joints.shape == (65, 22, 3)  # 130 frames at 60 fps, resampled to 30
    # centimetres detected; the root channels keep the body around y = 0, so the feet are far below it
    assert -1.05 < take_floor(joints) < -0.85
    canonical, _ = canonicalize(joints, rotations_from_positions(joints))
    left, right = JOINT_NAMES.index("left_hip"), JOINT_NAMES.index("right_hip")
    assert canonical[0, left, 0] > canonical[0, right, 0]  # facing +Z, the body's left is +X
    height = canonical[:, JOINT_NAMES.index("head"), 1].mean()
    assert 1.4 < height < 1.8, height


def test_take_floor_keeps_a_window_off_the_ground_at_its_height():
    joints, _ = load_bvh_joints(TAKE)
    rotations = rotations_from_positions(joints)
    lifted = joints + [0.0, 0.5, 0.0]  # as if standing on a box for the whole window
    floor = take_floor(joints)
    per_window = decode_joints(encode_272(lifted, rotations))
    per_take = decode_joints(encode_272(lifted, rotations, floor=floor))
    assert abs(per_window[..., 1].min()) < 1e-9  # the window's own lowest joint would be put on the floor
    assert per_take[..., 1].min() == pytest.approx(0.5 + joints[..., 1].min() - floor, abs=1e-6)


def test_import_cmu_cc_writes_floored_clips_with_description_and_human_captions(tmp_path, text_folder):
    src = tmp_path / "cmu-cc"
    shutil.copytree(FIXTURE, src)
    (src / "bvh/notes.bvh").write_text("not a take")  # not a take name: skipped, not failed
    report = import_bvh(src, tmp_path / "ds", "cmu-cc", workers=1, progress=False, text_pool=text_folder)
    assert len(report.imported) == 1 and not report.failed and report.clips_written == 2
    assert [why for _, why in report.skipped] == ["not a CMU take name (SSS_TT.bvh)"]
    dataset = MotionDataset(tmp_path / "ds")
    (record,) = load_records(tmp_path / "ds")
    assert record["stratum"] == "cmu-cc/punch" and record["label"]["description"] == "punch/strike"
    captions = dataset.texts("cmu-cc/002_05_00")
    assert any("punch" in c.lower() for c in captions[:3])
    assert {c.rstrip(".").lower() for c in captions} >= {h.rstrip(".").lower() for h in HUMAN}
    mirrored = dataset.texts("cmu-cc/M002_05_00")
    assert any("left arm" in c for c in mirrored)  # the mirror punches with the left
    # the stored clip is the take's FK joints, floored per take and canonicalised
    joints, _ = load_bvh_joints(TAKE)
    expected, _ = canonicalize(joints, rotations_from_positions(joints), take_floor(joints))
    stored = decode_joints(dataset.motion("cmu-cc/002_05_00"))
    assert np.abs(stored - expected).max() < 1e-4
    assert abs(stored[..., 1].min()) < 0.03
    # recaption writes the same captions from the record alone
    recaption(tmp_path / "ds", progress=False)
    assert dataset.texts("cmu-cc/002_05_00") == captions


def test_a_take_missing_from_the_description_table_fails_with_its_name(tmp_path):
    src = tmp_path / "cmu-cc"
    shutil.copytree(FIXTURE, src)
    shutil.copy(TAKE, src / "bvh/009_99.bvh")
    report = import_bvh(src, tmp_path / "ds", "cmu-cc", workers=1, progress=False)
    assert [Path(p).name for p, _ in report.failed] == ["009_99.bvh"]
    assert "take 009_99 has no description in CMU data.csv" in report.failed[0][1]


def test_humanml3d_segments_side_correct_mirrored_ids(text_folder):
    segments = humanml3d_cmu_segments(text_folder)
    assert segments["002_05"] == [(0.1, 10.1, HUMAN, False)]
    (start, end, texts, mirrored), = segments["006_08"]
    assert start == 0.0 and end > 1000 and mirrored and texts == ["a person shuffles to the left while dribbling."]


@pytest.mark.parametrize(
    ("description", "movement", "words"),
    [
        ("playground - forward jumps, turn around", "jump", "jump"),
        ("basketball - forward dribble, 90-degree left turns", "dribble", "dribbl"),
        ("dance - coupe dessous, jete en tourant", "ballet", "ballet"),
        ("bend over, scoop up, rise, lift arm", "scoop", "scoop"),
        ("walk on uneven terrain", "walk-uneven", "uneven"),
        ("slow walk", "walk", "slow"),
    ],
)
def test_cmu_cc_captions_say_the_movement(description, movement, words):
    assert cmu_cc_label(description)[1] == movement
    captions = caps.cmu_cc_captions(description, "seed")
    assert 3 <= len(captions) <= 6 and sum(words in c.lower() for c in captions) >= 2


def test_dribbling_hand_is_the_wrist_that_bounces():
    from motionmillion.data.recipes import dribbling_hand

    joints = np.repeat(load_bvh_joints(TAKE)[0][:1], 90, axis=0)  # 3 s standing still (only dribble takes are measured)
    assert dribbling_hand(joints) is None
    bouncing = joints.copy()
    t = np.arange(len(joints)) / 30.0
    wrist = JOINT_NAMES.index("left_wrist")
    bouncing[:, wrist, 1] = joints[:, wrist, 1].mean() + 0.2 * np.sin(2 * np.pi * 2.0 * t)  # 2 bounces a second
    assert dribbling_hand(bouncing) == "left"
    both = bouncing.copy()
    both[:, JOINT_NAMES.index("right_wrist"), 1] = bouncing[:, wrist, 1]
    assert dribbling_hand(both) is None
    assert "with the left hand" in " ".join(caps.cmu_cc_captions("basketball - forward dribble", "s", hand="left"))


def test_a_leading_rest_pose_elsewhere_in_the_room_is_dropped():
    from motionmillion.data.recipes import leading_pose_jumps

    joints, _ = load_bvh_joints(TAKE)
    assert leading_pose_jumps(joints) == 0
    t_pose = joints[:1] + [2.5, 0.0, 1.0]  # as 10 cmu-cc takes start: the rig's pose, metres away
    assert leading_pose_jumps(np.concatenate([t_pose, joints])) == 1
