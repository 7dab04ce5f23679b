"""Importers and exporters between this project's models and public checkpoint formats.

- ``hf_llama``: Hugging Face Llama directories (config.json + safetensors) <-> ``model.llm.Llama``
  and the project's standalone LLM checkpoint (``model.params_io.save_params``).
"""
