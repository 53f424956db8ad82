"""Logistic IRT on sparse (instruction, item) correctness, and the full-benchmark estimates it gives.

Model (a crossed random-effects logistic regression, "1PL" in IRT terms):

    logit P(correct_ij) = b0 + gamma . x_i + u_i + beta_j,   u_i ~ N(0, tau_u^2),  beta_j ~ N(0, tau_b^2)

for instruction i (``x_i``: optional instruction covariates such as its collection, with a weak
prior) and item j. It is fitted by scikit-learn's L2-penalised LogisticRegression on one-hot
features: scaling a block of columns by ``s`` makes the penalty a N(0, s^2) prior on that block,
so the fit is the posterior mode (MAP). The prior scales ``tau_u`` and ``tau_b`` come from pairwise
moments (answers of one instruction to different items covary by the variance of instruction
accuracies; answers of different instructions to one item, by the variance of item easiness),
mapped to the logit scale by Gauss-Hermite quadrature. (The Laplace marginal likelihood, also
available, is nearly flat in ``tau_u`` with ~16 answers per instruction and underestimates it.)

Estimates of what a full run would have shown (every instruction on every item): the observed
answers are kept and the missing ones are imputed from the posterior predictive - parameters drawn
from the Laplace posterior (exact block algebra: items are conditionally independent given the
instruction-side parameters; items at their conditional mode), then correctness drawn given them. Every statistic
(per-instruction accuracy, group mean / std / quantiles / worst instruction, observed-vs-unobserved
gap) is computed per draw; the point estimate is its mean over draws and the interval its
percentiles. Drawing parameters (not plugging in the shrunk posterior mode) is what keeps the
spread across instructions honest: the mode pulls instructions together, the draws do not.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

GRID_TAU_U = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0)
GRID_TAU_B = (0.3, 0.6, 1.0, 1.5, 2.2, 3.0)
WEAK_PRIOR_SD = 3.0  # intercept and covariates: effectively unpenalised on the logit scale


@dataclass
class IRTConfig:
    """How to choose the prior scales and how long to optimise."""

    tau_u: float | None = None  # instruction effect prior sd; None = estimated (see tau_method)
    tau_b: float | None = None  # item effect prior sd; None = estimated
    tau_method: str = "moments"  # "moments" (pairwise covariances) | "evidence" (Laplace marginal likelihood)
    max_iter: int = 200


@dataclass
class Observations:
    """Sparse 0/1 outcomes: ``y[k]`` of instruction ``inst[k]`` on item ``item[k]``."""

    inst: np.ndarray  # (n_obs,) int in [0, n_inst)
    item: np.ndarray  # (n_obs,) int in [0, n_items)
    y: np.ndarray  # (n_obs,) float 0/1
    n_inst: int
    n_items: int
    covariates: np.ndarray | None = None  # (n_inst, n_cov) instruction-level features

    def __post_init__(self) -> None:
        self.inst = np.asarray(self.inst, dtype=np.int64)
        self.item = np.asarray(self.item, dtype=np.int64)
        self.y = np.asarray(self.y, dtype=float)
        if not (len(self.inst) == len(self.item) == len(self.y)):
            raise ValueError("inst, item and y must have the same length")
        if len(self.y) and not np.isin(self.y, (0.0, 1.0)).all():
            raise ValueError("IRT needs 0/1 outcomes")


@dataclass
class IRTFit:
    """Posterior mode and Laplace posterior of the model, on the scaled (prior N(0, 1)) parameters."""

    obs: Observations
    tau_u: float
    tau_b: float
    log_evidence: float
    w_small: np.ndarray  # [intercept, covariates..., u_1..u_m] in scaled units
    w_items: np.ndarray  # beta_j / tau_b
    small_scale: np.ndarray  # multiply a scaled small-block weight by this for the logit-scale value
    schur_chol: np.ndarray  # Cholesky factor of the small block's marginal posterior precision
    item_prec: np.ndarray  # diagonal posterior precision of the item block (given the small block)
    cross: sp.csr_matrix  # small x items block of the Hessian
    grid: list[dict] = field(default_factory=list)

    def small_design(self) -> np.ndarray:
        """(n_inst, n_small) unscaled design of the small block: [1, covariates, one-hot]."""
        return _small_design(self.obs)

    def instruction_logit(self, w_small: np.ndarray | None = None) -> np.ndarray:
        w = self.w_small if w_small is None else w_small
        return self.small_design() @ (w * self.small_scale)

    def item_logit(self, w_items: np.ndarray | None = None) -> np.ndarray:
        return (self.w_items if w_items is None else w_items) * self.tau_b


def _small_design(obs: Observations) -> np.ndarray:
    cov = obs.covariates if obs.covariates is not None else np.zeros((obs.n_inst, 0))
    return np.hstack([np.ones((obs.n_inst, 1)), cov, np.eye(obs.n_inst)])


def _fit_once(obs: Observations, tau_u: float, tau_b: float, cfg: IRTConfig):
    from sklearn.linear_model import LogisticRegression

    small = _small_design(obs)
    n_small = small.shape[1]
    scale = np.concatenate([np.full(n_small - obs.n_inst, WEAK_PRIOR_SD), np.full(obs.n_inst, tau_u)])
    rows = sp.csr_matrix(small * scale)[obs.inst]  # (n_obs, n_small)
    items = sp.csr_matrix((np.full(len(obs.y), tau_b), (np.arange(len(obs.y)), obs.item)),
                          shape=(len(obs.y), obs.n_items))
    x = sp.hstack([rows, items], format="csr")
    # C = 1: minimise 0.5 |w|^2 + sum(log-loss), the negative log posterior with w ~ N(0, I).
    # newton-cg (Hessian-vector products) converges in ~10 iterations here; lbfgs needs hundreds
    # with 14,000 item columns (50x slower at MMLU scale).
    clf = LogisticRegression(C=1.0, fit_intercept=False, solver="newton-cg", max_iter=cfg.max_iter, tol=1e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on tiny data: the evidence check below is what counts
        clf.fit(x, obs.y)
    w = clf.coef_[0]
    eta = x @ w
    p = 1.0 / (1.0 + np.exp(-eta))
    wt = p * (1.0 - p)
    # Hessian of the negative log posterior: I + X' diag(wt) X, split into small and item blocks.
    xs = rows
    h_ss = (xs.T @ xs.multiply(wt[:, None])).toarray() + np.eye(n_small)
    item_prec = 1.0 + tau_b ** 2 * np.bincount(obs.item, weights=wt, minlength=obs.n_items)
    cross = (xs.multiply((wt * tau_b)[:, None]).T @ sp.csr_matrix(
        (np.ones(len(obs.y)), (np.arange(len(obs.y)), obs.item)), shape=(len(obs.y), obs.n_items))).tocsr()
    schur = h_ss - (cross.multiply(1.0 / item_prec[None, :]) @ cross.T).toarray()
    chol = np.linalg.cholesky(schur)
    loglik = float(np.sum(obs.y * np.log(np.clip(p, 1e-300, None)) + (1 - obs.y) * np.log(np.clip(1 - p, 1e-300, None))))
    logdet = float(np.sum(np.log(item_prec)) + 2.0 * np.sum(np.log(np.diag(chol))))
    evidence = loglik - 0.5 * float(w @ w) - 0.5 * logdet
    return IRTFit(obs, tau_u, tau_b, evidence, w[:n_small].copy(), w[n_small:].copy(), scale, chol, item_prec, cross)


def _group_ids(obs: Observations) -> np.ndarray:
    """Instruction -> index of its covariate pattern (instructions sharing covariates share a mean)."""
    if obs.covariates is None or obs.covariates.shape[1] == 0:
        return np.zeros(obs.n_inst, dtype=np.int64)
    _, ids = np.unique(np.round(obs.covariates, 9), axis=0, return_inverse=True)
    return ids.reshape(-1)


def _pair_cov(keys: np.ndarray, r: np.ndarray, n_keys: int) -> float:
    """Mean of r_a * r_b over pairs of distinct observations that share a key (a U-statistic)."""
    s = np.bincount(keys, weights=r, minlength=n_keys)
    ss = np.bincount(keys, weights=r * r, minlength=n_keys)
    n = np.bincount(keys, minlength=n_keys).astype(float)
    pairs = float((n * (n - 1)).sum())
    return float((s * s - ss).sum() / pairs) if pairs > 0 else 0.0


def _gh(k: int = 24) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(k)  # weight exp(-x^2/2)
    return x, w / w.sum()


def moment_variances(obs: Observations) -> tuple[float, float, float]:
    """(mean, between-instruction variance, between-item variance) of accuracy, by pairwise moments.

    Two answers of the same instruction on different items covary by the variance of instruction
    accuracies (within a covariate pattern); two answers to the same item by different instructions
    covary by the variance of item easiness. Both U-statistics are unbiased whatever the design.
    """
    groups = _group_ids(obs)
    g_of_obs = groups[obs.inst]
    n_g = int(groups.max()) + 1
    mean_g = np.bincount(g_of_obs, weights=obs.y, minlength=n_g) / np.maximum(np.bincount(g_of_obs, minlength=n_g), 1)
    r = obs.y - mean_g[g_of_obs]
    return float(obs.y.mean()), _pair_cov(obs.inst, r, obs.n_inst), _pair_cov(obs.item, r, obs.n_items)


def moment_taus(obs: Observations, lo: float = 0.02, hi: float = 6.0) -> tuple[float, float]:
    """Logit-scale prior sds (tau_u, tau_b) whose implied accuracy variances match the moments."""
    from scipy.optimize import least_squares

    mean, v_inst, v_item = moment_variances(obs)
    mean = min(max(mean, 1e-3), 1 - 1e-3)
    x, w = _gh()

    def implied(params: np.ndarray) -> np.ndarray:
        b0, lu, lb = params
        tu, tb = np.exp(lu), np.exp(lb)
        p = 1.0 / (1.0 + np.exp(-(b0 + tu * x[:, None] + tb * x[None, :])))  # (u nodes, beta nodes)
        m = w @ p @ w
        by_inst = p @ w  # E over items, per instruction node
        by_item = w @ p
        return np.array([m - mean, w @ (by_inst - m) ** 2 - max(v_inst, 0.0), w @ (by_item - m) ** 2 - max(v_item, 0.0)])

    start = np.array([np.log(mean / (1 - mean)), np.log(0.3), np.log(1.0)])
    sol = least_squares(implied, start, bounds=([-20, np.log(lo), np.log(lo)], [20, np.log(hi), np.log(hi)]))
    return float(np.exp(sol.x[1])), float(np.exp(sol.x[2]))


def fit_irt(obs: Observations, cfg: IRTConfig | None = None) -> IRTFit:
    """MAP fit; prior scales from pairwise moments (default) or the Laplace evidence, unless fixed."""
    cfg = cfg or IRTConfig()
    if len(obs.y) == 0:
        raise ValueError("no observations to fit")
    if cfg.tau_method == "moments" and (cfg.tau_u is None or cfg.tau_b is None):
        tu, tb = moment_taus(obs)
        fit = _fit_once(obs, cfg.tau_u if cfg.tau_u is not None else tu, cfg.tau_b if cfg.tau_b is not None else tb, cfg)
        fit.grid = [{"tau_u": fit.tau_u, "tau_b": fit.tau_b, "log_evidence": fit.log_evidence, "method": "moments"}]
        return fit
    if cfg.tau_method not in ("moments", "evidence"):
        raise ValueError(f"tau_method must be 'moments' or 'evidence', got {cfg.tau_method!r}")
    grid_u = (cfg.tau_u,) if cfg.tau_u is not None else GRID_TAU_U
    grid_b = (cfg.tau_b,) if cfg.tau_b is not None else GRID_TAU_B
    tried = []
    # coordinate search over the grid: items first (with a middling instruction scale), then
    # instructions, then items again; the evidence is smooth and unimodal in practice.
    tau_u = grid_u[len(grid_u) // 2]
    tau_b = grid_b[len(grid_b) // 2]
    cache: dict[tuple[float, float], IRTFit] = {}

    def get(tu: float, tb: float) -> IRTFit:
        if (tu, tb) not in cache:
            cache[(tu, tb)] = _fit_once(obs, tu, tb, cfg)
            tried.append({"tau_u": tu, "tau_b": tb, "log_evidence": cache[(tu, tb)].log_evidence})
        return cache[(tu, tb)]

    for axis in ("b", "u", "b"):
        if axis == "b":
            tau_b = max(grid_b, key=lambda tb: get(tau_u, tb).log_evidence)
        else:
            tau_u = max(grid_u, key=lambda tu: get(tu, tau_b).log_evidence)
    best = get(tau_u, tau_b)
    best.grid = tried
    return best


@dataclass
class Draws:
    """Posterior-predictive draws of each instruction's accuracy over all items (n_draws x n_inst)."""

    acc: np.ndarray
    plugin: np.ndarray  # (n_inst,) observed answers + sum of model probabilities at the posterior mode


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _calibrate(eta_obs: np.ndarray, y_sum: float, iters: int = 30) -> np.ndarray:
    """Per row of ``eta_obs`` (draws x observed pairs), the logit shift that makes the expected
    number of correct observed answers equal the observed number (Newton on a monotone function)."""
    c = np.zeros(eta_obs.shape[0])
    for _ in range(iters):
        p = _sigmoid(eta_obs + c[:, None])
        f = p.sum(axis=1) - y_sum
        g = (p * (1 - p)).sum(axis=1)
        step = f / np.maximum(g, 1e-12)
        c -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return c


