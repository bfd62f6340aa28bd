"""market_basket: which items are bought together, as frequent itemsets and association rules.

The table is long: one row per (transaction, item); an item repeated within a transaction
counts once. The baskets become a sparse one-hot table and FP-growth (mlxtend) finds every
itemset in at least ``min_support`` of them; mlxtend then splits each frequent itemset into
rules "antecedent -> consequent". Each rule's support, confidence, lift, leverage and
conviction are computed from the integer counts of baskets holding its items, so they are
exact ratios of the data's counts; a rule is kept when its confidence and lift reach the
thresholds. An itemset seen in a single basket is no pattern: the support threshold is never
below two baskets.
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run
from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "Itemset", "MarketBasketParams", "MarketBasketResult", "Rule"]

#: Fewest baskets an itemset must be in to count as frequent.
MIN_COUNT = 2
#: At most this many frequent itemsets are listed (the most frequent); rules use them all.
MAX_LISTED_ITEMSETS = 1_000
#: More candidate rules than this (an itemset of k items splits into 2^k - 2):
#: min_support is too low, or max_length too high, for rules to be enumerated in time.
MAX_CANDIDATES = 200_000
#: The item chart shows this many items.
CHART_ITEMS = 20

SortKey = Literal["lift", "confidence", "support", "leverage"]


class MarketBasketParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column identifying the transaction (basket) of each row.
    transaction: str
    #: Column with the item bought (one item per row).
    item: str
    #: Smallest share of baskets an itemset must be in to be frequent (never fewer than two
    #: baskets).
    min_support: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.01
    #: Smallest confidence, P(consequent | antecedent), a rule must have.
    min_confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    #: Smallest lift, confidence / P(consequent), a rule must have (1: no better than chance).
    min_lift: Annotated[float, msgspec.Meta(ge=0.0)] = 1.0
    #: Most items in an itemset (antecedent and consequent together).
    max_length: Annotated[int, msgspec.Meta(ge=2, le=10)] = 4
    #: Most rules to report (the best by ``sort_by``).
    max_rules: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    #: The measure rules are ranked by (highest first).
    sort_by: SortKey = "lift"


class Rule(msgspec.Struct, kw_only=True):
    #: Items that, bought together, make the consequent likelier (sorted).
    antecedent: list[str]
    consequent: list[str]
    #: Share of baskets holding every item of the rule.
    support: float
    #: P(consequent | antecedent): share of the antecedent's baskets that hold the consequent.
    confidence: float
    #: confidence / P(consequent): how many times likelier the consequent is with the
    #: antecedent than without knowing it (1: independent).
    lift: float
    #: support - P(antecedent) * P(consequent): the share of baskets beyond chance.
    leverage: float
    #: (1 - P(consequent)) / (1 - confidence); None when the confidence is 1 (unbounded).
    conviction: float | None
    #: Share of baskets holding the antecedent, and the consequent.
    antecedent_support: float
    consequent_support: float
    #: Baskets holding every item of the rule.
    count: int


class Itemset(msgspec.Struct, kw_only=True):
    items: list[str]
    support: float
    #: Baskets holding every item.
    count: int


class MarketBasketResult(msgspec.Struct, kw_only=True):
    #: The rules, best first by ``sort_by`` (at most ``max_rules``).
    rules: list[Rule]
    #: Rules that meet the thresholds, before ``max_rules`` is applied.
    rules_found: int
    #: Frequent itemsets, highest support first (at most 1000 listed).
    itemsets: list[Itemset]
    #: Frequent itemsets found.
    itemsets_found: int
    #: Baskets: distinct transactions.
    transactions: int
    #: Distinct items.
    items: int
    #: The support threshold in baskets: ceil(min_support * transactions), at least 2.
    min_count: int


@dataclass(frozen=True, slots=True)
class _Baskets:
    """The one-hot baskets (sparse, one boolean column per item, items sorted)."""

    onehot: pd.DataFrame
    transactions: int


def _baskets(frame: pd.DataFrame, params: MarketBasketParams, run: Run) -> _Baskets:
    """Roles checked; rows missing a transaction or an item left out with a warning; each
    basket's distinct items as a sparse boolean table."""
    import numpy as np
    import pandas as pd
    from scipy import sparse

    transaction = columns.column(frame, params.transaction, "transaction")
    item = columns.categorical(frame, params.item, "item")
    pairs = pd.DataFrame({"transaction": transaction, "item": item})
    missing = pairs.isna().any(axis=1)
    if bool(missing.any()):
        run.warn(f"{int(missing.sum())} rows miss a transaction or an item; they are left out.")
    pairs = pairs[~missing].astype(str).drop_duplicates()
    rows, baskets = pd.factorize(pairs["transaction"])
    names = sorted(pairs["item"].unique())
    if len(baskets) < 2:
        raise InvalidRequestError(
            f"Association rules need at least 2 transactions; '{params.transaction}' holds "
            f"{len(baskets)}.",
            param="params.transaction",
            code="too_few_transactions",
        )
    cols = pd.Categorical(pairs["item"], categories=names).codes
    matrix = sparse.csr_matrix(
        (np.ones(len(pairs), dtype=np.uint8), (rows, cols)), shape=(len(baskets), len(names))
    )
    onehot = pd.DataFrame.sparse.from_spmatrix(matrix, columns=names)
    return _Baskets(onehot=onehot.astype(pd.SparseDtype(bool, False)), transactions=len(baskets))


