"""`onnxprobe atlas MODEL --layer L [--layer ...|--all] --out DIR [--data DATASET]`: a browsable unit atlas."""

from __future__ import annotations

from onnxprobe.cli.common import add_budget_arg, add_model_args, add_render_args, count_arg, load_model_from_args, \
    render_keywords, warn_nonfinite_names


SUMMARY = "render every unit of layers offline into a static site and a manifest"  # the line in 'onnxprobe --help'
DESCRIPTION = """Render units offline into a static, browsable site (index.html): optimized images, top-k
patches and back maps per unit, plus a manifest the viewer reads (view --atlas)."""
EXAMPLES = """examples:
  onnxprobe atlas models/imagenet/mobilenet_v2.onnx --layer features.10.conv.0.2/Clip --units 0-15 \\
      --data .cache/photos --out atlas/       # 16 of its 384 units
  onnxprobe atlas models/digits/digits-cnn.onnx --all --data models/digits/samples --out atlas/
"""


def register(sub) -> None:
    from onnxprobe.api.params import POSITION_HELP_WITHOUT_IMAGE

    parser = sub.add_parser("atlas", help=SUMMARY)
    add_model_args(parser)
    add_budget_arg(parser)
    parser.add_argument("--layer", action="append", help="layer (ONNX tensor name or module path); repeatable")
    parser.add_argument("--all", action="store_true", help="every layer with a gradient path to the input")
    parser.add_argument("--out", required=True, metavar="DIR", help="atlas folder (resumed when it already holds one)")
    parser.add_argument("--data", metavar="DATASET",
                        help="images for the top-k patches (--top) and statistics: folder, list file or video "
                             "(none: optimized images only)")
    add_render_args(parser, default_preset=None)
    parser.add_argument("--units", action="append", metavar="RANGE",
                        help="only these units of each layer, e.g. 0-15 or 0,3,7 (repeatable; default all)")
    parser.add_argument("--position", metavar="Y,X|centre|mean",
                        help=f"where each unit is optimized: {POSITION_HELP_WITHOUT_IMAGE} (default centre)")
    # a flag and a repeatable option, not one flag with optional values: `--photo-pictures MODEL
    # --layer L` would have taken the model's path for a photo
    parser.add_argument("--photo-pictures", action="store_true",
                        help="pictures from photos (the model's sample photos, or those of --photo): each unit "
                             "accentuated on each photo, each layer's caricature and inversion of it, as optimize --from "
                             "draws them (one lucid run per unit and photo: costly)")
    parser.add_argument("--photo", action="append", metavar="IMAGE",
                        help="a photo for --photo-pictures instead of the sample photos (repeatable; implies it)")
    parser.add_argument("--top", type=int, default=9, metavar="K", help="dataset images per unit (default %(default)s)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--threads", type=count_arg(1), help="ONNX Runtime threads per session (default: $ONNXPROBE_THREADS, else one per core; on a cluster 1 per task)")
    parser.add_argument("--fresh", action="store_true", help="delete the atlas in DIR and start over")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args) -> int:
    from onnxprobe.api.params import parse_position, parse_units
    from onnxprobe.errors import UsageError

    if args.layer and args.all:
        raise UsageError("give either --layer or --all, not both")
    render = render_keywords(args)
    position = parse_position(args.position)
    units = parse_units(args.units) if args.units else None
    model = load_model_from_args(args)
    atlas = model.atlas(args.layer or [], args.out, data=args.data, all_layers=args.all, units=units, position=position,
                        top=args.top, scheduler=args.scheduler, threads=args.threads, fresh=args.fresh,
                        photo_pictures=args.photo or args.photo_pictures, progress=not args.quiet,
                        **render)
    result = atlas.result
    rate = f" ({result.units_per_second:.2f} units/s)" if result.units_rendered else ""
    print(f"rendered {result.units_rendered} unit(s) in {result.seconds_render:.1f} s{rate}; the atlas holds "
          f"{result.units_total} unit(s) of {len(result.layers)} layer(s): {atlas.index}")
    if result.photo_pictures_drawn:
        print(f"drew the pictures from photos of {result.photo_pictures_drawn} layer(s) and unit(s)")
    for note in result.notes:
        print(f"note: {note}")
    warn_nonfinite_names(result.nonfinite, "the optimized activations")
    return 0
