from pathlib import Path

import pytest

from shared.adapters.objectstore import LocalFolderObjectStore, global_key, tenant_key
from shared.errors import InvalidInput, NotFound


def test_put_get_list_delete(tmp_path: Path) -> None:
    store = LocalFolderObjectStore(tmp_path / "objects")
    key = tenant_key("t1", "models", "a.json")
    store.put(key, b"one")
    store.put(key, b"two")
    store.put(global_key("models", "b.json"), b"g")
    assert store.get(key) == b"two"
    assert store.list("tenants/t1/") == [key]
    store.delete(key)
    with pytest.raises(NotFound):
        store.get(key)
    assert not list((tmp_path / "objects").rglob(".tmp-*"))


def test_keys_cannot_escape_their_namespace(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        tenant_key("t1", "..", "t2", "x")
    with pytest.raises(InvalidInput):
        tenant_key("t1/../t2", "x")
    with pytest.raises(InvalidInput):
        LocalFolderObjectStore(tmp_path).get("../outside")
