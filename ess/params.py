"""Parameters and the one validation layer shared by the CLI and the Python API.

Every check raises :class:`ParameterError` (a ``ValueError``) whose message names
the parameter and its allowed range; the CLI turns it into one line and exit
status 2.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ess import config, defaults
from ess.blas import single_thread

LOOPS = ("fresh", "augmentation", "fully-synthetic", "accumulate", "accumulate-subsample")
#: Other names of loop kinds: the literature calls the fully synthetic loop "replace".
LOOP_ALIASES = {"replace": "fully-synthetic"}
METRICS = ("w2sq", "w2")
COV_ESTIMATORS = ("unbiased", "mle")


class ParameterError(ValueError):
    """A parameter is outside its allowed range; the message names both.

    Parameters
    ----------
    name : str
        The parameter (its Python and JSON name, such as ``"n_s"``), so that the
        service can point at the field and the command line at the flag without
        parsing the message.
    message : str
        One sentence naming the parameter and its allowed range.
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[low, high]``.

    Strings holding an integer (``"100"``, ``"1e3"``) are accepted, so the CLI
    and JSON share this check. Non-integers are rejected, never rounded.
    """
    rng = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    v = value
    if isinstance(v, str):
        s = v.strip()
        try:
            v = int(s)
        except ValueError:
            try:
                v = float(s)
            except ValueError:
                raise ParameterError(name, f"{name} must be {rng}, got {value!r}") from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ParameterError(name, f"{name} must be {rng}, got {value!r}")
    if isinstance(v, numbers.Integral):
        iv = int(v)
    else:
        fv = float(v)
        if not math.isfinite(fv) or fv != math.floor(fv):
            raise ParameterError(name, f"{name} must be {rng}, got {value!r}")
        iv = int(fv)
    if iv < low or (high is not None and iv > high):
        raise ParameterError(name, f"{name} must be {rng}, got {iv}")
    return iv


def check_float(name: str, value, low: float, high: float | None = None,
                low_open: bool = False) -> float:
    """Return ``value`` as a finite ``float`` in ``[low, high]`` (or ``(low, high]``)."""
    left = "(" if low_open else "["
    rng = f"a number in {left}{low}, {high}]" if high is not None else (
        f"a number > {low}" if low_open else f"a number >= {low}")
    v = value
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise ParameterError(name, f"{name} must be {rng}, got {value!r}") from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ParameterError(name, f"{name} must be {rng}, got {value!r}")
    fv = float(v)
    bad_low = fv <= low if low_open else fv < low
    if not math.isfinite(fv) or bad_low or (high is not None and fv > high):
        raise ParameterError(name, f"{name} must be {rng}, got {value!r}")
    return fv + 0.0   # -0.0 becomes 0.0: the same value, one store key


def check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(name, f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_loop(value) -> str:
    """A loop kind of :data:`LOOPS`, or an alias of one (:data:`LOOP_ALIASES`)."""
    if isinstance(value, str) and value in LOOP_ALIASES:
        return LOOP_ALIASES[value]
    if not isinstance(value, str) or value not in LOOPS:
        names = ", ".join(LOOPS) + "".join(f", {k} (= {v})" for k, v in LOOP_ALIASES.items())
        raise ParameterError("loop", f"loop must be one of {names}; got {value!r}")
    return value


def check_memory(value) -> int | str:
    """``memory`` is a positive integer or ``"all"``."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    return check_int("memory", value, 1, config.MAX_GENERATIONS)


def lam_from_guidance(w) -> float:
    """Sampling bias of classifier-free guidance ``w >= 0``: ``lam = 1 / (1 + w)``."""
    return 1.0 / (1.0 + check_float("guidance", w, 0.0))


def check_seed(value) -> int:
    """A seed is an integer in ``[0, 2**63 - 1]``."""
    return check_int("seed", value, 0, 2**63 - 1)


def check_jobs(value) -> int:
    """``n_jobs``: ``None`` or ``-1`` for every core, else an integer >= 1."""
    if value is None or (isinstance(value, str) and value.strip() == "-1") or (
            not isinstance(value, (str, bool)) and value == -1):
        return config.default_jobs()
    try:
        return check_int("n_jobs", value, 1, 1024)
    except ParameterError:
        raise ParameterError("n_jobs", "n_jobs must be an integer in [1, 1024], or -1 for every "
                             f"core; got {value!r}") from None


