"""Fetch the site's two browser libraries from the npm registry into build/assets (once):
KaTeX, which typesets the mathematics, and iframe-worker, with which Material's search runs in a
page opened as a file (file://), where browsers refuse web workers.

    python docs/_tools/fetch_assets.py

``npm pack`` downloads each published package (no install, no node_modules); its SHA-512 is
checked against the registry's integrity value pinned here before it is unpacked. The hooks copy
the parts in ``SITE_PARTS`` into site/assets, so pages load nothing from the network.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

TARGET = Path(__file__).resolve().parents[2] / "build" / "assets"
PACKAGES = {
    "katex": ("0.16.22", "sha512-XCHRdUw4lf3SKBaJe4EvgqIuWwkPSo9XoeO8GjQW94Bp7TWv9hNhzZjZ"
                         "+OH9yf1UmLygb7DIT5GSFQiyt16zYg=="),
    "iframe-worker": ("1.0.4", "sha512-roeaaI+Lg1LJNfgpCjoRe/+WzEjy9+Z08LoEvu85MCPbBjwm"
                               "+qXz8Ag5U05lHa6V1CysZyGzE0SOkAtSUA5q7Q=="),
}
# package -> (folder inside the package, folder under site/assets)
SITE_PARTS = {"katex": ("dist", "katex"), "iframe-worker": ("shim", "iframe-worker")}


def unpacked(name: str) -> Path:
    return TARGET / name / "package"


def fetch(name: str, version: str, integrity: str) -> str | None:
    """Download and unpack one package; returns an error message or None."""
    folder = TARGET / name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["npm", "pack", f"{name}@{version}", "--pack-destination", str(folder), "--silent"],
                       check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as error:
        return f"could not fetch {name} {version} with npm ({error}); the site needs Node.js and npm"
    archive = folder / f"{name}-{version}.tgz"
    digest = "sha512-" + base64.b64encode(hashlib.sha512(archive.read_bytes()).digest()).decode()
    if digest != integrity:
        return f"{archive}: checksum {digest} is not the registry's {integrity}"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, members=[m for m in tar.getmembers() if m.isfile()], filter="data")
    return None


def main() -> int:
    for name, (version, integrity) in PACKAGES.items():
        stamp = TARGET / name / f"{version}.ok"
        if stamp.exists():
            continue
        error = fetch(name, version, integrity)
        if error:
            print(error, file=sys.stderr)
            return 1
        stamp.touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
