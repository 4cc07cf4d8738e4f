import collections, json
from tests.parity.cases import CASES

def test_explore(world):
    hdr = collections.Counter(); raw = collections.Counter(); examples = {}
    for case in CASES:
        a = world.run(case, "legacy"); b = world.run(case, "async")
        for x, y in zip(a.exchanges + a.readbacks, b.exchanges + b.readbacks):
            ka = set(x.headers) - {"date", "server", "content-length"}
            kb = set(y.headers) - {"date", "server", "content-length"}
            for k in ka ^ kb:
                key = (k, k in ka, k in kb, x.served_by, y.served_by)
                hdr[key] += 1; examples.setdefault(key, (case.id, x.headers.get(k), y.headers.get(k)))
            for k in ka & kb:
                if k not in ("x-served-by",) and x.headers[k] != y.headers[k]:
                    key = ("value", k); hdr[key] += 1; examples.setdefault(key, (case.id, x.headers[k], y.headers[k]))
            if x.raw != y.raw and x.status == y.status and "created_at" not in x.raw.decode(errors="ignore") and "started_at" not in x.raw.decode(errors="ignore"):
                raw[case.endpoint] += 1; examples.setdefault(("raw", case.endpoint), (case.id, x.raw[:300], y.raw[:300]))
    for k, v in hdr.items(): print("HDR", k, v, examples[k])
    for k, v in raw.items(): print("RAW", k, v, examples[("raw", k)])