def _as_array(name: str, value, what: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(name, f"{name} must be {what}") from None


def infer_d(d, mu_r=None, sigma_r=None) -> int:
    """The dimension: ``d`` when given, else the length of ``sigma_r`` or ``mu_r``,
    else the default (:data:`ess.defaults.D`)."""
    if d is not None:
        return check_int("d", d, 1, config.MAX_D)
    for name, v in (("sigma_r", sigma_r), ("mu_r", mu_r)):
        if v is not None:
            a = _as_array(name, v, "an array of numbers")
            if a.ndim in (1, 2) and a.shape[0] >= 1:
                return check_int("d", a.shape[0], 1, config.MAX_D)
    return defaults.D


#: Reference distributions checked last (:func:`check_reference`), most recent last: a
#: table or heatmap repeats one ``sigma_r`` in every cell, and its factorisation (an
#: eigen-decomposition at large ``d``) would otherwise cost more than the rest of the
#: grid's checks together (a 500-cell ``d = 100`` table: 5.9 of its 7.1 s).
_CHECKED_REFERENCES: OrderedDict[tuple, tuple[np.ndarray, np.ndarray, bool, float]] = \
    OrderedDict()
_CHECKED_REFERENCES_KEPT = 8
_checked_lock = threading.Lock()


def check_reference(d: int, mu_r=None,
                    sigma_r=None) -> tuple[np.ndarray, np.ndarray, bool, float]:
    """Validate the reference distribution ``N(mu_r, Sigma_r)`` (:func:`_check_reference`),
    remembering the last few checked ones by their bytes, so that the cells of a grid
    check and factor their ``sigma_r`` once. Returns fresh copies each time."""
    if sigma_r is None:
        return _check_reference(d, mu_r, sigma_r)
    what = f"a symmetric positive-definite {d}x{d} matrix (or its {d} diagonal entries)"
    S = _as_array("sigma_r", sigma_r, what)
    mu = None if mu_r is None else _as_array("mu_r", mu_r, f"a vector of {d} finite numbers")
    key = (d, S.shape, hashlib.blake2b(np.ascontiguousarray(S).tobytes()).digest(),
           None if mu is None else (mu.shape, mu.tobytes()))
    with _checked_lock:
        hit = _CHECKED_REFERENCES.get(key)
        if hit is not None:
            _CHECKED_REFERENCES.move_to_end(key)
    if hit is None:
        hit = _check_reference(d, mu, S)
        with _checked_lock:
            _CHECKED_REFERENCES[key] = hit
            while len(_CHECKED_REFERENCES) > _CHECKED_REFERENCES_KEPT:
                _CHECKED_REFERENCES.popitem(last=False)
    mu_c, L, identity, scale = hit
    return mu_c.copy(), L.copy(), identity, scale


def _check_reference(d: int, mu_r=None,
                     sigma_r=None) -> tuple[np.ndarray, np.ndarray, bool, float]:
    """Validate the reference distribution ``N(mu_r, Sigma_r)``.

    The loop is translation invariant and ``n_e`` is invariant under a rescaling
    of ``Sigma_r``, so the kernels always run with ``mu_r = 0`` and the
    normalised ``Sigma_r / s``, ``s = tr(Sigma_r) / d``; distances are scaled
    back afterwards. This keeps the arithmetic exact-ish whatever the user's
    units (a mean of 1e17 or a covariance of 1e-200).

    Returns
    -------
    mu_r : ndarray, shape (d,)
        The reference mean as given.
    L : ndarray, shape (d, d)
        Lower Cholesky factor of the normalised ``Sigma_r / s``.
    identity : bool
        ``Sigma_r`` is a multiple of the identity.
    scale : float
        ``s = tr(Sigma_r) / d``.

    Raises
    ------
    ParameterError
        Naming ``mu_r`` or ``sigma_r``: a wrong length, a non-finite entry, a
        non-positive diagonal entry (by its index), asymmetry or singularity.
    """
    if mu_r is None:
        mu = np.zeros(d)
    else:
        mu = _as_array("mu_r", mu_r, f"a vector of {d} finite numbers").reshape(-1)
        if mu.shape != (d,):
            raise ParameterError("mu_r", f"mu_r must be a vector of d = {d} numbers; "
                                 f"got {mu.shape[0]}")
        if not np.all(np.isfinite(mu)):
            raise ParameterError("mu_r", "mu_r must have finite entries")
    if sigma_r is None:
        return mu, np.eye(d), True, 1.0
    what = f"a symmetric positive-definite {d}x{d} matrix (or its {d} diagonal entries)"
    S = _as_array("sigma_r", sigma_r, what)
    if S.ndim == 1:
        if S.shape != (d,):
            raise ParameterError("sigma_r", f"sigma_r must be {what}; got {S.shape[0]} "
                                 f"diagonal entries for d = {d}")
        if not np.all(np.isfinite(S)):
            raise ParameterError("sigma_r", "sigma_r must have finite entries")
        bad = np.flatnonzero(~(S > 0.0))
        if bad.size:
            raise ParameterError("sigma_r", f"sigma_r must be positive definite: its diagonal "
                                 f"entry {bad[0] + 1} is {S[bad[0]]:g} (every entry must be > 0)")
        S = np.diag(S)
    if S.shape != (d, d):
        raise ParameterError("sigma_r", f"sigma_r must be {what}; got shape {S.shape}")
    if not np.all(np.isfinite(S)):
        raise ParameterError("sigma_r", "sigma_r must have finite entries")
    diag = np.diag(S)
    bad = np.flatnonzero(~(diag > 0.0))
    if bad.size:
        i = bad[0]
        raise ParameterError("sigma_r", f"sigma_r must be positive definite: its diagonal entry "
                             f"({i + 1}, {i + 1}) is {diag[i]:g} (must be > 0)")
    scale = float(np.trace(S)) / d
    if not (SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]):
        raise ParameterError("sigma_r", f"sigma_r must have tr(sigma_r)/d in "
                             f"[{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}]; got {scale:.3g}")
    S = S / scale
    if not np.allclose(S, S.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(S).max())):
        raise ParameterError("sigma_r", "sigma_r must be symmetric positive-definite; "
                             "it is not symmetric")
    S = 0.5 * (S + S.T)
    # one BLAS thread: the factor's bits must not depend on a thread count (small
    # matrices are factored on one thread anyway)
    with single_thread(d >= config.LAPACK_MIN_D):
        try:
            L = np.linalg.cholesky(S)
        except np.linalg.LinAlgError:
            ev = np.linalg.eigvalsh(S) * scale
            raise ParameterError("sigma_r", "sigma_r must be symmetric positive-definite; "
                                 f"it has a non-positive eigenvalue ({ev.min():.3g})") from None
        ev = np.linalg.eigvalsh(S)
    if ev.min() <= 1e-12 * ev.max():
        raise ParameterError("sigma_r", "sigma_r must be symmetric positive-definite; it is "
                             "singular to working precision (eigenvalues "
                             f"{ev.min() * scale:.3g}..{ev.max() * scale:.3g})")
    identity = bool(np.allclose(S, np.eye(d), rtol=0.0, atol=1e-15))
    if identity:
        L = np.eye(d)
    return mu, np.ascontiguousarray(L), identity, scale


