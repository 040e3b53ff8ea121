"""The retrieved scenes a generation was shown, looked up again for its training example.

A generation stores the ids of the scenes retrieval put in its prompt
(``Generation.retrieved_scene_ids``, "<script_id>#<scene_index>"). Training rebuilds
that prompt (training.dataset), so it needs the same scenes' titles and texts back:
this reads them from the index catalog, without loading vectors or the embedder. Ids
the index no longer holds (a script removed since) are simply left out of the prompt.
"""

from __future__ import annotations

import logging
from typing import Any

from retrieval.types import SceneHit, SceneRef

log = logging.getLogger(__name__)


def catalog_exemplars(settings: Any):
    """An ExemplarLookup over the configured index, or None when there is no index yet."""
    from retrieval.catalog import Catalog, default_url
    from retrieval.index import SceneIndex

    catalog_url = settings.index_catalog_url
    try:
        if not SceneIndex.exists(settings.index_dir, catalog_url=catalog_url):
            return None
    except Exception:  # an unreadable catalog must not stop training: prompts go without exemplars
        log.warning("the index catalog could not be read; training prompts go without retrieved scenes",
                    exc_info=True)
        return None
    catalog = Catalog(catalog_url or default_url(settings.index_dir))
    snapshot = catalog.read()
    titles = {script_id: info.get("title") or script_id for script_id, info in (snapshot.scripts.items()
                                                                              if snapshot else [])}

    def lookup(scene_ids: list[str]) -> list[SceneHit]:
        found = catalog.scenes(scene_ids=scene_ids)
        hits = []
        for scene_id in scene_ids:  # the order the prompt showed them in
            scene = found.get(scene_id)
            if scene is None:
                continue
            script_id, _, index = scene_id.rpartition("#")
            hits.append(SceneHit(script_id, titles.get(script_id, script_id), 0.0,
                                 SceneRef(int(index or 0), scene["heading"], scene["text"][:300], scene["text"]),
                                 scene_id, tuple(scene["characters"])))
        return hits

    return lookup
