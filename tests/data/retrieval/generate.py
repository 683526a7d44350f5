"""Generate the retrieval test set: encyclopaedia-style articles about invented subjects, and
queries worded differently from the text, each with its known relevant chunk.

Deterministic (a fixed seed, no clock): running it again writes byte-identical files, and a test
checks that. ``python tests/data/retrieval/generate.py`` rewrites ``documents.jsonl`` and
``queries.jsonl`` beside it.

Five kinds of article (towns, rivers, beetles, inventors, festivals), four sections each. Every
article names its subject in its title; sections reuse attribute pools, so many chunks look
alike and only names and rare words tell them apart. Three kinds of query:

* ``named``: the subject's name plus a paraphrase of the section that keeps at most a word or
  two of it ("Which work keeps the families of Velmora employed?"): the name finds the article,
  meaning (and a shared word) the section.
* ``described``: a paraphrase of a pair of attributes that is unique in the corpus, and no name
  ("which beetle has a shimmering green shell and dwells in caves underground?"): meaning only.
* ``keyword``: a rare coined word from one chunk, in a short question: words only.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261126
PER_KIND = 40

_ONSETS = [
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "gr",
    "kr",
    "st",
    "th",
    "tr",
    "sk",
    "vel",
    "mor",
    "ash",
    "cal",
    "hel",
    "ost",
]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ia", "ou", "ei"]
_CODAS = ["", "n", "r", "l", "s", "th", "nd", "rk", "sk", "m", "x", "v"]


def coin(rng: random.Random, taken: set[str], syllables: tuple[int, int] = (2, 3)) -> str:
    while True:
        parts = [
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
            for _ in range(rng.randint(*syllables))
        ]
        word = "".join(parts)
        if 5 <= len(word) <= 12 and word not in taken:
            taken.add(word)
            return word


# Each attribute: (how the article says it, how a query paraphrases it).
INDUSTRIES = [
    ("salt mining in deep shafts", "extracting salt from underground"),
    ("wool weaving on hand looms", "making cloth from sheep fleece"),
    ("glassblowing in family workshops", "shaping molten glass"),
    ("timber felling and sawmills", "cutting down forests for lumber"),
    ("copper smelting", "melting ore to produce a reddish metal"),
    ("cheese making from goat milk", "turning dairy into aged food"),
    ("shipbuilding on the estuary", "constructing boats and vessels"),
    ("beekeeping and mead brewing", "raising honey insects and fermenting drinks"),
    ("pottery fired in kilns", "baking clay vessels"),
    ("vineyards on terraced slopes", "growing grapes for wine"),
]
FOUNDINGS = [
    ("founded by exiled monks", "religious refugees established it"),
    ("built around a Roman-era fort", "grew up beside an ancient military camp"),
    ("settled by fishermen", "people who caught fish were the first inhabitants"),
    (
        "established as a toll station on a trade road",
        "began as a place to collect fees from merchants",
    ),
    (
        "raised after a great flood destroyed an older village",
        "was rebuilt after water wiped out its predecessor",
    ),
    ("chartered by a queen as a market town", "a female monarch granted it trading rights"),
]
CUSTOMS = [
    (
        "a lantern procession every midwinter",
        "people carry lights through the streets in the coldest season",
    ),
    ("a horse race along the main street", "an equestrian contest through the town centre"),
    ("a choir competition held each spring", "singing groups compete when flowers bloom"),
    ("a bonfire on the longest day", "a big fire is lit at the summer solstice"),
    ("a puppet theatre tradition", "shows performed with marionettes"),
    ("a boat blessing on the harbour", "priests consecrate the fishing fleet"),
]
COLOURS = [
    ("an iridescent emerald carapace", "a shimmering green shell"),
    ("a matte black carapace with orange bands", "a dark shell striped with bright stripes"),
    ("a metallic blue carapace", "a shiny sky-coloured shell"),
    ("a rust-red carapace speckled with white", "a reddish-brown shell with pale dots"),
    ("a translucent amber carapace", "a see-through golden shell"),
]
HABITATS = [
    ("limestone caverns", "caves underground"),
    ("rotting logs in old-growth forest", "decaying wood in ancient woodland"),
    ("salt marshes near the coast", "brackish wetlands by the sea"),
    ("alpine meadows above the tree line", "high mountain grassland"),
    ("desert dunes", "sandy arid wastes"),
]
DIETS = [
    ("feeds on fungal spores", "eats mushroom seeds"),
    ("preys on smaller insects", "hunts other little bugs"),
    ("consumes pollen and nectar", "lives on flower dust and sugary liquid"),
    ("scavenges carrion", "eats dead animals"),
    ("chews living leaves", "eats the foliage of plants"),
]
INVENTIONS = [
    (
        "a pendulum clock with a temperature-compensated rod",
        "a timekeeping device unaffected by heat",
    ),
    ("a steam-driven loom", "a weaving machine powered by boiling water"),
    ("a folding telescope", "a collapsible instrument to see distant things"),
    ("a waterproof varnish for ships", "a coating that keeps boats from leaking"),
    ("a mechanical calculator with stepped drums", "a machine that does arithmetic"),
    ("an early diving bell", "equipment for breathing underwater"),
]
RIVER_USES = [
    ("powers a chain of water mills", "its current turns wheels that grind grain"),
    ("is dammed to irrigate orchards", "is held back to water fruit trees"),
    ("carries barges of coal to the coast", "boats haul fuel downstream to the sea"),
    ("is famous for its salmon fishery", "is well known for catching a pink-fleshed fish"),
]


@dataclass
class Chunk:
    chunk_id: str
    position: int
    heading: str
    text: str


@dataclass
class Article:
    document_id: str
    kind: str
    title: str
    chunks: list[Chunk]


def article(kind: str, index: int, title: str, sections: list[tuple[str, str]]) -> Article:
    document_id = f"{kind}-{index:03d}"
    chunks = [
        Chunk(f"{document_id}-{p}", p, heading, text) for p, (heading, text) in enumerate(sections)
    ]
    return Article(document_id, kind, title, chunks)


def generate() -> tuple[list[Article], list[dict[str, object]]]:
    rng = random.Random(SEED)
    taken: set[str] = set()
    articles: list[Article] = []
    queries: list[dict[str, object]] = []
    described: dict[str, list[tuple[tuple[int, int], str, str]]] = {}
    keywords: list[tuple[str, str, str]] = []

    named_count = 0

    def named(chunk_id: str, text: str) -> None:
        nonlocal named_count
        named_count += 1
        if named_count % 6 == 0:
            queries.append({"kind": "named", "query": text, "relevant": [chunk_id]})

    for i in range(PER_KIND):
        name = coin(rng, taken).capitalize()
        river = coin(rng, taken).capitalize()
        industry, founding, custom = (
            rng.randrange(len(INDUSTRIES)),
            rng.randrange(len(FOUNDINGS)),
            rng.randrange(len(CUSTOMS)),
        )
        population = rng.randrange(2, 90) * 1000
        dish = coin(rng, taken)
        a = article(
            "town",
            i,
            name,
            [
                (
                    "Overview",
                    f"{name} is a town of about {population:,} inhabitants on the banks of "
                    f"the {river}. It is the seat of its district and has a covered market, "
                    f"a stone bridge and a small museum of local history.",
                ),
                (
                    "History",
                    f"{name} was {FOUNDINGS[founding][0]}. Its walls were extended twice in "
                    f"the following centuries, and the old quarter still follows the medieval "
                    f"street plan.",
                ),
                (
                    "Economy",
                    f"The economy of {name} rests on {INDUSTRIES[industry][0]}, which employs "
                    f"most families. The guild's profits pay for {CUSTOMS[custom][0]}, the "
                    f"town's best-known tradition.",
                ),
                (
                    "Culture",
                    f"Visitors to {name} come for {dish}, a spiced bread baked only in this "
                    f"town, and for the paintings in the parish church.",
                ),
            ],
        )
        articles.append(a)
        c = a.chunks
        named(c[2].chunk_id, f"Which work keeps the families of {name} employed?")
        named(c[1].chunk_id, f"Who first settled {name}, and when were its walls enlarged?")
        described.setdefault("town", []).append(
            (
                (industry, custom),
                c[2].chunk_id,
                f"a town that lives from {INDUSTRIES[industry][1]} and where {CUSTOMS[custom][1]}",
            )
        )
        keywords.append((c[3].chunk_id, dish, f"where can I taste {dish}?"))

    for i in range(PER_KIND):
        name = coin(rng, taken).capitalize()
        source, mouth = coin(rng, taken).capitalize(), coin(rng, taken).capitalize()
        use = rng.randrange(len(RIVER_USES))
        length = rng.randrange(40, 900)
        fish = coin(rng, taken)
        a = article(
            "river",
            i,
            f"{name} (river)",
            [
                (
                    "Course",
                    f"The {name} rises in the {source} hills and flows {length} kilometres to "
                    f"the sea at {mouth}. Its valley is broad and its lower reaches meander.",
                ),
                (
                    "Ecology",
                    f"The {name} is home to otters, herons and the rare {fish} minnow, which "
                    f"spawns in its gravel beds each autumn.",
                ),
                (
                    "History",
                    f"A battle was fought at a ford of the {name} in the fourteenth century, "
                    f"and a bridge was first built across it two hundred years later.",
                ),
                (
                    "Uses",
                    f"Today the {name} {RIVER_USES[use][0]}. A towpath follows its banks for "
                    f"much of its length.",
                ),
            ],
        )
        articles.append(a)
        c = a.chunks
        named(c[0].chunk_id, f"Where does the {name} begin, and where does it reach the sea?")
        keywords.append((c[1].chunk_id, fish, f"{fish} breeding grounds"))

    for i in range(PER_KIND):
        name = coin(rng, taken).capitalize()
        colour, habitat, diet = (
            rng.randrange(len(COLOURS)),
            rng.randrange(len(HABITATS)),
            rng.randrange(len(DIETS)),
        )
        size = rng.randrange(3, 40)
        a = article(
            "beetle",
            i,
            f"{name} beetle",
            [
                (
                    "Description",
                    f"The {name} beetle is {size} millimetres long, has "
                    f"{COLOURS[colour][0]} and lives in {HABITATS[habitat][0]}.",
                ),
                (
                    "Range",
                    f"The {name} beetle is found in {rng.randrange(2, 30)} provinces and "
                    f"shelters from predators during the day; its antennae are short and clubbed.",
                ),
                (
                    "Diet",
                    f"The {name} beetle {DIETS[diet][0]}. Larvae and adults share the same food.",
                ),
                (
                    "Behaviour",
                    f"The {name} beetle is active at dusk. Males fight for mates by "
                    f"pushing each other off twigs.",
                ),
            ],
        )
        articles.append(a)
        c = a.chunks
        named(c[2].chunk_id, f"What food does the {name} beetle live on?")
        described.setdefault("beetle", []).append(
            (
                (colour, habitat),
                c[0].chunk_id,
                f"which beetle has {COLOURS[colour][1]} and dwells in {HABITATS[habitat][1]}?",
            )
        )

    for i in range(PER_KIND):
        first, last = coin(rng, taken, (1, 2)).capitalize(), coin(rng, taken).capitalize()
        invention = rng.randrange(len(INVENTIONS))
        born = rng.randrange(1600, 1880)
        home = coin(rng, taken).capitalize()
        a = article(
            "inventor",
            i,
            f"{first} {last}",
            [
                (
                    "Early life",
                    f"{first} {last} was born in {born} in {home}, the son of a "
                    f"carpenter. He was apprenticed to a clockmaker at the age of twelve.",
                ),
                (
                    "Invention",
                    f"{last} is remembered for {INVENTIONS[invention][0]}, which he "
                    f"demonstrated before a learned society in {born + 35}.",
                ),
                (
                    "Career",
                    f"{last} later ran a workshop employing forty craftsmen and sold his "
                    f"instruments across the continent.",
                ),
                (
                    "Legacy",
                    f"A street in {home} is named after {last}, and his notebooks are kept "
                    f"in the city archive.",
                ),
            ],
        )
        articles.append(a)
        c = a.chunks
        named(c[1].chunk_id, f"What device is {first} {last} remembered for?")

    for i in range(PER_KIND):
        name = coin(rng, taken).capitalize()
        custom = rng.randrange(len(CUSTOMS))
        pastry = coin(rng, taken)
        month = rng.choice(["March", "May", "July", "September", "November"])
        a = article(
            "festival",
            i,
            f"{name} festival",
            [
                (
                    "Origins",
                    f"The {name} festival began as a harvest thanksgiving and is held every "
                    f"year in {month}.",
                ),
                ("Customs", f"The high point of the {name} festival is {CUSTOMS[custom][0]}."),
                (
                    "Food",
                    f"During the {name} festival families share {pastry}, a honey pastry "
                    f"filled with walnuts and poppy seeds.",
                ),
                (
                    "Modern era",
                    f"Since the 1970s the {name} festival has drawn tourists, and a "
                    f"committee of volunteers now organises it.",
                ),
            ],
        )
        articles.append(a)
        c = a.chunks
        named(c[2].chunk_id, f"Which pastry do families eat at the {name} celebration?")
        keywords.append((c[2].chunk_id, pastry, f"recipe for {pastry}"))

    # Described queries only for attribute pairs that are unique in their kind.
    for items in described.values():
        counts: dict[tuple[int, int], int] = {}
        for key, _, _ in items:
            counts[key] = counts.get(key, 0) + 1
        unique = [(chunk_id, text) for key, chunk_id, text in items if counts[key] == 1]
        for chunk_id, text in unique[:10]:
            queries.append({"kind": "described", "query": text, "relevant": [chunk_id]})
    for chunk_id, _, text in keywords[::4]:
        queries.append({"kind": "keyword", "query": text, "relevant": [chunk_id]})
    return articles, queries


def write() -> None:
    articles, queries = generate()
    with (HERE / "documents.jsonl").open("w", encoding="utf-8") as out:
        for a in articles:
            row = {
                "document_id": a.document_id,
                "kind": a.kind,
                "title": a.title,
                "chunks": [c.__dict__ for c in a.chunks],
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (HERE / "queries.jsonl").open("w", encoding="utf-8") as out:
        for n, q in enumerate(queries):
            out.write(json.dumps({"id": f"q{n:03d}", **q}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write()
