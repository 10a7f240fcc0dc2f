"""ComfyUI entry point of the DragPD node pack.

ComfyUI imports this folder as a package named after the folder (whatever the clone is
called). The nodes use the core library as ``import dragpd``; when it is not installed,
the copy in this folder is loaded under that name — by path, without putting this
folder on ``sys.path`` (its ``nodes`` package would shadow ComfyUI's own ``nodes``).
"""

import importlib.util
import logging
import sys
from pathlib import Path

_PACK_DIR = Path(__file__).resolve().parent
logger = logging.getLogger("dragpd.pack")


def _load_core() -> None:
    core_dir = _PACK_DIR / "dragpd"
    loaded = sys.modules.get("dragpd")
    if loaded is not None:
        origin = Path(getattr(loaded, "__file__", "") or "").resolve().parent
        if origin != core_dir:
            logger.warning(
                "DragPD: using the dragpd library at %s, not the pack's own %s", origin, core_dir
            )
        return
    spec = importlib.util.spec_from_file_location(
        "dragpd", core_dir / "__init__.py", submodule_search_locations=[str(core_dir)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["dragpd"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["dragpd"]
        raise


_load_core()

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WEB_DIRECTORY = "./js"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
