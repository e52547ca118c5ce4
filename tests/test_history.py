"""Training histories as checked dicts and JSON files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenet_mnist.training.history import (
    as_history_dict,
    history_path_for,
    load_history,
    save_history,
)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda epochs: st.dictionaries(
            st.text(min_size=1, max_size=12),
            st.lists(
                st.floats(allow_nan=False, allow_infinity=False),
                min_size=epochs,
                max_size=epochs,
            ),
            min_size=1,
            max_size=4,
        )
    )
)
def test_round_trip_is_exact(series: dict[str, list[float]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = save_history(series, Path(tmp) / "h.json")
        assert load_history(path) == series


def test_keras_history_numpy_values_and_non_finite(tmp_path: Path) -> None:
    history = SimpleNamespace(
        history={"loss": [np.float32(0.5), math.nan], "accuracy": [0.9, math.inf]}
    )
    path = save_history(history, tmp_path / "runs" / "h.json")
    assert json.loads(path.read_text()) == {"loss": [0.5, None], "accuracy": [0.9, None]}
    loaded = load_history(path)
    assert loaded["loss"][0] == 0.5
    assert math.isnan(loaded["loss"][1])
    assert math.isnan(loaded["accuracy"][1])
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["h.json"]


def test_history_path_sits_next_to_the_model() -> None:
    assert history_path_for("/runs/lenet.keras") == Path("/runs/lenet.history.json")
    assert history_path_for("model") == Path("model.history.json")


@pytest.mark.parametrize(
    ("history", "error", "match"),
    [
        (42, TypeError, "keras History or a mapping.*got int"),
        ({1: [0.1]}, TypeError, "keys must be str, got int"),
        ({"loss": 0.1}, TypeError, r"history\['loss'\] must be a sequence of numbers, got float"),
        ({"loss": [True]}, TypeError, "must hold numbers, got bool"),
        ({"loss": [[0.1]]}, TypeError, "must hold numbers, got list"),
        ({"loss": [0.1], "val_loss": [0.1, 0.2]}, ValueError, "one value per epoch"),
    ],
)
def test_bad_histories_are_refused(history: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        as_history_dict(history)


def test_load_refuses_files_that_are_not_histories(tmp_path: Path) -> None:
    bad_json = tmp_path / "a.json"
    bad_json.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON history"):
        load_history(bad_json)
    wrong_shape = tmp_path / "b.json"
    wrong_shape.write_text('["loss", 1]')
    with pytest.raises(ValueError, match=r"not a training history.*got list"):
        load_history(wrong_shape)
    with pytest.raises(FileNotFoundError):
        load_history(tmp_path / "missing.json")
