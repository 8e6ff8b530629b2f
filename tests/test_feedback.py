"""The LoggedFeedback contract: validation messages, round trips, immutability, no mutation of inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalrec import LoggedFeedback, ValidationError


def _arrays(n: int = 6) -> dict:
    rng = np.random.default_rng(0)
    return dict(
        action=np.array([0, 1, 2, 1, 0, 2][:n]),
        reward=np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0][:n]),
        position=np.array([0, 1, 0, 1, 0, 1][:n]),
        pscore=np.full(n, 0.25),
        context=rng.normal(size=(n, 2)),
        n_actions=3,
    )


BAD_INPUTS = [
    # (changes, field, fragment of the expectation, fragment of what was found, first bad row)
    ({"reward": np.ones(5)}, "reward", "length n_rounds = 6", "length 5", None),
    ({"action": np.array([0, 1, 3, 1, 0, 2])}, "action", "[0, n_actions) = [0, 3)", "found 3", 2),
    ({"action": np.array([0, 1, -1, 1, 0, 2])}, "action", "non-negative", "found -1", 2),
    ({"action": np.array([0, 1, 1.5, 1, 0, 2])}, "action", "integer-valued", "1.5", 2),
    ({"reward": np.array([1.0, np.nan, 0, 0, 0, 0])}, "reward", "finite", "NaN (a missing value)", 1),
    ({"reward": np.array([1.0, 0, np.inf, 0, 0, 0])}, "reward", "finite", "inf", 2),
    ({"reward": np.array(["1", "0", "yes", "0", "1", "0"], dtype=object)}, "reward", "numeric", "'yes'", 2),
    ({"pscore": np.array([0.2, 0.2, 0.2, 0.0, 0.2, 0.2])}, "pscore", "(0, 1]", "0.0", 3),
    ({"pscore": np.array([0.2, 1.5, 0.2, 0.2, 0.2, 0.2])}, "pscore", "(0, 1]", "1.5", 1),
    ({"pscore": np.array([0.2, 0.2, 0.2, 0.2, np.nan, 0.2])}, "pscore", "pscore=None if it is unknown", "NaN", 4),
    ({"position": np.array([0, 1, 0, -2, 0, 1])}, "position", "non-negative slot", "-2", 3),
    ({"position": np.array([0, 1, 0, 2, 0, 1]), "n_positions": 2}, "position", "[0, n_positions) = [0, 2)", "2", 3),
    ({"context": np.ones((5, 2))}, "context", "6 rows", "5 rows", None),
    # A context error names its column: by index without names, by name with them (see the test below).
    ({"context": np.array([[0, 0], [0, 0], [0, np.nan], [0, 0], [0, 0], [0, 0.0]])}, "context[:, 1]", "finite",
     "NaN (a missing value)", 2),
    ({"context": np.array([[0, 0], [0, np.inf]] * 3), "context_names": ("age", "spend")}, "context.spend", "finite",
     "inf", 1),
    ({"context": np.array([[1, "ios"], [2, "web"]] * 3, dtype=object)}, "context[:, 1]", "encode categories first",
     "'ios'", 0),
    ({"context_names": ("a",)}, "context_names", "2 names", "1", None),
    ({"action_context": np.ones((2, 4))}, "action_context", "one row per action (3 rows)", "2 rows", None),
    ({"n_actions": 0}, "n_actions", "a positive integer", "0", None),
    ({"action": np.array([], dtype=int), "reward": np.array([])}, "action", "non-empty", "0 rows", None),
    ({"user_id": np.arange(4)}, "user_id", "length n_rounds = 6", "shape (4,)", None),
    # Repeated names made to_parquet fail with pyarrow's "Duplicate column names"; a string was split into letters.
    ({"context_names": ("a", "a")}, "context_names", "distinct names", "repeated ['a']", None),
    ({"context_names": "ab"}, "context_names", "a sequence of column names", "the string 'ab'", None),
    ({"metadata": ["not", "a", "mapping"]}, "metadata", "a mapping", "list", None),
]


@pytest.mark.parametrize(("changes", "field", "expected", "found", "row"), BAD_INPUTS)
def test_validation_errors_name_field_expectation_finding_and_row(changes, field, expected, found, row):
    values = _arrays()
    values.update(changes)
    if field == "action" and "0 rows" in found:
        values.update(pscore=None, context=None, position=None)
    with pytest.raises(ValidationError) as info:
        LoggedFeedback(**values)
    message = str(info.value)
    assert info.value.field == field
    assert f"field '{field}'" in message
    assert expected in message
    assert found in message
    if row is None:
        assert "first offending row" not in message
    else:
        assert f"first offending row: {row}" in message
        assert info.value.row == row


def test_numpy_scalars_appear_as_plain_values_in_errors():
    """NumPy 2 reprs (``np.float64(nan)``) would leak into messages built with ``!r``; only the value is shown."""
    found = f"{np.float64('nan')!r} at {(np.int64(0), np.int64(2))!r}, {np.str_('a')!r}, {np.bool_(True)!r}"
    error = ValidationError("prob", "in [0, 1]", found, owner="test")
    assert error.found == "nan at (0, 2), 'a', True"
    assert str(error) == "test: field 'prob' must be in [0, 1]; found nan at (0, 2), 'a', True"
    assert ValidationError("x", "y", "np.float64 is a dtype name, not a value").found.startswith("np.float64 is")


def test_missing_dataframe_columns_are_all_listed():
    frame = pd.DataFrame({"item": [0, 1], "click": [1, 0]})
    with pytest.raises(ValidationError) as info:
        LoggedFeedback.from_dataframe(frame, action="action", reward="click", context=["age"])
    assert "action='action'" in str(info.value)
    assert "context column 'age'" in str(info.value)


def test_inputs_are_not_mutated_and_stored_arrays_are_read_only():
    values = _arrays()
    originals = {k: np.array(v, copy=True) for k, v in values.items() if isinstance(v, np.ndarray)}
    feedback = LoggedFeedback(**values)
    values["action"][0] = 2  # the caller keeps ownership of its arrays
    assert feedback.action[0] == 0
    for name, original in originals.items():
        if name != "action":
            np.testing.assert_array_equal(values[name], original)
    with pytest.raises(ValueError, match="read-only"):
        feedback.reward[0] = 5.0
    with pytest.raises(AttributeError):
        feedback.reward = np.zeros(6)
    with pytest.raises(TypeError):
        feedback.metadata["x"] = 1


def test_defaults_and_inference():
    feedback = LoggedFeedback(action=[3, 1], reward=[0, 1])
    assert feedback.n_actions == 4
    assert feedback.n_positions == 1
    np.testing.assert_array_equal(feedback.position, [0, 0])
    assert feedback.pscore is None
    assert feedback.context.shape == (2, 0)
    assert feedback.reward.dtype == np.float64
    # Boolean rewards and float-coded integer actions are accepted.
    assert LoggedFeedback(action=[0.0, 2.0], reward=[True, False]).reward.tolist() == [1.0, 0.0]


def test_dataframe_round_trip_preserves_everything():
    values = _arrays()
    feedback = LoggedFeedback(**values, user_id=np.arange(6), context_names=("age", "income"))
    frame = feedback.to_dataframe()
    assert list(frame.columns) == ["action", "reward", "position", "pscore", "user_id", "age", "income"]
    frame_copy = frame.copy()
    back = LoggedFeedback.from_dataframe(
        frame, pscore="pscore", position="position", user_id="user_id", context=["age", "income"], n_actions=3
    )
    pd.testing.assert_frame_equal(frame, frame_copy)  # from_dataframe did not touch the caller's frame
    for name in ("action", "reward", "position", "pscore", "context", "user_id"):
        np.testing.assert_array_equal(getattr(back, name), getattr(feedback, name))
    assert back.context_names == ("age", "income")


def test_parquet_round_trip_restores_roles_and_catalogue(tmp_path):
    values = _arrays()
    values["n_actions"] = 10  # more items than the logs show: must survive the round trip
    feedback = LoggedFeedback(**values, action_context=np.arange(20.0).reshape(10, 2), metadata={"source": "t"})
    path = feedback.to_parquet(tmp_path / "logs.parquet")
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file behind
    back = LoggedFeedback.from_parquet(path)
    assert back.n_actions == 10
    assert back.n_positions == feedback.n_positions
    np.testing.assert_array_equal(back.action_context, feedback.action_context)
    for name in ("action", "reward", "position", "pscore", "context"):
        np.testing.assert_array_equal(getattr(back, name), getattr(feedback, name))
    assert back.metadata["source"] == "t"


def test_parquet_without_causalrec_metadata_uses_column_conventions(tmp_path):
    frame = pd.DataFrame(
        {"action": [0, 1, 1], "reward": [1.0, 0.0, 1.0], "position": [0, 0, 1], "pscore": [0.5, 0.5, 0.5],
         "f1": [0.1, 0.2, 0.3]}
    )
    frame.to_parquet(tmp_path / "plain.parquet")
    feedback = LoggedFeedback.from_parquet(tmp_path / "plain.parquet")
    assert feedback.context_names == ("f1",)
    np.testing.assert_array_equal(feedback.pscore, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(feedback.position, [0, 0, 1])


def test_obp_dict_round_trip():
    values = _arrays()
    feedback = LoggedFeedback(**values, action_context=np.eye(3))
    bandit_feedback = feedback.to_obp_dict()
    assert bandit_feedback["n_rounds"] == 6 and bandit_feedback["n_actions"] == 3
    bandit_feedback["reward"][0] = 99.0  # a writable copy: the feedback object is unaffected
    assert feedback.reward[0] == 1.0
    bandit_feedback["reward"][0] = 1.0
    back = LoggedFeedback.from_obp_dict(bandit_feedback)
    for name in ("action", "reward", "position", "pscore", "context", "action_context"):
        np.testing.assert_array_equal(getattr(back, name), getattr(feedback, name))
    bandit_feedback["n_rounds"] = 7
    with pytest.raises(ValidationError, match="field 'n_rounds'"):
        LoggedFeedback.from_obp_dict(bandit_feedback)


def test_take_and_with_pscore_derive_new_objects():
    feedback = LoggedFeedback(**_arrays())
    subset = feedback.take([5, 0, 0])
    np.testing.assert_array_equal(subset.action, [2, 0, 0])
    np.testing.assert_array_equal(subset.context[1], feedback.context[0])
    estimated = feedback.with_pscore(np.full(6, 0.5), source="logistic")
    assert estimated.metadata["pscore_source"] == "logistic"
    assert feedback.pscore[0] == 0.25
    assert estimated.pscore[0] == 0.5


def test_take_checks_masks_and_row_numbers():
    feedback = LoggedFeedback(**_arrays(), user_id=np.arange(10, 16))
    # A mask of another length used to select rows silently (np.flatnonzero ignores the length).
    with pytest.raises(ValidationError, match="boolean mask of length n_rounds = 6; found shape \\(2,\\)"):
        feedback.take(np.array([True, False]))
    with pytest.raises(ValidationError, match=r"row numbers in \[0, n_rounds\) = \[0, 6\); found -1"):
        feedback.take([0, -1])  # used to wrap around to the last row
    with pytest.raises(ValidationError, match="found 6"):
        feedback.take([6])
    with pytest.raises(ValidationError, match="an empty selection"):
        feedback.take([])
    mask = np.array([True, False, True, False, False, True])
    subset = feedback.take(mask)
    for name in ("action", "reward", "position", "pscore", "context", "user_id"):
        np.testing.assert_array_equal(getattr(subset, name), getattr(feedback, name)[[0, 2, 5]])
    assert (subset.n_actions, subset.n_positions, subset.context_names) == (3, 2, feedback.context_names)


def test_plain_parquet_keeps_user_id_and_timestamp_columns(tmp_path):
    stamps = pd.to_datetime(["2020-01-01", "2020-01-02"])
    frame = pd.DataFrame({"action": [0, 1], "reward": [1.0, 0.0], "user_id": [7, 8], "timestamp": stamps,
                          "f1": [0.1, 0.2]})
    frame.to_parquet(tmp_path / "plain.parquet")
    feedback = LoggedFeedback.from_parquet(tmp_path / "plain.parquet")
    np.testing.assert_array_equal(feedback.user_id, [7, 8])  # was silently dropped (neither role nor context)
    np.testing.assert_array_equal(feedback.timestamp, stamps.to_numpy())
    assert feedback.context_names == ("f1",)


def test_context_given_as_one_string_is_refused():
    frame = pd.DataFrame({"action": [0, 1], "reward": [1.0, 0.0], "x": [0.1, 0.2], "1": [0.0, 1.0]})
    # A string was iterated letter by letter: here it silently took the columns 'x' and '1'.
    with pytest.raises(ValidationError, match="field 'context' must be a list of column names"):
        LoggedFeedback.from_dataframe(frame, context="x1")


def test_context_errors_name_the_column_and_the_remedy(tmp_path):
    # The whole matrix can only say "dtype object"; a user with 30 feature columns needs the one to fix.
    frame = pd.DataFrame({"action": [0, 1, 0], "reward": [1.0, 0.0, 1.0], "age": [30.0, 41.0, 25.0],
                          "visits": pd.array([3, None, 5], dtype="Int64"), "device": ["ios", "web", "ios"]})
    with pytest.raises(ValidationError) as info:
        LoggedFeedback.from_dataframe(frame, context=["age", "device"])
    assert info.value.field == "context.device" and info.value.row == 0
    assert "pandas.get_dummies" in str(info.value) and "'ios'" in str(info.value)
    with pytest.raises(ValidationError) as info:
        LoggedFeedback.from_dataframe(frame, context=["age", "visits"])
    assert info.value.field == "context.visits" and info.value.row == 1
    assert "without missing values" in str(info.value) and "a missing value (<NA>)" in str(info.value)
    # The CLI's route: a plain parquet file whose other columns are all context.
    frame.to_parquet(tmp_path / "logs.parquet")
    with pytest.raises(ValidationError, match="field 'context.visits'"):
        LoggedFeedback.from_parquet(tmp_path / "logs.parquet")
    encoded = pd.get_dummies(frame.drop(columns="visits"), columns=["device"], dtype=float)
    encoded.to_parquet(tmp_path / "encoded.parquet")
    feedback = LoggedFeedback.from_parquet(tmp_path / "encoded.parquet")
    assert feedback.context_names == ("age", "device_ios", "device_web")
    np.testing.assert_array_equal(feedback.context[:, 1], [1.0, 0.0, 1.0])


def test_from_parquet_excludes_named_columns_from_the_context(tmp_path):
    feedback = LoggedFeedback(**_arrays(), context_names=("age", "session"))
    feedback.to_parquet(tmp_path / "roles.parquet")  # roles from the file's metadata
    feedback.to_dataframe().to_parquet(tmp_path / "plain.parquet")  # roles from the column names
    for name in ("roles.parquet", "plain.parquet"):
        read = LoggedFeedback.from_parquet(tmp_path / name, exclude=["session"])
        assert read.context_names == ("age",)
        np.testing.assert_array_equal(read.context[:, 0], feedback.context[:, 0])
    with pytest.raises(ValidationError, match=r"field 'exclude' must be columns of the file .*found \['sesion'\]"):
        LoggedFeedback.from_parquet(tmp_path / "plain.parquet", exclude=["sesion"])
    with pytest.raises(ValidationError, match="field 'exclude' must be a list of column names"):
        LoggedFeedback.from_parquet(tmp_path / "plain.parquet", exclude="session")


def test_metadata_none_means_empty():
    assert dict(LoggedFeedback(**_arrays(), metadata=None).metadata) == {}


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from causalrec._results import write_atomic

    umask = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "report.json", "{}")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
