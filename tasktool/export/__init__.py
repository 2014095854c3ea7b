"""`tasktool export`: a task's model as an ONNX graph that ONNX Runtime runs, optimized and quantized
by onnxruntime's own tools (what optimum calls underneath; optimum-onnx itself pins an older transformers).

    onnx.py   torch.onnx.export + onnxruntime.transformers.optimizer + onnxruntime.quantization,
              checked against the torch model; the folder keeps tokenizer/processor, config (labels),
              a model card and export.json (tasktool.backends reads it)
    cache.py  `tasktool infer --backend onnxruntime` on a torch folder: exported once, kept in a cache
              folder keyed by the model folder's content
"""

from tasktool.export.onnx import OPTIMIZE_LEVELS, QUANTIZE_MODES, export_onnx, supported_tasks

__all__ = ["OPTIMIZE_LEVELS", "QUANTIZE_MODES", "export_onnx", "supported_tasks"]
