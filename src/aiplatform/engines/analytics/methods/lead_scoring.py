"""lead_scoring: a fitted, calibrated model of which leads convert, its score bands, each lead's
drivers, and scores for new leads.

``target`` says whether a lead converted (1) or not (0). The model is the one
:mod:`._classifier` fits: a logistic model or gradient boosting, chosen by cross-validated AUC
on three quarters of the leads, calibrated with ``CalibratedClassifierCV``, measured on the
quarter held out (AUC, Brier score against the base rate's, a reliability table) and refit on
every lead to score. A lead's score is its calibrated probability in points (0-100). The bands
cut the data's leads into equal shares by score, A the highest; each band reports the
conversion rate observed among the data's leads in it. A lead's drivers are the
interventional one-feature attributions of the model's log-odds (for the logistic model, the
exact Shapley values ``coef * (x - mean x)``).

Leads given in ``predict`` are scored in their order; without them the data's leads that have
not converted are listed, highest score first.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import (
    Cell,
    Method,
    MethodExample,
    Outcome,
    Records,
    Run,
    TableInput,
)
from aiplatform.engines.analytics.methods import _classifier as clf
from aiplatform.engines.analytics.methods._classifier import (
    ClassifierCandidate,
    ClassifierContribution,
    ClassifierDriver,
    ClassifierMetrics,
    ClassifierReliability,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "LeadBand",
    "LeadScoringParams",
    "LeadScoringResult",
    "ScoredLead",
]

_MIN_ROWS = 40


class LeadScoringParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The outcome column: 1 for a lead that converted, 0 for one that did not.
    target: str
    #: The columns to score from (default: every column but the target and ``id_column``).
    #: Non-numeric ones are one-hot encoded; missing numbers are filled with the median.
    features: Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    #: The column naming each lead in ``leads`` (default: none; rows are numbered).
    id_column: str | None = None
    #: New leads to score (records or a dataset id) holding the feature columns; the target,
    #: if present, is ignored. Answered in their order in ``leads``.
    predict: TableInput | None = None
    #: How many score bands (A the highest), each holding an equal share of the data's leads.
    bands: Annotated[int, msgspec.Meta(ge=2, le=10)] = 4
    #: Without ``predict``: how many of the data's leads that have not converted are listed,
    #: highest score first.
    top: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    #: How many drivers each listed lead gets.
    drivers_per_lead: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3


class LeadBand(msgspec.Struct, kw_only=True):
    #: ``A`` (the highest scores), ``B``, ...
    band: str
    #: The lowest score a lead needs for the band (0 for the last band): the data's leads
    #: split into equal shares by score.
    min_score: float
    #: The held-out leads in the band (placed by the model measured on them, with its own
    #: equal shares of its fitting leads), and how many of them converted.
    leads: int
    converted: int
    #: The share of them that converted (None: no held-out lead fell in the band).
    conversion_rate: float | None


class ScoredLead(msgspec.Struct, kw_only=True):
    #: The lead's row in its table (``predict``, or the data), 0-based.
    row: int
    #: Its ``id_column`` value (None without one).
    id: Cell
    #: The calibrated probability that the lead converts.
    probability: float
    #: The probability in points, 0-100.
    score: float
    band: str
    #: The features that push its score most, largest |effect| first.
    drivers: list[ClassifierContribution]


class LeadScoringResult(msgspec.Struct, kw_only=True):
    #: ``logistic`` or ``gradient_boosting``.
    model: str
    #: Leads the model was fitted on.
    rows: int
    #: The share of them that converted (the baseline gives it to every lead).
    conversion_rate: float
    #: The model on the held-out leads, against the base rate.
    metrics: ClassifierMetrics
    #: The held-out reliability table: probability against observed conversion, in equal bins.
    calibration: list[ClassifierReliability]
    #: The families compared by cross-validation, the chosen one first.
    candidates: list[ClassifierCandidate]
    #: Every feature by its mean |effect| on the leads, largest first.
    drivers: list[ClassifierDriver]
    #: The score bands, A first.
    bands: list[LeadBand]
    #: The new leads in their order (with ``predict``), or the data's leads that have not
    #: converted, highest score first.
    leads: list[ScoredLead]
    #: True when ``leads`` are the rows of ``predict``.
    new_leads: bool


@dataclass(slots=True)
class _Data:
    x: pd.DataFrame
    y: np.ndarray[Any, Any]
    features: clf.Features
    #: positions in the data of the usable rows
    rows: np.ndarray[Any, Any]
    #: the new leads (``predict``) and their features, read as the data's were
    new: pd.DataFrame | None
    x_new: pd.DataFrame | None


def _read(frame: pd.DataFrame, params: LeadScoringParams, run: Run) -> tuple[_Data, pd.DataFrame]:
    """The usable rows and the feature table of every row."""
    import numpy as np

    columns.column(frame, params.target, "target")
    target = clf.binary_target(frame, params.target, "target", "converted")
    reserved = {params.target: "target"}
    if params.id_column is not None:
        columns.column(frame, params.id_column, "id_column")
        reserved[params.id_column] = "id column"
    names = clf.feature_names(frame, params.features, reserved)
    x, features = clf.read_features(frame, names)
    keep = target.notna()
    if not bool(keep.all()):
        run.warn(f"{int((~keep).sum())} rows without a target value were left out of the fit.")
    columns.require_rows(int(keep.sum()), _MIN_ROWS, "lead_scoring")
    y = target[keep].to_numpy(dtype=int)
    clf.require_classes(y, params.target, "target", ("not converted", "converted"))
    missing = x[features.numeric].isna().any(axis=1) & keep
    if bool(missing.any()):
        run.warn(f"{int(missing.sum())} rows miss a feature value; each is filled with its median.")
    new = run.table("predict")
    data = _Data(
        x=x.loc[keep].reset_index(drop=True),
        y=y,
        features=features,
        rows=np.flatnonzero(keep.to_numpy()),
        new=new,
        x_new=clf.read_rows(new, features, "predict") if new is not None else None,
    )
    return data, x


# ---------------------------------------------------------------- bands


def _edges(probability: np.ndarray[Any, Any], count: int) -> np.ndarray[Any, Any]:
    """The lowest probability of each band but the last, A's first: quantiles of the data's
    leads, so that each band holds an equal share of them."""
    import numpy as np

    return np.asarray(np.quantile(probability, [1 - k / count for k in range(1, count)]))


def _band_of(
    probability: np.ndarray[Any, Any], edges: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Each probability's band index (0: A): the number of band floors above it."""
    import numpy as np

    return np.asarray((probability[:, None] < edges[None, :]).sum(axis=1))


