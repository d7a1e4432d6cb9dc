"""BLAS and LAPACK inside the kernels, for large ``d``: SciPy's Cython interface.

From ``d =`` :data:`ess.config.LAPACK_MIN_D` on, the ``O(d^3)`` steps of a
generation (the Cholesky factor, the Wishart products and the eigenvalues of the
distance) call the BLAS and LAPACK that SciPy ships (:mod:`scipy.linalg.cython_blas` and
:mod:`scipy.linalg.cython_lapack`, the library Numba's own ``np.linalg`` uses).

How the kernels reach them: each routine's address is registered with LLVM under
a name of ess's own (``ess_dsyrk``, ...) when this module is imported, and the
kernels call that name (:class:`numba.types.ExternalFunction`). The compiled
code refers to the name, not to an address, so Numba's on-disk cache stays valid
across processes: the name is bound again at every import, before any kernel
is loaded.

The two Cython modules are loaded from their files, not through ``import
scipy.linalg``, whose package import costs 0.2 to 0.3 s that a ``d = 1`` answer
would pay for nothing (Numba's own start-up imports ``scipy.linalg.cython_blas``
too, and then finds it loaded).

Matrices here are row-major (C order), BLAS's are column-major (Fortran): a
row-major array is, to BLAS, its own transpose with leading dimension its row
stride. Each wrapper below states the row-major operation it performs.

Results do not depend on the number of BLAS threads only if that number is the
same: :func:`ess.chains.blas_single_thread` holds it to one while chains run.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys

import numpy as np
from llvmlite import binding as _llvm
from numba import njit, types
from numba.extending import get_cython_function_address

from ess.config import JIT, LAPACK_MIN_D  # noqa: F401  (the kernels' switch)

#: Block size of :func:`_chol_upper_blocked`.
CHOL_BLOCK = 64


def _load_cython_module(name: str):
    """``scipy.linalg.<name>``, loaded from its file without importing ``scipy.linalg``."""
    full = f"scipy.linalg.{name}"
    if full in sys.modules:
        return sys.modules[full]
    if "scipy.linalg" in sys.modules:
        return importlib.import_module(full)
    scipy_spec = importlib.util.find_spec("scipy")
    for folder in scipy_spec.submodule_search_locations or ():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            spec = importlib.util.spec_from_file_location(full, f"{folder}/linalg/{name}{suffix}")
            if spec is None or not _exists(spec.origin):
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[full] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[full]
                raise
            return module
    return importlib.import_module(full)   # an unusual layout: the ordinary import


def _exists(path: str | None) -> bool:
    import os

    return path is not None and os.path.isfile(path)


_VOIDP = types.voidptr


def _bind(module: str, name: str, n_args: int):
    """An external function ``ess_<name>`` of ``n_args`` pointers: the Fortran-style
    routine ``name`` of SciPy's Cython module ``module``."""
    _load_cython_module(module)
    symbol = f"ess_{name}"
    _llvm.add_symbol(symbol, get_cython_function_address(f"scipy.linalg.{module}", name))
    return types.ExternalFunction(symbol, types.void(*([_VOIDP] * n_args)))


_dsyrk = _bind("cython_blas", "dsyrk", 10)
_dtrmm = _bind("cython_blas", "dtrmm", 11)
_dtrsm = _bind("cython_blas", "dtrsm", 11)
_dsytrd = _bind("cython_lapack", "dsytrd", 10)
_dsterf = _bind("cython_lapack", "dsterf", 4)

_L, _U, _N, _T, _R = ord("L"), ord("U"), ord("N"), ord("T"), ord("R")


