"""The accumulate loops, the per-generation diagnostics, and every loop's first moments.

Statistical checks use fixed seeds and state their tolerance in standard errors
estimated from independent chains.
"""

import numpy as np
import pytest

import ess
from ess.analytic import loop_first_moments
from ess.chains import (
    TRAJ_FROB_DEV,
    TRAJ_LOG_DET,
    TRAJ_MEAN_DEV,
    TRAJ_MIN_EIG,
    TRAJ_TR_SIGMA,
    chunk_rngs,
)
from ess.kernels.layout import REC_FIELDS, REC_FROB_DEV, REC_LOG_DET, REC_MIN_EIG
from ess.params import LOOPS, ParameterError

SIGMA_R = [[2.0, 0.5], [0.5, 1.0]]
MU_R = [1.0, -2.0]


# --- first moments over generations ----------------------------------------------------
MOMENT_CASES = [(loop, lam, cov) for loop in LOOPS for lam in (1.0, 0.7)
                for cov in ("unbiased", "mle")]


@pytest.mark.parametrize("loop,lam,cov", MOMENT_CASES, ids=[f"{a}-lam{b}-{c}"
                                                            for a, b, c in MOMENT_CASES])
def test_first_moments_follow_the_recursions_over_generations(loop, lam, cov):
    """E|mu_t - mu_r|^2 and E tr Sigma_t of 4000 chains (d = 2, a non-identity Sigma_r and a
    non-zero mu_r, memory 1) match :func:`ess.analytic.loop_first_moments` at each of 10
    generations within 4 standard errors. n_ini = 6 > n_r = 4 (except augmentation,
    which needs n_ini = n_r) so that the accumulate-subsample fits are subsamples from
    generation 3 on."""
    R, G, n_r, n_s = 4000, 10, 4, 3
    n_ini = n_r if loop == "augmentation" else 6
    _, traj = ess.simulate(d=2, n_r=n_r, n_s=n_s, n_ini=n_ini, lam=lam, cov_estimator=cov,
                           loop=loop, chains=R, generations=G, sigma_r=SIGMA_R, mu_r=MU_R,
                           seed=21, return_trajectories=True)
    a, c = loop_first_moments(loop, n_ini, n_r, n_s, lam, cov, float(np.trace(SIGMA_R)), G)
    for col, want in ((TRAJ_MEAN_DEV, a), (TRAJ_TR_SIGMA, c)):
        x = traj[:, :, col]
        se = x.std(axis=0, ddof=1) / np.sqrt(R)
        z = (x.mean(axis=0) - want) / se
        assert np.all(np.abs(z) <= 4.0), (col, z.round(2))


def test_recursions_special_cases():
    """The recursions agree where the loops coincide: accumulate-subsample that never
    subsamples (n_r + n_s at least the pool) is accumulate; the fit on every sample of a
    pool has no subsampling noise; n_s = 0 freezes the accumulate loops (with n_ini = n_r,
    so that the subsample is the whole real set), and subsamples of a larger real set
    spread the mean."""
    from ess.analytic import subsample_moments

    a1, c1 = loop_first_moments("accumulate", 5, 100, 3, 0.8, "unbiased", 2.0, 12)
    a2, c2 = loop_first_moments("accumulate-subsample", 5, 100, 3, 0.8, "unbiased", 2.0, 12)
    np.testing.assert_allclose(a1, a2, rtol=1e-13)
    np.testing.assert_allclose(c1, c2, rtol=1e-13)
    assert subsample_moments(0.3, 4.0, 9, 9, "mle") == pytest.approx((0.3, 4.0 / 9))
    for loop in ("accumulate", "accumulate-subsample"):
        a, c = loop_first_moments(loop, 5, 5, 0, 0.8, "unbiased", 2.0, 6)
        assert np.ptp(a) == 0 and np.ptp(c) == 0
    a, c = loop_first_moments("accumulate-subsample", 5, 4, 0, 0.8, "unbiased", 2.0, 3)
    assert a[1] == a[2] == pytest.approx(2.0 / 5 + (1 - 4 / 5) * 2.0 / 4)
    assert c[1] == c[2] == pytest.approx(c[0])


