"""`tasktool export`: a task's model as an ONNX graph that ONNX Runtime runs, optimized and quantized
by onnxruntime's own tools (what optimum calls underneath; optimum-onnx itself pins an older transformers).

    onnx.py   torch.onnx.export + onnxruntime.transformers.optimizer + onnxruntime.quantization,
              checked against the torch model; the folder keeps tokenizer/processor, config (labels),
              a model card and export.json (tasktool.backends reads it)
    encoder_decoder.py  BART, T5, Marian, Whisper: an encoder graph (with the cross-attention
              keys and values) and a decoder graph with a key/value cache; tasktool/onnx_generation.py
              runs them under transformers' generate
    decoder_only.py     GPT-2/Llama-style decoders: one graph with a key/value cache, same runner
    graph_tools.py      what both share: quiet tracing, running a graph, int8 quantization
    cache.py  `tasktool infer --backend onnxruntime` on a torch folder: exported once, kept in a cache
              folder keyed by the model folder's content
"""

from tasktool.export.onnx import OPTIMIZE_LEVELS, QUANTIZE_MODES, export_onnx, supported_tasks

__all__ = ["OPTIMIZE_LEVELS", "QUANTIZE_MODES", "export_onnx", "supported_tasks"]
