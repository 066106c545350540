import json

from detrun.utils.events import MetricsWriter, WindowedMeans, flatten_results


def _iterations(run_dir):
    return [json.loads(line)["iteration"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_trims_lines_after_the_checkpoint_and_a_torn_line(tmp_path):
    writer = MetricsWriter(tmp_path, tensorboard=False)
    for it in range(1, 6):
        writer.write(it, {"loss": float(it)})
    writer.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 6, "lo')  # killed mid-line
    writer = MetricsWriter(tmp_path, start_iter=3, tensorboard=False)
    writer.write(4, {"loss": 40.0})
    writer.close()
    assert _iterations(tmp_path) == [1, 2, 3, 4]
    MetricsWriter(tmp_path, start_iter=0, tensorboard=False).close()  # a fresh start
    assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_tensorboard_events_are_written(tmp_path):
    writer = MetricsWriter(tmp_path)
    writer.write(1, {"loss": 1.0})
    writer.close()
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_windowed_means_and_flattened_results():
    window = WindowedMeans(2)
    for value in (1.0, 2.0, 4.0):
        window.add({"a": value})
    assert window.means() == {"a": 3.0}
    results = {"bbox": {"AP": 40.0, "AP-cat": 1, "per_class": "table"}, "n": True}
    assert flatten_results(results) == {"bbox/AP": 40.0, "bbox/AP-cat": 1.0}


def test_non_finite_values_are_written_as_null(tmp_path):
    """JSON has no NaN: an AP without ground truth to score is written as null."""
    writer = MetricsWriter(tmp_path, tensorboard=False)
    writer.write(1, {"bbox/APl": float("nan"), "loss": float("inf"), "bbox/AP": 12.5})
    writer.close()

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    line = (tmp_path / "metrics.jsonl").read_text()
    assert json.loads(line, parse_constant=refuse) == {"iteration": 1, "bbox/APl": None, "loss": None, "bbox/AP": 12.5}


def test_windowed_means_state_round_trip():
    window = WindowedMeans(2)
    for value in (1.0, 2.0, 4.0):
        window.add({"a": value})
    restored = WindowedMeans(2)
    restored.load_state_dict(window.state_dict())
    restored.add({"a": 8.0})
    assert restored.means() == {"a": 6.0}