def _itemsets(baskets: _Baskets, params: MarketBasketParams, min_count: int) -> pd.DataFrame:
    """Frequent itemsets (FP-growth) with their basket counts."""
    from mlxtend.frequent_patterns import fpgrowth  # type: ignore[import-untyped,unused-ignore]

    # A hair below the count's share, so float rounding cannot drop an itemset at the edge.
    threshold = (min_count - 0.5) / baskets.transactions
    found = fpgrowth(
        baskets.onehot, min_support=threshold, use_colnames=True, max_len=params.max_length
    )
    found["count"] = (found["support"] * baskets.transactions).round().astype(int)
    return found


def _candidates(found: pd.DataFrame, total: int, params: MarketBasketParams) -> pd.DataFrame:
    """Rules from the frequent itemsets (mlxtend) that reach about ``min_confidence``; a 400
    when there would be too many to enumerate."""
    from mlxtend.frequent_patterns import (  # type: ignore[import-untyped,unused-ignore]
        association_rules,
    )

    sizes = found["itemsets"].map(len)
    possible = int(sum(2**size - 2 for size in sizes))
    if possible > MAX_CANDIDATES:
        raise InvalidRequestError(
            f"The {len(found)} frequent itemsets split into {possible} candidate rules, more "
            f"than {MAX_CANDIDATES}; raise min_support or lower max_length.",
            param="params.min_support",
            code="too_many_rules",
        )
    if possible == 0:
        return found.iloc[0:0].assign(antecedents=[], consequents=[])
    with warnings.catch_warnings():
        # Measures it computes beside those asked for divide by zero for certain rules.
        warnings.simplefilter("ignore", RuntimeWarning)
        return association_rules(
            found[["support", "itemsets"]],
            num_itemsets=total,
            metric="confidence",
            # A hair lower: the exact test is made on the counts (see _Measures).
            min_threshold=max(0.0, params.min_confidence - 1e-9),
            return_metrics=["support", "confidence"],
        )


@dataclass(frozen=True, slots=True)
class _Measures:
    """Every candidate rule's measures, as exact ratios of basket counts: ``both`` baskets
    hold all its items, ``left`` the antecedent, ``right`` the consequent."""

    antecedents: list[frozenset[str]]
    consequents: list[frozenset[str]]
    both: np.ndarray
    left: np.ndarray
    right: np.ndarray
    total: int
    support: np.ndarray
    confidence: np.ndarray
    lift: np.ndarray
    leverage: np.ndarray

    def rule(self, k: int) -> Rule:
        both, left, right = int(self.both[k]), int(self.left[k]), int(self.right[k])
        confidence = both / left
        return Rule(
            antecedent=sorted(self.antecedents[k]),
            consequent=sorted(self.consequents[k]),
            support=both / self.total,
            confidence=confidence,
            lift=both * self.total / (left * right),
            leverage=both / self.total - (left / self.total) * (right / self.total),
            conviction=(1 - right / self.total) / (1 - confidence) if both < left else None,
            antecedent_support=left / self.total,
            consequent_support=right / self.total,
            count=both,
        )


