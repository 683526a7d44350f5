"""The GraphStore contract: one set of test bodies, run against every adapter."""

from __future__ import annotations

from kglab_graph.domain import (
    Alias,
    ChunkRef,
    Entity,
    Mention,
    RelationCandidate,
    entity_id,
    normalise_key,
)
from kglab_graph.store.port import GraphStore
from tests.contract.graph.fakes import apply_script, script

# A chain A=B-C-D-E plus A-F; A=B has weight 2 (two sentences), every other relation weight 1.
CHAIN = script(
    "Ada Lovelace/PERSON; Charles Babbage/PERSON",
    "Ada Lovelace/PERSON; Charles Babbage/PERSON",
    "Charles Babbage/PERSON; Analytical Engine Society/ORG",
    "Analytical Engine Society/ORG; London/GPE",
    "London/GPE; Mary Somerville/PERSON",
    "Ada Lovelace/PERSON; Royal Society/ORG",
)


def eid(owner: str, name: str) -> str:
    return entity_id(owner, normalise_key(name))


async def counts(store: GraphStore, owner: str, document_id: str) -> tuple[int, int, int]:
    subgraph = await store.document_graph(owner, document_id, limit=200)
    assert subgraph is not None
    detail = await store.get_entity(owner, eid(owner, "Ada Lovelace"))
    assert detail is not None
    return len(subgraph.entities), sum(r.weight for r in subgraph.relations), detail.mentions


async def test_applying_a_document_twice_changes_nothing(
    graph_store: GraphStore, owners: list[str]
) -> None:
    owner = owners[0]
    await apply_script(graph_store, owner, "doc-1", CHAIN)
    first = await counts(graph_store, owner, "doc-1")
    await apply_script(graph_store, owner, "doc-1", CHAIN)

    assert await counts(graph_store, owner, "doc-1") == first == (6, 6, 3)
    detail = await graph_store.get_entity(owner, eid(owner, "Ada Lovelace"))
    assert detail is not None
    assert detail.degree == 2
    assert [d.document_id for d in detail.top_documents] == ["doc-1"]


async def test_reapplying_a_changed_document_replaces_its_part(
    graph_store: GraphStore, owners: list[str]
) -> None:
    owner = owners[0]
    await apply_script(graph_store, owner, "doc-1", script("Ada Lovelace/PERSON; London/GPE"))
    await apply_script(
        graph_store, owner, "doc-1", script("Ada Lovelace/PERSON; Royal Society/ORG")
    )

    assert await graph_store.get_entity(owner, eid(owner, "London")) is None
    subgraph = await graph_store.document_graph(owner, "doc-1", limit=50)
    assert subgraph is not None
    assert sorted(e.name for e in subgraph.entities) == ["Ada Lovelace", "Royal Society"]
    assert len(subgraph.relations) == 1


async def test_delete_removes_only_what_no_other_document_supports(
    graph_store: GraphStore, owners: list[str]
) -> None:
    owner = owners[0]
    await apply_script(
        graph_store,
        owner,
        "doc-1",
        script("Ada Lovelace/PERSON; Charles Babbage/PERSON", "Ada Lovelace/PERSON; London/GPE"),
    )
    await apply_script(
        graph_store,
        owner,
        "doc-2",
        script("Ada Lovelace/PERSON; Charles Babbage/PERSON", "Charles Babbage/PERSON; Paris/GPE"),
    )
    ada = eid(owner, "Ada Lovelace")
    babbage = eid(owner, "Charles Babbage")
    before = await graph_store.neighbors(owner, ada, depth=1)
    assert before is not None
    assert {r.weight for r in before.relations if {r.source_id, r.target_id} == {ada, babbage}} == {
        2
    }

    assert await graph_store.delete_document(owner, "doc-1") is True

    assert await graph_store.get_entity(owner, eid(owner, "London")) is None  # orphaned
    detail = await graph_store.get_entity(owner, ada)
    assert detail is not None  # still named by doc-2
    assert detail.mentions == 1
    assert [d.document_id for d in detail.top_documents] == ["doc-2"]
    after = await graph_store.neighbors(owner, ada, depth=1)
    assert after is not None
    assert [e.name for e in after.entities] == ["Ada Lovelace", "Charles Babbage"]
    assert [(r.weight) for r in after.relations] == [1]
    assert await graph_store.document_graph(owner, "doc-1", limit=10) is None

    assert await graph_store.delete_document(owner, "doc-2") is True
    assert await graph_store.delete_document(owner, "doc-2") is False
    assert await graph_store.get_entity(owner, ada) is None
    assert await graph_store.search_entities(owner, "Charles Babbage", 10) == []


