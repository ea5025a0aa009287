#!/usr/bin/env python3
"""imgen gallery on 1,000 images: build time with embedded thumbnails and with --no-thumbs, and the page size.

Makes the images once into a temporary folder (small PNGs, a batch manifest for half of them and sidecars for the
other half), then runs the installed `imgen gallery` as a subprocess, alternating the two modes, and prints the
median wall time of each (start-up included), the page sizes, and the thumbnail step alone in-process with one
worker and with the thread pool. Needs Pillow (the `preview` extra, or `test`).

    .venv/bin/python benchmarks/gallery.py                     # 1,000 images of 512x512, 5 runs each
    .venv/bin/python benchmarks/gallery.py --images 200 --reps 3 --size 1024
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from imgen.batch import manifest
from imgen.gallery import collect, thumbs


def make_images(directory: Path, count: int, size: int) -> None:
    """Distinct pictures (a gradient and a disc, shifted per image), so no two encode alike."""
    directory.mkdir(parents=True, exist_ok=True)
    base = Image.linear_gradient("L").resize((size, size))
    lines = []
    for i in range(count):
        image = Image.merge("RGB", (base, base.rotate(90 * (i % 4)), Image.new("L", (size, size), (i * 37) % 256)))
        ImageDraw.Draw(image).ellipse([(i * 13) % size // 2, (i * 29) % size // 2, size // 2 + (i * 7) % (size // 2), size - 1],
                                      fill=((i * 53) % 256, 200, (i * 91) % 256))
        name = f"image-{i:04d}.png"
        image.save(directory / name, "PNG", compress_level=1)
        prompt = f"benchmark picture number {i}, a gradient with a disc"
        if i % 2:
            manifest.write_sidecars({"key": name, "prompt": prompt, "model": "gpt-image-1", "created": 1763000000 + i,
                                     "images": [{"path": name, "format": "png"}]}, directory)
        else:
            path = directory / name
            lines.append(manifest.encode({
                "format": 1, "key": hashlib.sha256(name.encode()).hexdigest()[:16], "status": "ok",
                "finished": f"2026-11-20T10:{i // 60 % 60:02d}:{i % 60:02d}+00:00", "prompt": prompt, "model": "dall-e-3",
                "cost_usd": 0.04, "images": [{"index": 1, "path": name, "bytes": path.stat().st_size, "format": "png"}],
            }))
    (directory / manifest.MANIFEST_NAME).write_bytes(b"".join(lines))


def imgen() -> str:
    found = shutil.which("imgen", path=str(Path(sys.executable).parent)) or shutil.which("imgen")
    if not found:
        sys.exit("the imgen command is not installed: pip install -e '.[test]'")
    return found


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512, help="edge of each square PNG, in pixels")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="imgen-gallery-bench-") as tmp:
        images, out = Path(tmp) / "images", Path(tmp) / "out"
        out.mkdir()
        start = time.perf_counter()
        make_images(images, args.images, args.size)
        print(f"images: {args.images} PNGs of {args.size}x{args.size}, {sum(p.stat().st_size for p in images.glob('*.png')) / 2**20:.1f} MiB, "
              f"made in {time.perf_counter() - start:.1f} s")
        print(f"cores: {os.cpu_count()}, thumbnail workers: {thumbs.WORKERS}")

        binary = imgen()
        modes = {"thumbnails": [], "no-thumbs": []}
        for _ in range(args.reps):  # alternating, so drift in the machine's load hits both alike
            modes["thumbnails"].append(timed([binary, "gallery", str(images), "-o", str(out / "thumbs.html")]))
            modes["no-thumbs"].append(timed([binary, "gallery", str(images), "--no-thumbs", "-o", str(out / "refs.html")]))
        for mode, page in (("thumbnails", "thumbs.html"), ("no-thumbs", "refs.html")):
            series = modes[mode]
            print(f"build {mode}: median {statistics.median(series):.3f} s  min {min(series):.3f}  max {max(series):.3f}  "
                  f"page {(out / page).stat().st_size / 2**20:.2f} MiB")
        print(f"page per image: {(out / 'thumbs.html').stat().st_size / args.images / 1024:.1f} KiB with thumbnails, "
              f"{(out / 'refs.html').stat().st_size / args.images / 1024:.2f} KiB without")

        entries = collect.collect(images).entries
        for workers in sorted({1, thumbs.WORKERS}):
            series = []
            for _ in range(max(1, args.reps // 2)):
                start = time.perf_counter()
                list(thumbs.made(entries, workers=workers))
                series.append(time.perf_counter() - start)
            print(f"thumbnails alone, {workers} worker{'s' if workers > 1 else ''}: median {statistics.median(series):.3f} s")


if __name__ == "__main__":
    main()