def reference_from_data(data) -> tuple[np.ndarray, np.ndarray]:
    """``mu_r`` and ``Sigma_r`` from a user's real features: their sample mean and
    sample covariance (divisor ``n - 1``).

    Parameters
    ----------
    data : array_like or path
        An ``n x d`` array of real numbers (rows are samples, say Inception
        features), or the path of a ``.npy`` file holding one.

    Returns
    -------
    (ndarray, ndarray)
        The mean, shape ``(d,)``, and the covariance, shape ``(d, d)``; whether the
        covariance is positive definite is checked by :func:`check_reference`.

    Raises
    ------
    ParameterError
        Naming ``reference_data``: an unreadable file or one that holds no single
        array, a shape other than ``n x d`` with ``2 <= d <= MAX_D`` and ``n > d``
        (fewer rows give a singular covariance), a non-real or non-finite entry.
    """
    name = "reference_data"
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ParameterError(name, f"{name} must be a readable .npy file of an n x d "
                                 f"array; cannot read {path!r} ({e})") from None
        if not isinstance(loaded, np.ndarray):
            loaded.close()
            raise ParameterError(name, f"{name} must be a .npy file of one n x d array; "
                                 f"{path!r} is an archive of several (.npz)")
        data = loaded
    try:
        X = np.asarray(data)
    except (TypeError, ValueError) as e:
        raise ParameterError(name, f"{name} must be an n x d array of real numbers ({e})") \
            from None
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number)
                                 or X.dtype == np.bool_) or np.iscomplexobj(X):
        raise ParameterError(name, f"{name} must be an n x d array of real numbers; "
                             f"got dtype {X.dtype}")
    if X.ndim != 2:
        raise ParameterError(name, f"{name} must be an n x d array (one sample per row); "
                             f"got shape {X.shape}")
    n, d = X.shape
    if not 1 <= d <= config.MAX_D:
        raise ParameterError(name, f"{name} must have between 1 and {config.MAX_D} columns "
                             f"(the dimension d); got {d}")
    if n <= d:
        raise ParameterError(name, f"{name} must have more rows (samples) than columns (d): "
                             f"the covariance of n <= d samples is singular; got n = {n}, "
                             f"d = {d}")
    X = X.astype(float, copy=False)
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        i, j = bad[0]
        raise ParameterError(name, f"{name} must have finite entries; row {i + 1}, column "
                             f"{j + 1} is {X[i, j]!r}")
    mu = X.mean(axis=0)
    Xc = X - mu
    with single_thread():   # the same bits whatever the BLAS thread count
        cov = (Xc.T @ Xc) / (n - 1)
    return mu, 0.5 * (cov + cov.T)


