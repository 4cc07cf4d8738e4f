"""Write runtime flags back into feature_flags.yaml text, keeping its comments and layout."""

from __future__ import annotations

import io
from collections.abc import Mapping

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from asgi_gateway.flag_file import FlagFile, entry_fields
from asgi_gateway.flags import Flag, drift


def export_flags(text: str, declared: FlagFile, runtime: Mapping[str, Flag]) -> str:
    """`text` with each drifted route entry set to its runtime flag; comments and order kept.

    Only endpoints whose runtime flag drifts from the declared one (`flags.drift`) are
    touched, so an export of an unchanged rollout leaves the file byte for byte as it was,
    and after an export nothing drifts.
    """
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    doc = yaml.load(text) or CommentedMap()
    if "version" not in doc:
        doc["version"] = 1
    routes = doc.get("routes")
    if not isinstance(routes, CommentedMap):
        routes = doc["routes"] = CommentedMap()
    changed = False
    for endpoint in sorted(runtime):
        flag = runtime[endpoint]
        if not drift(flag, declared.declared(endpoint)):
            continue
        changed = True
        entry = routes.get(endpoint)
        if not isinstance(entry, CommentedMap):
            entry = CommentedMap()
            entry.fa.set_flow_style()
            routes[endpoint] = entry
        fields = entry_fields(flag, declared)
        for key in [k for k in entry if k not in fields]:
            del entry[key]
        for key, value in fields.items():
            if isinstance(value, dict):
                value = CommentedMap(value)
                value.fa.set_flow_style()
            entry[key] = value
    if not changed:
        return text
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()
