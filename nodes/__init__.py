"""The ComfyUI nodes of the pack: thin adapters onto ``dragpd``, one module per node.

``comfy_bridge`` is the only module that imports ComfyUI; without ComfyUI it falls back
to plain torch so every node function is unit-testable.
"""

from . import comfy_bridge
from .decode import DragPDDecode
from .guidance_nodes import DragPDCLIPReward, DragPDPPRLoss
from .invert import DragPDInvert
from .lora_trainer import DragPDLoraTrainer
from .point_picker import DragPDPointPicker
from .sampler import DragPDSampler
from .settings import DragPDSettings

comfy_bridge.register_clip_folder()

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "DragPDLoraTrainer": DragPDLoraTrainer,
    "DragPDInvert": DragPDInvert,
    "DragPDPointPicker": DragPDPointPicker,
    "DragPDPPRLoss": DragPDPPRLoss,
    "DragPDCLIPReward": DragPDCLIPReward,
    "DragPDSampler": DragPDSampler,
    "DragPDSettings": DragPDSettings,
    "DragPDDecode": DragPDDecode,
}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "DragPDLoraTrainer": "DragPD LoRA Trainer",
    "DragPDInvert": "DragPD DDIM Invert",
    "DragPDPointPicker": "DragPD Point Picker",
    "DragPDPPRLoss": "DragPD PPR Loss",
    "DragPDCLIPReward": "DragPD CLIP Reward",
    "DragPDSampler": "DragPD DWPT Drag Sampler",
    "DragPDSettings": "DragPD Settings",
    "DragPDDecode": "DragPD Decode",
}