def _label(index: int) -> str:
    return chr(ord("A") + index)


def _bands(scored: clf.Scored, edges: np.ndarray[Any, Any]) -> list[LeadBand]:
    """The bands' floors (``edges``, of the refit model) and the conversion of the held-out
    leads in each: an honest lift table, as the leads were not fitted on."""
    index = _band_of(scored.holdout_p, _edges(scored.fitting_p, len(edges) + 1))
    y = scored.holdout_y
    bands = []
    for k in range(len(edges) + 1):
        inside = index == k
        leads, converted = int(inside.sum()), int(y[inside].sum())
        bands.append(
            LeadBand(
                band=_label(k),
                min_score=100.0 * float(edges[k]) if k < len(edges) else 0.0,
                leads=leads,
                converted=converted,
                conversion_rate=converted / leads if leads else None,
            )
        )
    return bands


# ---------------------------------------------------------------- leads


@dataclass(slots=True)
class _Listing:
    """The leads listed: their table (for ids), rows in it, features and probabilities."""

    table: pd.DataFrame
    rows: np.ndarray[Any, Any]
    x: pd.DataFrame
    probability: np.ndarray[Any, Any]
    new: bool


def _listing(
    frame: pd.DataFrame, x_all: pd.DataFrame, data: _Data, model: Any, params: LeadScoringParams
) -> _Listing:
    """The new leads in their order; without them, the data's leads that have not converted,
    highest score first (the first ``top``)."""
    import numpy as np

    if data.new is not None and data.x_new is not None:
        probability = model.predict_proba(data.x_new)[:, 1]
        rows = np.arange(len(data.new))
        return _Listing(data.new, rows, data.x_new, np.asarray(probability), new=True)
    everyone = model.predict_proba(x_all)[:, 1]
    converted = np.zeros(len(frame), dtype=bool)
    converted[data.rows[data.y == 1]] = True
    open_leads = np.flatnonzero(~converted)
    rows = open_leads[np.argsort(-everyone[open_leads], kind="stable")][: params.top]
    return _Listing(frame, rows, x_all.iloc[rows], np.asarray(everyone[rows]), new=False)


