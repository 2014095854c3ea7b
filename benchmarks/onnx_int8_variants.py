"""int8 dynamic quantization settings: label agreement with torch float32 and in-process speed.

Reads the models and O2 graphs that `benchmarks/onnx_speed.py --keep DIR` left (DIR/<heads>/models and
DIR/<heads>/onnx), quantizes each O2 graph with onnxruntime's `quantize_dynamic` under several settings,
and runs every graph through tasktool (in process, batch 32) on the same sentences: agreement with tasktool
on torch float32 (classification: the label; NER: the sentence's entity list and entities matched over all
sentences, Jaccard) and speed as a ratio to the float32 O2 graph timed in the same run (alternated,
median of --repeats).

    python benchmarks/onnx_speed.py --quick --keep /tmp/heads-bench     # once: models and exports
    python benchmarks/onnx_int8_variants.py --keep /tmp/heads-bench --items 2536

Variants: "tasktool" (what `tasktool export --quantize int8` does: per channel, every op type
quantize_dynamic knows), "no head" (the classifier's MatMul/Gemm left float32), "MatMul only"
(op_types_to_quantize=["MatMul"]: Attention and EmbedLayerNormalization stay float32), "MatMul+Attention"
(the embeddings stay float32), "reduce_range" (7-bit weights), and combinations. Writes its figures under
"onnx_int8_variants" in --output (other keys kept).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from onnx_speed import (  # noqa: E402  (sets the offline environment, puts the repository on the path)
    TASKS,
    agreements,
    graph_folder,
    keyfn,
    log,
    real_sentences,
    tasktool_runner,
)


def graph_nodes(graph_path: Path) -> list[tuple[str, str]]:
    import onnx

    model = onnx.load(str(graph_path), load_external_data=False)
    return [(n.name, n.op_type) for n in model.graph.node]


def variants(source: Path) -> dict[str, dict]:
    nodes = graph_nodes(source)
    dense = [name for name, op in nodes if op in ("MatMul", "Gemm")]
    # the classifier head: the graph's last MatMul/Gemm (and BERT's pooler before it, for a sentence label)
    head = [name for name in dense[:-1] if "/pooler/" in name] + dense[-1:]

    def layer(i: int) -> list[str]:
        return [name for name, op in nodes if f"/layer.{i}/" in name or name == f"Attention_{i}"]

    ffn_out = [name for name in dense if name.endswith("/output/dense/MatMul") and "/attention/" not in name]
    ffn_in = [name for name in dense if name.endswith("/intermediate/dense/MatMul")]
    found = {
        "tasktool": {},
        "no head": {"nodes_to_exclude": head},
        "MatMul only": {"op_types_to_quantize": ["MatMul"]},
        "MatMul+Attention": {"op_types_to_quantize": ["MatMul", "Attention"]},
        "reduce_range": {"reduce_range": True},
        "MatMul only, no head": {"op_types_to_quantize": ["MatMul"], "nodes_to_exclude": head},
        "MatMul+Attention, no head": {
            "op_types_to_quantize": ["MatMul", "Attention"],
            "nodes_to_exclude": head,
        },
        "no layer 0": {"nodes_to_exclude": layer(0)},
        "no layer 5": {"nodes_to_exclude": layer(5)},
        "no FFN output": {"nodes_to_exclude": ffn_out},
        **{
            f"no FFN output {i}": {"nodes_to_exclude": [n for n in ffn_out if f"/layer.{i}/" in n]}
            for i in range(6)
        },
        **{
            f"nbits8 b{block}": {
                "matmul_nbits": {"bits": 8, "block_size": block, "is_symmetric": True, "accuracy_level": 4},
                "op_types_to_quantize": ["Attention"],
            }
            for block in (32, 128)
        },
        **{
            f"nbits8 b128 {what}": {
                "matmul_nbits": {
                    "bits": 8,
                    "block_size": 128,
                    "is_symmetric": True,
                    "accuracy_level": 4,
                    "nodes_to_exclude": [d for d in dense if d not in names],
                },
                "op_types_to_quantize": ["MatMul", "Attention", "Gather", "EmbedLayerNormalization"],
            }
            for what, names in (("FFN output", ffn_out), ("FFN", ffn_in + ffn_out))
        },
    }
    import importlib.util

    if importlib.util.find_spec("onnx_ir") is None:  # MatMulNBitsQuantizer needs it (pip install onnx-ir)
        log("  onnx_ir is not installed: the MatMulNBits (nbits8) variants are left out")
        found = {k: v for k, v in found.items() if "matmul_nbits" not in v}
    return found


def quantize(source: Path, target: Path, options: dict) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's "consider pre-processing" advice
    options = dict(options)
    nbits = options.pop("matmul_nbits", None)
    if nbits is not None:  # weight-only blocks first: MatMul -> MatMulNBits, then the rest dynamic
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        quantizer = MatMulNBitsQuantizer(str(source), **nbits)
        quantizer.process()
        source = target.with_suffix(".nbits.onnx")
        quantizer.model.save_model_to_file(str(source), use_external_data_format=False)
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,  # as tasktool/export/onnx.py _quantize
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        **options,
    )


def run_task(task: str, heads: Path, texts: list[str], args) -> dict:
    exported = heads / "onnx" / task
    source = exported / "model_optimized.onnx"
    work = heads / "variants" / task
    work.mkdir(parents=True, exist_ok=True)
    folders = {"fp32 O2": graph_folder_once(exported, "model_optimized.onnx", work / "fp32")}
    settings = variants(source)
    if args.variants:
        settings = {k: v for k, v in settings.items() if k in args.variants.split(",")}
    for name, options in settings.items():
        file = "int8_" + name.replace(" ", "_").replace(",", "").replace("+", "_") + ".onnx"
        if name == "no head":  # the first version left BERT's pooler quantized
            file = "int8_no_head2.onnx"
        if not (exported / file).exists():
            log(f"  quantizing: {name} {options}")
            quantize(source, exported / file, options)
        folders[name] = graph_folder_once(exported, file, work / file.removesuffix(".onnx"))
    runners = {"torch fp32": tasktool_runner(task, heads / "models" / task, args.batch_size)}
    runners.update({name: tasktool_runner(task, folder, args.batch_size) for name, folder in folders.items()})
    for fn in runners.values():
        fn(texts[:64])
    key = keyfn(task)
    reference = [key(r) for r in runners["torch fp32"](texts)]
    times: dict[str, list[float]] = {name: [] for name in folders}
    outputs = {}
    for rep in range(args.repeats):
        for name in folders:  # fp32 first, then every variant, alternated over repeats
            seconds, out, _ = common.timed(lambda name=name: runners[name](texts), 1)
            times[name].append(seconds)
            outputs.setdefault(name, out)
        log(f"  repeat {rep + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()))
    fp32 = statistics.median(times["fp32 O2"])
    rows = {}
    for name in folders:
        keys = [key(r) for r in outputs[name]]
        rows[name] = {
            "options": settings.get(name, {}),
            "agreement_vs_torch_fp32": agreements(task, keys, reference, texts),
            "median_s": statistics.median(times[name]),
            "times_s": times[name],
            "speed_x_fp32": fp32 / statistics.median(times[name]),
        }
    if task == "token-classification":
        rows["torch fp32"] = {"entities_found": sum(len(k) for k in reference)}
    return rows


def graph_folder_once(exported: Path, file: str, out: Path) -> Path:
    return out if out.exists() else graph_folder(exported, file, out)


def main(argv=None) -> int:
    parser = common.keep_parser(__doc__)
    parser.add_argument("--items", type=int, default=2536)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--variants", help="only these variants (comma-separated names; default all)")
    args = parser.parse_args(argv)
    from tasktool.runtime import quiet_transformers

    quiet_transformers()
    heads = Path(args.keep) / args.heads
    texts = real_sentences(args.items)
    res = {
        "meta": {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "heads": args.heads,
            "items": len(texts),
            "repeats": args.repeats,
            "inputs": "IMDB sample reviews cut into sentences (tasktool/data/imdb_sample.csv)",
        }
    }
    for key in [s for s in args.only.split(",") if s]:
        task = TASKS[key]
        if not (heads / "onnx" / task / "model_optimized.onnx").exists():
            log(f"{heads / 'onnx' / task} is missing: run onnx_speed.py --keep {args.keep} first")
            return 1
        log(f"section {key}")
        res[key] = run_task(task, heads, texts, args)
        print(f"\n== {task} ({args.heads} heads, {len(texts)} sentences)")
        for name, row in res[key].items():
            if "agreement_vs_torch_fp32" not in row:
                print(f"   torch fp32 finds {row['entities_found']} entities")
                continue
            agree = row["agreement_vs_torch_fp32"]
            text = f"{100 * agree['same']:.2f}%"
            if "entities" in agree:
                text += f" (entities {100 * agree['entities']:.2f}%, words {100 * agree['words']:.2f}%)"
            print(f"   {name:<28} same as torch fp32 {text:<28} speed x{row['speed_x_fp32']:.2f} of fp32 O2")
    common.save_section(args.output, "onnx_int8_variants", res)
    log(f"results written to {args.output} under 'onnx_int8_variants'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
