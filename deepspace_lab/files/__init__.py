"""Files and artifacts (level 1): uploads, exports and statements per org and project.

The row (``files``) says whose a file is; the bytes are in :mod:`deepspace_lab.storage`
under a key the code makes. Every query takes the caller's org, so a file never leaves it.
Uploads are bounded by ``DEEPSPACE_STORAGE_MAX_FILE_BYTES`` and
``DEEPSPACE_STORAGE_CONTENT_TYPES``; files the Worker writes (exports) are not.
"""

from .errors import FileNotFoundInOrgError, FileTooLargeError, InvalidFileNameError, UnsupportedContentTypeError
from .service import FilePage, FileView, delete_file, get_file, list_files, read_file, store_file, store_local_file

__all__ = ["FileNotFoundInOrgError", "FilePage", "FileTooLargeError", "FileView", "InvalidFileNameError",
           "UnsupportedContentTypeError", "delete_file", "get_file", "list_files", "read_file", "store_file",
           "store_local_file"]