def _ids(listing: _Listing, params: LeadScoringParams) -> pd.Series | None:
    """The listed table's id column (new leads may come without one)."""
    if params.id_column is None or params.id_column not in listing.table.columns:
        return None
    return listing.table[params.id_column]


def _leads(
    listing: _Listing,
    effects: np.ndarray[Any, Any],
    edges: np.ndarray[Any, Any],
    data: _Data,
    params: LeadScoringParams,
) -> list[ScoredLead]:
    ids = _ids(listing, params)
    bands = _band_of(listing.probability, edges)
    return [
        ScoredLead(
            row=int(row),
            id=charts.json_safe(ids.iloc[int(row)]) if ids is not None else None,
            probability=float(p),
            score=round(100.0 * float(p), 1),
            band=_label(int(band)),
            drivers=clf.contributions(
                effects[i], listing.x.iloc[i], data.features.names, params.drivers_per_lead
            ),
        )
        for i, (row, p, band) in enumerate(
            zip(listing.rows, listing.probability, bands, strict=True)
        )
    ]


def compute(frame: pd.DataFrame, params: LeadScoringParams, run: Run) -> Outcome[LeadScoringResult]:
    data, x_all = _read(frame, params, run)
    run.progress(0.05, "reading the leads")
    with clf.quiet():
        scored = clf.score(data.x, data.y, data.features, run)
        fitted = scored.model.predict_proba(data.x)[:, 1]
        edges = _edges(fitted, params.bands)
        listing = _listing(frame, x_all, data, scored.model, params)
        sampled = clf.driver_sample(len(data.y), run.seed)
        run.progress(0.75, "attributing the scores to the features")
        effects = clf.local_effects(
            clf.log_odds(scored.model),
            _stack(data.x.iloc[sampled], listing.x),
            data.x,
            run,
            (0.75, 0.2),
        )
    run.progress(0.95, "listing the scored leads")
    result = LeadScoringResult(
        model=scored.family,
        rows=len(data.y),
        conversion_rate=float(data.y.mean()),
        metrics=scored.metrics,
        calibration=scored.reliability,
        candidates=scored.candidates,
        drivers=clf.global_drivers(effects[: len(sampled)], data.x.iloc[sampled], data.features),
        bands=_bands(scored, edges),
        leads=_leads(listing, effects[len(sampled) :], edges, data, params),
        new_leads=listing.new,
    )
    run.progress(1.0, "done")
    return Outcome(result=result, summary=_summary(result), charts=_charts(result))


