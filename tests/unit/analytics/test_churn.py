"""The churn engine: customers whose churn follows a planted logistic model are scored as well
as that model scores them (held-out AUC), with calibrated probabilities (Brier score below the
base rate's, a reliability table near the diagonal), the planted drivers ranked first and each
customer's drivers matching the planted contributions; with a duration, a planted Cox model's
hazard ratios and churn-within-horizon probabilities are recovered."""

from __future__ import annotations

import math
from functools import cache

import msgspec
import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import Direct, assert_valid_charts, run_direct

#: log-odds per unit of each numeric feature, and per contract
PLANTED = {"tenure": -0.06, "support_calls": 0.6, "monthly_charges": 0.03}
CONTRACT = {"monthly": 1.0, "yearly": -0.5, "two_year": -1.5}
NOISE = ["noise", "region"]


class Planted(msgspec.Struct, frozen=True):
    data: Records
    #: the planted churn probability of each customer
    probability: list[float]


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half)."""
    positive, negative = score[y == 1], score[y == 0]
    wins = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((wins + 0.5 * ties) / (len(positive) * len(negative)))


@cache
def _planted(rows: int = 4000, seed: int = 1) -> Planted:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 73, size=rows)
    calls = rng.poisson(1.5, size=rows)
    charges = rng.uniform(20, 120, size=rows).round(2)
    contract = rng.choice(list(CONTRACT), size=rows, p=[0.5, 0.3, 0.2])
    logit = (
        0.5
        + PLANTED["tenure"] * (tenure - 36)
        + PLANTED["support_calls"] * (calls - 1.5)
        + PLANTED["monthly_charges"] * (charges - 70)
        + np.array([CONTRACT[c] for c in contract])
    )
    probability = 1 / (1 + np.exp(-logit))
    churned = (rng.random(rows) < probability).astype(int)
    data: Records = [
        {
            "id": f"c{i}",
            "tenure": int(tenure[i]),
            "support_calls": int(calls[i]),
            "monthly_charges": float(charges[i]),
            "contract": str(contract[i]),
            "noise": float(rng.normal()),
            "region": str(rng.choice(["n", "s", "e", "w"])),
            "churned": int(churned[i]),
        }
        for i in range(rows)
    ]
    return Planted(data=data, probability=[float(p) for p in probability])


@cache
def _scored() -> Direct:
    return run_direct("churn", _planted().data, {"target": "churned", "id_column": "id", "top": 50})


def test_the_planted_model_is_matched_on_held_out_customers() -> None:
    planted = _planted()
    result = _scored().result
    y = np.array([row["churned"] for row in planted.data])
    planted_auc = _auc(y, np.array(planted.probability))
    metrics = result.metrics
    assert result.model == "logistic"
    assert metrics.holdout_rows == 1000
    assert metrics.auc == pytest.approx(planted_auc, abs=0.04)
    # calibrated: well below the base rate's Brier score, and near the diagonal
    assert metrics.brier < metrics.baseline_brier - 0.05
    assert metrics.brier_skill > 0.2
    assert metrics.calibration_error < 0.06
    assert len(result.calibration) == 10
    assert all(abs(b.observed - b.predicted) < 0.15 for b in result.calibration)
    assert [b.predicted for b in result.calibration] == sorted(
        b.predicted for b in result.calibration
    )
    assert result.churn_rate == pytest.approx(y.mean())
    # every row's probability follows the planted one
    fitted = np.array(result.probabilities)
    assert np.corrcoef(fitted, planted.probability)[0, 1] > 0.95
    assert np.abs(fitted - planted.probability).mean() < 0.05


def test_the_planted_drivers_rank_first_and_point_the_planted_way() -> None:
    drivers = _scored().result.drivers
    assert {d.feature for d in drivers[:4]} == {*PLANTED, "contract"}
    assert {d.feature for d in drivers[4:]} == set(NOISE)
    assert max(d.importance for d in drivers[4:]) < 0.2 * min(d.importance for d in drivers[:4])
    direction = {d.feature: d.direction for d in drivers}
    assert direction["tenure"] < -0.95
    assert direction["support_calls"] > 0.95
    assert direction["monthly_charges"] > 0.95
    assert direction["contract"] is None


def test_each_listed_customer_has_the_planted_contributions_as_drivers() -> None:
    """A listed customer's drivers are the planted ``coef * (x - mean x)`` terms (log-odds)."""
    planted = _planted()
    result = _scored().result
    rows = planted.data
    means = {name: np.mean([row[name] for row in rows]) for name in PLANTED}
    contract_mean = np.mean([CONTRACT[str(row["contract"])] for row in rows])
    assert len(result.customers) == 50
    assert [c.probability for c in result.customers] == sorted(
        (c.probability for c in result.customers), reverse=True
    )
    found, expected = [], []
    for customer in result.customers:
        row = rows[customer.row]
        assert customer.id == row["id"]
        assert row["churned"] == 0
        assert customer.probability == result.probabilities[customer.row]
        assert len(customer.drivers) == 3
        for driver in customer.drivers:
            assert driver.value == row[driver.feature]
            if driver.feature == "contract":
                truth = CONTRACT[str(row["contract"])] - contract_mean
            elif driver.feature in PLANTED:
                truth = PLANTED[driver.feature] * (
                    float(row[driver.feature]) - means[driver.feature]
                )
            else:
                truth = 0.0
            found.append(driver.effect)
            expected.append(truth)
    assert np.corrcoef(found, expected)[0, 1] > 0.9
    assert np.abs(np.array(found) - expected).mean() < 0.3
    # the riskiest customers not yet gone are riskier than any customer left unlisted
    unlisted = [
        p
        for i, p in enumerate(result.probabilities)
        if rows[i]["churned"] == 0 and i not in {c.row for c in result.customers}
    ]
    assert result.customers[-1].probability >= max(unlisted)


