"""JSON Merge Patch (RFC 7396): how a PATCH body changes a resource."""

from __future__ import annotations

from typing import Any

MERGE_PATCH_JSON = "application/merge-patch+json"


def merge_patch(target: Any, patch: Any) -> Any:
    """The target with the patch applied: objects merge member by member, `null` removes a
    member, anything else (arrays included) replaces the value. Neither input is changed."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result
