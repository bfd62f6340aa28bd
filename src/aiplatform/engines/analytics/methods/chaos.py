"""Non-linear dependence between columns, and Monte Carlo simulation of a formula over them.

Dependence: for each pair of numeric columns, Pearson r and Spearman rho (linear and monotone),
mutual information (scikit-learn's k-nearest-neighbour estimate), distance correlation
(Székely's, from the double-centred distance matrices) and Chatterjee's xi (scipy; the larger of
its two directions, since xi measures how well one column is a function of the other). A pair is
flagged ``nonlinear`` when its dependence is strong by distance correlation or mutual information
(and xi is significant, which guards small samples, where distance correlation runs high) while
Pearson r sees less than half of it.

Simulation: each column the expression names gets a fitted distribution (normal, logistic,
uniform, lognormal, gamma or exponential, the lowest AIC; or the observed values themselves
with ``bootstrap``); draws keep the columns' rank correlation through a Gaussian copula, and the
expression is evaluated over the draws. The expression is read by Python's parser into a syntax
tree and never executed as code: only numbers, column names, + - * / ** and a few functions
pass, and the accepted tree is compiled to numpy operations. (A computer-algebra tree is not
used: sympy evaluates constant parts exactly, so ``exp(exp(exp(b - b + 100)))`` would grow
without bound before any draw.)
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, cast

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Run
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "ChaosInput",
    "ChaosPair",
    "ChaosParams",
    "ChaosPercentile",
    "ChaosResult",
    "ChaosSimulation",
]

#: Distance correlation and mutual information use at most this many rows (a seeded sample).
SAMPLE_ROWS = 2_000
#: Distributions are fitted to at most this many values of a column (a seeded sample).
FIT_ROWS = 20_000
#: Fewest complete rows a pair needs for its measures.
PAIR_ROWS = 10
#: The most columns examined pairwise.
MAX_COLUMNS = 20
#: Distance correlation at or above this is strong dependence.
STRONG_DCOR = 0.3
#: Mutual-information correlation sqrt(1 - exp(-2 MI)) at or above this is strong dependence.
STRONG_INFORMATION = 0.5
#: A dependence is only called non-linear when xi's p-value is below this.
SIGNIFICANT = 0.05
#: A fitted distribution whose Kolmogorov-Smirnov p-value is below this is reported as poor.
POOR_FIT_P = 0.01
#: The functions an expression may call, with how many arguments each takes (None: 2 or more).
FUNCTIONS: dict[str, int | None] = {
    "exp": 1,
    "log": 1,
    "sqrt": 1,
    "abs": 1,
    "min": None,
    "max": None,
}


class ChaosParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Numeric columns to examine pairwise. None: the expression's columns when an expression
    #: is given, else every numeric column.
    columns: Annotated[list[str], msgspec.Meta(min_length=2, max_length=MAX_COLUMNS)] | None = None
    #: A formula over column names to simulate, e.g. "price * volume - cost": numbers, column
    #: names, + - * / **, parentheses and exp, log, sqrt, abs, min, max. None: no simulation.
    expression: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None
    #: Monte Carlo draws.
    simulations: Annotated[int, msgspec.Meta(ge=100, le=1_000_000)] = 10_000
    #: Percentiles (0-100) of the simulated expression to report.
    percentiles: Annotated[
        list[Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]],
        msgspec.Meta(min_length=1, max_length=50),
    ] = msgspec.field(default_factory=lambda: [5.0, 25.0, 50.0, 75.0, 95.0])
    #: Draw each input from its observed values (an empirical bootstrap, still rank-correlated)
    #: instead of a fitted distribution.
    bootstrap: bool = False


class ChaosPair(msgspec.Struct, kw_only=True):
    a: str
    b: str
    #: Complete rows the pair has.
    rows: int
    pearson_r: float | None
    spearman_rho: float | None
    #: Mutual information in nats (0: independent).
    mutual_information: float | None
    #: Distance correlation (0: independent, 1: one column determines the other).
    distance_correlation: float | None
    #: Chatterjee's xi, the larger of xi(a -> b) and xi(b -> a).
    xi: float | None
    #: The asymptotic p-value of that xi under independence.
    xi_p_value: float | None
    #: Strong dependence (distance correlation >= 0.3 or mutual-information correlation
    #: sqrt(1 - exp(-2 MI)) >= 0.5, and xi significant at 0.05) that Pearson r sees less than
    #: half of.
    nonlinear: bool


class ChaosInput(msgspec.Struct, kw_only=True):
    column: str
    #: normal, logistic, uniform, lognormal, gamma, exponential, constant or empirical.
    distribution: str
    #: The fitted parameters: normal {mean, std}, logistic {loc, scale}, uniform {low, high},
    #: lognormal {mu, sigma} (of the logarithm), gamma {shape, scale}, exponential {scale},
    #: constant {value}, empirical {values: how many observed values}.
    params: dict[str, float]
    #: Kolmogorov-Smirnov distance between the column and the fitted distribution.
    ks_statistic: float | None


class ChaosPercentile(msgspec.Struct, kw_only=True):
    p: float
    value: float


class ChaosSimulation(msgspec.Struct, kw_only=True):
    expression: str
    inputs: list[ChaosInput]
    #: Draws with a finite value of the expression.
    simulations: int
    mean: float
    std: float
    percentiles: list[ChaosPercentile]


class ChaosResult(msgspec.Struct, kw_only=True):
    #: One item per pair of columns examined.
    dependence: list[ChaosPair]
    #: The Monte Carlo simulation; None when no expression was given.
    simulation: ChaosSimulation | None


@dataclass(frozen=True, slots=True)
class _Formula:
    """A checked expression: the columns it names, in order, and its numpy function."""

    names: list[str]
    function: Callable[..., Any]


def compute(frame: pd.DataFrame, params: ChaosParams, run: Run) -> Outcome[ChaosResult]:
    pair_columns = _pair_columns(frame, params)
    formula = None
    if params.expression is not None:
        formula = _parse(params.expression, frame)
        if params.columns is None:
            pair_columns = formula.names
    elif len(pair_columns) < 2:
        raise InvalidRequestError(
            "Give at least two numeric columns to examine, or an expression to simulate.",
            param="params.columns",
            code="nothing_to_compute",
        )
    run.progress(0.05, "measuring dependence")
    role = "expression" if params.columns is None and formula is not None else "columns"
    dependence = _dependence(frame, pair_columns, role, run, 0.6 if formula else 0.9)
    simulation = None
    values = None
    if formula is not None and params.expression is not None:
        simulation, values = _simulate(frame, params, params.expression, formula, run)
    run.progress(0.95, "drawing charts")
    result = ChaosResult(dependence=dependence, simulation=simulation)
    made = []
    if dependence:
        made.append(_dependence_chart(dependence))
    if simulation is not None and values is not None:
        made.append(_histogram(simulation, values))
    return Outcome(result=result, summary=_summary(result), charts=made)


def _pair_columns(frame: pd.DataFrame, params: ChaosParams) -> list[str]:
    """The columns to examine pairwise, each checked numeric."""
    import pandas as pd

    if params.columns is not None:
        columns.numeric_columns(frame, params.columns, "columns")
        return list(params.columns)
    if params.expression is not None:
        return []
    names = [
        str(name)
        for name in frame.columns
        if pd.api.types.is_numeric_dtype(frame[name])
        and frame[name].dtype != bool
        and frame[name].nunique() > 1
    ]
    if len(names) > MAX_COLUMNS:
        raise InvalidRequestError(
            f"The data have {len(names)} numeric columns; name at most {MAX_COLUMNS} in "
            "params.columns.",
            param="params.columns",
            code="too_many_columns",
        )
    return names


# -- the expression -------------------------------------------------------------------------


def _bad_expression(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="params.expression", code="invalid_expression")


def _parse(text: str, frame: pd.DataFrame) -> _Formula:
    """Check ``text`` and compile it; a 400 naming what is not allowed.

    Python's parser reads the text into a syntax tree (nothing runs); every node must be a
    number, a column name, + - * / **, or a call of an allowed function. Parts without a column
    are folded to one float64 at once, so ``9**9**9**9`` is refused as an overflow rather than
    grown as an exact number; the rest becomes numpy operations over the draws.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise _bad_expression(
            f"The expression is not a formula ({getattr(error, 'msg', error)})."
        ) from None
    names: list[str] = []
    try:
        compiled = _build(tree.body, frame, names)
    except RecursionError:
        raise _bad_expression("The expression is nested too deeply.") from None
    if not names or isinstance(compiled, float):
        raise _bad_expression("The expression names no column; there is nothing to simulate.")
    for name in names:
        columns.numeric(frame, name, "expression", allow_constant=True)
    ordered = sorted(names)

    def function(*values: np.ndarray) -> Any:
        return compiled(dict(zip(ordered, values, strict=True)))

    return _Formula(names=ordered, function=function)


