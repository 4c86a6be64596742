#!/usr/bin/env python3
"""make_crafted.py: writes the crafted HDF5 files in this directory, each a
small file that once crashed, hung or exhausted a release `dualkd` (issue #10,
part 4). tests/test_crafted.c runs the release binary on every *.h5 here and
wants exit status 1 with a message naming the file, within a time bound.

Run from anywhere: `/usr/bin/python3 tests/crafted/make_crafted.py` (Debian's
h5py 3.7 with HDF5 1.10.8). The files are committed; re-running rewrites them
with the same damage (only h5py's group timestamps differ).

Kinds:
  huge_*       well-formed files declaring enormous volumes (no data stored)
  vlen_*       variable-length strings, whose global heap has no checksum
  v0_*         the HDF5 1.6/1.8 default format (superblock 0, no metadata
               checksums), with a damaged B-tree, attribute or heap
  v108_*       the 1.8 format: chunk indexes are unchecksummed v1 B-trees
  external_*, filter_*   storage dualkd does not read (other files, filters)
  *_link*      a volume that is an external link (to a damaged old file) or a soft link loop
  ckpt_*, store_*        a checkpoint or target store with a damaged heap
"""
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODERN = ("v110", "latest")  # what dualkd writes: every metadata block checksummed
OLD = ("earliest", "latest")  # h5py's default: superblock 0, v1 headers, v1 B-trees


def fixed(s):
    """A fixed-length, NUL-padded string as dualkd writes them."""
    return np.bytes_(s)


def dataset_root(f, classes=("background", "cartilage"), vlen=False):
    f.attrs["format"] = "dualkd-dataset" if vlen else fixed("dualkd-dataset")
    f.attrs["format_version"] = np.int64(1)
    if vlen:
        f.attrs["classes"] = list(classes)  # h5py writes str lists as variable-length
    else:
        f.attrs["classes"] = np.array([c.encode() for c in classes], dtype="S16")


def volume(f, name, shape, chunk, data=True, vlen_split=False, track_order=True):
    # creation-order tracking needs version 2 object headers (checksummed) even
    # in the old format; without it the old format writes unchecksummed v1 headers
    g = f.create_group("volumes/" + name, track_order=track_order)
    kw = dict(chunks=chunk, track_times=False)
    img = g.create_dataset("image", shape=shape, dtype="f4", **kw)
    lab = g.create_dataset("label", shape=shape, dtype="u1", compression="gzip", **kw)
    if data:
        img[...] = np.ones(shape, "f4")
        lab[...] = np.ones(shape, "u1")
    g.attrs["spacing"] = np.array([3.0, 0.5, 0.5])
    g.attrs["split"] = "labelled" if vlen_split else fixed("labelled")
    return g


def new_file(name, libver, track_order=True):
    path = os.path.join(HERE, name)
    return path, h5py.File(path, "w", libver=libver, track_order=track_order)


def patch(path, edits):
    """Overwrite bytes: edits is a list of (offset, bytes)."""
    with open(path, "r+b") as fh:
        for off, b in edits:
            fh.seek(off)
            fh.write(b)


def find(path, needle, nth=0):
    data = open(path, "rb").read()
    at = -1
    for _ in range(nth + 1):
        at = data.find(needle, at + 1)
        if at < 0:
            sys.exit("make_crafted: %r not found in %s" % (needle, path))
    return at


def huge(name, shape):
    """A valid dataset declaring a huge volume: nothing stored, so ~1 kB."""
    path, f = new_file(name, MODERN)
    dataset_root(f)
    volume(f, "v1", shape, (1, 64, 64), data=False)
    f.close()


def vlen_heap(name, libver, field_offset, value):
    """Variable-length class names with a damaged global heap object."""
    path, f = new_file(name, libver)
    dataset_root(f, vlen=True)
    volume(f, "v1", (2, 3, 4), (1, 3, 4))
    f.close()
    gcol = find(path, b"GCOL")
    # collection: "GCOL" ver(1) res(3) size(8); object 1 at +16: index(2) refs(2) res(4) size(8)
    patch(path, [(gcol + field_offset, value)])


