"""The models catalog (level 1): the names callers use, mapped to upstream names.

``GET /v1/models`` lists the enabled entries; a chat request for a model that is not here
(or disabled) is refused before anything reaches the upstream.
"""

from .service import (
    MODALITIES,
    MODEL_FIELDS,
    ModelInfo,
    add_model,
    find_enabled_model,
    get_model,
    list_models,
    update_model,
    upsert_model,
)

__all__ = ["MODALITIES", "MODEL_FIELDS", "ModelInfo", "add_model", "find_enabled_model", "get_model", "list_models",
           "update_model", "upsert_model"]
