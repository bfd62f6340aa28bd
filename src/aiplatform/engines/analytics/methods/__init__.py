"""Every analytic engine, by name: the one list a new engine is added to (one line each).

Each module declares one :class:`~aiplatform.engines.analytics.method.Method`; routes, calls,
schemas, the engine listing, contract tests and docs are made from these declarations.
"""

from __future__ import annotations

from typing import Any

from aiplatform.engines.analytics.method import Method
from aiplatform.engines.analytics.methods.anomaly import METHOD as ANOMALY
from aiplatform.engines.analytics.methods.budget_variance import METHOD as BUDGET_VARIANCE
from aiplatform.engines.analytics.methods.cash_flow import METHOD as CASH_FLOW
from aiplatform.engines.analytics.methods.chaos import METHOD as CHAOS
from aiplatform.engines.analytics.methods.chronos import METHOD as CHRONOS
from aiplatform.engines.analytics.methods.churn import METHOD as CHURN
from aiplatform.engines.analytics.methods.clustering import METHOD as CLUSTERING
from aiplatform.engines.analytics.methods.cost_optimization import METHOD as COST_OPTIMIZATION
from aiplatform.engines.analytics.methods.customer_ltv import METHOD as CUSTOMER_LTV
from aiplatform.engines.analytics.methods.faiss_retrieval import METHOD as FAISS_RETRIEVAL
from aiplatform.engines.analytics.methods.flash import METHOD as FLASH
from aiplatform.engines.analytics.methods.galileo import METHOD as GALILEO
from aiplatform.engines.analytics.methods.inventory_optimization import (
    METHOD as INVENTORY_OPTIMIZATION,
)
from aiplatform.engines.analytics.methods.lead_scoring import METHOD as LEAD_SCORING
from aiplatform.engines.analytics.methods.market_basket import METHOD as MARKET_BASKET
from aiplatform.engines.analytics.methods.mirror import METHOD as MIRROR
from aiplatform.engines.analytics.methods.newton import METHOD as NEWTON
from aiplatform.engines.analytics.methods.oracle import METHOD as ORACLE
from aiplatform.engines.analytics.methods.pricing_strategy import METHOD as PRICING_STRATEGY
from aiplatform.engines.analytics.methods.profit_margin import METHOD as PROFIT_MARGIN
from aiplatform.engines.analytics.methods.rag_evaluation import METHOD as RAG_EVALUATION
from aiplatform.engines.analytics.methods.revenue_forecast import METHOD as REVENUE_FORECAST
from aiplatform.engines.analytics.methods.roi_prediction import METHOD as ROI_PREDICTION
from aiplatform.engines.analytics.methods.scout import METHOD as SCOUT
from aiplatform.engines.analytics.methods.spend_pattern import METHOD as SPEND_PATTERN
from aiplatform.engines.analytics.methods.statistical import METHOD as STATISTICAL
from aiplatform.engines.analytics.methods.titan import METHOD as TITAN
from aiplatform.engines.analytics.methods.trend import METHOD as TREND
from aiplatform.engines.analytics.methods.universal_graph import METHOD as UNIVERSAL_GRAPH

__all__ = ["METHODS"]

_METHODS: tuple[Method[Any, Any], ...] = (
    ANOMALY,
    BUDGET_VARIANCE,
    CASH_FLOW,
    CHAOS,
    CHRONOS,
    CHURN,
    CLUSTERING,
    COST_OPTIMIZATION,
    CUSTOMER_LTV,
    FAISS_RETRIEVAL,
    FLASH,
    GALILEO,
    INVENTORY_OPTIMIZATION,
    LEAD_SCORING,
    MARKET_BASKET,
    MIRROR,
    NEWTON,
    ORACLE,
    PRICING_STRATEGY,
    PROFIT_MARGIN,
    RAG_EVALUATION,
    REVENUE_FORECAST,
    ROI_PREDICTION,
    SCOUT,
    SPEND_PATTERN,
    STATISTICAL,
    TITAN,
    TREND,
    UNIVERSAL_GRAPH,
)

METHODS: dict[str, Method[Any, Any]] = {method.name: method for method in _METHODS}
