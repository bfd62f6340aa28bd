"""newton: symbolic regression — a formula in the feature names that predicts the target.

gplearn's genetic programming (``SymbolicRegressor``) evolves programs on three quarters of the
rows; the best one is turned into a sympy expression (gplearn's protected operators mapped to
their plain meaning: ``div(a, b)`` to ``a/b``, ``sqrt(a)`` to ``sqrt(|a|)``, ``log(a)`` to
``log(|a|)``), simplified, and its numbers snapped to nearby integers or simple fractions
where that costs no accuracy on the held-out quarter, so ``x**2 + x`` comes out exactly. The
held-out rows score the formula (R², RMSE), and a Pareto front of accuracy against complexity
is read off the final population.

gplearn's protected operators keep every program finite (a division by nearly zero gives 1);
their plain meaning does not: ``div(x, sub(y, y))`` becomes ``x/0``, sympy's complex infinity.
A formula that is infinite, undefined or not finite on a held-out row is never returned: the
next best program of the final population is tried instead, and the front leaves such formulas
out.
"""

from __future__ import annotations

import keyword
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Run
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "NewtonFormula", "NewtonParams", "NewtonResult"]

Function = Literal[
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "inv",
    "abs",
    "sqrt",
    "log",
    "max",
    "min",
    "sin",
    "cos",
    "tan",
]

_MIN_ROWS = 12
#: Largest expression (in operations) handed to ``sympy.simplify``, whose time grows steeply
#: with size; bigger ones stay as built.
_SIMPLIFY_OPS = 20
#: Most numbers tried one by one for snapping.
_SNAP_TRIALS = 8
#: Most formulas on the Pareto front.
_FRONT = 8
#: Most programs of the final population tried, best first, for a finite formula.
_CANDIDATES = 10


class NewtonParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The numeric column the formula predicts.
    target: str
    #: The numeric columns the formula may use.
    features: Annotated[list[str], msgspec.Meta(min_length=1, max_length=50)]
    #: Generations of evolution (the search stops early once a program fits exactly).
    generations: Annotated[int, msgspec.Meta(ge=1, le=200)] = 20
    #: Programs in each generation.
    population_size: Annotated[int, msgspec.Meta(ge=50, le=20000)] = 1000
    #: Fitness penalty per program node: larger values favour shorter formulas.
    parsimony_coefficient: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.001
    #: The operations a formula may use.
    function_set: Annotated[list[Function], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["add", "sub", "mul", "div"]
    )


class NewtonFormula(msgspec.Struct, kw_only=True):
    #: A formula sympy parses (``sympy.parse_expr``), in the symbols of ``symbols``.
    formula: str
    #: Operations in the formula (``sympy.count_ops``).
    complexity: int
    #: R² on the held-out rows (None when the held-out target is constant).
    r2: float | None


class NewtonResult(msgspec.Struct, kw_only=True):
    #: The best formula, simplified.
    formula: str
    #: R² of the formula on the held-out rows (None when the held-out target is constant).
    r2: float | None
    #: Root mean squared error of the formula on the held-out rows.
    rmse: float
    #: Operations in the formula (``sympy.count_ops``).
    complexity: int
    #: Accuracy against complexity: formulas from the final population that no simpler one
    #: beats on the held-out rows, simplest first.
    pareto: list[NewtonFormula]
    #: The symbol each feature column is written as (its own name where that parses).
    symbols: dict[str, str]
    holdout_rows: int
    #: The program as gplearn evolved it, before simplification.
    program: str
    #: Generations run (fewer than asked when a program fit exactly).
    generations_run: int


@dataclass(slots=True)
class _Split:
    x_fit: np.ndarray[Any, Any]
    y_fit: np.ndarray[Any, Any]
    x_hold: np.ndarray[Any, Any]
    y_hold: np.ndarray[Any, Any]


