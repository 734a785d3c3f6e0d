#!/usr/bin/env python3
"""Writes a single-layer OCI image as an OCI image layout tar archive, without Docker.

Why this exists: the local cluster (scripts/local-cluster/) runs real pods on containerd, but
this machine has no Docker engine, no BuildKit and no registry to pull base images from. Our
images need no build steps inside a container -- they are a few host files (static or
glibc-linked binaries, their shared libraries, /etc/passwd, ...) plus an image config -- so
writing the OCI layout by hand is enough, and `ctr -n k8s.io images import ARCHIVE` loads it
straight into the node's containerd.

The archive holds `oci-layout`, `index.json` and `blobs/sha256/{layer,config,manifest}`. The
index's manifest descriptor carries `io.containerd.image.name` (the full reference containerd
and the kubelet see, e.g. docker.io/library/proglog-node:e2e) and
`org.opencontainers.image.ref.name` (the tag), so the import needs no --base-name.

Reproducible: entries are sorted, every mtime is 0, owners are 0:0 unless given, and parent
directories are written as entries of their own, so the same inputs give the same digests (and
images.sh can tell an unchanged image from a changed one).

Usage (arguments can also be read from a file, one per line: @FILE):
  oci-image.py --name docker.io/library/proglog-pause:3.10 --output pause.tar \\
      --file build/pause:/pause:0755 --user 65535 --entrypoint '["/pause"]'

  --file SRC:DEST[:MODE]          copy host file SRC (symlinks followed) to DEST; MODE in octal,
                                  default 0755 if SRC is executable, else 0644
  --dir DEST[:MODE[:UID:GID]]     an (empty) directory, e.g. /tmp:1777
  --symlink DEST:TARGET           a symbolic link DEST -> TARGET
Prints "NAME MANIFEST-DIGEST ARCHIVE-SIZE" on success.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import posixpath
import stat
import sys
import tarfile
import tempfile

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
# Epoch 0 instead of "now", so a rebuild from the same inputs is byte-identical.
CREATED = "1970-01-01T00:00:00Z"
CHUNK = 1 << 20


def die(msg):
    print(f"oci-image: error: {msg}", file=sys.stderr)
    sys.exit(1)


def image_path(dest):
    """'/usr/local/bin/x' -> 'usr/local/bin/x' (layer entries are relative, normalised)."""
    if not dest.startswith("/"):
        die(f"destination must be absolute: {dest!r}")
    path = posixpath.normpath(dest).lstrip("/")
    if not path or path.startswith(".."):
        die(f"bad destination: {dest!r}")
    return path


def parse_mode(text, what):
    try:
        mode = int(text, 8)
    except ValueError:
        die(f"{what}: mode must be octal, got {text!r}")
    if not 0 <= mode <= 0o7777:
        die(f"{what}: mode out of range: {text!r}")
    return mode


class Layer:
    """The layer's entries, keyed by path inside the image."""

    def __init__(self):
        self.entries = {}

    def add(self, path, entry):
        old = self.entries.get(path)
        if old is not None:
            # Parent directories are added implicitly; an explicit --dir may come before or after.
            if entry.get("implicit"):
                if old["type"] != "dir":
                    die(f"/{path} is not a directory, but other entries are under it")
                return
            if not old.get("implicit"):
                die(f"/{path} given twice")
            if entry["type"] != "dir":
                die(f"/{path} is not a directory, but other entries are under it")
        self.entries[path] = entry
        parent = posixpath.dirname(path)
        if parent:
            self.add(parent, {"type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "implicit": True})

    def write(self, fileobj):
        # "w|": a stream, as the sink is not seekable; tarfile buffers it in CHUNK-sized writes.
        with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tar:
            for path in sorted(self.entries):
                e = self.entries[path]
                info = tarfile.TarInfo(path)
                info.mtime = 0
                info.uid, info.gid = e.get("uid", 0), e.get("gid", 0)
                info.uname = info.gname = ""
                info.mode = e["mode"]
                if e["type"] == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif e["type"] == "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = e["target"]
                    tar.addfile(info)
                else:
                    with open(e["src"], "rb") as f:  # follows symlinks: the real file's bytes
                        info.size = os.fstat(f.fileno()).st_size
                        tar.addfile(info, f)


class HashingWriter(io.RawIOBase):
    """Writes to a file while computing the sha256 and size of what was written."""

    def __init__(self, f):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, b):
        self.f.write(b)
        self.sha.update(b)
        self.size += len(b)
        return len(b)

    def digest(self):
        return "sha256:" + self.sha.hexdigest()


def json_bytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def descriptor(media_type, data_or_digest, size=None):
    if size is None:
        return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data_or_digest).hexdigest(),
                "size": len(data_or_digest)}
    return {"mediaType": media_type, "digest": data_or_digest, "size": size}


def default_arch():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def build_layer(args):
    layer = Layer()
    for spec in args.file:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            die(f"--file wants SRC:DEST[:MODE], got {spec!r}")
        src, dest = parts[0], parts[1]
        try:
            st = os.stat(src)
        except OSError as err:
            die(f"--file {spec}: {err}")
        if not stat.S_ISREG(st.st_mode):
            die(f"--file {spec}: {src} is not a regular file")
        if len(parts) == 3:
            mode = parse_mode(parts[2], spec)
        else:
            mode = 0o755 if st.st_mode & 0o111 else 0o644
        layer.add(image_path(dest), {"type": "file", "src": src, "mode": mode})
    for spec in args.dir:
        parts = spec.split(":")
        if len(parts) not in (1, 2, 4):
            die(f"--dir wants DEST[:MODE[:UID:GID]], got {spec!r}")
        mode = parse_mode(parts[1], spec) if len(parts) >= 2 else 0o755
        uid, gid = (int(parts[2]), int(parts[3])) if len(parts) == 4 else (0, 0)
        layer.add(image_path(parts[0]), {"type": "dir", "mode": mode, "uid": uid, "gid": gid})
    for spec in args.symlink:
        dest, sep, target = spec.partition(":")
        if not sep or not target:
            die(f"--symlink wants DEST:TARGET, got {spec!r}")
        layer.add(image_path(dest), {"type": "symlink", "target": target, "mode": 0o777})
    if not layer.entries:
        die("the image would be empty: give at least one --file, --dir or --symlink")
    return layer


