"""tools/benchmark.py maphead: a one-round run times every head variant on its config's BEV
shape and the report lists them with FPS."""
from __future__ import annotations

import argparse
import json

import pytest

from perception.benchmarks import json_ready, maphead


@pytest.mark.slow
def test_maphead_benchmark_quick_run_reports_every_variant() -> None:
    parser = argparse.ArgumentParser()
    maphead.add_arguments(parser)
    args = parser.parse_args(["--quick", "--repeats", "1", "--threads", "1"])
    figures = maphead.run(args)
    rows = figures["results"]["tiny"]
    assert set(rows) == set(maphead.VARIANTS)
    for row in rows.values():
        assert row["bev"] == [1, 128, 80, 40]  # the tiny config's 32 m x 64 m window at 0.8 m
        assert row["infer"]["median_ms"] > 0 and row["infer"]["fps"] == pytest.approx(1000 / row["infer"]["median_ms"])
        assert "train" not in row  # only with --train
    json.dumps(json_ready(figures), allow_nan=False)
    report = maphead.markdown(figures)
    assert "MapQR (concat gather)" in report and "infer FPS" in report
