#!/usr/bin/env python3
"""Carry a large offline bundle (wheels, sources) to the GPU machine in parts small enough for one device call.

The device tool carries at most 64 MiB per call (the repo takes ~4 MB of that), and the GPU machine has no
network. So the bundle is tarred (uncompressed: wheels are already zip files), cut into parts, and sent one
part per call; a warm machine keeps /tmp between calls (it goes back after ~30 s idle), so send the parts
back to back and put the join/install and the real work in the last call. Stdlib only.

Here (the parts and the bundle must be git-ignored, e.g. /.gpu-bundle/ and /.gpu-parts/ in .git/info/exclude):
    python3 examples/gpu-bundle.py split .gpu-bundle .gpu-parts --part-mb 56
    python3 examples/gpu-bundle.py join .gpu-parts /tmp/roundtrip           # optional local check

With the device tool, one part per consecutive call (MANIFEST.json travels with the first part):
    run(command="mkdir -p /tmp/st && cp .gpu-parts/MANIFEST.json .gpu-parts/part00 /tmp/st/",
        carry=[".gpu-parts/MANIFEST.json", ".gpu-parts/part00"])
    run(command="cp .gpu-parts/part01 /tmp/st/", carry=[".gpu-parts/part01"])      # ... up to the last part
    run(command="cp .gpu-parts/part09 /tmp/st/ && python3 examples/gpu-bundle.py join /tmp/st /tmp/gb && "
                "python3 examples/gpu-bundle.py install /tmp/gb/wh /tmp/site && PYTHONPATH=/tmp/site ...",
        carry=[".gpu-parts/part09"])     # the last part, then join (checks every part) and install
A part that was lost (the machine went back) is named by `join`; start again from part00 on a fresh machine.

Subcommands:
    split SRC_DIR PARTS_DIR [--part-mb 56]   tar SRC_DIR's contents into PARTS_DIR/partNN (MB = 10**6 bytes)
                                             and write PARTS_DIR/MANIFEST.json (sizes, sha256s, file list)
    join PARTS_DIR DEST_DIR                  check every part against MANIFEST.json, untar into DEST_DIR
    check-tree PARTS_DIR DEST_DIR PREFIX     exit 0 if every bundle file under PREFIX is complete in DEST_DIR
    install WHEEL_DIR TARGET_DIR             pip install --no-index --no-deps --no-compile --target TARGET_DIR,
                                             plus a sitecustomize.py there so its .pth files work via PYTHONPATH
"""
import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tarfile

MANIFEST = "MANIFEST.json"


