"""`vsml data ...` sub-commands: ``download NAME...``, ``list``, ``info NAME_OR_PATH`` and ``forget PATH``.

The main CLI calls :func:`register` on its subparsers and then ``args.func(args)``, which returns
an exit code (1: ``list`` found a problem; 2: an error, one line on stderr). :func:`main` runs the sub-command
stand-alone (``main(["list"])``).
"""

from __future__ import annotations

import argparse
import sys

from vsml.data import registry
from vsml.data.download import download
from vsml.data.integrity import DataError, forget_fingerprint
from vsml.errors import command


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@command("vsml data download")
def _cmd_download(args) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    for name in args.names:
        registry.get_info(name)  # fail early on a typo, before any download
    for name in args.names:
        paths = download(
            name, data_dir=args.data_dir, base_url=args.base_url, force=args.force, progress=not args.quiet
        )
        if not args.quiet:
            what = "built in, nothing to download" if not paths else f"{len(paths)} file(s) verified"
            console.print(f"{registry.get_info(name).name}: {what} in {registry.data_dir(args.data_dir)}")
    return 0


@command("vsml data list")
def _cmd_list(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    root = registry.data_dir(args.data_dir)
    table = Table(title=f"datasets in {root}")
    for col in ("name", "present splits", "verified", "size", "description"):
        table.add_column(col)
    problems = []
    for name in registry.names():
        st = registry.status(name, data_dir=args.data_dir, verify=not args.no_verify)
        info = registry.get_info(name)
        if info.path is not None:
            verified, size = "your file", "-"
        elif info.builtin:
            verified, size = "built in", "-"
        else:
            verified = {True: "yes", False: "[red]NO[/red]", None: "-"}[st.verified]
            size = _human(st.size) if st.size else "-"
        table.add_row(name, ", ".join(st.splits) or "-", verified, size, escape(st.description))
        problems += [f"{name}: {p}" for p in st.problems]
    console.print(table)
    for p in problems:
        console.print(f"[red]problem:[/red] {escape(p)}", highlight=False)
    return 1 if problems else 0


@command("vsml data info")
def _cmd_info(args) -> int:
    """Describe a dataset or a file of your own: shape, classes, splits and their sizes."""
    import numpy as np

    info = registry.get_info(args.name)
    print(info.description if info.path == info.name else f"{info.name}: {info.description}")
    if info.path is not None:
        print(f"  path: {info.path}\n  sha256: {info.fingerprint}")
    shape = list(info.image_shape)
    print(f"  example shape: {shape} ({'features' if len(shape) == 1 else 'H, W, C'}); classes: {info.num_classes}")
    if info.class_names:
        shown = ", ".join(f"{i}={n}" for i, n in enumerate(info.class_names[:20]))
        print(f"  labels: {shown}{', ...' if len(info.class_names) > 20 else ''}")
    stats = "computed from each split" if info.mean is None else f"mean {info.mean}, std {info.std}"
    print(f"  normalisation: {stats}")
    for split in info.splits:
        try:
            d = registry.load(args.name, split, data_dir=args.data_dir, verify=not args.no_verify)
        except DataError as e:
            print(f"  {split}: not available ({str(e).splitlines()[0]})")
            continue
        counts = np.bincount(d.labels, minlength=d.num_classes)
        print(
            f"  {split}: {len(d)} examples, dtype {d.images.dtype}, {int((counts > 0).sum())} classes present, "
            f"{int(counts[counts > 0].min())}..{int(counts.max())} per class"
        )
    return 0


@command("vsml data forget")
def _cmd_forget(args) -> int:
    for path in args.paths:
        shown = path.rsplit("?", 1)[0]
        known = forget_fingerprint(shown)
        forgotten = "fingerprint forgotten; the next read records the current content"
        what = forgotten if known else "no fingerprint was recorded"
        print(f"{shown}: {what}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``data`` command (``download``, ``list``, ``info``, ``forget``) to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "data",
        help="list and download datasets",
        description="Dataset files live in VSML_DATA_DIR (default ~/.cache/vsml/data).",
    )
    sub = p.add_subparsers(dest="data_command", metavar="{download,list,info,forget}")
    sub.required = True
    d = sub.add_parser("download", help="fetch, verify and install the canonical files of datasets")
    d.add_argument("names", nargs="+", metavar="NAME", help=f"dataset names: {', '.join(registry.names())}")
    d.add_argument("--data-dir", default=None, help="target data directory (default: $VSML_DATA_DIR)")
    d.add_argument(
        "--base-url",
        default=None,
        help="mirror laid out like the data directory (default: $VSML_DATA_BASE_URL, else the official addresses)",
    )
    d.add_argument("--force", action="store_true", help="download again even if a verified file is present")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_cmd_download)
    ls = sub.add_parser("list", help="show every dataset: present splits, verification, size")
    ls.add_argument("--data-dir", default=None, help="data directory (default: $VSML_DATA_DIR)")
    ls.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    ls.set_defaults(func=_cmd_list)
    i = sub.add_parser(
        "info", help="describe a dataset or a file of your own (.npz, .csv, folder): shape, classes, splits"
    )
    i.add_argument("name", metavar="NAME_OR_PATH")
    i.add_argument("--data-dir", default=None, help="data directory (default: $VSML_DATA_DIR)")
    i.add_argument("--no-verify", action="store_true", help="skip checksum / fingerprint verification")
    i.set_defaults(func=_cmd_info)
    f = sub.add_parser(
        "forget", help="accept the changed content of files of your own (drop their recorded fingerprints)"
    )
    f.add_argument("paths", nargs="+", metavar="PATH")
    f.set_defaults(func=_cmd_forget)
    return p


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``main(["download", "mnist"])`` -> exit code."""
    parser = argparse.ArgumentParser(prog="vsml")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
