"""Importers and exporters between this project's models and public checkpoint formats.

- ``hf_llama``: Hugging Face Llama directories (config.json + safetensors) <-> ``model.llm.Llama``
  and the project's standalone LLM checkpoint (``model.params_io.save_params``).
- ``hf_vision``: Hugging Face CLIP / MetaCLIP, SigLIP, DINOv2, MAE and ViT vision towers ->
  ``model.vision.ViT`` (read with ``model.encoders.load_frozen`` once imported).
- ``torchvision_cnn``: MobileNetV2 and EfficientNet-Lite ``.pth`` state dicts -> ``model.cnn``,
  read by ``torch_pickle`` without torch.
"""
