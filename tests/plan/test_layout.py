from __future__ import annotations

import pytest

from airflow_mapreduce.plan.layout import RunLayout, safe_key_part


@pytest.mark.parametrize("name", ["..", ".", "../../etc", "a/b", "/abs", "x\\y", "s3://b/k"])
def test_key_parts_cannot_escape_their_prefix(name: str) -> None:
    part = safe_key_part(name)
    assert "/" not in part and "\\" not in part and part.strip(".") != ""
    assert not part.startswith("..")


def test_cleaned_names_stay_distinct() -> None:
    assert safe_key_part("a:b") != safe_key_part("a_b")
    assert safe_key_part("manual__2024") == "manual__2024"


def test_run_layout_keys() -> None:
    layout = RunLayout("s3://bucket/work/", "wc", "scheduled__2024-01-01T00:00:00+00:00")
    root = layout.run_root
    assert root.startswith("s3://bucket/work/wc/scheduled__2024-01-01T00_00_00_00_00-")
    assert layout.spec_uri("map", 3) == f"{root}/map/00003/spec.json"
    assert layout.manifest_uri("reduce", 12) == f"{root}/reduce/00012/manifest.json"