def test_accumulate_keeps_the_trace_and_replace_loses_it():
    """The literature's claim, in expectation: at lam = 1 accumulate's E tr Sigma_t has a
    positive limit (the product of 1 - k / (N'(N' - 1)) converges), the fully synthetic
    loop's E tr Sigma_t is constant while Sigma_t -> 0 almost surely; with lam < 1
    accumulate falls like t^-(1 - lam)."""
    _, c = loop_first_moments("accumulate", 100, 100, 100, 1.0, "unbiased", 1.0, 2000)
    assert c[-1] > 0.98 * c[0] and c[-1] / c[999] > 0.9999
    _, c = loop_first_moments("accumulate", 100, 100, 100, 0.8, "unbiased", 1.0, 2001)
    slope = np.log(c[2000] / c[1000]) / np.log(2001 / 1001)
    assert slope == pytest.approx(-0.2, abs=0.01)


# --- the accumulate kernels ----------------------------------------------------------
@pytest.mark.parametrize("d,sigma_r", [(1, None), (2, None), (3, None), (10, None),
                                       (3, [2.0, 1.0, 0.5])])
def test_accumulate_starts_as_augmentation_bit_for_bit(d, sigma_r):
    """Generation 2 of accumulate trains on the first real set plus one batch, the
    augmentation loop's training set: with the same seed the two loops agree exactly at
    generations 1 and 2 (and differ after), every record field included. (With Sigma_r = I
    and d >= 3 accumulate's records share one eigen-decomposition between the distance
    and the smallest eigenvalue: this checks that it gives the same bits.)"""
    kw = dict(d=d, n_r=12, n_s=5, lam=0.9, chains=20, generations=4, seed=8,
              return_trajectories=True, sigma_r=sigma_r)
    _, acc = ess.simulate(loop="accumulate", **kw)
    _, aug = ess.simulate(loop="augmentation", **kw)
    assert np.array_equal(acc[:, :2], aug[:, :2])
    assert not np.array_equal(acc[:, 2:], aug[:, 2:])


def test_every_loop_starts_from_the_same_real_set():
    """Generation 1 is the fit on the same n_ini real samples in the loops that draw no
    real data afterwards (common random numbers): identical records in every chain. The
    fresh loop's chains share their chunk's real stream, so only each chunk's first chain
    starts from the same set; the sample-level accumulate-subsample draws its real
    samples one by one."""
    from ess.chains import trajectory_chunk_size

    kw = dict(d=2, n_r=6, n_s=4, chains=10, generations=2, seed=4, return_trajectories=True)
    firsts = {loop: ess.simulate(loop=loop, **kw)[1][:, 0] for loop in LOOPS}
    for loop in ("fully-synthetic", "accumulate"):
        assert np.array_equal(firsts[loop], firsts["augmentation"]), loop
    assert trajectory_chunk_size(2, 2) >= 10
    assert np.array_equal(firsts["fresh"][0], firsts["augmentation"][0])
    assert not np.array_equal(firsts["fresh"][1], firsts["augmentation"][1])


def test_randint_is_uniform():
    """The subsample's integers: 60000 draws of [0, 7) have counts within a chi-square
    test at level 1e-3, and k = 1 always gives 0."""
    from scipy import stats

    from ess.kernels.accumulate import _randint

    st, _, _ = chunk_rngs(5, 0, 0)
    draws = np.array([_randint(st, 7) for _ in range(60000)])
    assert draws.min() == 0 and draws.max() == 6
    assert stats.chisquare(np.bincount(draws, minlength=7)).pvalue > 1e-3
    assert all(_randint(st, 1) == 0 for _ in range(100))


@pytest.mark.parametrize("d,rank", [(1, 1), (2, 2), (4, 4), (5, 3), (3, 0)])
def test_diagnostics_match_numpy(d, rank):
    """log det, ||Sigma - Sigma_r||_F and the smallest eigenvalue of the kernels against
    numpy.linalg; -inf for the log determinant of a singular Sigma."""
    from ess.kernels.loops import _diagnostics

    rng = np.random.default_rng(d + 10 * rank)
    G = rng.standard_normal((d, rank))
    S = G @ G.T + (0.1 * np.eye(d) if rank == d else 0.0)
    H = rng.standard_normal((d, d))
    SR = H @ H.T + np.eye(d)
    rec = np.full(REC_FIELDS, np.nan)
    _diagnostics(S, SR, rec, np.empty((d, d)), np.empty((2, d)))
    sign, logdet = np.linalg.slogdet(S)
    if rank == d:
        assert rec[REC_LOG_DET] == pytest.approx(logdet, rel=1e-10, abs=1e-10)
    else:
        assert rec[REC_LOG_DET] == -np.inf
    assert rec[REC_FROB_DEV] == pytest.approx(np.linalg.norm(S - SR), rel=1e-12)
    assert rec[REC_MIN_EIG] == pytest.approx(np.linalg.eigvalsh(S).min(),
                                             abs=1e-12 * max(1.0, np.abs(S).max()))