def v0_btree(name, field_offset, value):
    """Old-format chunked label whose v1 B-tree node is damaged (no checksum)."""
    path, f = new_file(name, OLD)
    dataset_root(f)
    volume(f, "v1", (4, 3, 4), (1, 3, 4))
    f.close()
    # both chunk indexes (image and label): `data info` reads labels, `export` both
    patch(path, [(find(path, b"TREE", nth) + field_offset, value) for nth in (0, 1)])


def v0_attr_name(name):
    """Old-format (v1 header) attribute message whose name length runs past it."""
    path, f = new_file(name, OLD, track_order=False)
    dataset_root(f)
    volume(f, "v1", (2, 3, 4), (1, 3, 4), track_order=False)
    f.close()
    at = find(path, b"spacing\0")
    # attribute message v1: version(1) reserved(1) name size(2) type size(2) space size(2) name
    patch(path, [(at - 6, (0xFFFF).to_bytes(2, "little"))])


def v0_layout(name, dim_index, value):
    """Old-format (v1 header) chunked dataset whose layout message has a bad chunk dim."""
    path, f = new_file(name, OLD, track_order=False)
    dataset_root(f)
    volume(f, "v1", (2, 3, 4), (1, 3, 4), track_order=False)
    f.close()
    edits = []
    for elem in (4, 1):  # image (float32), label (uint8): chunk dims then element size
        at = find(path, np.array([1, 3, 4, elem], "<u4").tobytes())
        edits.append((at + 4 * dim_index, np.array([value], "<u4").tobytes()))
    patch(path, edits)


def v0_plain(name):
    """A well-formed dataset in the old format: refused, with how to write a new one."""
    path, f = new_file(name, OLD)
    dataset_root(f)
    volume(f, "v1", (2, 3, 4), (1, 3, 4))
    f.close()


def v108_btree(name, damage):
    """The 1.8 format: checksummed headers, but chunks indexed by a v1 B-tree."""
    path, f = new_file(name, ("v108", "latest"))
    dataset_root(f)
    volume(f, "v1", (4, 3, 4), (1, 3, 4))
    f.close()
    if damage:
        patch(path, [(find(path, b"TREE", nth) + 6, (0xFFFF).to_bytes(2, "little"))
                     for nth in (0, 1)])


def storage(name, **kw):
    """A modern file whose image uses storage dualkd refuses (external file, filter)."""
    path, f = new_file(name, MODERN)
    dataset_root(f)
    g = f.create_group("volumes/v1", track_order=True)
    g.create_dataset("image", shape=(2, 3, 4), dtype="f4", track_times=False, **kw)
    g.attrs["spacing"] = np.array([3.0, 0.5, 0.5])
    f.close()


def vlen_attr(name):
    """A modern dataset whose volume's split is a (well-formed) variable-length string."""
    path, f = new_file(name, MODERN)
    dataset_root(f)
    volume(f, "v1", (2, 3, 4), (1, 3, 4), vlen_split=True)
    f.close()


def checkpoint_vlen(name):
    """A checkpoint-shaped file whose architecture is a vlen string on a damaged heap."""
    path, f = new_file(name, MODERN)
    f.attrs["format"] = fixed("dualkd-checkpoint")
    f.attrs["format_version"] = np.int64(1)
    f.attrs["architecture"] = '{"kind": "unet3d"}'
    f.attrs["run_record"] = '{"kind": "teacher-run"}'
    f.create_group("params", track_order=True)
    f.close()
    patch(path, [(find(path, b"GCOL") + 16 + 8, (0x7FFFFFFFFFFFFFF0).to_bytes(8, "little"))])


