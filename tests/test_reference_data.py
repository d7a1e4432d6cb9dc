"""``reference_data``: mu_r and Sigma_r from a user's n x d features (a .npy file or an
array), in Python and on the command line; one clear error for each kind of bad set."""

import numpy as np
import pytest

import ess
from ess.cli import main
from ess.params import ParameterError, reference_from_data

D = 3


def _features(n=400, d=D, seed=5):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) + 2 * np.eye(d)
    return rng.standard_normal((n, d)) @ mix + rng.standard_normal(d)


def _numbers(res):
    out = res.to_dict()
    out.pop("seconds")
    return out


@pytest.fixture
def good(tmp_path):
    X = _features()
    path = tmp_path / "features.npy"
    np.save(path, X)
    return X, path


def test_reference_data_is_the_sample_mean_and_covariance(good):
    X, path = good
    mu, cov = reference_from_data(X)
    np.testing.assert_allclose(mu, X.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(cov, np.cov(X, rowvar=False), rtol=1e-12)
    kw = dict(n_r=50, n_s=100, lam=0.9, rel_precision=0.05, store=False)
    want = _numbers(ess.estimate(mu_r=mu, sigma_r=cov, **kw))
    assert want["d"] == D
    assert _numbers(ess.estimate(reference_data=path, **kw)) == want
    assert _numbers(ess.estimate(reference_data=str(path), d=D, **kw)) == want
    assert _numbers(ess.estimate(reference_data=X, **kw)) == want


def test_every_entry_point_takes_reference_data(good):
    X, path = good
    mu, cov = reference_from_data(X)
    assert ess.reference_curve([10, 20], reference_data=path).f == \
        ess.reference_curve([10, 20], sigma_r=cov).f
    a = ess.simulate(n_r=20, n_s=20, chains=50, generations=3, reference_data=path)
    b = ess.simulate(n_r=20, n_s=20, chains=50, generations=3, mu_r=mu, sigma_r=cov)
    assert a.rows == b.rows and a.d == D
    kw = dict(n_r=[40], lam=[0.7], rel_precision=0.1, store=False)
    assert [_numbers(r) for r in ess.threshold_grid(reference_data=path, **kw)] == \
        [_numbers(r) for r in ess.threshold_grid(mu_r=mu, sigma_r=cov, **kw)]
    kw = dict(n_r=[40], n_s=[0, 40], lam=[0.9], rel_precision=0.1, store=False)
    assert [_numbers(r) for r in ess.table(reference_data=path, **kw)] == \
        [_numbers(r) for r in ess.table(mu_r=mu, sigma_r=cov, **kw)]
    t = ess.threshold(n_r=40, lam=0.7, rel_precision=0.1, reference_data=X, store=False)
    assert t.d == D


def test_cli_reference_data(good, capsys):
    X, path = good
    assert main(["estimate", "--reference-data", str(path), "--n-r", "50", "--n-s", "100",
                 "--lam", "0.9", "--rel-precision", "0.05", "--no-store", "--json"]) == 0
    assert '"d": 3' in capsys.readouterr().out


def _bad_files(tmp_path):
    """(what, file or array, words the message must contain)."""
    X = _features()
    nan = X.copy()
    nan[7, 1] = np.nan
    inf = X.copy()
    inf[0, 2] = -np.inf
    const = X.copy()
    const[:, 1] = 4.0
    dependent = X.copy()
    dependent[:, 2] = X[:, 0] - 2 * X[:, 1]
    text = tmp_path / "features.txt"
    text.write_text("1 2 3\n4 5 6\n")
    npz = tmp_path / "features.npz"
    np.savez(npz, a=X, b=X)
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, X)
    truncated.write_bytes(truncated.read_bytes()[:200])
    cases = [
        ("missing file", tmp_path / "nope.npy", ["cannot read", "nope.npy"]),
        ("not a .npy", text, ["cannot read", "features.txt"]),
        ("truncated .npy", truncated, ["cannot read"]),
        ("archive", npz, [".npz"]),
        ("1-D", X[:, 0], ["n x d", "(400,)"]),
        ("3-D", X.reshape(400, 3, 1), ["n x d", "(400, 3, 1)"]),
        ("n <= d", X[:3], ["more rows", "n = 3", "d = 3"]),
        ("nan", nan, ["finite", "row 8, column 2"]),
        ("inf", inf, ["finite", "row 1, column 3"]),
        ("constant column", const, ["column 2 is constant"]),
        ("dependent columns", dependent, ["positive-definite", "linear combination"]),
        ("complex", X.astype(complex), ["real numbers", "complex"]),
        ("strings", np.array([["a", "b"], ["c", "d"], ["e", "f"]]), ["real numbers"]),
        ("too many columns", np.zeros((3, ess.config.MAX_D + 1)), ["columns", "2048"]),
    ]
    return cases


def test_each_bad_reference_data_gets_one_clear_error(tmp_path):
    for what, data, words in _bad_files(tmp_path):
        with pytest.raises(ParameterError) as e:
            ess.estimate(n_r=50, n_s=100, reference_data=data, store=False)
        assert e.value.name == "reference_data", what
        msg = str(e.value)
        assert "reference_data" in msg and "\n" not in msg, (what, msg)
        for w in words:
            assert w in msg, (what, w, msg)


def test_reference_data_conflicts(good):
    X, path = good
    with pytest.raises(ParameterError, match="d must be the number of columns") as e:
        ess.estimate(d=4, reference_data=path, store=False)
    assert e.value.name == "d"
    for other in (dict(sigma_r=np.eye(D)), dict(mu_r=np.zeros(D))):
        with pytest.raises(ParameterError, match="not both") as e:
            ess.estimate(reference_data=path, store=False, **other)
        assert e.value.name == "reference_data"
    with pytest.raises(ParameterError, match="not both"):
        ess.table(n_r=[40], n_s=[10], lam=[1.0], reference_data=path, sigma_r=np.eye(D))


def test_cli_bad_reference_data_exits_2_with_one_line(tmp_path, capsys):
    for what, data, _ in _bad_files(tmp_path):
        if isinstance(data, np.ndarray):
            path = tmp_path / f"{what.replace(' ', '_')}.npy"
            np.save(path, data)
        else:
            path = data
        status = main(["estimate", "--reference-data", str(path), "--no-store", "--quiet"])
        err = capsys.readouterr().err
        assert status == 2, what
        assert err.startswith("ess: error: reference_data") and err.count("\n") == 1, (what, err)
        assert "Traceback" not in err