def test_an_interaction_a_linear_model_cannot_see_makes_boosting_the_choice() -> None:
    """Churn when exactly one of two usage signals is high: no line separates it."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1500, 3))
    churned = ((x[:, 0] > 0) ^ (x[:, 1] > 0)) ^ (rng.random(1500) < 0.1)
    data: Records = [
        {"logins": float(a), "tickets": float(b), "noise": float(c), "churned": int(y)}
        for (a, b, c), y in zip(x, churned, strict=True)
    ]
    result = run_direct("churn", data, {"target": "churned"}).result
    assert result.model == "gradient_boosting"
    by_family = {c.family: c.cv_auc for c in result.candidates}
    assert by_family["logistic"] < 0.6
    assert by_family["gradient_boosting"] > 0.8
    assert result.candidates[0].family == "gradient_boosting"
    assert result.metrics.auc > 0.8
    assert result.metrics.brier < result.metrics.baseline_brier - 0.05
    assert [d.feature for d in result.drivers[2:]] == ["noise"]


HAZARD = {"support_calls": 0.4, "monthly_charges": 0.02}
HAZARD_CONTRACT = {"monthly": 0.0, "two_year": -1.4, "yearly": -0.7}
BASE_HAZARD = 0.02


@cache
def _survival(rows: int = 1500, seed: int = 2) -> tuple[Records, list[float]]:
    """Exponential lifetimes (constant hazard 0.02 * exp(beta x) per month), censored at a
    uniform 1-60 months; also the planted probability of churn within 12 more months."""
    rng = np.random.default_rng(seed)
    calls = rng.poisson(1.5, size=rows)
    charges = rng.uniform(20, 120, size=rows).round(2)
    contract = rng.choice(list(HAZARD_CONTRACT), size=rows, p=[0.45, 0.25, 0.3])
    log_hazard = (
        HAZARD["support_calls"] * calls
        + HAZARD["monthly_charges"] * (charges - 70)
        + np.array([HAZARD_CONTRACT[c] for c in contract])
    )
    hazard = BASE_HAZARD * np.exp(log_hazard)
    lifetime = rng.exponential(1 / hazard)
    censor = rng.uniform(1, 60, size=rows)
    data: Records = [
        {
            "tenure": float(min(lifetime[i], censor[i])),
            "churned": int(lifetime[i] <= censor[i]),
            "support_calls": int(calls[i]),
            "monthly_charges": float(charges[i]),
            "contract": str(contract[i]),
            "noise": float(rng.normal()),
        }
        for i in range(rows)
    ]
    return data, [float(p) for p in 1 - np.exp(-12 * hazard)]


def test_with_a_duration_a_planted_cox_model_is_recovered() -> None:
    data, within_year = _survival()
    direct = run_direct(
        "churn", data, {"target": "churned", "duration": "tenure", "horizon": 12, "top": 1000}
    )
    result = direct.result
    assert result.model == "cox"
    assert result.horizon == 12
    assert result.candidates == []
    ratios = {ratio.term: ratio for ratio in result.hazard_ratios}
    assert set(ratios) == {
        "support_calls",
        "monthly_charges",
        "contract=two_year",
        "contract=yearly",
        "noise",
    }
    planted = {
        **{name: math.exp(beta) for name, beta in HAZARD.items()},
        "contract=two_year": math.exp(-1.4),
        "contract=yearly": math.exp(-0.7),
        "noise": 1.0,
    }
    for term, ratio in planted.items():
        assert ratios[term].lower < ratio < ratios[term].upper, (term, ratios[term])
    assert ratios["noise"].p_value > 0.01
    assert ratios["support_calls"].p_value < 1e-6
    assert [d.feature for d in result.drivers[-1:]] == ["noise"]
    assert result.concordance > 0.7
    assert result.metrics.auc > 0.7
    assert result.metrics.brier < result.metrics.baseline_brier
    # a still-active customer's chance of churning within 12 more months is the planted one
    # (exponential lifetimes forget how long a customer has stayed)
    active = [i for i, row in enumerate(data) if row["churned"] == 0]
    fitted = np.array([result.probabilities[i] for i in active])
    truth = np.array([within_year[i] for i in active])
    assert np.abs(fitted - truth).mean() < 0.04
    assert all(result.probabilities[i] is None for i, row in enumerate(data) if row["churned"])
    assert {c.row for c in result.customers} == set(active)
    assert_valid_charts(direct.charts)


def test_the_survival_model_s_advice_is_passed_on_as_a_warning() -> None:
    data, _ = _survival()
    tiny = [{**row, "rate": float(row["noise"]) * 1e-3} for row in data]
    direct = run_direct("churn", tiny, {"target": "churned", "duration": "tenure"})
    advice = [w for w in direct.warnings if w.startswith("Survival model:")]
    assert advice == ["Survival model: Column(s) ['rate'] have very low variance."]
    # the horizon defaults to the median observed duration
    median = float(np.median([row["tenure"] for row in data]))
    assert direct.result.horizon == pytest.approx(median)


def test_the_example_answers_with_valid_charts() -> None:
    method = METHODS["churn"]
    direct = run_direct("churn", method.example.data, method.example.params)
    result = direct.result
    assert len(result.customers) == 5
    assert all(c.id.startswith("c") for c in result.customers)
    assert result.metrics.auc > 0.7
    assert result.metrics.brier < result.metrics.baseline_brier
    assert result.drivers[-1].feature == "region"
    assert len(result.probabilities) == len(method.example.data)
    assert "held-out" in direct.summary
    assert_valid_charts(direct.charts)
    assert len(direct.charts) == 2


def test_same_seed_same_answer_and_progress_rises() -> None:
    method = METHODS["churn"]
    first = run_direct("churn", method.example.data, method.example.params, seed=3)
    again = run_direct("churn", method.example.data, method.example.params, seed=3)
    assert msgspec.json.encode(first.result) == msgspec.json.encode(again.result)
    assert first.summary == again.summary
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert len(fractions) >= 6


def _refused(data: Records, params: dict[str, object]) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("churn", data, params)
    return refused.value


def test_a_target_that_is_not_zero_or_one_is_a_400() -> None:
    data = [dict(row) for row in METHODS["churn"].example.data]
    data[7]["churned"] = 2
    error = _refused(data, {"target": "churned"})
    assert (error.code, error.param) == ("not_binary", "params.target")
    assert "row 7" in error.message


def test_too_few_churned_customers_is_a_400() -> None:
    data = [{**row, "churned": int(i < 5)} for i, row in enumerate(METHODS["churn"].example.data)]
    error = _refused(data, {"target": "churned"})
    assert (error.code, error.param) == ("rare_class", "params.target")
    assert "churned (1) has 5" in error.message


def test_a_horizon_without_a_duration_and_a_negative_duration_are_400s() -> None:
    data = METHODS["churn"].example.data
    error = _refused(data, {"target": "churned", "horizon": 12})
    assert (error.code, error.param) == ("horizon_without_duration", "params.horizon")
    negative = [{**row, "tenure": -1 if i == 3 else row["tenure"]} for i, row in enumerate(data)]
    error = _refused(negative, {"target": "churned", "duration": "tenure"})
    assert (error.code, error.param) == ("negative_duration", "params.duration")
    assert "'tenure'" in error.message


def test_the_id_column_among_the_features_is_a_400() -> None:
    error = _refused(
        METHODS["churn"].example.data,
        {"target": "churned", "id_column": "customer", "features": ["tenure", "customer"]},
    )
    assert (error.code, error.param) == ("target_in_features", "params.features")
    assert "'customer'" in error.message