def test_diagnostics_in_the_users_units():
    """Sigma_r = s I (the kernels run on I): the diagnostics scale back, log det by d log s."""
    kw = dict(d=3, n_r=10, n_s=10, chains=30, generations=3, seed=6, return_trajectories=True,
              loop="accumulate")
    _, unit = ess.simulate(**kw)
    _, big = ess.simulate(sigma_r=[4.0, 4.0, 4.0], **kw)
    np.testing.assert_allclose(big[:, :, TRAJ_LOG_DET], unit[:, :, TRAJ_LOG_DET] + 3 * np.log(4),
                               rtol=1e-12)
    for col in (TRAJ_FROB_DEV, TRAJ_MIN_EIG, TRAJ_TR_SIGMA):
        np.testing.assert_allclose(big[:, :, col], 4 * unit[:, :, col], rtol=1e-12)


@pytest.mark.parametrize("loop", LOOPS)
def test_same_numbers_on_one_and_two_jobs(loop):
    """Same seed, any number of jobs: identical trajectories, bit for bit (memory 2, so
    the split over past models is drawn too)."""
    kw = dict(d=2, n_r=6, n_s=5, lam=0.9, memory=2, seed=5, chains=40, generations=8,
              return_trajectories=True, loop=loop)
    _, a = ess.simulate(n_jobs=1, **kw)
    _, b = ess.simulate(n_jobs=2, **kw)
    assert np.array_equal(a, b)


# --- bad input -----------------------------------------------------------------------
def test_unknown_loop_names_the_choices():
    with pytest.raises(ParameterError, match=r"^loop must be one of fresh, augmentation, "
                       r"fully-synthetic, accumulate, accumulate-subsample, replace "
                       r"\(= fully-synthetic\); got 'hoard'$") as e:
        ess.simulate(loop="hoard")
    assert e.value.name == "loop"


@pytest.mark.parametrize("loop", ["accumulate", "accumulate-subsample"])
def test_estimate_refuses_the_accumulate_loops(loop):
    with pytest.raises(ParameterError, match="has no stationary limit.*use simulate") as e:
        ess.estimate(loop=loop, store=False)
    assert e.value.name == "loop" and "\n" not in str(e.value)


def test_a_pool_beyond_the_memory_limit_is_refused():
    """accumulate-subsample keeps its pool: 2000 generations of 10^4 samples at d = 100 do
    not fit in MAX_BYTES; the message names generations and the most that fit, which are
    then accepted. accumulate itself keeps no pool."""
    from ess.request import simulate_request

    kw = dict(d=100, n_r=100, n_s=10_000, chains=1, n_jobs=1)
    with pytest.raises(ParameterError, match=r"^generations must be at most (\d+) for loop "
                       r"accumulate-subsample") as e:
        simulate_request(loop="accumulate-subsample", generations=2000, **kw)
    assert e.value.name == "generations"
    most = int(str(e.value).split("at most ")[1].split()[0])
    simulate_request(loop="accumulate-subsample", generations=most, **kw)
    with pytest.raises(ParameterError, match="generations must be at most"):
        simulate_request(loop="accumulate-subsample", generations=most + 1, **kw)
    with pytest.raises(ParameterError, match=r"^n_ini must be at most"):
        simulate_request(loop="accumulate-subsample", n_ini=10**7, generations=2, **kw)


# --- n_e over generations -------------------------------------------------------------
def test_every_mean_in_the_rows_has_its_standard_error_and_interval():
    s = ess.simulate(d=2, n_s=10, loop="accumulate", chains=20, generations=3)
    for row in s.rows:
        means = [k[:-5] for k in row if k.endswith("_mean")]
        assert len(means) == 6
        for name in means:
            assert f"{name}_se" in row and f"{name}_ci" in row
            lo, hi = row[f"{name}_ci"]
            assert lo <= row[f"{name}_mean"] <= hi
        assert {"n_e", "n_e_ci", "n_e_over_n_r", "n_e_over_n_r_ci", "n_e_note"} <= set(row)
    cols = set(s.to_frame().columns)
    assert {"dist_ci_low", "dist_ci_high", "n_e_ci_low", "n_e_ci_high"} <= cols
    assert not any(c.endswith("_ci") for c in cols)


