"""The request path: routing, the per-request decision, identity, the WSGI mount, recording.

Everything here runs for every request, so it does no I/O and takes no lock shared with slow
work; what it needs from the control plane (the flag snapshot) it reads by one reference.
The public names are re-exported by `asgi_gateway`.
"""
