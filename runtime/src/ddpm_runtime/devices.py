"""The device names every ddpm-onnx command takes (``--device``): training, export and sampling alike."""

DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when the framework (PyTorch / ONNX Runtime) offers it, else CPU