def test_n_e_at_generation_one_covers_n_ini():
    """Generation 1 is a fit on n_ini real samples, so E dist(G^1, P_r) = f(n_ini): the
    95% interval of n_e(1) covers n_ini in 95% of seeds. Over 200 seeds (d = 2, 100
    chains, n_ini = 40) at least 180 cover it (the count is Binomial(200, 0.95) when the
    intervals hold their level: 180 is 3.2 standard deviations below 190)."""
    covered = 0
    for seed in range(200):
        row = ess.simulate(d=2, n_r=40, n_s=10, loop="accumulate", chains=100, generations=1,
                           seed=seed).rows[0]
        lo, hi = row["n_e_ci"]
        covered += lo <= 40 <= hi
    assert covered >= 180, covered


@pytest.mark.parametrize("loop", ["fresh", "augmentation"])
def test_n_e_over_generations_converges_to_the_limit(loop):
    """The fresh and augmentation loops have a limit: E dist(G^t, P_r) at t = 30 (the
    second moments forget the start at rate (2/3)^2 per generation) matches estimate's
    limit within 4 combined standard errors, and the n_e(30) interval overlaps estimate's
    n_e interval."""
    kw = dict(d=1, n_r=20, n_s=40, lam=0.9, loop=loop, seed=3)
    r = ess.estimate(rel_precision=0.01, store=False, **kw)
    s = ess.simulate(chains=20000, generations=30, **kw)
    last = s.rows[-1]
    se = np.hypot(last["dist_se"], r.wd_se)
    assert abs(last["dist_mean"] - r.wd) <= 4 * se, (last["dist_mean"], r.wd, se)
    lo, hi = last["n_e_ci"]
    assert lo <= r.n_e_ci.high and r.n_e_ci.low <= hi


def test_replace_and_fully_synthetic_give_identical_numbers():
    kw = dict(d=3, n_r=10, n_s=10, lam=0.9, chains=30, generations=6, seed=2)
    a = ess.simulate(loop="replace", **kw)
    b = ess.simulate(loop="fully-synthetic", **kw)
    assert a.loop == b.loop == "fully-synthetic"
    assert a.to_frame().equals(b.to_frame())


def test_below_two_is_said_plainly():
    """The fully synthetic loop drifts away: its E dist exceeds f(2), and the rows say
    "below 2" (n_e None) instead of extrapolating; the text output says so too."""
    from ess.cli import simulate_text

    s = ess.simulate(n_r=10, n_s=3, loop="replace", chains=200, generations=40, seed=1)
    last = s.rows[-1]
    assert last["n_e"] is None and last["n_e_note"] == "below 2"
    assert last["n_e_over_n_r"] is None
    assert s.rows[0]["n_e"] is not None and s.rows[0]["n_e_note"] == ""
    assert "n_e below 2" in simulate_text(s)


def test_a_list_of_loops_gives_one_result_per_loop():
    """ess.simulate(loop=[...]): a SimulateGridResult, one SimulateResult per loop in the
    order given, each the same as simulating that loop alone; to_frame() stacks their
    rows after a loop column; the trajectories come back as a tuple."""
    kw = dict(d=2, n_r=8, n_s=6, chains=16, generations=4, seed=7)
    g, trajs = ess.simulate(loop=["accumulate", "replace"], return_trajectories=True, **kw)
    assert isinstance(g, ess.SimulateGridResult) and [r.loop for r in g] == [
        "accumulate", "fully-synthetic"]
    alone = ess.simulate(loop="accumulate", **kw)
    assert g[0].to_frame().equals(alone.to_frame())
    df = g.to_frame()
    assert list(df.columns[:2]) == ["loop", "generation"] and len(df) == 8
    assert len(trajs) == 2 and trajs[0].shape == (16, 4, 7)
    with pytest.raises(ParameterError, match="must not repeat") as e:
        ess.simulate(loop=["replace", "fully-synthetic"], **kw)
    assert e.value.name == "loop"
    with pytest.raises(ParameterError, match="loop must be one of"):
        ess.simulate(loop=["fresh", "hoard"], **kw)