def posterior_predictive(fit: IRTFit, n_draws: int = 400, seed: int = 0, max_cells: int = 4_000_000,
                         item_noise: bool = False) -> Draws:
    """Accuracy of every instruction on every item: observed outcomes kept, the rest imputed.

    Per draw: the instruction-side parameters from their Laplace posterior marginal, the items at
    their conditional mode given them (``item_noise=True`` also draws the items' own noise: it is
    O(1/n) in an accuracy, like the Bernoulli noise, but where items are answered alike by every
    instruction - as LLMs do - their posterior is one-sided and its Gaussian approximation inflates
    the spread; on SmolLM2 answers it doubled the quantile errors), then the unseen answers, independent Bernoullis given the
    parameters (their sum drawn from its normal limit). Gaussian noise on the logit scale raises
    or lowers the mean probability through the curvature of the sigmoid (1-2 points overall, more
    at lower accuracy, which would also shrink the observed-unobserved gap), so each covariate
    pattern (e.g. each collection) gets one logit shift, the same for all draws, that makes the
    draws calibrated on that pattern's observed answers on average; each draw keeps its own
    level, so the uncertainty of the levels (and of the gap) stays in the intervals.
    """
    obs = fit.obs
    rng = np.random.default_rng(seed)
    m, n = obs.n_inst, obs.n_items
    obs_sum = np.bincount(obs.inst, weights=obs.y, minlength=m)
    design = fit.small_design()
    n_small = design.shape[1]
    # indicator (observed pairs x instructions): sums over each instruction's seen items
    owner = sp.csr_matrix((np.ones(len(obs.y)), (np.arange(len(obs.y)), obs.inst)), shape=(len(obs.y), m))
    theta0 = design @ (fit.w_small * fit.small_scale)
    beta0 = fit.item_logit()
    p0 = _sigmoid(theta0[:, None] + beta0[None, :])
    p0_seen = np.asarray(owner.T @ p0[obs.inst, obs.item]).ravel()
    plugin = (obs_sum + p0.sum(axis=1) - p0_seen) / n
    # parameter draws: small block N(mode, schur^-1) via the Cholesky factor L (schur = L L');
    # items given the small block: mean shifts by -D^-1 C' dw_small, sd 1/sqrt(D)
    cross_scaled = fit.cross.multiply(1.0 / fit.item_prec[None, :]).tocsr()  # (n_small x n_items)
    dw_small = np.linalg.solve(fit.schur_chol.T, rng.standard_normal((n_draws, n_small)).T).T
    theta = ((fit.w_small[None, :] + dw_small) * fit.small_scale[None, :]) @ design.T  # (draws, m)
    beta = (fit.w_items[None, :] - np.asarray(cross_scaled.T @ dw_small.T).T
            + item_noise * rng.standard_normal((n_draws, n)) / np.sqrt(fit.item_prec)[None, :]) * fit.tau_b  # (draws, n)
    groups = _group_ids(obs)
    g_of_obs = groups[obs.inst]
    y_sum_g = np.bincount(g_of_obs, weights=obs.y, minlength=int(groups.max()) + 1)
    chunk = max(1, min(n_draws, max_cells // max(1, len(obs.y))))
    for g in range(len(y_sum_g)):
        sel = g_of_obs == g
        shifts = np.concatenate([
            _calibrate(theta[a:a + chunk][:, obs.inst[sel]] + beta[a:a + chunk][:, obs.item[sel]], y_sum_g[g])
            for a in range(0, n_draws, chunk)])
        theta[:, groups == g] += float(shifts.mean())
    chunk = max(1, min(n_draws, max_cells // max(1, m * n)))
    acc = np.empty((n_draws, m))
    for start in range(0, n_draws, chunk):
        th, be = theta[start:start + chunk], beta[start:start + chunk]
        k = th.shape[0]
        p = _sigmoid(th[:, :, None] + be[:, None, :])  # (k, m, n)
        p_obs = p[:, obs.inst, obs.item]  # (k, n_obs)
        mu = p.sum(axis=2) - np.asarray(owner.T @ p_obs.T).T
        var = (p * (1 - p)).sum(axis=2) - np.asarray(owner.T @ (p_obs * (1 - p_obs)).T).T
        imputed = mu + np.sqrt(np.clip(var, 0, None)) * rng.standard_normal((k, m))
        acc[start:start + k] = np.clip((obs_sum[None, :] + imputed) / n, 0.0, 1.0)
    return Draws(acc, plugin)


def interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def naive_accuracy(obs: Observations) -> np.ndarray:
    """Each instruction's mean over its own items (NaN for an instruction with none)."""
    n = np.bincount(obs.inst, minlength=obs.n_inst).astype(float)
    s = np.bincount(obs.inst, weights=obs.y, minlength=obs.n_inst)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / n


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def group_stats(acc: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of ``acc`` (draws x instructions): mean, std (population), quantiles, min."""
    acc = np.atleast_2d(acc)
    out = {"mean": acc.mean(axis=1), "std": acc.std(axis=1), "min": acc.min(axis=1), "max": acc.max(axis=1)}
    qs = np.quantile(acc, QUANTILES, axis=1)
    for q, v in zip(QUANTILES, qs):
        out[f"q{int(round(100 * q)):02d}"] = v
    return out
