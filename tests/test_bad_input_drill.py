"""The bad-input drill (tests/bad_input_drill.py), each case run in-process: one line naming the
key, file or value, exit 2 and no traceback for every user mistake; the right result otherwise."""
import pytest
from bad_input_drill import CASES, RESULT_CASES, run_case


@pytest.fixture(autouse=True)
def no_launcher_env(monkeypatch, tmp_path):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_STEP_NUM_TASKS",
                "HYDRA_FULL_ERROR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DETRUN_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.chdir(tmp_path)  # Hydra's default output folders, if any, land here


@pytest.mark.parametrize("case", CASES + RESULT_CASES, ids=lambda case: case.name)
def test_bad_input(case, tmp_path):
    outcome = run_case(case, tmp_path / "case", in_process=True)
    assert outcome.ok, outcome