async def test_mentions_and_relations_land_on_their_own_entities(
    graph_store: GraphStore, owners: list[str]
) -> None:
    """Entities named in a different order in each chunk, some in several chunks: every mention
    count and every relation weight belongs to the right entity (the Neo4j adapter addresses
    the merged nodes by their position in the batch)."""
    owner = owners[0]
    await apply_script(
        graph_store,
        owner,
        "doc-1",
        script("Ada Lovelace/PERSON; London/GPE", "London/GPE; Paris/GPE; Ada Lovelace/PERSON"),
        script("Paris/GPE; Charles Babbage/PERSON", "Paris/GPE"),
    )
    names = ["Ada Lovelace", "London", "Paris", "Charles Babbage"]
    mentions = {}
    for name in names:
        detail = await graph_store.get_entity(owner, eid(owner, name))
        assert detail is not None
        mentions[name] = detail.mentions
    assert mentions == {"Ada Lovelace": 2, "London": 2, "Paris": 3, "Charles Babbage": 1}

    subgraph = await graph_store.document_graph(owner, "doc-1", limit=50)
    assert subgraph is not None
    by_id = {e.id: e.name for e in subgraph.entities}
    weights = {
        frozenset((by_id[r.source_id], by_id[r.target_id])): r.weight for r in subgraph.relations
    }
    assert weights == {
        frozenset(("Ada Lovelace", "London")): 2,
        frozenset(("London", "Paris")): 1,
        frozenset(("Ada Lovelace", "Paris")): 1,
        frozenset(("Paris", "Charles Babbage")): 1,
    }


async def test_search_tolerates_typos(graph_store: GraphStore, owners: list[str]) -> None:
    owner = owners[0]
    await apply_script(
        graph_store,
        owner,
        "doc-1",
        script(
            "Marie Curie/PERSON; Pierre Curie/PERSON",
            "Albert Einstein/PERSON; Paris/GPE",
        ),
    )

    results = await graph_store.search_entities(owner, "Mari Curie", 5)
    assert results
    assert results[0].entity.name == "Marie Curie"
    assert (await graph_store.search_entities(owner, "einstien", 5))[0].entity.name == (
        "Albert Einstein"
    )
    assert await graph_store.search_entities(owner, "Zanzibar", 5) == []
    assert len(await graph_store.search_entities(owner, "Curie", 1)) == 1


async def test_search_sees_each_write_at_once(graph_store: GraphStore, owners: list[str]) -> None:
    """Searches between writes answer from the state after the last write (Neo4j's full-text
    index applies updates after commit; the store waits for them after its own writes)."""
    owner = owners[0]
    await apply_script(graph_store, owner, "doc-1", script("Ada Lovelace/PERSON; London/GPE"))
    assert [r.entity.name for r in await graph_store.search_entities(owner, "Ada", 5)] == [
        "Ada Lovelace"
    ]
    assert await graph_store.search_entities(owner, "Somerville", 5) == []

    await apply_script(graph_store, owner, "doc-2", script("Mary Somerville/PERSON; Paris/GPE"))
    found = await graph_store.search_entities(owner, "Somerville", 5)
    assert [r.entity.name for r in found] == ["Mary Somerville"]

    assert await graph_store.delete_document(owner, "doc-2")
    assert await graph_store.search_entities(owner, "Somerville", 5) == []
    assert [r.entity.name for r in await graph_store.search_entities(owner, "Ada", 5)] == [
        "Ada Lovelace"
    ]


