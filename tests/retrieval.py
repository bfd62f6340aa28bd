"""A small labelled retrieval set, and recall@k / MRR over rankings of it.

Each document describes one made-up town: its region, what it is known for and its registry
code. A third of the queries name the town, a third only paraphrase what it is known for
(meaning must find it), a third quote the registry code (an identifier embeddings barely
capture, words find it at once). The towns share regions and sentence patterns, so every
document is a distractor for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LabelledSet", "labelled_set", "mrr", "recall_at"]

_TOWNS = [
    "Varnholt", "Quellmar", "Dostrava", "Pellimore", "Ashcombe", "Brindlemoor", "Castelvane",
    "Dunmarrow", "Elsworth", "Fenwick", "Galtmere", "Harrowgate", "Ilvermoor", "Jorvath",
    "Kestrelford", "Lindqvist", "Marrowdale", "Norbury", "Ostvale", "Pendrake", "Quarrington",
    "Rosslyn", "Sablecourt", "Tamberlow",
]  # fmt: skip
_REGIONS = ["the northern province", "the river valley", "the eastern coast", "the high plateau"]
_KNOWN_FOR = [
    ("its glassblowing workshops", "Which town makes glass by blowing it?"),
    ("a cheese aged in limestone caves", "Where is cheese matured underground?"),
    ("a yearly kite festival on its beaches", "Where can I watch people fly kites by the sea?"),
    (
        "an observatory with the largest telescope in the country",
        "Where do astronomers study the stars?",
    ),
    ("violin makers who work with local maple", "Where are string instruments crafted by hand?"),
    ("a bridge built entirely of basalt", "Which place has a crossing made of volcanic stone?"),
    ("tea plantations on steep terraces", "Where are tea leaves grown on hillsides?"),
    ("a museum of antique clocks", "Where can I see old timepieces on display?"),
    ("salt harvested from evaporation ponds", "Where is sea salt produced?"),
    ("a marathon run through its vineyards", "Which town holds a long race among grapevines?"),
    ("a shipyard that builds wooden sailboats", "Where are traditional yachts constructed?"),
    (
        "hot springs used for bathing since Roman times",
        "Where can I soak in natural thermal water?",
    ),
    ("a library of medieval manuscripts", "Where are handwritten books from the Middle Ages kept?"),
    ("beekeepers who produce lavender honey", "Where does flower-scented honey come from?"),
    ("a wind farm with two hundred turbines", "Which place makes a lot of electricity from wind?"),
    ("a ceramics school famous for blue glazes", "Where can students learn pottery?"),
    ("a forest of ancient redwood trees", "Where are there very old giant trees?"),
    ("an annual chess tournament for children", "Where do young players compete at chess?"),
    ("copper mines dug three thousand years ago", "Where was metal ore mined in ancient times?"),
    ("a carnival with masked parades", "Where do people march in costumes and masks?"),
    ("a zoo devoted to penguins", "Where can I watch flightless seabirds?"),
    ("chocolate factories open to visitors", "Where can I tour a place that makes cocoa sweets?"),
    (
        "a lighthouse that guides ships through the strait",
        "Which place has a tower that warns sailors?",
    ),
    ("rice paddies watered by mountain streams", "Where is rice farmed with water from the hills?"),
]


@dataclass(frozen=True, slots=True)
class LabelledSet:
    #: ``(id, text)`` of every document.
    documents: list[tuple[str, str]]
    #: ``(query, id of the one relevant document)``.
    queries: list[tuple[str, str]]
    #: The kind of each query: ``name``, ``paraphrase`` or ``code``.
    kinds: list[str]


def labelled_set() -> LabelledSet:
    documents = []
    queries = []
    kinds = []
    for number, (town, (known_for, paraphrase)) in enumerate(zip(_TOWNS, _KNOWN_FOR, strict=True)):
        key = f"town-{number}"
        region = _REGIONS[number % len(_REGIONS)]
        code = f"{town[:2].upper()}{(number * 7919) % 9000 + 1000}"
        documents.append(
            (
                key,
                f"{town} is a small town in {region}. It is best known for {known_for}. "
                f"Visitors reach {town} by train or by the regional bus. "
                f"Its registry code is {code}.",
            )
        )
        queries += [
            (f"What is {town} known for?", key),
            (paraphrase, key),
            (f"Which town has the registry code {code}?", key),
        ]
        kinds += ["name", "paraphrase", "code"]
    return LabelledSet(documents=documents, queries=queries, kinds=kinds)


def recall_at(rankings: Sequence[Sequence[str]], relevant: Sequence[str], k: int) -> float:
    """The share of queries whose relevant document is among the first ``k``."""
    hits = sum(1 for ranking, key in zip(rankings, relevant, strict=True) if key in ranking[:k])
    return hits / len(relevant)


def mrr(rankings: Sequence[Sequence[str]], relevant: Sequence[str]) -> float:
    """Mean reciprocal rank of the relevant document (0 when it is not ranked)."""
    total = 0.0
    for ranking, key in zip(rankings, relevant, strict=True):
        if key in ranking:
            total += 1.0 / (ranking.index(key) + 1)
    return total / len(relevant)