def _measures(candidates: pd.DataFrame, counts: dict[frozenset[str], int], total: int) -> _Measures:
    """The measures of every candidate, computed as :meth:`_Measures.rule` computes them
    (products of counts stay far below 2^53, so the floats are the same)."""
    import numpy as np

    antecedents = [frozenset(items) for items in candidates["antecedents"]]
    consequents = [frozenset(items) for items in candidates["consequents"]]
    pairs = zip(antecedents, consequents, strict=True)
    both = np.array([counts[a | c] for a, c in pairs], dtype=np.int64)
    left = np.array([counts[a] for a in antecedents], dtype=np.int64)
    right = np.array([counts[c] for c in consequents], dtype=np.int64)
    return _Measures(
        antecedents=antecedents,
        consequents=consequents,
        both=both,
        left=left,
        right=right,
        total=total,
        support=both / total,
        confidence=both / np.maximum(left, 1),
        lift=both * total / np.maximum(left * right, 1),
        leverage=both / total - (left / total) * (right / total),
    )


def _best(measures: _Measures, params: MarketBasketParams) -> tuple[list[Rule], int]:
    """The rules that reach the thresholds, best first by ``sort_by`` (at most
    ``max_rules``), and how many reach them."""
    import numpy as np

    confidence, support = measures.confidence, measures.support
    keep = np.flatnonzero(
        (confidence >= params.min_confidence) & (measures.lift >= params.min_lift)
    )
    ranked = getattr(measures, params.sort_by)
    order = sorted(
        (int(k) for k in keep),
        key=lambda k: (
            -ranked[k],
            -confidence[k],
            -support[k],
            len(measures.antecedents[k]) + len(measures.consequents[k]),
            sorted(measures.antecedents[k]),
            sorted(measures.consequents[k]),
        ),
    )
    return [measures.rule(k) for k in order[: params.max_rules]], len(keep)


def _min_count(params: MarketBasketParams, total: int, run: Run) -> int:
    """The support threshold in baskets: ceil(min_support * total), at least MIN_COUNT."""
    # Rounded first: 0.07 * 100 is 7.000000000000001 in floats, and means 7 baskets.
    count = math.ceil(round(params.min_support * total, 9))
    if count < MIN_COUNT:
        run.warn(
            f"min_support {params.min_support:g} of {total} baskets is fewer than {MIN_COUNT} "
            f"baskets; itemsets must be in at least {MIN_COUNT}."
        )
    return max(count, MIN_COUNT)


def _item_chart(itemsets: list[Itemset]) -> dict[str, Any]:
    singles = [itemset for itemset in itemsets if len(itemset.items) == 1][:CHART_ITEMS]
    return charts.bar(
        [{"item": itemset.items[0], "support": itemset.support} for itemset in singles],
        charts.field("item", "nominal", title="item", sort="-y"),
        charts.field("support", "quantitative", title="share of baskets"),
        title=f"The {len(singles)} most frequent items",
    )


def _rule_chart(rules: list[Rule]) -> dict[str, Any]:
    return charts.point(
        [
            {
                "rule": f"{', '.join(rule.antecedent)} → {', '.join(rule.consequent)}",
                "support": rule.support,
                "confidence": rule.confidence,
                "lift": rule.lift,
            }
            for rule in rules
        ],
        charts.field("support", "quantitative", title="support"),
        charts.field("confidence", "quantitative", title="confidence"),
        color=charts.field("lift", "quantitative", title="lift"),
        size=charts.field("lift", "quantitative", title="lift"),
        tooltip=[
            charts.field("rule", "nominal"),
            charts.field("lift", "quantitative", format=".2f"),
        ],
        title="Association rules: support, confidence and lift",
    )