#: A compiled part of an expression: a constant, or a function of the columns' draws.
_Part: TypeAlias = float | Callable[[dict[str, "np.ndarray"]], Any]


def _not_finite() -> InvalidRequestError:
    return _bad_expression(
        "A constant part of the expression is not a finite real number (a division by zero, "
        "an overflow, or the log or square root of a negative number)."
    )


def _folded(value: Any) -> float:
    """A constant computed in float64; non-finite is refused."""
    result = float(value)
    if not math.isfinite(result):
        raise _not_finite()
    return result


def _value(part: _Part, draws: dict[str, np.ndarray]) -> Any:
    return part if isinstance(part, float) else part(draws)


_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def _build(node: ast.AST, frame: pd.DataFrame, names: list[str]) -> _Part:
    """The node compiled; anything but numbers, column names, arithmetic and the allowed
    functions is refused. ``names`` collects the columns it reads."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _bad_expression(f"Only numbers may appear as constants, not {node.value!r}.")
        try:
            return _folded(node.value)
        except OverflowError:
            raise _not_finite() from None
    if isinstance(node, ast.Name):
        return _name(node.id, frame, names)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _build(node.operand, frame, names)
        if isinstance(node.op, ast.UAdd):
            return operand
        return _apply(operator.neg, [operand])
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _OPERATORS:
            hint = " (powers are written **)" if isinstance(node.op, ast.BitXor) else ""
            raise _bad_expression(
                f"The operator {type(node.op).__name__} is not allowed{hint}; use + - * / **."
            )
        left = _build(node.left, frame, names)
        right = _build(node.right, frame, names)
        if isinstance(right, float) and right == 0 and isinstance(node.op, ast.Div):
            raise _not_finite()
        return _apply(_OPERATORS[type(node.op)], [left, right])
    if isinstance(node, ast.Call):
        return _call(node, frame, names)
    raise _bad_expression(
        f"{type(node).__name__} is not allowed in an expression: only numbers, column names, "
        "+ - * / **, parentheses and the functions " + ", ".join(FUNCTIONS) + "."
    )


def _apply(function: Callable[..., Any], parts: list[_Part]) -> _Part:
    """``function`` over ``parts``: folded now when all are constants, else deferred to the
    draws (numpy float64 arithmetic, element by element)."""
    import numpy as np

    if all(isinstance(part, float) for part in parts):
        with np.errstate(all="ignore"):
            return _folded(function(*[np.float64(cast(float, part)) for part in parts]))

    def apply(draws: dict[str, np.ndarray]) -> Any:
        return function(*[_value(part, draws) for part in parts])

    return apply


def _name(name: str, frame: pd.DataFrame, names: list[str]) -> _Part:
    if name in frame.columns:
        if name not in names:
            names.append(name)
        return lambda draws: draws[name]
    if name == "pi":
        return math.pi
    if name == "e":
        return math.e
    if name in FUNCTIONS:
        raise _bad_expression(f"The function '{name}' must be called, e.g. {name}(x).")
    raise InvalidRequestError(
        f"The expression names '{name}', which is not a column of the data.",
        param="params.expression",
        code="unknown_column",
    )


def _call(node: ast.Call, frame: pd.DataFrame, names: list[str]) -> _Part:
    import numpy as np

    allowed = ", ".join(FUNCTIONS)
    if not isinstance(node.func, ast.Name):
        raise _bad_expression(
            f"Only {allowed} may be called; this calls a {type(node.func).__name__}."
        )
    if node.func.id not in FUNCTIONS:
        raise _bad_expression(f"The function '{node.func.id}' is not allowed; only {allowed}.")
    name = node.func.id
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise _bad_expression(f"{name}() takes plain arguments only.")
    wanted = FUNCTIONS[name]
    if (wanted is None and len(node.args) < 2) or (wanted is not None and len(node.args) != wanted):
        count = "2 or more arguments" if wanted is None else f"{wanted} argument"
        raise _bad_expression(f"{name}() takes {count}; {len(node.args)} given.")
    args = [_build(arg, frame, names) for arg in node.args]
    functions: dict[str, Callable[..., Any]] = {
        "exp": np.exp,
        "log": np.log,
        "sqrt": np.sqrt,
        "abs": np.abs,
        "min": lambda *values: functools.reduce(np.minimum, values),
        "max": lambda *values: functools.reduce(np.maximum, values),
    }
    return _apply(functions[name], args)


# -- dependence -----------------------------------------------------------------------------


def _dependence(
    frame: pd.DataFrame, names: list[str], role: str, run: Run, end: float
) -> list[ChaosPair]:
    import numpy as np

    if len(names) < 2:
        return []
    start = 0.05
    values = {
        name: columns.numeric(frame, name, role, allow_constant=True).to_numpy() for name in names
    }
    rng = np.random.default_rng(run.seed)
    sample = np.arange(len(frame))
    if len(frame) > SAMPLE_ROWS:
        sample = np.sort(rng.choice(len(frame), size=SAMPLE_ROWS, replace=False))
        run.warn(
            f"Distance correlation and mutual information use a seeded sample of {SAMPLE_ROWS} "
            f"of the {len(frame)} rows."
        )
    in_sample = np.zeros(len(frame), dtype=bool)
    in_sample[sample] = True
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    found: list[ChaosPair] = []
    for index, (a, b) in enumerate(pairs):
        run.progress(start + (end - start) * index / len(pairs), f"pair {a} / {b}")
        found.append(_pair(a, b, values[a], values[b], in_sample=in_sample, run=run))
    short = [f"{pair.a}/{pair.b}" for pair in found if pair.pearson_r is None]
    if short:
        run.warn(
            f"Pairs without {PAIR_ROWS} complete, varying rows have no measures: "
            + ", ".join(short[:10])
            + (", ..." if len(short) > 10 else "")
        )
    return found


def _pair(
    a: str, b: str, x: np.ndarray, y: np.ndarray, *, in_sample: np.ndarray, run: Run
) -> ChaosPair:
    import numpy as np
    from scipy import stats
    from sklearn.feature_selection import mutual_info_regression

    complete = np.isfinite(x) & np.isfinite(y)
    x_all, y_all = x[complete], y[complete]
    empty = ChaosPair(
        a=a,
        b=b,
        rows=int(complete.sum()),
        pearson_r=None,
        spearman_rho=None,
        mutual_information=None,
        distance_correlation=None,
        xi=None,
        xi_p_value=None,
        nonlinear=False,
    )
    if len(x_all) < PAIR_ROWS or np.ptp(x_all) == 0 or np.ptp(y_all) == 0:
        return empty
    pearson = float(np.corrcoef(x_all, y_all)[0, 1])
    spearman = float(stats.spearmanr(x_all, y_all).statistic)
    xi, xi_p = max(
        (float(test.statistic), float(test.pvalue))
        for test in (stats.chatterjeexi(x_all, y_all), stats.chatterjeexi(y_all, x_all))
    )
    chosen = complete & in_sample
    x_some, y_some = x[chosen], y[chosen]
    if len(x_some) < PAIR_ROWS or np.ptp(x_some) == 0 or np.ptp(y_some) == 0:
        x_some, y_some = x_all, y_all
    information = float(
        mutual_info_regression(x_some.reshape(-1, 1), y_some, random_state=run.seed)[0]
    )
    information = max(information, 0.0)
    dcor = _distance_correlation(x_some, y_some)
    strength = max(dcor, math.sqrt(1.0 - math.exp(-2.0 * information)))
    strong = dcor >= STRONG_DCOR or strength >= STRONG_INFORMATION
    return ChaosPair(
        a=a,
        b=b,
        rows=len(x_all),
        pearson_r=pearson,
        spearman_rho=spearman,
        mutual_information=information,
        distance_correlation=dcor,
        xi=xi,
        xi_p_value=xi_p,
        nonlinear=bool(strong and xi_p < SIGNIFICANT and abs(pearson) < 0.5 * strength),
    )


def _centred_distances(values: np.ndarray) -> np.ndarray:
    import numpy as np

    distances = np.abs(values[:, None] - values[None, :])
    centred: np.ndarray = (
        distances
        - distances.mean(axis=0, keepdims=True)
        - distances.mean(axis=1, keepdims=True)
        + distances.mean()
    )
    return centred


def _distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Székely's distance correlation: dCov(x, y) / sqrt(dVar(x) dVar(y)), the covariances
    being means of products of double-centred distance matrices."""
    first = _centred_distances(x)
    second = _centred_distances(y)
    covariance = float((first * second).mean())
    variance = float((first * first).mean()) * float((second * second).mean())
    if variance <= 0:
        return 0.0
    return math.sqrt(max(covariance, 0.0) / math.sqrt(variance))


