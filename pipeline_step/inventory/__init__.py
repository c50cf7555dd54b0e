"""What a repository holds: tags, the manifests they resolve to, and ages.

Inventories come from a source (the registry API, or the storage directory in
direct mode) and feed the planner, which never does I/O itself.
"""
