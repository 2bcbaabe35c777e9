"""Decoding a records part pauses the garbage collector and always restores its state."""

from __future__ import annotations

import gc
import gzip

import pytest

from drconsole.catalog.parts import decode_records

GOOD = gzip.compress(b'{"id": "a", "document": "x", "metadata": {"acl": ["g"]}, "tenant": null}\n')
BAD = gzip.compress(b'{"id": "a"}\n{not json\n')


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_state_is_restored_after_decoding(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        ids, documents, metadatas, tenants = decode_records(GOOD)
        assert (ids, documents, metadatas, tenants) == (["a"], ["x"], [{"acl": ["g"]}], [None])
        assert gc.isenabled() is enabled
        with pytest.raises(ValueError, match="not JSON"):
            decode_records(BAD)
        assert gc.isenabled() is enabled, "a part that fails to decode restores it too"
    finally:
        (gc.enable if was else gc.disable)()