def store_vlen(name):
    """A store-shaped file whose format is a vlen string on a damaged heap."""
    path, f = new_file(name, MODERN)
    f.attrs["format"] = "dualkd-target-store"
    f.attrs["format_version"] = np.int64(1)
    f.create_group("manifest", track_order=True)
    f.close()
    patch(path, [(find(path, b"GCOL") + 16 + 8, (0x7FFFFFFFFFFFFFF0).to_bytes(8, "little"))])


def store_v108(name):
    """The fuzz seed store (written by dualkd) rewritten in the 1.8 format, where
    its chunked arrays get v1 B-tree chunk indexes, then damaged."""
    src = h5py.File(os.path.join(HERE, "..", "fuzz", "corpus", "store", "one_sample.h5"), "r")
    path, f = new_file(name, ("v108", "latest"))

    def rebuild(s, d):
        for key, value in s.attrs.items():
            d.attrs[key] = value
        for key, obj in s.items():
            if isinstance(obj, h5py.Group):
                rebuild(obj, d.create_group(key, track_order=True))
            else:
                d.create_dataset(key, data=obj[()], dtype=obj.dtype, chunks=obj.shape,
                                 fletcher32=True, track_times=False)
                for k, v in obj.attrs.items():
                    d[key].attrs[k] = v

    rebuild(src, f)
    f.close()
    src.close()
    data = open(path, "rb").read()
    patch(path, [(at + 6, (0xFFFF).to_bytes(2, "little"))
                 for at in range(len(data)) if data.startswith(b"TREE", at)])


def link(name, target):
    """A modern dataset whose volume is a soft or external link (to a damaged old file)."""
    path, f = new_file(name, MODERN)
    dataset_root(f)
    f.create_group("volumes", track_order=True)
    f["volumes/v1"] = target
    f.close()


def main():
    huge("huge_plane.h5", (1, 65535, 65535))
    huge("huge_cube.h5", (65535, 65535, 65535))
    huge("huge_slab.h5", (64, 4096, 4096))
    big = (0x7FFFFFFFFFFFFFF0).to_bytes(8, "little")
    vlen_heap("vlen_heap_object_size.h5", MODERN, 16 + 8, big)
    vlen_heap("vlen_heap_collection_size.h5", MODERN, 8, big)
    vlen_heap("vlen_heap_object_index.h5", MODERN, 16, (0).to_bytes(2, "little"))
    vlen_heap("v0_vlen_heap_object_size.h5", OLD, 16 + 8, big)
    v0_btree("v0_btree_entries.h5", 6, (0xFFFF).to_bytes(2, "little"))
    v0_btree("v0_btree_child.h5", 24 + 8 + 4 + 4 + 32, big)
    v0_btree("v0_btree_chunk_size.h5", 24, (0xFFFFFFFF).to_bytes(4, "little"))
    v0_attr_name("v0_attr_name_overrun.h5")
    v0_layout("v0_layout_chunk_zero.h5", 1, 0)
    v0_layout("v0_layout_chunk_huge.h5", 2, 0xFFFFFFF0)
    v0_layout("v0_layout_elem_size.h5", 3, 0x10000)
    v0_plain("v0_plain.h5")
    v108_btree("v108_btree.h5", damage=False)
    v108_btree("v108_btree_entries.h5", damage=True)
    storage("external_image.h5", external=[("/etc/passwd", 0, 96)])
    storage("filter_scaleoffset.h5", chunks=(1, 3, 4), scaleoffset=2)
    vlen_attr("vlen_split.h5")
    checkpoint_vlen("ckpt_vlen_heap.h5")
    store_vlen("store_vlen_heap.h5")
    store_v108("store_v108_btree.h5")
    link("external_link.h5", h5py.ExternalLink("v0_btree_child.h5", "/volumes/v1"))
    link("soft_link_loop.h5", h5py.SoftLink("/volumes/v1"))


if __name__ == "__main__":
    main()