class PartWriter:
    """A write-only file object that cuts its stream into files of at most part_bytes each."""

    def __init__(self, parts_dir, part_bytes):
        self.dir, self.limit = parts_dir, part_bytes
        self.parts, self.whole = [], hashlib.sha256()
        self.f = None

    def _open_next(self):
        self._close_current()
        name = f"part{len(self.parts):02d}"
        self.parts.append({"name": name, "size": 0, "sha": hashlib.sha256()})
        self.f = open(os.path.join(self.dir, name), "wb")

    def _close_current(self):
        if self.f:
            self.f.close()
            self.parts[-1]["sha256"] = self.parts[-1].pop("sha").hexdigest()
            self.f = None

    def write(self, data):
        self.whole.update(data)
        view = memoryview(data)
        while view:
            if self.f is None or self.parts[-1]["size"] >= self.limit:
                self._open_next()
            chunk = view[: self.limit - self.parts[-1]["size"]]
            self.f.write(chunk)
            self.parts[-1]["sha"].update(chunk)
            self.parts[-1]["size"] += len(chunk)
            view = view[len(chunk):]
        return len(data)

    def close(self):
        self._close_current()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cmd_split(a):
    os.makedirs(a.parts_dir, exist_ok=True)
    for old in glob.glob(os.path.join(a.parts_dir, "part[0-9]*")) + [os.path.join(a.parts_dir, MANIFEST)]:
        if os.path.exists(old):
            os.remove(old)
    files, out = [], PartWriter(a.parts_dir, int(a.part_mb * 1_000_000))
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, names in os.walk(a.src_dir):
            dirs.sort()
            for n in sorted(names):
                path = os.path.join(root, n)
                rel = os.path.relpath(path, a.src_dir)
                tar.add(path, arcname=rel, recursive=False)
                if os.path.isfile(path) and not os.path.islink(path):
                    files.append({"path": rel, "size": os.path.getsize(path)})
    out.close()
    manifest = {"source": os.path.abspath(a.src_dir), "part_bytes": out.limit,
                "tar_size": sum(p["size"] for p in out.parts), "tar_sha256": out.whole.hexdigest(),
                "parts": out.parts, "files": files}
    with open(os.path.join(a.parts_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    for p in out.parts:
        print(f"{p['name']}  {p['size'] / 1e6:8.2f} MB  {p['sha256'][:16]}")
    print(f"{len(out.parts)} parts, tar {manifest['tar_size'] / 1e6:.2f} MB, {len(files)} files "
          f"({sum(x['size'] for x in files) / 1e6:.2f} MB); manifest {os.path.join(a.parts_dir, MANIFEST)}")


class PartReader:
    """A read-only file object over the parts in order, hashing the whole stream."""

    def __init__(self, paths):
        self.paths, self.f, self.whole = list(paths), None, hashlib.sha256()

    def read(self, n=-1):
        while True:
            if self.f is None:
                if not self.paths:
                    return b""
                self.f = open(self.paths.pop(0), "rb")
            data = self.f.read(n if n and n > 0 else 1 << 20)
            if data:
                self.whole.update(data)
                return data
            self.f.close()
            self.f = None


def cmd_join(a):
    mpath = os.path.join(a.parts_dir, MANIFEST)
    if not os.path.exists(mpath):
        sys.exit(f"error: {mpath} is missing (it travels with part00)")
    with open(mpath) as f:
        manifest = json.load(f)
    bad = []
    for p in manifest["parts"]:
        path = os.path.join(a.parts_dir, p["name"])
        if not os.path.exists(path):
            bad.append(f"{p['name']}: missing")
        elif os.path.getsize(path) != p["size"]:
            bad.append(f"{p['name']}: size {os.path.getsize(path)}, expected {p['size']} (truncated or wrong part)")
        elif sha256_file(path) != p["sha256"]:
            bad.append(f"{p['name']}: sha256 mismatch (corrupt)")
    if bad:
        sys.exit("error: parts not usable, send them again:\n  " + "\n  ".join(bad))
    os.makedirs(a.dest_dir, exist_ok=True)
    src = PartReader(os.path.join(a.parts_dir, p["name"]) for p in manifest["parts"])
    with tarfile.open(fileobj=src, mode="r|") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extraction_filter = tarfile.data_filter
        tar.extractall(a.dest_dir)
    while src.read(1 << 20):  # tar stops at its end marker; hash the zero padding too
        pass
    if src.whole.hexdigest() != manifest["tar_sha256"]:
        sys.exit("error: the joined tar's sha256 differs from the manifest")
    wrong = [x["path"] for x in manifest["files"]
             if os.path.getsize(os.path.join(a.dest_dir, x["path"])) != x["size"]]
    if wrong:
        sys.exit(f"error: {len(wrong)} restored files have the wrong size, e.g. {wrong[:5]}")
    tops = {}
    for x in manifest["files"]:
        top = x["path"].split(os.sep)[0]
        n, s = tops.get(top, (0, 0))
        tops[top] = (n + 1, s + x["size"])
    for top, (n, s) in sorted(tops.items()):
        print(f"{os.path.join(a.dest_dir, top)}: {n} files, {s / 1e6:.2f} MB")
    print(f"restored {len(manifest['files'])} files from {len(manifest['parts'])} parts into {a.dest_dir}")


def cmd_install(a):
    wheels = sorted(glob.glob(os.path.join(a.wheel_dir, "*.whl")))
    if not wheels:
        sys.exit(f"error: no wheels in {a.wheel_dir}")
    rc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                         "--target", a.target_dir, *wheels]).returncode
    if rc:
        sys.exit(f"error: pip install of {len(wheels)} wheels into {a.target_dir} failed (rc {rc})")
    # .pth files (e.g. nvidia-cutlass-dsl's, which puts `cutlass` on sys.path) only run in site dirs, not on
    # PYTHONPATH: a sitecustomize.py in the target makes Python process them there.
    pth = sorted(glob.glob(os.path.join(a.target_dir, "*.pth")))
    if pth:
        with open(os.path.join(a.target_dir, "sitecustomize.py"), "w") as f:
            f.write("import os, site\nsite.addsitedir(os.path.dirname(os.path.abspath(__file__)))\n")
    print(f"installed {len(wheels)} wheels into {a.target_dir}; use PYTHONPATH={a.target_dir} "
          f"({len(pth)} .pth files, run by {a.target_dir}/sitecustomize.py)")


def cmd_check_tree(a):
    """Exit 0 when every file of the bundle under PREFIX is in DEST_DIR with its size (an early partial
    extraction, e.g. the sources that travel first, before the remaining parts arrived)."""
    with open(os.path.join(a.parts_dir, MANIFEST)) as f:
        files = [x for x in json.load(f)["files"] if x["path"].startswith(a.prefix.rstrip("/") + "/")]
    short = [x["path"] for x in files if not os.path.isfile(os.path.join(a.dest_dir, x["path"]))
             or os.path.getsize(os.path.join(a.dest_dir, x["path"])) != x["size"]]
    if not files or short:
        print(f"{a.prefix}: {len(files) - len(short)} of {len(files)} files complete")
        sys.exit(1)
    print(f"{a.prefix}: all {len(files)} files complete")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("src_dir")
    s.add_argument("parts_dir")
    s.add_argument("--part-mb", type=float, default=56)
    j = sub.add_parser("join")
    j.add_argument("parts_dir")
    j.add_argument("dest_dir")
    i = sub.add_parser("install")
    i.add_argument("wheel_dir")
    i.add_argument("target_dir")
    c = sub.add_parser("check-tree")
    c.add_argument("parts_dir")
    c.add_argument("dest_dir")
    c.add_argument("prefix")
    a = ap.parse_args()
    {"split": cmd_split, "join": cmd_join, "install": cmd_install, "check-tree": cmd_check_tree}[a.cmd](a)


if __name__ == "__main__":
    main()
