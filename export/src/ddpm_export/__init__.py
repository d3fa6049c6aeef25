"""ddpm_export: checkpoints -> self-contained ONNX / TorchScript models, kept only if they match PyTorch."""

__version__ = "0.1.0"
