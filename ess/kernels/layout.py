"""Names of the last axes of the kernels' record arrays.

Plain module-level integers: Numba reads them as compile-time constants, so a
kernel indexing ``traj[v, r, REC_DIST]`` compiles to the same code as
``traj[v, r, 0]``. The kernels' cache is keyed by a hash of every file in
:mod:`ess.kernels` (:func:`ess.config.kernel_cache_dir`), this one included.

Three arrays use them:

* a chain's records ``traj[v, r, f]`` (configuration ``v``, recorded generation
  ``r``, field ``f``; :func:`ess.kernels.loops._run_chain`), and the whole
  trajectories ``out[chain, generation, f]`` of
  :func:`ess.kernels.loops._trajectory_chunk` and
  :func:`ess.kernels.accumulate._accumulate_chunk`: fields ``REC_*`` (the
  diagnostics from :data:`REC_DIAGNOSTICS` on only in whole trajectories);
* the limit data ``data[chain, v, q, half]`` of
  :func:`ess.kernels.loops._limit_chunk`: the window average of quantity ``q``
  over half ``half`` of the kept window;
* the reference samples ``out[sample, q]`` of
  :func:`ess.kernels.loops._reference_chunk`.

The quantities ``Q_*`` are the first :data:`QUANTITIES` record fields, in the
same order. ``Q_DIST`` is the value whose mean is wanted; the moments from
``Q_MEAN_DEV`` on are the control variates (their means are known exactly
where :mod:`ess.analytic` gives them), so ``data[:, v, Q_MEAN_DEV:Q_MEAN_DEV + k, :]``
holds the first ``k`` of them.
"""

#: The model's distance to ``P_r`` (``W2^2`` or ``W2``, as the metric says).
REC_DIST = 0
#: ``|mu - mu_r|^2``: squared distance of the model's mean from the reference mean.
REC_MEAN_DEV = 1
#: ``tr Sigma``: the model covariance's trace.
REC_TR_SIGMA = 2
#: ``tr Sigma^2``: the sum of the squared entries of the model covariance.
REC_TR_SIGMA_SQ = 3
#: ``mu[0]``: first coordinate of the model mean (a signed quantity, for plots).
REC_MU0 = 4
#: ``log det Sigma``: ``-inf`` when ``Sigma`` is singular to working precision
#: (a zero pivot of :func:`ess.kernels.sampling._chol_upper`).
REC_LOG_DET = 5
#: ``||Sigma - Sigma_r||_F``: the Frobenius distance of the model covariance to ``Sigma_r``.
REC_FROB_DEV = 6
#: The smallest eigenvalue of ``Sigma``.
REC_MIN_EIG = 7
#: Number of record fields.
REC_FIELDS = 8
#: The fields from here on (``REC_LOG_DET`` .. ``REC_MIN_EIG``) are diagnostics of the
#: trajectory path only: a kernel computes them when its record array is
#: :data:`REC_FIELDS` wide; the limit path passes a record array of this width
#: (the fields before them) and pays nothing for them.
REC_DIAGNOSTICS = REC_LOG_DET

#: Quantity of the limit data and reference samples: the distance.
Q_DIST = REC_DIST
#: Quantity: ``|mu - mu_r|^2`` (first control variate).
Q_MEAN_DEV = REC_MEAN_DEV
#: Quantity: ``tr Sigma`` (second control variate).
Q_TR_SIGMA = REC_TR_SIGMA
#: Quantity: ``tr Sigma^2`` (third control variate).
Q_TR_SIGMA_SQ = REC_TR_SIGMA_SQ
#: Number of quantities: the record fields before ``REC_MU0``.
QUANTITIES = 4

#: Halves of the kept window of the limit data: their averages are compared to
#: detect drift (a chain not yet stationary), and their mean is the chain's value.
HALVES = 2