def check_reference_data(d, data) -> tuple[int, np.ndarray, np.ndarray, bool, float]:
    """:func:`reference_from_data` then :func:`check_data_moments`."""
    return check_data_moments(d, *reference_from_data(data))


def check_data_moments(d, mu: np.ndarray,
                       cov: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, bool, float]:
    """:func:`check_reference` of the moments of ``reference_data``, with errors
    naming ``reference_data`` (and ``d`` when it disagrees with the data's columns).

    Returns
    -------
    tuple
        ``d`` and what :func:`check_reference` returns.
    """
    cols = mu.shape[0]
    if d is not None and check_int("d", d, 1, config.MAX_D) != cols:
        raise ParameterError("d", f"d must be the number of columns of reference_data "
                             f"({cols}), or be left out; got {d}")
    const = np.flatnonzero(np.diag(cov) <= 0.0)
    if const.size:
        raise ParameterError("reference_data", "reference_data must have a positive-definite "
                             f"covariance; its column {const[0] + 1} is constant")
    try:
        return (cols, *check_reference(cols, mu, cov))
    except ParameterError as e:
        raise ParameterError("reference_data", "reference_data must have a positive-definite "
                             f"covariance (no column a linear combination of others): "
                             f"{str(e).split('; ', 1)[-1]}") from None


def matrix_digest(a: np.ndarray) -> str:
    """A short, stable name of a matrix's exact values, for cache keys: a ``d x d``
    matrix written out would make keys of megabytes at large ``d``."""
    a = np.ascontiguousarray(a, dtype="<f8")
    return f"{a.shape[0]}x{a.shape[1]}:" + hashlib.sha256(a.tobytes()).hexdigest()[:32]


#: Accepted range of ``tr(Sigma_r) / d``: the kernels run on ``Sigma_r`` divided by
#: it, and distances are multiplied back; beyond this range that product would
#: overflow or underflow a double.
SCALE_RANGE = (1e-150, 1e150)


@dataclass(frozen=True)
class LoopParams:
    """Validated parameters of one loop configuration.

    Build it with :func:`loop_params`, which checks every field.
    """

    d: int
    n_r: int
    n_s: int
    lam: float
    n_ini: int
    loop: str
    memory: int | str
    metric: str
    cov_estimator: str
    mu_r: np.ndarray = field(repr=False)
    L_r: np.ndarray = field(repr=False)
    sr_identity: bool = True
    scale: float = 1.0

    @property
    def sigma_r(self) -> np.ndarray:
        """The reference covariance ``scale * L_r L_r^T``."""
        return self.scale * (self.L_r @ self.L_r.T)

    @property
    def dist_factor(self) -> float:
        """Factor from normalised-unit distances to the user's units."""
        return self.scale if self.metric == "w2sq" else math.sqrt(self.scale)

    def key(self) -> dict:
        """Everything that changes the answer, for cache keys and reports."""
        return {
            "d": self.d, "n_r": self.n_r, "n_s": self.n_s, "lam": self.lam,
            "n_ini": self.n_ini, "loop": self.loop, "memory": self.memory,
            "metric": self.metric, "cov_estimator": self.cov_estimator,
            "mu_r": self.mu_r.tolist(), "L_r": matrix_digest(self.L_r), "scale": self.scale,
        }


