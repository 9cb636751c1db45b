"""``bertserve models ...``: fetch data, fine-tune, and build, evaluate and report compressed variants.

Every long step shows a progress bar (``--no-progress`` hides them). Model arguments take a folder or a
builtin (``builtin:all-minilm-l6-v2``, ``builtin:minilm-sentiment``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from models.runtime import builtins as defaults
from models.runtime.builtins import default_home


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home).expanduser() if args.home else default_home()


def _model(source: str, home: Path) -> Path:
    if defaults.is_builtin(source):
        from models.training.builtins import build_builtin

        build_builtin(source, home)
        return defaults.resolve_builtin(source, home)
    return Path(source).expanduser().resolve()


def _distill_config(args: argparse.Namespace) -> Any:
    from models.training.distillation import DistillConfig

    config = DistillConfig()
    for name in (
        "epochs",
        "learning_rate",
        "batch_size",
        "grad_accumulation",
        "max_texts",
        "temperature",
        "seed",
    ):
        value = getattr(args, name, None)
        if value is not None:
            config = replace(config, **{name: value})
    return config


def _add_training_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, help="passes over the unlabeled texts")
    parser.add_argument("--learning-rate", type=float, help="peak AdamW learning rate")
    parser.add_argument("--batch-size", type=int, help="texts per step")
    parser.add_argument("--grad-accumulation", type=int, help="steps per optimizer update")
    parser.add_argument("--max-texts", type=int, help="cap on training texts (quick runs)")
    parser.add_argument("--temperature", type=float, help="logit distillation temperature (classifiers)")
    parser.add_argument("--seed", type=int, help="random seed")


def add_commands(models: argparse.ArgumentParser) -> Any:
    """Add the ``models`` sub-commands to ``models``' parser; returns its sub-parsers (to add more)."""
    sub = models.add_subparsers(dest="model_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="data directory (default BERTSERVE_HOME or ~/.cache/bertserve)")
    common.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub.add_parser("data", parents=[common], help="fetch and verify (sha256) STS-B and Rotten Tomatoes")
    finetune = sub.add_parser(
        "finetune", parents=[common], help="fine-tune the default sentiment classifier or reranker"
    )
    finetune.add_argument(
        "--task",
        choices=["sentiment", "rerank"],
        default="sentiment",
        help="sentiment: the fresh/rotten classifier; rerank: the STS-B cross-encoder",
    )
    finetune.add_argument("--out", type=Path, help="output folder (default: the builtin's place)")
    finetune.add_argument("--epochs", type=int)
    finetune.add_argument("--max-train-examples", type=int)
    for name, text in (
        ("quantize", "int8 ONNX (CPU) or float16/bfloat16 (GPU)"),
        ("prune", "structured or magnitude"),
        ("distill", "a student with fewer layers"),
    ):
        recipe = sub.add_parser(name, parents=[common], help=text)
        recipe.add_argument("base", help="model folder or builtin:...")
        recipe.add_argument("--out", type=Path, required=True, help="variant folder to write")
        recipe.add_argument("--overwrite", action="store_true", help="replace an existing variant folder")
        if name == "quantize":
            recipe.add_argument("--dtype", choices=["int8", "float16", "bfloat16"], default="int8")
            recipe.add_argument(
                "--runtime",
                choices=["onnx", "openvino"],
                default="onnx",
                help="int8 for ONNX Runtime (dynamic, model.onnx) or OpenVINO (static, NNCF-calibrated IR)",
            )
            recipe.add_argument(
                "--min-mean-cosine", type=float, default=0.995, help="int8 drift target (mean)"
            )
            recipe.add_argument(
                "--min-cosine", type=float, default=0.98, help="int8 drift target (worst sentence)"
            )
        elif name == "prune":
            recipe.add_argument("--method", choices=["structured", "magnitude"], default="structured")
            recipe.add_argument(
                "--keep-heads", type=float, default=0.5, help="fraction of attention heads kept"
            )
            recipe.add_argument(
                "--keep-neurons", type=float, default=0.5, help="fraction of FFN neurons kept"
            )
            recipe.add_argument("--importance", choices=["gradient", "random"], default="gradient")
            recipe.add_argument(
                "--sparsity", type=float, default=0.5, help="magnitude: fraction of weights zeroed"
            )
            recipe.add_argument("--no-recovery", action="store_true", help="skip the recovery distillation")
            recipe.add_argument(
                "--teacher",
                help="recover toward this model (folder or builtin:...; default: the unpruned base), "
                "e.g. a distilled student's own teacher",
            )
            _add_training_flags(recipe)
        else:
            recipe.add_argument(
                "--layers", type=int, default=3, help="student layers (spread over the teacher's)"
            )
            _add_training_flags(recipe)
    evaluate = sub.add_parser(
        "eval", parents=[common], help="quality and speed of variants against their base"
    )
    evaluate.add_argument("base", help="the base model (folder or builtin:...)")
    evaluate.add_argument("variants", nargs="*", help="variant folders (NAME=FOLDER or FOLDER)")
    evaluate.add_argument("--rounds", type=int, default=3, help="speed rounds (best of; models alternate)")
    evaluate.add_argument("--json", type=Path, help="write the figures here as JSON")
    evaluate.add_argument(
        "--runtimes",
        action="store_true",
        help="every model on every CPU runtime x dtype that runs it (ONNX Runtime, OpenVINO; float32, "
        "bfloat16, int8), side by side",
    )
    report = sub.add_parser("report", parents=[common], help="Markdown table and PNG plot of eval results")
    report.add_argument("results", nargs="+", type=Path, help="JSON files written by `models eval --json`")
    report.add_argument("--out-dir", type=Path, default=Path("benchmarks"), help="where to write them")
    return sub


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    keys = (
        "recipe",
        "sts_spearman",
        "sentiment_accuracy",
        "cosine_min",
        "cosine_mean",
        "throughput_b1",
        "throughput_b32",
        "speedup_b1",
        "speedup_b32",
        "p50_ms",
        "size_bytes",
        "parameters",
    )
    print("model".ljust(22) + "".join(key[:12].rjust(13) for key in keys))
    for name, figures in results.items():
        print(name[:21].ljust(22) + "".join(str(figures.get(key, "-"))[:12].rjust(13) for key in keys))


def _run_recipe(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    base = _model(args.base, home)
    progress = not args.no_progress
    if args.model_command == "quantize":
        from models.runtime.int8 import Int8Targets
        from models.training.quantize import quantize_dtype, quantize_int8

        if args.dtype == "int8":
            targets = Int8Targets(min_mean_cosine=args.min_mean_cosine, min_cosine=args.min_cosine)
            if args.runtime == "openvino":
                from models.training.openvino_int8 import quantize_openvino_int8

                return quantize_openvino_int8(
                    base, args.out, home, targets, overwrite=args.overwrite, progress=progress
                )
            return quantize_int8(base, args.out, home, targets, overwrite=args.overwrite, progress=progress)
        return quantize_dtype(base, args.out, args.dtype, overwrite=args.overwrite)
    if args.model_command == "prune":
        from models.training.prune import prune_magnitude, prune_structured

        if args.method == "magnitude":
            return prune_magnitude(base, args.out, args.sparsity, overwrite=args.overwrite)
        recovery = None if args.no_recovery else _distill_config(args)
        return prune_structured(
            base,
            args.out,
            home,
            args.keep_heads,
            args.keep_neurons,
            args.importance,
            recovery,
            progress,
            args.overwrite,
            teacher_path=_model(args.teacher, home) if args.teacher else None,
        )
    from models.training.distill import distill

    return distill(base, args.out, home, args.layers, _distill_config(args), progress, args.overwrite)


def _evaluate(args: argparse.Namespace, home: Path) -> int:
    from models.training.evaluate import evaluate
    from models.training.variant import record_eval

    variants: dict[str, Path] = {}
    for item in args.variants:
        name, sep, folder = item.partition("=")
        path = Path(folder if sep else item).expanduser().resolve()
        variants[name if sep else path.name] = path
    results = evaluate(
        _model(args.base, home),
        variants,
        home,
        args.rounds,
        progress=not args.no_progress,
        runtimes=args.runtimes,
    )
    results["base"]["source"] = args.base  # names the base in the report (a builtin's folder is "model")
    for name, path in variants.items():
        record_eval(
            path, {"against": str(_model(args.base, home)), **results[name], **{"base": results["base"]}}
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    _print_table(results)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``models`` sub-command; returns the exit code."""
    home = _home(args)
    command = args.model_command
    if command == "data":
        from models.training.data import ROTTEN_TOMATOES, STS_B, ensure_dataset

        for dataset in (STS_B, ROTTEN_TOMATOES):
            for member, path in ensure_dataset(dataset, home).items():
                print(f"{member}: {path}")
        return 0
    if command == "finetune":
        return _finetune(args, home)
    if command == "eval":
        return _evaluate(args, home)
    if command == "report":
        from models.training.report import write_report

        table, image = write_report(
            args.results, args.out_dir, "bertserve models " + shlex.join(sys.argv[2:])
        )
        print(f"wrote {table} and {image}")
        return 0
    manifest = _run_recipe(args, home)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "recipe": manifest["recipe"],
                **manifest.get("quantization", {}).get("calibration", {}),
            }
        )
    )
    return 0


def _finetune(args: argparse.Namespace, home: Path) -> int:
    from models.training.finetune import FinetuneConfig, finetune_classifier
    from models.training.rerank import finetune_reranker, rerank_config

    rerank = args.task == "rerank"
    config = rerank_config() if rerank else FinetuneConfig()
    if args.epochs is not None:
        config = replace(config, epochs=args.epochs)
    if args.max_train_examples is not None:
        config = replace(config, max_train_examples=args.max_train_examples)
    out = args.out or (defaults.reranker_path(home) if rerank else defaults.classifier_path(home))
    train = finetune_reranker if rerank else finetune_classifier
    result = train(defaults.minilm_path(), out, home, config, progress=not args.no_progress, overwrite=True)
    print(
        json.dumps(
            {
                "out": str(result.out_dir),
                ("heldout_spearman" if rerank else "heldout_accuracy"): result.heldout_accuracy,
                "seconds": round(result.seconds, 1),
            }
        )
    )
    return 0
