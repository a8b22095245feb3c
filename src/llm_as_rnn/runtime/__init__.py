"""The runtime under the graph: model specs, backends and retries, the call journal, storage.

Nothing here imports the graph core; the core calls into it.
"""