@njit(**JIT)
def _ld(a):
    """Leading dimension, to BLAS, of a row-major matrix (view): its row stride."""
    return max(1, a.strides[0] // a.itemsize)


@njit(**JIT)
def _syrk_rows(X, C, alpha, beta):
    """``C = alpha X X^T + beta C`` on the upper triangle of ``C`` (row-major; the
    lower triangle is not touched), ``X`` of shape ``(n, k)`` with unit column stride."""
    n, k = X.shape
    if n == 0:
        return
    # row-major upper = column-major lower; X^T is what BLAS sees
    ch = np.array([_L, _T], dtype=np.uint8)
    iv = np.array([n, k, _ld(X), _ld(C)], dtype=np.int32)
    fv = np.array([alpha, beta])
    _dsyrk(ch[0:].ctypes, ch[1:].ctypes, iv[0:].ctypes, iv[1:].ctypes, fv[0:].ctypes,
           X.ctypes, iv[2:].ctypes, fv[1:].ctypes, C.ctypes, iv[3:].ctypes)


@njit(**JIT)
def _syrk_cols(X, C, alpha, beta):
    """``C = alpha X^T X + beta C`` on the upper triangle of ``C`` (row-major), ``X``
    of shape ``(k, n)`` with unit column stride."""
    k, n = X.shape
    if n == 0:
        return
    ch = np.array([_L, _N], dtype=np.uint8)
    iv = np.array([n, k, _ld(X), _ld(C)], dtype=np.int32)
    fv = np.array([alpha, beta])
    _dsyrk(ch[0:].ctypes, ch[1:].ctypes, iv[0:].ctypes, iv[1:].ctypes, fv[0:].ctypes,
           X.ctypes, iv[2:].ctypes, fv[1:].ctypes, C.ctypes, iv[3:].ctypes)


@njit(**JIT)
def _trmm_ut_left(U, B):
    """``B = U^T B`` in place: ``U`` upper triangular ``(d, d)``, ``B`` of shape ``(d, m)``."""
    d, m = B.shape
    if d == 0 or m == 0:
        return
    # column-major: B^T = B^T U, with U^T lower -> B := B op(A), A lower, op = transpose
    ch = np.array([_R, _L, _T, _N], dtype=np.uint8)
    iv = np.array([m, d, _ld(U), _ld(B)], dtype=np.int32)
    fv = np.array([1.0])
    _dtrmm(ch[0:].ctypes, ch[1:].ctypes, ch[2:].ctypes, ch[3:].ctypes, iv[0:].ctypes,
           iv[1:].ctypes, fv.ctypes, U.ctypes, iv[2:].ctypes, B.ctypes, iv[3:].ctypes)


@njit(**JIT)
def _trmm_lower_right(L, B):
    """``B = B L`` in place: ``L`` lower triangular ``(d, d)``, ``B`` of shape ``(m, d)``."""
    m, d = B.shape
    if d == 0 or m == 0:
        return
    # column-major: B^T = L^T B^T, with L^T upper -> B := op(A) B, A upper, op = none
    ch = np.array([_L, _U, _N, _N], dtype=np.uint8)
    iv = np.array([d, m, _ld(L), _ld(B)], dtype=np.int32)
    fv = np.array([1.0])
    _dtrmm(ch[0:].ctypes, ch[1:].ctypes, ch[2:].ctypes, ch[3:].ctypes, iv[0:].ctypes,
           iv[1:].ctypes, fv.ctypes, L.ctypes, iv[2:].ctypes, B.ctypes, iv[3:].ctypes)


@njit(**JIT)
def _trmm_lt_left(L, B):
    """``B = L^T B`` in place: ``L`` lower triangular ``(d, d)``, ``B`` of shape ``(d, m)``."""
    d, m = B.shape
    if d == 0 or m == 0:
        return
    # column-major: B^T = B^T L, with L^T upper -> B := B op(A), A upper, op = transpose
    ch = np.array([_R, _U, _T, _N], dtype=np.uint8)
    iv = np.array([m, d, _ld(L), _ld(B)], dtype=np.int32)
    fv = np.array([1.0])
    _dtrmm(ch[0:].ctypes, ch[1:].ctypes, ch[2:].ctypes, ch[3:].ctypes, iv[0:].ctypes,
           iv[1:].ctypes, fv.ctypes, L.ctypes, iv[2:].ctypes, B.ctypes, iv[3:].ctypes)


@njit(**JIT)
def _trsm_ut_left(U, B):
    """``B = U^{-T} B`` in place (solves ``U^T Y = B``): ``U`` upper triangular
    ``(k, k)`` with a non-zero diagonal, ``B`` of shape ``(k, m)``."""
    k, m = B.shape
    if k == 0 or m == 0:
        return
    # column-major: Y^T = B^T U^{-1}, with U^T lower -> B := B op(A)^{-1}, op = transpose
    ch = np.array([_R, _L, _T, _N], dtype=np.uint8)
    iv = np.array([m, k, _ld(U), _ld(B)], dtype=np.int32)
    fv = np.array([1.0])
    _dtrsm(ch[0:].ctypes, ch[1:].ctypes, ch[2:].ctypes, ch[3:].ctypes, iv[0:].ctypes,
           iv[1:].ctypes, fv.ctypes, U.ctypes, iv[2:].ctypes, B.ctypes, iv[3:].ctypes)


@njit(**JIT)
def _mirror_upper(S):
    """Copy the upper triangle of the row-major ``S`` into its lower triangle."""
    d = S.shape[0]
    for i in range(d):
        for j in range(i):
            S[i, j] = S[j, i]


@njit(**JIT)
def _chol_upper_blocked(A, U, tol, nb):
    """Upper Cholesky factor ``U`` (``A = U^T U``) of a symmetric positive
    semi-definite matrix, by blocks of ``nb`` rows (level-3 BLAS).

    Right-looking: the ``nb x nb`` diagonal block is factored by plain loops, the
    rest of its block row solved by ``dtrsm``, and the trailing matrix updated by
    ``dsyrk``. A pivot at or below ``tol`` gives a zero row, as in
    :func:`ess.kernels.sampling._chol_upper`: its diagonal entry is taken as 1 for
    the solve and the row is zeroed after it (its solved entries are rounding
    residues, and the zero row removes them from every later update).

    Parameters
    ----------
    A : ndarray, shape (d, d)
        Symmetric positive semi-definite (only the lower triangle is read).
    U : ndarray, shape (d, d)
        Output; overwritten with the upper-triangular factor (zeros below).
    tol : float
        Pivots at or below it count as zero.
    nb : int
        Block size.
    """
    d = A.shape[0]
    for i in range(d):
        for j in range(i):
            U[i, j] = 0.0
        for j in range(i, d):
            U[i, j] = A[j, i]
    zero = np.zeros(nb, dtype=np.bool_)
    for k0 in range(0, d, nb):
        k1 = min(k0 + nb, d)
        for k in range(k0, k1):
            s = U[k, k]
            if s <= tol:
                zero[k - k0] = True
                for j in range(k, k1):
                    U[k, j] = 0.0
                continue
            zero[k - k0] = False
            r = np.sqrt(s)
            U[k, k] = r
            for j in range(k + 1, k1):
                U[k, j] /= r
            for i in range(k + 1, k1):
                a = U[k, i]
                for j in range(i, k1):
                    U[i, j] -= a * U[k, j]
        if k1 == d:
            break
        for k in range(k0, k1):
            if zero[k - k0]:
                U[k, k] = 1.0
        _trsm_ut_left(U[k0:k1, k0:k1], U[k0:k1, k1:])
        for k in range(k0, k1):
            if zero[k - k0]:
                U[k, k] = 0.0
                for j in range(k1, d):
                    U[k, j] = 0.0
        _syrk_cols(U[k0:k1, k1:], U[k1:, k1:], -1.0, 1.0)


@njit(**JIT)
def _scatter_lapack(A, df, U, identity, S):
    """``S = U^T A A^T U`` for ``A[:, :df]`` (``d x df``: a lower-triangular Bartlett
    factor when ``df = d``, a standard normal matrix when ``df < d``), by ``dtrmm``
    (skipped when ``identity``) and ``dsyrk``; ``A`` is overwritten with ``U^T A``.

    Entries of ``A`` above the diagonal must be zero in the Bartlett case.
    """
    X = A[:, :df]
    if not identity:
        _trmm_ut_left(U, X)
    _syrk_rows(X, S, 1.0, 0.0)
    _mirror_upper(S)


@njit(**JIT)
def _sym_eigvals_lapack(a, w):
    """Eigenvalues of a symmetric matrix (both triangles; destroyed) into ``w``
    (shape ``(n,)``): LAPACK's ``dsytrd`` (Householder tridiagonalisation,
    blocked) then ``dsterf`` (Pal-Walker-Kahan QL, as
    :func:`ess.kernels.distance._tridiagonal_eigvals`). Scaled to a largest entry
    of 1 first, as :func:`ess.kernels.distance._sym_eigvals` does."""
    n = a.shape[0]
    amax = 0.0
    for i in range(n):
        for j in range(n):
            if abs(a[i, j]) > amax:
                amax = abs(a[i, j])
    if amax == 0.0:
        w[:] = 0.0
        return
    inv = 1.0 / amax
    for i in range(n):
        for j in range(n):
            a[i, j] *= inv
    lwork = 64 * n
    e = np.empty(n)
    tau = np.empty(n)
    work = np.empty(lwork)
    ch = np.array([_L], dtype=np.uint8)
    iv = np.array([n, _ld(a), lwork, 0], dtype=np.int32)
    _dsytrd(ch.ctypes, iv[0:].ctypes, a.ctypes, iv[1:].ctypes, w.ctypes, e.ctypes, tau.ctypes,
            work.ctypes, iv[2:].ctypes, iv[3:].ctypes)
    _dsterf(iv[0:].ctypes, w.ctypes, e.ctypes, iv[3:].ctypes)
    for i in range(n):
        w[i] *= amax
