"""The ComfyUI nodes of the pack: thin adapters onto ``dragpd``.

Each node lives in its own module and does no math; ``comfy_bridge`` is the only module
that imports ComfyUI. The nodes arrive with their own issue; until then the pack
registers none.
"""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
