"""validate: the first stage. Checks params.yaml and records the inputs DVC cannot see.

It runs on every ``dvc repro`` (``always_changed``) and before any other stage, so a bad value
(a typo in ``dvc exp run -S``) stops the pipeline here, before DVC deletes any stage's outputs.
It writes two small records whose bytes change only when what they describe changes:

- reports/inputs/libraries.json: the versions of the libraries that shape numbers (every stage
  depends on it, so an upgrade reruns what it can affect);
- reports/inputs/source.json: a content fingerprint of the raw data files (prepare depends on it,
  so images added to a folder rerun prepare).
"""

from __future__ import annotations

import logging

from ganops.config import Params
from ganops.environment import library_versions
from ganops.files import write_json
from ganops.rawdata import fingerprint, hash_cache_path
from ganops.stages import Layout

log = logging.getLogger(__name__)


def run(params: Params, layout: Layout, **_) -> dict:
    libraries = library_versions()
    source = fingerprint(params.data, hash_cache_path(layout.root))
    write_json(layout.libraries, libraries)
    write_json(layout.source, source)
    log.info(
        "params are valid; raw data: %s files (%.1f MB) of %s",
        source["files"],
        source["bytes"] / 1e6,
        source["source"],
    )
    return libraries
