"""Same seed, different numbers of jobs: identical numbers, bit for bit."""

import numpy as np

import ess


def _strip(d):
    d = dict(d)
    d.pop("seconds", None)
    return d


def test_estimate_same_on_one_and_two_jobs():
    kw = dict(d=2, n_r=50, n_s=100, lam=0.9, seed=123)
    a = ess.estimate(n_jobs=1, **kw).to_dict()
    b = ess.estimate(n_jobs=2, **kw).to_dict()
    assert _strip(a) == _strip(b)


def test_threshold_same_on_one_and_two_jobs():
    kw = dict(d=1, n_r=100, lam=0.7, seed=7)
    a = ess.threshold(n_jobs=1, **kw).to_dict()
    b = ess.threshold(n_jobs=2, **kw).to_dict()
    assert _strip(a) == _strip(b)


def test_simulate_same_on_one_and_two_jobs():
    kw = dict(d=3, n_r=10, n_s=20, lam=0.8, seed=5, chains=50, generations=20,
              return_trajectories=True)
    _, a = ess.simulate(n_jobs=1, **kw)
    _, b = ess.simulate(n_jobs=2, **kw)
    assert np.array_equal(a, b)


def test_different_seeds_differ():
    a = ess.estimate(d=1, n_r=50, n_s=50, seed=1)
    b = ess.estimate(d=1, n_r=50, n_s=50, seed=2)
    assert a.wd != b.wd


def test_cached_reference_curve_gives_the_same_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("ESS_CACHE_DIR", str(tmp_path))
    kw = dict(d=2, n_r=40, n_s=80, lam=0.8, seed=9)
    cold = ess.estimate(**kw).to_dict()
    assert list((tmp_path / "reference").glob("*.json"))
    warm = ess.estimate(**kw).to_dict()
    assert _strip(cold) == _strip(warm)