def _sympy() -> Any:
    """sympy, loaded when a computation needs it (it ships no type information)."""
    from importlib import import_module

    return import_module("sympy")


def _symbol_names(features: list[str]) -> dict[str, str]:
    """column -> a symbol name sympy parses back to a plain symbol: the column's own name when
    it is a Python identifier sympy does not reserve (``E``, ``I``, ``beta`` ...)."""
    import re

    sympy = _sympy()

    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in features:
        name = column
        if not name.isidentifier() or keyword.iskeyword(name) or hasattr(sympy, name):
            name = "x_" + (re.sub(r"\W", "_", column) or "col")
        while name in taken or hasattr(sympy, name):
            name += "_"
        names[column] = name
        taken.add(name)
    return names


def _to_sympy(program: list[Any], symbols: list[Any]) -> Any:
    """gplearn's prefix program as a sympy expression (read right to left with a stack)."""
    sympy = _sympy()

    ops: dict[str, Any] = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
        "neg": lambda a: -a,
        "inv": lambda a: 1 / a,
        "abs": sympy.Abs,
        "sqrt": lambda a: sympy.sqrt(sympy.Abs(a)),
        "log": lambda a: sympy.log(sympy.Abs(a)),
        "max": sympy.Max,
        "min": sympy.Min,
        "sin": sympy.sin,
        "cos": sympy.cos,
        "tan": sympy.tan,
    }
    stack: list[Any] = []
    for node in reversed(program):
        if isinstance(node, int):
            stack.append(symbols[node])
        elif isinstance(node, float):
            stack.append(sympy.Float(node))
        else:
            stack.append(ops[node.name](*[stack.pop() for _ in range(node.arity)]))
    return stack[0]


def _simplify(expr: Any) -> Any:
    """The shortest of the simplified and the expanded form (polynomials read best
    expanded: ``x**2 + x`` rather than ``x*(x + 1)``)."""
    sympy = _sympy()

    if sympy.count_ops(expr) > _SIMPLIFY_OPS:
        return expr
    simple = sympy.simplify(expr)
    expanded = sympy.expand(simple)
    return expanded if sympy.count_ops(expanded) <= sympy.count_ops(simple) else simple


def _is_finite(expr: Any) -> bool:
    """Whether the expression holds no infinity and no undefined value (``x/0`` is ``zoo*x``,
    ``0/0`` is ``nan``)."""
    sympy = _sympy()

    return not expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan)


