"""The control plane: the flag store and its refresher, the admin API, the dashboard, stats.

None of it runs on the request path; requests only read the refresher's snapshot.
The public names are re-exported by `asgi_gateway`.
"""
