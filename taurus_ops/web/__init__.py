"""``taurus-ops serve``: a local, read-only web viewer of the saved sessions.

Layout (only ``data`` talks to the store and the ops layer; everything else works on
the plain values it returns):

- ``data``: the adapter: the session list from the index, one session read from its
  file, search, stats and export, with small caches keyed by what is on disk.
- ``transcript``: a session document as display units (tool calls paired with their
  results, chunks for lazy loading).
- ``render``: Markdown (raw HTML off, links checked), highlighting, diffs and tool views.
- ``charts``: SVG charts drawn on the server.
- ``listing``: filtering, sorting and paging the session list; ``text``: small formats.
- ``security``: the access token, the Host check and the response headers.
- ``app``: the Starlette routes and pages; ``server``: binding and running uvicorn.

Nothing here writes a session file or takes a session lock. Starlette and uvicorn are
imported only by ``app`` and ``server``, so the rest of Taurus starts without them.
"""
