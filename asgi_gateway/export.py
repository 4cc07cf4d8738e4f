"""Write runtime flags back into feature_flags.yaml text, keeping its comments and layout."""

from __future__ import annotations

import io
from collections.abc import Mapping

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from asgi_gateway.flags import Flag, FlagFile


def export_flags(text: str, declared: FlagFile, runtime: Mapping[str, Flag]) -> str:
    """`text` with each route entry set to its runtime flag; comments and order are kept.

    Only endpoints whose runtime flag differs from the declared one are touched, so an
    export of an unchanged rollout leaves the file byte for byte as it was.
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
        if _same(flag, declared.declared(endpoint)):
            continue
        changed = True
        entry = routes.get(endpoint)
        if not isinstance(entry, CommentedMap):
            entry = CommentedMap()
            entry.fa.set_flow_style()
            routes[endpoint] = entry
        entry["mode"] = flag.mode
        if flag.mode == "canary":
            entry["percent"] = int(flag.percent) if flag.percent.is_integer() else flag.percent
        elif "percent" in entry:
            del entry["percent"]
        if flag.sticky_by != declared.default_sticky_by:
            entry["sticky_by"] = flag.sticky_by
        elif "sticky_by" in entry:
            del entry["sticky_by"]
    if not changed:
        return text
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _same(a: Flag, b: Flag) -> bool:
    percent_matters = a.mode == "canary" or b.mode == "canary"
    return (a.mode, a.sticky_by) == (b.mode, b.sticky_by) and (
        not percent_matters or a.percent == b.percent
    )
