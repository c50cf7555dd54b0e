"""Direct-storage mode: read and prune the registry's filesystem storage itself.

A manifest DELETE through the API makes distribution scan every tag link of
the repository, so an API prune of one big repository costs O(tags²). Here the
tool reads the tag and revision links directly and removes exactly the links
the registry's own DELETE removes, in O(tags). Blobs are never touched:
garbage collection frees them.
"""