# --- command line ---------------------------------------------------------------------
def test_cli_simulate_several_loops(tmp_path, capsys):
    import json

    from ess.cli import main

    out = tmp_path / "s.csv"
    assert main(["simulate", "--loop", "replace,accumulate,accumulate-subsample", "--d", "2",
                 "--n-r", "20", "--n-s", "20", "--chains", "30", "--generations", "5",
                 "--out", str(out), "--plot", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "fully-synthetic: generation 5" in text and "accumulate-subsample: generation 5" \
        in text and "n_e = " in text
    lines = out.read_text().splitlines()
    assert lines[0].startswith("loop,generation,dist_mean,dist_se,dist_ci_low")
    assert len(lines) == 1 + 3 * 5
    assert (tmp_path / "s.png").stat().st_size > 10_000
    assert main(["simulate", "--loop", "fresh,accumulate", "--chains", "10", "--generations",
                 "3", "--out", str(tmp_path / "s.json"), "--json", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["loop"] for r in data["loops"]] == ["fresh", "accumulate"]
    assert data["loops"][0]["rows"][0]["n_e_ci"][0] > 0
    rows = json.loads((tmp_path / "s.json").read_text())
    assert rows[0]["loop"] == "fresh" and len(rows) == 6


@pytest.mark.parametrize("argv,name", [
    (["simulate", "--loop", "fresh,hoard"], "loop must be one of"),
    (["simulate", "--loop", "replace,fully-synthetic"], "loop must not repeat"),
    (["estimate", "--loop", "accumulate"], "the accumulate loop has no stationary limit"),
    (["estimate", "--loop", "accumulate-subsample"], "use simulate"),
    (["simulate", "--loop", "accumulate-subsample", "--d", "100", "--n-s", "10000",
      "--chains", "1", "--jobs", "1", "--generations", "2000"], "generations must be at most"),
])
def test_cli_bad_loops_get_one_line_and_status_2(argv, name, capsys, tmp_path):
    from ess.cli import main

    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ess: error: ") and name in err and err.count("\n") == 1


def test_estimate_help_points_the_accumulate_loops_to_simulate(capsys):
    from ess.cli import main

    main(["estimate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "alias replace" in out and "accumulate loops have no limit: use simulate" in out
    main(["simulate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "fully-synthetic (alias replace) | accumulate | accumulate-subsample" in out


def test_simulate_plot_of_several_loops(tmp_path):
    from matplotlib.figure import Figure

    from ess import report

    g = ess.simulate(d=2, n_r=10, n_s=5, loop=["replace", "accumulate"], chains=20,
                     generations=30)
    fig = report.simulate_plot(g, tmp_path / "g.png")
    assert isinstance(fig, Figure) and (tmp_path / "g.png").stat().st_size > 10_000
    ax_ne, ax_tr = fig.axes[:2]
    assert ax_ne.get_yscale() == "log"
    assert {t.get_text() for t in ax_ne.get_legend().get_texts()} >= {"fully-synthetic",
                                                                      "accumulate"}


def test_quantiles_of_infinite_log_determinants():
    """d = 4 fits on n_ini = 3 real samples are singular: their log det is -inf in every
    chain, and so are its median and quantiles (not the nan of interpolating between two
    infinities); the mean has no standard error."""
    s = ess.simulate(d=4, n_r=3, n_s=2, loop="accumulate", chains=10, generations=2)
    row = s.rows[0]
    assert row["log_det_sigma_mean"] == row["log_det_sigma_median"] == -np.inf
    assert row["log_det_sigma_q05"] == row["log_det_sigma_q95"] == -np.inf
    assert np.isnan(row["log_det_sigma_se"])
    assert s.to_dict()["rows"][0]["log_det_sigma_se"] is None


@pytest.mark.parametrize("loop", ["accumulate", "accumulate-subsample"])
def test_the_benchmark_baseline_runs_the_same_loop(loop):
    """benchmarks/loops.py's per-sample NumPy chain is the loop ess simulates: mean w2sq at
    generations 1, 3 and 8 within 4.5 standard errors (Welch) over 600 chains each
    (d = 2, n_r = n_s = 20; the subsample is a strict one from generation 3 on)."""
    from benchmarks.loops import persample_chain

    R, G = 600, 8
    rng = np.random.default_rng(4)
    slow = np.array([persample_chain(rng, loop, 2, 20, 20, 0.9, G) for _ in range(R)])
    _, fast = ess.simulate(d=2, n_r=20, n_s=20, lam=0.9, loop=loop, chains=R, generations=G,
                           seed=4, return_trajectories=True)
    for t in (0, 2, 7):
        a, b = fast[:, t, 0], slow[:, t]
        se = np.sqrt(a.var(ddof=1) / R + b.var(ddof=1) / R)
        assert abs(a.mean() - b.mean()) <= 4.5 * se, (t, a.mean(), b.mean(), se)