def image_config(args, diff_id):
    cfg = {}
    if args.user:
        cfg["User"] = args.user
    if args.env:
        for kv in args.env:
            if "=" not in kv:
                die(f"--env wants KEY=VALUE, got {kv!r}")
        cfg["Env"] = args.env
    for key, text in (("Entrypoint", args.entrypoint), ("Cmd", args.cmd)):
        if text is not None:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                die(f"--{key.lower()} wants a JSON array of strings: {err}")
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                die(f"--{key.lower()} wants a JSON array of strings, got {text!r}")
            cfg[key] = value
    if args.workdir:
        cfg["WorkingDir"] = args.workdir
    if args.expose:
        cfg["ExposedPorts"] = {(p if "/" in p else p + "/tcp"): {} for p in args.expose}
    if args.label:
        labels = {}
        for kv in args.label:
            key, sep, value = kv.partition("=")
            if not sep:
                die(f"--label wants KEY=VALUE, got {kv!r}")
            labels[key] = value
        cfg["Labels"] = labels
    return {
        "created": CREATED,
        "architecture": args.arch,
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": "scripts/local-cluster/oci-image.py"}],
    }


def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def add_file(tar, name, path):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = os.path.getsize(path), 0, 0o644
    with open(path, "rb") as f:
        tar.addfile(info, f)


def main():
    p = argparse.ArgumentParser(
        description="Write a single-layer OCI image layout tar archive (see the module docstring).",
        fromfile_prefix_chars="@")
    p.add_argument("--name", required=True, help="full reference, e.g. docker.io/library/x:tag")
    p.add_argument("--output", required=True, help="archive to write (replaced atomically)")
    p.add_argument("--file", action="append", default=[], metavar="SRC:DEST[:MODE]")
    p.add_argument("--dir", action="append", default=[], metavar="DEST[:MODE[:UID:GID]]")
    p.add_argument("--symlink", action="append", default=[], metavar="DEST:TARGET")
    p.add_argument("--user", help="e.g. 65532:65532")
    p.add_argument("--entrypoint", help='JSON array, e.g. \'["/pause"]\'')
    p.add_argument("--cmd", help="JSON array")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workdir")
    p.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--arch", default=default_arch(), help="default: this machine's (%(default)s)")
    p.add_argument("--gzip", action="store_true", help="compress the layer (default: plain tar)")
    args = p.parse_args()

    name = args.name
    last = name.rsplit("/", 1)[-1]
    if "/" not in name or ":" not in last or "@" in name:
        die(f"--name must be a full reference with a tag, like docker.io/library/x:tag, got {name!r}")
    tag = last.rsplit(":", 1)[1]

    layer = build_layer(args)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".oci-image-") as tmp:
        # The layer goes to a temporary file first: its digest names its blob in the archive,
        # and the binaries can be large, so it is hashed while written rather than held in memory.
        layer_path = os.path.join(tmp, "layer")
        with open(layer_path, "wb") as raw:
            # diff_id is the digest of the uncompressed tar, the blob digest that of the file
            # as stored (the same when the layer is not compressed).
            blob = HashingWriter(raw)
            if args.gzip:
                with gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0) as gz:
                    diff = HashingWriter(gz)
                    layer.write(diff)
            else:
                diff = HashingWriter(blob)
                layer.write(diff)
            diff_id = diff.digest()
        layer_desc = descriptor(LAYER_TAR_GZIP if args.gzip else LAYER_TAR, blob.digest(), blob.size)

        config = json_bytes(image_config(args, diff_id))
        config_desc = descriptor(CONFIG, config)
        manifest = json_bytes({"schemaVersion": 2, "mediaType": MANIFEST,
                               "config": config_desc, "layers": [layer_desc]})
        manifest_desc = descriptor(MANIFEST, manifest)
        manifest_desc["platform"] = {"architecture": args.arch, "os": "linux"}
        manifest_desc["annotations"] = {"io.containerd.image.name": name,
                                        "org.opencontainers.image.ref.name": tag}
        index = json_bytes({"schemaVersion": 2, "mediaType": INDEX, "manifests": [manifest_desc]})

        archive_tmp = os.path.join(tmp, "archive.tar")
        blobs = {config_desc["digest"]: config, manifest_desc["digest"]: manifest}
        with tarfile.open(archive_tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for d in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                tar.addfile(info)
            for digest in sorted(set(blobs) | {layer_desc["digest"]}):
                blob_name = "blobs/sha256/" + digest.split(":", 1)[1]
                if digest == layer_desc["digest"]:
                    add_file(tar, blob_name, layer_path)
                else:
                    add_bytes(tar, blob_name, blobs[digest])
            add_bytes(tar, "index.json", index)
            add_bytes(tar, "oci-layout", json_bytes({"imageLayoutVersion": "1.0.0"}))
        os.replace(archive_tmp, args.output)

    print(f"{name} {manifest_desc['digest']} {os.path.getsize(args.output)}")


if __name__ == "__main__":
    main()