def _predict(expr: Any, symbols: list[Any], x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The expression's values on the rows of ``x``; NaN throughout when it is not finite or
    cannot be evaluated as real numbers (numpy has no printer for sympy's infinities)."""
    import numpy as np

    sympy = _sympy()

    undefined = np.full(x.shape[0], np.nan)
    if not _is_finite(expr):
        return undefined
    try:
        function = sympy.lambdify(symbols, expr, modules="numpy")
        with np.errstate(all="ignore"):
            values = np.asarray(function(*[x[:, i] for i in range(x.shape[1])]))
    except (ArithmeticError, KeyError, NameError, TypeError, ValueError):
        return undefined
    if np.iscomplexobj(values) or values.dtype == object:
        return undefined
    return np.broadcast_to(values.astype(float), (x.shape[0],)).copy()


def _scores(y: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any]) -> tuple[float | None, float]:
    """(R², RMSE); infinite RMSE when a prediction or the error is not finite.

    The sums run on values scaled by the largest target, so that squares of large numbers do
    not overflow where the RMSE itself is a float."""
    import numpy as np

    if not np.isfinite(predicted).all():
        return None, math.inf
    scale = float(np.max(np.abs(y))) or 1.0
    with np.errstate(all="ignore"):
        residual = float(np.sum(((y - predicted) / scale) ** 2))
        total = float(np.sum(((y - y.mean()) / scale) ** 2))
    if not (math.isfinite(residual) and math.isfinite(total)):
        return None, math.inf
    r2 = 1.0 - residual / total if total > 0 else None
    rmse = scale * math.sqrt(residual / len(y))
    return r2, rmse if math.isfinite(rmse) else math.inf


def _snap_value(value: float) -> Any:
    """The integer, or simple fraction p/q (q, |p| <= 12), within 5% of ``value``, else None;
    numbers very close to zero snap to zero."""
    sympy = _sympy()

    if abs(value) < 1e-6:
        return sympy.Integer(0)
    near = Fraction(value).limit_denominator(12)
    simple = near.denominator == 1 or abs(near.numerator) <= 12
    if simple and abs(float(near) - value) <= 0.05 * max(1.0, abs(value)):
        return sympy.Rational(near.numerator, near.denominator)
    return None


def _snap(expr: Any, symbols: list[Any], split: _Split) -> Any:
    """``expr`` with its numbers snapped to simple values (all together, else one by one),
    each snap kept only if the held-out RMSE grows by at most 1%."""
    import numpy as np

    sympy = _sympy()

    def rmse(candidate: Any) -> float:
        return _scores(split.y_hold, _predict(candidate, symbols, split.x_hold))[1]

    snaps = {f: _snap_value(float(f)) for f in expr.atoms(sympy.Float)}
    snaps = {f: near for f, near in snaps.items() if near is not None}
    if not snaps:
        return expr
    before = rmse(expr)
    if not math.isfinite(before):
        return expr
    limit = before * 1.01 + 1e-9 * (float(np.std(split.y_hold)) + 1.0)
    snapped = expr.xreplace(snaps)
    if rmse(snapped) > limit:
        snapped = expr
        for number, near in list(snaps.items())[:_SNAP_TRIALS]:
            trial = snapped.xreplace({number: near})
            if rmse(trial) <= limit:
                snapped = trial
    return expr if snapped == expr else _simplify(snapped)


def _formula(expr: Any) -> str:
    """The expression as text, its remaining numbers to 6 significant digits."""
    sympy = _sympy()

    rounded = expr.xreplace({f: sympy.Float(float(f), 6) for f in expr.atoms(sympy.Float)})
    return str(rounded)


def _front(est: Any, best: Any, split: _Split) -> list[Any]:
    """The final population's programs no longer than ``best`` that no shorter program beats
    on the held-out rows, shortest first, at most ``_FRONT`` (the most accurate)."""
    import numpy as np

    seen: dict[str, tuple[int, float, Any]] = {}
    for program in [best, *est._programs[-1]]:  # gplearn keeps its population here
        if program is None or str(program) in seen or program.length_ > best.length_:
            continue
        with np.errstate(all="ignore"):
            r2 = _scores(split.y_hold, program.execute(split.x_hold))[0]
        seen[str(program)] = (program.length_, -math.inf if r2 is None else r2, program)
    front: list[Any] = []
    for _length, r2, program in sorted(seen.values(), key=lambda item: (item[0], -item[1])):
        if not front or r2 > seen[str(front[-1])][1]:
            front.append(program)
    return front[-_FRONT:]


def _prepare(frame: pd.DataFrame, params: NewtonParams, run: Run) -> tuple[Any, Any, list[str]]:
    columns.column(frame, params.target, "target")
    features = columns.columns(frame, params.features, "features")
    if params.target in features:
        raise InvalidRequestError(
            f"Column '{params.target}' is the target; it cannot also be a feature.",
            param="params.features",
            code="target_in_features",
        )
    target = columns.numeric(frame, params.target, "target")
    table = columns.numeric_columns(frame, features, "features", allow_constant=True)
    keep = (target.notna() & table.notna().all(axis=1)).to_numpy()
    if not keep.all():
        run.warn(f"{int((~keep).sum())} rows with a missing value were left out.")
    columns.require_rows(int(keep.sum()), _MIN_ROWS, "newton")
    return table.to_numpy()[keep], target.to_numpy()[keep], features


def compute(frame: pd.DataFrame, params: NewtonParams, run: Run) -> Outcome[NewtonResult]:
    from sklearn.model_selection import train_test_split

    x, y, features = _prepare(frame, params, run)
    sympy = _sympy()
    x_fit, x_hold, y_fit, y_hold = train_test_split(x, y, test_size=0.25, random_state=run.seed)
    split = _Split(x_fit, y_fit, x_hold, y_hold)
    est = _evolve(split, params, run)
    run.progress(0.85, "simplifying the best formula")
    names = _symbol_names(features)
    symbols = [sympy.Symbol(names[column]) for column in features]
    program, expr, predicted = _best_finite(est, symbols, split)
    r2, rmse = _scores(y_hold, predicted)
    run.progress(0.92, "the Pareto front of accuracy against complexity")
    pareto = _pareto(est, program, split, symbols)
    result = NewtonResult(
        formula=_formula(expr),
        r2=r2,
        rmse=rmse,
        complexity=_count(expr),
        pareto=pareto,
        symbols={name: column for column, name in names.items()},
        holdout_rows=len(y_hold),
        program=str(program),
        generations_run=len(est.run_details_["generation"]),
    )
    run.progress(1.0, "done")
    rows = [{"actual": a, "predicted": p} for a, p in zip(y_hold, predicted, strict=True)]
    return Outcome(result=result, summary=_summary(result), charts=_charts(result, rows))


def _candidates(est: Any) -> list[Any]:
    """The best program, then the rest of the final population by fitness (distinct programs,
    at most ``_CANDIDATES`` in all)."""
    sign = -1.0 if est._metric.greater_is_better else 1.0
    population = [program for program in est._programs[-1] if program is not None]
    ranked = sorted(population, key=lambda program: sign * program.raw_fitness_)
    found: dict[str, Any] = {}
    for program in [est._program, *ranked]:
        found.setdefault(str(program), program)
        if len(found) == _CANDIDATES:
            break
    return list(found.values())


def _best_finite(
    est: Any, symbols: list[Any], split: _Split
) -> tuple[Any, Any, np.ndarray[Any, Any]]:
    """(program, its formula simplified and snapped, its held-out predictions) for the best
    program whose formula is finite with a finite error on the held-out rows; a 422
    ``formula_not_finite`` when none of the candidates is."""
    for program in _candidates(est):
        expr = _snap(_simplify(_to_sympy(program.program, symbols)), symbols, split)
        predicted = _predict(expr, symbols, split.x_hold)
        if math.isfinite(_scores(split.y_hold, predicted)[1]):
            return program, expr, predicted
    raise UnprocessableEntityError(
        "No formula found is finite on every held-out row (each divides by zero, leaves its "
        "domain or overflows there); try another function_set or more generations.",
        code="formula_not_finite",
    )


def _evolve(split: _Split, params: NewtonParams, run: Run) -> Any:
    """gplearn's search, one generation per call (warm start: the same programs as one call,
    with progress between generations)."""
    import numpy as np
    from gplearn.genetic import SymbolicRegressor

    est = SymbolicRegressor(
        population_size=params.population_size,
        generations=0,
        function_set=tuple(dict.fromkeys(params.function_set)),
        parsimony_coefficient=params.parsimony_coefficient,
        # an exact fit (up to rounding) ends the search
        stopping_criteria=1e-6 * (float(np.mean(np.abs(split.y_fit))) + 1e-12),
        random_state=run.seed,
        n_jobs=1,
        warm_start=True,
    )
    for generation in range(1, params.generations + 1):
        est.set_params(generations=generation)
        with np.errstate(all="ignore"):
            est.fit(split.x_fit, split.y_fit)
        best = est.run_details_["best_fitness"][-1]
        run.progress(
            0.05 + 0.8 * generation / params.generations,
            f"evolving: generation {generation} of {params.generations}, best error {best:.4g}",
        )
        if best <= est.stopping_criteria:
            break
    return est


def _pareto(est: Any, best: Any, split: _Split, symbols: list[Any]) -> list[NewtonFormula]:
    """The front's programs simplified; those not finite on the held-out rows, and those a
    simpler formula matches, are dropped."""
    formulas: dict[str, NewtonFormula] = {}
    for program in _front(est, best, split):
        expr = _snap(_simplify(_to_sympy(program.program, symbols)), symbols, split)
        r2, rmse = _scores(split.y_hold, _predict(expr, symbols, split.x_hold))
        if not math.isfinite(rmse):
            continue
        item = NewtonFormula(formula=_formula(expr), complexity=_count(expr), r2=r2)
        formulas.setdefault(item.formula, item)
    ordered = sorted(formulas.values(), key=lambda f: (f.complexity, -_accuracy(f)))
    kept: list[NewtonFormula] = []
    for item in ordered:
        if not kept or _accuracy(item) > _accuracy(kept[-1]):
            kept.append(item)
    return kept


def _accuracy(formula: NewtonFormula) -> float:
    return -math.inf if formula.r2 is None else formula.r2


def _count(expr: Any) -> int:
    sympy = _sympy()

    return int(sympy.count_ops(expr))


def _summary(result: NewtonResult) -> str:
    fit = f"R² {result.r2:.4g}" if result.r2 is not None else "R² undefined (constant target)"
    front = [item.complexity for item in result.pareto] or [result.complexity]
    return (
        f"newton found {result.formula} (complexity {result.complexity}) after "
        f"{result.generations_run} generation{'' if result.generations_run == 1 else 's'}; on "
        f"{result.holdout_rows} held-out rows it reaches {fit} and RMSE {result.rmse:.4g}. The "
        f"Pareto front holds {len(result.pareto)} formula"
        f"{'' if len(result.pareto) == 1 else 's'}, complexity {min(front)} to {max(front)}."
    )


def _charts(result: NewtonResult, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    fit = charts.point(
        rows,
        charts.field("actual", "quantitative", title="Actual"),
        charts.field("predicted", "quantitative", title=f"Predicted by {result.formula}"[:80]),
        title="Formula against actual (held-out rows)",
    )
    front = charts.chart(
        [{"complexity": f.complexity, "r2": f.r2, "formula": f.formula} for f in result.pareto],
        {"type": "line", "point": True},
        {
            "x": charts.field("complexity", "quantitative", title="Complexity (operations)"),
            "y": charts.field("r2", "quantitative", title="Held-out R²"),
            "tooltip": charts.field("formula", "nominal"),
        },
        title="Pareto front: accuracy against complexity",
    )
    return [fit, front]


def _example() -> list[dict[str, Cell]]:
    """The ideal gas law: pressure from moles, temperature and volume (R = 1)."""
    import random

    rng = random.Random(0)
    records: list[dict[str, Cell]] = []
    for _ in range(60):
        moles = round(rng.uniform(1, 5), 2)
        kelvin = round(rng.uniform(250, 400), 1)
        litres = round(rng.uniform(10, 50), 1)
        records.append(
            {
                "moles": moles,
                "kelvin": kelvin,
                "litres": litres,
                "pressure": round(moles * kelvin / litres, 6),
            }
        )
    return records


METHOD: Method[NewtonParams, NewtonResult] = Method(
    name="newton",
    summary="Symbolic regression: a simplified formula in the feature names, with its held-out "
    "accuracy and a Pareto front of accuracy against complexity.",
    params=NewtonParams,
    result=NewtonResult,
    compute=compute,
    example=MethodExample(
        data=_example(),
        params=NewtonParams(
            target="pressure",
            features=["moles", "kelvin", "litres"],
            generations=10,
            population_size=300,
        ),
    ),
    numeric_param="target",
    min_rows=_MIN_ROWS,
)
