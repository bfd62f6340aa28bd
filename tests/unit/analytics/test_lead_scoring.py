"""The lead_scoring engine: leads whose conversion follows a planted logistic model are scored
as well as that model scores them (held-out AUC), with calibrated probabilities (Brier score
below the base rate's), the planted drivers ranked first, score bands whose held-out
conversion falls from A to D, and new leads scored in their order as the planted model
would."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import Direct, assert_valid_charts, run_direct

SOURCE = {"referral": 1.2, "event": 0.4, "organic": 0.0, "ads": -0.8}
#: log-odds per unit of each planted numeric feature
PLANTED = {"pages_viewed": 0.12, "emails_opened": 0.25, "demo_requested": 1.5}
NOISE = ["weekday", "company_age"]


def _leads(rows: int, seed: int) -> tuple[Records, np.ndarray]:
    """Leads and their planted conversion probabilities."""
    rng = np.random.default_rng(seed)
    source = rng.choice(list(SOURCE), size=rows)
    pages = rng.integers(1, 31, size=rows)
    emails = rng.integers(0, 13, size=rows)
    demo = (rng.random(rows) < 0.3).astype(int)
    logit = (
        -1.5
        + np.array([SOURCE[s] for s in source])
        + PLANTED["pages_viewed"] * (pages - 15)
        + PLANTED["emails_opened"] * (emails - 6)
        + PLANTED["demo_requested"] * demo
    )
    probability = 1 / (1 + np.exp(-logit))
    data: Records = [
        {
            "lead": f"L{seed}-{i}",
            "source": str(source[i]),
            "pages_viewed": int(pages[i]),
            "emails_opened": int(emails[i]),
            "demo_requested": int(demo[i]),
            "weekday": str(rng.choice(["mon", "tue", "wed", "thu", "fri"])),
            "company_age": float(rng.uniform(0, 40)),
        }
        for i in range(rows)
    ]
    converted = rng.random(rows) < probability
    for row, outcome in zip(data, converted, strict=True):
        row["converted"] = int(outcome)
    return data, probability


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    positive, negative = score[y == 1], score[y == 0]
    wins = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((wins + 0.5 * ties) / (len(positive) * len(negative)))


@cache
def _scored() -> Direct:
    data, _ = _leads(4000, seed=1)
    new, _ = _leads(200, seed=2)
    return run_direct(
        "lead_scoring",
        data,
        {"target": "converted", "id_column": "lead"},
        tables={"predict": [{k: v for k, v in row.items() if k != "converted"} for row in new]},
    )


def test_the_planted_model_is_matched_on_held_out_leads() -> None:
    data, probability = _leads(4000, seed=1)
    y = np.array([row["converted"] for row in data])
    result = _scored().result
    metrics = result.metrics
    assert result.model == "logistic"
    assert result.rows == 4000
    assert result.conversion_rate == pytest.approx(y.mean())
    assert metrics.holdout_rows == 1000
    assert metrics.auc == pytest.approx(_auc(y, probability), abs=0.04)
    assert metrics.brier < metrics.baseline_brier - 0.05
    assert metrics.calibration_error < 0.06
    assert all(abs(b.observed - b.predicted) < 0.15 for b in result.calibration)


def test_the_planted_drivers_rank_first() -> None:
    drivers = _scored().result.drivers
    assert {d.feature for d in drivers[:4]} == {*PLANTED, "source"}
    assert {d.feature for d in drivers[4:]} == set(NOISE)
    assert max(d.importance for d in drivers[4:]) < 0.2 * min(d.importance for d in drivers[:4])
    assert all(d.direction > 0.95 for d in drivers if d.feature in PLANTED)


def test_held_out_conversion_falls_from_band_a_to_band_d() -> None:
    bands = _scored().result.bands
    assert [band.band for band in bands] == ["A", "B", "C", "D"]
    assert [band.min_score for band in bands] == sorted(
        (band.min_score for band in bands), reverse=True
    )
    assert bands[-1].min_score == 0.0
    rates = [band.conversion_rate for band in bands]
    assert rates == sorted(rates, reverse=True)
    assert rates[0] > rates[-1] + 0.4
    assert sum(band.leads for band in bands) == 1000
    for band in bands:
        assert band.conversion_rate == band.converted / band.leads
        assert 200 <= band.leads <= 300  # equal shares, as placed by the measured model


def test_new_leads_are_scored_in_their_order_as_the_planted_model_scores_them() -> None:
    new, probability = _leads(200, seed=2)
    result = _scored().result
    assert result.new_leads
    assert [lead.row for lead in result.leads] == list(range(200))
    assert [lead.id for lead in result.leads] == [row["lead"] for row in new]
    scores = np.array([lead.probability for lead in result.leads])
    assert np.corrcoef(scores, probability)[0, 1] > 0.97
    assert np.abs(scores - probability).mean() < 0.04
    names = [band.band for band in result.bands]
    floors = [band.min_score for band in result.bands]
    for lead in result.leads:
        assert lead.score == pytest.approx(100 * lead.probability, abs=0.05)
        # the highest band whose floor the lead reaches
        reached = next(k for k, floor in enumerate(floors) if 100 * lead.probability >= floor)
        assert lead.band == names[reached]
        assert len(lead.drivers) == 3
        row = new[lead.row]
        for driver in lead.drivers:
            assert driver.value == row[driver.feature]
    # a lead that asked for a demo owes to it a rise of about the planted 1.5 * 0.7 log-odds
    demo = [
        d.effect
        for lead in result.leads
        for d in lead.drivers
        if d.feature == "demo_requested" and d.value == 1
    ]
    assert demo
    assert np.mean(demo) == pytest.approx(PLANTED["demo_requested"] * 0.7, abs=0.3)


def test_without_new_leads_the_open_leads_are_listed_highest_first() -> None:
    data, _ = _leads(300, seed=3)
    direct = run_direct(
        "lead_scoring", data, {"target": "converted", "id_column": "lead", "top": 15}
    )
    leads = direct.result.leads
    assert not direct.result.new_leads
    assert len(leads) == 15
    assert all(data[lead.row]["converted"] == 0 for lead in leads)
    assert all(lead.id == data[lead.row]["lead"] for lead in leads)
    assert [lead.score for lead in leads] == sorted((lead.score for lead in leads), reverse=True)
    assert "not yet converted" in direct.summary


def test_a_new_lead_with_an_unseen_source_is_still_scored() -> None:
    data, _ = _leads(300, seed=3)
    new = [{k: v for k, v in data[0].items() if k != "converted"}]
    new[0]["source"] = "podcast"
    new[0]["pages_viewed"] = None
    direct = run_direct("lead_scoring", data, {"target": "converted"}, tables={"predict": new})
    (lead,) = direct.result.leads
    assert 0 < lead.probability < 1
    assert lead.id is None


def test_the_example_answers_with_valid_charts() -> None:
    method = METHODS["lead_scoring"]
    params = method.example.params
    direct = run_direct(
        "lead_scoring", method.example.data, params, tables={"predict": params.predict}
    )
    first, second = direct.result.leads
    assert (first.id, second.id) == ("N1", "N2")
    assert first.band == "A"
    assert second.band == "D"
    assert first.probability > 0.8
    assert second.probability < 0.2
    assert direct.result.metrics.brier < direct.result.metrics.baseline_brier
    assert "held-out" in direct.summary
    assert len(direct.charts) == 3
    assert_valid_charts(direct.charts)


def test_same_seed_same_answer_and_progress_rises() -> None:
    method = METHODS["lead_scoring"]
    params = method.example.params
    tables: dict[str, Any] = {"predict": params.predict}
    first = run_direct("lead_scoring", method.example.data, params, seed=4, tables=tables)
    again = run_direct("lead_scoring", method.example.data, params, seed=4, tables=tables)
    assert msgspec.json.encode(first.result) == msgspec.json.encode(again.result)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert len(fractions) >= 6


def test_a_text_outcome_is_a_400_naming_it() -> None:
    data = [
        {**row, "converted": "yes" if row["converted"] else "no"}
        for row in METHODS["lead_scoring"].example.data
    ]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("lead_scoring", data, {"target": "converted"})
    assert (refused.value.code, refused.value.param) == ("not_numeric", "params.target")
    assert "'converted'" in refused.value.message


def test_new_leads_without_a_feature_are_a_400_naming_it() -> None:
    method = METHODS["lead_scoring"]
    new = [{"source": "ads", "pages_viewed": 3, "emails_opened": 1, "weekday": "mon"}]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct(
            "lead_scoring",
            method.example.data,
            {"target": "converted", "id_column": "lead"},
            tables={"predict": new},
        )
    assert (refused.value.code, refused.value.param) == ("unknown_column", "params.predict")
    assert "'demo_requested'" in refused.value.message
