"""Motion.save: a stem from the text, and never a silently mixed set of files."""

import pytest

from motionmillion.motion import Motion

FIXTURE = "tests/fixtures/bvh/bandai/Bandai-Namco-Research-Motiondataset-1/data/dataset-1_walk_normal_001.bvh"


def test_save_names_files_after_the_text_and_refuses_to_overwrite(tmp_path):
    walk = Motion.load(FIXTURE, text="A person walks!")
    files = walk.save(tmp_path, video=False)
    assert files["bvh"].name == "a_person_walks.bvh" and files["json"].is_file()
    with pytest.raises(FileExistsError, match="a_person_walks"):
        walk.save(tmp_path, video=False)
    (tmp_path / "a_person_walks.mp4").write_bytes(b"an older video of another motion")
    walk.save(tmp_path, video=False, overwrite=True)
    assert not (tmp_path / "a_person_walks.mp4").exists()  # the stale video of the stem is gone
    assert Motion.load(FIXTURE).save(tmp_path, video=False, bvh=False)["features"].name == "motion.npy"