def _summary(result: MarketBasketResult, params: MarketBasketParams) -> str:
    text = (
        f"{result.transactions} baskets hold {result.items} distinct items; "
        f"{result.itemsets_found} itemsets are in at least {result.min_count} baskets "
        f"(min_support {params.min_support:g}). {result.rules_found} rules reach confidence "
        f"{params.min_confidence:g} and lift {params.min_lift:g}"
    )
    if not result.rules:
        return text + "."
    top = result.rules[0]
    return text + (
        f"; the strongest by {params.sort_by}: {{{', '.join(top.antecedent)}}} → "
        f"{{{', '.join(top.consequent)}}} in {top.count} baskets (support {top.support:.3g}, "
        f"confidence {top.confidence:.3g}, lift {top.lift:.3g})."
    )


def compute(
    frame: pd.DataFrame, params: MarketBasketParams, run: Run
) -> Outcome[MarketBasketResult]:
    baskets = _baskets(frame, params, run)
    total = baskets.transactions
    min_count = _min_count(params, total, run)
    run.progress(0.2, "finding frequent itemsets (FP-growth)")
    found = _itemsets(baskets, params, min_count)
    counts = {
        frozenset(items): int(count)
        for items, count in zip(found["itemsets"], found["count"], strict=True)
    }
    run.progress(0.6, "deriving association rules")
    candidates = _candidates(found, total, params)
    rules, rules_found = _best(_measures(candidates, counts, total), params)
    run.progress(0.85, "listing itemsets")
    itemsets = sorted(
        (
            Itemset(items=sorted(items), support=count / total, count=count)
            for items, count in counts.items()
        ),
        key=lambda itemset: (-itemset.count, len(itemset.items), itemset.items),
    )
    if len(itemsets) > MAX_LISTED_ITEMSETS:
        run.warn(
            f"{len(itemsets)} itemsets are frequent; the {MAX_LISTED_ITEMSETS} most frequent "
            "are listed."
        )
    result = MarketBasketResult(
        rules=rules,
        rules_found=rules_found,
        itemsets=itemsets[:MAX_LISTED_ITEMSETS],
        itemsets_found=len(itemsets),
        transactions=total,
        items=len(baskets.onehot.columns),
        min_count=min_count,
    )
    run.progress(0.95, "drawing charts")
    drawn = [_rule_chart(result.rules)] if result.rules else []
    if not result.rules:
        run.warn("No rule reaches the thresholds; lower min_support, min_confidence or min_lift.")
    return Outcome(
        result=result,
        summary=_summary(result, params),
        charts=[*drawn, _item_chart(result.itemsets)],
    )


def _example_data() -> Records:
    """Sixty grocery baskets: diapers come with beer in most baskets that have them, chips
    with salsa, and the other items are picked independently."""
    rng = random.Random(0)
    staples = {"bread": 0.4, "milk": 0.35, "eggs": 0.3, "coffee": 0.2, "apples": 0.25}
    rows: Records = []
    for number in range(60):
        basket = [name for name, chance in staples.items() if rng.random() < chance]
        if rng.random() < 0.3:
            basket.append("diapers")
            if rng.random() < 0.8:
                basket.append("beer")
        elif rng.random() < 0.1:
            basket.append("beer")
        if rng.random() < 0.25:
            basket.append("chips")
            if rng.random() < 0.7:
                basket.append("salsa")
        rows.extend({"basket": f"B{number:03d}", "item": name} for name in basket or ["bread"])
    return rows


METHOD: Method[MarketBasketParams, MarketBasketResult] = Method(
    name="market_basket",
    summary="Items bought together: frequent itemsets and association rules (FP-growth) with "
    "support, confidence and lift.",
    params=MarketBasketParams,
    result=MarketBasketResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=MarketBasketParams(transaction="basket", item="item", min_support=0.1),
    ),
    min_rows=4,
)
