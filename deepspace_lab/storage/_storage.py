"""A thin layer over an fsspec filesystem rooted at the storage URL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..errors import ServiceUnavailable

_KEY = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")


class StorageError(ServiceUnavailable):
    default_code = "storage_unavailable"


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"not a storage key: {key!r}")
    return key


class Storage:
    """Bytes under keys below one root. ``url`` is a folder or an fsspec URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("", "file"):
            self.fs: Any = LocalFileSystem(auto_mkdir=True)
            self.root = str(Path(parts.path if parts.scheme == "file" else url).expanduser().resolve())
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self.scheme = "file"
        else:
            options: dict[str, Any] = dict(parse_qsl(parts.query))
            if "endpoint_url" in options:
                options["client_kwargs"] = {"endpoint_url": options.pop("endpoint_url")}
            self.fs = fsspec.filesystem(parts.scheme, **options)
            self.root = (parts.netloc + parts.path).rstrip("/")
            self.scheme = parts.scheme
        self._display = urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) if parts.scheme else self.root

    def __repr__(self) -> str:
        return f"Storage({self._display!r})"  # never the query (it may carry options)

    def path(self, key: str) -> str:
        return f"{self.root}/{_check_key(key)}"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except OSError as exc:  # the backend's own errors (network, permissions) become one stable code
            raise StorageError(f"storage {what} failed ({type(exc).__name__})") from exc

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if self.scheme == "file":
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self._call("write", self.fs.pipe_file, path, data)

    def put_file(self, key: str, local_path: str) -> None:
        """Copy a local file to ``key`` (an export written to a temporary file first)."""
        path = self.path(key)
        if self.scheme == "file":
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self._call("write", self.fs.put_file, local_path, path)

    def get(self, key: str) -> bytes:
        data: bytes = self._call("read", self.fs.cat_file, self.path(key))
        return data

    def open_read(self, key: str) -> Any:
        """A binary file to read ``key`` in pieces (a large download); the caller closes it."""
        return self._call("read", self.fs.open, self.path(key), "rb")

    def delete(self, key: str) -> None:
        try:
            self._call("delete", self.fs.rm_file, self.path(key))
        except FileNotFoundError:
            pass

    def exists(self, key: str) -> bool:
        return bool(self._call("read", self.fs.exists, self.path(key)))

    def size(self, key: str) -> int:
        return int(self._call("read", self.fs.size, self.path(key)))


def open_storage(url: str) -> Storage:
    return Storage(url)
