"""Loaders of the reference data sets, the Open Bandit download cache and the BTS action distributions.

Tests marked ``data`` read ``$CAUSALREC_DATA_DIR`` (the Makefile points it at ``../shared/data``) and skip with
the reason when the folder is absent. The cache tests run everywhere: they build a small fake obp source
distribution. The one test that really downloads obp 0.5.7 from the package index runs only with
``CAUSALREC_TEST_DOWNLOAD=1`` (network, about 10 s): ``CAUSALREC_TEST_DOWNLOAD=1 pytest -k real_download``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import integrate, stats

from causalrec.data.datasets import (
    OBP_SDIST_SHA256,
    ArchiveIntegrityError,
    DatasetNotFoundError,
    bts_action_distribution_from_logs,
    bts_action_distribution_from_prior,
    day_index_of,
    fetch_open_bandit_sample,
    hillstrom_arm_means,
    hillstrom_covariates,
    hillstrom_treatments,
    load_coat,
    load_hillstrom,
    load_kuairec_random83,
    load_open_bandit,
)
from causalrec.data.datasets import obd as obd_module
from causalrec.data.feedback import LoggedFeedback
from causalrec.exceptions import ValidationError

# Published facts of shared/data/README.md.
OBD_ON_POLICY_CTR = {
    ("bts", "all"): 0.0042, ("random", "all"): 0.0038,
    ("bts", "men"): 0.0069, ("random", "men"): 0.0046,
    ("bts", "women"): 0.0046, ("random", "women"): 0.0046,
}  # fmt: skip
OBD_N_ACTIONS = {"all": 80, "men": 34, "women": 46}
HILLSTROM_ARM_MEANS = {
    "Mens E-Mail": (0.18276, 0.01253, 1.42262),
    "Womens E-Mail": (0.15140, 0.00884, 1.07720),
    "No E-Mail": (0.10617, 0.00573, 0.65279),
}


# ---------------------------------------------------------------------------------------------- fixtures
# Read once at import: some tests point the variable elsewhere while they run.
SHARED_DATA_DIR = os.environ.get("CAUSALREC_DATA_DIR", "").strip()


def _shared_folder(name: str) -> Path:
    value = SHARED_DATA_DIR
    if not value:
        pytest.skip("CAUSALREC_DATA_DIR is not set: the reference data sets are not available")
    folder = Path(value) / name
    if not folder.is_dir():
        pytest.skip(f"reference data {name}/ not found under CAUSALREC_DATA_DIR={value}")
    return folder


@pytest.fixture(scope="module")
def obd_cache() -> dict:
    """Each OBD file is read once per module (reading all six takes about two seconds)."""
    return {}


def _obd(cache: dict, behavior: str, campaign: str, **options):
    key = (behavior, campaign, tuple(sorted(options.items())))
    if key not in cache:
        shared = _shared_folder("obd-sample").parent
        cache[key] = load_open_bandit(behavior, campaign, data_dir=shared, download=False, **options)
    return cache[key]


@pytest.fixture
def no_env_data(monkeypatch, tmp_path) -> Path:
    """An empty data folder named by CAUSALREC_DATA_DIR and an empty cache named by CAUSALREC_CACHE_DIR."""
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("CAUSALREC_DATA_DIR", str(empty))
    monkeypatch.setenv("CAUSALREC_CACHE_DIR", str(tmp_path / "cache-from-env"))
    return empty


# ---------------------------------------------------------------------------------------------- OBD: shared data
@pytest.mark.data
@pytest.mark.parametrize(("behavior", "campaign"), sorted(OBD_ON_POLICY_CTR))
def test_obd_shapes_positions_and_on_policy_ctr(obd_cache, behavior, campaign):
    dataset = _obd(obd_cache, behavior, campaign)
    feedback = dataset.feedback
    assert dataset.source == "data_dir"
    assert (dataset.behavior, dataset.campaign) == (behavior, campaign)
    assert feedback.n_rounds == 10_000
    assert feedback.n_actions == OBD_N_ACTIONS[campaign]
    assert feedback.n_positions == 3
    assert set(np.unique(feedback.position)) == {0, 1, 2}
    assert set(np.unique(feedback.reward)) <= {0.0, 1.0}
    assert round(dataset.on_policy_value, 4) == OBD_ON_POLICY_CTR[(behavior, campaign)]
    assert dataset.on_policy_value == pytest.approx(feedback.reward.mean())
    assert feedback.action_context.shape == (OBD_N_ACTIONS[campaign], 4)
    assert dataset.bts_prior.alpha.shape == (OBD_N_ACTIONS[campaign],)
    assert list(dataset.item_context["item_id"]) == list(range(OBD_N_ACTIONS[campaign]))
    assert feedback.metadata["behavior"] == behavior and feedback.metadata["source"] == "data_dir"


@pytest.mark.data
@pytest.mark.parametrize("campaign", ["all", "men", "women"])
def test_obd_random_pscore_is_uniform_over_items(obd_cache, campaign):
    feedback = _obd(obd_cache, "random", campaign).feedback
    np.testing.assert_allclose(feedback.pscore, 1.0 / OBD_N_ACTIONS[campaign], rtol=1e-12)


@pytest.mark.data
def test_obd_positions_timestamps_and_rows_follow_the_raw_file(obd_cache):
    dataset = _obd(obd_cache, "bts", "all")
    raw = pd.read_csv(dataset.path / "bts" / "all" / "all.csv", index_col=0)
    feedback = dataset.feedback
    # The raw file is already in time order, so rows line up one to one.
    np.testing.assert_array_equal(feedback.position, raw["position"].to_numpy() - 1)
    np.testing.assert_array_equal(feedback.action, raw["item_id"].to_numpy())
    np.testing.assert_array_equal(feedback.pscore, raw["propensity_score"].to_numpy())
    assert feedback.timestamp.dtype == np.dtype("datetime64[ns]")
    assert (np.diff(feedback.timestamp) >= np.timedelta64(0)).all()
    assert (
        str(feedback.timestamp[0]) == "2019-11-24T00:00:17.004101000"
    )  # raw "2019-11-24 00:00:17.004101+00:00"
    days = np.unique(feedback.timestamp.astype("datetime64[D]")).astype(str)
    assert list(days) == [f"2019-11-{day}" for day in range(24, 31)]


@pytest.mark.data
def test_obd_context_is_one_hot_without_first_levels(obd_cache):
    dataset = _obd(obd_cache, "random", "men")
    raw = pd.read_csv(dataset.path / "random" / "men" / "men.csv", index_col=0)
    feedback = dataset.feedback
    assert set(np.unique(feedback.context)) == {0.0, 1.0}
    names = np.array(feedback.context_names)
    assert len(names) == sum(raw[f"user_feature_{j}"].nunique() - 1 for j in range(4))
    for j in range(4):
        block = feedback.context[:, np.char.startswith(names, f"user_feature_{j}_")]
        levels = np.sort(raw[f"user_feature_{j}"].unique())
        assert block.shape[1] == len(levels) - 1
        assert (block.sum(axis=1) <= 1).all()
        # All-zero rows are exactly the rows of the dropped (first) level.
        np.testing.assert_array_equal(
            block.sum(axis=1) == 0, raw[f"user_feature_{j}"].to_numpy() == levels[0]
        )
    assert not any("affinity" in name for name in names)


@pytest.mark.data
def test_obd_affinity_columns_and_item_features(obd_cache):
    plain = _obd(obd_cache, "random", "men")
    with_affinity = _obd(obd_cache, "random", "men", include_affinity=True)
    extra = with_affinity.feedback.context.shape[1] - plain.feedback.context.shape[1]
    assert extra == 34
    assert with_affinity.feedback.context_names[-1] == "user-item_affinity_33"
    np.testing.assert_array_equal(
        with_affinity.feedback.context[:, : plain.feedback.context.shape[1]], plain.feedback.context
    )

    action_context = plain.feedback.action_context
    items = plain.item_context
    np.testing.assert_allclose(action_context[:, 3], items["item_feature_0"].to_numpy())
    for column, feature in enumerate(["item_feature_1", "item_feature_2", "item_feature_3"]):
        codes = action_context[:, column]
        assert set(codes) == set(range(items[feature].nunique()))
        # Codes follow the sorted levels (LabelEncoder's order).
        level_of_code = dict(zip(codes, items[feature], strict=True))
        assert [level_of_code[code] for code in sorted(level_of_code)] == sorted(items[feature].unique())


@pytest.mark.data
def test_obd_caller_visible_arrays_are_read_only(obd_cache):
    dataset = _obd(obd_cache, "bts", "women")
    feedback = dataset.feedback
    arrays = [feedback.action, feedback.reward, feedback.position, feedback.pscore, feedback.context]
    arrays += [feedback.action_context, feedback.timestamp, dataset.bts_prior.alpha, dataset.bts_prior.beta]
    for array in arrays:
        with pytest.raises(ValueError, match="read-only"):
            array[0] = array[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset.on_policy_value = 1.0


@pytest.mark.data
def test_explicit_data_dir_wins_over_the_environment(monkeypatch, tmp_path):
    shared = _shared_folder("coat").parent
    monkeypatch.setenv("CAUSALREC_DATA_DIR", str(tmp_path))
    assert load_coat(data_dir=shared).train.shape == (290, 300)
    monkeypatch.setenv("CAUSALREC_DATA_DIR", str(shared))
    with pytest.raises(DatasetNotFoundError):
        load_coat(data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------- OBD: cache
FAKE_N_ACTIONS = {"all": 5, "men": 3, "women": 4}


def _write_fake_obd(folder: Path, n_rows: int = 30, seed: int = 0) -> None:
    """A tiny data set in the OBD layout and format (for the cache mechanics, not for statistics)."""
    rng = np.random.default_rng(seed)
    priors = {}
    for campaign, n_actions in FAKE_N_ACTIONS.items():
        priors[campaign] = {"alpha": [float(a) for a in range(1, n_actions + 1)], "beta": [10.0] * n_actions}
        for behavior in ("random", "bts"):
            target = folder / behavior / campaign
            target.mkdir(parents=True, exist_ok=True)
            seconds = np.sort(rng.integers(0, 3 * 86_400, n_rows))
            stamps = pd.Timestamp("2019-11-24", tz="UTC") + pd.to_timedelta(seconds, unit="s")
            logs = pd.DataFrame(
                {
                    "timestamp": [str(stamp) for stamp in stamps],
                    "item_id": rng.integers(0, n_actions, n_rows),
                    "position": np.resize([1, 2, 3], n_rows),
                    "click": rng.integers(0, 2, n_rows),
                    "propensity_score": rng.uniform(0.05, 0.5, n_rows).round(6),
                    "user_feature_0": rng.choice(["a1", "b2", "c3"], n_rows),
                    "user_feature_1": rng.choice(["x", "y"], n_rows),
                }
            )
            for item in range(n_actions):
                logs[f"user-item_affinity_{item}"] = rng.integers(0, 3, n_rows).astype(float)
            logs.to_csv(target / f"{campaign}.csv")
            items = pd.DataFrame(
                {
                    "item_id": range(n_actions),
                    "item_feature_0": rng.normal(size=n_actions),
                    "item_feature_1": rng.choice(["p", "q"], n_actions),
                    "item_feature_2": rng.choice(["r", "s"], n_actions),
                    "item_feature_3": rng.choice(["t", "u"], n_actions),
                }
            )
            items.to_csv(target / "item_context.csv")
    (folder / "prior_bts.yaml").write_text(yaml.safe_dump(priors), encoding="utf-8")


def _build_sdist(archive: Path, data_folder: Path, *, drop: str | None = None, compress: bool = True) -> str:
    """An archive laid out like obp-0.5.7.tar.gz around ``data_folder``; returns its sha256."""
    top = "obp-0.5.7"
    with tarfile.open(archive, "w:gz" if compress else "w") as tar:
        for path in sorted(data_folder.rglob("*.csv")):
            relative = path.relative_to(data_folder).as_posix()
            if relative != drop:
                tar.add(path, arcname=f"{top}/obp/dataset/obd/{relative}")
        tar.add(data_folder / "prior_bts.yaml", arcname=f"{top}/obp/policy/conf/prior_bts.yaml")
        for name, payload in [
            ("LICENSE", b"Apache License 2.0 (test copy)\n"),
            ("obp/__init__.py", b"raise SystemExit('package code must never be extracted or run')\n"),
            ("obp/dataset/obd/../../../../escaped.csv", b"outside\n"),
        ]:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture
def fake_sdist(tmp_path) -> tuple[Path, str, Path]:
    data = tmp_path / "fake-obd"
    _write_fake_obd(data)
    archive = tmp_path / "obp-0.5.7.tar.gz"
    return archive, _build_sdist(archive, data), data


class FakeDownloader:
    """Stands in for pip: copies a prepared archive into the destination folder and counts its calls."""

    def __init__(self, archive: Path):
        self.archive = archive
        self.calls = 0

    def __call__(self, destination: Path) -> Path:
        self.calls += 1
        destination.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(self.archive, destination / self.archive.name))


def _refuse_download(destination: Path) -> Path:
    raise AssertionError("the downloader must not be called when the cache is complete")


def test_fetch_extracts_only_the_data_files_and_loading_uses_the_cache(
    tmp_path, fake_sdist, no_env_data, monkeypatch
):
    archive, sha256, data = fake_sdist
    cache = tmp_path / "cache"
    downloader = FakeDownloader(archive)
    folder = fetch_open_bandit_sample(cache, downloader=downloader, expected_sha256=sha256)
    assert folder == cache / "obd-sample" and downloader.calls == 1
    files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    expected = sorted(obd_module.sample_files() + ["LICENSE-obp-package", ".complete.json"])
    assert files == expected
    assert not list(tmp_path.rglob("escaped.csv")) and not list(tmp_path.rglob("__init__.py"))
    assert sorted(path.name for path in cache.iterdir()) == ["obd-sample"]  # no temporary leftovers
    assert (folder / "bts" / "men" / "men.csv").read_bytes() == (
        data / "bts" / "men" / "men.csv"
    ).read_bytes()

    monkeypatch.setattr(obd_module, "download_obp_sdist", _refuse_download)
    dataset = load_open_bandit("bts", "men", cache_dir=cache)  # CAUSALREC_DATA_DIR points at an empty folder
    assert dataset.source == "cache" and dataset.path == folder
    assert dataset.feedback.n_rounds == 30 and dataset.feedback.n_actions == 3
    raw = pd.read_csv(data / "bts" / "men" / "men.csv", index_col=0)
    np.testing.assert_array_equal(dataset.feedback.pscore, raw["propensity_score"].to_numpy())
    np.testing.assert_allclose(dataset.bts_prior.alpha, [1.0, 2.0, 3.0])
    # A complete cache is reused offline by the fetch itself too.
    assert fetch_open_bandit_sample(cache, downloader=_refuse_download) == folder


def test_cache_root_comes_from_the_environment(tmp_path, fake_sdist, no_env_data):
    archive, sha256, _ = fake_sdist
    folder = fetch_open_bandit_sample(downloader=FakeDownloader(archive), expected_sha256=sha256)
    assert folder == tmp_path / "cache-from-env" / "obd-sample"
    assert load_open_bandit("random", "all", download=False).source == "cache"


def test_tampered_archive_is_rejected_and_leaves_no_cache(tmp_path, fake_sdist):
    archive, sha256, _ = fake_sdist
    tampered = bytearray(archive.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    archive.write_bytes(bytes(tampered))
    cache = tmp_path / "cache"
    with pytest.raises(ArchiveIntegrityError, match="sha256 .* differs from the pinned"):
        fetch_open_bandit_sample(cache, downloader=FakeDownloader(archive), expected_sha256=sha256)
    assert list(cache.iterdir()) == []


def test_archive_without_a_data_file_is_rejected_and_leaves_no_cache(tmp_path):
    data = tmp_path / "fake-obd"
    _write_fake_obd(data)
    archive = tmp_path / "obp-0.5.7.tar.gz"
    sha256 = _build_sdist(archive, data, drop="random/women/item_context.csv")
    cache = tmp_path / "cache"
    with pytest.raises(ArchiveIntegrityError, match="random/women/item_context.csv"):
        fetch_open_bandit_sample(cache, downloader=FakeDownloader(archive), expected_sha256=sha256)
    assert list(cache.iterdir()) == []


def test_incomplete_cache_is_replaced(tmp_path, fake_sdist):
    archive, sha256, _ = fake_sdist
    stale = tmp_path / "cache" / "obd-sample"
    (stale / "bts" / "all").mkdir(parents=True)
    (stale / "bts" / "all" / "all.csv").write_text("interrupted", encoding="utf-8")
    downloader = FakeDownloader(archive)
    folder = fetch_open_bandit_sample(tmp_path / "cache", downloader=downloader, expected_sha256=sha256)
    assert downloader.calls == 1 and obd_module.is_complete_sample(folder)
    assert (folder / "bts" / "all" / "all.csv").read_text(encoding="utf-8") != "interrupted"


def test_missing_obd_without_download_names_the_variable_and_path(tmp_path, no_env_data):
    with pytest.raises(DatasetNotFoundError, match="CAUSALREC_DATA_DIR") as caught:
        load_open_bandit("random", "all", cache_dir=tmp_path / "nothing", download=False)
    message = str(caught.value)
    assert "obd-sample/random/all/all.csv" in message and str(no_env_data) in message
    assert isinstance(caught.value, FileNotFoundError)


def test_failed_download_is_reported_as_missing_data(tmp_path, no_env_data, monkeypatch):
    def offline(destination: Path) -> Path:
        raise OSError("no network")

    monkeypatch.setattr(obd_module, "download_obp_sdist", offline)
    with pytest.raises(DatasetNotFoundError, match="CAUSALREC_DATA_DIR.*no network"):
        load_open_bandit("bts", "all", cache_dir=tmp_path / "cache")


def test_bad_behavior_or_campaign_is_a_validation_error():
    with pytest.raises(ValidationError, match="behavior"):
        load_open_bandit("greedy", "all")
    with pytest.raises(ValidationError, match="campaign"):
        load_open_bandit("bts", "kids")


@pytest.mark.data
def test_cache_built_from_the_real_files_loads_the_same_data(tmp_path, obd_cache, no_env_data):
    shared = _shared_folder("obd-sample")
    archive = tmp_path / "obp-0.5.7.tar"
    sha256 = _build_sdist(archive, shared, compress=False)
    fetch_open_bandit_sample(tmp_path / "cache", downloader=FakeDownloader(archive), expected_sha256=sha256)
    cached = load_open_bandit("bts", "men", cache_dir=tmp_path / "cache", download=False)
    direct = load_open_bandit("bts", "men", data_dir=shared.parent)
    assert (cached.source, direct.source) == ("cache", "data_dir")
    for name in ("action", "reward", "position", "pscore", "context", "action_context", "timestamp"):
        np.testing.assert_array_equal(getattr(cached.feedback, name), getattr(direct.feedback, name))
    assert cached.on_policy_value == direct.on_policy_value


@pytest.mark.skipif(
    os.environ.get("CAUSALREC_TEST_DOWNLOAD") != "1",
    reason="downloads obp 0.5.7 from the package index; set CAUSALREC_TEST_DOWNLOAD=1 to run",
)
def test_real_download_from_the_package_index(tmp_path, no_env_data):
    folder = fetch_open_bandit_sample(tmp_path / "cache")
    marker = (folder / ".complete.json").read_text(encoding="utf-8")
    assert OBP_SDIST_SHA256 in marker
    dataset = load_open_bandit("bts", "all", cache_dir=tmp_path / "cache", download=False)
    assert dataset.source == "cache" and dataset.feedback.n_rounds == 10_000
    assert round(dataset.on_policy_value, 4) == 0.0042


# ---------------------------------------------------------------------------------------------- BTS distributions
def test_prior_distribution_matches_the_exact_two_item_case():
    alpha, beta = np.array([2.0, 3.0]), np.array([5.0, 4.0])
    # P(theta_0 > theta_1) = integral of f_0(x) F_1(x) dx.
    exact, _ = integrate.quad(lambda x: stats.beta.pdf(x, 2, 5) * stats.beta.cdf(x, 3, 4), 0, 1)
    n_simulations = 200_000
    distribution = bts_action_distribution_from_prior(alpha, beta, n_positions=2, n_simulations=n_simulations)
    tolerance = 4 * np.sqrt(exact * (1 - exact) / n_simulations)
    assert distribution[0, 0] == pytest.approx(exact, abs=tolerance)
    assert distribution[1, 1] == pytest.approx(exact, abs=tolerance)
    np.testing.assert_allclose(distribution.sum(axis=0), 1.0)
    np.testing.assert_allclose(distribution.sum(axis=1), 1.0)  # with 2 items and 2 slots each item is shown


def test_prior_distribution_top_k_equals_the_full_ranking_truncated():
    alpha, beta = np.array([1.0, 4.0, 2.0, 9.0, 3.0]), np.array([8.0, 6.0, 7.0, 30.0, 5.0])
    top_two = bts_action_distribution_from_prior(
        alpha, beta, n_positions=2, n_simulations=5_000, random_state=7
    )
    full = bts_action_distribution_from_prior(alpha, beta, n_positions=5, n_simulations=5_000, random_state=7)
    np.testing.assert_array_equal(top_two, full[:, :2])
    np.testing.assert_allclose(full.sum(axis=0), 1.0)
    np.testing.assert_allclose(full.sum(axis=1), 1.0)
    other_seed = bts_action_distribution_from_prior(
        alpha, beta, n_positions=2, n_simulations=5_000, random_state=8
    )
    assert not np.array_equal(top_two, other_seed)
    with pytest.raises(ValidationError, match="n_positions"):
        bts_action_distribution_from_prior(alpha, beta, n_positions=6)


@pytest.mark.data
def test_prior_distribution_of_the_obd_campaign(obd_cache):
    prior = _obd(obd_cache, "bts", "all").bts_prior
    distribution = bts_action_distribution_from_prior(prior.alpha, prior.beta, n_simulations=20_000)
    assert distribution.shape == (80, 3)
    np.testing.assert_allclose(distribution.sum(axis=0), 1.0)
    # The item with the highest prior mean leads slot 0 most often.
    assert distribution[:, 0].argmax() == prior.mean.argmax()


def _feedback_with_days(
    rows: list[tuple[str, int, int, float]], n_actions: int, n_positions: int
) -> LoggedFeedback:
    timestamps, actions, positions, pscores = zip(*rows, strict=True)
    return LoggedFeedback(
        action=np.array(actions),
        reward=np.zeros(len(rows)),
        n_actions=n_actions,
        position=np.array(positions),
        pscore=np.array(pscores),
        n_positions=n_positions,
        timestamp=pd.to_datetime(list(timestamps), utc=True).tz_localize(None).to_numpy(),
    )


def test_log_distribution_reproduces_constant_pscores_and_shares_the_rest():
    rows = [
        # day 1, slot 0: items 0 and 1 seen (0.5 + 0.2), items 2 and 3 share 0.3
        ("2019-11-24 01:00:00", 0, 0, 0.5), ("2019-11-24 05:00:00", 0, 0, 0.5), ("2019-11-24 09:00:00", 1, 0, 0.2),
        # day 1, slot 1: means sum to 1.5 -> rescaled, unseen items get 0
        ("2019-11-24 10:00:00", 2, 1, 0.9), ("2019-11-24 11:00:00", 3, 1, 0.4), ("2019-11-24 12:00:00", 3, 1, 0.8),
        # day 2, slot 0: one item seen
        ("2019-11-25 23:59:59", 3, 0, 0.1),
    ]  # fmt: skip
    feedback = _feedback_with_days(rows, n_actions=4, n_positions=2)
    result = bts_action_distribution_from_logs(feedback)
    day_index, distribution = result
    np.testing.assert_array_equal(day_index, [0, 0, 0, 0, 0, 0, 1])
    assert list(result.days.astype(str)) == ["2019-11-24", "2019-11-25"]
    assert distribution.shape == (2, 4, 2)
    np.testing.assert_allclose(distribution.sum(axis=1), 1.0)
    np.testing.assert_allclose(distribution[0, :, 0], [0.5, 0.2, 0.15, 0.15])
    np.testing.assert_allclose(distribution[0, :, 1], [0.0, 0.0, 0.9 / 1.5, 0.6 / 1.5])
    np.testing.assert_allclose(distribution[1, :, 0], [0.3, 0.3, 0.3, 0.1])
    np.testing.assert_allclose(distribution[1, :, 1], 0.25)  # a (day, slot) without logs is uniform
    np.testing.assert_array_equal(result.renormalised, [[False, True], [False, False]])
    np.testing.assert_allclose(result.seen_mass, [[0.7, 1.5], [0.1, 0.0]])
    # Where nothing was rescaled the logged pscores are reproduced exactly.
    kept = ~result.renormalised[day_index, feedback.position]
    reproduced = distribution[day_index, feedback.action, feedback.position]
    np.testing.assert_allclose(reproduced[kept], feedback.pscore[kept])
    with pytest.raises(ValueError, match="read-only"):
        distribution[0, 0, 0] = 1.0


def test_day_lookup_uses_utc_days_and_rejects_unknown_days():
    days = np.array(["2019-11-24", "2019-11-25"], dtype="datetime64[D]")
    stamps = ["2019-11-24T23:30:00-01:00", "2019-11-24 00:00:01+00:00", "2019-11-25T08:59:00+09:00"]
    np.testing.assert_array_equal(day_index_of(stamps, days), [1, 0, 0])
    as_numpy = np.array(["2019-11-25T12:00", "2019-11-24T00:00"], dtype="datetime64[ns]")
    np.testing.assert_array_equal(day_index_of(as_numpy, days), [1, 0])
    np.testing.assert_array_equal(day_index_of(as_numpy.astype(np.int64), days), [1, 0])
    with pytest.raises(ValidationError, match="logged days") as caught:
        day_index_of(["2019-11-24 10:00:00+00:00", "2019-11-26 10:00:00+00:00"], days)
    assert caught.value.row == 1


@pytest.mark.data
@pytest.mark.parametrize("campaign", ["all", "men", "women"])
def test_log_distribution_of_the_obd_bts_logs(obd_cache, campaign):
    bts = _obd(obd_cache, "bts", campaign).feedback
    result = bts_action_distribution_from_logs(bts)
    day_index, distribution = result
    assert distribution.shape == (7, OBD_N_ACTIONS[campaign], 3)
    np.testing.assert_allclose(distribution.sum(axis=1), 1.0, atol=1e-12)
    assert (distribution >= 0).all()
    # Observed (day, item, slot) cells reproduce the mean logged pscore up to the documented per-(day, slot)
    # rescaling; in this sample the means always sum to more than 1 (the propensities drift within a day).
    frame = pd.DataFrame({"day": day_index, "item": bts.action, "slot": bts.position, "pscore": bts.pscore})
    means = frame.groupby(["day", "item", "slot"])["pscore"].mean()
    days, items, slots = (means.index.get_level_values(level).to_numpy() for level in range(3))
    rebuilt = distribution[days, items, slots] * result.seen_mass[days, slots]
    np.testing.assert_allclose(rebuilt, means.to_numpy(), rtol=1e-10)
    assert result.renormalised.all() and result.seen_mass.min() > 1.0
    # The random logs of the same campaign fall on the same seven days.
    random_days = result.day_index_of(_obd(obd_cache, "random", campaign).feedback.timestamp)
    assert set(np.unique(random_days)) == set(range(7))


# ---------------------------------------------------------------------------------------------- Coat
@pytest.mark.data
def test_coat_shapes_counts_and_means():
    _shared_folder("coat")
    coat = load_coat()
    assert coat.train.shape == coat.test.shape == coat.propensities.shape == (290, 300)
    assert coat.user_features.shape == (290, 14) and coat.item_features.shape == (300, 33)
    assert len(coat.user_feature_names) == 14 and coat.item_feature_names[0] == "gender:men"
    train, test = coat.train_ratings(), coat.test_ratings()
    assert (len(train), len(test)) == (6960, 4640)
    assert (train.groupby("user").size() == 24).all() and (test.groupby("user").size() == 16).all()
    assert round(train["rating"].mean(), 2) == 2.61 and round(test["rating"].mean(), 2) == 2.23
    assert set(train["rating"]) <= {1, 2, 3, 4, 5}
    assert list(train.columns) == ["user", "item", "rating"]
    # Observation propensities: each user's row sums to about its 24 train ratings.
    assert coat.propensities.sum(axis=1).mean() == pytest.approx(24.0, abs=0.05)
    for array in (coat.train, coat.test, coat.propensities, coat.user_features, coat.item_features):
        with pytest.raises(ValueError, match="read-only"):
            array[0, 0] = 0


@pytest.mark.data
def test_coat_train_feedback_view():
    _shared_folder("coat")
    coat = load_coat()
    feedback = coat.train_feedback()
    train = coat.train_ratings()
    assert feedback.n_rounds == 6960 and feedback.n_actions == 300 and feedback.pscore is None
    np.testing.assert_array_equal(feedback.action, train["item"])
    np.testing.assert_array_equal(feedback.user_id, train["user"])
    np.testing.assert_array_equal(feedback.reward, train["rating"])
    np.testing.assert_array_equal(feedback.context, coat.user_features[train["user"].to_numpy()])
    np.testing.assert_array_equal(feedback.action_context, coat.item_features)
    assert feedback.context_names == coat.user_feature_names


# ---------------------------------------------------------------------------------------------- Hillstrom
@pytest.mark.data
def test_hillstrom_rows_types_and_arm_means():
    _shared_folder("hillstrom")
    frame = load_hillstrom()
    assert frame.shape == (64_000, 12)
    assert frame["visit"].dtype == np.int64 and frame["spend"].dtype == np.float64
    assert frame["history_segment"].cat.ordered
    assert list(frame["segment"].cat.categories) == ["No E-Mail", "Mens E-Mail", "Womens E-Mail"]
    means = hillstrom_arm_means(frame)
    for arm, expected in HILLSTROM_ARM_MEANS.items():
        np.testing.assert_allclose(means.loc[arm].to_numpy(), expected, atol=5e-6)


@pytest.mark.data
def test_hillstrom_treatments_and_covariates():
    _shared_folder("hillstrom")
    frame = load_hillstrom()
    before = frame.copy()
    treatments = hillstrom_treatments(frame)
    assert list(treatments.columns) == ["Mens E-Mail", "Womens E-Mail", "No E-Mail"]
    assert (treatments.sum(axis=1) == 1).all()
    assert treatments["Mens E-Mail"].sum() == (frame["segment"] == "Mens E-Mail").sum()
    covariates = hillstrom_covariates(frame)
    assert covariates.shape == (64_000, 5 + 2 + 2 + 6)
    assert all(dtype == np.float64 for dtype in covariates.dtypes)
    assert not covariates.isna().any().any()
    assert not {"visit", "conversion", "spend", "segment"} & set(covariates.columns)
    assert hillstrom_covariates(frame, drop_first=False).shape[1] == 5 + 3 + 3 + 7
    assert frame.equals(before)  # inputs are never mutated (assert_frame_equal takes seconds on categoricals)


# ---------------------------------------------------------------------------------------------- KuaiRec
@pytest.mark.data
def test_kuairec_random83_is_fully_observed():
    folder = _shared_folder("kuairec-random83")
    subset = load_kuairec_random83()
    # Independent count from the raw file (plain text parsing, not the loader).
    lines = (folder / "random.txt").read_text().split()
    raw_videos = {line.split(",")[1] for line in lines if line[0].isdigit()}
    assert subset.watch_ratio.shape == (1411, 83) and subset.candidate_video.shape == (1411, 83)
    assert np.isfinite(subset.watch_ratio).all() and (subset.watch_ratio >= 0).all()
    assert len(subset.ratings) == 1411 * 83
    assert (np.diff(subset.user_ids) > 0).all() and (np.diff(subset.video_ids) > 0).all()
    # Each user's 83 candidates are distinct videos; the sets differ between users (2,519 videos in all).
    assert all(len(np.unique(row)) == 83 for row in subset.candidate_video)
    assert subset.n_videos == len(raw_videos) == 2519
    ratings = subset.ratings
    np.testing.assert_array_equal(subset.user_ids[ratings["user"].to_numpy()], ratings["user_id"])
    np.testing.assert_array_equal(subset.video_ids[ratings["video"].to_numpy()], ratings["video_id"])
    np.testing.assert_array_equal(subset.watch_ratio.ravel(), subset.ratings["watch_ratio"].to_numpy())
    matrix = subset.user_video_matrix()
    assert matrix.shape == (1411, 2519) and np.isfinite(matrix).sum() == 1411 * 83
    with pytest.raises(ValueError, match="read-only"):
        subset.watch_ratio[0, 0] = 0.0


# ---------------------------------------------------------------------------------------------- missing data
@pytest.mark.parametrize(
    ("loader", "expected_path"),
    [
        (load_coat, "coat/train.ascii"),
        (load_hillstrom, "hillstrom/hillstrom.csv"),
        (load_kuairec_random83, "kuairec-random83/random.txt"),
    ],
)
def test_missing_data_names_the_variable_and_the_expected_path(loader, expected_path, tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as caught:
        loader(data_dir=tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert "CAUSALREC_DATA_DIR" in message and expected_path in message and str(tmp_path) in message

    monkeypatch.delenv("CAUSALREC_DATA_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError, match="CAUSALREC_DATA_DIR is not set"):
        loader()

    folder = tmp_path / expected_path.split("/")[0]
    folder.mkdir()
    (folder / "unrelated.txt").write_text("x", encoding="utf-8")
    monkeypatch.setenv("CAUSALREC_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="lacks"):
        loader()


# ---------------------------------------------------------------------------------------------- malformed files
def _fake_obd_folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    _write_fake_obd(root / "obd-sample")
    return root


def _rewrite_men_logs(root: Path, change) -> None:
    path = root / "obd-sample" / "random" / "men" / "men.csv"
    change(pd.read_csv(path, index_col=0)).to_csv(path)


@pytest.mark.parametrize(
    ("change", "field", "found"),
    [
        (lambda logs: logs.drop(columns="click"), "columns", "no ['click']"),  # was a bare KeyError 'click'
        (lambda logs: logs.assign(timestamp=logs["timestamp"].where(logs.index != 3, "yesterday")), "timestamp",
         "yesterday"),  # was pandas' ValueError without the file
        (lambda logs: logs.assign(propensity_score=logs["propensity_score"].where(logs.index != 4, 0.0)),
         "propensity_score", "0.0"),  # was "LoggedFeedback: field 'pscore'", no file
    ],
)
def test_malformed_obd_file_names_the_file_and_column(tmp_path, change, field, found):
    root = _fake_obd_folder(tmp_path)
    _rewrite_men_logs(root, change)
    with pytest.raises(ValidationError) as caught:
        load_open_bandit("random", "men", data_dir=root, download=False, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert str(root / "obd-sample" / "random" / "men" / "men.csv") in message
    assert caught.value.field == field and found in message


def test_obd_errors_count_rows_as_in_the_file(tmp_path):
    root = _fake_obd_folder(tmp_path)

    def reverse_time_and_break_last_click(logs):
        logs = logs.iloc[::-1].reset_index(drop=True)  # newest first: the loader's time sort reverses rows
        logs.loc[len(logs) - 1, "click"] = np.nan
        return logs

    _rewrite_men_logs(root, reverse_time_and_break_last_click)
    with pytest.raises(ValidationError, match="field 'click'") as caught:
        load_open_bandit("random", "men", data_dir=root, download=False, cache_dir=tmp_path / "cache")
    assert caught.value.row == 29  # the file's last row, not row 0 of the time-sorted logs


def test_obd_prior_without_alpha_is_a_validation_error(tmp_path):
    root = _fake_obd_folder(tmp_path)
    path = root / "obd-sample" / "prior_bts.yaml"
    priors = yaml.safe_load(path.read_text(encoding="utf-8"))
    priors["men"] = {"beta": priors["men"]["beta"]}
    path.write_text(yaml.safe_dump(priors), encoding="utf-8")
    with pytest.raises(ValidationError, match="'alpha' and 'beta'") as caught:  # was KeyError: 'alpha'
        load_open_bandit("random", "men", data_dir=root, download=False, cache_dir=tmp_path / "cache")
    assert str(path) in str(caught.value)


def _hillstrom_frame(n_rows: int = 64_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "recency": rng.integers(1, 13, n_rows), "history_segment": "1) $0 - $100",
        "history": rng.uniform(29, 100, n_rows).round(2), "mens": rng.integers(0, 2, n_rows),
        "womens": rng.integers(0, 2, n_rows), "zip_code": "Urban", "newbie": rng.integers(0, 2, n_rows),
        "channel": "Web", "segment": rng.choice(["Mens E-Mail", "Womens E-Mail", "No E-Mail"], n_rows),
        "visit": rng.integers(0, 2, n_rows), "conversion": 0, "spend": 0.0,
    })  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "found"),
    [
        # Each of these loaded before: 0.5 was truncated to 0, NaN spend and 2 visits went into the arm means,
        # and a truncated file gave arm means of a subsample.
        (lambda frame: frame.astype({"visit": float}).assign(visit=lambda f: f["visit"].where(f.index != 5, 0.5)),
         "visit", "0.5"),
        (lambda frame: frame.assign(visit=frame["visit"].where(frame.index != 5, 2)), "visit", "0/1 flag"),
        (lambda frame: frame.assign(spend=frame["spend"].where(frame.index != 5)), "spend", "NaN"),
        (lambda frame: frame.iloc[:1000], "rows", "1,000 rows"),
    ],
)
def test_malformed_hillstrom_file_is_refused(tmp_path, change, field, found):
    folder = tmp_path / "hillstrom"
    folder.mkdir()
    _hillstrom_frame().to_csv(folder / "hillstrom.csv", index=False)
    assert load_hillstrom(data_dir=tmp_path).shape == (64_000, 12)
    change(_hillstrom_frame()).to_csv(folder / "hillstrom.csv", index=False)
    with pytest.raises(ValidationError) as caught:
        load_hillstrom(data_dir=tmp_path)
    assert caught.value.field == field and found in str(caught.value)
    assert str(folder / "hillstrom.csv") in str(caught.value)


@pytest.mark.data
def test_fractional_coat_rating_is_refused_not_truncated(tmp_path):
    shared = _shared_folder("coat")
    folder = tmp_path / "coat"
    shutil.copytree(shared, folder)
    folder.chmod(0o755)
    matrix = np.loadtxt(shared / "train.ascii")
    user, item = (int(i) for i in np.argwhere(matrix > 0)[0])
    matrix[user, item] = 2.5  # loaded as a rating of 2 before
    (folder / "train.ascii").chmod(0o644)
    np.savetxt(folder / "train.ascii", matrix, fmt="%g")
    with pytest.raises(ValidationError, match=f"found 2.5 at \\(user, item\\) = \\({user}, {item}\\)"):
        load_coat(data_dir=tmp_path)


def test_kuairec_file_with_a_header_names_the_file(tmp_path):
    folder = tmp_path / "kuairec-random83"
    folder.mkdir()
    (folder / "random.txt").write_text("user_id,video_id,watch_ratio\n1,10,0.5\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="without a header") as caught:  # was pandas' ValueError
        load_kuairec_random83(data_dir=tmp_path)
    assert str(folder / "random.txt") in str(caught.value)
