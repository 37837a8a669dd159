"""The HTTP face of search (``docvec serve``): a read-only JSON API over the query layer."""