async def test_neighbors_by_depth_type_weight_and_limit(
    graph_store: GraphStore, owners: list[str]
) -> None:
    owner = owners[0]
    await apply_script(graph_store, owner, "doc-1", CHAIN)
    ada = eid(owner, "Ada Lovelace")

    async def names(**kwargs: object) -> list[tuple[str, int]]:
        subgraph = await graph_store.neighbors(owner, ada, **kwargs)  # type: ignore[arg-type]
        assert subgraph is not None
        assert subgraph.entities[0].id == ada
        return [(e.name, subgraph.distances[e.id]) for e in subgraph.entities[1:]]

    assert await names(depth=1) == [("Charles Babbage", 1), ("Royal Society", 1)]
    assert await names(depth=2) == [
        ("Charles Babbage", 1),
        ("Royal Society", 1),
        ("Analytical Engine Society", 2),
    ]
    assert await names(depth=3) == [
        ("Charles Babbage", 1),
        ("Royal Society", 1),
        ("Analytical Engine Society", 2),
        ("London", 3),
    ]
    assert await names(depth=3, min_weight=2) == [("Charles Babbage", 1)]
    assert await names(depth=3, types=["ORG"]) == [
        ("Royal Society", 1),
        ("Analytical Engine Society", 2),
    ]
    assert await names(depth=3, limit=1) == [("Charles Babbage", 1)]

    subgraph = await graph_store.neighbors(owner, ada, depth=2)
    assert subgraph is not None
    pairs = {frozenset((r.source_id, r.target_id)): r.weight for r in subgraph.relations}
    assert pairs[frozenset((ada, eid(owner, "Charles Babbage")))] == 2
    assert len(pairs) == 3
    assert await graph_store.neighbors(owner, "ent_missing", depth=1) is None


async def test_shortest_path(graph_store: GraphStore, owners: list[str]) -> None:
    owner = owners[0]
    await apply_script(graph_store, owner, "doc-1", CHAIN)
    await apply_script(graph_store, owner, "doc-2", script("Grace Hopper/PERSON; Yale/ORG"))
    ada, mary = eid(owner, "Ada Lovelace"), eid(owner, "Mary Somerville")

    path = await graph_store.shortest_path(owner, ada, mary, max_depth=6)
    assert path is not None
    assert [e.name for e in path.entities] == [
        "Ada Lovelace",
        "Charles Babbage",
        "Analytical Engine Society",
        "London",
        "Mary Somerville",
    ]
    assert path.length == 4
    assert path.relations[0].weight == 2
    assert await graph_store.shortest_path(owner, ada, mary, max_depth=3) is None
    assert await graph_store.shortest_path(owner, ada, eid(owner, "Yale"), max_depth=6) is None
    same = await graph_store.shortest_path(owner, ada, ada, max_depth=6)
    assert same is not None
    assert same.length == 0


async def test_document_graph(graph_store: GraphStore, owners: list[str]) -> None:
    owner = owners[0]
    await apply_script(graph_store, owner, "doc-1", CHAIN, title="Engines")
    await apply_script(graph_store, owner, "doc-2", script("Ada Lovelace/PERSON; Paris/GPE"))

    subgraph = await graph_store.document_graph(owner, "doc-1", limit=50)
    assert subgraph is not None
    assert subgraph.entities[0].name == "Ada Lovelace"  # named most often
    assert "Paris" not in {e.name for e in subgraph.entities}
    assert len(subgraph.relations) == 5
    top = subgraph.relations[0]
    assert top.weight == 2
    assert len(top.evidence) == 2
    assert all(item.startswith("doc-1:") for item in top.evidence)
    assert await graph_store.document_graph(owner, "doc-404", limit=50) is None


async def test_related_documents_share_entities_with_the_chunks(
    graph_store: GraphStore, owners: list[str]
) -> None:
    owner, stranger = owners
    await apply_script(graph_store, owner, "doc-1", CHAIN, title="Engines")
    await apply_script(
        graph_store, owner, "doc-2", script("Ada Lovelace/PERSON; London/GPE"), title="Ada"
    )
    await apply_script(graph_store, owner, "doc-3", script("London/GPE; Paris/GPE"), title="Cities")
    await apply_script(graph_store, owner, "doc-4", script("Turin/GPE; Rome/GPE"), title="Italy")
    await apply_script(
        graph_store, stranger, "doc-9", script("Ada Lovelace/PERSON; London/GPE"), title="Theirs"
    )

    related = await graph_store.related_documents(
        owner, ["doc-1-c0"], exclude_documents=["doc-1"], limit=10
    )

    # doc-1's chunk is all about the whole chain; doc-2 shares Ada and London, doc-3 London.
    assert [(r.document_id, r.shared_entities) for r in related] == [("doc-2", 2), ("doc-3", 1)]
    assert related[0].title == "Ada"
    assert set(related[0].via) == {"Ada Lovelace", "London"}
    assert related[1].via == ("London",)
    # Nothing excluded: the chunk's own document comes first; a limit cuts the tail.
    unexcluded = await graph_store.related_documents(
        owner, ["doc-1-c0"], exclude_documents=[], limit=1
    )
    assert [r.document_id for r in unexcluded] == ["doc-1"]
    # Another owner's chunks and documents are never reached, in either direction.
    assert (
        await graph_store.related_documents(stranger, ["doc-1-c0"], exclude_documents=[], limit=10)
        == []
    )
    assert (
        await graph_store.related_documents(owner, ["doc-404-c0"], exclude_documents=[], limit=10)
        == []
    )


