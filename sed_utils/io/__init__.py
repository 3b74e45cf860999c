"""Input/output: reading and writing audio (:mod:`.audio`), fetching files over HTTP or from a mirror
(:mod:`.download`) and unpacking archives safely (:mod:`.extract`). Nothing here knows about a dataset."""
