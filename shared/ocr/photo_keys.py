"""A reading's photo (`image_key`): a key inside the tenant's own photo area of the service's object
store, or a URI elsewhere, and the URI the labelling manifest gives for it."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from shared.adapters.objectstore import tenant_key

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(key: str) -> bool:
    return _SCHEME.match(key) is not None


def steps_out(key: str) -> bool:
    """The key's path (a URI's path) has a '.' or '..' segment or a backslash, percent-decoded too
    (whoever fetches it may decode)."""
    path = unquote(urlsplit(key).path if is_uri(key) else key)
    return "\\" in path or any(part in (".", "..") for part in path.split("/"))


def object_uri(store_url: str, key: str) -> str:
    """The URI of a key inside the service's object store."""
    return f"{store_url.rstrip('/')}/{key}"


def _location(uri: str) -> tuple[str, str, str]:
    """What a URI names, compared alike however it is written: scheme, host (a file's `localhost`
    is no host) and the percent-decoded path."""
    parts = urlsplit(uri)
    scheme, host = parts.scheme.lower(), parts.netloc.lower()
    if scheme == "file" and host == "localhost":
        host = ""
    return scheme, host, unquote(parts.path)


def _within(uri: str, folder: str) -> bool:
    """`uri` names something in `folder` (a URI): a local folder by its path; a bucket whole."""
    (scheme, host, path), (folder_scheme, folder_host, folder_path) = _location(uri), _location(folder)
    if (scheme, host) != (folder_scheme, folder_host):
        return False
    return f"{path.rstrip('/')}/".startswith(f"{folder_path.rstrip('/')}/")


def photo_uri(store_url: str, tenant_id: str, image_key: str) -> str | None:
    """The photo's URI for the labellers, or None when the tenant may not hand it out: the
    labelling tool runs with the platform's rights, so it must never fetch another tenant's objects
    or the models. A key is inside the tenant's photo area (tenants/<tenant>/ocr/photos/<key>; a key
    that already names that area is not prefixed twice); a URI into the service's store outside that
    area is None; a URI elsewhere is as given. A key that steps out of its folder is None (intake
    refuses it; one stored before that check may be there)."""
    if steps_out(image_key):
        return None
    area_key = tenant_key(tenant_id, "ocr", "photos")
    area = object_uri(store_url, area_key)
    if not is_uri(image_key):
        relative = image_key.lstrip("/")
        return f"{area}/{relative.removeprefix(area_key + '/')}"
    # The service's store: its local folder, or its whole bucket (the models' prefix is not the only
    # thing in it).
    service = store_url if _location(store_url)[0] == "file" else urlsplit(store_url)._replace(path="").geturl()
    if _within(image_key, service) and not _within(image_key, area):
        return None
    return image_key
