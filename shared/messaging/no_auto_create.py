"""No Kafka client of this process ever creates a topic by asking for its metadata.

A metadata request (v4 and later) carries `allow_auto_topic_creation`; aiokafka always sends
`true` and offers no option. A broker with auto-creation on (Tansu always; Kafka by default)
then creates a missing topic with *its* default partition count the moment a producer sends to
it or a consumer refreshes its subscription. After the embedded broker lost its log, that is
how a topic came back with 4 partitions instead of the declared 3, and how the loss went
unnoticed: the topic "existed" again. Topics are created as declared (`create_topics`) and
nowhere else, so the request every aiokafka client builds defaults to `false` here.

aiokafka's client looks `MetadataRequest` up in its module at each metadata update, so replacing
that one name covers producers, consumers and the admin client; tests/test_broker_loss.py
fails if an aiokafka upgrade stops honouring it.
"""

from __future__ import annotations

import aiokafka.client
from aiokafka.protocol.metadata import MetadataRequest


class DeclaredTopicsOnlyMetadataRequest(MetadataRequest):  # type: ignore[misc]
    def __init__(
        self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = False
    ) -> None:
        super().__init__(topics, allow_auto_topic_creation)


def forbid_auto_topic_creation() -> None:
    aiokafka.client.MetadataRequest = DeclaredTopicsOnlyMetadataRequest