# -- simulation -----------------------------------------------------------------------------


def _simulate(
    frame: pd.DataFrame, params: ChaosParams, text: str, formula: _Formula, run: Run
) -> tuple[ChaosSimulation, np.ndarray]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(run.seed)
    data = pd.DataFrame(
        {
            name: columns.numeric(frame, name, "expression", allow_constant=True)
            for name in formula.names
        }
    )
    inputs: list[ChaosInput] = []
    quantiles: list[Callable[[np.ndarray], np.ndarray]] = []
    for index, name in enumerate(formula.names):
        run.progress(0.6 + 0.2 * index / len(formula.names), f"fitting {name}")
        observed = data[name].dropna().to_numpy()
        described, quantile = _marginal(name, observed, params.bootstrap, rng, run)
        inputs.append(described)
        quantiles.append(quantile)
    run.progress(0.8, "drawing")
    uniforms = _copula_draws(data, params.simulations, rng)
    draws = [quantile(uniforms[:, index]) for index, quantile in enumerate(quantiles)]
    run.progress(0.88, "evaluating the expression")
    with np.errstate(all="ignore"):
        values = np.asarray(formula.function(*draws), dtype=float)
    values = np.broadcast_to(values, (params.simulations,)).copy()
    finite = np.isfinite(values)
    if not finite.any():
        raise UnprocessableEntityError(
            "The expression has no finite value on any draw (e.g. a division by zero or the "
            "log of a negative number on every draw).",
            code="no_finite_values",
        )
    if not finite.all():
        run.warn(
            f"{int((~finite).sum())} of {params.simulations} draws gave no finite value of the "
            "expression (a division by zero, an overflow, or the log or square root of a negative "
            "number) and were left out."
        )
    values = values[finite]
    points = sorted(set(params.percentiles))
    with np.errstate(all="ignore"):
        levels = np.percentile(values, points)
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise UnprocessableEntityError(
            "The simulated values of the expression are too large to average (their mean or "
            "standard deviation overflows).",
            code="overflow",
        )
    simulation = ChaosSimulation(
        expression=text.strip(),
        inputs=inputs,
        simulations=len(values),
        mean=mean,
        std=std,
        percentiles=[
            ChaosPercentile(p=float(p), value=float(level))
            for p, level in zip(points, levels, strict=True)
        ],
    )
    return simulation, values