def _stack(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    return pd.concat([first, second], ignore_index=True)


# ---------------------------------------------------------------- outcome


def _summary(result: LeadScoringResult) -> str:
    metrics = result.metrics
    model = (
        "a calibrated logistic model"
        if result.model == "logistic"
        else "calibrated gradient boosting"
    )
    auc = f"AUC {metrics.auc:.3f}, " if metrics.auc is not None else ""
    text = (
        f"lead_scoring fitted {model} on {result.rows} leads (conversion rate "
        f"{result.conversion_rate:.1%}). On {metrics.holdout_rows} held-out leads it reaches "
        f"{auc}Brier score {metrics.brier:.3f} against {metrics.baseline_brier:.3f} for the "
        f"base rate."
    )
    top, bottom = result.bands[0], result.bands[-1]
    if top.conversion_rate is not None and bottom.conversion_rate is not None:
        text += (
            f" Of the held-out leads, band {top.band} (score {top.min_score:.0f} and up) "
            f"converted {top.conversion_rate:.0%}, band {bottom.band} "
            f"{bottom.conversion_rate:.0%}."
        )
    text += f" The strongest drivers: {', '.join(d.feature for d in result.drivers[:3])}."
    if result.new_leads:
        counts = {band.band: 0 for band in result.bands}
        for lead in result.leads:
            counts[lead.band] += 1
        text += (
            f" {len(result.leads)} new {'lead was' if len(result.leads) == 1 else 'leads were'} "
            f"scored; {counts[top.band]} in band {top.band}."
        )
    elif result.leads:
        first = result.leads[0]
        who = f"'{first.id}'" if first.id is not None else f"row {first.row}"
        text += f" Of the leads not yet converted, {who} scores highest ({first.score:.0f})."
    return text


def _charts(result: LeadScoringResult) -> list[dict[str, Any]]:
    bands = charts.bar(
        [
            {"band": band.band, "conversion_rate": band.conversion_rate, "leads": band.leads}
            for band in result.bands
        ],
        charts.field("band", "ordinal", title="Score band"),
        charts.field("conversion_rate", "quantitative", title="Conversion rate"),
        tooltip=[charts.field("leads", "quantitative")],
        title="Conversion rate of the held-out leads by score band",
    )
    return [
        clf.drivers_chart(result.drivers, "What drives conversion", "log-odds"),
        clf.reliability_chart(
            result.calibration, "Predicted against observed conversion (held-out)"
        ),
        bands,
    ]


def _example() -> Records:
    """Leads: referrals and events convert best, as do leads who view pages, open emails and
    ask for a demo; the weekday they came in on does not matter."""
    rng = random.Random(0)
    source_effect = {"referral": 1.0, "event": 0.5, "organic": 0.0, "ads": -0.6}
    records: Records = []
    for i in range(200):
        source = rng.choice(list(source_effect))
        pages = rng.randint(1, 30)
        emails = rng.randint(0, 12)
        demo = rng.random() < 0.3
        weekday = rng.choice(["mon", "tue", "wed", "thu", "fri"])
        score = (
            -1.2
            + 1.5 * source_effect[source]
            + 0.15 * (pages - 15)
            + 0.3 * (emails - 6)
            + (1.8 if demo else 0.0)
        )
        converted = int(rng.random() < 1.0 / (1.0 + math.exp(-score)))
        records.append(
            {
                "lead": f"L{i:03d}",
                "source": source,
                "pages_viewed": pages,
                "emails_opened": emails,
                "demo_requested": int(demo),
                "weekday": weekday,
                "converted": converted,
            }
        )
    return records


METHOD: Method[LeadScoringParams, LeadScoringResult] = Method(
    name="lead_scoring",
    summary="Lead scores from a fitted, calibrated conversion model: held-out AUC and Brier "
    "score, score bands, each lead's drivers, and scores for new leads.",
    params=LeadScoringParams,
    result=LeadScoringResult,
    compute=compute,
    example=MethodExample(
        data=_example(),
        params=LeadScoringParams(
            target="converted",
            id_column="lead",
            predict=[
                {
                    "lead": "N1",
                    "source": "referral",
                    "pages_viewed": 25,
                    "emails_opened": 9,
                    "demo_requested": 1,
                    "weekday": "tue",
                },
                {
                    "lead": "N2",
                    "source": "ads",
                    "pages_viewed": 2,
                    "emails_opened": 0,
                    "demo_requested": 0,
                    "weekday": "fri",
                },
            ],
        ),
    ),
    tables=("predict",),
    numeric_param="target",
    min_rows=_MIN_ROWS,
)