async def test_another_owner_sees_nothing(graph_store: GraphStore, owners: list[str]) -> None:
    owner, stranger = owners
    await apply_script(graph_store, owner, "doc-1", CHAIN)
    ada, mary = eid(owner, "Ada Lovelace"), eid(owner, "Mary Somerville")

    assert await graph_store.search_entities(stranger, "Ada Lovelace", 10) == []
    assert await graph_store.get_entity(stranger, ada) is None
    assert await graph_store.neighbors(stranger, ada, depth=3) is None
    assert await graph_store.shortest_path(stranger, ada, mary, max_depth=6) is None
    assert await graph_store.document_graph(stranger, "doc-1", limit=10) is None
    assert await graph_store.delete_document(stranger, "doc-1") is False
    assert await graph_store.get_entity(owner, ada) is not None

    # The same name under another owner is another entity.
    await apply_script(graph_store, stranger, "doc-2", script("Ada Lovelace/PERSON; Turin/GPE"))
    theirs = await graph_store.search_entities(stranger, "Ada Lovelace", 10)
    assert [r.entity.id for r in theirs] == [eid(stranger, "Ada Lovelace")]
    mine = await graph_store.neighbors(owner, ada, depth=3)
    assert mine is not None
    assert "Turin" not in {e.name for e in mine.entities}


async def test_ping(graph_store: GraphStore) -> None:
    await graph_store.ping()


async def test_statements_keep_typed_relations_with_their_sentences_per_document(
    graph_store: GraphStore, owners: list[str]
) -> None:
    owner, other = owners
    keys = {"linus torvalds": "Linus Torvalds", "git": "Git"}
    entities = [Entity(eid(owner, name), name, "PERSON", key) for key, name in keys.items()]
    sentence = "Linus Torvalds wrote Git in 2005."
    relations = [
        RelationCandidate("git", "linus torvalds", ("doc-1:c0:0",), sentences=(sentence,)),
        RelationCandidate(
            "linus torvalds", "git", ("doc-1:c0:0",), "CREATED", "write", (sentence,)
        ),
    ]
    mentions = [Mention("c0", key, 1) for key in keys]
    chunks = [ChunkRef("c0", 0)]
    for _ in range(2):  # applying twice keeps one statement per relation
        await graph_store.apply_document(
            owner, "doc-1", "Git", chunks, entities, mentions, relations
        )
    torvalds, git = eid(owner, "Linus Torvalds"), eid(owner, "Git")

    found = await graph_store.statements(owner, [(git, torvalds)], per_pair=10)

    assert [(s.type, s.source_id, s.target_id, s.verb) for s in found] == [
        ("CREATED", torvalds, git, "write"),
        ("RELATED_TO", git, torvalds, ""),
    ]
    assert all(s.sentences == (sentence,) and s.document_id == "doc-1" for s in found)
    assert all(s.evidence == ("doc-1:c0:0",) for s in found)
    assert await graph_store.statements(other, [(git, torvalds)], per_pair=10) == []
    assert len(await graph_store.statements(owner, [(git, torvalds)], per_pair=1)) == 1

    await graph_store.delete_document(owner, "doc-1")
    assert await graph_store.statements(owner, [(git, torvalds)], per_pair=10) == []