#: Candidate distributions: name, scipy name, whether only for positive data, fit keywords.
_CANDIDATES: tuple[tuple[str, str, bool, dict[str, float]], ...] = (
    ("normal", "norm", False, {}),
    ("logistic", "logistic", False, {}),
    ("uniform", "uniform", False, {}),
    ("lognormal", "lognorm", True, {"floc": 0.0}),
    ("gamma", "gamma", True, {"floc": 0.0}),
    ("exponential", "expon", True, {"floc": 0.0}),
)


def _marginal(
    name: str, observed: np.ndarray, bootstrap: bool, rng: np.random.Generator, run: Run
) -> tuple[ChaosInput, Callable[[np.ndarray], np.ndarray]]:
    """The input's description and its quantile function (uniforms to draws)."""
    import numpy as np

    if np.ptp(observed) == 0:
        value = float(observed[0])
        return (
            ChaosInput(
                column=name, distribution="constant", params={"value": value}, ks_statistic=0.0
            ),
            lambda u: np.full(len(u), value),
        )
    if bootstrap:
        ordered = np.sort(observed)
        return (
            ChaosInput(
                column=name,
                distribution="empirical",
                params={"values": float(len(ordered))},
                ks_statistic=0.0,
            ),
            lambda u: np.quantile(ordered, u, method="inverted_cdf"),
        )
    sample = observed
    if len(sample) > FIT_ROWS:
        sample = rng.choice(sample, size=FIT_ROWS, replace=False)
    return _fit(name, sample, run)


