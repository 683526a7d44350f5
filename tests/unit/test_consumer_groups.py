"""The administrators' list of consumer groups (dead letters) is the set the services use."""

from __future__ import annotations

import pytest

from kglab_document.messaging.consume import CONSUMER_GROUP as DOCUMENT
from kglab_graph.messaging.consume import GROUP as GRAPH
from kglab_ingestion.messaging.consume import CONSUMER_GROUP, DELETIONS_GROUP, INDEXING_GROUP
from kglab_shared.bus.dead_letters import CONSUMER_GROUPS, check_group
from kglab_shared.errors import NotFoundError
from kglab_vector.messaging.consume import GROUP as VECTOR


def test_every_group_a_service_subscribes_with_is_listed() -> None:
    used = {DOCUMENT, GRAPH, VECTOR, CONSUMER_GROUP, DELETIONS_GROUP, INDEXING_GROUP}
    assert set(CONSUMER_GROUPS) == used


def test_an_unknown_group_is_refused_before_it_reaches_the_broker() -> None:
    with pytest.raises(NotFoundError, match=r"There is no consumer group 'graph\.dlq'"):
        check_group("graph.dlq")
    assert check_group("graph") == "graph"
