"""The market_basket engine: a planted rule A -> B (P(B|A) = 0.8, P(B) = 0.2, lift 4) is found
with exactly the support, confidence and lift the generated baskets' counts give, among
independent noise items that give no rule; the thresholds, limits and bad inputs behave."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

ROLES = {"transaction": "basket", "item": "item"}
BASKETS = 1000


def _planted(seed: int = 0) -> list[set[str]]:
    """1000 baskets: A in the first 250, B in 200 of those and nowhere else (P(B|A) = 0.8,
    P(B) = 0.2); twenty noise items each in a basket with probability 0.1, independently;
    a basket left empty gets one noise item."""
    rng = np.random.default_rng(seed)
    baskets: list[set[str]] = []
    for number in range(BASKETS):
        basket = {f"n{k:02d}" for k in range(20) if rng.random() < 0.1}
        if number < 250:
            basket.add("A")
            if number < 200:
                basket.add("B")
        if not basket:
            basket.add(f"n{int(rng.integers(20)):02d}")
        baskets.append(basket)
    return baskets


def _records(baskets: list[set[str]]) -> Records:
    return [
        {"basket": f"t{number}", "item": item}
        for number, basket in enumerate(baskets)
        for item in sorted(basket)
    ]


def _basket(data: Records, **params: Any) -> Any:
    return run_direct("market_basket", data, {**ROLES, **params})


def _count(baskets: list[set[str]], *items: str) -> int:
    return sum(1 for basket in baskets if set(items) <= basket)


def test_the_planted_rule_is_found_with_its_exact_measures() -> None:
    baskets = _planted()
    a, b, ab = _count(baskets, "A"), _count(baskets, "B"), _count(baskets, "A", "B")
    assert (a, b, ab) == (250, 200, 200)
    result = _basket(_records(baskets), min_support=0.05, min_lift=1.5).result
    assert result.transactions == BASKETS
    assert result.items == 22
    rules = {(tuple(rule.antecedent), tuple(rule.consequent)): rule for rule in result.rules}
    # Noise items are independent and too rare in pairs: only A and B make rules.
    assert set(rules) == {(("A",), ("B",)), (("B",), ("A",))}
    forward = rules[("A",), ("B",)]
    assert forward.support == ab / BASKETS == 0.2
    assert forward.confidence == ab / a == 0.8
    assert forward.lift == ab * BASKETS / (a * b) == 4.0
    assert forward.antecedent_support == a / BASKETS
    assert forward.consequent_support == b / BASKETS
    assert forward.count == ab
    assert forward.leverage == pytest.approx(0.2 - 0.25 * 0.2)
    assert forward.conviction == pytest.approx((1 - 0.2) / (1 - 0.8))
    backward = rules[("B",), ("A",)]
    assert (backward.confidence, backward.lift, backward.conviction) == (1.0, 4.0, None)


def test_every_measure_matches_the_counts_over_many_rules() -> None:
    baskets = _planted(seed=3)
    result = _basket(_records(baskets), min_support=0.01, min_confidence=0.1, max_length=3)
    assert result.result.rules_found > len(result.result.rules) == 100
    for rule in result.result.rules:
        items = [*rule.antecedent, *rule.consequent]
        both, left = _count(baskets, *items), _count(baskets, *rule.antecedent)
        right = _count(baskets, *rule.consequent)
        assert rule.count == both
        assert rule.confidence == both / left
        assert rule.lift == both * BASKETS / (left * right)
    lifts = [rule.lift for rule in result.result.rules]
    assert lifts == sorted(lifts, reverse=True)
    assert result.result.rules[0].lift >= 4.0


def test_the_thresholds_and_the_limit_choose_the_rules() -> None:
    data = _records(_planted())
    confident = _basket(data, min_support=0.05, min_confidence=0.9).result
    assert [(rule.antecedent, rule.consequent) for rule in confident.rules] == [(["B"], ["A"])]
    one = _basket(data, min_support=0.05, max_rules=1, sort_by="confidence").result
    assert (one.rules_found, len(one.rules), one.rules[0].antecedent) == (2, 1, ["B"])
    none = _basket(data, min_support=0.05, min_lift=5.0)
    assert none.result.rules == []
    assert none.result.rules_found == 0
    assert any("No rule" in warning for warning in none.warnings)
    assert_valid_charts(none.charts)


def test_a_repeated_item_in_a_basket_counts_once() -> None:
    data = _records(_planted())
    once = _basket(data, min_support=0.05).result
    twice = _basket(data + [row for row in data if row["item"] == "A"], min_support=0.05).result
    assert twice == once


def test_a_support_below_two_baskets_is_raised_to_two() -> None:
    data = _records(_planted()[:100])
    direct = _basket(data, min_support=0.001)
    assert direct.result.min_count == 2
    assert all(itemset.count >= 2 for itemset in direct.result.itemsets)
    assert any("at least 2" in warning for warning in direct.warnings)


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["market_basket"]
    first = run_direct("market_basket", method.example.data, method.example.params, seed=4)
    again = run_direct("market_basket", method.example.data, method.example.params, seed=4)
    assert first.result == again.result
    assert len(first.charts) == 2
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9
    pairs = {(tuple(rule.antecedent), tuple(rule.consequent)) for rule in first.result.rules}
    assert {(("diapers",), ("beer",)), (("salsa",), ("chips",))} <= pairs
    assert "salsa" in first.summary


def test_too_many_candidate_rules_is_a_400_naming_min_support() -> None:
    data: Records = [{"basket": t, "item": f"i{k:02d}"} for t in range(3) for k in range(16)]
    with pytest.raises(InvalidRequestError) as refused:
        _basket(data, min_support=0.5, max_length=6)
    assert (refused.value.code, refused.value.param) == ("too_many_rules", "params.min_support")
    assert "656616 candidate rules" in refused.value.message


def test_a_single_transaction_or_a_single_item_is_a_400() -> None:
    single: Records = [{"basket": "t1", "item": item} for item in "abcdef"]
    with pytest.raises(InvalidRequestError) as one_basket:
        _basket(single)
    assert (one_basket.value.code, one_basket.value.param) == (
        "too_few_transactions",
        "params.transaction",
    )
    same: Records = [{"basket": f"t{k}", "item": "milk"} for k in range(6)]
    with pytest.raises(InvalidRequestError) as one_item:
        _basket(same)
    assert (one_item.value.code, one_item.value.param) == ("constant_column", "params.item")