def check_exclusive_lam(lam, guidance) -> None:
    """``lam`` and ``guidance`` (one value each, or one grid axis each) exclude each other."""
    if lam is not None and guidance is not None:
        raise ParameterError("guidance", "guidance and lam exclude each other: give one of them")


def check_lam(lam=None, guidance=None, default: float = defaults.LAM) -> float:
    """The sampling bias from ``lam`` or from a guidance factor ``w`` (not both)."""
    check_exclusive_lam(lam, guidance)
    if guidance is not None:
        return lam_from_guidance(guidance)
    return check_float("lam", default if lam is None else lam, 0.0, 1.0)


def loop_params(d=None, n_r=defaults.N_R, n_s=defaults.N_S, lam=None, n_ini=None,
                loop=defaults.LOOP, memory=defaults.MEMORY, metric=defaults.METRIC,
                cov_estimator=defaults.COV_ESTIMATOR, mu_r=None, sigma_r=None,
                guidance=None, lam_default: float = defaults.LAM,
                reference_data=None) -> LoopParams:
    """Validate one loop configuration (docs/contract.md, sections 1 and 5).

    ``d = None`` takes the dimension from ``sigma_r`` or ``mu_r`` when given
    (:func:`infer_d`), or from ``reference_data`` (:func:`check_reference_data`),
    which gives both and excludes them.

    Raises
    ------
    ParameterError
        Naming the first parameter outside its allowed range.
    """
    if reference_data is not None:
        if mu_r is not None or sigma_r is not None:
            raise ParameterError("reference_data", "reference_data gives mu_r and sigma_r: "
                                 "give either reference_data or mu_r/sigma_r, not both")
        d, *ref = check_reference_data(d, reference_data)
    else:
        d = infer_d(d, mu_r, sigma_r)
    loop = check_loop(loop)
    n_r = check_int("n_r", n_r, 2, config.MAX_COUNT)
    min_ns = 2 if loop == "fully-synthetic" else 0
    n_s = check_int("n_s", n_s, min_ns, config.MAX_COUNT)
    lam = check_lam(lam, guidance, lam_default)
    if n_ini is None:
        n_ini = n_r
    n_ini = check_int("n_ini", n_ini, 2, config.MAX_COUNT)
    if loop == "augmentation" and n_ini != n_r:
        raise ParameterError("n_ini", f"n_ini must equal n_r ({n_r}) for loop 'augmentation': "
                             "the real set that trains G^1 is the fixed real set")
    memory = check_memory(memory)
    metric = check_choice("metric", metric, METRICS)
    cov_estimator = check_choice("cov_estimator", cov_estimator, COV_ESTIMATORS)
    if reference_data is not None:
        mu, L, ident, scale = ref
    else:
        mu, L, ident, scale = check_reference(d, mu_r, sigma_r)
    return LoopParams(d, n_r, n_s, lam, n_ini, loop, memory, metric, cov_estimator, mu, L, ident,
                      scale)


def parse_list(name: str, text: str) -> list[str]:
    """Split a comma-separated command-line list (``"0,50,200"``)."""
    items = [s.strip() for s in str(text).split(",")]
    if not items or any(s == "" for s in items):
        raise ParameterError(name, f"{name} must be a comma-separated list of values, got {text!r}")
    return items


def check_grid_axis(name: str, values, check) -> list:
    """Validate every value of a grid axis with ``check`` and refuse repeats."""
    vals = [check(v) for v in values]
    if len(set(vals)) != len(vals):
        raise ParameterError(name, f"{name} must not repeat values, got {list(values)!r}")
    if not vals:
        raise ParameterError(name, f"{name} must have at least one value")
    return vals