async def test_top_entities_rank_by_degree_filter_by_type_and_export_the_graph(
    graph_store: GraphStore, owners: list[str]
) -> None:
    owner, other = owners
    await apply_script(graph_store, owner, "doc-1", CHAIN)

    top = await graph_store.top_entities(owner, types=(), limit=3)
    assert [(r.entity.name, r.degree) for r in top][:2] == [
        ("Ada Lovelace", 2),
        ("Analytical Engine Society", 2),
    ]
    orgs = await graph_store.top_entities(owner, types=("ORG",), limit=10)
    assert sorted(r.entity.name for r in orgs) == ["Analytical Engine Society", "Royal Society"]
    assert await graph_store.top_entities(other, types=(), limit=10) == []

    exported = await graph_store.export_graph(owner, entities=100, relations=100)
    assert len(exported.entities) == 6
    assert sum(r.weight for r in exported.relations) == 6
    assert all(r.source_id < r.target_id for r in exported.relations)
    smaller = await graph_store.export_graph(owner, entities=2, relations=100)
    assert len(smaller.entities) == 2
    ids = {e.id for e in smaller.entities}
    assert all({r.source_id, r.target_id} <= ids for r in smaller.relations)


async def test_aliases_extractions_and_variants_are_kept_per_owner(
    graph_store: GraphStore, owners: list[str]
) -> None:
    owner, other = owners
    await graph_store.set_alias(owner, Alias("fsf", "free software foundation", "declared"))
    await graph_store.set_alias(owner, Alias("fsf", "fsf", "undone"))  # replaces the record
    await graph_store.set_alias(owner, Alias("node js", "nodejs", "spelling"))
    assert await graph_store.aliases(owner) == [
        Alias("fsf", "fsf", "undone"),
        Alias("node js", "nodejs", "spelling"),
    ]
    assert await graph_store.aliases(other) == []
    assert await graph_store.remove_alias(owner, "node js") is True
    assert await graph_store.remove_alias(owner, "node js") is False
    assert await graph_store.remove_alias(other, "fsf") is False

    graph = await apply_script(graph_store, owner, "doc-1", CHAIN)
    await graph_store.save_extraction(owner, "doc-1", '{"saved": 1}')
    assert await graph_store.extractions(owner, ["doc-1", "doc-2"]) == {"doc-1": '{"saved": 1}'}
    assert await graph_store.extractions(other, ["doc-1"]) == {}
    # Spellings are kept apart from any document (the service writes them before its graph).
    await graph_store.save_spellings(owner, {"adalovelace": "ada lovelace"})
    assert await graph_store.variant_keys(owner, ["adalovelace", "x"]) == {
        "adalovelace": ["ada lovelace"]
    }
    assert await graph_store.variant_keys(other, ["adalovelace"]) == {}
    await graph_store.save_spellings(owner, {"nodejs": "nodejs", "adalovelace": "ada lovelace"})
    assert await graph_store.variant_keys(owner, ["nodejs", "adalovelace"]) == {
        "nodejs": ["nodejs"],
        "adalovelace": ["ada lovelace"],
    }
    assert await graph_store.variant_keys(other, ["nodejs"]) == {}
    ada = eid(owner, "Ada Lovelace")
    assert await graph_store.documents_mentioning(owner, [ada]) == ["doc-1"]
    assert await graph_store.documents_mentioning(other, [ada]) == []
    assert len(graph.entities) == 6

    await graph_store.delete_document(owner, "doc-1")
    assert await graph_store.extractions(owner, ["doc-1"]) == {}
    assert await graph_store.documents_mentioning(owner, [ada]) == []


async def test_a_deleted_documents_spellings_go_with_its_entities(
    graph_store: GraphStore, owners: list[str]
) -> None:
    owner, _ = owners
    await apply_script(graph_store, owner, "doc-1", CHAIN)
    await graph_store.save_spellings(owner, {"adalovelace": "ada lovelace", "ghost": "no such key"})
    await graph_store.save_extraction(owner, "doc-1", '{"saved": 1}')
    assert await graph_store.delete_document(owner, "doc-1") is True
    # Nothing of the owner's is left: no entity, so no spelling recorded for one.
    assert await graph_store.variant_keys(owner, ["adalovelace", "ghost"]) == {}
    assert await graph_store.extractions(owner, ["doc-1"]) == {}
