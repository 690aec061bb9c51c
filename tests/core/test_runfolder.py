"""edgedeploy.core.runfolder: the run folder's one owner (names, JSON, prepare/discard), no TensorFlow."""
from __future__ import annotations

import json
import os

import pytest

from edgedeploy.core import runfolder as rf
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.runfolder import RunFolder


def test_paths_and_json(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert (run.model.name, run.manifest.name, run.config_path.name, run.splits_path.name) == (
        "model.keras", "manifest.json", "config.json", "splits.json")
    assert run.state_path == tmp_path / "run" / "checkpoints" / "state.json"
    assert not run.is_run() and run.config(missing_ok=True) == {}
    with pytest.raises(EdgeDeployError, match=r"run folder not found: .*run$"):
        run.config()
    run.path.mkdir()
    with pytest.raises(EdgeDeployError, match=r"config.json not found: is .* a run folder"):
        run.config()
    run.config_path.write_text("[1, 2]")
    with pytest.raises(EdgeDeployError, match="must hold a JSON object, got list"):
        run.config()
    run.splits_path.write_text("{not json")
    with pytest.raises(EdgeDeployError, match="splits.json is not valid JSON"):
        run.splits()


def test_prepare_refuses_to_overwrite_and_resume_needs_a_checkpoint(tmp_path):
    run = RunFolder(tmp_path / "new")
    assert run.prepare() == "folder" and run.checkpoints.is_dir()
    (run.path / "model.keras").write_bytes(b"x")
    with pytest.raises(EdgeDeployError, match="already exists and is not empty; pass --force"):
        run.prepare()
    with pytest.raises(EdgeDeployError, match="nothing to resume"):
        run.prepare(resume=True)
    run.state_path.write_text("{}")
    assert run.has_checkpoint() and run.is_run() and run.prepare(resume=True) is None
    assert run.prepare(force=True) == "files" and not (run.path / "model.keras").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(EdgeDeployError, match="output path is a file"):
        RunFolder(tmp_path / "file").prepare()


def test_discard_failed_run_removes_only_run_files(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.checkpoints.mkdir(parents=True)
    for name in rf.RUN_FILES:
        (run.path / name).write_text("x")
    (run.path / "mine.txt").write_text("the user's")
    run.discard_failed(None)  # --resume: the files belong to the earlier run
    assert run.model.exists()
    run.discard_failed("files")  # the folder existed before the run: kept, emptied of run files
    assert sorted(os.listdir(run.path)) == ["mine.txt"]
    (run.path / "mine.txt").unlink()
    run.discard_failed("folder")  # this run made it: gone when empty
    assert not run.path.exists()
    RunFolder(tmp_path / "never-made").discard_failed()  # nothing to do, no error


def test_update_config_merges_and_never_raises(tmp_path):
    run = RunFolder(tmp_path)
    run.update_config(status="interrupted")  # no config.json yet: a no-op
    assert not run.config_path.exists()
    run.config_path.write_text(json.dumps({"status": "training", "config": {"epochs": 3}}))
    run.update_config(status="interrupted", epochs_done=2)
    assert run.config() == {"status": "interrupted", "config": {"epochs": 3}, "epochs_done": 2}
