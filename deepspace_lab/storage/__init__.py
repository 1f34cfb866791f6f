"""Storage (level 0): bytes under keys, in a local folder or any fsspec URL.

``DEEPSPACE_STORAGE_URL`` is a folder (the default: ``<data_dir>/storage``) or an fsspec URL
such as ``s3://bucket/prefix`` (S3, MinIO: credentials from the usual ``AWS_*`` variables,
which only gateways and workers hold; an S3-compatible endpoint as
``s3://bucket/prefix?endpoint_url=http://minio:9000`` or ``AWS_ENDPOINT_URL``). Keys are made
by the code (``files/<org>/<project>/<file id>``), never taken from a caller.

The methods are blocking (fsspec's sync API); async code calls them through
``asyncio.to_thread``.
"""

from ._storage import Storage, StorageError, open_storage

__all__ = ["Storage", "StorageError", "open_storage"]