def _fit(
    name: str, sample: np.ndarray, run: Run
) -> tuple[ChaosInput, Callable[[np.ndarray], np.ndarray]]:
    """The candidate distribution with the lowest AIC."""
    import warnings

    import numpy as np
    from scipy import stats

    best: tuple[float, str, Any] | None = None
    positive = bool(sample.min() > 0)
    for label, scipy_name, needs_positive, fixed in _CANDIDATES:
        if needs_positive and not positive:
            continue
        family = getattr(stats, scipy_name)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                fitted = family(*family.fit(sample, **fixed))
                loglik = float(np.sum(fitted.logpdf(sample)))
            except (ValueError, RuntimeError, FloatingPointError):
                continue
        if not math.isfinite(loglik):
            continue
        free = len(family.shapes.split(",")) if family.shapes else 0
        aic = 2.0 * (free + 2 - len(fixed)) - 2.0 * loglik
        if best is None or aic < best[0]:
            best = (aic, label, fitted)
    if best is None:
        raise UnprocessableEntityError(
            f"No distribution fits column '{name}'; try params.bootstrap.", code="no_fit"
        )
    _, label, fitted = best
    test = stats.kstest(sample, fitted.cdf)
    statistic = float(test.statistic)
    if float(test.pvalue) < POOR_FIT_P:
        run.warn(
            f"Column '{name}' fits none of the candidate distributions well (best: {label}, "
            f"Kolmogorov-Smirnov distance {statistic:.3f}); params.bootstrap draws from its "
            "observed values instead."
        )
    return (
        ChaosInput(
            column=name, distribution=label, params=_named(label, fitted), ks_statistic=statistic
        ),
        lambda u: np.asarray(fitted.ppf(u), dtype=float),
    )


