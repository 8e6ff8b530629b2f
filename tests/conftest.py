"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def coat():
    """The Coat data set from CAUSALREC_DATA_DIR; the test is skipped (with the loader's reason) without it."""
    from causalrec.data.datasets import DatasetNotFoundError, load_coat

    try:
        return load_coat()
    except DatasetNotFoundError as missing:
        pytest.skip(str(missing))
