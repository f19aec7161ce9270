"""Node <-> payload conversion: what the retriever stores for each node, and nothing more.

A payload is ``{"__type__": <ObjectType>, "__data__": <node.to_dict()>}`` (the layout of
LlamaIndex's docstore, read back with its ``json_to_doc``) with two things removed:

* the embedding (the index stores the normalised vector itself, once);
* every relationship except SOURCE, and of SOURCE only the id and type. LlamaIndex's node
  parsers copy a neighbour's metadata and content hash into PREVIOUS/NEXT links (and
  PARENT/CHILD hold other nodes' ids): kept, they would leave traces of a forgotten node in
  the rows of the nodes next to it, where forgetting it cannot reach.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.constants import DATA_KEY, TYPE_KEY
from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship
from llama_index.core.storage.docstore.utils import json_to_doc

from erase_core import ERASEError

_SOURCE = NodeRelationship.SOURCE.value


def node_to_payload(node: BaseNode) -> dict[str, Any]:
    """The JSON-serialisable payload stored for ``node`` (no embedding, SOURCE link id only)."""
    if not isinstance(node, BaseNode):
        raise ERASEError(f"expected a LlamaIndex node (BaseNode), got {type(node).__name__}")
    data = node.to_dict()
    data.pop("embedding", None)
    rels = data.get("relationships") or {}
    kept = {}
    source = rels.get(_SOURCE)
    if isinstance(source, dict) and source.get("node_id"):
        kept[_SOURCE] = {"node_id": source["node_id"], "node_type": source.get("node_type")}
    data["relationships"] = kept
    obj_type = node.get_type()
    return {TYPE_KEY: getattr(obj_type, "value", obj_type), DATA_KEY: data}


def payload_to_node(payload: dict[str, Any]) -> BaseNode:
    """A fresh node object rebuilt from a stored payload (never shares state with the index)."""
    try:
        return json_to_doc({TYPE_KEY: payload[TYPE_KEY], DATA_KEY: dict(payload[DATA_KEY])})
    except (KeyError, TypeError) as exc:
        raise ERASEError(f"stored payload is not a LlamaIndex node: {exc}") from None


def embed_text(node: BaseNode) -> str:
    """The text LlamaIndex embeds for a node (metadata included per the node's EMBED settings)."""
    return node.get_content(metadata_mode=MetadataMode.EMBED)