def _named(label: str, fitted: Any) -> dict[str, float]:
    """A fitted scipy distribution's parameters under the names the result documents."""
    args = [float(value) for value in fitted.args]
    kwds = {key: float(value) for key, value in fitted.kwds.items()}
    loc = kwds.get("loc", args[-2] if len(args) >= 2 else 0.0)
    scale = kwds.get("scale", args[-1] if args else 1.0)
    if label == "normal":
        return {"mean": loc, "std": scale}
    if label == "logistic":
        return {"loc": loc, "scale": scale}
    if label == "uniform":
        return {"low": loc, "high": loc + scale}
    if label == "lognormal":
        return {"mu": math.log(scale), "sigma": args[0]}
    if label == "gamma":
        return {"shape": args[0], "scale": scale}
    return {"scale": scale}


def _copula_draws(data: pd.DataFrame, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` rows of uniforms whose rank correlation is the columns' Spearman rho (a
    Gaussian copula: Pearson r = 2 sin(pi rho / 6) between normal scores)."""
    import numpy as np
    from scipy import stats

    normals = rng.standard_normal((count, data.shape[1]))
    if data.shape[1] > 1:
        rho = data.corr(method="spearman", min_periods=PAIR_ROWS).to_numpy()
        rho = np.nan_to_num(rho, nan=0.0)
        np.fill_diagonal(rho, 1.0)
        target = 2.0 * np.sin(np.pi * rho / 6.0)
        normals = normals @ np.linalg.cholesky(_nearest_correlation(target)).T
    uniforms: np.ndarray = np.clip(stats.norm.cdf(normals), 1e-12, 1.0 - 1e-12)
    return uniforms


def _nearest_correlation(matrix: np.ndarray) -> np.ndarray:
    """A positive-definite correlation matrix near ``matrix`` (eigenvalues clipped)."""
    import numpy as np

    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    fixed = eigenvectors @ np.diag(np.clip(eigenvalues, 1e-6, None)) @ eigenvectors.T
    scale = np.sqrt(np.diag(fixed))
    result: np.ndarray = fixed / np.outer(scale, scale)
    return result


# -- answer ---------------------------------------------------------------------------------


def _summary(result: ChaosResult) -> str:
    parts: list[str] = []
    if result.dependence:
        flagged = [pair for pair in result.dependence if pair.nonlinear]
        text = f"Of {len(result.dependence)} column pairs, {len(flagged)} show"
        text += " non-linear dependence that Pearson r misses"
        if flagged:
            text += ": " + "; ".join(
                f"{pair.a}/{pair.b} (Pearson r {pair.pearson_r:.2f}, distance correlation "
                f"{pair.distance_correlation:.2f})"
                for pair in flagged[:5]
            )
        parts.append(text + ".")
        measured = [pair for pair in result.dependence if pair.distance_correlation is not None]
        if measured:
            top = max(measured, key=lambda pair: pair.distance_correlation or 0.0)
            parts.append(
                f"The strongest dependence is {top.a}/{top.b} (distance correlation "
                f"{top.distance_correlation:.2f})."
            )
    if result.simulation is not None:
        sim = result.simulation
        inputs = ", ".join(f"{item.column} {item.distribution}" for item in sim.inputs)
        low, high = sim.percentiles[0], sim.percentiles[-1]
        parts.append(
            f"Monte Carlo of '{sim.expression}' over {sim.simulations} draws ({inputs}): mean "
            f"{sim.mean:.4g}, std {sim.std:.4g}; percentile {low.p:g} is {low.value:.4g} and "
            f"percentile {high.p:g} is {high.value:.4g}."
        )
    return " ".join(parts)


def _dependence_chart(dependence: list[ChaosPair]) -> dict[str, Any]:
    data = []
    for pair in dependence:
        name = f"{pair.a} / {pair.b}"
        data.append({"pair": name, "measure": "|Pearson r|", "value": _absolute(pair.pearson_r)})
        data.append(
            {"pair": name, "measure": "distance correlation", "value": pair.distance_correlation}
        )
    measure = charts.field("measure", "nominal", title="Measure")
    return charts.bar(
        data,
        charts.field("pair", "nominal", title="Pair"),
        charts.field("value", "quantitative", title="Dependence"),
        title="Linear (|Pearson r|) and any (distance correlation) dependence per pair",
        color=measure,
        xOffset=measure,
    )


def _absolute(value: float | None) -> float | None:
    return None if value is None else abs(value)


def _histogram(simulation: ChaosSimulation, values: np.ndarray) -> dict[str, Any]:
    import numpy as np

    counts, edges = np.histogram(values, bins=40)
    return charts.bar(
        [
            {"start": float(edges[i]), "end": float(edges[i + 1]), "draws": int(counts[i])}
            for i in range(len(counts))
        ],
        charts.field("start", "quantitative", title=simulation.expression, bin={"binned": True}),
        charts.field("draws", "quantitative", title="Draws"),
        title=f"Simulated {simulation.expression} ({simulation.simulations} draws)",
        x2={"field": "end"},
    )


def _example() -> list[dict[str, Cell]]:
    """y is x squared (Pearson r near 0, yet y is a function of x); z rises with x."""
    rng = random.Random(0)
    records: list[dict[str, Cell]] = []
    for _ in range(120):
        x = rng.uniform(-1.0, 1.0)
        records.append(
            {
                "x": round(x, 4),
                "y": round(x * x + rng.gauss(0.0, 0.03), 4),
                "z": round(2.0 + 0.5 * x + rng.gauss(0.0, 0.2), 4),
            }
        )
    return records


METHOD: Method[ChaosParams, ChaosResult] = Method(
    name="chaos",
    summary="Non-linear dependence between columns (mutual information, distance correlation, "
    "Chatterjee's xi) and Monte Carlo simulation of a formula over them.",
    params=ChaosParams,
    result=ChaosResult,
    compute=compute,
    example=MethodExample(
        data=_example(),
        params=ChaosParams(columns=["x", "y", "z"], expression="z * exp(x) - y", simulations=2000),
    ),
    numeric_param="columns",
    min_rows=PAIR_ROWS,
)
