"""``shoemaker web``: the dashboard in a browser, served through textual-serve.

access.py (who may connect: loopback or a token), session.py (one browser's dashboard
process and its end), status.py (the JSON of /api/status), server.py (the aiohttp app and
its life under signals).
"""
